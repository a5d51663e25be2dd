"""Unit tests of the envoy parsers on synthetic inputs shaped like Envoy's and istioctl's output."""

from __future__ import annotations

import json

import pytest

import envoy_samples as samples
from kubectl_meshdoctor.envoy.access_log import parse_access_log_line, summarize_access_log
from kubectl_meshdoctor.envoy.certs import parse_certs
from kubectl_meshdoctor.envoy.config_dump import ConfigDump, cluster_tls, summarize_config_dump
from kubectl_meshdoctor.envoy.resolv import parse_resolv_conf
from kubectl_meshdoctor.envoy.response_flags import RESPONSE_FLAGS, describe, split_flags
from kubectl_meshdoctor.envoy.server_info import parse_server_info
from kubectl_meshdoctor.envoy.stats import parse_stats
from kubectl_meshdoctor.errors import ParseError
from kubectl_meshdoctor.evidence import (
    TLS_BY_ENDPOINT_LABEL,
    TLS_ISTIO_ALWAYS,
    TLS_NONE,
    TLS_OTHER,
    Certificate,
    ClusterSummary,
    RejectedConfig,
    RouteTarget,
)

REVIEWS = "outbound|9080||reviews.default.svc.cluster.local"
REVIEWS_V1 = "outbound|9080|v1|reviews.default.svc.cluster.local"
REVIEWS_V2 = "outbound|9080|v2|reviews.default.svc.cluster.local"
REDIS = "outbound|6379||redis.default.svc.cluster.local"


def mesh_dump() -> dict:
    return samples.config_dump(
        static_clusters=[{"name": "prometheus_stats", "connect_timeout": "0.25s"}],
        clusters=[
            samples.eds_cluster(REVIEWS),
            samples.headless_cluster(REDIS, samples.istio_tls_socket()),
            samples.headless_cluster("outbound|443||api.example.com", samples.simple_tls_socket()),
            {"name": "PassthroughCluster", "type": "ORIGINAL_DST", "lb_policy": "CLUSTER_PROVIDED"},
            {"name": "BlackHoleCluster", "type": "STATIC"},
            {"name": "dns", "type": "STRICT_DNS", "transport_socket": samples.RAW_BUFFER},
        ],
        listeners=[
            samples.http_listener("0.0.0.0_9080", rds="9080"),
            samples.tcp_listener("0.0.0.0_6379", REDIS),
            samples.tcp_listener("0.0.0.0_7000", weighted=[REVIEWS_V1, REVIEWS_V2]),
        ],
        routes=[samples.route_config("9080", {"reviews:9080": [REVIEWS_V1, [REVIEWS, REVIEWS_V2]]})],
        rejected_listeners=[("0.0.0.0_6380", "duplicate address")],
    )


EXPECTED_CLUSTERS = (
    ClusterSummary("prometheus_stats", "STATIC", TLS_NONE),
    ClusterSummary(REVIEWS, "EDS", TLS_BY_ENDPOINT_LABEL),
    ClusterSummary(REDIS, "ORIGINAL_DST", TLS_ISTIO_ALWAYS),
    ClusterSummary("outbound|443||api.example.com", "ORIGINAL_DST", TLS_OTHER),
    ClusterSummary("PassthroughCluster", "ORIGINAL_DST", TLS_NONE),
    ClusterSummary("BlackHoleCluster", "STATIC", TLS_NONE),
    ClusterSummary("dns", "STRICT_DNS", TLS_NONE),
)
EXPECTED_TARGETS = (
    RouteTarget("9080", "reviews:9080", REVIEWS_V1),
    RouteTarget("9080", "reviews:9080", REVIEWS),
    RouteTarget("9080", "reviews:9080", REVIEWS_V2),
    RouteTarget("0.0.0.0_6379", "", REDIS),
    RouteTarget("0.0.0.0_7000", "", REVIEWS_V1),
    RouteTarget("0.0.0.0_7000", "", REVIEWS_V2),
)


@pytest.mark.parametrize("spelling", ["snake_case", "camelCase"])
def test_summary_of_an_istio_shaped_dump(spelling):
    document = mesh_dump() if spelling == "snake_case" else samples.camel_case(mesh_dump())
    summary = summarize_config_dump(json.dumps(document))
    assert summary.clusters == EXPECTED_CLUSTERS
    assert summary.route_targets == EXPECTED_TARGETS
    assert summary.rejected == (RejectedConfig("listener", "0.0.0.0_6380", "duplicate address"),)
    assert summary.listener_count == 3
    assert summary.access_log_configured is True


