"""The walk of one request from a sidecar, hop by hop, with a verdict for each.

Istio's docs debug a failing call by hand with four ``istioctl proxy-config`` commands: which listener takes
the connection, which route it meets, which cluster that names, which endpoints that cluster has. This
module does the same walk on one pod's full config_dump (``XdsIndex``) joined with the API objects
(``AnalysisContext``): listener -> route -> cluster -> endpoints -> TLS the client originates -> the server's
inbound side and its PeerAuthentication. The first hop that fails is the answer, and carries the catalogue
code that names the cause. Pure functions of the evidence: no I/O, no printing.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field

from kubectl_meshdoctor.checks.circuit_breaker_tripped import UNLIMITED
from kubectl_meshdoctor.checks.egress_blocked import outbound_policy, service_entry_yaml
from kubectl_meshdoctor.checks.context import (
    TLS_MODE_LABEL,
    AnalysisContext,
    IstioClusterName,
    labels_of,
    resolve_host,
)
from kubectl_meshdoctor.envoy.config_dump import cluster_tls
from kubectl_meshdoctor.envoy.xds_index import EnvoyEndpoint, Json, XdsIndex, as_dict, as_list, field_of
from kubectl_meshdoctor.evidence import TLS_ISTIO_ALWAYS, TLS_NONE
from kubectl_meshdoctor.pods import pod_key, sidecar_container
from kubectl_meshdoctor.trace.envoy_match import (
    VIRTUAL_OUTBOUND,
    Connection,
    NetworkFilter,
    Request,
    describe_match,
    select_filter_chain,
    select_listener,
    select_route,
    select_virtual_host,
    terminal_filter,
)
from kubectl_meshdoctor.trace.target import Destination, Target, port_protocol, resolve_destination

OK, WARN, FAIL, NOT_REACHED, NOT_APPLICABLE = "ok", "warn", "fail", "not-reached", "n/a"
STEPS = ("listener", "route", "cluster", "endpoints", "tls", "server")
PASSTHROUGH_CLUSTERS = frozenset({"PassthroughCluster", "AllowAnyDynamicDNSCluster"})
BLACKHOLE_CLUSTER = "BlackHoleCluster"
BLOCK_ALL_VHOST = "block_all"  # istiod's catch-all virtual host under REGISTRY_ONLY (502 direct response)
INBOUND_CAPTURE_PORT = 15006
# Where a transport socket chose by endpoint metadata looks (istiod's util.EnvoyTransportSocketMetadataKey).
MAX_LISTED = 4

# Codes of the catalogue (issue 11) a failing hop names.
MD_XDS_REJECTED = "MD0202"
MD_SUBSET_NOT_DEFINED = "MD0501"
MD_NO_HEALTHY_UPSTREAM = "MD0503"
MD_ROUTE_NOT_FOUND = "MD0504"
MD_EGRESS_BLOCKED = "MD0505"
MD_MTLS_TO_PLAINTEXT = "MD0401"
MD_MTLS_MODE_CONFLICT = "MD0402"
MD_PORT_PROTOCOL_UNKNOWN = "MD0502"


@dataclass(frozen=True)
class Hop:
    step: str  # one of STEPS
    verdict: str  # ok, warn, fail, not-reached, n/a
    summary: str
    code: str | None = None
    evidence: tuple[str, ...] = ()
    data: typing.Mapping[str, typing.Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict:
        return {"step": self.step, "verdict": self.verdict, "code": self.code, "summary": self.summary,
                "evidence": list(self.evidence), **({"data": dict(self.data)} if self.data else {})}


@dataclass(frozen=True)
class Trace:
    pod: str
    target: Target
    destination: Destination
    hops: tuple[Hop, ...]
    gaps: tuple[str, ...] = ()

    @property
    def answer(self) -> Hop | None:
        """The first hop that fails: where the request stops."""
        return next((hop for hop in self.hops if hop.verdict == FAIL), None)

    @property
    def verdict(self) -> str:
        if self.answer is not None:
            return FAIL
        return WARN if any(h.verdict == WARN for h in self.hops) else OK

    def to_dict(self) -> dict:
        answer = self.answer
        dest = self.destination
        return {
            "apiVersion": "meshdoctor/v1",
            "kind": "Trace",
            "pod": self.pod,
            "request": {"method": self.target.method, "host": dest.host, "port": dest.port, "path": self.target.path,
                        "authority": dest.authority, "headers": {k: v for k, v in self.target.headers}},
            "destination": {"service": dest.fqdn, "addresses": list(dest.addresses),
                            "protocol": "http" if dest.http else "tcp", "headless": dest.headless},
            "verdict": self.verdict,
            "failedAt": answer.step if answer else None,
            "code": answer.code if answer else None,
            "hops": [hop.to_dict() for hop in self.hops],
            "gaps": list(self.gaps),
        }


def trace_request(index: XdsIndex, ctx: AnalysisContext, pod: dict, target: Target,
                  gaps: typing.Iterable[str] = ()) -> Trace:
    """Walk ``target`` from ``pod``'s sidecar; raises UsageError only for a target the objects refute."""
    namespace = (pod.get("metadata") or {}).get("namespace") or "default"
    destination = resolve_destination(target, ctx, namespace)
    hops = _Walk(index, ctx, pod, target, destination).run()
    return Trace(pod_key(pod), target, destination, tuple(hops), tuple(gaps))


