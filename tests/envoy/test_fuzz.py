"""Fuzzing the envoy parsers: whatever an exec returns, they give a valid value or raise ParseError.

Default sizes keep the file well under a minute on two cores; set MESHDOCTOR_FUZZ_EXAMPLES for a
longer run (e.g. MESHDOCTOR_FUZZ_EXAMPLES=5000).
"""

from __future__ import annotations

import copy
import base64
import json
import os
import typing

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import envoy_samples as samples
from kubectl_meshdoctor.envoy.access_log import summarize_access_log
from kubectl_meshdoctor.envoy.certs import parse_certs
from kubectl_meshdoctor.envoy.secrets import parse_sds_certificates
from kubectl_meshdoctor.envoy.config_dump import summarize_config_dump
from kubectl_meshdoctor.envoy.resolv import parse_resolv_conf
from kubectl_meshdoctor.envoy.server_info import parse_server_info
from kubectl_meshdoctor.envoy.stats import parse_stats
from kubectl_meshdoctor.errors import ParseError
from kubectl_meshdoctor.evidence import (
    AccessLog,
    AccessLogEntry,
    Certificate,
    ClusterSummary,
    ProxyConfig,
    RejectedConfig,
    ResolvConf,
    RouteTarget,
    ServerInfo,
)

EXAMPLES = int(os.environ.get("MESHDOCTOR_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

REVIEWS = "outbound|9080||reviews.default.svc.cluster.local"
REDIS = "outbound|6379||redis.default.svc.cluster.local"


# --- what a valid answer looks like -----------------------------------------------------------------


def strings(values: typing.Iterable[object]) -> bool:
    return all(isinstance(v, str) for v in values)


def valid_proxy_config(value: object) -> bool:
    return (
        isinstance(value, ProxyConfig)
        and all(isinstance(c, ClusterSummary) and strings((c.name, c.discovery, c.tls)) for c in value.clusters)
        and all(isinstance(t, RouteTarget) and strings((t.route_config, t.virtual_host, t.cluster)) for t in value.route_targets)
        and all(isinstance(r, RejectedConfig) and strings((r.resource, r.name, r.details)) for r in value.rejected)
        and isinstance(value.listener_count, int)
        and value.access_log_configured in (True, False, None)
    )


def valid_certs(value: object) -> bool:
    return isinstance(value, tuple) and all(
        isinstance(c, Certificate) and c.role in ("ca", "workload") and strings((c.serial, c.valid_from, c.expiration_time))
        and isinstance(c.subject_alt_names, tuple) and strings(c.subject_alt_names)
        for c in value
    )


def valid_stats(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) for k, v in value.items())


def valid_server_info(value: object) -> bool:
    return (isinstance(value, ServerInfo) and strings((value.state, value.version))
            and (value.uptime_seconds is None or isinstance(value.uptime_seconds, int)))


def valid_resolv(value: object) -> bool:
    return isinstance(value, ResolvConf) and all(
        isinstance(part, tuple) and strings(part) for part in (value.nameservers, value.search, value.options))


def valid_access_log(value: object) -> bool:
    return (
        isinstance(value, AccessLog)
        and 0 <= value.access_lines <= value.lines_read
        and all(isinstance(e, AccessLogEntry) and e.flags and len(e.line) <= 400 for e in value.failures)
        and sum(count for _, _, count in value.failure_counts) >= len(value.failures)
    )


PARSERS: dict[str, tuple[typing.Callable[[typing.Any], object], typing.Callable[[object], bool]]] = {
    "config_dump": (summarize_config_dump, valid_proxy_config),
    "certs": (parse_certs, valid_certs),
    "sds_secrets": (parse_sds_certificates, valid_certs),
    "stats": (parse_stats, valid_stats),
    "server_info": (parse_server_info, valid_server_info),
    "resolv_conf": (parse_resolv_conf, valid_resolv),
    "access_log": (lambda raw: summarize_access_log(raw, max_samples_per_key=2), valid_access_log),
}


def check(parser_name: str, raw: bytes | str) -> None:
    parse, valid = PARSERS[parser_name]
    try:
        result = parse(raw)
    except ParseError:
        return
    assert valid(result), result


# --- seeds: well-formed inputs of each kind, shaped like the real captures ----------------------------


def seed_config_dump() -> dict:
    return samples.config_dump(
        static_clusters=[{"name": "prometheus_stats"}],
        clusters=[samples.eds_cluster(REVIEWS), samples.headless_cluster(REDIS, samples.istio_tls_socket())],
        listeners=[samples.http_listener("0.0.0.0_9080", rds="9080"), samples.tcp_listener("0.0.0.0_6379", REDIS)],
        routes=[samples.route_config("9080", {"reviews:9080": [REVIEWS, [REVIEWS, "b"]]})],
        rejected_listeners=[("0.0.0.0_6380", "duplicate address")],
    )


# A workload certificate and its root as the lab's CA makes them (EC P-256), for the SDS secrets seed.
LEAF_PEM = '-----BEGIN CERTIFICATE-----\nMIIBhjCCASugAwIBAgIUZmTjWlAfyxlKw0A6BH+0pFaWm5MwCgYIKoZIzj0EAwIw\nGDEWMBQGA1UECgwNY2x1c3Rlci5sb2NhbDAeFw0yNjExMzAyMjU5NTdaFw0yNjEy\nMDEyMjU5NTdaMAAwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAATVMS1v5ikus4JN\ngbaHnrZ/evtq5FaRzqYe6/sOox0HLai+CpXkL3J8ZtmgDt9l9FkeBKN2teebjHvv\nT52xoJQ/o2swaTA6BgNVHREBAf8EMDAuhixzcGlmZmU6Ly9jbHVzdGVyLmxvY2Fs\nL25zL2RlZmF1bHQvc2EvZGVmYXVsdDAMBgNVHRMBAf8EAjAAMB0GA1UdJQQWMBQG\nCCsGAQUFBwMBBggrBgEFBQcDAjAKBggqhkjOPQQDAgNJADBGAiEAjMWub/FmEzRl\neIKTRscytutblS1lU/vpkHa4qS7+r+MCIQDkjgQUoDlanbXHyZOGNbN8RAfRAQTL\nFbyEIsKeOycGZA==\n-----END CERTIFICATE-----\n'
ROOT_PEM = '-----BEGIN CERTIFICATE-----\nMIIBVDCB+6ADAgECAhRKyH6PGDQm1sHV/EKU7xpf8pE7SjAKBggqhkjOPQQDAjAY\nMRYwFAYDVQQKDA1jbHVzdGVyLmxvY2FsMB4XDTI2MTEzMDIyNTk1N1oXDTM2MTEy\nNzIyNTk1N1owGDEWMBQGA1UECgwNY2x1c3Rlci5sb2NhbDBZMBMGByqGSM49AgEG\nCCqGSM49AwEHA0IABN7Is3sFUvbtWAHNoIr+vakMijwtp82S7YAiXysDghgJRLf9\nvxEFabHt2SUn0Vl+sVUHilfECyL5gOz8d+egBzSjIzAhMA8GA1UdEwEB/wQFMAMB\nAf8wDgYDVR0PAQH/BAQDAgGGMAoGCCqGSM49BAMCA0gAMEUCICqylH6h4AKl/YZD\nw2q9OI35h6dscxGzTGEZz/nzo0PTAiEAzYaijIH2KI4L8yhglNo9vvy3Es7k/G9b\nbYq8qcc0wrY=\n-----END CERTIFICATE-----\n'
T_DYNAMIC_SECRET = "type.googleapis.com/envoy.admin.v3.SecretsConfigDump.DynamicSecret"


def seed_sds_secrets() -> dict:
    return {"configs": [
        {"@type": T_DYNAMIC_SECRET, "name": "default", "secret": {"tls_certificate": {
            "certificate_chain": {"inline_bytes": base64.b64encode(LEAF_PEM.encode()).decode()}}}},
        {"@type": T_DYNAMIC_SECRET, "name": "ROOTCA", "secret": {"validation_context": {
            "trusted_ca": {"inline_string": ROOT_PEM}}}}]}


JSON_SEEDS: dict[str, typing.Callable[[], typing.Any]] = {
    "sds_secrets": seed_sds_secrets,
    "config_dump": seed_config_dump,
    "certs": lambda: {"certificates": [{
        "ca_cert": [{"serial_number": "33", "subject_alt_names": [], "days_until_expiration": "3649",
                     "valid_from": "2026-11-23T12:30:15Z", "expiration_time": "2036-11-20T12:30:15Z"}],
        "cert_chain": [{"serial_number": "3b", "subject_alt_names": [{"uri": "spiffe://cluster.local/ns/default/sa/default"}],
                        "days_until_expiration": "0", "valid_from": "2026-11-23T12:30:16Z",
                        "expiration_time": "2026-11-24T12:30:16Z"}]}]},
    "server_info": lambda: {"version": "9e55/1.40.0/Clean/RELEASE/BoringSSL", "state": "LIVE",
                            "uptime_current_epoch": "97s", "command_line_options": {"concurrency": 2}},
    "stats": lambda: {"stats": [{"name": "server.state", "value": 0}, {"name": "cluster_manager.cds.update_success", "value": 7},
                                {"histograms": {"supported_quantiles": [0, 25], "computed_quantiles": []}}]},
}

TCP_LINE = ('[2026-11-23T12:31:15.496Z] "- - -" 0 UF,URX - - "TLS_error:|268435703:SSL_routines:WRONG_VERSION_NUMBER:TLS_error_end" '
            '0 0 1 - "-" "-" "-" "-" "127.0.0.1:26379" ' + REDIS + " - 127.0.0.1:16379 127.0.0.1:49784 - -")
HTTP_LINE = ('[2026-11-23T12:34:15.720Z] "GET /reviews/1 HTTP/1.1" 503 URX,UF upstream_reset_before_response_started{x} - '
             '"delayed_connect_error:_Connection_refused" 0 121 20 - "-" "curl/7.88.1" "f64c" "reviews:9080" '
             '"127.0.0.1:29080" ' + REVIEWS + " - 127.0.0.1:19080 127.0.0.1:46528 - default")

TEXT_SEEDS: dict[str, str] = {
    "config_dump": json.dumps(seed_config_dump(), indent=1),
    "certs": json.dumps(JSON_SEEDS["certs"](), indent=1),
    "sds_secrets": json.dumps(seed_sds_secrets(), indent=1),
    "server_info": json.dumps(JSON_SEEDS["server_info"](), indent=1),
    "stats": "cluster_manager.cds.version_text: \"v3\"\ncluster_manager.cds.update_success: 7\nserver.state: 0\n"
             "cluster.x.upstream_cx_length_ms: P0(nan,0) P25(nan,0)\ncluster.x.upstream_rq_per_cx: No recorded values\n",
    "resolv_conf": "# kubelet\nsearch default.svc.cluster.local svc.cluster.local cluster.local\n"
                   "nameserver 10.96.0.10\noptions ndots:5\n",
    "access_log": "\n".join([
        "2026-11-23T12:31:15.496Z\tinfo\txdsproxy\tconnected to upstream XDS server",
        "[2026-11-23 12:31:15.496][12][warning][config] StreamAggregatedResources gRPC config stream closed",
        TCP_LINE, HTTP_LINE,
        json.dumps({"response_code": 503, "response_flags": "NC", "upstream_cluster": None, "upstream_host": "-",
                    "upstream_transport_failure_reason": None}),
    ]),
}


# --- strategies -------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False)
    | st.text(max_size=12) | st.sampled_from(["istio", "tlsMode", "EDS", "-", "UF,URX", "12s", ""]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["name", "cluster", "type", "match", "tlsMode", "typed_config", "@type", "routes", "x"])
        | st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def paths(document: typing.Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(document, dict):
        for key, value in document.items():
            found.extend(paths(value, prefix + (key,)))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found.extend(paths(value, prefix + (index,)))
    return found


@st.composite
def mutated_json(draw, parser_name: str) -> bytes:
    """A seed document with one value replaced by another type, a key dropped, or deep nesting spliced in."""
    document = copy.deepcopy(JSON_SEEDS[parser_name]())
    where = draw(st.sampled_from(paths(document)[1:]))
    parent = document
    for step in where[:-1]:
        parent = parent[step]
    action = draw(st.sampled_from(["replace", "delete", "nest"]))
    if action == "delete" and isinstance(parent, dict):
        del parent[where[-1]]
    elif action == "nest":
        parent[where[-1]] = "@@NEST@@"
    else:
        parent[where[-1]] = draw(json_values)
    text = json.dumps(document)
    depth = draw(st.sampled_from([50, 900, 5000]))
    return text.replace('"@@NEST@@"', "[" * depth + "]" * depth).encode()


@st.composite
def damaged(draw, parser_name: str) -> bytes:
    """A seed cut short and/or with a few bytes overwritten, as a broken exec stream would give."""
    raw = bytearray(TEXT_SEEDS[parser_name].encode())
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        index = draw(st.integers(min_value=0, max_value=len(raw) - 1))
        raw[index] = draw(st.integers(min_value=0, max_value=255))
    if draw(st.booleans()):
        raw = raw[: draw(st.integers(min_value=0, max_value=len(raw)))]
    return bytes(raw)


# --- the properties ---------------------------------------------------------------------------------


@pytest.mark.parametrize("parser_name", sorted(PARSERS))
@FUZZ
@given(raw=st.binary(max_size=2000) | st.text(max_size=2000))
def test_arbitrary_input(parser_name, raw):
    check(parser_name, raw)


@pytest.mark.parametrize("parser_name", sorted(PARSERS))
@FUZZ
@given(data=st.data())
def test_damaged_real_shaped_input(parser_name, data):
    check(parser_name, data.draw(damaged(parser_name)))


@pytest.mark.parametrize("parser_name", sorted(JSON_SEEDS))
@FUZZ
@given(data=st.data())
def test_json_with_wrong_types_missing_keys_and_deep_nesting(parser_name, data):
    check(parser_name, data.draw(mutated_json(parser_name)))


@FUZZ
@given(lines=st.lists(st.sampled_from([TCP_LINE, HTTP_LINE, "noise", ""]) | st.text(max_size=300), max_size=50),
       samples_per_key=st.integers(min_value=0, max_value=4))
def test_access_log_bounds(lines, samples_per_key):
    summary = summarize_access_log("\n".join(lines), max_samples_per_key=samples_per_key)
    assert valid_access_log(summary)
    for flags, cluster, count in summary.failure_counts:
        kept = [e for e in summary.failures if (",".join(e.flags), e.upstream_cluster) == (flags, cluster)]
        assert len(kept) == min(count, samples_per_key)


def test_seeds_parse_cleanly():
    """The fuzzing starts from inputs the parsers accept, so mutations explore near valid input."""
    for parser_name, text in TEXT_SEEDS.items():
        parse, valid = PARSERS[parser_name]
        assert valid(parse(text))
    for parser_name, seed in JSON_SEEDS.items():
        parse, valid = PARSERS[parser_name]
        assert valid(parse(json.dumps(seed())))
