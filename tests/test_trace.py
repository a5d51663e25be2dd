"""The --trace walk on real config_dumps: a real Envoy's (../shared/envoy-captures) and istiod's own output
(Istio's istioctl test data), read in place at test time; tests skip when ../shared is absent.

Where a case needs a configuration those dumps do not hold (REGISTRY_ONLY, an unhealthy endpoint), the test
takes the real dump and changes one field, shaped as istiod writes it (pilot/pkg/networking/core), and says so.
"""

from __future__ import annotations

import copy
import re
import json

import pytest
import yaml

from kubectl_meshdoctor.bundle import EvidenceBundle
from kubectl_meshdoctor.checks.context import AnalysisContext
from kubectl_meshdoctor.envoy.xds_index import XdsIndex
from kubectl_meshdoctor.errors import MeshDoctorError, UsageError
from kubectl_meshdoctor.trace import parse_target, trace_request
from kubectl_meshdoctor.trace.envoy_match import (
    Connection,
    Request,
    select_filter_chain,
    select_listener,
    select_route,
    select_virtual_host,
    terminal_filter,
)

EXP2 = "envoy-captures/exp2-config_dump-include_eds.json"
ISTIOD_LISTENERS = "istio-data/istioctl-testdata/istioctl/pkg/authz/testdata/configdump.yaml"
CLIENT = {"kind": "Pod", "metadata": {"name": "client", "namespace": "default"}}


@pytest.fixture
def exp2(shared_dir) -> dict:
    return json.loads((shared_dir / EXP2).read_text())


@pytest.fixture
def istiod_listeners(shared_dir) -> XdsIndex:
    return XdsIndex.from_dict(yaml.safe_load((shared_dir / ISTIOD_LISTENERS).read_text()))


def walk(dump: dict, target: str, objects: list[dict] = (), **request) -> dict:
    ctx = AnalysisContext(EvidenceBundle(scope={}, objects=list(objects)))
    return trace_request(XdsIndex.from_dict(dump), ctx, CLIENT, parse_target(target, **request)).to_dict()


def hops(result: dict) -> dict[str, dict]:
    return {hop["step"]: hop for hop in result["hops"]}


def section(dump: dict, kind: str) -> dict:
    return next(c for c in dump["configs"] if c["@type"].endswith(f".{kind}ConfigDump"))


# --- a real Envoy's dump ----------------------------------------------------------------------------------


def test_http_request_walks_every_hop_to_healthy_endpoints_with_tls_per_endpoint_label(exp2):
    result = walk(exp2, "reviews:9080/reviews/0")
    steps = hops(result)
    assert result["verdict"] == "ok" and result["failedAt"] is None
    assert steps["listener"]["data"]["listener"] == "0.0.0.0_9080" and steps["listener"]["data"]["routeConfig"] == "9080"
    assert steps["route"]["data"]["virtualHost"] == "reviews.default.svc.cluster.local:9080"
    assert steps["route"]["data"]["domain"] == "reviews:9080"
    assert steps["cluster"]["data"]["cluster"] == "outbound|9080||reviews.default.svc.cluster.local"
    endpoints = steps["endpoints"]["data"]["endpoints"]
    assert [(e["address"], e["health"], e["locality"]) for e in endpoints] == [
        ("127.0.0.1:29080", "HEALTHY", "us-east1/us-east1-b"), ("127.0.0.1:29081", "HEALTHY", "us-east1/us-east1-b")]
    # reviews-v1's endpoint carries tlsMode=istio, reviews-v2's does not: Envoy picks a socket per endpoint
    assert steps["tls"]["evidence"] == [
        "127.0.0.1:29080: Istio mTLS (transport socket match tlsMode-istio)",
        "127.0.0.1:29081: plain text (transport socket match tlsMode-disabled)",
    ]


