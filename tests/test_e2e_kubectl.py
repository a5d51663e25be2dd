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
    ("checkout", "MD0503", "checkout-web"),
    ("helpdesk", "MD0504", "ticket-ui"),
    ("fintech", "MD0505", "settlement-worker"),
    ("search", "MD0506", "search-frontend"),
    ("alerts", "MD0507", "incident-bot"),
    ("pricing", "MD0508", "pricing-api"),
    ("warehouse-ops", "MD0509", "label-printer"),
    ("reports", "MD0510", "report-builder"),
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
                if expected.get("causedBy"):  # the symptom links to its cause in the JSON the user gets
                    assert any(expected["causedBy"] in f["causedBy"] and not f["rootCause"]
                               for f in matching if f["pod"] in pods), (scenario, expected, app)
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


# --- pod NAME --trace: one request walked hop by hop, through the real kubectl ---------------------------


def trace(lab, namespace: str, app: str, target: str, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    result = kubectl_meshdoctor(lab, "pod", lab.pods(namespace, app)[0], "-n", namespace, "--trace", target,
                                "-o", "json", *extra)
    assert "Traceback" not in result.stderr
    return result, json.loads(result.stdout)


def by_step(document: dict) -> dict[str, dict]:
    return {hop["step"]: hop for hop in document["hops"]}


@pytest.mark.parametrize("target, cluster", [
    ("details:9080/details/0", "outbound|9080||details.bookinfo.svc.cluster.local"),
    ("reviews.bookinfo.svc.cluster.local:9080/reviews/0", "outbound|9080|v1|reviews.bookinfo.svc.cluster.local"),
    ("ratings/ratings/0", "outbound|9080|v1|ratings.bookinfo.svc.cluster.local"),
])
def test_trace_on_healthy_bookinfo_passes_every_hop_to_a_ready_endpoint(lab, target, cluster):
    result, document = trace(lab, "bookinfo", "productpage", target)
    assert result.returncode == 0, result.stdout + result.stderr
    steps = by_step(document)
    assert document["verdict"] == "ok" and [h["verdict"] for h in document["hops"]] == ["ok"] * 6
    assert steps["listener"]["data"]["listener"] == "0.0.0.0_9080"
    assert steps["cluster"]["data"]["cluster"] == cluster
    pods = {p["metadata"]["name"]: p for p in lab.objects if p["kind"] == "Pod"}
    for endpoint in steps["endpoints"]["data"]["endpoints"]:
        conditions = pods[endpoint["pod"]]["status"]["conditions"]
        assert {"type": "Ready", "status": "True"} in [{k: c[k] for k in ("type", "status")} for c in conditions]
    assert "Istio mTLS" in steps["tls"]["summary"] and "STRICT" in steps["server"]["evidence"][0]


def test_trace_follows_the_header_route_of_the_virtual_service(lab):
    _, document = trace(lab, "bookinfo", "productpage", "reviews:9080/reviews/0", "-H", "end-user: jason")
    assert by_step(document)["cluster"]["data"]["cluster"] == "outbound|9080|v2|reviews.bookinfo.svc.cluster.local"


def test_trace_stops_at_the_missing_subset_cluster_that_real_envoy_answered_nc_for(lab, sweep_all):
    result, document = trace(lab, "storefront", "web", "catalog:8080/api/items")
    assert result.returncode == 1
    assert (document["failedAt"], document["code"]) == ("cluster", "MD0501")
    missing = by_step(document)["cluster"]["data"]["missing"]
    assert set(missing) == {"outbound|8080|v1|catalog.storefront.svc.cluster.local",
                            "outbound|8080|v2|catalog.storefront.svc.cluster.local"}
    # the same Envoy, driven with real requests by the lab, logged NC for those clusters
    logged = [f for f in sweep_all["findings"] if f["code"] == "MD0601" and f["pod"].startswith("storefront/web-")]
    assert logged and any("NC" in line for f in logged for line in f["evidence"]), logged


def test_trace_to_headless_redis_without_sidecar_stops_at_the_tls_hop(lab):
    result, document = trace(lab, "cache-demo", "session-api", "redis")
    assert result.returncode == 1
    assert (document["failedAt"], document["code"]) == ("tls", "MD0401")
    steps = by_step(document)
    assert document["request"]["port"] == 6379 and document["destination"]["headless"]
    assert steps["cluster"]["summary"].endswith("ORIGINAL_DST") and steps["route"]["verdict"] == "n/a"
    assert "redis-0" in steps["tls"]["summary"] and "DestinationRule cache-demo/redis sets trafficPolicy.tls.mode ISTIO_MUTUAL" \
        in steps["tls"]["evidence"]


def test_trace_of_plain_text_toward_strict_stops_at_the_server_hop(lab):
    result, document = trace(lab, "billing", "invoicer", "accounts:8000/")
    assert result.returncode == 1
    assert (document["failedAt"], document["code"]) == ("server", "MD0402")
    steps = by_step(document)
    assert steps["tls"]["verdict"] == "ok" and steps["tls"]["summary"].startswith("plain text")
    assert "DestinationRule billing/accounts-no-tls sets trafficPolicy.tls.mode DISABLE" in steps["server"]["evidence"]


def test_trace_table_shows_one_line_per_hop_and_the_answer(lab):
    name = lab.pods("storefront", "web")[0]
    result = kubectl_meshdoctor(lab, "pod", name, "-n", "storefront", "--trace", "catalog:8080/api/items")
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"TRACE storefront/{name} -> GET catalog:8080/api/items")
    rows = [line.split()[:2] for line in lines[2:8]]
    assert rows == [["listener", "ok"], ["route", "ok"], ["cluster", "fail"], ["endpoints", "not-reached"],
                    ["tls", "not-reached"], ["server", "not-reached"]]
    assert any(line.startswith("ANSWER: the request stops at the cluster hop (MD0501 SubsetNotDefined)") for line in lines)


