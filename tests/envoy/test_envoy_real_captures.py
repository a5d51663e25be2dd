"""The envoy parsers against real Envoy 1.40 captures and istioctl's testdata, read from ../shared."""

from __future__ import annotations

import json
import re

import pytest

from kubectl_meshdoctor.envoy.access_log import summarize_access_log
from kubectl_meshdoctor.envoy.certs import parse_certs
from kubectl_meshdoctor.envoy.config_dump import ConfigDump, summarize_config_dump
from kubectl_meshdoctor.envoy.response_flags import RESPONSE_FLAGS
from kubectl_meshdoctor.envoy.server_info import parse_server_info
from kubectl_meshdoctor.envoy.stats import parse_stats
from kubectl_meshdoctor.evidence import (
    TLS_BY_ENDPOINT_LABEL,
    TLS_ISTIO_ALWAYS,
    TLS_NONE,
    ClusterSummary,
    RouteTarget,
)

REVIEWS = "outbound|9080||reviews.default.svc.cluster.local"
REDIS = "outbound|6379||redis.default.svc.cluster.local"


@pytest.fixture
def captures(shared_dir):
    return shared_dir / "envoy-captures"


@pytest.fixture
def istioctl_testdata(shared_dir):
    return shared_dir / "istio-data" / "istioctl-testdata" / "istioctl" / "pkg"


def clusters_by_name(summary):
    return {cluster.name: cluster for cluster in summary.clusters}


def test_file_xds_dump_with_an_always_tls_headless_cluster(captures):
    for name in ("exp2-config_dump.json", "exp2-config_dump-include_eds.json"):
        summary = summarize_config_dump((captures / name).read_bytes())
        clusters = clusters_by_name(summary)
        assert clusters[REDIS] == ClusterSummary(REDIS, "EDS", TLS_ISTIO_ALWAYS)
        assert clusters[REVIEWS] == ClusterSummary(REVIEWS, "EDS", TLS_BY_ENDPOINT_LABEL)
        assert clusters["prometheus_stats"].tls == TLS_NONE
        assert RouteTarget("9080", "reviews.default.svc.cluster.local:9080", REVIEWS) in summary.route_targets
        assert RouteTarget("0.0.0.0_6379", "", REDIS) in summary.route_targets
        assert summary.listener_count == 2
        assert summary.access_log_configured is True
        assert summary.rejected == ()


def test_ads_dump(captures):
    summary = summarize_config_dump((captures / "exp6-ads-config_dump.json").read_text())
    clusters = clusters_by_name(summary)
    assert clusters[REDIS].tls == TLS_BY_ENDPOINT_LABEL
    assert clusters["xds-grpc"].discovery == "STATIC"
    assert summary.rejected == ()


def test_nacked_listener_is_reported(captures):
    summary = summarize_config_dump((captures / "exp6-nack-config_dump.json").read_bytes())
    assert [(r.resource, r.name) for r in summary.rejected] == [("listener", "0.0.0.0_6380")]
    assert "duplicate address '127.0.0.1:16579'" in summary.rejected[0].details
    assert summary.listener_count == 2  # the refused listener is not serving


def test_certs_capture(captures):
    certs = parse_certs((captures / "exp2-certs.json").read_bytes())
    workload = [c for c in certs if c.role == "workload"]
    ca = [c for c in certs if c.role == "ca"]
    assert [c.serial for c in workload] == ["3bd7975907841000b41598e4f88418fefd13058e"]
    assert workload[0].subject_alt_names == ("spiffe://cluster.local/ns/default/sa/default",)
    assert workload[0].expiration_time == "2026-11-24T12:30:16Z"
    assert [c.serial for c in ca] == ["337516de6b1580ec2648db55b6484a508b74ca76"]


def test_server_info_capture(captures):
    info = parse_server_info((captures / "exp2-server_info.json").read_bytes())
    assert info.state == "LIVE"
    assert "/1.40.0/" in info.version
    assert info.uptime_seconds == 97


def test_stats_capture(captures):
    raw = (captures / "exp2-stats.txt").read_bytes()
    stats = parse_stats(raw)
    assert stats["cluster_manager.cds.update_success"] == 7
    assert stats["cluster_manager.cds.update_rejected"] == 1
    assert stats["cluster_manager.cds.update_attempt"] == 8
    assert "cluster_manager.cds.version_text" not in stats  # a text readout, not a number
    histogram_or_text = sum(1 for line in raw.decode().splitlines() if not re.search(r": -?\d+$", line))
    assert len(stats) == len(raw.decode().splitlines()) - histogram_or_text