def test_tcp_request_uses_the_clusters_own_transport_socket(exp2):
    steps = hops(walk(exp2, "redis:6379"))
    assert steps["listener"]["summary"] == "0.0.0.0_6379: TCP proxy"
    assert steps["route"]["verdict"] == "n/a"
    assert steps["tls"]["evidence"] == ["127.0.0.1:26379: Istio mTLS (the cluster's transport socket)"]


def test_host_without_virtual_host_stops_at_the_route_hop_with_md0504(exp2):
    result = walk(exp2, "ratings:9080/")
    assert (result["failedAt"], result["code"]) == ("route", "MD0504")
    assert hops(result)["route"]["evidence"] == ["virtual hosts: reviews.default.svc.cluster.local:9080"]
    assert [h["verdict"] for h in result["hops"][2:]] == ["not-reached"] * 4


def test_path_no_route_matches_stops_at_the_route_hop(exp2):
    dump = copy.deepcopy(exp2)
    # a VirtualService whose only match is /api (istiod adds no default route then)
    vhost = section(dump, "Routes")["dynamic_route_configs"][0]["route_config"]["virtual_hosts"][0]
    vhost["routes"][0]["match"] = {"prefix": "/api"}
    result = walk(dump, "reviews:9080/reviews/0")
    assert (result["failedAt"], result["code"]) == ("route", "MD0504")
    assert "routes of reviews.default.svc.cluster.local:9080: prefix /api" in hops(result)["route"]["evidence"]
    assert walk(dump, "reviews:9080/api/x")["verdict"] == "ok"


def test_no_healthy_endpoint_stops_at_md0503_and_says_why_from_the_api(exp2):
    dump = copy.deepcopy(exp2)
    for config in section(dump, "Endpoints")["dynamic_endpoint_configs"]:
        for group in config["endpoint_config"]["endpoints"]:
            for endpoint in group["lb_endpoints"]:
                endpoint["health_status"] = "UNHEALTHY"
    service = {"kind": "Service", "metadata": {"name": "reviews", "namespace": "default"},
               "spec": {"clusterIP": "10.96.0.20", "selector": {"app": "reviewz"}, "ports": [{"name": "http", "port": 9080}]}}
    pod = {"kind": "Pod", "metadata": {"name": "reviews-v1-0", "namespace": "default", "labels": {"app": "reviews"}},
           "status": {"podIP": "10.244.0.9"}}
    result = walk(dump, "reviews/", [service, pod])
    assert (result["failedAt"], result["code"]) == ("endpoints", "MD0503")
    assert result["request"]["port"] == 9080  # the Service's only port
    evidence = hops(result)["endpoints"]["evidence"]
    assert "unhealthy: 127.0.0.1:29080 UNHEALTHY, 127.0.0.1:29081 UNHEALTHY" in evidence
    assert "selector app=reviewz of Service default/reviews matches no pod; pods here have app=reviews" in evidence


def test_registry_only_http_request_ends_at_block_all_with_md0505(exp2):
    dump = copy.deepcopy(exp2)
    # istiod's catch-all under REGISTRY_ONLY (httproute.go buildCatchAllVirtualHost): block_all, 502 direct response
    route_config = section(dump, "Routes")["dynamic_route_configs"][0]["route_config"]
    route_config["virtual_hosts"].append({"name": "block_all", "domains": ["*"], "routes": [
        {"name": "block_all", "match": {"prefix": "/"}, "direct_response": {"status": 502}}]})
    result = walk(dump, "api.example.com:9080/v1")
    assert (result["failedAt"], result["code"]) == ("route", "MD0505")
    assert result["destination"]["service"] is None
    # the mesh Service still routes
    assert walk(dump, "reviews:9080/")["verdict"] == "ok"


