"""MD0507 UpstreamConnectionReuseReset: UC lines: the server closed a kept-alive connection Envoy reused.

Anti-pattern: treating the sporadic 503s as network flakiness. They are the keep-alive race of the ops
book: the app closes idle connections after its own keep-alive timeout (Node.js: 5 s by default) while
the client's sidecar keeps them in its pool for an hour (Envoy's default upstream idle timeout; Istio sets
none unless a DestinationRule says ``connectionPool.http.idleTimeout``), and sends the next request on a
connection the app is closing.

Best practice: recognise the signature (response flag UC, details
``upstream_reset_before_response_started{connection_termination}``, per upstream cluster), say what is
known about both timeouts, and give the two fixes: an Envoy idle timeout shorter than the app's
keep-alive, or an app keep-alive longer than Envoy's; a retry on ``reset`` hides the rest.

Real Envoy (1.40, checked in the lab with an app that drops reused connections): ``503 UC
upstream_reset_before_response_started{connection_termination}``, the failing request carrying the same
upstream local address as the successful one before it (the reused connection). Istio's default
outbound retry policy (connect-failure, refused-stream, unavailable, cancelled, retriable-status-codes)
does not retry it.
"""

from __future__ import annotations

from typing import Iterable

from kubectl_meshdoctor.checks._failed_upstreams import failed_upstreams
from kubectl_meshdoctor.checks.base import Check, finding
from kubectl_meshdoctor.checks.circuit_breaker_tripped import connection_pool
from kubectl_meshdoctor.checks.context import AnalysisContext
from kubectl_meshdoctor.evidence import Evidence
from kubectl_meshdoctor.findings import Finding, Subject

SIGNATURE = "connection_termination"
FIX = ("Either make Envoy drop idle upstream connections before the app does: DestinationRule "
       "trafficPolicy.connectionPool.http.idleTimeout shorter than the app's keep-alive timeout (for a Node.js "
       "app with keepAliveTimeout 5s, e.g. 4s); or make the app keep connections longer than Envoy does "
       "(Node.js: server.keepAliveTimeout and headersTimeout above Envoy's idle timeout). A VirtualService retry "
       "with retryOn: reset absorbs what remains.")


class UpstreamConnectionReuseReset(Check):
    name = "UpstreamConnectionReuseReset"
    codes = ("MD0507",)
    needs = frozenset({Evidence.ACCESS_LOG})

    def run(self, ctx: AnalysisContext) -> Iterable[Finding]:
        for failed in failed_upstreams(ctx, "UC"):
            name = failed.istio_name
            if name is None or name.direction != "outbound":
                continue
            if failed.samples and not any(SIGNATURE in e.line for e in failed.samples):
                continue  # UC after the response started is another story (a server dying mid-answer)
            evidence = failed.evidence_head("UC")
            subject: Subject = failed.service_subject()
            idle = None
            for rule in ctx.destination_rules_for(name.host):
                pool, where = connection_pool(rule, name.subset)
                idle = (pool.get("http") or {}).get("idleTimeout") or (pool.get("tcp") or {}).get("idleTimeout")
                if idle:
                    meta = rule["metadata"]
                    subject = Subject("DestinationRule", meta["name"], meta.get("namespace"))
                    evidence.append(f"DestinationRule {meta.get('namespace')}/{meta['name']} {where}: idleTimeout "
                                    f"{idle}: still longer than the app keeps idle connections open")
                    break
            if not idle:
                evidence.append("Envoy's upstream idle timeout: 1h (Envoy's default; no DestinationRule sets "
                                "connectionPool.http.idleTimeout)")
            yield finding(
                "MD0507", subject,
                f"{failed.count} request(s) to {failed.cluster} reset on a reused connection (UC, {SIGNATURE}): "
                f"the server closes idle keep-alive connections sooner than Envoy stops reusing them"
                + (f" (Envoy: {idle})" if idle else " (Envoy: 1h default)"),
                evidence, pod=failed.pod, remediation=FIX, upstreams=(failed.cluster,))


CHECK = UpstreamConnectionReuseReset()