class _Stop(Exception):
    """The walk ends here (a failing hop, or a path with nothing further to walk)."""


class _Walk:
    def __init__(self, index: XdsIndex, ctx: AnalysisContext, pod: dict, target: Target, dest: Destination):
        self.index, self.ctx, self.pod, self.target, self.dest = index, ctx, pod, target, dest
        self.hops: list[Hop] = []
        self.route_config: str | None = None
        self.virtual_service: str | None = None
        self.clusters: list[tuple[str, int | None]] = []
        self.cluster: Json = {}
        self.cluster_name = ""
        self.endpoints: list[EnvoyEndpoint] = []
        self.tls_by_address: dict[str, str] = {}  # endpoint text -> TLS_* kind the client originates
        self.pods_by_ip = {ip: p for p in ctx.pods for ip in _pod_ips(p)}

    def run(self) -> list[Hop]:
        try:
            network = self._listener()
            if network.kind == "http":
                self._route(network.config)
            else:
                self._add("route", NOT_APPLICABLE, "TCP proxy: no HTTP routing on this path")
            self._cluster()
            self._endpoints()
            self._tls()
            self._server()
        except _Stop:
            pass
        reached = {hop.step for hop in self.hops}
        return self.hops + [Hop(step, NOT_REACHED, "") for step in STEPS if step not in reached]

    def _add(self, step: str, verdict: str, summary: str, code: str | None = None,
             evidence: typing.Iterable[str] = (), **data: typing.Any) -> None:
        self.hops.append(Hop(step, verdict, summary, code, tuple(evidence), data))
        if verdict == FAIL:
            raise _Stop

    def _fail_if_rejected(self, step: str, wanted: typing.Callable[[str], bool]) -> None:
        """The hop fails because Envoy refused the resource istiod sent for it (a NACK), if it did."""
        resource = "route" if step == "route" else step
        for rejected in self.index.rejected:
            if rejected.resource == resource and wanted(rejected.name):
                self._add(step, FAIL, f"Envoy rejected the {resource} {rejected.name} istiod sent, so it has none "
                          "for this request", MD_XDS_REJECTED, [f"Envoy's reason: {rejected.details}"],
                          rejected=rejected.name)

    def _finish(self, *steps: str, reason: str) -> typing.NoReturn:
        for step in steps:
            self._add(step, NOT_APPLICABLE, reason)
        raise _Stop

    # --- listener ---------------------------------------------------------------------------------------

    def _connection(self) -> Connection:
        dest = self.dest
        ip = dest.addresses[0] if dest.addresses else None
        opaque_tls = port_protocol(dest.service_port or {}) in ("https", "tls") or (
            dest.service is None and dest.port == 443)
        if opaque_tls:
            return Connection(ip, dest.port, transport="tls", sni=dest.host)
        return Connection(ip, dest.port, alpn=("http/1.1",) if dest.http else ())

    def _listener(self) -> NetworkFilter:
        if not any(listener.state != "static" for listener in self.index.listeners):
            self._add("listener", FAIL, "Envoy holds no listener from istiod: it has not received its configuration",
                      evidence=[f"{len(self.index.listeners)} static (bootstrap) listener(s) only",
                                "`kubectl meshdoctor pod NAME` (without --trace) says why"])
        service = self.dest.service
        if service is not None and self.dest.service_port is None:
            ports = ", ".join(str(p.get("port")) for p in (service.get("spec") or {}).get("ports") or [])
            self._add("listener", FAIL, f"Service {_ns_name(service)} has no port {self.dest.port} "
                      f"(its ports: {ports or 'none'}): nothing in the mesh answers there")
        conn = self._connection()
        listener, how = select_listener(self.index, conn)
        if listener is None:
            self._fail_if_rejected("listener", lambda name: name.endswith(f"_{conn.port}"))
            virtual = self.index.listener(VIRTUAL_OUTBOUND)
            if virtual is None:
                self._add("listener", FAIL, f"{how}, and no {VIRTUAL_OUTBOUND} listener to catch the connection",
                          evidence=[f"{len(self.index.listeners)} listeners in the config_dump"])
            name, config = VIRTUAL_OUTBOUND, virtual.config
        else:
            name, config = listener.name, listener.config
        chain = select_filter_chain(config, conn)
        if chain is None:
            self._add("listener", FAIL, f"listener {name} has no filter chain for this connection", listener=name)
        network = terminal_filter(chain.config)
        if network is None:
            self._add("listener", FAIL, f"listener {name}, chain {chain.name or '(unnamed)'}: neither an HTTP "
                      "connection manager nor a TCP proxy", listener=name)
        evidence = [how]
        if chain.name:
            evidence.append(f"filter chain {chain.name}" + (" (the listener's default chain)" if chain.default else ""))
        verdict = OK
        code = None
        if network.kind == "http":
            rds = field_of(as_dict(field_of(network.config, "rds")), "route_config_name")
            inline = as_dict(field_of(network.config, "route_config"))
            self.route_config = str(rds or field_of(inline, "name") or "")
            summary = f"{name}: HTTP, route config {self.route_config or '(inline)'}"
        else:
            summary = f"{name}: TCP proxy"
            if listener is None or chain.default:
                summary += " (catch-all: no listener or chain for this destination)"
                if self.dest.service is not None:
                    verdict, code = WARN, MD_ROUTE_NOT_FOUND
                    evidence.append(self._hidden_hint())
        dedicated_tcp = network.kind == "tcp" and listener is not None and not chain.default
        if self.dest.service and self.dest.http and dedicated_tcp:
            evidence.append("the port carries TCP here: HTTP routes do not apply")
            declared = (self.dest.service_port or {}).get("appProtocol") or (self.dest.service_port or {}).get("name")
            if declared and not port_protocol(self.dest.service_port or {}):
                verdict, code = WARN, MD_PORT_PROTOCOL_UNKNOWN
                evidence.append(f"Service port {self.dest.port} declares {declared!r}, not a protocol Istio knows")
        self._add("listener", verdict, summary, code, evidence, listener=name, chain=chain.name,
                  routeConfig=self.route_config)
        if network.kind == "tcp":
            self.clusters = _tcp_clusters(network.config)
        return network

    # --- route ------------------------------------------------------------------------------------------

    def _route(self, hcm: Json) -> None:
        name = self.route_config or ""
        inline = field_of(hcm, "route_config")
        route_config = as_dict(inline) if inline is not None else self.index.route_configs.get(name)
        if route_config is None:
            self._fail_if_rejected("route", lambda rejected: rejected == name)
            self._add("route", FAIL, f"route config {name} is not in the config_dump (RDS not received or rejected)")
        request = Request(self.target.method, self.target.path, self.dest.authority, self.target.headers)
        vhost, domain = select_virtual_host(route_config, request.authority)
        vhosts = [str(field_of(v, "name") or "") for v in as_list(field_of(route_config, "virtual_hosts"))]
        if vhost is None:
            self._add("route", FAIL, f"no virtual host of route config {name} matches {request.authority} (404 NR)",
                      MD_ROUTE_NOT_FOUND, [f"virtual hosts: {_listed(vhosts)}"], routeConfig=name)
        vhost_name = str(field_of(vhost, "name") or "")
        chosen = select_route(vhost, request)
        if chosen is None:
            routes = [describe_match(as_dict(field_of(r, "match"))) for r in as_list(field_of(vhost, "routes"))]
            evidence = [f"routes of {vhost_name}: {_listed(routes)}"]
            self._add("route", FAIL, f"virtual host {vhost_name} has no route for {request.method} {request.path} "
                      "(404 NR)", MD_ROUTE_NOT_FOUND, evidence + self._vs_hint(), routeConfig=name,
                      virtualHost=vhost_name)
        position, route = chosen
        route_name = str(field_of(route, "name") or "")
        self.virtual_service = _virtual_service(route)
        evidence = [f"domain {domain!r} of virtual host {vhost_name}",
                    f"route #{position + 1}{f' {route_name!r}' if route_name else ''}: "
                    f"{describe_match(as_dict(field_of(route, 'match')))}"]
        if self.virtual_service:
            evidence.append(f"from {self.virtual_service}")
        data = {"routeConfig": name, "virtualHost": vhost_name, "route": route_name, "domain": domain}
        catch_all = domain == "*"
        if (direct := field_of(route, "direct_response")) is not None:
            status = field_of(direct, "status")
            if vhost_name == BLOCK_ALL_VHOST or (catch_all and status == 502):
                summary = (f"{self.dest.authority} matches only the catch-all virtual host {vhost_name}: Envoy "
                           f"answers {status} itself (outboundTrafficPolicy REGISTRY_ONLY)")
                if self.dest.service is not None:  # a mesh Service the sidecar does not know: visibility, not egress
                    self._add("route", FAIL, summary, MD_ROUTE_NOT_FOUND, evidence + [self._hidden_hint()], **data)
                self._add("route", FAIL, summary, MD_EGRESS_BLOCKED, evidence + self._registry_hint(), **data)
            self._add("route", FAIL if isinstance(status, int) and status >= 400 else OK,
                      f"{vhost_name}: direct response {status}", None, evidence, **data)
        if field_of(route, "redirect") is not None:
            self._add("route", OK, f"{vhost_name}: redirect", None, evidence, **data)
            self._finish("cluster", "endpoints", "tls", "server", reason="the route redirects; no upstream")
        action = as_dict(field_of(route, "route"))
        self.clusters = _route_clusters(action)
        if not self.clusters:
            self._add("route", WARN, f"{vhost_name}: route picks its cluster at request time "
                      "(cluster_header or specifier plugin)", None, evidence, **data)
            raise _Stop
        verdict, code = OK, None
        if catch_all and self.dest.service is not None:
            verdict, code = WARN, MD_ROUTE_NOT_FOUND
            evidence.append(self._hidden_hint())
        targets = ", ".join(f"{c} ({w}%)" if w is not None else c for c, w in self.clusters)
        timeout = _route_timeout(action)
        evidence.append(f"route timeout {timeout}")
        shown = "" if timeout.startswith(("0s", "15s (Envoy")) else f", timeout {timeout}"  # the usual ones stay quiet
        self._add("route", verdict, f"{vhost_name} -> {targets}{shown}", code, evidence, timeout=timeout, **data)

    def _vs_hint(self) -> list[str]:
        if self.dest.fqdn is None:
            return []
        names = [f"VirtualService {_ns_name(vs)}" for vs in self.ctx.virtual_services
                 if self._vs_covers(vs)]
        if not names:
            return []
        return [f"{_listed(names)} route(s) {self.dest.fqdn}: their http matches do not cover this request"]

    def _vs_covers(self, vs: dict) -> bool:
        namespace = (vs.get("metadata") or {}).get("namespace") or "default"
        return any(resolve_host(h, namespace) == self.dest.fqdn for h in (vs.get("spec") or {}).get("hosts") or [])

    def _hidden_hint(self) -> str:
        return (f"{self.dest.fqdn} is a Service, but this sidecar has no listener or virtual host of its own for "
                "it: a Sidecar resource's egress, or the Service's exportTo, hides it from this namespace")

    def _registry_hint(self) -> list[str]:
        namespace = (self.pod.get("metadata") or {}).get("namespace") or "default"
        mode, _, decided_by = outbound_policy(self.ctx, self.pod, namespace)
        destination = f"{self.dest.host}:{self.dest.port}"
        return [f"no ServiceEntry or Service declares {self.dest.host}; with REGISTRY_ONLY the sidecar "
                "blocks every host the registry does not know"] + ([decided_by] if mode else []) + [
                f"a ServiceEntry that lets it through: {service_entry_yaml(destination, namespace)}"]

    # --- cluster ----------------------------------------------------------------------------------------

    def _cluster(self) -> None:
        names = [c for c, _ in self.clusters]
        if not names:
            self._add("cluster", FAIL, "the TCP proxy names no cluster")
        if BLACKHOLE_CLUSTER in names:
            summary = (f"{BLACKHOLE_CLUSTER}: the sidecar drops the connection (outboundTrafficPolicy REGISTRY_ONLY "
                       "and nothing in the registry for this destination)")
            if self.dest.service is not None:
                self._add("cluster", FAIL, summary, MD_ROUTE_NOT_FOUND, [self._hidden_hint()],
                          cluster=BLACKHOLE_CLUSTER)
            self._add("cluster", FAIL, summary, MD_EGRESS_BLOCKED, self._registry_hint(), cluster=BLACKHOLE_CLUSTER)
        missing = [c for c in names if c not in self.index.clusters]
        if missing:
            self._fail_if_rejected("cluster", lambda rejected: rejected in missing)
            parsed = [p for c in missing if (p := IstioClusterName.parse(c)) is not None and p.subset]
            share = "" if len(missing) == len(names) else \
                f" ({sum(w or 0 for c, w in self.clusters if c in missing)}% of requests)"
            if parsed:
                self._add("cluster", FAIL, f"Envoy has no cluster {_listed(missing)}{share}: subset "
                          f"{_listed(sorted({p.subset for p in parsed}))} is not defined (503 NC)",
                          MD_SUBSET_NOT_DEFINED, self._subset_evidence(parsed[0]), missing=missing)
            self._add("cluster", FAIL, f"Envoy has no cluster {_listed(missing)}{share} (503 NC)", None,
                      [f"{len(self.index.clusters)} clusters in the config_dump"], missing=missing)
        name = max(self.clusters, key=lambda c: c[1] or 0)[0]
        self.cluster_name, self.cluster = name, self.index.clusters[name]
        discovery = _discovery(self.cluster)
        if name in PASSTHROUGH_CLUSTERS:
            self._add("cluster", OK, f"{name}: {discovery} to the original destination, outside Istio's routing",
                      cluster=name, discovery=discovery)
            target = f"{self.dest.addresses[0] if self.dest.addresses else self.dest.host}:{self.dest.port}"
            self._add("endpoints", OK, f"the address the application dialled: {target}")
            self._add("tls", OK, "no TLS added by the sidecar (the application's own bytes pass through)")
            self._finish("server", reason="outside the mesh")
        parsed_name = IstioClusterName.parse(name)
        detail = f" (subset {parsed_name.subset})" if parsed_name and parsed_name.subset else ""
        evidence = [f"weights: {', '.join(f'{c} {w}%' for c, w in self.clusters)}"] if len(self.clusters) > 1 else []
        limits = _circuit_breakers(self.cluster)
        if limits:  # what answers 503 UO at run time when the load exceeds them
            detail += f", connection pool limits {', '.join(limits)}"
        http = _http_protocol_options(self.cluster)
        idle = field_of(http, "idle_timeout")
        evidence.append(f"upstream idle timeout {idle}" if idle else
                        "upstream idle timeout 1h (Envoy's default: no DestinationRule connectionPool idleTimeout); an "
                        "app closing kept-alive connections sooner gets requests reset (503 UC)")
        if idle:
            detail += f", idle timeout {idle}"
        self._add("cluster", OK, f"{name}: {discovery}{detail}", None, evidence, cluster=name, discovery=discovery,
                  connectionPool=limits, idleTimeout=idle)

    def _subset_evidence(self, parsed: IstioClusterName) -> list[str]:
        rules = self.ctx.destination_rules_for(parsed.host)
        evidence = []
        if self.virtual_service:
            evidence.append(f"the route comes from {self.virtual_service}")
        if not rules:
            evidence.append(f"no DestinationRule for {parsed.host}")
        for rule in rules:
            subsets = [s.get("name") for s in (rule.get("spec") or {}).get("subsets") or []]
            defined = _listed(subsets) if subsets else "none"
            evidence.append(f"DestinationRule {_ns_name(rule)} defines subsets {defined}")
        return evidence

    # --- endpoints --------------------------------------------------------------------------------------

    def _endpoints(self) -> None:
        discovery = _discovery(self.cluster)
        if discovery == "ORIGINAL_DST":
            self.endpoints = [EnvoyEndpoint(ip, None, "UNKNOWN", "", {}) for ip in self.dest.addresses]
            if not self.endpoints:
                self._add("endpoints", FAIL, "ORIGINAL_DST cluster and no pod address behind the Service (503 UH)",
                          MD_NO_HEALTHY_UPSTREAM, self._why_no_endpoints())
            self._add("endpoints", OK, f"ORIGINAL_DST: the pod address the client resolved, "
                      f"{self._endpoint_list(self.endpoints)}", evidence=["Envoy keeps no endpoint list for it"])
            return
        endpoints = self.index.endpoints(self.cluster_name)
        if endpoints is None:
            self._add("endpoints", WARN, f"the config_dump shows no endpoints for {self.cluster_name}"
                      + ("" if self.index.has_endpoints else " (it was taken without ?include_eds)"))
            raise _Stop
        healthy = [e for e in endpoints if e.usable]
        self.endpoints = healthy
        unhealthy = [f"{e.text} {e.health}" for e in endpoints if not e.usable]
        if not healthy:
            self._add("endpoints", FAIL, f"no healthy endpoint in {self.cluster_name} "
                      f"({len(endpoints)} known, 503 UH no_healthy_upstream)", MD_NO_HEALTHY_UPSTREAM,
                      ([f"unhealthy: {_listed(unhealthy)}"] if unhealthy else []) + self._why_no_endpoints())
        evidence = [f"unhealthy: {_listed(unhealthy)}"] if unhealthy else []
        self._add("endpoints", OK, f"{len(healthy)} of {len(endpoints)} healthy: {self._endpoint_list(healthy)}",
                  None, evidence, endpoints=[{"address": e.text, "health": e.health, "locality": e.locality,
                                              "pod": self._pod_name(e)} for e in endpoints])

    def _endpoint_list(self, endpoints: list[EnvoyEndpoint]) -> str:
        items = []
        for endpoint in endpoints:
            pod = self._pod_name(endpoint)
            extra = ", ".join(x for x in (pod, endpoint.locality) if x)
            items.append(f"{endpoint.text}" + (f" ({extra})" if extra else ""))
        return _listed(items)

    def _pod_name(self, endpoint: EnvoyEndpoint) -> str:
        pod = self.pods_by_ip.get(endpoint.address)
        return (pod.get("metadata") or {}).get("name") or "" if pod else ""

    def _why_no_endpoints(self) -> list[str]:
        service = self.dest.service
        if service is None:
            return []
        spec = service.get("spec") or {}
        selector = spec.get("selector") or {}
        namespace = (service.get("metadata") or {}).get("namespace") or ""
        shown = ",".join(f"{k}={v}" for k, v in selector.items())
        if not selector:
            return [f"Service {_ns_name(service)} has no selector: its endpoints are managed by hand"]
        pods = [p for p in self.ctx.pods_in(namespace)
                if all(labels_of(p).get(k) == v for k, v in selector.items())]
        parsed = IstioClusterName.parse(self.cluster_name)
        if not pods:
            near = sorted({f"{k}={v}" for p in self.ctx.pods_in(namespace) for k, v in labels_of(p).items()
                           if k in selector})
            return [f"selector {shown} of Service {_ns_name(service)} matches no pod"
                    + (f"; pods here have {_listed(near)}" if near else "")]
        if parsed and parsed.subset:
            labels = self._subset_labels(parsed)
            pods = [p for p in pods if all(labels_of(p).get(k) == v for k, v in labels.items())]
            if not pods:
                return [f"subset {parsed.subset} ({','.join(f'{k}={v}' for k, v in labels.items())}) matches no pod "
                        f"of Service {_ns_name(service)}"]
        ready = [p for p in pods if _pod_ready(p)]
        if not ready:
            return [f"{len(pods)} pod(s) selected, none ready: {_listed([p['metadata']['name'] for p in pods])}"]
        return [f"{len(ready)} ready pod(s) selected: the endpoints have not reached this sidecar, "
                "or outlier detection ejected them"]

    def _subset_labels(self, parsed: IstioClusterName) -> dict[str, str]:
        for rule in self.ctx.destination_rules_for(parsed.host):
            for subset in (rule.get("spec") or {}).get("subsets") or []:
                if subset.get("name") == parsed.subset:
                    return dict(subset.get("labels") or {})
        return {}

    # --- TLS --------------------------------------------------------------------------------------------

    def _tls(self) -> None:
        rows, plain_servers = [], []
        matches = [as_dict(m) for m in as_list(field_of(self.cluster, "transport_socket_matches"))]
        for endpoint in self.endpoints:
            socket, chosen_by = self._socket_for(endpoint, matches)
            kind = cluster_tls({"transport_socket": socket}) if socket else TLS_NONE
            pod = self.pods_by_ip.get(endpoint.address)
            meshed = pod is not None and sidecar_container(pod) is not None
            self.tls_by_address[endpoint.text] = kind
            owner = f", pod {pod['metadata']['name']} {'with' if meshed else 'without'} a sidecar" if pod else ""
            rows.append(f"{endpoint.text}: {_tls_name(kind)} ({chosen_by}){owner}")
            if kind == TLS_ISTIO_ALWAYS and pod is not None and not meshed:
                plain_servers.append(pod)
        if plain_servers:
            names = _listed([p["metadata"]["name"] for p in plain_servers])
            self._add("tls", FAIL, f"Istio mTLS toward plain-text endpoint(s): {names} run without a sidecar "
                      "(UF,URX: the server answers the TLS handshake in plain text)", MD_MTLS_TO_PLAINTEXT,
                      rows + self._tls_rules(), cluster=self.cluster_name)
        kinds = sorted({_tls_name(kind) for kind in self.tls_by_address.values()})
        self._add("tls", OK, f"{' and '.join(kinds) or 'nothing'} to {len(self.endpoints)} endpoint(s)", None, rows)

    def _socket_for(self, endpoint: EnvoyEndpoint, matches: list[Json]) -> tuple[Json | None, str]:
        """Envoy's choice: the first transport_socket_matches entry whose criteria the endpoint's
        ``envoy.transport_socket_match`` metadata satisfies, else the cluster's own transport_socket."""
        for match in matches:
            criteria = as_dict(field_of(match, "match"))
            if all(endpoint.match_metadata.get(k) == v for k, v in criteria.items()):
                socket = as_dict(field_of(match, "transport_socket")) or None
                return socket, f"transport socket match {field_of(match, 'name')}"
        return as_dict(field_of(self.cluster, "transport_socket")) or None, "the cluster's transport socket"

    def _tls_rules(self) -> list[str]:
        """The DestinationRule tls blocks that apply to this cluster: its host, its subset, its port."""
        parsed = IstioClusterName.parse(self.cluster_name)
        host = parsed.host if parsed else self.dest.fqdn
        if host is None:
            return []
        found = []
        for rule in self.ctx.destination_rules_for(host):
            spec = rule.get("spec") or {}
            policies = [("trafficPolicy", spec.get("trafficPolicy"))] + [
                (f"subsets[{s.get('name')}].trafficPolicy", s.get("trafficPolicy"))
                for s in spec.get("subsets") or [] if isinstance(s, dict) and parsed and s.get("name") == parsed.subset]
            for where, policy in policies:
                policy = policy if isinstance(policy, dict) else {}
                blocks = [(f"{where}.tls", policy.get("tls"))] + [
                    (f"{where}.portLevelSettings[{(p.get('port') or {}).get('number')}].tls", p.get("tls"))
                    for p in policy.get("portLevelSettings") or []
                    if isinstance(p, dict) and parsed and (p.get("port") or {}).get("number") == parsed.port]
                for at, tls in blocks:
                    if isinstance(tls, dict) and tls.get("mode"):
                        found.append(f"DestinationRule {_ns_name(rule)} sets {at}.mode {tls['mode']}")
        return found

    # --- server -----------------------------------------------------------------------------------------

    def _server(self) -> None:
        servers = [(e, p) for e in self.endpoints if (p := self.pods_by_ip.get(e.address)) is not None]
        meshed = [(e, p) for e, p in servers if sidecar_container(p) is not None]
        if not meshed:
            reason = "the server pods run without a sidecar" if servers else "no endpoint is a pod known here"
            self._add("server", NOT_APPLICABLE, reason)
            return
        rows, strict_plain, disabled_mtls = [], [], []
        for endpoint, pod in meshed:
            port = endpoint.port or self._target_port(pod)
            mode, source = self._peer_mode(pod, port)
            plain = self.tls_by_address.get(endpoint.text) != TLS_ISTIO_ALWAYS
            rows.append(f"{pod['metadata']['name']}: inbound port {port} via virtualInbound "
                        f"({INBOUND_CAPTURE_PORT}), PeerAuthentication {mode} ({source}), client sends "
                        f"{'plain text' if plain else 'Istio mTLS'}")
            if plain and mode == "STRICT":
                strict_plain.append(pod)
            if not plain and mode == "DISABLE":
                disabled_mtls.append(pod)
        if strict_plain:
            rules = self._tls_rules()
            # MD0402 is a DestinationRule turning TLS off; without one, auto mTLS sent plain text because the
            # endpoints carry no tlsMode=istio metadata (their pods lack the label): say that instead.
            unlabelled = [] if rules else [f"{p['metadata']['name']} has no {TLS_MODE_LABEL}=istio label, so auto "
                                           "mTLS sends it plain text" for p in strict_plain
                                           if labels_of(p).get(TLS_MODE_LABEL) != "istio"]
            self._add("server", FAIL, f"{_listed([p['metadata']['name'] for p in strict_plain])} require mTLS "
                      "(PeerAuthentication STRICT) but the client sends plain text: the server's sidecar resets "
                      "the connection", MD_MTLS_MODE_CONFLICT if rules else None, rows + rules + unlabelled)
        if disabled_mtls:
            self._add("server", FAIL, f"{_listed([p['metadata']['name'] for p in disabled_mtls])} have "
                      "PeerAuthentication DISABLE: their sidecar does not terminate the mTLS the client sends",
                      None, rows)
        self._add("server", OK, f"{len(meshed)} meshed server pod(s) accept what the client sends", None, rows)

    def _target_port(self, pod: dict) -> int | None:
        port = self.dest.service_port or {}
        target = port.get("targetPort", port.get("port"))
        if isinstance(target, int) or target is None:
            return target
        if str(target).isdigit():
            return int(target)
        for container in (pod.get("spec") or {}).get("containers") or []:
            for item in container.get("ports") or []:
                if item.get("name") == target:
                    return item.get("containerPort")
        return None

    def _peer_mode(self, pod: dict, port: int | None) -> tuple[str, str]:
        """Effective PeerAuthentication mode at ``port``: a workload policy's port level first."""
        namespace = pod["metadata"].get("namespace") or ""
        labels = labels_of(pod)
        if port is not None:
            for policy in self.ctx.objects("PeerAuthentication"):
                spec = policy.get("spec") or {}
                selector = (spec.get("selector") or {}).get("matchLabels") or {}
                if (policy.get("metadata") or {}).get("namespace") != namespace or not selector:
                    continue
                if not all(labels.get(k) == v for k, v in selector.items()):
                    continue
                levels = spec.get("portLevelMtls") or {}
                level = levels.get(str(port)) or levels.get(port) or {}
                mode = str(level.get("mode") or "").upper()
                if mode and mode not in ("UNSET", "INHERIT"):
                    return mode, f"{_ns_name(policy)}, port {port}"
        mode, policy = self.ctx.peer_authentication_mode(namespace, labels)
        return mode, _ns_name(policy) if policy else "no PeerAuthentication: Istio's default"