def test_v2alpha_type_urls_are_read():
    text = json.dumps(mesh_dump()).replace("envoy.admin.v3.", "envoy.admin.v2alpha.")
    summary = summarize_config_dump(text.encode())
    assert summary.clusters == EXPECTED_CLUSTERS
    assert summary.listener_count == 3


def test_v2_cluster_with_tls_context_and_legacy_filter_names():
    cluster = {"name": "legacy", "type": "EDS", "tls_context": {"common_tls_context": {"tls_certificates": [
        {"certificate_chain": {"filename": "/etc/certs/cert-chain.pem"}}]}}}
    listener = {"name": "0.0.0.0_80", "filter_chains": [{"filters": [
        {"name": "envoy.tcp_proxy", "config": {"cluster": "legacy"}}]}]}
    document = {"configs": [
        {"@type": "type.googleapis.com/envoy.admin.v2alpha.ClustersConfigDump", "dynamic_active_clusters": [{"cluster": cluster}]},
        {"@type": "type.googleapis.com/envoy.admin.v2alpha.ListenersConfigDump", "dynamic_active_listeners": [{"listener": listener}]},
    ]}
    summary = summarize_config_dump(json.dumps(document))
    assert summary.clusters == (ClusterSummary("legacy", "EDS", TLS_ISTIO_ALWAYS),)
    assert summary.route_targets == (RouteTarget("0.0.0.0_80", "", "legacy"),)
    assert summary.access_log_configured is False


@pytest.mark.parametrize(
    ("socket", "expected"),
    [
        (samples.istio_tls_socket(alpn=False), TLS_ISTIO_ALWAYS),  # SDS names alone are enough
        ({"name": "envoy.transport_sockets.internal_upstream", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.internal_upstream.v3.InternalUpstreamTransport",
            "transport_socket": samples.istio_tls_socket()}}, TLS_ISTIO_ALWAYS),
        ({"name": "envoy.transport_sockets.tap", "typed_config": {"transport_socket": {
            "name": "internal_upstream", "typed_config": {"transport_socket": samples.RAW_BUFFER}}}}, TLS_NONE),
        ({"name": "envoy.transport_sockets.alts", "typed_config": {"@type": "x.Alts"}}, TLS_OTHER),
        (samples.simple_tls_socket(), TLS_OTHER),
    ],
)
def test_transport_socket_classification(socket, expected):
    assert cluster_tls({"name": "c", "transport_socket": socket}) == expected


def test_matches_without_tls_mode_fall_back_to_the_cluster_socket():
    cluster = {"transport_socket_matches": [{"name": "other", "match": {"zone": "a"}, "transport_socket": samples.RAW_BUFFER}],
               "transport_socket": samples.istio_tls_socket()}
    assert cluster_tls(cluster) == TLS_ISTIO_ALWAYS


def test_custom_cluster_type_and_numeric_type():
    document = samples.config_dump(clusters=[
        {"name": "agg", "cluster_type": {"name": "envoy.clusters.aggregate"}},
        {"name": "num", "type": 4},
    ], with_listeners_section=False)
    summary = summarize_config_dump(json.dumps(document))
    assert [c.discovery for c in summary.clusters] == ["envoy.clusters.aggregate", "ORIGINAL_DST"]
    assert summary.access_log_configured is None
    assert summary.listener_count == 0


def test_inline_route_config_of_a_listener_and_access_log_absent():
    inline = samples.route_config("", {"backend": ["agent"]})
    listener = samples.http_listener("0.0.0.0_15021", inline_route=inline, with_access_log=False)
    summary = summarize_config_dump(json.dumps(samples.config_dump(static_listeners=[listener])))
    assert summary.route_targets == (RouteTarget("0.0.0.0_15021", "backend", "agent"),)
    assert summary.access_log_configured is False
    assert summary.listener_count == 1


def test_listener_level_access_log_counts():
    listener = samples.tcp_listener("0.0.0.0_1", "c")
    listener["access_log"] = samples.access_log()
    summary = summarize_config_dump(json.dumps(samples.config_dump(listeners=[listener])))
    assert summary.access_log_configured is True


