"""Load a check case (see tests/cases/README.md) into an evidence bundle plus its expectations."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from kubectl_meshdoctor.evidence import ProxyEvidence, evidence_in, from_plain
from kubectl_meshdoctor.findings import Finding
from kubectl_meshdoctor.manifests import bundle_from_objects, is_kubernetes_object, read_documents

TEST_API = "meshdoctor.test/v1"
DEFAULT_NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


@dataclass
class Case:
    path: Path
    code: str
    outcome: str  # "fires" or "clean"
    now: datetime = DEFAULT_NOW
    ca_warn_days: int = 30
    expect: list[dict] = field(default_factory=list)

    def matches(self, finding: Finding, expected: dict) -> bool:
        subject = finding.subject
        name = f"{subject.kind}/{subject.namespace}/{subject.name}" if subject.namespace else f"{subject.kind}/{subject.name}"
        return (
            finding.code == self.code
            and ("subject" not in expected or expected["subject"] == name)
            and ("pod" not in expected or expected["pod"] == finding.pod)
            and ("severity" not in expected or expected["severity"] == finding.severity.value)
        )


def load_case(path: Path):
    code = path.parent.name
    outcome = path.name.split("-", 1)[0]
    case = Case(path=path, code=code, outcome=outcome)
    objects, proxies, extra_available, scope = [], {}, set(), "manifests"
    clusters: list[tuple[dict, list, dict]] = []  # multi-cluster cases: (Cluster document, objects, proxies)
    for doc in read_documents(path):
        if doc.get("apiVersion") == TEST_API and doc.get("kind") == "Case":
            if "now" in doc:
                case.now = datetime.fromisoformat(str(doc["now"]).replace("Z", "+00:00"))
            case.ca_warn_days = int(doc.get("caWarnDays", 30))
            case.expect = list(doc.get("expect") or [])
            extra_available |= set(doc.get("available") or [])
            scope = str(doc.get("scope") or scope)
        elif doc.get("apiVersion") == TEST_API and doc.get("kind") == "ProxyEvidence":
            fields = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind")}
            proxy = from_plain(ProxyEvidence, fields)
            (clusters[-1][2] if clusters else proxies)[proxy.pod] = proxy
        elif doc.get("apiVersion") == TEST_API and doc.get("kind") == "Cluster":
            clusters.append((doc, [], {}))  # the documents that follow belong to this cluster
        elif is_kubernetes_object(doc):
            (clusters[-1][1] if clusters else objects).append(doc)
    if clusters:
        return _multi_cluster(path, clusters), case
    bundle = bundle_from_objects(objects, {"kind": scope, "paths": [str(path)]})
    bundle.proxies = proxies
    bundle.available |= extra_available
    for proxy in proxies.values():
        bundle.available |= evidence_in(proxy)
    return bundle, case


def _multi_cluster(path: Path, clusters: list[tuple[dict, list, dict]]):
    """A case of several clusters: each ``Cluster`` document (context, optional server, clusterz, endpoints),
    its objects and its ProxyEvidence."""
    from kubectl_meshdoctor.multibundle import ClusterEvidence, MultiClusterBundle, mesh_identity

    evidence = []
    for doc, objects, proxies in clusters:
        bundle = bundle_from_objects(objects, {"kind": "manifests", "paths": [str(path)]})
        bundle.proxies = proxies
        bundle.available |= set(doc.get("available") or [])
        for proxy in proxies.values():
            bundle.available |= evidence_in(proxy)
        evidence.append(ClusterEvidence(str(doc["context"]), bundle, identity=mesh_identity(bundle),
                                        server=doc.get("server"), clusterz=doc.get("clusterz"),
                                        endpoints=doc.get("endpoints"), trust_anchor=doc.get("trustAnchor")))
    return MultiClusterBundle(evidence)