# --- helpers --------------------------------------------------------------------------------------------


def _tcp_clusters(tcp_proxy: Json) -> list[tuple[str, int | None]]:
    if isinstance(cluster := field_of(tcp_proxy, "cluster"), str) and cluster:
        return [(cluster, None)]
    return _weighted(field_of(tcp_proxy, "weighted_clusters"))


def _route_clusters(action: Json) -> list[tuple[str, int | None]]:
    if isinstance(cluster := field_of(action, "cluster"), str) and cluster:
        return [(cluster, None)]
    return _weighted(field_of(action, "weighted_clusters"))


def _weighted(weighted: typing.Any) -> list[tuple[str, int | None]]:
    entries = [as_dict(c) for c in as_list(field_of(weighted, "clusters"))]
    return [(str(field_of(c, "name")), _weight(field_of(c, "weight"))) for c in entries if field_of(c, "name")]


def _weight(value: typing.Any) -> int | None:
    if isinstance(value, dict):  # older dumps wrap UInt32Value
        value = value.get("value")
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _route_timeout(action: Json) -> str:
    """The route's timeout as Envoy holds it: "0s" is Istio's default (none), unset is Envoy's 15 s."""
    timeout = field_of(action, "timeout")
    if timeout is None:
        return "15s (Envoy's default: the route sets none)"
    return f"{timeout} (disabled)" if str(timeout) in ("0s", "0.000s") else f"{timeout} (504 UT beyond)"