def test_rejected_cluster_route_and_secret():
    document = {"configs": [
        {"@type": samples.ADMIN_V3 + "ClustersConfigDump", "dynamic_active_clusters": [
            {"cluster": {"name": "c1"}, "error_state": {"details": "bad cluster"}}]},
        {"@type": samples.ADMIN_V3 + "RoutesConfigDump", "dynamic_route_configs": [
            {"error_state": {"failed_configuration": {"name": "r1"}, "details": "bad route"}}]},
        {"@type": samples.ADMIN_V3 + "SecretsConfigDump", "dynamic_active_secrets": [
            {"name": "default", "secret": {"name": "default"}, "errorState": {"details": "bad secret"}}]},
    ]}
    dump = ConfigDump(document)
    assert dump.rejected() == (
        RejectedConfig("cluster", "c1", "bad cluster"),
        RejectedConfig("route", "r1", "bad route"),
        RejectedConfig("secret", "default", "bad secret"),
    )
    assert [s.name for s in dump.secrets()] == ["default"]


def test_single_resource_dump_from_a_resource_query():
    document = {"configs": [{"@type": samples.ADMIN_V3 + "ClustersConfigDump.DynamicCluster",
                             "cluster": samples.eds_cluster(REVIEWS)}]}
    assert summarize_config_dump(json.dumps(document)).clusters == (ClusterSummary(REVIEWS, "EDS", TLS_BY_ENDPOINT_LABEL),)


@pytest.mark.parametrize(
    "raw",
    [b"", b"   ", b"not json", b"[]", b'{"configs": 3}', b'{"nothing": []}', b'{"configs": [1]}',
     b'{"configs": [{"@type": 5}]}', b"\xff\xfe{}", b'{"configs": [' * 100000,
     json.dumps({"configs": [{"@type": samples.ADMIN_V3 + "ClustersConfigDump", "dynamic_active_clusters": [
         {"cluster": {"name": "x", "transport_socket_matches": "oops"}}]}]}).encode(),
     json.dumps({"configs": [{"@type": samples.ADMIN_V3 + "ClustersConfigDump", "static_clusters": [
         {"cluster": {"name": 7}}]}]}).encode()],
)
def test_bad_config_dumps_raise_parse_error(raw):
    with pytest.raises(ParseError):
        summarize_config_dump(raw)


