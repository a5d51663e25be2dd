"""MD0501 SubsetNotDefined: a VirtualService routes to a subset no DestinationRule defines.

Anti-pattern: applying a VirtualService that routes to ``subset: v3`` before (or without) the
DestinationRule that defines ``v3``, or defining the subset in a DestinationRule the clients never see.

Best practice: apply the DestinationRule with every subset first, then the VirtualService that uses
them (and remove routes before the subsets they use); keep the DestinationRule in the service's
namespace.

Why: Istio builds one Envoy cluster per subset, ``outbound|<port>|<subset>|<host>``. A route to a
subset nobody defined points at a cluster that does not exist: requests fail with 503 ``NC`` (no
cluster) and the application shows its error page, while ``kubectl apply`` accepted both objects.

Which DestinationRules count, as in Istio's lookup for a client: the first namespace that has a
DestinationRule for the host wins, in the order (1) the VirtualService's namespace (standing in for the
clients' namespace), (2) the host's namespace, (3) the root namespace istio-system; rules from (2) and
(3) must be exported to the VirtualService's namespace (``exportTo`` absent, ``*``, or naming it; ``.``
only within their own namespace). Rules of the winning namespace are merged, so their subsets add up.
So a DestinationRule in the VirtualService's namespace that lacks the subset hides a complete one in
the host's namespace, and that is reported too. Wildcard hosts (``*.example.com``) count when no rule
names the host exactly.

Live (with the proxies' config): a route whose target cluster the proxy does not have is the same
fault seen from Envoy; Istio's own clusters (BlackHoleCluster, PassthroughCluster, ...) are never
missing. The subject is the VirtualService that routes to that host and subset when one is in the
evidence, otherwise the Envoy cluster itself.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Iterator

from kubectl_meshdoctor.checks.base import Check, created, finding
from kubectl_meshdoctor.checks.context import (
    ROOT_NAMESPACE, AnalysisContext, IstioClusterName, key_of, resolve_host,
)
from kubectl_meshdoctor.evidence import Evidence
from kubectl_meshdoctor.findings import Finding, Subject

ROUTE_KINDS = ("http", "tcp", "tls")
# Clusters Istio (or its bootstrap) always provides or that routes name without a definition to check.
SPECIAL_CLUSTERS = frozenset({
    "BlackHoleCluster", "PassthroughCluster", "prometheus_stats", "agent", "sds-grpc", "xds-grpc",
    "zipkin", "envoy_accesslog_service", "lightstep", "datadog_agent", "opencensus",
})
SPECIAL_CLUSTER_PREFIXES = ("InboundPassthroughCluster",)


@dataclass(frozen=True)
class SubsetRoute:
    """One route destination naming a subset."""

    where: str  # e.g. http[0].route[1]
    host: str  # as written
    fqdn: str
    subset: str


def subset_routes(vs: dict) -> Iterator[SubsetRoute]:
    """Every destination with a subset in a VirtualService: http/tcp/tls routes and HTTP mirrors."""
    namespace = (vs.get("metadata") or {}).get("namespace") or "default"
    spec = vs.get("spec") or {}
    for kind in ROUTE_KINDS:
        for i, rule in enumerate(spec.get(kind) or []):
            if not isinstance(rule, dict):
                continue
            targets = [
                (f"{kind}[{i}].route[{j}]", (r or {}).get("destination")) for j, r in enumerate(rule.get("route") or [])
            ]
            if kind == "http":
                targets.append((f"{kind}[{i}].mirror", rule.get("mirror")))
                targets += [(f"{kind}[{i}].mirrors[{j}]", (m or {}).get("destination"))
                            for j, m in enumerate(rule.get("mirrors") or [])]
            for where, destination in targets:
                if isinstance(destination, dict) and destination.get("subset") and destination.get("host"):
                    host = str(destination["host"])
                    yield SubsetRoute(where, host, resolve_host(host, namespace), str(destination["subset"]))


def exported_to(rule: dict, namespace: str) -> bool:
    export = (rule.get("spec") or {}).get("exportTo")
    own = (rule.get("metadata") or {}).get("namespace")
    if not export:
        return True
    return any(e == "*" or e == namespace or (e == "." and own == namespace) for e in export)


def _host_namespace(fqdn: str) -> str | None:
    parts = fqdn.split(".")
    return parts[1] if len(parts) >= 3 and parts[2] == "svc" else None


def _subset_names(rule: dict) -> list[str]:
    return [str(s.get("name")) for s in (rule.get("spec") or {}).get("subsets") or [] if isinstance(s, dict)]


class SubsetNotDefined(Check):
    name = "SubsetNotDefined"
    codes = ("MD0501",)
    needs = frozenset({Evidence.ISTIO_CONFIG})

    def run(self, ctx: AnalysisContext) -> Iterable[Finding]:
        wildcard_rules = [
            r for r in ctx.objects("DestinationRule") if str((r.get("spec") or {}).get("host") or "").startswith("*")
        ]
        routed_by: dict[tuple[str, str], list[dict]] = defaultdict(list)
        static: dict[tuple[str, str, str], Finding] = {}  # (VirtualService, host, subset) -> finding
        for vs in ctx.virtual_services:
            vs_namespace = (vs.get("metadata") or {}).get("namespace") or "default"
            missing: dict[tuple[str, str], list[SubsetRoute]] = defaultdict(list)
            for route in subset_routes(vs):
                routed_by[(route.fqdn, route.subset)].append(vs)
                rules = self._applicable_rules(ctx, route.fqdn, vs_namespace, wildcard_rules)
                if not any(route.subset in _subset_names(r) for r in rules):
                    missing[(route.fqdn, route.subset)].append(route)
            for (fqdn, subset), routes in missing.items():
                static[(key_of(vs), fqdn, subset)] = self._static_finding(
                    ctx, vs, fqdn, subset, routes, vs_namespace, wildcard_rules)
        # Live findings share the static finding's message, so a sweep shows one cause for every proxy
        # that lacks the cluster; the pod-less static finding stands alone only where no proxy shows it.
        covered: set[tuple[str, str, str]] = set()
        if Evidence.PROXY_CONFIG in ctx.available:
            for key, item in self._live(ctx, routed_by, static):
                covered.add(key)
                yield item
        yield from (item for key, item in static.items() if key not in covered)

    @staticmethod
    def _rules_for_host(ctx: AnalysisContext, fqdn: str, wildcard_rules: list[dict]) -> list[dict]:
        """Rules naming ``fqdn`` exactly, else those whose wildcard host covers it."""
        return ctx.destination_rules_for(fqdn) or [
            r for r in wildcard_rules if fqdn.endswith(str(r["spec"]["host"])[1:])
        ]

    def _applicable_rules(
        self, ctx: AnalysisContext, fqdn: str, vs_namespace: str, wildcard_rules: list[dict]
    ) -> list[dict]:
        """The DestinationRules a client in ``vs_namespace`` uses for ``fqdn`` (first namespace wins)."""
        candidates = self._rules_for_host(ctx, fqdn, wildcard_rules)
        by_namespace: dict[str, list[dict]] = defaultdict(list)
        for rule in candidates:
            by_namespace[(rule.get("metadata") or {}).get("namespace") or "default"].append(rule)
        order = [vs_namespace] if vs_namespace != ROOT_NAMESPACE else []
        order += [ns for ns in (_host_namespace(fqdn), ROOT_NAMESPACE) if ns and ns not in order]
        for namespace in order:
            visible = [
                r for r in by_namespace.get(namespace, [])
                if namespace == vs_namespace or exported_to(r, vs_namespace)
            ]
            if visible:
                return visible
        # Istio also merges rules exported from other namespaces; count them rather than over-report.
        return [
            r for ns, rules in by_namespace.items() if ns not in order
            for r in rules if exported_to(r, vs_namespace)
        ]

    def _static_finding(self, ctx, vs, fqdn, subset, routes, vs_namespace, wildcard_rules) -> Finding:
        meta = vs.get("metadata") or {}
        applicable = self._applicable_rules(ctx, fqdn, vs_namespace, wildcard_rules)
        evidence = [f"route {r.where}: host {r.host} subset {subset}" for r in routes]
        all_rules = self._rules_for_host(ctx, fqdn, wildcard_rules)
        if not all_rules:
            evidence.append(f"no DestinationRule for host {fqdn}")
        for rule in all_rules:
            subsets = ", ".join(_subset_names(rule)) or "none"
            used = "" if rule in applicable else f" (not used by clients in namespace {vs_namespace})"
            host = rule["spec"].get("host")
            evidence.append(f"DestinationRule {key_of(rule)} (host {host}) defines subsets: {subsets}{used}")
        return finding(
            "MD0501",
            Subject("VirtualService", meta.get("name") or "", meta.get("namespace")),
            f"VirtualService {key_of(vs)} routes to subset {subset} of {fqdn}, which no DestinationRule "
            f"visible to it defines: Envoy has no cluster for it and answers 503 NC",
            evidence,
            since=[created(vs, f"VirtualService {key_of(vs)} created")],
        )

    def _live(
        self, ctx: AnalysisContext, routed_by: dict[tuple[str, str], list[dict]],
        static: dict[tuple[str, str, str], Finding],
    ) -> Iterator[tuple[tuple[str, str, str], Finding]]:
        for pod_key, proxy in sorted(ctx.proxies.items()):
            config = proxy.config
            if config is None:
                continue
            present = {c.name for c in config.clusters}
            missing: dict[str, list[str]] = defaultdict(list)
            for target in config.route_targets:
                name = target.cluster
                if not name or name in present or name in SPECIAL_CLUSTERS or name.startswith(SPECIAL_CLUSTER_PREFIXES):
                    continue
                missing[name].append(
                    f"route {target.route_config} virtual host {target.virtual_host} -> cluster {name}"
                )
            for cluster, lines in sorted(missing.items()):
                parsed = IstioClusterName.parse(cluster)
                routers = routed_by.get((parsed.host, parsed.subset), []) if parsed else []
                key = ("", cluster, "")
                if routers:
                    vs = sorted(routers, key=key_of)[0]
                    meta = vs.get("metadata") or {}
                    subject = Subject("VirtualService", meta.get("name") or "", meta.get("namespace"))
                    key = (key_of(vs), parsed.host, parsed.subset)
                else:
                    subject = Subject("EnvoyCluster", cluster)
                what = f"subset {parsed.subset} of {parsed.host}" if parsed and parsed.subset else f"cluster {cluster}"
                evidence = lines[:3] + [f"clusters known to the proxy: {len(present)}; {cluster} is not among them"]
                if key in static:
                    message = static[key].message
                    evidence += list(static[key].evidence)[:4]
                else:
                    message = f"proxies route to {what}, but have no cluster {cluster}: those requests get 503 NC"
                since = static[key].since if key in static else ()
                yield key, finding("MD0501", subject, message, evidence, pod=pod_key, since=since)


CHECK = SubsetNotDefined()
