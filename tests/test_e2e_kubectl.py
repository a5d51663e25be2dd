"""End to end through the real kubectl: the plugin diagnoses every seed story of the lab.

One lab holds every seed scenario (real Envoy sidecars, our Kubernetes API). kubectl finds the plugin
on PATH and runs it with the lab's kubeconfig, exactly as a user would. The lab records every request,
which proves the plugin is read-only and execs only its documented commands.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs

import pytest

pytestmark = pytest.mark.lab

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
BIN_DIR = Path(sys.executable).parent
# (scenario namespace, the root cause its pods must reach, an app of that namespace to diagnose by name)
STORIES = [
    ("shop", "MD0301", "cart"),
    ("payments-prod", "MD0203", "ledger"),
    ("cache-demo", "MD0401", "session-api"),
    ("storefront", "MD0501", "web"),
    ("billing", "MD0402", "invoicer"),
    ("inventory", "MD0403", "warehouse"),
]


@pytest.fixture(scope="module")
def lab():
    if not Path(KUBECTL).exists():
        pytest.skip("kubectl is not installed")
    if not (BIN_DIR / "kubectl-meshdoctor").exists():
        pytest.skip("the kubectl-meshdoctor script is not installed next to this Python (pip install .)")
    from kubectl_meshdoctor.lab.lab import Lab
    from kubectl_meshdoctor.lab.scenario import scenario_names

    with Lab(list(scenario_names())) as running:
        yield running


def kubectl_meshdoctor(lab, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KUBECONFIG": str(lab.kubeconfig), "PATH": f"{BIN_DIR}{os.pathsep}{os.environ.get('PATH', '')}",
           "NO_COLOR": "1"}
    return subprocess.run([KUBECTL, "meshdoctor", *args], env=env, capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def sweep_all(lab):
    result = kubectl_meshdoctor(lab, "namespace", "sweep", "-A", "-o", "json")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("namespace, root_cause, _app", STORIES)
def test_sweep_reaches_each_story_root_cause(sweep_all, namespace, root_cause, _app):
    pods = [p for p in sweep_all["pods"] if p["pod"].startswith(f"{namespace}/")]
    affected = [p for p in pods if root_cause in p["rootCauses"]]
    assert affected, (namespace, pods)
    assert all(p["status"] in ("failing", "degraded") for p in affected)
    # every affected pod is listed under a group of that cause (shared causes share one group)
    grouped = {pod for g in sweep_all["rootCauseGroups"] if g["code"] == root_cause for pod in g["pods"]}
    assert {p["pod"] for p in affected} <= grouped, grouped


def test_sweep_meets_every_scenario_expectation(lab, sweep_all):
    findings = sweep_all["findings"]
    for scenario, expectations in lab.scenario_expectations().items():
        for expected in expectations:
            matching = [f for f in findings if f["code"] == expected["code"]]
            subject = expected.get("subject")
            if subject:
                matching = [f for f in matching if f["subject"] == {"kind": subject["kind"],
                            "namespace": subject.get("namespace"), "name": subject["name"]}]
            for app in expected.get("apps") or ():
                pods = {f"{expected['namespace']}/{name}" for name in lab.pods(expected["namespace"], app)}
                assert pods & {f["pod"] for f in matching}, (scenario, expected, app)
            assert matching, (scenario, expected)


def test_dns_story_groups_all_pods_under_the_changed_cluster_ip(sweep_all):
    group = next(g for g in sweep_all["rootCauseGroups"] if g["code"] == "MD0301")
    assert group["message"] == "cluster DNS ClusterIP changed (kube-dns 172.19.0.10 → 172.19.9.54)"
    assert group["subject"] == {"kind": "Service", "namespace": "kube-system", "name": "kube-dns"}
    assert len(group["pods"]) == 8
    chain = {f["code"]: f for f in sweep_all["findings"] if f["pod"] == group["pods"][0]}
    assert chain["MD0102"]["causedBy"] == ["MD0201"] and chain["MD0201"]["causedBy"] == ["MD0301"]
    assert chain["MD0301"]["rootCause"] and "/etc/resolv.conf: nameserver 172.19.0.10" in chain["MD0301"]["evidence"]


def test_healthy_bookinfo_sweep_exits_0_without_error_findings(lab):
    result = kubectl_meshdoctor(lab, "namespace", "sweep", "-n", "bookinfo", "-o", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert len(report["pods"]) == 6 and {p["status"] for p in report["pods"]} == {"healthy"}
    assert not [f for f in report["findings"] if f["severity"] == "error"], report["findings"]


@pytest.mark.parametrize("namespace, root_cause, app", STORIES)
def test_pod_command_reaches_the_same_root_cause(lab, namespace, root_cause, app):
    name = lab.pods(namespace, app)[0]
    result = kubectl_meshdoctor(lab, "pod", name, "-n", namespace, "-o", "json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert [p["pod"] for p in report["pods"]] == [f"{namespace}/{name}"]
    assert root_cause in report["pods"][0]["rootCauses"], report["pods"]
    assert any(f["code"] == root_cause and f["rootCause"] for f in report["findings"])


def test_table_view_leads_with_the_shared_root_cause(lab):
    result = kubectl_meshdoctor(lab, "namespace", "sweep", "-n", "shop")
    assert result.returncode == 1, result.stderr
    first_cause = result.stdout.split("ROOT CAUSES", 1)[1].strip().splitlines()[0]
    assert "8 pods: cluster DNS ClusterIP changed (kube-dns 172.19.0.10 → 172.19.9.54)" in first_cause
    assert "\x1b[" not in result.stdout


def test_unknown_pod_is_a_usage_error_through_kubectl(lab):
    result = kubectl_meshdoctor(lab, "pod", "no-such-pod", "-n", "shop")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error:") and "no-such-pod" in result.stderr
    assert "Traceback" not in result.stderr


def test_redis_without_sidecar_examined_by_its_own_name(lab):
    result = kubectl_meshdoctor(lab, "pod", "redis-0", "-n", "cache-demo", "-o", "json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    (pod,) = report["pods"]
    assert pod["pod"] == "cache-demo/redis-0" and pod["status"] == "failing" and pod["rootCauses"] == ["MD0401"]
    assert pod["reason"] == "opted out: label sidecar.istio.io/inject=false"
    cause = next(f for f in report["findings"] if f["code"] == "MD0401")
    assert cause["pod"] == "cache-demo/redis-0" and cause["rootCause"]
    assert cause["subject"] == {"kind": "Service", "namespace": "cache-demo", "name": "redis"}
    assert "DestinationRule cache-demo/redis trafficPolicy.tls.mode: ISTIO_MUTUAL" in cause["evidence"]
    table = kubectl_meshdoctor(lab, "pod", "redis-0", "-n", "cache-demo").stdout
    assert "Service cache-demo/redis is reached with Istio mTLS but its pods have no sidecar" in table
    assert "pod cache-demo/redis-0 has no istio-proxy: it cannot terminate Istio mTLS" in table
    assert "| no istio-proxy: opted out: label sidecar.istio.io/inject=false" in table
    assert "| Service cache-demo/redis (headless): DestinationRule cache-demo/redis tls ISTIO_MUTUAL" in table


def test_pods_outside_the_mesh_are_unmeshed_with_the_reason(sweep_all):
    pods = {p["pod"]: p for p in sweep_all["pods"]}
    coredns = next(p for k, p in pods.items() if k.startswith("kube-system/coredns-"))
    assert coredns["status"] == "unmeshed" and coredns["reason"] == "namespace kube-system is never injected"
    assert all("reason" not in p for p in sweep_all["pods"] if p["status"] != "unmeshed" and
               not p["pod"].startswith(("cache-demo/redis", "checkout-prod/")))


def test_injection_failure_explains_the_missing_sidecar_by_pod_name(lab, sweep_all):
    name = lab.pods("checkout-prod", "fraud-check")[0]
    result = kubectl_meshdoctor(lab, "pod", name, "-n", "checkout-prod", "-o", "json")
    assert result.returncode == 0, result.stdout + result.stderr  # warnings only: the pod runs, unmeshed
    report = json.loads(result.stdout)
    chain = {f["code"]: f for f in report["findings"]}
    assert chain["MD0101"]["causedBy"] == ["MD0103"] and chain["MD0103"]["rootCause"]
    assert "created before injection applied" in chain["MD0103"]["message"]
    refused = next(f for f in sweep_all["findings"] if f["code"] == "MD0103" and f["pod"] is None)
    assert refused["severity"] == "error" and refused["subject"]["name"] == "payment-gateway-59d8c7b6f4"
    assert "no endpoints available for service" in refused["message"]


def test_uid_conflict_and_port_protocol_conflict_group_under_their_deployment(lab):
    result = kubectl_meshdoctor(lab, "namespace", "sweep", "-n", "reporting")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 pods: Deployment reporting/report-builder: an application container runs as UID 1337" in result.stdout
    result = kubectl_meshdoctor(lab, "namespace", "sweep", "-n", "broadcast", "--fail-on", "warning", "-o", "json")
    assert result.returncode == 1, result.stderr
    conflict = next(f for f in json.loads(result.stdout)["findings"] if f["code"] == "MD0511")
    assert conflict["subject"] == {"kind": "Deployment", "namespace": "broadcast", "name": "segmenter"}
    assert "istiod keeps the oldest Service's protocol: segmenter (http, created 2026-09-14T10:00:00Z)" \
        in conflict["evidence"]


def test_single_replica_istiod_is_a_warning_for_its_revision_only(sweep_all):
    found = [f for f in sweep_all["findings"] if f["code"] == "MD0206"]
    assert [f["subject"]["name"] for f in found] == ["istiod-solo"]
    assert found[0]["severity"] == "warning" and all(p.startswith("ops-tools/") for p in found[0]["affects"])


def _rbac_grants() -> set[tuple[str, str, str]]:
    """(API group, resource, verb) the ClusterRoles of deploy/rbac.yaml grant."""
    import yaml

    grants = set()
    for document in yaml.safe_load_all((Path(__file__).parents[1] / "deploy" / "rbac.yaml").read_text()):
        if document and document["kind"] == "ClusterRole":
            for rule in document["rules"]:
                grants |= {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    return grants


def test_every_request_is_granted_by_the_documented_rbac(lab, sweep_all):
    grants = _rbac_grants()
    needed = set()
    for request in lab.requests:
        if request.verb == "discovery":
            continue
        parts = request.path.strip("/").split("/")
        group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
        if rest[:1] == ["namespaces"] and len(rest) > 2:
            rest = rest[2:]  # namespaced resource
        resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
        verb = {"exec": "create", "log": "get"}.get(request.verb, request.verb)
        needed.add((group, resource, verb))
    assert needed - grants == set(), sorted(needed - grants)
    # the reads behind MD0103 and MD0206 were made, and are granted
    for read in [("", "events", "list"), ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "list"),
                 ("apps", "deployments", "list"), ("policy", "poddisruptionbudgets", "list"),
                 ("autoscaling", "horizontalpodautoscalers", "list")]:
        assert read in needed, read


def test_the_plugin_is_read_only_and_execs_only_its_documented_commands(lab, sweep_all):
    from kubectl_meshdoctor.collect.proxy import ALL_COMMANDS

    # every test above ran first (module order); their requests are all in the lab's log
    requests = list(lab.requests)
    verbs = {r.verb for r in requests}
    assert verbs <= {"get", "list", "log", "exec", "discovery"}, verbs
    assert not [r for r in requests if r.method not in ("GET",)], "only GETs (exec upgrades over GET)"
    execs = [parse_qs(r.query) for r in requests if r.verb == "exec"]
    assert execs, "the sweep must have exec'd into istio-proxy"
    for query in execs:
        assert tuple(query["command"]) in ALL_COMMANDS, query["command"]
        assert query["container"] == ["istio-proxy"]
