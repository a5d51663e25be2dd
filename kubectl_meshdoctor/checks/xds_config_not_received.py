"""MD0201 XdsConfigNotReceived: Envoy got no (or not all) configuration from istiod.

Anti-pattern: reading "1/2 READY" and restarting the pod, or blaming the application, when the sidecar
never received its listeners and clusters from istiod.

Best practice: judge the proxy the way pilot-agent's readiness probe does, from the same counters
(``cluster_manager.cds.update_success``, ``listener_manager.lds.update_success`` and their
``update_rejected``), and quote its verdict word for word so it can be matched with the agent's
``Envoy proxy is NOT ready: ...`` log line. Then look *below* it (istiod, cluster DNS) for the reason.

Why: a proxy without CDS/LDS never turns LIVE, so the kubelet probe fails and the Service sends it no
traffic. The failure is almost never in the pod itself: istiod is down, or the pod cannot resolve or
reach ``istiod.istio-system.svc``. The failure tree links this finding to those causes.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from kubectl_meshdoctor.checks.base import Check, finding, pod_subject
from kubectl_meshdoctor.checks.context import AnalysisContext
from kubectl_meshdoctor.checks.sidecar_not_ready import readiness_detail
from kubectl_meshdoctor.evidence import Evidence
from kubectl_meshdoctor.findings import Finding

CDS_SUCCESS = "cluster_manager.cds.update_success"
CDS_REJECTED = "cluster_manager.cds.update_rejected"
LDS_SUCCESS = "listener_manager.lds.update_success"
LDS_REJECTED = "listener_manager.lds.update_rejected"
SERVER_STATE = "server.state"
WORKERS_STARTED = "listener_manager.workers_started"

# Envoy's admin.v3.ServerInfo.State, as the integer gauge ``server.state`` carries it.
SERVER_STATES = {0: "LIVE", 1: "DRAINING", 2: "PRE_INITIALIZING", 3: "INITIALIZING"}

NOT_RECEIVED = "config not received from XDS server (is Istiod running?)"
NOT_FULLY_RECEIVED = "config not fully received from XDS server"
REJECTED = "config received from XDS server, but was rejected"


def update_counts(stats: Mapping[str, int]) -> str:
    """pilot-agent's summary of the four counters; with ``usedonly`` a counter still at 0 is absent."""
    return (
        f"cds updates: {stats.get(CDS_SUCCESS, 0)} successful, {stats.get(CDS_REJECTED, 0)} rejected; "
        f"lds updates: {stats.get(LDS_SUCCESS, 0)} successful, {stats.get(LDS_REJECTED, 0)} rejected"
    )


def config_verdict(stats: Mapping[str, int]) -> str:
    """pilot-agent's checkConfigStatus: "" when CDS and LDS both arrived, else its error text.

    The order matters and is pilot-agent's: nothing received wins over rejected, so a proxy that got
    neither CDS nor LDS is "not received" even if some update was also rejected.
    """
    cds_updated = stats.get(CDS_SUCCESS, 0) > 0
    lds_updated = stats.get(LDS_SUCCESS, 0) > 0
    if cds_updated and lds_updated:
        return ""
    if not cds_updated and not lds_updated:
        return f"{NOT_RECEIVED}: {update_counts(stats)}"
    if stats.get(CDS_REJECTED, 0) > 0 or stats.get(LDS_REJECTED, 0) > 0:
        return f"{REJECTED}: {update_counts(stats)}"
    return f"{NOT_FULLY_RECEIVED}: {update_counts(stats)}"


def readiness_verdict(stats: Mapping[str, int]) -> str:
    """The whole of pilot-agent's Envoy readiness judgement from stats: "" means ready.

    After the config check it reads ``server.state`` and ``listener_manager.workers_started``; when
    either is absent from its query's answer it reports the raw answer, which we rebuild from the
    same two stats in Envoy's ``name: value`` text form.
    """
    config = config_verdict(stats)
    if config:
        return config
    readiness_lines = "\n".join(f"{name}: {stats[name]}" for name in sorted(stats) if name in (SERVER_STATE, WORKERS_STARTED))
    if SERVER_STATE not in stats:
        return f"failed to get readiness stats: server.state is not yet updated: {readiness_lines}"
    if WORKERS_STARTED not in stats:
        return f"failed to get readiness stats: listener_manager.workers_started is not yet updated: {readiness_lines}"
    state = stats[SERVER_STATE]
    if state != 0:
        return f"server is not live, current state is: {SERVER_STATES.get(state, str(state))}"
    if stats[WORKERS_STARTED] != 1:
        return "workers have not yet started"
    return ""


class XdsConfigNotReceived(Check):
    name = "XdsConfigNotReceived"
    codes = ("MD0201",)
    needs = frozenset({Evidence.PROXY_STATS})

    def run(self, ctx: AnalysisContext) -> Iterable[Finding]:
        for key, proxy in sorted(ctx.proxies.items()):
            if proxy.stats is None:
                continue
            verdict = config_verdict(proxy.stats)
            # Rejections are MD0202's business; here only "nothing (or not everything) arrived".
            if not verdict or verdict.startswith(REJECTED):
                continue
            fully_missing = verdict.startswith(NOT_RECEIVED)
            evidence = [f"pilot-agent verdict: {verdict}"]
            attempts = proxy.stats.get("cluster_manager.cds.update_attempt")
            if attempts:
                evidence.append(f"cluster_manager.cds.update_attempt: {attempts} (tried, never succeeded)"
                                if proxy.stats.get(CDS_SUCCESS, 0) == 0 else
                                f"cluster_manager.cds.update_attempt: {attempts}")
            if proxy.stats.get("control_plane.connected_state") == 0:
                evidence.append("control_plane.connected_state: 0 (not connected to istiod)")
            if proxy.server_info is not None:
                state = proxy.server_info.state
                note = " (waiting for its first configuration)" if state in ("PRE_INITIALIZING", "INITIALIZING") else ""
                evidence.append(f"/server_info state: {state}{note}")
            answer = readiness_detail(proxy.readiness) if proxy.readiness is not None else ""
            if answer and not proxy.readiness.ready and answer != verdict:  # the verdict already says it
                evidence.append(f"readiness answer: {answer}")
            message = (
                f"Envoy in {key} received no configuration from istiod (no CDS, no LDS update)"
                if fully_missing else
                f"Envoy in {key} received only part of its configuration from istiod"
            )
            yield finding("MD0201", pod_subject(key), message, evidence, pod=key)


CHECK = XdsConfigNotReceived()