@pytest.mark.parametrize("namespace, app, target, failed_at, code, verdicts", [
    # no configuration from istiod (stale DNS, istiod without endpoints): nothing to walk past the listener
    ("shop", "cart", "catalog", "listener", None, ["fail"] + ["not-reached"] * 5),
    ("payments-prod", "ledger", "fx-rates/rates", "listener", None, ["fail"] + ["not-reached"] * 5),
    # an expiring certificate does not change the path
    ("inventory", "warehouse", "stock:8080/items", None, None, ["ok"] * 6),
    # "http2foo" is not a protocol: the port is plain TCP, HTTP routing does not apply (real Istio would sniff)
    ("media", "player", "transcoder:9443/", None, "MD0502", ["warn", "n/a", "ok", "ok", "ok", "ok"]),
])
def test_trace_answers_on_the_other_scenarios(lab, namespace, app, target, failed_at, code, verdicts):
    result, document = trace(lab, namespace, app, target)
    assert result.returncode == (1 if failed_at else 0), result.stderr
    assert document["failedAt"] == failed_at and [h["verdict"] for h in document["hops"]] == verdicts
    assert code is None or code in [h["code"] for h in document["hops"]]
    if failed_at == "listener":
        assert document["hops"][0]["summary"].startswith("Envoy holds no listener from istiod")


# Every scenario with a meshed client, traced toward the host its lab client really calls (its `drive`
# entries): (namespace, client app, target, hop it stops at, code there, a fact the named hop must show).
# UO, UC, UT and the app bound to 127.0.0.1 fail only at run time: their path is sound, so every hop passes,
# and the hop that explains the run-time failure shows the setting behind it. http10-client-426 has no meshed
# client (nginx-edge runs without a sidecar), so it has nothing to trace from.
SCENARIO_TRACES = [
    ("checkout", "checkout-web", "payments:7070/v1/charges", "endpoints", "MD0503",
     ("endpoints", "selector app=payments of Service checkout/payments matches no pod")),
    ("helpdesk", "ticket-ui", "kb-search:8090/v1/articles", "route", "MD0504",
     ("route", "routes of kb-search.helpdesk.svc.cluster.local:8090: prefix /v2/")),
    ("fintech", "settlement-worker", "rates.fx-feed.example:80/v2/latest", "route", "MD0505",
     ("route", "Sidecar fintech/default: outboundTrafficPolicy.mode: REGISTRY_ONLY")),
    ("fintech", "settlement-worker", "203.0.113.45:443", "cluster", "MD0505",
     ("cluster", "addresses: [203.0.113.45/32]")),
    ("search", "search-frontend", "inventory-api:8081/stock/sku-1138", None, None,
     ("cluster", "connection pool limits max_connections 1, max_pending_requests 1")),
    ("alerts", "incident-bot", "notify-svc:3000/notify/pager", None, None,
     ("cluster", "upstream idle timeout 1h (Envoy's default")),
    ("reports", "report-builder", "pdf-renderer:5000/render/q3-summary", None, None,
     ("route", "timeout 0.400s (504 UT beyond)")),
    ("warehouse-ops", "packing-station", "label-printer:9100/print/parcel-77", None, None,
     ("cluster", "outbound|9100||label-printer.warehouse-ops.svc.cluster.local")),
    ("treasury", "teller", "vault-ledger:7000", None, None, ("tls", "Istio mTLS to 1 endpoint(s)")),
    ("orders", "fulfilment", "checkout:8080/", None, None, ("server", "2 meshed server pod(s)")),
    ("analytics", "ledger-export", "report-gen:8080/", None, None, ("tls", "Istio mTLS")),
    ("broadcast", "captioner", "segmenter-stream:9000", None, None, ("route", "TCP proxy")),
    ("reporting", "archive", "report-builder:8080/", None, None, ("server", "2 meshed server pod(s)")),
    ("ops-tools", "status-page", "pager:9090", None, None, ("endpoints", "1 of 1 healthy")),
]


