"""MD0506 CircuitBreakerTripped: requests fail with UO (503 overflow): a connection pool limit was reached.

Anti-pattern: scaling the server or chasing its errors: the request never reached it. Envoy refused to
queue it because the cluster's circuit breaker (from the DestinationRule's ``connectionPool``) was full.

Best practice: show the limits as written (DestinationRule connectionPool: tcp.maxConnections,
http.http1MaxPendingRequests, http.http2MaxRequests, http.maxRequestsPerConnection) next to the thresholds
Envoy enforces for that cluster (``/clusters``: max_connections, max_pending_requests, max_requests) and
the UO lines, per cluster.

Decisions: the overflow counters (``upstream_rq_pending_overflow``, ``upstream_cx_overflow``) are not
read: Istio's default stats inclusion list (bootstrap ``stats_matcher``: cluster_manager, listener_manager,
server, cluster.xds-grpc, ...) does not keep per-cluster ``cluster.outbound|...`` stats, so a default
sidecar has none. The access log's UO count is the evidence; /clusters gives the limits in force. A UO
without any limit below Envoy's defaults (no connectionPool) is still reported, against the Service.
"""

from __future__ import annotations

from typing import Iterable

from kubectl_meshdoctor.checks._failed_upstreams import failed_upstreams
from kubectl_meshdoctor.checks.base import Check, finding
from kubectl_meshdoctor.checks.context import AnalysisContext
from kubectl_meshdoctor.evidence import Evidence
from kubectl_meshdoctor.findings import Finding, Subject

UNLIMITED = 4294967295  # Istio's default threshold (math.MaxUint32)
POOL_FIELDS = (("tcp", "maxConnections"), ("http", "http1MaxPendingRequests"), ("http", "http2MaxRequests"),
               ("http", "maxRequestsPerConnection"), ("http", "maxRetries"))


def connection_pool(rule: dict, subset: str) -> tuple[dict, str]:
    """The connectionPool that applies to ``subset`` (the subset's own, else the top-level one) and where."""
    spec = rule.get("spec") or {}
    for item in spec.get("subsets") or []:
        pool = ((item.get("trafficPolicy") or {}).get("connectionPool")) if item.get("name") == subset else None
        if pool:
            return pool, f"subsets[{subset}].trafficPolicy.connectionPool"
    return ((spec.get("trafficPolicy") or {}).get("connectionPool") or {}), "trafficPolicy.connectionPool"


def _limits(pool: dict) -> str:
    shown = [f"{group}.{key}={pool[group][key]}" for group, key in POOL_FIELDS if (pool.get(group) or {}).get(key)]
    return ", ".join(shown) or "(none)"


class CircuitBreakerTripped(Check):
    name = "CircuitBreakerTripped"
    codes = ("MD0506",)
    needs = frozenset({Evidence.ACCESS_LOG})

    def run(self, ctx: AnalysisContext) -> Iterable[Finding]:
        for failed in failed_upstreams(ctx, "UO"):
            name = failed.istio_name
            evidence = failed.evidence_head("UO")
            status = failed.status
            if status is not None:
                enforced = [f"{key}={value}" for key, value in (("max_connections", status.max_connections),
                            ("max_pending_requests", status.max_pending_requests),
                            ("max_requests", status.max_requests)) if value is not None and value != UNLIMITED]
                evidence.append("Envoy /clusters circuit breakers: " + (", ".join(enforced) or "no limit below "
                                                                          "the default"))
            rule, pool, where = None, {}, ""
            if name is not None:
                for candidate in ctx.destination_rules_for(name.host):
                    pool, where = connection_pool(candidate, name.subset)
                    if pool:
                        rule = candidate
                        break
            if rule is not None:
                meta = rule["metadata"]
                subject = Subject("DestinationRule", meta["name"], meta.get("namespace"))
                evidence.append(f"DestinationRule {meta.get('namespace')}/{meta['name']} {where}: {_limits(pool)}")
                message = (f"{failed.count} request(s) to {failed.cluster} rejected by the circuit breaker: "
                           f"{subject} limits {_limits(pool)}")
            else:
                subject = failed.service_subject()
                message = (f"{failed.count} request(s) to {failed.cluster} rejected by the circuit breaker "
                           "(no DestinationRule connectionPool found: Envoy's own thresholds)")
            evidence.append("overflow counters: not kept by Istio's default stats inclusion list; the UO lines "
                            "are the count")
            yield finding("MD0506", subject, message, evidence, pod=failed.pod, upstreams=(failed.cluster,))


CHECK = CircuitBreakerTripped()
