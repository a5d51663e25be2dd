"""Pods outside the mesh are reported as such, with the reason and, for one pod, its server side."""

from __future__ import annotations

import io
from pathlib import Path

from caseloader import load_case
from kubectl_meshdoctor.analysis import analyze
from kubectl_meshdoctor.bundle import EvidenceBundle
from kubectl_meshdoctor.evidence import Evidence
from kubectl_meshdoctor.report.terminal import make_console, print_report

CASES = Path(__file__).parent / "cases"


def _pod(name: str, namespace: str, labels: dict | None = None, meshed: bool = False) -> dict:
    containers = [{"name": "app"}] + ([{"name": "istio-proxy"}] if meshed else [])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace,
            "labels": labels or {}}, "spec": {"containers": containers}, "status": {"phase": "Running"}}


def _namespace(name: str, labels: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def _render(report) -> str:
    out = io.StringIO()
    print_report(report, make_console(out, color=False))
    return out.getvalue()


def test_unmeshed_pods_say_why_and_are_not_healthy():
    objects = [_namespace("web", {"istio-injection": "enabled"}), _namespace("legacy", {}),
               _pod("front", "web", meshed=True), _pod("batch", "web", {"sidecar.istio.io/inject": "false"}),
               _pod("old", "legacy")]
    bundle = EvidenceBundle(scope={"kind": "all-namespaces"}, objects=objects,
                            available={Evidence.PODS, Evidence.NAMESPACES, Evidence.SERVICES})
    report = analyze(bundle)
    status = {p.pod: (p.status, p.reason) for p in report.pods}
    assert status["web/front"] == ("healthy", None)
    assert status["web/batch"] == ("unmeshed", "opted out: label sidecar.istio.io/inject=false")
    assert status["legacy/old"][0] == "unmeshed" and "namespace legacy has no injection label" in status["legacy/old"][1]
    document = report.to_dict()["pods"]
    assert next(p for p in document if p["pod"] == "web/batch")["reason"].startswith("opted out")
    assert "status" in document[0] and "reason" not in next(p for p in document if p["pod"] == "web/front")
    text = _render(report)
    assert "web/batch  unmeshed  opted out: label sidecar.istio.io/inject=false" in text


def test_manifests_pods_are_not_called_unmeshed():
    bundle = EvidenceBundle(scope={"kind": "manifests"}, objects=[_pod("x", "web")], available={Evidence.PODS})
    assert [p.status for p in analyze(bundle).pods] == ["healthy"]


def test_the_redis_server_view_leads_to_md0401_from_its_own_name():
    bundle, case = load_case(CASES / "MD0401/fires-server-view-unmeshed-redis-by-name.yaml")
    bundle.scope = {"kind": "pod", "namespace": "cache-demo", "pod": "redis-0", "pods": ["cache-demo/redis-0"]}
    bundle.available.add(Evidence.ISTIO_CONFIG)
    report = analyze(bundle, now=case.now)
    (pod,) = report.pods
    assert pod.status == "failing" and pod.root_causes == ("MD0401",)
    cause = next(f for f in report.findings if f.code == "MD0401")
    assert cause.message == "Service cache-demo/redis is reached with Istio mTLS but its pods have no sidecar"
    assert "DestinationRule cache-demo/redis trafficPolicy.tls.mode: ISTIO_MUTUAL" in cause.evidence


def test_an_unmeshed_server_without_trouble_shows_its_server_side():
    bundle, case = load_case(CASES / "MD0401/clean-server-view-auto-mtls-and-disable.yaml")
    bundle.scope = {"kind": "pod", "namespace": "data", "pod": "memcached-0", "pods": ["data/memcached-0"]}
    bundle.available |= {Evidence.ISTIO_CONFIG, Evidence.NAMESPACES}
    report = analyze(bundle, now=case.now)
    (pod,) = report.pods
    assert pod.status == "unmeshed"
    assert pod.server == ("Service data/memcached: DestinationRule data/memcached tls DISABLE",
                          "no PeerAuthentication: PERMISSIVE, not enforced (no sidecar)")
    text = _render(report)
    assert "| Service data/memcached: DestinationRule data/memcached tls DISABLE" in text