def test_run_time_settings_show_on_their_hops_only_when_istiod_set_them(exp2):
    # the real dump: Istio's "unlimited" thresholds (2^32-1) and its default route timeout 0s stay quiet
    steps = hops(walk(exp2, "reviews:9080/reviews/0"))
    assert steps["cluster"]["summary"] == "outbound|9080||reviews.default.svc.cluster.local: EDS"
    assert steps["cluster"]["data"]["connectionPool"] == [] and steps["cluster"]["data"]["idleTimeout"] is None
    assert steps["route"]["data"]["timeout"] == "0s (disabled)" and "timeout" not in steps["route"]["summary"]
    # a DestinationRule connectionPool and a VirtualService timeout, written as istiod writes them
    # (cluster_traffic_policy.go applyConnectionPool, route.go translateRoute)
    dump = copy.deepcopy(exp2)
    cluster = next(c["cluster"] for c in section(dump, "Clusters")["dynamic_active_clusters"]
                   if c["cluster"]["name"] == "outbound|9080||reviews.default.svc.cluster.local")
    cluster["circuit_breakers"]["thresholds"][0].update(max_connections=1, max_pending_requests=1)
    cluster["typed_extension_protocol_options"] = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "common_http_protocol_options": {"idle_timeout": "4s", "max_requests_per_connection": 1}}}
    route = section(dump, "Routes")["dynamic_route_configs"][0]["route_config"]["virtual_hosts"][0]["routes"][0]
    route["route"]["timeout"] = "0.400s"
    result = walk(dump, "reviews:9080/reviews/0")
    steps = hops(result)
    assert result["verdict"] == "ok"
    assert steps["cluster"]["data"]["connectionPool"] == ["max_connections 1", "max_pending_requests 1",
                                                          "max_requests_per_connection 1"]
    assert steps["cluster"]["summary"].endswith(", idle timeout 4s")
    assert steps["route"]["summary"].endswith(", timeout 0.400s (504 UT beyond)")


def test_subset_cluster_missing_stops_at_the_cluster_hop_with_md0501(exp2):
    dump = copy.deepcopy(exp2)
    route = section(dump, "Routes")["dynamic_route_configs"][0]["route_config"]["virtual_hosts"][0]["routes"][0]
    route["route"]["cluster"] = "outbound|9080|v3|reviews.default.svc.cluster.local"
    rule = {"kind": "DestinationRule", "metadata": {"name": "reviews", "namespace": "default"},
            "spec": {"host": "reviews", "subsets": [{"name": "v1", "labels": {"version": "v1"}}]}}
    result = walk(dump, "reviews:9080/", [rule])
    assert (result["failedAt"], result["code"]) == ("cluster", "MD0501")
    assert "DestinationRule default/reviews defines subsets v1" in hops(result)["cluster"]["evidence"]


def test_headers_and_method_select_the_route(exp2):
    dump = copy.deepcopy(exp2)
    vhost = section(dump, "Routes")["dynamic_route_configs"][0]["route_config"]["virtual_hosts"][0]
    jason = copy.deepcopy(vhost["routes"][0])
    jason["match"] = {"prefix": "/", "headers": [{"name": "end-user", "string_match": {"exact": "jason"}},
                                                 {"name": ":method", "string_match": {"exact": "POST"}}]}
    jason["route"]["cluster"] = "outbound|9080|v2|reviews.default.svc.cluster.local"
    vhost["routes"].insert(0, jason)
    assert hops(walk(dump, "reviews:9080/", headers=["end-user: jason"], method="POST"))["cluster"]["code"] == "MD0501"
    assert walk(dump, "reviews:9080/", headers=["end-user: jason"])["verdict"] == "ok"  # GET: next route
    assert walk(dump, "reviews:9080/", method="POST")["verdict"] == "ok"


def test_listener_envoy_rejected_is_the_answer_with_envoys_reason(shared_dir):
    dump = json.loads((shared_dir / "envoy-captures/exp6-nack-config_dump.json").read_text())
    result = walk(dump, "redis:6380")
    assert (result["failedAt"], result["code"]) == ("listener", "MD0202")
    assert "Envoy rejected the listener 0.0.0.0_6380" in result["hops"][0]["summary"]
    assert result["hops"][0]["evidence"][0].startswith("Envoy's reason: ")
    assert walk(dump, "redis:6379")["hops"][0]["data"]["listener"] == "0.0.0.0_6379"


