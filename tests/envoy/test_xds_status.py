"""Reducers of Envoy's and istiod's sides of proxy-status, on output real Envoy 1.40 and istiod print."""

from __future__ import annotations

import pytest

from kubectl_meshdoctor.envoy.syncz import parse_syncz, pod_of_node_id
from kubectl_meshdoctor.envoy.xds_log import summarize_xds_log
from kubectl_meshdoctor.envoy.xds_status import parse_route_versions, parse_xds_stats
from kubectl_meshdoctor.errors import ParseError

# A lab sidecar on Istio's stats_matcher, 5 s after its xDS server went away (XDS_STATS answer)
LOST_STATS = b"""cluster_manager.cds.version_text: "2026-11-20T09:00:00Z/1"
listener_manager.lds.version_text: "2026-11-20T09:00:00Z/1"
cluster.xds-grpc.upstream_cx_active: 0
cluster.xds-grpc.upstream_cx_connect_fail: 8
cluster.xds-grpc.upstream_cx_total: 10
cluster_manager.cds.update_failure: 4
cluster_manager.cds.update_rejected: 0
cluster_manager.cds.update_success: 1
cluster_manager.cds.update_time: 1796059766198
listener_manager.lds.update_failure: 4
listener_manager.lds.update_rejected: 0
listener_manager.lds.update_success: 1
listener_manager.lds.update_time: 1796059766276
"""


def test_xds_stats_of_a_sidecar_that_lost_istiod():
    status = parse_xds_stats(LOST_STATS)
    assert (status.cds.update_success, status.cds.update_failure, status.cds.update_time_ms) == (1, 4, 1796059766198)
    assert status.lds.version == "2026-11-20T09:00:00Z/1"
    assert (status.connections_active, status.connections_total, status.connect_failures) == (0, 10, 8)


def test_xds_stats_without_connection_counters_and_bad_lines():
    status = parse_xds_stats(b"cluster_manager.cds.update_success: 2\n\n")
    assert status.cds.update_success == 2 and status.connections_active is None and status.lds.update_success == 0
    with pytest.raises(ParseError, match="line 1"):
        parse_xds_stats(b"garbage without separator\n")


def test_route_versions_newest_wins_and_empty_answer():
    raw = (b'{"configs": [{"version_info": "v1", "last_updated": "2026-11-30T17:29:26.283Z"},'
           b' {"version_info": "v2", "last_updated": "2026-11-30T17:29:26.295Z"}]}')
    versions = parse_route_versions(raw)
    assert (versions.count, versions.version, versions.last_updated) == (2, "v2", "2026-11-30T17:29:26.295Z")
    assert parse_route_versions(b"{}").count == 0  # Envoy's answer when no dynamic route config exists
    with pytest.raises(ParseError):
        parse_route_versions(b'{"configs": {}}')


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
