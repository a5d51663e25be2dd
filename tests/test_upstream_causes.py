"""Causes of failing access-log lines (MD05xx) are linked to the MD0601 finding of their upstream cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from caseloader import load_case
from kubectl_meshdoctor.analysis import analyze
from kubectl_meshdoctor.checks.base import finding
from kubectl_meshdoctor.envoy.clusters import parse_clusters
from kubectl_meshdoctor.errors import ParseError
from kubectl_meshdoctor.findings import Subject
from kubectl_meshdoctor.tree import link

CASES = Path(__file__).parent / "cases"
PAYMENTS = "outbound|7070||payments.checkout.svc.cluster.local"
LEDGER = "outbound|9000||ledger.checkout.svc.cluster.local"


def _symptom(cluster: str):
    return finding("MD0601", Subject("Pod", "web", "checkout"), f"failed to {cluster}", pod="checkout/web",
                   upstreams=(cluster,))


def test_a_cause_naming_a_cluster_explains_only_that_clusters_failures():
    cause = finding("MD0503", Subject("Service", "payments", "checkout"), "no endpoint", pod="checkout/web",
                    upstreams=(PAYMENTS,))
    linked = {f.message: f for f in link([_symptom(PAYMENTS), _symptom(LEDGER), cause])}
    assert linked[f"failed to {PAYMENTS}"].caused_by == ("MD0503",)
    assert not linked[f"failed to {PAYMENTS}"].root_cause
    assert linked[f"failed to {LEDGER}"].caused_by == () and linked[f"failed to {LEDGER}"].root_cause


def test_a_cause_in_another_pod_does_not_explain_the_same_cluster_here():
    cause = finding("MD0503", Subject("Service", "payments", "checkout"), "no endpoint", pod="checkout/other",
                    upstreams=(PAYMENTS,))
    (symptom, _) = link([_symptom(PAYMENTS), cause])
    assert symptom.root_cause and symptom.caused_by == ()


def test_the_selector_case_links_mdo601_to_md0503_and_the_json_names_the_cluster():
    bundle, case = load_case(CASES / "MD0503" / "fires-selector-matches-no-pod.yaml")
    report = analyze(bundle, now=case.now)
    by_code = {f.code: f for f in report.findings}
    assert by_code["MD0601"].caused_by == ("MD0503",) and by_code["MD0503"].root_cause
    assert by_code["MD0503"].to_dict()["upstreams"] == [PAYMENTS]
    assert "selector app=payments" in by_code["MD0503"].message
    assert any("payments-api" in line for line in by_code["MD0503"].evidence)
    assert [p.root_causes for p in report.pods if p.pod == "checkout/web-5f7c9-abcde"] == [("MD0503",)]


def test_clusters_parser_reads_a_real_envoy_answer(shared_dir):
    raw = (shared_dir / "envoy-captures" / "exp2-clusters.json").read_text()
    wanted = "outbound|9080||reviews.default.svc.cluster.local"
    (reviews,) = parse_clusters(raw, {wanted})
    assert reviews.name == wanted and len(reviews.hosts) == 2
    assert reviews.hosts[0].cx_connect_fail == 5 and reviews.hosts[0].unhealthy == ()
    assert reviews.max_pending_requests == 4294967295  # the DEFAULT priority, not HIGH's 1024


def test_clusters_parser_flags_unusable_hosts_and_rejects_bad_shapes():
    document = {"cluster_statuses": [{"name": "c", "host_statuses": [
        {"address": {"socket_address": {"address": "10.0.0.1", "port_value": 80}},
         "health_status": {"eds_health_status": "HEALTHY", "failed_outlier_check": True}},
        {"address": {"socket_address": {"address": "10.0.0.2", "port_value": 80}},
         "health_status": {"eds_health_status": "UNHEALTHY"}}],
        "circuit_breakers": {"thresholds": [{"max_pending_requests": 1, "max_connections": 1}]}}]}
    (cluster,) = parse_clusters(json.dumps(document))
    assert [h.unhealthy for h in cluster.hosts] == [("failed_outlier_check",), ("eds_health_status=UNHEALTHY",)]
    assert cluster.healthy_hosts == () and cluster.max_pending_requests == 1 and cluster.max_requests is None
    for bad in ('{"cluster_statuses": {}}', '{"cluster_statuses": [{"name": 3}]}', "[]", "not json"):
        with pytest.raises(ParseError):
            parse_clusters(bad)


def test_blocked_egress_links_the_blackhole_lines_and_prints_a_service_entry():
    bundle, case = load_case(CASES / "MD0505" / "fires-sidecar-registry-only-tls-to-blackhole.yaml")
    by_code = {f.code: f for f in analyze(bundle, now=case.now).findings}
    assert by_code["MD0601"].caused_by == ("MD0505",) and by_code["MD0505"].root_cause
    assert "203.0.113.45:443" in by_code["MD0505"].message
    assert "addresses: [203.0.113.45/32]" in by_code["MD0505"].remediation
    assert "protocol: TLS" in by_code["MD0505"].remediation


def test_blocked_http_names_the_host_and_the_mesh_config():
    bundle, case = load_case(CASES / "MD0505" / "fires-mesh-config-registry-only-http-block-all.yaml")
    findings = analyze(bundle, now=case.now).findings
    (blocked,) = [f for f in findings if f.code == "MD0505"]
    assert "rates.fx-feed.example:80" in blocked.message and "REGISTRY_ONLY" in blocked.message
    assert "hosts: [rates.fx-feed.example]" in blocked.remediation
    assert not [f for f in findings if f.code == "MD0601"]  # a direct 502 carries no response flag


def test_block_all_direct_responses_are_kept_by_the_access_log_reducer():
    from kubectl_meshdoctor.envoy.access_log import summarize_access_log

    line = ('[2026-11-30T17:27:05.626Z] "GET /v2/latest HTTP/1.1" 502 - direct_response - "-" 0 0 0 - "-" '
            '"curl/8.5.0" "e3ba" "rates.fx-feed.example:80" "-" - - 10.96.4.4:80 10.244.0.7:46074 - block_all\n')
    ok = line.replace(" 502 - direct_response", " 200 - via_upstream").replace("block_all", "default")
    log = summarize_access_log(line * 2 + ok)
    assert log.failure_counts == (("", "block_all", 2),)
    assert log.failures[0].authority == "rates.fx-feed.example:80" and log.failures[0].route_name == "block_all"


def test_egress_reads_refused_by_rbac_are_a_gap_and_the_sweep_goes_on(tmp_path):
    from kubectl_meshdoctor.collect import collect_evidence
    from kubectl_meshdoctor.evidence import Evidence
    from kubectl_meshdoctor.lab.apiserver import AccessPolicy
    from test_collect_support import lab_cluster

    policy = AccessPolicy(forbidden_resources={"serviceentries.networking.istio.io"})
    with lab_cluster(tmp_path, policy=policy) as lab:
        bundle = collect_evidence(lab.options())
    gaps = [g for g in bundle.gaps if g.what.startswith("egress configuration")]
    assert gaps and "serviceentries" in gaps[0].reason
    assert Evidence.EGRESS_CONFIG not in bundle.available and bundle.proxies  # the proxies were still read


def test_only_the_mesh_key_of_the_istio_config_map_is_kept(tmp_path):
    from kubectl_meshdoctor.collect import collect_evidence
    from test_collect_support import lab_cluster, shop_objects

    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "istio", "namespace": "istio-system"},
                  "data": {"mesh": "outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n", "meshNetworks": "networks: {}"}}
    with lab_cluster(tmp_path, shop_objects() + [config_map]) as lab:
        bundle = collect_evidence(lab.options())
    (kept,) = [o for o in bundle.objects if o["kind"] == "ConfigMap"]
    assert kept["data"] == {"mesh": "outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n"}


def test_overflow_is_linked_to_the_pool_limits_of_its_destination_rule():
    bundle, case = load_case(CASES / "MD0506" / "fires-pending-limit-of-one-under-load.yaml")
    by_code = {f.code: f for f in analyze(bundle, now=case.now).findings}
    assert by_code["MD0601"].caused_by == ("MD0506",)
    assert "tcp.maxConnections=1, http.http1MaxPendingRequests=1" in by_code["MD0506"].message
    assert "Envoy /clusters circuit breakers: max_connections=1, max_pending_requests=1" in by_code["MD0506"].evidence


def test_lab_connection_pool_becomes_envoy_thresholds_as_istiod_builds_them():
    from kubectl_meshdoctor.lab import xds
    from kubectl_meshdoctor.lab.scenario import AddressPool, expand, load_scenario

    expanded = expand(load_scenario("uo-connection-pool-overflow"), AddressPool(), "10.96.0.10")
    client = next(o for o in expanded.objects if o["kind"] == "Pod" and o["metadata"]["labels"]["app"] == "search-frontend")
    resources = xds.sidecar_resources(xds.MeshModel(expanded.objects), client, xds.SidecarWiring(access_log_path="/dev/null"))
    cluster = next(c for c in resources.clusters if c["name"] == "outbound|8081||inventory-api.search.svc.cluster.local")
    threshold = cluster["circuit_breakers"]["thresholds"][0]
    assert (threshold["max_connections"], threshold["max_pending_requests"]) == (1, 1)
    assert threshold["max_requests"] == 4294967295  # untouched limits keep Istio's MaxUint32 default


def test_timeouts_name_the_virtual_service_the_envoy_route_and_the_durations():
    bundle, case = load_case(CASES / "MD0510" / "fires-virtual-service-timeout-shorter-than-rendering.yaml")
    by_code = {f.code: f for f in analyze(bundle, now=case.now).findings}
    assert by_code["MD0601"].caused_by == ("MD0510",)
    timeout = by_code["MD0510"]
    assert "after 401 ms: route timeout 0.4s (VirtualService reports/pdf-renderer)" in timeout.message
    assert any("Envoy route render in route config 5000" in e and "timeout 0.400s" in e for e in timeout.evidence)


def test_route_timeouts_from_a_real_config_dump(shared_dir):
    from kubectl_meshdoctor.envoy.routes import parse_route_timeouts

    dump = json.loads((shared_dir / "envoy-captures" / "exp2-config_dump.json").read_text())
    routes = next(c for c in dump["configs"] if c["@type"].endswith(".v3.RoutesConfigDump"))
    items = routes.get("dynamic_route_configs") or routes.get("static_route_configs") or []
    clusters = {c for item in items for vh in item["route_config"].get("virtual_hosts", [])
                for r in vh.get("routes", []) for c in [(r.get("route") or {}).get("cluster")] if c}
    assert clusters, "the capture has routes to clusters"
    found = parse_route_timeouts(json.dumps({"configs": items}), clusters)
    assert {r.cluster for r in found} == clusters
    assert parse_route_timeouts("{}", clusters) == ()  # what Envoy answers when nothing matches


def test_route_not_found_links_the_lines_without_cluster_only():
    bundle, case = load_case(CASES / "MD0504" / "fires-virtual-service-routes-only-v2.yaml")
    by_code = {f.code: f for f in analyze(bundle, now=case.now).findings}
    assert by_code["MD0601"].upstreams == ("-",) and by_code["MD0601"].caused_by == ("MD0504",)
    assert "no route for /v1/articles on kb-search:8090" in by_code["MD0504"].message
    assert any("whose routes match only: prefix /v2/" in e for e in by_code["MD0504"].evidence)


def test_route_lookup_follows_envoys_domain_order():
    from kubectl_meshdoctor.envoy.routes import parse_route_lookups

    config = {"name": "8090", "virtual_hosts": [
        {"name": "any", "domains": ["*"], "routes": [{"match": {"prefix": "/"}}]},
        {"name": "wild", "domains": ["*.example.com"], "routes": [{"match": {"path": "/x", "headers": [{"name": "h"}]}}]},
        {"name": "kb", "domains": ["kb-search", "kb-search:8090"], "routes": [{"match": {"prefix": "/v2/"}}]}]}
    raw = json.dumps({"configs": [{"route_config": config}, {"route_config": {"name": "80", "virtual_hosts": []}}]})
    found = {lk.authority: lk for lk in parse_route_lookups(raw, {("8090", "kb-search:8090"), ("8090", "a.example.com"),
                                                                  ("8090", "other:1"), ("80", "kb-search")})}
    assert found["kb-search:8090"].virtual_host == "kb" and found["kb-search:8090"].route_matches == ("prefix /v2/",)
    assert found["a.example.com"].virtual_host == "wild" and found["a.example.com"].route_matches == ("path /x and headers h",)
    assert found["other:1"].virtual_host == "any"
    assert found["kb-search"].virtual_host == "" and found["kb-search"].route_config == "80"


def test_app_not_listening_explains_the_inbound_lines_of_its_own_pod():
    bundle, case = load_case(CASES / "MD0509" / "fires-app-bound-to-localhost.yaml")
    by_code = {f.code: f for f in analyze(bundle, now=case.now).findings}
    assert by_code["MD0601"].caused_by == ("MD0509",) and by_code["MD0601"].upstreams == ("inbound|9100||",)
    assert "listens on 127.0.0.1 only" in by_code["MD0509"].message
    bundle, case = load_case(CASES / "MD0509" / "fires-service-targets-a-port-the-app-does-not-declare.yaml")
    (wrong_port,) = [f for f in analyze(bundle, now=case.now).findings if f.code == "MD0509"]
    assert "the app declares 9101, not 9100" in wrong_port.message


def test_http10_names_the_client_pod_by_its_address_and_links_the_dpe_lines():
    bundle, case = load_case(CASES / "MD0508" / "fires-nginx-proxy-pass-http10.yaml")
    by_code = {f.code: f for f in analyze(bundle, now=case.now).findings}
    assert by_code["MD0601"].caused_by == ("MD0508",)
    assert by_code["MD0508"].message.startswith("pod edge/nginx-edge-7f6-k9j2w (10.244.0.4) speaks HTTP/1.0")
    assert "proxy_http_version 1.1" in by_code["MD0508"].remediation


def test_keepalive_race_is_linked_and_names_the_idle_timeouts():
    bundle, case = load_case(CASES / "MD0507" / "fires-destination-rule-idle-timeout-too-long.yaml")
    by_code = {f.code: f for f in analyze(bundle, now=case.now).findings}
    assert by_code["MD0601"].caused_by == ("MD0507",)
    assert "(Envoy: 30s)" in by_code["MD0507"].message and "idleTimeout" in by_code["MD0507"].remediation


def test_printed_service_entries_are_valid_yaml_with_the_destination():
    import yaml

    from kubectl_meshdoctor.checks.egress_blocked import service_entry_yaml

    by_ip = yaml.safe_load(service_entry_yaml("203.0.113.45:443", "fintech"))
    assert by_ip["kind"] == "ServiceEntry" and by_ip["spec"]["addresses"] == ["203.0.113.45/32"]
    assert by_ip["spec"]["ports"] == [{"number": 443, "name": "tls", "protocol": "TLS"}]
    by_host = yaml.safe_load(service_entry_yaml("rates.fx-feed.example:80", "fintech"))
    assert by_host["spec"]["hosts"] == ["rates.fx-feed.example"] and by_host["metadata"]["namespace"] == "fintech"