def test_truncated_dump_raises_parse_error():
    raw = samples.to_bytes(mesh_dump())
    with pytest.raises(ParseError, match="not valid JSON"):
        summarize_config_dump(raw[: len(raw) // 2])


# --- certs ------------------------------------------------------------------------------------------

CERTS = {"certificates": [{
    "ca_cert": [{"serial_number": "01", "subject_alt_names": [], "days_until_expiration": "3649",
                 "valid_from": "2026-01-01T00:00:00Z", "expiration_time": "2036-01-01T00:00:00Z"}],
    "cert_chain": [{"serial_number": "02", "subject_alt_names": [{"uri": "spiffe://cluster.local/ns/a/sa/b"}, {"dns": "b.a"}],
                    "days_until_expiration": "0", "valid_from": "2026-01-01T00:00:00Z",
                    "expiration_time": "2026-01-02T00:00:00Z"}],
}]}


@pytest.mark.parametrize("spelling", ["snake_case", "camelCase"])
def test_certs(spelling):
    document = CERTS if spelling == "snake_case" else samples.camel_case(CERTS)
    document = {"certificates": document["certificates"] * 2}  # Envoy repeats certs per TLS context
    assert parse_certs(json.dumps(document)) == (
        Certificate("workload", "02", ("spiffe://cluster.local/ns/a/sa/b", "b.a"),
                    "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
        Certificate("ca", "01", (), "2026-01-01T00:00:00Z", "2036-01-01T00:00:00Z"),
    )


def test_no_certificates_is_valid():
    assert parse_certs(b'{"certificates": []}') == ()
    assert parse_certs(b'{"certificates": [{}]}') == ()


@pytest.mark.parametrize("raw", [b"", b"{}", b'{"certificates": {}}', b'{"certificates": [{"cert_chain": [3]}]}',
                                 b'{"certificates": [{"ca_cert": [{"subject_alt_names": [{"x": 1}]}]}]}',
                                 b'{"certificates": [{"ca_cert": [{"serial_number": 12}]}]}'])
def test_bad_certs(raw):
    with pytest.raises(ParseError):
        parse_certs(raw)


# --- stats ------------------------------------------------------------------------------------------

STATS_TEXT = """cluster_manager.cds.version_text: "2026-11-23T12:41:00Z/3"
cluster_manager.cds.update_success: 3
cluster.outbound|9080||reviews.default.svc.cluster.local.upstream_cx_total: 12
server.state: 0
cluster.x.upstream_cx_length_ms: P0(nan,0) P25(nan,0) P50(nan,0)
cluster.x.upstream_rq_per_cx: No recorded values
"""


def test_stats_text():
    assert parse_stats(STATS_TEXT) == {
        "cluster_manager.cds.update_success": 3,
        "cluster.outbound|9080||reviews.default.svc.cluster.local.upstream_cx_total": 12,
        "server.state": 0,
    }


def test_stats_json():
    document = {"stats": [{"name": "server.state", "value": 2}, {"name": "v", "value": "text"},
                          {"histograms": {"supported_quantiles": [0], "computed_quantiles": []}}]}
    assert parse_stats(json.dumps(document)) == {"server.state": 2}


def test_empty_stats_answer_is_no_stats():
    assert parse_stats(b"") == {}


@pytest.mark.parametrize("raw", ["<html>503</html>", "server.state: 0\nserver.live", "server.state:", '{"stats": 3}',
                                 '{"stats": [{"value": 1}]}', "{", b"\xc3("])
def test_bad_stats(raw):
    with pytest.raises(ParseError):
        parse_stats(raw)


# --- server_info ------------------------------------------------------------------------------------


def test_server_info():
    raw = json.dumps({"version": "abc/1.40.0/Clean/RELEASE/BoringSSL", "state": "PRE_INITIALIZING",
                      "uptime_current_epoch": "12s", "uptime_all_epochs": "12s"})
    info = parse_server_info(raw)
    assert (info.state, info.version, info.uptime_seconds) == ("PRE_INITIALIZING", "abc/1.40.0/Clean/RELEASE/BoringSSL", 12)
    camel = parse_server_info(json.dumps({"version": "v", "state": 3, "uptimeCurrentEpoch": "1.5s"}))
    assert (camel.state, camel.uptime_seconds) == ("INITIALIZING", 1)
    assert parse_server_info('{"version": "v", "state": "LIVE"}').uptime_seconds is None


@pytest.mark.parametrize("raw", ["", "{}", '{"state": "LIVE"}', '{"state": 1.5, "version": "v"}',
                                 '{"state": "LIVE", "version": "v", "uptime_current_epoch": "forever"}', "[1]"])
def test_bad_server_info(raw):
    with pytest.raises(ParseError):
        parse_server_info(raw)


# --- resolv.conf ------------------------------------------------------------------------------------


def test_resolv_conf():
    text = (
        "# written by kubelet\nsearch default.svc.cluster.local svc.cluster.local cluster.local\n"
        "nameserver 10.96.0.10\nnameserver 10.96.0.11 # second\noptions ndots:5\n; other comment\noptions edns0\n"
    )
    parsed = parse_resolv_conf(text.encode())
    assert parsed.nameservers == ("10.96.0.10", "10.96.0.11")
    assert parsed.search == ("default.svc.cluster.local", "svc.cluster.local", "cluster.local")
    assert parsed.options == ("ndots:5", "edns0")


def test_resolv_conf_last_search_or_domain_wins_and_no_nameserver_is_valid():
    parsed = parse_resolv_conf("search a b\ndomain example.com\n# nothing else\n")
    assert parsed == parse_resolv_conf("domain example.com")
    assert parsed.nameservers == () and parsed.search == ("example.com",)


@pytest.mark.parametrize("raw", [b"", b"  \n", b"\xff\xfe", "nameserver 1.1.1.1\x00"])
def test_bad_resolv_conf(raw):
    with pytest.raises(ParseError):
        parse_resolv_conf(raw)


# --- access log and response flags ------------------------------------------------------------------

TCP_FAILURE = ('[2026-11-23T12:31:15.496Z] "- - -" 0 UF,URX - - "TLS_error:|268435703:SSL_routines:OPENSSL_internal:'
               'WRONG_VERSION_NUMBER:TLS_error_end" 0 0 1 - "-" "-" "-" "-" "10.0.0.7:6379" ' + REDIS +
               " - 10.0.0.5:6379 10.0.0.4:49784 - -")
HTTP_OK = ('[2026-11-23T12:34:16.255Z] "GET / HTTP/1.1" 200 - via_upstream - "-" 0 476 2 1 "-" "curl/7.88.1" '
           '"bca4" "reviews:9080" "10.0.0.9:9080" ' + REVIEWS + " 10.0.0.5:42258 10.0.0.5:9080 10.0.0.4:46540 - default")
ENVOY_LINE = "[2026-11-23 12:31:15.496][12][info][upstream] [source/common/upstream/cluster_manager_impl.cc:240] cm init"
AGENT_LINE = "2026-11-23T12:31:15.496Z\tinfo\txdsproxy\tconnected to upstream XDS server: istiod.istio-system.svc:15012"


def test_text_line_fields():
    entry = parse_access_log_line(TCP_FAILURE)
    assert entry is not None
    assert entry.flags == ("UF", "URX")
    assert entry.response_code == 0
    assert entry.upstream_cluster == REDIS
    assert entry.upstream_host == "10.0.0.7:6379"
    assert "WRONG_VERSION_NUMBER" in entry.transport_failure_reason


def test_flag_order_does_not_matter_and_kubectl_timestamps_are_stripped():
    swapped = parse_access_log_line("2026-11-23T12:31:15.500000000Z " + TCP_FAILURE.replace("UF,URX", "URX,UF"))
    assert swapped is not None and swapped.flags == ("UF", "URX")


def test_json_line():
    line = json.dumps({"response_code": 503, "response_flags": "URX,UF", "upstream_cluster": REVIEWS,
                       "upstream_host": "10.0.0.9:9080", "upstream_transport_failure_reason": "delayed_connect_error:_Connection_refused"})
    entry = parse_access_log_line(line)
    assert entry is not None and entry.flags == ("UF", "URX") and entry.response_code == 503
    assert parse_access_log_line('{"response_flags": "-", "response_code": null, "upstream_cluster": null}').flags == ()
    assert parse_access_log_line('{"level": "info", "msg": "hello"}') is None
    assert parse_access_log_line('{"response_flags": 3, "response_code": 200}') is None


def test_summary_counts_and_bounds_samples():
    log = "\n".join([ENVOY_LINE, AGENT_LINE, HTTP_OK] + [TCP_FAILURE] * 5 + ["garbage ] \" line"]) + "\n"
    summary = summarize_access_log(log.encode(), max_samples_per_key=2)
    assert summary.lines_read == 9
    assert summary.access_lines == 6
    assert summary.failure_counts == (("UF,URX", REDIS, 5),)
    assert len(summary.failures) == 2
    assert all(len(entry.line) <= 400 for entry in summary.failures)


def test_long_lines_are_trimmed_and_bad_bytes_tolerated():
    line = TCP_FAILURE.replace('"- - -"', '"GET /' + "a" * 2000 + ' HTTP/1.1"')
    summary = summarize_access_log(b"\xff\xfe\n" + line.encode())
    assert summary.lines_read == 2 and summary.access_lines == 1
    assert len(summary.failures[0].line) == 400


def test_access_logging_off_reads_lines_but_recognises_none():
    summary = summarize_access_log("\n".join([ENVOY_LINE, AGENT_LINE] * 10))
    assert (summary.lines_read, summary.access_lines, summary.failures) == (20, 0, ())


def test_response_flags_table():
    assert set(RESPONSE_FLAGS) >= {"UF", "URX", "NR", "NC", "UH", "UC", "UR", "DC"}
    assert describe("UF").startswith("UF (UpstreamConnectionFailure): ")
    assert describe("NoClusterFound").startswith("NC (NoClusterFound)")
    assert "not a response flag" in describe("ZZ")
    assert split_flags("URX,UF") == ("UF", "URX") and split_flags("-") == ()
    for flag in RESPONSE_FLAGS.values():
        assert flag.scope in ("HTTP", "HTTP+TCP") and flag.meaning


def test_non_text_alpn_entries_are_ignored_not_a_crash():
    """Found by fuzzing: an unhashable ALPN entry once raised TypeError."""
    socket = samples.istio_tls_socket(alpn=False)
    socket["typed_config"]["common_tls_context"]["alpn_protocols"] = [[["istio"]], {"a": 1}]
    assert cluster_tls({"transport_socket": socket}) == TLS_ISTIO_ALWAYS  # still Istio by its SDS names