@pytest.mark.parametrize("namespace, app, target, failed_at, code, fact", SCENARIO_TRACES,
                         ids=[f"{row[0]}-{row[2]}" for row in SCENARIO_TRACES])
def test_trace_answers_on_every_scenario_and_stops_at_the_failing_hop(lab, namespace, app, target, failed_at, code,
                                                                      fact):
    result, document = trace(lab, namespace, app, target)  # asserts no traceback
    assert result.returncode == (1 if failed_at else 0), result.stdout + result.stderr
    assert (document["failedAt"], document["code"]) == (failed_at, code), document["hops"]
    if failed_at is None:
        assert {h["verdict"] for h in document["hops"]} <= {"ok", "n/a"}, document["hops"]
    step, text = fact
    hop = by_step(document)[step]
    assert text in " | ".join([hop["summary"], *hop["evidence"]]), hop
    table = kubectl_meshdoctor(lab, "pod", lab.pods(namespace, app)[0], "-n", namespace, "--trace", target)
    assert table.returncode == result.returncode and "Traceback" not in table.stderr
    assert "ANSWER: " + ("the request stops at the " + failed_at + f" hop ({code}" if failed_at else "every hop ok") \
        in table.stdout, table.stdout


@pytest.mark.parametrize("args, message", [
    (["pod", "no-such-pod", "-n", "bookinfo", "--trace", "reviews"], "no-such-pod"),
    (["pod", "POD", "-n", "bookinfo", "--trace", "reviews:http"], "invalid --trace"),
    (["pod", "REDIS", "-n", "cache-demo", "--trace", "session-api"], "no istio-proxy container"),
])
def test_trace_bad_input_is_a_usage_error_through_kubectl(lab, args, message):
    args = [lab.pods("bookinfo", "productpage")[0] if a == "POD" else "redis-0" if a == "REDIS" else a for a in args]
    result = kubectl_meshdoctor(lab, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("error:") and message in result.stderr and "Traceback" not in result.stderr


# --- what a user sees in the table ----------------------------------------------------------------------


def test_table_says_each_cause_once_and_each_readiness_answer_once(lab):
    result = kubectl_meshdoctor(lab, "namespace", "sweep", "-A")
    assert result.returncode == 1, result.stderr
    roots = result.stdout.split("ROOT CAUSES", 1)[1].split("DIAGNOSIS", 1)[0]
    # the two missing subsets of one VirtualService are one root cause line
    assert roots.count("VirtualService storefront/catalog-split routes to") == 1, roots
    assert "3 pods: VirtualService storefront/catalog-split routes to subsets v1, v2 of catalog" in roots
    # pilot-agent's readiness answer, logged twice by pilot-agent itself, is shown once per line, and
    # MD0201 does not repeat its verdict as the "readiness answer"
    assert "error received unsuccessful status code" not in result.stdout
    assert "readiness answer: config not received" not in result.stdout
    assert "pilot-agent verdict: config not received from XDS server" in result.stdout


def test_dns_story_says_when_it_started(lab, sweep_all):
    # the lab's kube-dns Service was re-created at 14:02; the shop pods started from 14:05 on
    table = kubectl_meshdoctor(lab, "namespace", "sweep", "-n", "shop").stdout
    roots = table.split("ROOT CAUSES", 1)[1].split("DIAGNOSIS", 1)[0]
    assert ("when (UTC, 2026-11-20): 14:02 kube-dns Service created with ClusterIP 172.19.9.54; "
            "14:05 first pod started with nameserver 172.19.0.10, 1/2 READY; 8 pods since") in roots, roots
    # JSON carries the times on each finding
    dns = [f for f in sweep_all["findings"] if f["code"] == "MD0301"]
    assert len(dns) == 8
    assert all({"at": "2026-11-20T14:02:00Z", "what": "kube-dns Service created with ClusterIP 172.19.9.54",
                "pod": None} in f["since"] for f in dns)
    starts = sorted(m["at"] for f in dns for m in f["since"] if m["pod"])
    assert starts[0] == "2026-11-20T14:05:00Z" and starts[-1] == "2026-11-20T14:31:00Z"
    not_ready = [f for f in sweep_all["findings"] if f["code"] == "MD0102" and f["pod"].startswith("shop/")]
    assert all(f["since"] and f["since"][0]["what"] == "1/2 READY" for f in not_ready)


def test_analyze_on_manifests_says_the_live_checks_in_one_line(lab):
    example = str(Path(__file__).resolve().parents[1] / "examples" / "bookinfo-broken")
    table = kubectl_meshdoctor(lab, "analyze", example)
    assert table.returncode == 1, table.stderr
    assert "skipped:" not in table.stdout
    # every check that reads pods, proxies or the control plane (8 of them answer the access log's flags;
    # MD0206 and the server side of MD0401 need a cluster too)
    live = 22  # and MD0204, MD0205, MD0404 (Envoy's stats and certs, istiod's pods)
    assert f"{live} live checks need a cluster or a bundle: --verbose lists them" in table.stdout
    verbose = kubectl_meshdoctor(lab, "analyze", example, "--verbose")
    assert len([line for line in verbose.stdout.splitlines() if line.startswith("skipped: ")]) == live
    assert verbose.stdout.replace("\n", "").count("evidence not available") == live
    as_json = json.loads(kubectl_meshdoctor(lab, "--verbose", "analyze", example, "-o", "json").stdout)
    assert len(as_json["skipped"]) == live


@pytest.fixture(scope="module")
def lab_without_exec():
    """The istiod-down and DNS stories for a user whom RBAC refuses pods/exec."""
    if not (BIN_DIR / "kubectl-meshdoctor").exists():
        pytest.skip("the kubectl-meshdoctor script is not installed next to this Python (pip install .)")
    from kubectl_meshdoctor.lab.apiserver import AccessPolicy
    from kubectl_meshdoctor.lab.lab import Lab

    with Lab(["istiod-no-endpoints", "dns-clusterip-changed"], policy=AccessPolicy(forbid_exec=True)) as running:
        yield running


def test_without_exec_istiod_down_is_the_probable_cause_not_one_cause_per_pod(lab_without_exec):
    result = kubectl_meshdoctor(lab_without_exec, "namespace", "sweep", "-n", "payments-prod", "-o", "json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert any("exec refused" in g["reason"] for g in report["gaps"])
    pods = [p["pod"] for p in report["pods"]]
    assert len(pods) == 4
    group = next(g for g in report["rootCauseGroups"] if g["code"] == "MD0203")
    assert group["subject"]["name"] == "istiod-canary" and sorted(group["pods"]) == sorted(pods)
    assert sorted(group["probablePods"]) == sorted(pods)
    assert not [g for g in report["rootCauseGroups"] if g["code"] == "MD0102"]
    assert all(p["probableRootCauses"] == ["MD0203"] for p in report["pods"])
    for item in (f for f in report["findings"] if f["code"] == "MD0102"):
        assert item["causedBy"] == ["MD0203"] and item["confidence"] == "probable" and not item["rootCause"]
        assert "MD0201" in item["unchecked"] and item["wouldConfirm"].startswith("exec into istio-proxy would have shown")

    table = kubectl_meshdoctor(lab_without_exec, "namespace", "sweep", "-n", "payments-prod").stdout
    roots = table.split("ROOT CAUSES", 1)[1].split("DIAGNOSIS", 1)[0].strip().splitlines()
    assert roots[0].strip().startswith("[ERROR] 4 pods: istiod has no ready endpoints")
    assert roots[1].strip().startswith("probable for all of these pods, not confirmed: exec into istio-proxy would "
                                       "have shown Envoy's CDS/LDS update counters at 0")
    assert "is not ready" not in "\n".join(roots)
    assert "failing  MD0203 (probable)" in table


def test_without_exec_not_ready_pods_are_one_line_with_their_count(lab_without_exec):
    result = kubectl_meshdoctor(lab_without_exec, "namespace", "sweep", "-n", "shop")
    assert result.returncode == 1, result.stderr
    roots = result.stdout.split("ROOT CAUSES", 1)[1].split("DIAGNOSIS", 1)[0]
    assert roots.count("SidecarNotReady") == 1, roots
    assert "[ERROR] 8 pods: istio-proxy is not ready (1/2 READY) (MD0102 SidecarNotReady, 8 Pods)" in roots
    assert "its causes were not checked: exec into istio-proxy would have shown" in roots
    assert "checks skipped, their evidence is missing" in result.stdout and "skipped:" not in result.stdout


def test_proxy_version_skew_names_the_release_gap_and_the_restart(lab):
    name = lab.pods("analytics", "report-gen")[0]
    result = kubectl_meshdoctor(lab, "pod", name, "-n", "analytics", "-o", "json", "--fail-on", "warning")
    assert result.returncode == 1, result.stdout + result.stderr
    skew = [f for f in json.loads(result.stdout)["findings"] if f["code"] == "MD0205"]
    assert [f["severity"] for f in skew] == ["warning"], skew
    assert skew[0]["message"].startswith("istio-proxy 1.22.1 against istiod 1.24.2 (revision default): 2 minor")
    assert "/server_info node metadata ISTIO_VERSION: 1.22.1" in skew[0]["evidence"]
    assert "kubectl rollout restart deployment/report-gen -n analytics" in skew[0]["remediation"]
    assert [m["what"] for m in skew[0]["since"]][-1].endswith("created (1.24.2)")  # istiod's pod, after the proxy's
    # one minor behind is supported: nothing said about ledger-export
    ledger = lab.pods("analytics", "ledger-export")[0]
    result = kubectl_meshdoctor(lab, "pod", ledger, "-n", "analytics", "-o", "json")
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
        assert "last configuration accepted from istiod" in [m["what"] for m in chain["MD0204"]["since"]]
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


# --- issue 12: injection, UID 1337, port protocols, istiod redundancy, unmeshed servers -----------


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


def _rbac_needed(request) -> tuple[str, str, str]:
    """(API group, resource, verb) RBAC must grant for one recorded request (not a discovery request)."""
    parts = request.path.strip("/").split("/")
    group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
    if rest[:1] == ["namespaces"] and len(rest) > 2:
        rest = rest[2:]  # namespaced resource
    resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
    return group, resource, {"exec": "create", "log": "get"}.get(request.verb, request.verb)


def test_every_request_is_granted_by_the_documented_rbac(lab, sweep_all):
    grants = _rbac_grants()
    needed = {_rbac_needed(request) for request in lab.requests if request.verb != "discovery"}
    assert needed - grants == set(), sorted(needed - grants)
    # the reads behind MD0103 and MD0206 were made, and are granted
    for read in [("", "events", "list"), ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "list"),
                 ("apps", "deployments", "list"), ("policy", "poddisruptionbudgets", "list"),
                 ("autoscaling", "horizontalpodautoscalers", "list")]:
        assert read in needed, read


# --- last: the whole module's requests ------------------------------------------------------------


def test_the_plugin_is_read_only_and_execs_only_its_documented_commands(lab, sweep_all):
    from kubectl_meshdoctor.collect.proxy import ALLOWED_EXEC, ISTIOD_CONTAINER, TRACE_CONFIG_DUMP

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
    # ConfigMaps: only istio-ca-root-cert and istio-system's mesh config `istio`, by name, never listed
    config_maps = [r for r in requests if "/configmaps" in r.path]
    assert config_maps and all(r.verb == "get" and (r.path.endswith("/configmaps/istio-ca-root-cert") or
                                                    r.path == "/api/v1/namespaces/istio-system/configmaps/istio")
                               for r in config_maps), [(r.verb, r.path) for r in config_maps]
    # istiod's discovery container is asked for /debug/syncz only, and only where it runs
    assert [q for q in execs if q["container"] == [ISTIOD_CONTAINER]]

    assert list(TRACE_CONFIG_DUMP) in [q["command"] for q in execs], "the --trace tests above read config_dump?include_eds"
