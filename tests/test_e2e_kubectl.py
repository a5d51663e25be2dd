"""End to end through the real kubectl: the plugin diagnoses every seed story of the lab.

One lab holds every seed scenario (real Envoy sidecars, our Kubernetes API). kubectl finds the plugin
on PATH and runs it with the lab's kubeconfig, exactly as a user would. The lab records every request,
which proves the plugin is read-only and execs only its documented commands.
"""

from __future__ import annotations

import json
import os
import re
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
    ("orders", "MD0203", "checkout"),  # configured, then istiod-stable crashed: MD0204 <- MD0203
    ("treasury", "MD0404", "teller"),  # a botched root rotation: teller still trusts the old root
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


def test_the_plugin_is_read_only_and_execs_only_its_documented_commands(lab, sweep_all):
    from kubectl_meshdoctor.collect.proxy import ALLOWED_EXEC, ISTIOD_CONTAINER

    # every test above ran first (module order); their requests are all in the lab's log
    requests = list(lab.requests)
    verbs = {r.verb for r in requests}
    assert verbs <= {"get", "list", "log", "exec", "discovery"}, verbs
    assert not [r for r in requests if r.method not in ("GET",)], "only GETs (exec upgrades over GET)"
    execs = [parse_qs(r.query) for r in requests if r.verb == "exec"]
    assert execs, "the sweep must have exec'd into istio-proxy"
    for query in execs:
        (container,) = query["container"]
        assert tuple(query["command"]) in ALLOWED_EXEC[container], (container, query["command"])
    # ConfigMaps: only istio-ca-root-cert, by name, never listed
    config_maps = [r for r in requests if "/configmaps" in r.path]
    assert config_maps and all(r.verb == "get" and r.path.endswith("/configmaps/istio-ca-root-cert")
                               for r in config_maps), [(r.verb, r.path) for r in config_maps]
    # istiod's discovery container is asked for /debug/syncz only, and only where it runs
    assert [q for q in execs if q["container"] == [ISTIOD_CONTAINER]]


def test_proxy_version_skew_names_the_release_gap_and_the_restart(lab):
    name = lab.pods("reports", "report-gen")[0]
    result = kubectl_meshdoctor(lab, "pod", name, "-n", "reports", "-o", "json", "--fail-on", "warning")
    assert result.returncode == 1, result.stdout + result.stderr
    skew = [f for f in json.loads(result.stdout)["findings"] if f["code"] == "MD0205"]
    assert [f["severity"] for f in skew] == ["warning"], skew
    assert skew[0]["message"].startswith("istio-proxy 1.22.1 against istiod 1.24.2 (revision default): 2 minor")
    assert "/server_info node metadata ISTIO_VERSION: 1.22.1" in skew[0]["evidence"]
    assert "kubectl rollout restart deployment/report-gen -n reports" in skew[0]["remediation"]
    # one minor behind is supported: nothing said about ledger-export
    ledger = lab.pods("reports", "ledger-export")[0]
    result = kubectl_meshdoctor(lab, "pod", ledger, "-n", "reports", "-o", "json")
    assert result.returncode == 0 and not [f for f in json.loads(result.stdout)["findings"] if f["code"] == "MD0205"]


def test_disconnected_sidecars_stay_ready_and_lead_to_the_istiod_that_went_away(sweep_all):
    pods = [p for p in sweep_all["pods"] if p["pod"].startswith("orders/")]
    assert len(pods) == 3
    for pod in pods:
        chain = {f["code"]: f for f in sweep_all["findings"] if f["pod"] == pod["pod"]}
        assert "MD0201" not in chain and "MD0102" not in chain  # configured and READY: not the 1/2 story
        assert chain["MD0204"]["causedBy"] == ["MD0203"] and not chain["MD0204"]["rootCause"]
        evidence = "\n".join(chain["MD0204"]["evidence"])
        # the lab's REST poll may count a second success before its server stops; then only failures
        assert re.search(r"update_success [1-9]\d*, update_failure [1-9]", evidence), evidence
        assert "readiness still 200" in evidence
        assert "no istiod pod lists this proxy in /debug/syncz" in evidence
        status = pod["proxyStatus"]
        assert status["istiod"] == {"connected": False, "istiod": None}
        assert status["envoy"]["CDS"]["updateFailure"] > 0 and status["envoy"]["istiodConnections"] == 0
        assert status["envoy"]["RDS"]["routeConfigs"] > 0


def test_healthy_pods_are_synced_from_both_sides(sweep_all):
    pods = [p for p in sweep_all["pods"] if p["pod"].startswith("bookinfo/")]
    assert len(pods) == 6
    for pod in pods:
        istiod, envoy = pod["proxyStatus"]["istiod"], pod["proxyStatus"]["envoy"]
        assert istiod["connected"] and istiod["istiod"].startswith("istio-system/istiod-")
        assert (istiod["CDS"], istiod["LDS"], istiod["RDS"]) == ("SYNCED", "SYNCED", "SYNCED")
        assert envoy["CDS"]["updateFailure"] == 0 and envoy["CDS"]["version"] and envoy["LDS"]["lastUpdated"]


def test_root_rotation_story_groups_pods_by_root_and_explains_the_tls_failures(sweep_all):
    teller = next(p for p in sweep_all["pods"] if p["pod"].startswith("treasury/teller-"))
    chain = {f["code"]: f for f in sweep_all["findings"] if f["pod"] == teller["pod"]}
    assert chain["MD0404"]["rootCause"] and "not the root istiod publishes in istio-ca-root-cert" in chain["MD0404"]["message"]
    assert "MD0404" in chain["MD0601"]["causedBy"]
    evidence = "\n".join(chain["MD0404"]["evidence"])
    assert "pods by trusted root across the sweep" in evidence and "CERTIFICATE_VERIFY_FAILED" in evidence
    ledger = next(p for p in sweep_all["pods"] if p["pod"].startswith("treasury/vault-ledger-"))
    assert not [f for f in sweep_all["findings"] if f["pod"] == ledger["pod"] and f["code"] == "MD0404"]
