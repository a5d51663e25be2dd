"""MD0204 ProxyDisconnected: Envoy got its configuration from istiod once, but no longer receives updates.

Anti-pattern: trusting "2/2 READY". pilot-agent stops re-checking the configuration once Envoy was ready,
so a sidecar that lost istiod stays READY and keeps serving with what it has, while new endpoints,
routes and certificates stop arriving. It is the proxy missing from ``istioctl proxy-status``.

Best practice: read what a real sidecar keeps (Istio's bootstrap drops ``control_plane.*``):
- ``cluster_manager.cds`` / ``listener_manager.lds`` ``update_success`` above 0 (it *was* configured:
  otherwise it is MD0201) and ``update_failure`` above 0: Envoy counts one failure per broken or refused
  stream to istiod;
- ``cluster.xds-grpc.upstream_cx_active`` at 0: no connection to istiod now (after a successful
  reconnect the stream is a long-lived connection, so an old failure with an open connection is history);
- pilot-agent's ``xdsproxy`` lines: its upstream stream broke after it last connected;
- istiod's own view (/debug/syncz of every istiod pod): no istiod lists the proxy.
Then link it below, to istiod unavailable (MD0203) or the pod's DNS (MD0301), as MD0201 is.

Observed (real Envoy 1.40 on Istio's stats_matcher, a real gRPC ADS server killed after configuring it):
20 s later ``update_success`` 1, ``update_failure`` 7 for CDS and LDS (one per refused reconnect),
``update_time`` unchanged, ``cluster.xds-grpc.upstream_cx_active`` 0 (``connect_fail`` 6), ``server.state``
LIVE and /ready 200; Envoy logged one ``StreamAggregatedResources gRPC config stream to xds-grpc closed``
warning. In a real pod xds-grpc reaches pilot-agent over a local socket, so ``connect_fail`` stays 0 there:
the failure counters and the agent's log carry the signal, the connection gauge confirms it.

Decisions: the proxy is disconnected when it was configured and its stream failures are current (no open
xds-grpc connection, or a failure logged after the last connection), or when no istiod lists it and its
stream failed, or when its stream failures outnumber its accepted CDS updates. The age of the last
accepted update is evidence, not a condition: a quiet mesh sends no updates for hours. A proxy istiod lists with a type sent but not acknowledged is STALE (warning), unless
Envoy rejected that update, which is MD0202's.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable

from kubectl_meshdoctor.checks.base import Check, finding, moment, parse_time, pod_subject
from kubectl_meshdoctor.checks.context import AnalysisContext
from kubectl_meshdoctor.envoy.xds_status import route_version, xds_status
from kubectl_meshdoctor.evidence import Evidence, ProxyEvidence, XdsStatus, XdsTypeStatus
from kubectl_meshdoctor.findings import Finding, Severity


def epoch_ms_to_iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if ms > 0 else ""


def age(then: str, now: datetime | None) -> str:
    """How long before ``now`` ``then`` was, as "4m" / "2h5m" / "3d"; "" when unknown."""
    moment = parse_time(then) if then else None
    if moment is None or now is None:
        return ""
    seconds = int((now - moment).total_seconds())
    if seconds < 0:
        return ""
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes}m"
    hours = minutes // 60
    return f"{hours}h{minutes % 60}m" if hours < 48 else f"{hours // 24}d"


def stale_types(proxy: ProxyEvidence) -> list[str]:
    """Types istiod sent this proxy without an acknowledgement (proxy-status STALE)."""
    sync = proxy.istiod_sync
    if sync is None or not sync.connected:
        return []
    return [kind for kind, sent, acked in sync.sent_acked if sent and sent != acked]


class ProxyDisconnected(Check):
    name = "ProxyDisconnected"
    codes = ("MD0204",)
    needs = frozenset({Evidence.PROXY_STATS})

    def run(self, ctx: AnalysisContext) -> Iterable[Finding]:
        now = parse_time(ctx.bundle.collected_at or "") or (parse_time(ctx.now_iso) if ctx.now_iso else None)
        for key, proxy in sorted(ctx.proxies.items()):
            status = xds_status(proxy)
            if status is None or not (status.cds.update_success > 0 and status.lds.update_success > 0):
                continue  # never (fully) configured: MD0201's business
            failures = status.cds.update_failure + status.lds.update_failure
            log = proxy.xds_log
            log_broken = bool(log and log.upstream_errors and log.last_error_time >= log.last_connected)
            no_connection = status.connections_active == 0
            unlisted = proxy.istiod_sync is not None and not proxy.istiod_sync.connected
            # Each reconnect after an istiod restart brings a full push (a success): failures outnumbering
            # successes means retries that never got through, even when no other signal is at hand.
            outnumbered = status.cds.update_failure > status.cds.update_success
            if failures and (no_connection or log_broken or unlisted or outnumbered):
                yield self._disconnected(key, proxy, status, now, log_broken, unlisted)
                continue
            stale = stale_types(proxy)
            rejected = status.cds.update_rejected + status.lds.update_rejected
            if stale and not rejected and proxy.istiod_sync is not None:
                yield finding(
                    "MD0204", pod_subject(key),
                    f"istiod {proxy.istiod_sync.istiod} sent {', '.join(t.upper() for t in stale)} to {key} "
                    "without an acknowledgement (proxy-status STALE)",
                    [f"/debug/syncz of {proxy.istiod_sync.istiod}: {kind} sent {sent}, acked {acked or 'nothing'}"
                     for kind, sent, acked in proxy.istiod_sync.sent_acked if kind in stale]
                    + [_subscription("cds", status.cds, now), _subscription("lds", status.lds, now)],
                    pod=key, severity=Severity.WARNING,
                    remediation="A proxy that stays STALE has a slow or broken path to istiod (network) or an "
                    "overloaded istiod: check istiod's CPU and push times (pilot_proxy_convergence_time), scale "
                    "istiod, then restart the pod if it stays STALE.",
                )

    @staticmethod
    def _disconnected(key: str, proxy: ProxyEvidence, status: XdsStatus, now: datetime | None, log_broken: bool,
                      unlisted: bool) -> Finding:
        evidence = [_subscription("cds", status.cds, now), _subscription("lds", status.lds, now)]
        if status.connections_active is not None:
            evidence.append(f"cluster.xds-grpc: {status.connections_active} active connection(s) to istiod"
                            + (f", {status.connect_failures} failed connects" if status.connect_failures else ""))
        routes = route_version(proxy)
        if routes is not None and routes.last_updated:
            evidence.append(f"RDS: {routes.count} route configurations, newest {routes.last_updated} "
                            f"({routes.version})")
        log = proxy.xds_log
        if log is not None and log.last_connected:
            evidence.append(f"pilot-agent last connected to istiod at {log.last_connected}")
        if log_broken and log is not None:
            evidence.append(f"istio-proxy log ({log.upstream_errors} xDS stream failures): {log.last_error}")
        if unlisted:
            evidence.append("no istiod pod lists this proxy in /debug/syncz (absent from istioctl proxy-status)")
        if proxy.readiness is not None and proxy.readiness.ready:
            evidence.append("readiness still 200: the pod stays READY while its configuration goes stale")
        last_update = epoch_ms_to_iso(max(status.cds.update_time_ms, status.lds.update_time_ms))
        since = age(last_update, now)
        moments = [moment(last_update, "last configuration accepted from istiod", key),
                   moment(log.last_error_time if log_broken and log else "", "stream to istiod broke (istio-proxy log)", key)]
        return finding(
            "MD0204", pod_subject(key),
            f"Envoy in {key} was configured by istiod but no longer receives updates: its stream to istiod "
            "keeps failing" + (f" (last accepted update {since} ago)" if since else ""),
            evidence, pod=key, since=moments,
        )


def _subscription(kind: str, status: XdsTypeStatus, now: datetime | None) -> str:
    prefix = "cluster_manager.cds" if kind == "cds" else "listener_manager.lds"
    when = epoch_ms_to_iso(status.update_time_ms)
    since = age(when, now)
    text = (f"{prefix}: update_success {status.update_success}, update_failure {status.update_failure}, "
            f"update_rejected {status.update_rejected}")
    if when:
        text += f"; last accepted update {when}" + (f" ({since} before collection)" if since else "")
    if status.version:
        text += f", version {status.version}"
    return text


CHECK = ProxyDisconnected()