def _circuit_breakers(cluster: Json) -> list[str]:
    """The default-priority thresholds below Istio's "unlimited" (a DestinationRule connectionPool's limits)."""
    limits = []
    for threshold in as_list(field_of(as_dict(field_of(cluster, "circuit_breakers")), "thresholds")):
        threshold = as_dict(threshold)
        if str(field_of(threshold, "priority") or "DEFAULT") != "DEFAULT":
            continue
        for key in ("max_connections", "max_pending_requests", "max_requests", "max_retries"):
            value = _weight(field_of(threshold, key))
            if value is not None and value != UNLIMITED:
                limits.append(f"{key} {value}")
    per_connection = _weight(field_of(_http_protocol_options(cluster), "max_requests_per_connection"))
    if per_connection:
        limits.append(f"max_requests_per_connection {per_connection}")
    return limits


def _http_protocol_options(cluster: Json) -> Json:
    options = as_dict(field_of(cluster, "typed_extension_protocol_options"))
    http = as_dict(options.get("envoy.extensions.upstreams.http.v3.HttpProtocolOptions"))
    return as_dict(field_of(http, "common_http_protocol_options") or field_of(cluster, "common_http_protocol_options"))


def _discovery(cluster: Json) -> str:
    kind = field_of(cluster, "type")
    custom = field_of(cluster, "cluster_type")
    if custom is not None:
        return str(field_of(custom, "name") or "CUSTOM")
    return str(kind) if kind else "STATIC"


