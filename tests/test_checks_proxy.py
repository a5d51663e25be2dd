"""The checks that read istio-proxy evidence: pilot-agent's verdicts, the failure chains end to end,
and the checks fed by the real Envoy parsers on real captures (those skip without ../shared)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from kubectl_meshdoctor.analysis import analyze
from kubectl_meshdoctor.bundle import EvidenceBundle
from kubectl_meshdoctor.checks.certificate_expiring import CHECK as CERTS_CHECK
from kubectl_meshdoctor.checks.cluster_dns_changed import CHECK as DNS_CHECK
from kubectl_meshdoctor.checks.context import AnalysisContext
from kubectl_meshdoctor.checks.mtls_to_plaintext_endpoint import tls_failure_reason
from kubectl_meshdoctor.checks.sidecar_not_ready import describe_readiness, readiness_detail, ready_count
from kubectl_meshdoctor.checks.xds_config_not_received import config_verdict, readiness_verdict
from kubectl_meshdoctor.evidence import (
    TLS_BY_ENDPOINT_LABEL, TLS_ISTIO_ALWAYS, AccessLog, Certificate, ClusterSummary, Evidence, ProxyConfig,
    ProxyEvidence, Readiness, ResolvConf, ServerInfo, evidence_in,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
MY_CODES = {"MD0102", "MD0201", "MD0202", "MD0203", "MD0301", "MD0401", "MD0403", "MD0601"}
HEALTHY_STATS = {
    "cluster_manager.cds.update_success": 3,
    "listener_manager.lds.update_success": 3,
    "listener_manager.workers_started": 1,
    "server.state": 0,
}


# --- building bundles -------------------------------------------------------------------------------


def pod(namespace: str, name: str, *, ready: bool = True, sidecar: bool = True, labels=None, **spec) -> dict:
    containers = [{"name": "app", "image": "app:1"}] + ([{"name": "istio-proxy", "image": "istio/proxyv2:1.24.0"}] if sidecar else [])
    statuses = [{"name": "app", "ready": True, "state": {"running": {}}}]
    if sidecar:
        statuses.append({"name": "istio-proxy", "ready": ready, "state": {"running": {}}})
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {})},
        "spec": {"containers": containers, **spec},
        "status": {"phase": "Running", "containerStatuses": statuses},
    }


def service(namespace: str, name: str, *, labels=None, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {})}, "spec": spec}


def endpoints(namespace: str, name: str, ips: list[str]) -> dict:
    subsets = [{"addresses": [{"ip": ip} for ip in ips]}] if ips else []
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": namespace}, "subsets": subsets}


def kube_dns(ip: str) -> dict:
    return service("kube-system", "kube-dns", labels={"k8s-app": "kube-dns"}, clusterIP=ip)


def istiod(ready_ips: list[str]) -> list[dict]:
    return [service("istio-system", "istiod", labels={"app": "istiod"}, selector={"app": "istiod"}),
            endpoints("istio-system", "istiod", ready_ips)]


def bundle_of(objects: list[dict], proxies: list[ProxyEvidence], *, scope=None) -> EvidenceBundle:
    available = {Evidence.PODS, Evidence.SERVICES, Evidence.ENDPOINTS, Evidence.DNS_SERVICE, Evidence.CONTROL_PLANE}
    for proxy in proxies:
        available |= evidence_in(proxy)
    return EvidenceBundle(
        scope=scope or {"kind": "namespace", "namespace": "shop"},
        objects=objects, proxies={p.pod: p for p in proxies}, available=available,
    )


def by_code_and_pod(report) -> dict:
    return {(f.code, f.pod): f for f in report.findings}


def not_ready_proxy(key: str, nameserver: str) -> ProxyEvidence:
    return ProxyEvidence(
        pod=key,
        readiness=Readiness(ready=False, port=15020, status=503, detail=readiness_verdict({})),
        stats={},
        server_info=ServerInfo(state="PRE_INITIALIZING", version="1.32.3"),
        resolv_conf=ResolvConf(nameservers=(nameserver,)),
    )


# --- pilot-agent's verdicts, word for word ----------------------------------------------------------


def _stats_text(text: str) -> dict[str, int]:
    """The probe table's stats are Envoy's ``name: value`` text; only integers occur there."""
    pairs = (line.split(": ", 1) for line in text.splitlines() if line.strip())
    return {name.strip(): int(value) for name, value in pairs}


def test_verdicts_match_pilot_agents_own_test_table(shared_dir):
    table = json.loads((shared_dir / "istio-data" / "readiness-probe-cases.json").read_text())
    assert len(table["cases"]) >= 7
    for case in table["cases"]:
        verdict = readiness_verdict(_stats_text(case["stats"]))
        if "error_prefix" in case:
            assert verdict.startswith(case["error_prefix"]), (case["name"], verdict)
        else:
            assert verdict == case["error"], (case["name"], verdict)


@pytest.mark.parametrize(
    "stats, expected",
    [
        ({}, "config not received from XDS server (is Istiod running?): cds updates: 0 successful, 0 rejected; "
             "lds updates: 0 successful, 0 rejected"),
        # nothing accepted wins over rejected, in pilot-agent's order
        ({"cluster_manager.cds.update_rejected": 2},
         "config not received from XDS server (is Istiod running?): cds updates: 0 successful, 2 rejected; "
         "lds updates: 0 successful, 0 rejected"),
        ({"listener_manager.lds.update_success": 1},
         "config not fully received from XDS server: cds updates: 0 successful, 0 rejected; "
         "lds updates: 1 successful, 0 rejected"),
        ({"cluster_manager.cds.update_success": 4, "listener_manager.lds.update_rejected": 1},
         "config received from XDS server, but was rejected: cds updates: 4 successful, 0 rejected; "
         "lds updates: 0 successful, 1 rejected"),
        ({"cluster_manager.cds.update_success": 1, "listener_manager.lds.update_success": 1}, ""),
    ],
)
def test_config_verdict_exact_strings(stats, expected):
    assert config_verdict(stats) == expected


@pytest.mark.parametrize(
    "extra, expected",
    [
        ({"server.state": 2, "listener_manager.workers_started": 1}, "server is not live, current state is: PRE_INITIALIZING"),
        ({"server.state": 1, "listener_manager.workers_started": 1}, "server is not live, current state is: DRAINING"),
        ({"server.state": 0, "listener_manager.workers_started": 0}, "workers have not yet started"),
        ({"listener_manager.workers_started": 1}, "failed to get readiness stats: server.state is not yet updated: "
                                                   "listener_manager.workers_started: 1"),
        ({"server.state": 0, "listener_manager.workers_started": 1}, ""),
    ],
)
def test_readiness_verdict_after_config_arrived(extra, expected):
    stats = {"cluster_manager.cds.update_success": 1, "listener_manager.lds.update_success": 1, **extra}
    assert readiness_verdict(stats) == expected


# --- small pieces -----------------------------------------------------------------------------------


def test_ready_count_counts_native_sidecars_like_kubectl():
    native = {
        "spec": {"initContainers": [{"name": "istio-init"}, {"name": "istio-proxy", "restartPolicy": "Always"}],
                 "containers": [{"name": "app"}]},
        "status": {"initContainerStatuses": [{"name": "istio-init", "ready": True}, {"name": "istio-proxy", "ready": False}],
                   "containerStatuses": [{"name": "app", "ready": True}]},
    }
    assert ready_count(native) == (1, 2)
    assert ready_count(pod("a", "b", ready=False)) == (1, 2)


def test_readiness_lines_say_which_port_answered_what():
    assert describe_readiness(Readiness(False, 15020, 503, "config not received")) == (
        "GET :15021/healthz/ready refused; :15020 answered 503: config not received")
    assert describe_readiness(Readiness(False, 15021, None, "connection refused")) == (
        "GET :15021/healthz/ready refused (connection refused)")
    assert describe_readiness(Readiness(False, 15021, 503, "PRE_INITIALIZING")) == "GET :15021 answered 503: PRE_INITIALIZING"


def test_readiness_answer_is_said_once_without_pilot_agents_logged_repeat():
    verdict = readiness_verdict({})
    # what the collector keeps: cobra's "Error: ..." body, then the logger's line repeating it (trimmed)
    logged = f"{verdict} 2026-11-30T14:05:01.123456Z error received unsuccessful status code 503: {verdict[:120]}…"
    assert readiness_detail(Readiness(False, 15020, 503, logged)) == verdict
    assert describe_readiness(Readiness(False, 15020, 503, logged)).count("config not received") == 1
    # a different text after the same marker is not a repeat: kept whole
    other = "server is not live 2026-11-30T14:05:01Z error received unsuccessful status code 503: something else"
    assert readiness_detail(Readiness(False, 15021, 503, other)) == other


def test_config_verdict_is_not_repeated_as_the_readiness_answer():
    verdict = readiness_verdict({})
    logged = f"{verdict} 2026-11-30T14:05:01Z error received unsuccessful status code 503: {verdict}"
    proxy = ProxyEvidence(pod="shop/cart-1", readiness=Readiness(False, 15020, 503, logged), stats={},
                          server_info=ServerInfo(state="PRE_INITIALIZING", version="1.32.3"))
    report = analyze(bundle_of([pod("shop", "cart-1", ready=False), *istiod([])], [proxy]), now=NOW)
    found = by_code_and_pod(report)
    no_config = found[("MD0201", "shop/cart-1")].evidence
    assert sum(verdict in line for line in no_config) == 1, no_config
    assert sum(verdict in line for line in found[("MD0102", "shop/cart-1")].evidence) == 1


@pytest.mark.parametrize(
    "reason, expected",
    [
        ("TLS_error:|268435703:SSL_routines:OPENSSL_internal:WRONG_VERSION_NUMBER:TLS_error_end", "WRONG_VERSION_NUMBER"),
        ("TLS_error:|33554536:system_library:OPENSSL_internal:Connection_reset_by_peer:TLS_error_end", "Connection_reset_by_peer"),
        ("delayed_connect_error:_Connection_refused", None),  # nothing listening: not a TLS mismatch
        ("", None),
    ],
)
def test_tls_failure_reason(reason, expected):
    assert tls_failure_reason(reason) == expected


# --- the failure tree end to end --------------------------------------------------------------------


def test_stale_dns_chain_not_ready_to_no_config_to_dns():
    objects = [pod("shop", "cart-1", ready=False), kube_dns("172.19.9.54"), *istiod(["10.0.0.5"])]
    report = analyze(bundle_of(objects, [not_ready_proxy("shop/cart-1", "172.19.0.10")]), now=NOW)
    found = by_code_and_pod(report)
    assert found[("MD0102", "shop/cart-1")].caused_by == ("MD0201",)
    assert not found[("MD0102", "shop/cart-1")].root_cause
    assert found[("MD0201", "shop/cart-1")].caused_by == ("MD0301",)
    dns = found[("MD0301", "shop/cart-1")]
    assert dns.root_cause and dns.message == "cluster DNS ClusterIP changed (kube-dns 172.19.0.10 → 172.19.9.54)"
    assert dns.evidence == ("/etc/resolv.conf: nameserver 172.19.0.10", "Service kube-system/kube-dns clusterIP 172.19.9.54")
    assert "MD0203" not in {f.code for f in report.findings}
    assert report.pods[0].root_causes == ("MD0301",) and report.pods[0].status == "failing"
    # pilot-agent's own verdict is quoted in both the symptom and the cause below it
    verdict = readiness_verdict({})
    assert any(verdict in line for line in found[("MD0102", "shop/cart-1")].evidence)
    assert f"pilot-agent verdict: {verdict}" in found[("MD0201", "shop/cart-1")].evidence


def test_istiod_without_endpoints_is_the_mesh_wide_cause_of_every_pod():
    objects = [pod("shop", "cart-1", ready=False), pod("shop", "web-2", ready=False), kube_dns("10.96.0.10"), *istiod([])]
    proxies = [not_ready_proxy("shop/cart-1", "10.96.0.10"), not_ready_proxy("shop/web-2", "10.96.0.10")]
    report = analyze(bundle_of(objects, proxies), now=NOW)
    found = by_code_and_pod(report)
    control_plane = found[("MD0203", None)]
    assert control_plane.root_cause and str(control_plane.subject) == "Service istio-system/istiod"
    assert control_plane.message == "istiod has no ready endpoints (Service istio-system/istiod)"
    for key in ("shop/cart-1", "shop/web-2"):
        assert found[("MD0201", key)].caused_by == ("MD0203",)
        assert found[("MD0102", key)].caused_by == ("MD0201",)
    assert "MD0301" not in {f.code for f in report.findings}
    assert [(g.cause.code, g.pods) for g in report.groups] == [("MD0203", ("shop/cart-1", "shop/web-2"))]


def test_sweep_groups_pods_by_their_stale_nameserver():
    objects = [pod("shop", n, ready=False) for n in ("a", "b", "c")] + [kube_dns("172.19.9.54"), *istiod(["10.0.0.5"])]
    proxies = [not_ready_proxy("shop/a", "172.19.0.10"), not_ready_proxy("shop/b", "172.19.0.10"),
               not_ready_proxy("shop/c", "172.19.3.3")]
    report = analyze(bundle_of(objects, proxies), now=NOW)
    groups = {g.cause.message: g.pods for g in report.groups}
    assert groups == {
        "cluster DNS ClusterIP changed (kube-dns 172.19.0.10 → 172.19.9.54)": ("shop/a", "shop/b"),
        "cluster DNS ClusterIP changed (kube-dns 172.19.3.3 → 172.19.9.54)": ("shop/c",),
    }


def test_access_log_failures_link_to_the_mtls_mismatch_that_explains_them():
    cluster = "outbound|6379||redis.default.svc.cluster.local"
    objects = [pod("default", "web-1", labels={"security.istio.io/tlsMode": "istio"}),
               pod("default", "redis-0", sidecar=False, labels={"app": "redis"}),
               service("default", "redis", clusterIP="None", selector={"app": "redis"})]
    proxy = ProxyEvidence(
        pod="default/web-1",
        config=ProxyConfig(clusters=(ClusterSummary(cluster, "ORIGINAL_DST", TLS_ISTIO_ALWAYS),), access_log_configured=True),
        access_log=AccessLog(lines_read=5, access_lines=5, failure_counts=(("UF,URX", cluster, 5),)),
    )
    found = by_code_and_pod(analyze(bundle_of(objects, [proxy]), now=NOW))
    assert found[("MD0601", "default/web-1")].caused_by == ("MD0401",)
    mtls = found[("MD0401", "default/web-1")]
    assert mtls.root_cause and mtls.message == "Service default/redis is reached with Istio mTLS but its pods have no sidecar"
    assert "server pods without a sidecar: default/redis-0 (no istio-proxy)" in mtls.evidence


def test_mtls_message_is_the_same_for_every_client_so_they_group():
    cluster = "outbound|6379||redis.default.svc.cluster.local"
    objects = [pod("default", "redis-0", sidecar=False, labels={"app": "redis"}),
               service("default", "redis", clusterIP="None", selector={"app": "redis"})]
    proxies = [ProxyEvidence(pod=f"{ns}/client", config=ProxyConfig(clusters=(ClusterSummary(cluster, "ORIGINAL_DST", TLS_ISTIO_ALWAYS),)))
               for ns in ("apps", "jobs")]
    objects += [pod("apps", "client"), pod("jobs", "client")]
    report = analyze(bundle_of(objects, proxies, scope={"kind": "all", "pods": ["apps/client", "jobs/client"]}), now=NOW)
    assert [(g.cause.code, g.pods) for g in report.groups] == [("MD0401", ("apps/client", "jobs/client"))]


def test_a_healthy_meshed_pod_with_every_kind_of_evidence_gets_none_of_these_codes():
    cluster = "outbound|9080||reviews.bookinfo.svc.cluster.local"
    objects = [
        pod("bookinfo", "productpage-1", labels={"app": "productpage", "security.istio.io/tlsMode": "istio"}),
        pod("bookinfo", "reviews-1", labels={"app": "reviews", "security.istio.io/tlsMode": "istio"}),
        service("bookinfo", "reviews", selector={"app": "reviews"}),
        kube_dns("10.96.0.10"), *istiod(["10.0.0.5"]),
    ]
    proxy = ProxyEvidence(
        pod="bookinfo/productpage-1",
        readiness=Readiness(ready=True, port=15021, status=200, detail=""),
        stats=HEALTHY_STATS,
        server_info=ServerInfo(state="LIVE", version="1.32.3", uptime_seconds=3600),
        config=ProxyConfig(clusters=(ClusterSummary(cluster, "EDS", TLS_BY_ENDPOINT_LABEL),), listener_count=10,
                           access_log_configured=True),
        certs=(
            Certificate("workload", "ab", ("spiffe://cluster.local/ns/bookinfo/sa/default",), "2026-11-23T11:00:00Z", "2026-11-24T11:00:00Z"),
            Certificate("ca", "cd", (), "2026-01-01T00:00:00Z", "2036-01-01T00:00:00Z"),
        ),
        resolv_conf=ResolvConf(nameservers=("10.96.0.10",), search=("bookinfo.svc.cluster.local",)),
        access_log=AccessLog(lines_read=50, access_lines=48),
    )
    report = analyze(bundle_of(objects, [proxy]), now=NOW)
    assert not {f.code for f in report.findings} & MY_CODES, [f.to_dict() for f in report.findings]
    assert not [s for s in report.skipped if set(s.codes) & MY_CODES]


# --- certificates: the analysis time, never the wall clock ------------------------------------------


def _cert_findings(now: datetime, *certs: Certificate, sa: str | None = None):
    spec = {"serviceAccountName": sa} if sa else {}
    bundle = bundle_of([pod("shop", "cart-1", **spec)], [ProxyEvidence(pod="shop/cart-1", certs=certs)])
    return list(CERTS_CHECK.run(AnalysisContext(bundle, now_iso=now.isoformat(), ca_warn_days=30)))


def test_certificates_are_judged_at_the_analysis_time():
    cert = Certificate("workload", "1", ("spiffe://cluster.local/ns/shop/sa/default",), "2026-11-23T11:00:00Z", "2026-11-24T11:00:00Z")
    assert _cert_findings(datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc), cert) == []  # 1 h of 24 h used
    assert _cert_findings(datetime(2026, 11, 24, 4, 0, tzinfo=timezone.utc), cert) == []  # 7 h left: more than a quarter
    late = _cert_findings(datetime(2026, 11, 24, 6, 0, tzinfo=timezone.utc), cert)  # 5 h left
    assert [(f.severity.value, f.message) for f in late] == [
        ("warning", "workload certificate of shop/cart-1 expires in 5h 0m and was not renewed")]
    expired = _cert_findings(datetime(2026, 11, 25, 11, 0, tzinfo=timezone.utc), cert)
    assert [(f.severity.value, f.message) for f in expired] == [("error", "workload certificate of shop/cart-1 expired 1d 0h ago")]
    early = _cert_findings(datetime(2026, 11, 23, 10, 30, tzinfo=timezone.utc), cert)
    assert [(f.severity.value, f.message) for f in early] == [
        ("error", "workload certificate of shop/cart-1 is not valid for another 30m")]


def test_certificate_identity_must_be_the_pods_service_account():
    cert = Certificate("workload", "1", ("spiffe://cluster.local/ns/other/sa/cart",), "2026-11-23T11:00:00Z", "2026-11-24T11:00:00Z")
    found = _cert_findings(NOW, cert, sa="cart")
    assert [f.message for f in found] == ["workload certificate of shop/cart-1 names namespace other instead of shop"]


def test_ca_expiry_window_and_pod_independent_message():
    ca = Certificate("ca", "c0ffee", (), "2016-12-01T00:00:00Z", "2026-12-20T00:00:00Z")  # 27 days after NOW
    found = _cert_findings(NOW, ca)
    assert [(str(f.subject), f.message) for f in found] == [
        ("Certificate ca-c0ffee", "CA certificate c0ffee expires at 2026-12-20T00:00:00Z (within 30 days)")]
    assert _cert_findings(datetime(2026, 11, 19, tzinfo=timezone.utc), ca) == []  # 31 days before


def test_dns_check_skips_pods_that_do_not_use_cluster_dns():
    objects = [kube_dns("10.96.0.10"), pod("ops", "host", hostNetwork=True),
               pod("ops", "host-cf", hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet")]
    proxies = [ProxyEvidence(pod=k, resolv_conf=ResolvConf(nameservers=("192.168.1.1",))) for k in ("ops/host", "ops/host-cf")]
    ctx = AnalysisContext(bundle_of(objects, proxies), now_iso=NOW.isoformat())
    assert [f.pod for f in DNS_CHECK.run(ctx)] == ["ops/host-cf"]


# --- real parsers on real Envoy captures ------------------------------------------------------------


def _parsers():
    return (pytest.importorskip("kubectl_meshdoctor.envoy.stats"), pytest.importorskip("kubectl_meshdoctor.envoy.server_info"),
            pytest.importorskip("kubectl_meshdoctor.envoy.config_dump"), pytest.importorskip("kubectl_meshdoctor.envoy.certs"),
            pytest.importorskip("kubectl_meshdoctor.envoy.access_log"))


def _exp1_access_log(shared_dir) -> bytes:
    # Each line of the capture is "<experiment>: <access-log line>"; the log line starts at "[".
    lines = (shared_dir / "envoy-captures" / "exp1-access-log-lines.txt").read_text().splitlines()
    return "\n".join(line[line.index("["):] for line in lines if "[" in line).encode()


def test_healthy_real_envoy_gives_no_xds_or_certificate_finding(shared_dir):
    stats, server_info, config_dump, certs, _ = _parsers()
    captures = shared_dir / "envoy-captures"
    proxy = ProxyEvidence(
        pod="default/sleep-1",
        stats=stats.parse_stats((captures / "exp2-stats.txt").read_bytes()),
        server_info=server_info.parse_server_info((captures / "exp2-server_info.json").read_bytes()),
        config=config_dump.summarize_config_dump((captures / "exp2-config_dump.json").read_bytes()),
        certs=certs.parse_certs((captures / "exp2-certs.json").read_bytes()),
    )
    assert proxy.stats["cluster_manager.cds.update_rejected"] == 1  # an old rejection, superseded since
    report = analyze(bundle_of([pod("default", "sleep-1")], [proxy]), now=datetime(2026, 11, 23, 13, 30, tzinfo=timezone.utc))
    codes = {f.code for f in report.findings}
    assert not codes & {"MD0102", "MD0201", "MD0202", "MD0403"}, [f.to_dict() for f in report.findings]
    # a day and a half later the same real certificate has expired
    later = analyze(bundle_of([pod("default", "sleep-1")], [proxy]), now=datetime(2026, 11, 25, tzinfo=timezone.utc))
    assert [(f.code, f.severity.value) for f in later.findings if f.code == "MD0403"] == [("MD0403", "error")]


def test_nacked_listener_from_real_config_dump_is_reported_with_envoys_reason(shared_dir):
    stats, _, config_dump, _, _ = _parsers()
    captures = shared_dir / "envoy-captures"
    proxy = ProxyEvidence(
        pod="default/sleep-1",
        stats=stats.parse_stats((captures / "exp2-stats.txt").read_bytes()),
        config=config_dump.summarize_config_dump((captures / "exp6-nack-config_dump.json").read_bytes()),
    )
    found = [f for f in analyze(bundle_of([], [proxy]), now=NOW).findings if f.code == "MD0202"]
    assert [f.message for f in found] == ["Envoy in default/sleep-1 rejected configuration from istiod (listener 0.0.0.0_6380)"]
    assert any("has duplicate address" in line for line in found[0].evidence)


def test_real_access_log_failures_are_explained_and_confirm_the_mtls_mismatch(shared_dir):
    _, _, config_dump, _, access_log = _parsers()
    captures = shared_dir / "envoy-captures"
    proxy = ProxyEvidence(
        pod="default/web-1",
        config=config_dump.summarize_config_dump((captures / "exp2-config_dump.json").read_bytes()),
        access_log=access_log.summarize_access_log(_exp1_access_log(shared_dir)),
    )
    objects = [pod("default", "web-1"), pod("default", "redis-0", sidecar=False, labels={"app": "redis"}),
               service("default", "redis", clusterIP="None", selector={"app": "redis"})]
    found = by_code_and_pod(analyze(bundle_of(objects, [proxy]), now=NOW))
    failures = found[("MD0601", "default/web-1")]
    assert failures.message == (
        "6 failed request(s) in the access log of default/web-1 to outbound|6379||redis.default.svc.cluster.local: UF,URX ×6")
    assert any(line.startswith("UF (UpstreamConnectionFailure): ") for line in failures.evidence)
    assert any(line.startswith("URX (UpstreamRetryLimitExceeded): ") for line in failures.evidence)
    assert failures.caused_by == ("MD0401",)
    confirmations = [line for line in found[("MD0401", "default/web-1")].evidence if line.startswith("access log confirms")]
    assert any("WRONG_VERSION_NUMBER" in line for line in confirmations)
    assert any("Connection_reset_by_peer" in line for line in confirmations)


def test_real_access_log_with_only_successes_gives_no_failure_finding(shared_dir):
    _, _, _, _, access_log = _parsers()
    lines = _exp1_access_log(shared_dir).decode().splitlines()
    ok_only = "\n".join(line for line in lines if '" 0 - - - "' in line)
    proxy = ProxyEvidence(pod="default/web-1", access_log=access_log.summarize_access_log(ok_only))
    assert proxy.access_log.access_lines == 1
    assert [f for f in analyze(bundle_of([], [proxy]), now=NOW).findings if f.code == "MD0601"] == []


# --- degraded runs: probable causes ----------------------------------------------------------------


def api_only_proxy(key: str) -> ProxyEvidence:
    """What a sweep keeps when exec is refused: the istio-proxy log (read through the API), nothing else."""
    return ProxyEvidence(pod=key, access_log=AccessLog(lines_read=3, access_lines=0))


def test_without_exec_istiod_down_is_the_probable_cause_of_each_not_ready_pod():
    objects = [pod("shop", "cart-1", ready=False), pod("shop", "web-2", ready=False), *istiod([])]
    report = analyze(bundle_of(objects, [api_only_proxy("shop/cart-1"), api_only_proxy("shop/web-2")]), now=NOW)
    found = by_code_and_pod(report)
    assert {s.check for s in report.skipped} >= {"XdsConfigNotReceived", "XdsConfigRejected"}
    for key in ("shop/cart-1", "shop/web-2"):
        symptom = found[("MD0102", key)]
        assert symptom.caused_by == ("MD0203",) and not symptom.root_cause
        assert symptom.confidence == "probable" and symptom.unchecked == ("MD0201", "MD0202")
        assert symptom.would_confirm.startswith("exec into istio-proxy would have shown Envoy's CDS/LDS")
        assert symptom.to_dict()["confidence"] == "probable"
    istiod_down = [(g.pods, g.probable_pods) for g in report.groups if g.cause.code == "MD0203"]
    assert istiod_down == [(("shop/cart-1", "shop/web-2"), ("shop/cart-1", "shop/web-2"))]
    assert "MD0102" not in {g.cause.code for g in report.groups}  # no longer a root cause per pod
    assert {(p.pod, p.root_causes, p.probable) for p in report.pods} == {
        ("shop/cart-1", ("MD0203", "MD0601"), ("MD0203",)), ("shop/web-2", ("MD0203", "MD0601"), ("MD0203",))}


def test_a_pod_examined_fully_links_for_sure_and_one_not_examined_probably():
    # exec worked for cart-1 (its stats show no config) but timed out for web-2: one run, two confidences
    objects = [pod("shop", "cart-1", ready=False), pod("shop", "web-2", ready=False), kube_dns("10.96.0.10"),
               *istiod([])]
    report = analyze(bundle_of(objects, [not_ready_proxy("shop/cart-1", "10.96.0.10"), api_only_proxy("shop/web-2")]),
                     now=NOW)
    found = by_code_and_pod(report)
    assert found[("MD0102", "shop/cart-1")].caused_by == ("MD0201",)
    assert found[("MD0102", "shop/cart-1")].confidence == "confirmed" and not found[("MD0102", "shop/cart-1")].unchecked
    assert found[("MD0102", "shop/web-2")].caused_by == ("MD0203",)
    assert found[("MD0102", "shop/web-2")].confidence == "probable"
    istiod_down = [(g.pods, g.probable_pods) for g in report.groups if g.cause.code == "MD0203"]
    assert istiod_down == [(("shop/cart-1", "shop/web-2"), ("shop/web-2",))]


def test_checked_and_absent_is_not_probable():
    # exec worked and Envoy is configured: MD0201 was looked for and is absent, so istiod being down
    # does not explain this pod's readiness failure (the probe fails for another reason).
    configured = ProxyEvidence(pod="shop/cart-1", readiness=Readiness(False, 15021, 503, "workers have not yet started"),
                               stats={"cluster_manager.cds.update_success": 1, "listener_manager.lds.update_success": 1})
    report = analyze(bundle_of([pod("shop", "cart-1", ready=False), *istiod([])], [configured]), now=NOW)
    symptom = by_code_and_pod(report)[("MD0102", "shop/cart-1")]
    assert symptom.root_cause and symptom.caused_by == () and symptom.unchecked == () and symptom.confidence is None


def test_without_exec_and_without_a_cause_below_the_symptom_says_what_was_not_checked():
    objects = [pod("shop", "cart-1", ready=False), kube_dns("172.19.9.54"), *istiod(["10.0.0.5"])]
    report = analyze(bundle_of(objects, [api_only_proxy("shop/cart-1")]), now=NOW)
    symptom = by_code_and_pod(report)[("MD0102", "shop/cart-1")]
    assert symptom.root_cause and symptom.caused_by == () and symptom.confidence is None
    assert symptom.unchecked == ("MD0201", "MD0202") and "MD0201" in symptom.would_confirm


# --- when it started ------------------------------------------------------------------------------------


def started_at(obj: dict, at: str, *, not_ready_since: str | None = None) -> dict:
    """``obj`` created and started at ``at``; a pod not ready since ``not_ready_since`` says so in its conditions."""
    obj["metadata"]["creationTimestamp"] = at
    if obj["kind"] == "Pod":
        obj["status"]["startTime"] = at
        if not_ready_since:
            obj["status"]["conditions"] = [{"type": "Ready", "status": "False", "lastTransitionTime": not_ready_since}]
    return obj


def moments(item) -> list[tuple[str, str, str | None]]:
    return [(m.at, m.what, m.pod) for m in item.since]


def test_dns_chain_carries_when_the_service_changed_and_when_each_pod_failed():
    objects = [started_at(pod("shop", "cart-1", ready=False), "2026-11-20T14:05:00Z", not_ready_since="2026-11-20T14:05:40Z"),
               started_at(kube_dns("172.19.9.54"), "2026-11-20T14:02:00+00:00"), *istiod(["10.0.0.5"])]
    report = analyze(bundle_of(objects, [not_ready_proxy("shop/cart-1", "172.19.0.10")]), now=NOW)
    found = by_code_and_pod(report)
    assert moments(found[("MD0301", "shop/cart-1")]) == [
        ("2026-11-20T14:02:00Z", "kube-dns Service created with ClusterIP 172.19.9.54", None),  # normalised to Z
        ("2026-11-20T14:05:00Z", "started with nameserver 172.19.0.10", "shop/cart-1"),
    ]
    assert moments(found[("MD0102", "shop/cart-1")]) == [("2026-11-20T14:05:40Z", "1/2 READY", "shop/cart-1")]
    assert found[("MD0301", "shop/cart-1")].to_dict()["since"][0] == {
        "at": "2026-11-20T14:02:00Z", "what": "kube-dns Service created with ClusterIP 172.19.9.54", "pod": None}


def test_istiod_down_carries_when_its_pod_turned_not_ready_and_last_crashed():
    istiod_pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "istiod-5f4d-abcde", "namespace": "istio-system", "labels": {"app": "istiod"}},
        "spec": {"containers": [{"name": "discovery"}]},
        "status": {"phase": "Running",
                   "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "2026-11-20T13:58:00Z"}],
                   "containerStatuses": [{"name": "discovery", "ready": False, "restartCount": 7,
                                          "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                                          "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                                                                       "finishedAt": "2026-11-20T14:31:10Z"}}}]},
    }
    objects = [pod("shop", "cart-1", ready=False), kube_dns("10.96.0.10"), *istiod([]), istiod_pod]
    report = analyze(bundle_of(objects, [not_ready_proxy("shop/cart-1", "10.96.0.10")]), now=NOW)
    assert moments(by_code_and_pod(report)[("MD0203", None)]) == [
        ("2026-11-20T13:58:00Z", "istiod pod istiod-5f4d-abcde not ready", None),
        ("2026-11-20T14:31:10Z", "discovery container of istiod-5f4d-abcde exited (Error; 7 restarts)", None),
    ]


def test_certificate_findings_carry_the_validity_and_findings_without_times_carry_none():
    cert = Certificate(role="workload", serial="abc123", subject_alt_names=("spiffe://cluster.local/ns/shop/sa/default",),
                       valid_from="2026-11-22T12:00:00Z", expiration_time="2026-11-23T11:00:00Z")
    proxy = ProxyEvidence(pod="shop/cart-1", certs=(cert,))
    report = analyze(bundle_of([pod("shop", "cart-1")], [proxy]), now=NOW)
    expired = by_code_and_pod(report)[("MD0403", "shop/cart-1")]
    assert moments(expired) == [("2026-11-22T12:00:00Z", "workload certificate issued (valid from)", "shop/cart-1"),
                                ("2026-11-23T11:00:00Z", "workload certificate expires", "shop/cart-1")]
    # a pod without timestamps in its status: nothing is invented
    report = analyze(bundle_of([pod("shop", "web-1", ready=False), *istiod(["10.0.0.5"])], []), now=NOW)
    assert by_code_and_pod(report)[("MD0102", "shop/web-1")].since == ()
