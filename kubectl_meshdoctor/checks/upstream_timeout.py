"""MD0510 UpstreamTimeout: requests fail with UT (504 response_timeout): the route's timeout ran out first.

Anti-pattern: blaming the network or the client, or raising timeouts everywhere without knowing which one
fired. In Istio the timeout that answers 504 UT is the Envoy route's: a VirtualService ``timeout``, or,
without one, none at all (Istio sets ``0s``), so a UT usually means someone set a timeout shorter than
the server's real latency.

Best practice: put side by side the timeout Envoy enforced on the route the request matched (config_dump
routes, read only when UT lines exist), the VirtualService field it came from, and the durations the
access log measured (they sit at the timeout: the server was still working when Envoy gave up).

Real Envoy (1.40, checked in the lab): ``504 UT response_timeout`` with the duration at the timeout
(397-401 ms for a 0.4s timeout); the per-host ``rq_timeout`` counter in /clusters counts them too.
"""

from __future__ import annotations

from typing import Iterable

from kubectl_meshdoctor.checks._failed_upstreams import FailedUpstream, failed_upstreams
from kubectl_meshdoctor.checks.base import Check, finding
from kubectl_meshdoctor.checks.context import AnalysisContext, resolve_host
from kubectl_meshdoctor.evidence import Evidence
from kubectl_meshdoctor.findings import Finding, Subject


def _vs_timeouts(ctx: AnalysisContext, host: str) -> list[tuple[dict, dict]]:
    """(VirtualService, http entry) pairs routing to ``host`` and setting a timeout."""
    found = []
    for vs in ctx.virtual_services:
        namespace = (vs.get("metadata") or {}).get("namespace") or "default"
        for http in (vs.get("spec") or {}).get("http") or []:
            targets = {resolve_host(((r.get("destination") or {}).get("host") or ""), namespace)
                       for r in http.get("route") or []}
            if host in targets and http.get("timeout"):
                found.append((vs, http))
    return found


def _durations(failed: FailedUpstream) -> str:
    values = sorted(e.duration_ms for e in failed.samples if e.duration_ms is not None)
    if not values:
        return ""
    return f"{values[0]} ms" if values[0] == values[-1] else f"{values[0]}-{values[-1]} ms"


class UpstreamTimeout(Check):
    name = "UpstreamTimeout"
    codes = ("MD0510",)
    needs = frozenset({Evidence.ACCESS_LOG})

    def run(self, ctx: AnalysisContext) -> Iterable[Finding]:
        for failed in failed_upstreams(ctx, "UT"):
            name = failed.istio_name
            evidence = failed.evidence_head("UT")
            took = _durations(failed)
            if took:
                evidence.append(f"observed durations of the timed-out requests: {took}")
            route_names = {e.route_name for e in failed.samples if e.route_name}
            routes = [r for r in failed.proxy.route_timeouts or () if r.cluster == failed.cluster
                      and (not route_names or r.route in route_names)]
            for route in routes:
                evidence.append(f"Envoy route {route.route or '(unnamed)'} in route config {route.route_config} "
                                f"(virtual host {route.virtual_host}): timeout {route.timeout or 'unset (15s)'}"
                                + (f", perTryTimeout {route.per_try_timeout}" if route.per_try_timeout else ""))
            if failed.proxy.route_timeouts is None:
                evidence.append("Envoy routes: not read; the timeout is taken from the VirtualServices")
            pairs = _vs_timeouts(ctx, name.host) if name else []
            named = [(vs, http) for vs, http in pairs if http.get("name") in route_names] or pairs
            if named:
                vs, http = named[0]
                meta = vs["metadata"]
                subject = Subject("VirtualService", meta["name"], meta.get("namespace"))
                evidence.append(f"VirtualService {meta.get('namespace')}/{meta['name']} http "
                                f"{http.get('name') or '(unnamed)'}: timeout: {http['timeout']}")
                timeout = f"{http['timeout']} (VirtualService {meta.get('namespace')}/{meta['name']})"
            else:
                subject = failed.service_subject()
                enforced = next((r.timeout for r in routes if r.timeout), None)
                timeout = f"{enforced} (Envoy route; no VirtualService timeout found)" if enforced else \
                    "not found in any VirtualService (a per-try timeout or a caller's own deadline?)"
            yield finding(
                "MD0510", subject,
                f"{failed.count} request(s) to {failed.cluster} timed out"
                + (f" after {took}" if took else "") + f": route timeout {timeout}",
                evidence, pod=failed.pod, upstreams=(failed.cluster,))


CHECK = UpstreamTimeout()