def test_a_sidecar_without_configuration_from_istiod_stops_at_the_listener(exp2):
    dump = copy.deepcopy(exp2)
    section(dump, "Listeners")["dynamic_listeners"] = []
    result = walk(dump, "reviews:9080/")
    assert result["failedAt"] == "listener" and result["code"] is None
    assert result["hops"][0]["summary"] == "Envoy holds no listener from istiod: it has not received its configuration"


# --- istiod's own listeners (istioctl test data) -------------------------------------------------------------


def test_service_vip_listener_wins_over_the_wildcard(istiod_listeners):
    listener, how = select_listener(istiod_listeners, Connection("10.96.0.10", 53))
    assert listener.name == "10.96.0.10_53" and how == "bound to 10.96.0.10:53"
    chain = select_filter_chain(listener.config, Connection("10.96.0.10", 53))
    network = terminal_filter(chain.config)
    assert network.kind == "tcp" and network.config["cluster"] == "outbound|53||kube-dns.kube-system.svc.cluster.local"


def test_http_on_the_wildcard_listener_takes_the_http_chain_and_other_tcp_the_passthrough_default(istiod_listeners):
    listener, _ = select_listener(istiod_listeners, Connection("10.0.0.99", 9080, alpn=("http/1.1",)))
    assert listener.name == "0.0.0.0_9080"
    http = select_filter_chain(listener.config, Connection("10.0.0.99", 9080, alpn=("http/1.1",)))
    assert not http.default and terminal_filter(http.config).config["rds"]["route_config_name"] == "9080"
    raw = select_filter_chain(listener.config, Connection("10.0.0.99", 9080))
    assert raw.default and raw.name == "PassthroughFilterChain"
    assert terminal_filter(raw.config).config["cluster"] == "PassthroughCluster"


def test_unknown_port_stays_on_virtual_outbounds_catch_all_chain(istiod_listeners):
    assert select_listener(istiod_listeners, Connection("203.0.113.10", 12345))[0] is None
    virtual = istiod_listeners.listener("virtualOutbound")
    chain = select_filter_chain(virtual.config, Connection("203.0.113.10", 12345))
    assert chain.name == "virtualOutbound-catchall-tcp"  # not the blackhole chain, which matches port 15001 only
    assert select_filter_chain(virtual.config, Connection("203.0.113.10", 15001)).name == "virtualOutbound-blackhole"


def test_registry_only_tcp_goes_to_blackhole_cluster_with_md0505(istiod_listeners, shared_dir):
    dump = yaml.safe_load((shared_dir / ISTIOD_LISTENERS).read_text())
    # istiod's REGISTRY_ONLY catch-all (listener_builder.go): the same chain, cluster BlackHoleCluster
    for entry in section(dump, "Listeners")["dynamic_listeners"]:
        if entry["name"] == "virtualOutbound":
            for chain in entry["active_state"]["listener"]["filter_chains"]:
                for item in chain["filters"]:
                    if item["name"] == "envoy.filters.network.tcp_proxy":
                        item["typed_config"]["cluster"] = "BlackHoleCluster"
    result = walk(dump, "203.0.113.10:12345")
    assert (result["failedAt"], result["code"]) == ("cluster", "MD0505")
    assert hops(result)["listener"]["data"]["chain"] == "virtualOutbound-catchall-tcp"


# --- Envoy's matching rules ---------------------------------------------------------------------------------


def test_virtual_host_order_exact_then_suffix_then_prefix_then_any():
    config = {"virtual_hosts": [{"name": "any", "domains": ["*"]}, {"name": "prefix", "domains": ["api.*"]},
                                {"name": "suffix", "domains": ["*.example.com"]}, {"name": "exact", "domains": ["api.example.com"]}]}
    assert select_virtual_host(config, "api.example.com")[0]["name"] == "exact"
    assert select_virtual_host(config, "www.example.com")[0]["name"] == "suffix"
    assert select_virtual_host(config, "api.internal")[0]["name"] == "prefix"
    assert select_virtual_host(config, "other")[0]["name"] == "any"
    assert select_virtual_host({"virtual_hosts": [{"name": "x", "domains": ["a"]}]}, "b") == (None, "")


