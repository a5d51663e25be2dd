"""Envoy's own record of its xDS stream to istiod: Envoy's side of ``istioctl proxy-status``.

Istio's bootstrap keeps only some stats (its ``stats_matcher`` inclusion list: ``cluster_manager``,
``listener_manager``, ``server``, ``cluster.xds-grpc``, ...), so ``control_plane.connected_state`` is
not there on a default sidecar. What is there, and is enough: the CDS and LDS subscription counters
(``update_success`` / ``update_failure`` / ``update_rejected``), when the last accepted update arrived
(``update_time``, ms since the epoch), and the connection counters of ``cluster.xds-grpc``, the cluster
Envoy reaches istiod through. They ride in the collector's one stats request (their names are in
``collect.admin_requests.STATS_READ``), and the versions come from the config_dump it reads anyway (RDS stats are outside
Istio's inclusion list): proxy-status costs no exec of its own.
"""

from __future__ import annotations

from typing import Mapping

from kubectl_meshdoctor.evidence import ProxyEvidence, XdsStatus, XdsTypeStatus, XdsVersion

_XDS_CLUSTER = "cluster.xds-grpc.upstream_cx_"


def _subscription(stats: Mapping[str, int], prefix: str, version: XdsVersion | None) -> XdsTypeStatus:
    # with ``usedonly`` a counter still at 0 is absent: missing means 0
    return XdsTypeStatus(update_success=stats.get(f"{prefix}.update_success", 0),
                         update_failure=stats.get(f"{prefix}.update_failure", 0),
                         update_rejected=stats.get(f"{prefix}.update_rejected", 0),
                         update_time_ms=stats.get(f"{prefix}.update_time", 0),
                         version=version.version if version else "")


def xds_status(proxy: ProxyEvidence) -> XdsStatus | None:
    """The proxy's xDS status from its stats (and config_dump versions); None without stats."""
    stats = proxy.stats
    if stats is None:
        return None
    versions = {v.type: v for v in (proxy.config.xds_versions if proxy.config else ())}
    return XdsStatus(cds=_subscription(stats, "cluster_manager.cds", versions.get("CDS")),
                     lds=_subscription(stats, "listener_manager.lds", versions.get("LDS")),
                     connections_active=stats.get(f"{_XDS_CLUSTER}active"),
                     connections_total=stats.get(f"{_XDS_CLUSTER}total"),
                     connect_failures=stats.get(f"{_XDS_CLUSTER}connect_fail"))


def route_version(proxy: ProxyEvidence) -> XdsVersion | None:
    """RDS as the config_dump shows it (None when unknown)."""
    return next((v for v in (proxy.config.xds_versions if proxy.config else ()) if v.type == "RDS"), None)
