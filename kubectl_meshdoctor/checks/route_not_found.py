"""MD0504 RouteNotFound: requests fail with NR (404 route_not_found): no route for that Host and path.

Anti-pattern: reading 404 as "the app has no such page": the request never left the client's sidecar.

Best practice: ask the sidecar's own routes (config_dump route configs, read only when NR lines exist)
which virtual host the request's Host picks in the route config of the port it used, and which route
match conditions that virtual host has; then name the VirtualService that wrote them.

What real Envoy does in a sidecar (checked in the lab): under ALLOW_ANY every outbound HTTP route config
ends with the ``allow_any`` virtual host (domain ``*``), so a Host that no VirtualService or Service
covers is *not* NR: it goes to PassthroughCluster (and under REGISTRY_ONLY it gets block_all's 502,
MD0505). A sidecar answers NR when the virtual host exists but none of its routes matches: a
VirtualService whose ``http`` matches (uri, headers) leave requests out and which has no default route.
A Host no virtual host serves gives NR where there is no catch-all: gateways, or route configs a Sidecar
egress listener scopes. Both forms are told apart from the route config.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

from kubectl_meshdoctor.checks._failed_upstreams import access_logs
from kubectl_meshdoctor.checks.base import Check, finding, shorten
from kubectl_meshdoctor.checks.context import AnalysisContext, resolve_host
from kubectl_meshdoctor.checks.upstream_failures_logged import NO_CLUSTER
from kubectl_meshdoctor.evidence import AccessLogEntry, Evidence
from kubectl_meshdoctor.findings import Finding, Subject


def _path(entry: AccessLogEntry) -> str:
    """The request path from the access-log line's quoted request ("GET /v1/articles HTTP/1.1")."""
    request = entry.line.split('"', 2)[1] if entry.line.count('"') >= 2 else ""
    parts = request.split(" ")
    return parts[1] if len(parts) == 3 else "?"


def _host_of(authority: str) -> str:
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


def _virtual_services_for(ctx: AnalysisContext, host: str, namespace: str) -> list[dict]:
    fqdn = resolve_host(host, namespace)
    return [vs for vs in ctx.virtual_services
            if fqdn in {resolve_host(h, (vs.get("metadata") or {}).get("namespace") or "default")
                        for h in (vs.get("spec") or {}).get("hosts") or []}]


def _vs_matches(vs: dict) -> list[str]:
    shown = []
    for http in (vs.get("spec") or {}).get("http") or []:
        for match in http.get("match") or [None]:
            if match is None:
                shown.append(f"{http.get('name') or 'http'}: any request")
                continue
            uri = match.get("uri") or {}
            kind = next(iter(uri), None)
            parts = [f"uri {kind} {uri[kind]}"] if kind else []
            parts += [f"header {name}" for name in match.get("headers") or {}]
            shown.append(f"{http.get('name') or 'http'}: " + (" and ".join(parts) or "any request"))
    return shown


class RouteNotFound(Check):
    name = "RouteNotFound"
    codes = ("MD0504",)
    needs = frozenset({Evidence.ACCESS_LOG})

    def run(self, ctx: AnalysisContext) -> Iterable[Finding]:
        for key, proxy, log in access_logs(ctx):
            count = sum(n for flags, cluster, n in log.failure_counts if "NR" in flags.split(",") and not cluster)
            by_authority: dict[str, list[AccessLogEntry]] = defaultdict(list)
            for entry in log.failures:
                if "NR" in entry.flags and not entry.upstream_cluster and entry.authority:
                    by_authority[entry.authority.lower()].append(entry)
            namespace = key.split("/", 1)[0]
            for authority, entries in sorted(by_authority.items()):
                yield self._diagnose(ctx, key, namespace, authority, entries, count, proxy.route_lookups)

    def _diagnose(self, ctx, key, namespace, authority, entries, count, lookups) -> Finding:
        paths = sorted({_path(e) for e in entries})
        evidence = [f"access log of {key}: {count} request(s) with NR (404 route_not_found), e.g. Host "
                    f"{authority} path {', '.join(paths)}"]
        evidence += [f"sample: {shorten(e.line, 300)}" for e in entries[:2]]
        found = [lk for lk in lookups or () if lk.authority == authority]
        for lookup in found:
            if lookup.virtual_host:
                evidence.append(f"route config {lookup.route_config}: Host {authority} picks virtual host "
                                f"{lookup.virtual_host}, whose routes match only: {'; '.join(lookup.route_matches) or '(none)'}")
            else:
                evidence.append(f"route config {lookup.route_config}: no virtual host serves {authority} (and no "
                                f"catch-all); it has {', '.join(lookup.other_virtual_hosts) or 'none'}")
        if lookups is None:
            evidence.append("Envoy route configs: not read")
        host = _host_of(authority)
        services = _virtual_services_for(ctx, host, namespace)
        no_vhost = bool(found) and not any(lk.virtual_host for lk in found)
        if services and not no_vhost:
            vs = services[0]
            meta = vs["metadata"]
            evidence.append(f"VirtualService {meta.get('namespace')}/{meta['name']} http routes: "
                            + "; ".join(_vs_matches(vs)))
            return finding("MD0504", Subject("VirtualService", meta["name"], meta.get("namespace")),
                           f"no route for {', '.join(paths)} on {authority}: VirtualService {meta.get('namespace')}/"
                           f"{meta['name']} matches none of them and has no default route",
                           evidence, pod=key, upstreams=(NO_CLUSTER,),
                           remediation="Add a last http route without match (the default) to the VirtualService, "
                           "or a match for the paths the clients really call.")
        service = ctx.service_by_host(host, namespace)
        subject = (Subject("Service", service["metadata"]["name"], service["metadata"].get("namespace"))
                   if service else Subject("Host", authority))
        return finding("MD0504", subject,
                       f"no route for Host {authority}: the sidecar has no virtual host for it"
                       + (" in route config " + found[0].route_config if found else ""),
                       evidence, pod=key, upstreams=(NO_CLUSTER,),
                       remediation="Make a VirtualService's hosts (and gateways/port) cover the name clients use, "
                       "or check the Sidecar egress hosts that scope this proxy's routes.")


CHECK = RouteNotFound()
