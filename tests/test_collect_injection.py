"""The reads behind MD0103/MD0206 (injector webhooks, FailedCreate events, istiod's Deployment, PDBs and
HPAs) against the lab API server: what is asked for, what is saved, and refusals becoming gaps."""

from __future__ import annotations

from kubectl_meshdoctor.analysis import analyze
from kubectl_meshdoctor.bundle import EvidenceBundle
from kubectl_meshdoctor.collect import collect_evidence
from kubectl_meshdoctor.evidence import Evidence
from kubectl_meshdoctor.lab.apiserver import AccessPolicy
from test_collect_support import lab_cluster, shop_objects

NEW_READS = {"mutatingwebhookconfigurations", "events", "deployments", "poddisruptionbudgets",
             "horizontalpodautoscalers"}
NEW_EVIDENCE = {Evidence.INJECTION_WEBHOOKS, Evidence.FAILED_CREATE_EVENTS, Evidence.CONTROL_PLANE_REDUNDANCY}


def _objects() -> list[dict]:
    failing = {"apiVersion": "v1", "kind": "Event",
               "metadata": {"name": "cart-6b9c4d7f8.1", "namespace": "shop"},
               "involvedObject": {"kind": "ReplicaSet", "namespace": "shop", "name": "cart-6b9c4d7f8"},
               "reason": "FailedCreate", "type": "Warning", "count": 3,
               "message": 'Error creating: Internal error occurred: failed calling webhook '
                          '"namespace.sidecar-injector.istio.io": failed to call webhook: Post '
                          '"https://istiod.istio-system.svc:443/inject?timeout=10s": context deadline exceeded'}
    scheduled = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "web-1.2", "namespace": "shop"},
                 "involvedObject": {"kind": "Pod", "namespace": "shop", "name": "web-1"}, "reason": "Scheduled",
                 "type": "Normal", "message": "Successfully assigned shop/web-1 to node-1"}
    webhook = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
               "metadata": {"name": "istio-sidecar-injector", "labels": {"istio.io/rev": "default"}},
               "webhooks": [{"name": "namespace.sidecar-injector.istio.io", "namespaceSelector": {
                   "matchLabels": {"istio-injection": "enabled"}}}]}
    istiod = {"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "istiod", "namespace": "istio-system", "labels": {"app": "istiod"}},
              "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "istiod"}},
                       "template": {"metadata": {"labels": {"app": "istiod", "istio": "pilot"}}}}}
    unrelated = {"apiVersion": "apps/v1", "kind": "Deployment",
                 "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
                 "spec": {"selector": {"matchLabels": {"app": "web"}}}}
    return shop_objects() + [failing, scheduled, webhook, istiod, unrelated]


def test_new_reads_are_narrow_saved_and_replayed(tmp_path):
    with lab_cluster(tmp_path, _objects()) as lab:
        bundle = collect_evidence(lab.options())
        paths = [(r.path, r.query) for r in lab.server.requests if r.verb == "list"]

    assert NEW_EVIDENCE <= bundle.available
    kinds = {(o["kind"], o["metadata"]["name"]) for o in bundle.objects}
    assert ("Event", "cart-6b9c4d7f8.1") in kinds and ("Event", "web-1.2") not in kinds  # FailedCreate only
    assert ("MutatingWebhookConfiguration", "istio-sidecar-injector") in kinds
    assert ("Deployment", "istiod") in kinds and ("Deployment", "web") not in kinds  # istiod's, not the apps'
    assert any(p == "/api/v1/namespaces/shop/events" and "fieldSelector=reason%3DFailedCreate" in q for p, q in paths)
    report = analyze(EvidenceBundle.load(bundle.save(tmp_path / "saved.tgz")))
    codes = {(f.code, str(f.subject)) for f in report.findings}
    assert ("MD0103", "ReplicaSet shop/cart-6b9c4d7f8") in codes
    assert ("MD0206", "Deployment istio-system/istiod") in codes


def test_refused_new_reads_are_gaps_not_errors(tmp_path):
    policy = AccessPolicy(forbidden_resources=set(NEW_READS))
    with lab_cluster(tmp_path, _objects(), policy=policy) as lab:
        bundle = collect_evidence(lab.options())

    assert not NEW_EVIDENCE & bundle.available
    reasons = " | ".join(f"{g.what}: {g.reason}" for g in bundle.gaps)
    assert "forbidden: cannot list mutatingwebhookconfigurations.admissionregistration.k8s.io" in reasons
    assert "forbidden: cannot list events in namespace shop" in reasons
    assert "forbidden: cannot list deployments.apps in namespace istio-system" in reasons
    assert Evidence.PROXY_CONFIG in bundle.available  # the rest of the sweep went on
    report = analyze(bundle)
    assert {s.check for s in report.skipped} >= {"ControlPlaneNotRedundant"}
    assert not [f for f in report.findings if f.code in ("MD0103", "MD0206")]