def _virtual_service(route: Json) -> str | None:
    """The VirtualService istiod built the route from (route metadata ``istio.config``)."""
    istio = as_dict(as_dict(field_of(as_dict(field_of(route, "metadata")), "filter_metadata")).get("istio"))
    path = str(istio.get("config") or "")
    parts = path.strip("/").split("/")
    if "namespaces" in parts and len(parts) >= parts.index("namespaces") + 4:
        at = parts.index("namespaces")
        return f"VirtualService {parts[at + 1]}/{parts[at + 3]}"
    return None


def _ns_name(obj: dict | None) -> str:
    meta = (obj or {}).get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name') or '?'}"


def _listed(items: typing.Sequence[str]) -> str:
    items = [str(i) for i in items]
    shown = ", ".join(items[:MAX_LISTED])
    return shown + (f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "") if items else "none"


def _tls_name(kind: str) -> str:
    return {TLS_ISTIO_ALWAYS: "Istio mTLS", TLS_NONE: "plain text"}.get(kind, "TLS (not Istio mTLS)")


def _pod_ips(pod: dict) -> list[str]:
    status = pod.get("status") or {}
    ips = [str(item.get("ip")) for item in status.get("podIPs") or [] if item.get("ip")]
    return ips or ([status["podIP"]] if status.get("podIP") else [])


def _pod_ready(pod: dict) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


__all__ = ["Hop", "Trace", "trace_request", "STEPS", "OK", "WARN", "FAIL", "NOT_REACHED", "NOT_APPLICABLE"]