def test_current_istiod_domains_have_no_port_and_ignore_the_port_in_host_matching():
    # httproute.go: sidecar vhosts list names without :port and set ignore_port_in_host_matching
    config = {"ignore_port_in_host_matching": True,
              "virtual_hosts": [{"name": "reviews.default.svc.cluster.local:9080", "domains": ["reviews", "10.96.0.20"]}]}
    assert select_virtual_host(config, "reviews:9080")[1] == "reviews"
    assert select_virtual_host(config, "10.96.0.20:9080")[1] == "10.96.0.20"
    assert select_virtual_host({**config, "ignore_port_in_host_matching": False}, "reviews:9080")[0] is None


def test_route_matching_rules():
    vhost = {"routes": [
        {"name": "exact", "match": {"path": "/login"}},
        {"name": "regex", "match": {"safe_regex": {"regex": "/items/[0-9]+"}}},
        {"name": "query", "match": {"prefix": "/q", "query_parameters": [{"name": "v", "string_match": {"exact": "2"}}]}},
        {"name": "ci", "match": {"prefix": "/CASE", "case_sensitive": False}},
        {"name": "absent", "match": {"prefix": "/h", "headers": [{"name": "x-debug", "present_match": True, "invert_match": True}]}},
    ]}

    def chosen(path: str, *headers: tuple[str, str]) -> str | None:
        found = select_route(vhost, Request("GET", path, "h", headers))
        return found[1]["name"] if found else None

    assert chosen("/login") == "exact" and chosen("/login/x") is None
    assert chosen("/items/42") == "regex" and chosen("/items/x") is None
    assert chosen("/q?v=2") == "query" and chosen("/q?v=3") is None
    assert chosen("/case/x") == "ci"
    assert chosen("/h") == "absent" and chosen("/h", ("x-debug", "1")) is None


# --- the target ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, host, port, path", [
    ("reviews", "reviews", None, "/"),
    ("reviews:9080/reviews/0?x=1", "reviews", 9080, "/reviews/0?x=1"),
    ("http://API.Example.com/v1", "api.example.com", None, "/v1"),
    ("10.96.0.10:53", "10.96.0.10", 53, "/"),
    ("reviews.bookinfo.svc.cluster.local.:9080", "reviews.bookinfo.svc.cluster.local", 9080, "/"),
])
def test_parse_target(text, host, port, path):
    target = parse_target(text)
    assert (target.host, target.port, target.path) == (host, port, path)


