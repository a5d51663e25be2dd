"""Turn Kubernetes/Istio YAML manifests into an evidence bundle, for ``analyze`` offline.

Only API objects are present, so only the checks that need API evidence run; the evidence kinds are
derived from the kinds found (no Pod in the input: the pod checks are skipped, and say so).

A repository holds more than manifests: Helm templates, values files, JSON data, kustomizations. A
file the user named is expected to be a manifest, so one that cannot be read is an error (exit 2);
a file found while walking a directory is skipped instead, and the bundle records it as a gap with
the reason, so one template does not stop the analysis of everything else. Each object remembers the
file and line it came from, so a report (SARIF) can point at the document that defines it.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import yaml

from kubectl_meshdoctor.bundle import EvidenceBundle
from kubectl_meshdoctor.errors import BundleError
from kubectl_meshdoctor.evidence import Evidence, Gap
from kubectl_meshdoctor.findings import Finding, Subject

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
# Kinds that have no namespace; everything else defaults to "default" as kubectl apply would.
CLUSTER_SCOPED = frozenset({
    "Namespace", "Node", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
    "PersistentVolume", "StorageClass", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
    "PriorityClass", "APIService",
})
ISTIO_CONFIG_KINDS = frozenset({"DestinationRule", "VirtualService", "PeerAuthentication"})
_MAX_FILE_BYTES = 64 * 1024 * 1024
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: same result, faster


class NotAManifest(Exception):
    """Why one file is not a manifest; the caller decides whether that is an error or a gap."""


@dataclass(frozen=True)
class SourceLocation:
    """Where an object is defined: the file as found (relative when the argument was) and its line."""

    path: Path
    line: int | None  # 1-based line where the object's mapping starts; None: the file as a whole


@dataclass
class ManifestSet:
    """The bundle built from manifests, and where each of its objects came from."""

    bundle: EvidenceBundle
    # (kind, namespace, name) -> every document that defines that object, in the order read.
    sources: dict[tuple[str, str | None, str], list[SourceLocation]] = field(default_factory=dict)
    # The bundle's gaps that are about one file (skipped while walking a directory), and that file.
    gap_files: dict[Gap, Path] = field(default_factory=dict)

    def locate(self, item: Finding) -> list[SourceLocation]:
        """The documents that define the finding's subject, else its pod's; empty when neither is in a file."""
        found = self.sources.get(_subject_key(item.subject), [])
        if not found and item.pod and "/" in item.pod:
            namespace, _, name = item.pod.partition("/")
            found = self.sources.get(("Pod", namespace, name), [])
        return list(found)

    def file_of_gap(self, gap: Gap) -> Path | None:
        return self.gap_files.get(gap)


def _subject_key(subject: Subject) -> tuple[str, str | None, str]:
    return (subject.kind, subject.namespace, subject.name)


# --- finding the files -----------------------------------------------------------------------------------


def walk_directory(top: Path) -> tuple[list[Path], list[Path]]:
    """(*.yaml/*.yml/*.json files, other files) under ``top``, sorted; hidden directories are not entered.

    Hidden directories (.git, .github) hold CI workflows and VCS data, never manifests to apply; a
    directory named on the command line is walked even when its own name starts with a dot.
    """
    candidates: list[Path] = []
    others: list[Path] = []
    for root, dirs, names in os.walk(top):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            path = Path(root) / name
            if not path.is_file():
                continue
            (candidates if path.suffix.lower() in MANIFEST_SUFFIXES else others).append(path)
    if not candidates:
        raise BundleError(f"{top}: no manifests (*.yaml, *.yml, *.json) in this directory")
    return candidates, others


def helm_chart_of(path: Path) -> Path | None:
    """The chart directory when ``path`` sits under a Helm chart's templates/ (Chart.yaml beside it)."""
    for parent in path.parents:
        if parent.name == "templates" and (parent.parent / "Chart.yaml").is_file():
            return parent.parent
    return None


# --- reading one file ------------------------------------------------------------------------------------


def read_documents(path: Path) -> list[dict]:
    """The mapping documents of one YAML/JSON file; ``List`` objects are expanded into their items."""
    try:
        return [doc for doc, _ in read_located_documents(path)]
    except NotAManifest as exc:
        raise BundleError(f"{path}: {exc}") from None


def read_located_documents(path: Path) -> list[tuple[dict, int]]:
    """(document, start line) of each mapping in the file, ``List`` items expanded; NotAManifest if unreadable."""
    text = _read_text(path)
    try:
        if path.suffix.lower() == ".json":
            documents = _json_documents(text)
        else:
            documents = _yaml_documents(text)
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        if "{{" in text:
            raise NotAManifest("a Helm/Go template ({{ ... }}), not a manifest: analyse what it renders "
                               "(helm template, ...)") from None
        raise NotAManifest(_parse_problem(exc)) from None
    located: list[tuple[dict, int]] = []
    for doc, node in documents:
        if not isinstance(doc, dict):
            continue
        items = doc.get("items")
        if isinstance(items, list) and str(doc.get("kind", "")).endswith("List"):
            item_nodes = _items_nodes(node, len(items))
            for item, item_node in zip(items, item_nodes):
                if isinstance(item, dict):
                    located.append((item, _line_of(item_node, _line_of(node, 1))))
        else:
            located.append((doc, _line_of(node, 1)))
    return located


def _read_text(path: Path) -> str:
    try:
        if path.stat().st_size > _MAX_FILE_BYTES:
            raise NotAManifest(f"larger than {_MAX_FILE_BYTES // (1024 * 1024)} MB, not a manifest")
        content = path.read_bytes()
    except OSError as exc:
        raise NotAManifest(f"cannot read ({exc.strerror or exc})") from None
    if b"\x00" in content:
        raise NotAManifest("binary file, not a YAML manifest")
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise NotAManifest("not UTF-8 text, not a YAML manifest") from None


def _yaml_documents(text: str) -> list[tuple[object, yaml.Node]]:
    """Each document with its node, whose marks give the lines (what yaml.safe_load_all does, kept)."""
    loader = _YAML_LOADER(text)
    try:
        documents = []
        while loader.check_node():
            node = loader.get_node()
            documents.append((loader.construct_document(node), node))
        return documents
    finally:
        loader.dispose()


def _json_documents(text: str) -> list[tuple[object, yaml.Node | None]]:
    """The values come from json (YAML 1.1 would read 1e5 as a string); the lines from the YAML node tree.

    Valid JSON has tabs only between tokens (a tab in a string must be escaped), and YAML refuses them
    there, so they become spaces for the line-finding pass, which changes no line number.
    """
    value = json.loads(text)
    try:
        node = yaml.compose(text.replace("\t", " "), Loader=_YAML_LOADER)
    except yaml.YAMLError:
        node = None  # JSON that YAML cannot read: objects are placed at line 1
    return [(value, node)]


def _items_nodes(node: yaml.Node | None, count: int) -> list[yaml.Node | None]:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if getattr(key, "value", None) == "items" and isinstance(value, yaml.SequenceNode):
                return list(value.value)
    return [None] * count


def _line_of(node: yaml.Node | None, default: int) -> int:
    return node.start_mark.line + 1 if node is not None and node.start_mark is not None else default


def _parse_problem(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON (line {exc.lineno}): {exc.msg}"
    if isinstance(exc, RecursionError):
        return "nested too deeply to read"
    where = getattr(exc, "problem_mark", None)
    line = f" (line {where.line + 1})" if where is not None else ""
    return f"invalid YAML{line}: {getattr(exc, 'problem', None) or exc}"


def is_kubernetes_object(doc: dict) -> bool:
    metadata = doc.get("metadata")
    return (
        isinstance(doc.get("kind"), str)
        and isinstance(doc.get("apiVersion"), str)
        and isinstance(metadata, dict)
        and isinstance(metadata.get("name"), str)
    )


def _not_an_object_reason(documents: list[tuple[dict, int]]) -> str:
    """Why a file that parsed holds no API object, in the words a user would look for."""
    if any(doc.get("kind") == "Kustomization" for doc, _ in documents):
        return "a kustomize Kustomization, not an API object: analyse what `kubectl kustomize` renders"
    if not documents:
        return "no YAML documents (empty file)"
    unnamed = sorted({doc["kind"] for doc, _ in documents if isinstance(doc.get("kind"), str) and doc.get("apiVersion")})
    if unnamed:
        return f"{', '.join(unnamed)} without metadata.name: not an object the API server would accept"
    return "no Kubernetes objects (no document has apiVersion, kind and metadata.name)"


# --- the bundle --------------------------------------------------------------------------------------------


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


def read_manifests(paths: Iterable[str | Path]) -> ManifestSet:
    """Load files and directories; a named file that is no manifest raises, a file found in a directory is a gap."""
    paths = list(paths)
    located: list[tuple[dict, SourceLocation]] = []
    skipped: dict[Path, str] = {}
    analysed: list[Path] = []
    not_read: list[tuple[Path, int, Path]] = []  # (directory, how many other files, an example)
    seen: set[Path] = set()  # a file named and also inside a named directory is read once
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise BundleError(f"{path}: no such file or directory")
        if path.is_dir():
            candidates, others = walk_directory(path)
            if others:
                not_read.append((path, len(others), others[0]))
            files = [(file, False) for file in candidates]
        else:
            files = [(path, True)]
        for file, explicit in files:
            if file.resolve() in seen:
                continue
            seen.add(file.resolve())
            reason, objects = _objects_of(file, explicit)
            if reason is not None:
                skipped[file] = reason
            if objects:
                analysed.append(file)
                located.extend((doc, SourceLocation(file, line)) for doc, line in objects)
    if not located:
        first = next(iter(skipped.items()), None)
        detail = f" ({len(skipped)} file(s) skipped, e.g. {first[0]}: {first[1]})" if first else ""
        raise BundleError(f"no Kubernetes objects found in {', '.join(str(p) for p in paths)}{detail}")
    bundle = bundle_from_objects([doc for doc, _ in located], {"kind": "manifests", "paths": [str(f) for f in analysed]})
    gap_files = {Gap(f"file {file}", reason): file for file, reason in skipped.items()}
    bundle.gaps.extend(gap_files)
    for directory, count, example in not_read:
        bundle.add_gap(f"directory {directory}",
                       f"{count} file(s) not named *.yaml, *.yml or *.json were not read (e.g. {example.name})")
    sources: dict[tuple[str, str | None, str], list[SourceLocation]] = defaultdict(list)
    for doc, where in located:  # after bundle_from_objects: namespaces are defaulted as the checks see them
        meta = doc["metadata"]
        sources[(doc["kind"], meta.get("namespace"), meta["name"])].append(where)
    return ManifestSet(bundle, dict(sources), gap_files)


def _objects_of(file: Path, explicit: bool) -> tuple[str | None, list[tuple[dict, int]]]:
    """(why the file, or part of it, was skipped; its objects with their lines)."""
    chart = None if explicit else helm_chart_of(file)
    if chart is not None:
        return f"a template of the Helm chart {chart}: analyse what `helm template` renders", []
    try:
        documents = read_located_documents(file)
    except NotAManifest as exc:
        if explicit:
            raise BundleError(f"{file}: {exc}") from None
        return str(exc), []
    objects = [(doc, line) for doc, line in documents if is_kubernetes_object(doc)]
    if not objects:
        return _not_an_object_reason(documents), []
    others = [line for doc, line in documents if not is_kubernetes_object(doc)]
    if others:
        lines = ", ".join(str(line) for line in others[:5]) + (", ..." if len(others) > 5 else "")
        return f"{len(others)} document(s) without apiVersion, kind and metadata.name skipped (line {lines})", objects
    return None, objects


def load_manifests(paths: Iterable[str | Path]) -> EvidenceBundle:
    return read_manifests(paths).bundle
