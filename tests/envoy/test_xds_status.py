"""Reducers of Envoy's and istiod's sides of proxy-status, on output real Envoy 1.40 and istiod print."""

from __future__ import annotations

import pytest

from kubectl_meshdoctor.envoy.config_dump import ConfigDump
from kubectl_meshdoctor.envoy.stats import parse_stats
from kubectl_meshdoctor.envoy.syncz import parse_syncz, pod_of_node_id
from kubectl_meshdoctor.envoy.xds_log import summarize_xds_log
from kubectl_meshdoctor.envoy.xds_status import route_version, xds_status
from kubectl_meshdoctor.errors import ParseError
from kubectl_meshdoctor.evidence import ProxyConfig, ProxyEvidence, XdsVersion

# The collector's stats answer (usedonly: zero counters left out) of a lab sidecar on Istio's
# stats_matcher, 5 s after its xDS server went away; the text readout is skipped by parse_stats.
LOST_STATS = b"""cluster_manager.cds.version_text: "2026-11-20T09:00:00Z/1"
cluster.xds-grpc.upstream_cx_active: 0
cluster.xds-grpc.upstream_cx_connect_fail: 8
cluster.xds-grpc.upstream_cx_total: 10
cluster_manager.cds.update_failure: 4
cluster_manager.cds.update_success: 1
cluster_manager.cds.update_time: 1796059766198
listener_manager.lds.update_failure: 4
listener_manager.lds.update_success: 1
listener_manager.lds.update_time: 1796059766276
listener_manager.workers_started: 1
server.state: 0
"""


def test_xds_status_of_a_sidecar_that_lost_istiod():
    versions = (XdsVersion("CDS", "2026-11-20T09:00:00Z/1", "2026-11-30T17:29:26.2Z", 3),)
    status = xds_status(ProxyEvidence(pod="a/b", stats=parse_stats(LOST_STATS), config=ProxyConfig(xds_versions=versions)))
    assert (status.cds.update_success, status.cds.update_failure, status.cds.update_time_ms) == (1, 4, 1796059766198)
    assert status.cds.version == "2026-11-20T09:00:00Z/1" and status.lds.version == ""
    assert (status.connections_active, status.connections_total, status.connect_failures) == (0, 10, 8)


def test_xds_status_without_stats_or_connection_counters():
    assert xds_status(ProxyEvidence(pod="a/b")) is None
    status = xds_status(ProxyEvidence(pod="a/b", stats={"cluster_manager.cds.update_success": 2}))
    assert status.cds.update_success == 2 and status.connections_active is None and status.lds.update_success == 0
    assert route_version(ProxyEvidence(pod="a/b")) is None


def test_versions_and_update_times_from_a_real_config_dump(shared_dir):
    dump = ConfigDump.from_raw((shared_dir / "envoy-captures" / "exp2-config_dump.json").read_bytes())
    versions = {v.type: v for v in dump.xds_versions()}
    assert versions["CDS"] == XdsVersion("CDS", "2026-11-23T12:00:00Z/1", "2026-11-23T12:32:48.225Z", 2)
    assert versions["LDS"].version == "2026-11-23T12:40:00Z/2" and versions["RDS"].count == 1
    assert ConfigDump({"configs": []}).xds_versions() == ()


def test_syncz_entries_name_their_pods():
    raw = (b'[{"cluster_id": "Kubernetes", "proxy": "sidecar~10.244.0.8~ledger-export-jrt6x.reports~reports.svc.'
           b'cluster.local", "istio_version": "1.23.4", "cluster_sent": "a", "cluster_acked": "a", '
           b'"listener_sent": "b"}]')
    (entry,) = parse_syncz(raw)
    assert entry.pod == "reports/ledger-export-jrt6x" and entry.istio_version == "1.23.4"
    assert dict((k, (s, a)) for k, s, a in entry.sent_acked) == {
        "cds": ("a", "a"), "lds": ("b", ""), "rds": ("", ""), "eds": ("", "")}
    assert parse_syncz(b"null") == () and parse_syncz(b"[]") == ()
    assert pod_of_node_id("router~10.0.0.1~istio-ingressgateway-5d.istio-system~istio-system.svc.cluster.local") == \
        "istio-system/istio-ingressgateway-5d"
    assert pod_of_node_id("not-a-node-id") == ""
    with pytest.raises(ParseError):
        parse_syncz(b'{"proxy": "x"}')
    with pytest.raises(ParseError):
        parse_syncz(b'[{"cluster_id": "Kubernetes"}]')


def test_xds_log_keeps_the_last_connection_and_failure():
    log = (b"2026-11-30T17:29:26.388703Z\tinfo\txdsproxy\tconnected to upstream XDS server: istiod.istio-system.svc:15012\n"
           b'[2026-11-30T17:29:27.000Z] "GET / HTTP/1.1" 200 - via_upstream - "-" 0 5 1 1 "-" "curl" "x" "a" "b" c\n'
           b"2026-11-30T17:29:26.456447Z\twarn\txdsproxy\tupstream terminated with unexpected error rpc error: "
           b"code = Unavailable desc = error reading from server: EOF\n")
    summary = summarize_xds_log(log)
    assert summary.last_connected == "2026-11-30T17:29:26.388703Z"
    assert summary.upstream_errors == 1 and summary.last_error_time == "2026-11-30T17:29:26.456447Z"
    assert "upstream terminated with unexpected error" in summary.last_error
    assert summarize_xds_log(b"\xff\xfe nothing here\n").upstream_errors == 0