def test_access_log_captures(captures):
    labelled = (captures / "exp1-access-log-lines.txt").read_text()
    tls_failures = summarize_access_log(re.sub(r"(?m)^[\w-]+:\s+", "", labelled), max_samples_per_key=10)
    assert tls_failures.access_lines == tls_failures.lines_read == 7
    assert tls_failures.failure_counts == (("UF,URX", REDIS, 6),)
    reasons = " ".join(e.transport_failure_reason for e in tls_failures.failures)
    for reason in ("WRONG_VERSION_NUMBER", "Connection_reset_by_peer", "CERTIFICATE_VERIFY_FAILED"):
        assert reason in reasons

    mixed = summarize_access_log((captures / "exp2-access-log-lines.txt").read_bytes())
    assert mixed.access_lines == 12
    assert dict(((f, c), n) for f, c, n in mixed.failure_counts) == {
        ("NR", ""): 6, ("UF,URX", REDIS): 1, ("UF,URX", REVIEWS): 1}
    http_503 = [e for e in mixed.failures if e.response_code == 503]
    assert http_503[0].upstream_host == "127.0.0.1:29080"  # logged as "URX,UF": order differs by protocol


def test_response_flags_cover_envoys_table(shared_dir):
    reference = json.loads((shared_dir / "istio-data" / "envoy-response-flags.json").read_text())
    assert len(reference["flags"]) == len(RESPONSE_FLAGS)
    for flag in reference["flags"]:
        ours = RESPONSE_FLAGS[flag["short"]]
        assert ours.long == flag["long"]
        assert ours.scope == flag["scope"]


def test_istioctl_proxyconfig_dump(istioctl_testdata):
    summary = summarize_config_dump((istioctl_testdata / "proxyconfig/testdata/config_dump.json").read_bytes())
    clusters = clusters_by_name(summary)
    # internal_upstream wrapping raw_buffer: the ambient-style inbound VIP cluster is plaintext
    assert clusters["inbound-vip|8000|http|httpbin.default.svc.cluster.local"] == ClusterSummary(
        "inbound-vip|8000|http|httpbin.default.svc.cluster.local", "EDS", TLS_NONE)
    assert clusters["agent"].discovery == "STATIC"
    assert RouteTarget("", "backend", "agent") in summary.route_targets  # the unnamed static 15021 listener
    assert summary.access_log_configured is False


def test_istioctl_describe_dumps(istioctl_testdata):
    http = summarize_config_dump((istioctl_testdata / "describe/testdata/describe/http_config.json").read_bytes())
    assert http.clusters == (ClusterSummary("outbound|9080|v1|productpage.default.svc.cluster.local", "EDS", TLS_BY_ENDPOINT_LABEL),)
    assert RouteTarget("http.8080", "*:80", "outbound|9080||productpage.default.svc.cluster.local") in http.route_targets
    tls = summarize_config_dump((istioctl_testdata / "describe/testdata/describe/tls_config.json").read_bytes())
    assert RouteTarget("https.443.https.bookinfo-gateway.default", "*:443",
                       "outbound|9080||productpage.default.svc.cluster.local") in tls.route_targets
    assert tls.access_log_configured is None  # this dump has no listeners section


def test_istioctl_secret_dump(istioctl_testdata):
    dump = ConfigDump.from_raw((istioctl_testdata / "writer/envoy/configdump/testdata/secret/istio/config_dump.json").read_bytes())
    assert [(s.name, s.state) for s in dump.secrets()] == [
        ("default", "active"), ("ROOTCA", "active"), ("configmap://some/thing", "warming")]


def test_every_istioctl_config_dump_summarises(istioctl_testdata):
    dumps = []
    for path in sorted(istioctl_testdata.rglob("*.json")):
        try:
            document = json.loads(path.read_text())
        except ValueError:
            continue  # templates, not JSON
        if isinstance(document, dict) and isinstance(document.get("configs"), list):
            dumps.append(path)
            summary = summarize_config_dump(path.read_bytes())
            assert all(c.name for c in summary.clusters), path
    assert len(dumps) >= 10