@pytest.mark.parametrize("text, method, headers, message", [
    ("reviews:99999", "GET", (), "port '99999'"),
    ("reviews:http", "GET", (), "port 'http'"),
    ("bad_host!:80", "GET", (), "is not a host name"),
    ("", "GET", (), "expected HOST[:PORT][/PATH]"),
    ("reviews/a b", "GET", (), "spaces"),
    ("reviews", "FETCH", (), "invalid --method"),
    ("reviews", "GET", ("no-colon",), "invalid --header"),
])
def test_bad_targets_are_usage_errors(text, method, headers, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        parse_target(text, method, headers)


def test_service_with_several_ports_needs_one(exp2):
    service = {"kind": "Service", "metadata": {"name": "reviews", "namespace": "default"},
               "spec": {"clusterIP": "10.96.0.20", "ports": [{"port": 9080}, {"port": 9090}]}}
    with pytest.raises(UsageError, match="has ports 9080, 9090"):
        walk(exp2, "reviews", [service])


# --- robustness -----------------------------------------------------------------------------------------------


def test_every_field_of_a_real_dump_replaced_by_a_wrong_type_never_breaks_the_walk(exp2):
    """A dump from another Envoy release, or an EnvoyFilter's odd patch: the walk answers or says what is
    missing, and never raises anything but the project's errors."""
    dump = copy.deepcopy(exp2)
    dump["configs"] = [c for c in dump["configs"] if not c["@type"].endswith(("BootstrapConfigDump", "SecretsConfigDump"))]
    paths: list[tuple] = []

    def collect(node, path):
        paths.append(path)
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in children:
            collect(child, path + (key,))

    collect(dump, ())
    ctx = AnalysisContext(EvidenceBundle(scope={}, objects=[]))
    for path in paths[1:]:
        for wrong in ([], "x", 7, None, {}):
            mutated = copy.deepcopy(dump)
            holder = mutated
            for key in path[:-1]:
                holder = holder[key]
            holder[path[-1]] = wrong
            for target in ("reviews:9080/", "redis:6379"):
                try:
                    trace_request(XdsIndex.from_dict(mutated), ctx, CLIENT, parse_target(target))
                except MeshDoctorError:
                    pass


def test_plain_text_to_strict_names_the_destination_rule_or_else_the_missing_tls_mode_label(exp2):
    server = {"kind": "Pod", "metadata": {"name": "reviews-v2-0", "namespace": "default", "labels": {"app": "reviews"}},
              "spec": {"containers": [{"name": "app"}, {"name": "istio-proxy"}]},
              "status": {"podIP": "127.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]}}
    strict = {"kind": "PeerAuthentication", "metadata": {"name": "default", "namespace": "istio-system"},
              "spec": {"mtls": {"mode": "STRICT"}}}
    dump = copy.deepcopy(exp2)
    # only the reviews-v2 endpoint (no tlsMode metadata: auto mTLS sends it plain text) stays
    assignment = section(dump, "Endpoints")["dynamic_endpoint_configs"][1]["endpoint_config"]
    assignment["endpoints"][0]["lb_endpoints"] = assignment["endpoints"][0]["lb_endpoints"][1:]
    result = walk(dump, "reviews:9080/", [server, strict])
    assert (result["failedAt"], result["code"]) == ("server", None)
    assert "reviews-v2-0 has no security.istio.io/tlsMode=istio label, so auto mTLS sends it plain text" \
        in hops(result)["server"]["evidence"]
    rule = {"kind": "DestinationRule", "metadata": {"name": "no-tls", "namespace": "default"},
            "spec": {"host": "reviews.default.svc.cluster.local", "trafficPolicy": {"tls": {"mode": "DISABLE"}}}}
    result = walk(dump, "reviews:9080/", [server, strict, rule])
    assert (result["failedAt"], result["code"]) == ("server", "MD0402")
    permissive = {**strict, "spec": {"mtls": {"mode": "PERMISSIVE"}}}
    assert walk(dump, "reviews:9080/", [server, permissive])["verdict"] == "ok"


def test_tls_evidence_names_the_port_level_setting_that_applies(exp2):
    rule = {"kind": "DestinationRule", "metadata": {"name": "redis", "namespace": "default"},
            "spec": {"host": "redis.default.svc.cluster.local", "trafficPolicy": {"portLevelSettings": [
                {"port": {"number": 6379}, "tls": {"mode": "ISTIO_MUTUAL"}},
                {"port": {"number": 7000}, "tls": {"mode": "DISABLE"}}]}}}
    redis = {"kind": "Pod", "metadata": {"name": "redis-0", "namespace": "default", "labels": {"app": "redis"}},
             "spec": {"containers": [{"name": "redis"}]}, "status": {"podIP": "127.0.0.1"}}
    result = walk(exp2, "redis:6379", [rule, redis])
    assert (result["failedAt"], result["code"]) == ("tls", "MD0401")
    evidence = hops(result)["tls"]["evidence"]
    assert "DestinationRule default/redis sets trafficPolicy.portLevelSettings[6379].tls.mode ISTIO_MUTUAL" in evidence
    assert not [line for line in evidence if "7000" in line]
