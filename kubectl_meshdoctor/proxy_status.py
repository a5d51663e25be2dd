"""Per pod, what ``istioctl proxy-status`` would show, from both ends: Envoy's and istiod's.

Envoy's side comes from its own stats and config_dump (CDS/LDS/RDS version and last accepted update);
istiod's from /debug/syncz (per type: SYNCED when the proxy acknowledged what istiod last sent, STALE
when not, NOT SENT when nothing of that type was sent). ``-o json`` carries it under each pod's
``proxyStatus``; a side that could not be read is null.
"""

from __future__ import annotations

from kubectl_meshdoctor.checks.proxy_disconnected import epoch_ms_to_iso
from kubectl_meshdoctor.envoy.xds_status import route_version, xds_status
from kubectl_meshdoctor.evidence import IstiodSync, ProxyEvidence, XdsTypeStatus, XdsVersion


def _subscription(status: XdsTypeStatus, dumped: XdsVersion | None) -> dict:
    # the stats' update_time is when the update was accepted; config_dump's last_updated is the fallback
    updated = epoch_ms_to_iso(status.update_time_ms) or (dumped.last_updated if dumped else "")
    return {"version": status.version or None, "lastUpdated": updated or None,
            "updateSuccess": status.update_success, "updateFailure": status.update_failure,
            "updateRejected": status.update_rejected}


def sync_state(sent: str, acked: str) -> str:
    if not sent:
        return "NOT SENT"
    return "SYNCED" if sent == acked else "STALE"


def _istiod_side(sync: IstiodSync) -> dict:
    side: dict = {"connected": sync.connected, "istiod": sync.istiod or None}
    if sync.connected:
        side["istioVersion"] = sync.istio_version or None
        side.update({kind.upper(): sync_state(sent, acked) for kind, sent, acked in sync.sent_acked})
    return side


def proxy_status(proxy: ProxyEvidence | None) -> dict | None:
    """The pod's proxyStatus, or None when neither side was read."""
    status = xds_status(proxy) if proxy is not None else None
    if proxy is None or (status is None and proxy.istiod_sync is None):
        return None
    envoy = None
    if status is not None:
        dumped = {v.type: v for v in (proxy.config.xds_versions if proxy.config else ())}
        envoy = {"CDS": _subscription(status.cds, dumped.get("CDS")), "LDS": _subscription(status.lds, dumped.get("LDS")),
                 "istiodConnections": status.connections_active}
        routes = route_version(proxy)
        if routes is not None:
            envoy["RDS"] = {"version": routes.version or None, "lastUpdated": routes.last_updated or None,
                            "routeConfigs": routes.count}
    return {"envoy": envoy, "istiod": _istiod_side(proxy.istiod_sync) if proxy.istiod_sync else None}
