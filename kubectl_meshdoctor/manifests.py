"""Turn Kubernetes/Istio YAML manifests into an evidence bundle, for ``analyze`` offline.

Only API objects are present, so only the checks that need API evidence run; the evidence kinds are
derived from the kinds found (no Pod in the input: the pod checks are skipped, and say so).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import yaml

from kubectl_meshdoctor.bundle import EvidenceBundle
from kubectl_meshdoctor.errors import BundleError
from kubectl_meshdoctor.evidence import Evidence

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
# Kinds that have no namespace; everything else defaults to "default" as kubectl apply would.
CLUSTER_SCOPED = frozenset({
    "Namespace", "Node", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
    "PersistentVolume", "StorageClass", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
    "PriorityClass", "APIService",
})
ISTIO_CONFIG_KINDS = frozenset({"DestinationRule", "VirtualService", "PeerAuthentication"})
_MAX_FILE_BYTES = 64 * 1024 * 1024


def manifest_files(paths: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise BundleError(f"{path}: no such file or directory")
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in MANIFEST_SUFFIXES)
            if not found:
                raise BundleError(f"{path}: no manifests (*.yaml, *.yml, *.json) in this directory")
            files.extend(found)
        else:
            files.append(path)
    return files


def read_documents(path: Path) -> list[dict]:
    """The mapping documents of one YAML/JSON file; ``List`` objects are expanded into their items."""
    try:
        if path.stat().st_size > _MAX_FILE_BYTES:
            raise BundleError(f"{path}: larger than {_MAX_FILE_BYTES // (1024 * 1024)} MB, not a manifest")
        content = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if b"\x00" in content:
        raise BundleError(f"{path}: binary file, not a YAML manifest")
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise BundleError(f"{path}: not UTF-8 text, not a YAML manifest") from None
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise BundleError(f"{path}: invalid YAML{line}: {getattr(exc, 'problem', None) or exc}") from None
    result: list[dict] = []
    for doc in documents:
        if isinstance(doc, dict) and isinstance(doc.get("items"), list) and str(doc.get("kind", "")).endswith("List"):
            result.extend(item for item in doc["items"] if isinstance(item, dict))
        elif isinstance(doc, dict):
            result.append(doc)
    return result


def is_kubernetes_object(doc: dict) -> bool:
    metadata = doc.get("metadata")
    return (
        isinstance(doc.get("kind"), str)
        and isinstance(doc.get("apiVersion"), str)
        and isinstance(metadata, dict)
        and isinstance(metadata.get("name"), str)
    )


def bundle_from_objects(objects: list[dict], scope: dict) -> EvidenceBundle:
    for obj in objects:
        if obj["kind"] not in CLUSTER_SCOPED and not obj["metadata"].get("namespace"):
            obj["metadata"]["namespace"] = "default"
    kinds = {obj["kind"] for obj in objects}
    available = set()
    if "Pod" in kinds:
        available.add(Evidence.PODS)
    if "Service" in kinds:
        available.add(Evidence.SERVICES)
    if kinds & {"Endpoints", "EndpointSlice"}:
        available.add(Evidence.ENDPOINTS)
    if "Namespace" in kinds:
        available.add(Evidence.NAMESPACES)
    if kinds & ISTIO_CONFIG_KINDS:
        available.add(Evidence.ISTIO_CONFIG)
    return EvidenceBundle(scope=scope, objects=objects, available=available)


def load_manifests(paths: Iterable[str | Path]) -> EvidenceBundle:
    files = manifest_files(paths)
    objects = [doc for path in files for doc in read_documents(path) if is_kubernetes_object(doc)]
    if not objects:
        raise BundleError(f"no Kubernetes objects found in {', '.join(str(f) for f in files)}")
    return bundle_from_objects(objects, {"kind": "manifests", "paths": [str(f) for f in files]})
