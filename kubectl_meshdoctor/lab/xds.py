"""Istio-shaped Envoy configuration for one lab pod, generated from the scenario's Kubernetes objects.

The lab's sidecars must show the same *kind* of configuration istiod would push, for the same reasons:
a VirtualService subset without a DestinationRule yields a route to a cluster Envoy does not have, a
headless Service becomes an ORIGINAL_DST cluster whose single transport socket decides TLS, a
DestinationRule `tls.mode: DISABLE` yields a plain-text cluster. So this module works the way istiod
does (services -> clusters, DR subsets -> subset clusters, VS -> routes) rather than from hand-written
Envoy YAML. It is deliberately small: only what the diagnosis looks at.

Delivery is REST-JSON xDS from the lab's own small server (xdsserver.py): Envoy polls
`/v3/discovery:clusters|listeners|routes` once at start (refresh_delay is long). File-based xDS was
tried first and abandoned: each watched file costs an inotify instance and a user has only 128, which
twenty Envoys exhaust (Envoy then aborts). Two further simplifications, both documented here:
- endpoints are inline in each cluster (`type: STATIC` + `load_assignment`) instead of EDS, to keep
  one request per resource type per Envoy;
- the `default` and `ROOTCA` secrets come by SDS, as Istio's do, but over REST from the lab's xDS server
  (cluster `sds-grpc`) rather than gRPC from pilot-agent's socket; Envoy shows them, as it does a real
  sidecar's, in config_dump's `dynamic_active_secrets`, and `/certs` shows the same certificates.
Listeners for outbound ports use `bind_to_port: false`, as Istio's do behind the 15001 capture
listener, so any number of Envoys share loopback; the lab binds a listener only where it drives real
traffic through it (see ``SidecarWiring.bound_listeners``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import yaml

from kubectl_meshdoctor.lab.certs import spiffe_id

DOMAIN_SUFFIX = "svc.cluster.local"

# Istio's default text access-log format (pilot/pkg/model/telemetry_logging.go, EnvoyTextLogFormat).
ISTIO_TEXT_LOG_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% '
    '%RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% '
    '"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% '
    '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" '
    '"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% '
    '%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% '
    '%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n'
)

# Protocols Istio recognises in a port name `<protocol>[-<suffix>]` or in appProtocol.
KNOWN_PROTOCOLS = ("grpc-web", "http2", "http", "https", "grpc", "mongo", "mysql", "redis", "tcp",
                   "tls", "udp")
HTTP_PROTOCOLS = {"http", "http2", "grpc", "grpc-web"}

T_CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
T_LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
T_ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
T_HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
T_TCP_PROXY = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
T_UPSTREAM_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
T_DOWNSTREAM_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
T_TLS_INSPECTOR = "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"
T_RAW_BUFFER = "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"
T_FILE_LOG = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
T_SECRET = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
T_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
T_SET_FILTER_STATE = "type.googleapis.com/envoy.extensions.filters.network.set_filter_state.v3.Config"
T_PROXY_PROTOCOL = "type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol"
T_HTTP_OPTIONS = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


def port_protocol(port: dict) -> str:
    """Istio's protocol for a Service port: appProtocol, else the port name's prefix, else TCP."""
    for candidate in (port.get("appProtocol"), port.get("name")):
        if not candidate:
            continue
        candidate = candidate.lower()
        for protocol in KNOWN_PROTOCOLS:
            if candidate == protocol or candidate.startswith(protocol + "-"):
                return protocol
    return "tcp"


def fqdn(name: str, namespace: str) -> str:
    return f"{name}.{namespace}.{DOMAIN_SUFFIX}"


def cluster_name(direction: str, port: int, subset: str, host: str) -> str:
    return f"{direction}|{port}|{subset}|{host}"


def _labels(obj: dict) -> dict[str, str]:
    return obj.get("metadata", {}).get("labels") or {}


def _selects(selector: dict[str, str] | None, labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _resolve_host(host: str, namespace: str) -> str:
    """A short host in an Istio resource is relative to that resource's namespace."""
    return host if "." in host else fqdn(host, namespace)


@dataclass(frozen=True)
class MeshService:
    name: str
    namespace: str
    cluster_ip: str | None  # None for headless
    ports: tuple[dict, ...]
    selector: dict[str, str]

    @property
    def host(self) -> str:
        return fqdn(self.name, self.namespace)


ROOT_NAMESPACE = "istio-system"  # where a mesh-wide Sidecar lives


def mesh_outbound_mode(config_map: dict) -> str:
    """outboundTrafficPolicy.mode of the `istio` ConfigMap's `mesh` document (ALLOW_ANY when unset)."""
    mesh = yaml.safe_load((config_map.get("data") or {}).get("mesh") or "") or {}
    return str(((mesh.get("outboundTrafficPolicy") or {}).get("mode")) or "ALLOW_ANY")


class MeshModel:
    """Index of the objects istiod would watch: Services, Pods, DestinationRules, VirtualServices."""

    def __init__(self, objects: Iterable[dict]):
        self.services: list[MeshService] = []
        self.pods: list[dict] = []
        self.destination_rules: list[dict] = []
        self.virtual_services: list[dict] = []
        self.sidecars: list[dict] = []
        self.mesh_outbound_mode = "ALLOW_ANY"  # Istio's default when meshConfig does not say
        for obj in objects:
            kind = obj.get("kind")
            meta = obj.get("metadata", {})
            if kind == "Service":
                spec = obj.get("spec", {})
                ip = spec.get("clusterIP")
                self.services.append(MeshService(
                    name=meta["name"], namespace=meta.get("namespace", "default"),
                    cluster_ip=None if ip in (None, "None") else ip,
                    ports=tuple(spec.get("ports") or ()), selector=dict(spec.get("selector") or {}),
                ))
            elif kind == "Pod":
                self.pods.append(obj)
            elif kind == "DestinationRule":
                self.destination_rules.append(obj)
            elif kind == "VirtualService":
                self.virtual_services.append(obj)
            elif kind == "Sidecar":
                self.sidecars.append(obj)
            elif kind == "ConfigMap" and meta.get("name") == "istio" and meta.get("namespace") == ROOT_NAMESPACE:
                self.mesh_outbound_mode = mesh_outbound_mode(obj)

    def visible_services(self, client_ns: str) -> list[MeshService]:
        """The Services istiod sends a sidecar in ``client_ns``: its Sidecar's egress hosts, if any.

        As in Istio, a namespace's Sidecar (without workloadSelector) wins over the root namespace's
        (istio-system); with neither, every Service is visible. Hosts are ``<ns>/<host>`` with ``.``
        for the client's namespace and ``*`` for any.
        """
        sidecar = self._sidecar_of(client_ns)
        if sidecar is None:
            return self.services
        patterns = [h.split("/", 1) for e in sidecar.get("spec", {}).get("egress") or () for h in e.get("hosts") or ()]

        def visible(svc: MeshService) -> bool:
            return any((ns == "*" or ns == svc.namespace or (ns == "." and svc.namespace == client_ns))
                       and (host == "*" or host == svc.host) for ns, host in patterns)

        return [svc for svc in self.services if visible(svc)]

    def outbound_mode(self, client_ns: str) -> str:
        """ALLOW_ANY or REGISTRY_ONLY: the Sidecar's outboundTrafficPolicy, else the mesh config's.

        As istiod's SidecarScope does (pilot/pkg/model/sidecar.go): the Sidecar that applies wins when it
        sets a policy, otherwise meshConfig.outboundTrafficPolicy.
        """
        sidecar = self._sidecar_of(client_ns)
        mode = (((sidecar or {}).get("spec") or {}).get("outboundTrafficPolicy") or {}).get("mode")
        return mode or self.mesh_outbound_mode

    def _sidecar_of(self, client_ns: str) -> dict | None:
        def default_of(namespace: str) -> dict | None:
            return next((s for s in self.sidecars if s["metadata"].get("namespace") == namespace
                         and not s.get("spec", {}).get("workloadSelector")), None)

        return default_of(client_ns) or default_of(ROOT_NAMESPACE)

    def service_pods(self, service: MeshService, extra_labels: dict[str, str] | None = None) -> list[dict]:
        wanted = {**service.selector, **(extra_labels or {})}
        return [
            pod for pod in self.pods
            if pod["metadata"].get("namespace") == service.namespace
            and service.selector and _selects(wanted, _labels(pod))
            and pod.get("status", {}).get("podIP")
        ]

    def destination_rule(self, host: str) -> dict | None:
        for rule in self.destination_rules:
            ns = rule["metadata"].get("namespace", "default")
            if _resolve_host(rule.get("spec", {}).get("host", ""), ns) == host:
                return rule
        return None

    def virtual_service(self, host: str) -> dict | None:
        for vs in self.virtual_services:
            ns = vs["metadata"].get("namespace", "default")
            if any(_resolve_host(h, ns) == host for h in vs.get("spec", {}).get("hosts", ())):
                return vs
        return None


def _target_port(port: dict, pod: dict) -> int:
    target = port.get("targetPort", port["port"])
    if isinstance(target, int):
        return target
    for container in pod.get("spec", {}).get("containers", ()):
        for cport in container.get("ports") or ():
            if cport.get("name") == target:
                return cport["containerPort"]
    return port["port"]


def _istio_mtls_socket(host: str, port: int, subset: str, sans: list[str]) -> dict:
    validation: dict[str, Any] = {}
    if sans:
        validation["match_typed_subject_alt_names"] = [
            {"san_type": "URI", "matcher": {"exact": san}} for san in sans
        ]
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": T_UPSTREAM_TLS,
            "common_tls_context": {
                "tls_params": {"tls_minimum_protocol_version": "TLSv1_2",
                               "tls_maximum_protocol_version": "TLSv1_3"},
                "alpn_protocols": ["istio-peer-exchange", "istio"],
                "tls_certificate_sds_secret_configs": [sds_secret("default")],
                "combined_validation_context": {
                    "default_validation_context": validation,
                    "validation_context_sds_secret_config": sds_secret("ROOTCA"),
                },
            },
            "sni": f"outbound_.{port}_.{subset}_.{host}",
        },
    }


def _istio_mtls_server_socket() -> dict:
    """Istio's inbound mTLS: the workload certificate, a client certificate required and verified against
    ROOTCA (any SPIFFE identity of the trust domain; authorization policies narrow it, none here)."""
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": T_DOWNSTREAM_TLS,
            "common_tls_context": {
                "tls_params": {"tls_minimum_protocol_version": "TLSv1_2",
                               "tls_maximum_protocol_version": "TLSv1_3"},
                "tls_certificate_sds_secret_configs": [sds_secret("default")],
                "combined_validation_context": {
                    "default_validation_context": {"match_typed_subject_alt_names": [
                        {"san_type": "URI", "matcher": {"prefix": "spiffe://cluster.local/"}}]},
                    "validation_context_sds_secret_config": sds_secret("ROOTCA"),
                },
            },
            "require_client_certificate": True,
        },
    }


def accept_mtls_at_pod_ip(resources: "SidecarResources", pod_ip: str, ports: Iterable[int]) -> None:
    """Let sidecars elsewhere reach this one at ``pod_ip``:port over Istio mTLS (multi-cluster labs).

    What iptables does in a pod: connections to the pod IP's inbound ports end at virtualInbound, whose
    chain for the port matches by destination port; the TLS inspector tells Istio mTLS from plain text, and
    the mTLS chain terminates it with the workload certificate before the port's usual filters."""
    inbound = next((l for l in resources.listeners if l["name"] == "virtualInbound"), None)
    if inbound is None:
        return
    chains, wanted = inbound["filter_chains"], set(ports)
    opened = []
    for chain in list(chains):
        port = (chain.get("filter_chain_match") or {}).get("destination_port")
        if port in wanted and "transport_socket" not in chain:
            tls = {"name": f"{chain['name']}_mtls", "filter_chain_match": {"destination_port": port,
                                                                          "transport_protocol": "tls"},
                   "transport_socket": _istio_mtls_server_socket(), "filters": chain["filters"]}
            chains.insert(chains.index(chain), tls)
            opened.append(port)
    if not opened:
        return
    inbound["additional_addresses"] = [{"address": {"socket_address": {"address": pod_ip, "port_value": port}}}
                                       for port in sorted(opened)]
    inbound["listener_filters"].append({"name": "envoy.filters.listener.tls_inspector",
                                        "typed_config": {"@type": T_TLS_INSPECTOR}})


def _tls_mode(rule: dict | None, port: int, subset: str) -> str | None:
    """The DestinationRule's tls.mode for (port, subset): subset policy, then port policy, then top."""
    if rule is None:
        return None
    spec = rule.get("spec", {})
    policies = []
    for s in spec.get("subsets") or ():
        if s.get("name") == subset and s.get("trafficPolicy"):
            policies.append(s["trafficPolicy"])
    if spec.get("trafficPolicy"):
        policies.append(spec["trafficPolicy"])
    for policy in policies:
        for pls in policy.get("portLevelSettings") or ():
            if (pls.get("port") or {}).get("number") == port and (pls.get("tls") or {}).get("mode"):
                return pls["tls"]["mode"]
        if (policy.get("tls") or {}).get("mode"):
            return policy["tls"]["mode"]
    return None


@dataclass(frozen=True)
class SidecarWiring:
    """How one pod's generated config is tied to the local machine."""

    access_log_path: str
    # listener name -> 127.0.0.1 port, for listeners the lab sends real traffic through
    bound_listeners: dict[str, int] = field(default_factory=dict)
    # cluster name -> "127.0.0.1:port": where an ORIGINAL_DST cluster sends that traffic (no iptables here)
    original_dst_targets: dict[str, str] = field(default_factory=dict)
    virtual_outbound_port: int = 0
    virtual_inbound_port: int = 0
    # pod IP -> port of the lab's stand-in app for that pod (no pod network here): endpoints of such pods,
    # and their own inbound cluster, point at APP_ADDRESS:port, so requests really reach a server (with its
    # latency, its refusals).
    app_ports: dict[str, int] = field(default_factory=dict)


# Where the lab's stand-in apps play "the pod IP": another loopback address, so that an app bound to
# 127.0.0.1 only refuses what the sidecar sends to the pod IP, as it does in a pod since Istio 1.10.
APP_ADDRESS = "127.0.0.2"


@dataclass
class SidecarResources:
    clusters: list[dict]
    listeners: list[dict]
    routes: dict[str, dict]


def _access_log(wiring: SidecarWiring) -> list[dict]:
    return [{
        "name": "envoy.access_loggers.file",
        "typed_config": {"@type": T_FILE_LOG, "path": wiring.access_log_path,
                         "log_format": {"text_format_source": {"inline_string": ISTIO_TEXT_LOG_FORMAT}}},
    }]


def _endpoint(ip: str, port: int, pod: dict) -> dict:
    labels = _labels(pod)
    metadata: dict[str, Any] = {"istio": {"workload": f"{labels.get('app', pod['metadata']['name'])};"
                                          f"{pod['metadata'].get('namespace', 'default')}"}}
    if labels.get("security.istio.io/tlsMode") == "istio":
        metadata["envoy.transport_socket_match"] = {"tlsMode": "istio"}
    return {"endpoint": {"address": {"socket_address": {"address": ip, "port_value": port}}},
            "metadata": {"filter_metadata": metadata}, "load_balancing_weight": 1}


def _traffic_policies(rule: dict | None, subset: str) -> list[dict]:
    """The DestinationRule's trafficPolicy for a subset, then its top-level one (Istio merges subset over top)."""
    spec = (rule or {}).get("spec", {})
    policies = [s["trafficPolicy"] for s in spec.get("subsets") or () if s.get("name") == subset and s.get("trafficPolicy")]
    return policies + ([spec["trafficPolicy"]] if spec.get("trafficPolicy") else [])


def _apply_connection_pool(cluster: dict, rule: dict | None, subset: str) -> None:
    """connectionPool -> circuit breaker thresholds and HTTP protocol options (cluster_traffic_policy.go)."""
    pool = next((p["connectionPool"] for p in _traffic_policies(rule, subset) if p.get("connectionPool")), None)
    if not pool:
        return
    threshold = cluster["circuit_breakers"]["thresholds"][0]
    http, tcp = pool.get("http") or {}, pool.get("tcp") or {}
    for key, value in (("max_requests", http.get("http2MaxRequests")),
                       ("max_pending_requests", http.get("http1MaxPendingRequests")),
                       ("max_retries", http.get("maxRetries")), ("max_connections", tcp.get("maxConnections"))):
        if value and int(value) > 0:
            threshold[key] = int(value)
    if tcp.get("connectTimeout"):
        cluster["connect_timeout"] = tcp["connectTimeout"]
    common = {}
    if http.get("idleTimeout") or tcp.get("idleTimeout"):
        common["idle_timeout"] = http.get("idleTimeout") or tcp.get("idleTimeout")
    if http.get("maxRequestsPerConnection"):
        common["max_requests_per_connection"] = int(http["maxRequestsPerConnection"])
    if common:
        cluster["typed_extension_protocol_options"] = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": T_HTTP_OPTIONS, "common_http_protocol_options": common,
            "explicit_http_config": {"http_protocol_options": {}}}}


def _outbound_cluster(model: MeshModel, svc: MeshService, port: dict, subset: str,
                      subset_labels: dict[str, str], wiring: SidecarWiring | None = None) -> dict:
    name = cluster_name("outbound", port["port"], subset, svc.host)
    rule = model.destination_rule(svc.host)
    mode = _tls_mode(rule, port["port"], subset)
    pods = model.service_pods(svc, subset_labels)
    sans = sorted({spiffe_id(svc.namespace, p.get("spec", {}).get("serviceAccountName") or "default")
                   for p in pods})
    cluster: dict[str, Any] = {
        "@type": T_CLUSTER,
        "name": name,
        "connect_timeout": "10s",
        "circuit_breakers": {"thresholds": [{"max_connections": 4294967295, "max_pending_requests": 4294967295,
                                             "max_requests": 4294967295, "max_retries": 4294967295,
                                             "track_remaining": True}]},
        "metadata": {"filter_metadata": {"istio": {
            "default_original_port": port["port"],
            "services": [{"name": svc.name, "namespace": svc.namespace, "host": svc.host}],
            **({"subset": subset} if subset else {}),
        }}},
        "alt_stat_name": f"{name};",
    }
    mtls = _istio_mtls_socket(svc.host, port["port"], subset, sans)
    if svc.cluster_ip is None:
        # Headless: Envoy connects wherever the client connected; one cluster-wide socket decides TLS.
        # Istio drops mTLS only when an endpoint's pod lacks the tlsMode label (or none exist) -- unless a
        # DestinationRule forces ISTIO_MUTUAL, the case that breaks servers without a sidecar.
        cluster.update({"type": "ORIGINAL_DST", "lb_policy": "CLUSTER_PROVIDED", "cleanup_interval": "60s"})
        all_meshed = bool(pods) and all(
            _labels(p).get("security.istio.io/tlsMode") == "istio" for p in pods)
        if mode == "ISTIO_MUTUAL" or (mode is None and all_meshed):
            cluster["transport_socket"] = mtls
        return cluster
    cluster.update({"type": "STATIC", "lb_policy": "LEAST_REQUEST"})
    _apply_connection_pool(cluster, rule, subset)
    app_ports = wiring.app_ports if wiring else {}
    lb_endpoints = [_endpoint(p["status"]["podIP"], _target_port(port, p), p) for p in pods]
    for endpoint, pod in zip(lb_endpoints, pods):
        app_port = app_ports.get(pod["status"]["podIP"])
        if app_port:
            # The stand-in app, reached in plain text: the lab's server side has no sidecar terminating mTLS.
            endpoint["endpoint"]["address"]["socket_address"] = {"address": APP_ADDRESS, "port_value": app_port}
            endpoint["metadata"]["filter_metadata"].pop("envoy.transport_socket_match", None)
    cluster["load_assignment"] = {"cluster_name": name, "endpoints": [{"locality": {}, "lb_endpoints": lb_endpoints}]
                                  if lb_endpoints else []}
    if mode == "ISTIO_MUTUAL":
        cluster["transport_socket"] = mtls
    elif mode is None:
        # Auto mTLS: TLS only toward endpoints whose pod carries the tlsMode=istio label.
        cluster["transport_socket_matches"] = [
            {"name": "tlsMode-istio", "match": {"tlsMode": "istio"}, "transport_socket": mtls},
            {"name": "tlsMode-disabled", "match": {},
             "transport_socket": {"name": "envoy.transport_sockets.raw_buffer",
                                  "typed_config": {"@type": T_RAW_BUFFER}}},
        ]
    # DISABLE (and SIMPLE/MUTUAL without client certs here): plain text, no transport socket at all.
    return cluster


def _static_cluster(name: str, ip: str, port: int) -> dict:
    return {"@type": T_CLUSTER, "name": name, "type": "STATIC", "connect_timeout": "10s",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": ip, "port_value": port}}}}]}]}}


def _route_action(model: MeshModel, vs_namespace: str, destinations: list[dict], svc_port: int) -> dict:
    def target(dest: dict) -> str:
        d = dest["destination"]
        host = _resolve_host(d["host"], vs_namespace)
        number = (d.get("port") or {}).get("number", svc_port)
        return cluster_name("outbound", number, d.get("subset", ""), host)

    if len(destinations) == 1:
        return {"cluster": target(destinations[0]), "timeout": "0s"}
    return {"weighted_clusters": {"clusters": [
        {"name": target(d), "weight": int(d.get("weight", 100 // len(destinations)))} for d in destinations
    ]}, "timeout": "0s"}


def _match(match: dict | None) -> dict:
    uri = (match or {}).get("uri") or {}
    envoy_match: dict[str, Any] = {"prefix": "/"}
    if "exact" in uri:
        envoy_match = {"path": uri["exact"]}
    elif "prefix" in uri:
        envoy_match = {"prefix": uri["prefix"]}
    headers = []
    for name, cond in ((match or {}).get("headers") or {}).items():
        if "exact" in cond:
            headers.append({"name": name, "string_match": {"exact": cond["exact"]}})
    if headers:
        envoy_match["headers"] = headers
    return envoy_match


def _virtual_host(model: MeshModel, svc: MeshService, port: int, client_ns: str) -> dict:
    host = svc.host
    names = [host, f"{svc.name}.{svc.namespace}.svc", f"{svc.name}.{svc.namespace}"]
    if svc.namespace == client_ns:
        names.append(svc.name)
    if svc.cluster_ip:
        names.append(svc.cluster_ip)
    # As istiod (httproute.go generateVirtualHostDomains) since it sets ignore_port_in_host_matching on sidecar
    # route configs: names without ":port"; Envoy drops the port from :authority before matching.
    domains = names
    vs = model.virtual_service(host)
    routes = []
    if vs is not None:
        vs_ns = vs["metadata"].get("namespace", "default")
        vs_path = f"/apis/networking.istio.io/v1/namespaces/{vs_ns}/virtual-service/{vs['metadata']['name']}"
        for http in vs.get("spec", {}).get("http") or ():
            destinations = http.get("route") or []
            if not destinations:
                continue
            for match in http.get("match") or [None]:
                action = _route_action(model, vs_ns, destinations, port)
                if http.get("timeout"):  # VirtualService http[].timeout becomes the route's timeout (route.go)
                    action["timeout"] = http["timeout"]
                route = {"match": _match(match),
                         "route": action,
                         "metadata": {"filter_metadata": {"istio": {"config": vs_path}}},
                         "decorator": {"operation": f"{host}:{port}/*"}}
                if http.get("name"):
                    route["name"] = http["name"]
                routes.append(route)
    if not routes:
        routes.append({"name": "default", "match": {"prefix": "/"},
                       "route": {"cluster": cluster_name("outbound", port, "", host), "timeout": "0s"},
                       "decorator": {"operation": f"{host}:{port}/*"}})
    return {"name": f"{host}:{port}", "domains": domains, "routes": routes, "include_request_attempt_count": True}


def _tcp_chain(cluster: str, wiring: SidecarWiring, stat_prefix: str) -> list[dict]:
    filters = []
    target = wiring.original_dst_targets.get(cluster)
    if target:
        filters.append({"name": "envoy.filters.network.set_filter_state", "typed_config": {
            "@type": T_SET_FILTER_STATE,
            "on_new_connection": [{"object_key": "envoy.network.transport_socket.original_dst_address",
                                   "format_string": {"text_format_source": {"inline_string": target}}}],
        }})
    filters.append({"name": "envoy.filters.network.tcp_proxy", "typed_config": {
        "@type": T_TCP_PROXY, "stat_prefix": stat_prefix, "cluster": cluster,
        "access_log": _access_log(wiring)}})
    return filters


def _inbound_http_chain(cluster: str, target: int, service_port: int, wiring: SidecarWiring) -> list[dict]:
    route = {"name": cluster, "validate_clusters": False, "virtual_hosts": [{
        "name": f"inbound|http|{service_port}", "domains": ["*"],
        "routes": [{"name": "default", "match": {"prefix": "/"}, "route": {"cluster": cluster, "timeout": "0s"},
                    "decorator": {"operation": f"{cluster}/*"}}]}]}
    return [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
        "@type": T_HCM, "stat_prefix": f"inbound_0.0.0.0_{target}", "codec_type": "AUTO", "route_config": route,
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": T_ROUTER}}],
        "access_log": _access_log(wiring)}}]


def _listener(name: str, address: str, port: int, filters: list[dict], wiring: SidecarWiring) -> dict:
    bound = wiring.bound_listeners.get(name)
    listener: dict[str, Any] = {
        "@type": T_LISTENER, "name": name, "traffic_direction": "OUTBOUND",
        "address": {"socket_address": {"address": "127.0.0.1" if bound else address,
                                       "port_value": bound or port}},
        "filter_chains": [{"filters": filters}],
    }
    if not bound:
        # Reached through virtualOutbound's original-destination hand-off in a real pod, never bound.
        listener["bind_to_port"] = False
    else:
        # Lab only: the driver states the address the app connected to (a ClusterIP) in a PROXY header, so
        # %DOWNSTREAM_LOCAL_ADDRESS% is what it is in a pod rather than the lab's loopback port.
        listener["listener_filters"] = [_proxy_protocol_filter()]
    return listener


def _proxy_protocol_filter() -> dict:
    return {"name": "envoy.filters.listener.proxy_protocol", "typed_config": {
        "@type": T_PROXY_PROTOCOL, "allow_requests_without_proxy_protocol": True}}


def sidecar_resources(model: MeshModel, pod: dict, wiring: SidecarWiring) -> SidecarResources:
    """CDS, LDS and RDS resources istiod would send this pod's sidecar (outbound to the visible Services)."""
    client_ns = pod["metadata"].get("namespace", "default")
    clusters: list[dict] = [
        {"@type": T_CLUSTER, "name": "BlackHoleCluster", "type": "STATIC", "connect_timeout": "10s"},
        {"@type": T_CLUSTER, "name": "PassthroughCluster", "type": "ORIGINAL_DST", "connect_timeout": "10s",
         "lb_policy": "CLUSTER_PROVIDED"},
        {"@type": T_CLUSTER, "name": "InboundPassthroughCluster", "type": "ORIGINAL_DST",
         "connect_timeout": "10s", "lb_policy": "CLUSTER_PROVIDED"},
    ]
    listeners: list[dict] = []
    http_ports: dict[int, list[MeshService]] = {}
    for svc in model.visible_services(client_ns):
        rule = model.destination_rule(svc.host)
        subsets = [(s["name"], dict(s.get("labels") or {}))
                   for s in ((rule or {}).get("spec", {}).get("subsets") or ())]
        seen_ports: set[int] = set()
        for port in svc.ports:
            # Istio ignores UDP ports (kube-dns has 53 twice: UDP and TCP) and builds one cluster per number.
            if port.get("protocol", "TCP") == "UDP" or port["port"] in seen_ports:
                continue
            seen_ports.add(port["port"])
            for subset, labels in [("", {})] + subsets:
                clusters.append(_outbound_cluster(model, svc, port, subset, labels, wiring))
            protocol = port_protocol(port)
            if protocol in HTTP_PROTOCOLS:
                http_ports.setdefault(port["port"], []).append(svc)
                continue
            cname = cluster_name("outbound", port["port"], "", svc.host)
            addresses = [svc.cluster_ip] if svc.cluster_ip else [
                p["status"]["podIP"] for p in model.service_pods(svc)]
            for address in addresses:
                lname = f"{address}_{port['port']}"
                listeners.append(_listener(lname, address, port["port"],
                                           _tcp_chain(cname, wiring, cname), wiring))

    # Hosts no Service matches (httproute.go): PassthroughCluster under ALLOW_ANY; under REGISTRY_ONLY the
    # block_all virtual host answers 502 itself (a direct response, no cluster).
    registry_only = model.outbound_mode(client_ns) == "REGISTRY_ONLY"
    catch_all = ({"name": "block_all", "domains": ["*"], "routes": [
                    {"name": "block_all", "match": {"prefix": "/"}, "direct_response": {"status": 502}}]}
                 if registry_only else
                 {"name": "allow_any", "domains": ["*"], "routes": [
                     {"name": "allow_any", "match": {"prefix": "/"},
                      "route": {"cluster": "PassthroughCluster", "timeout": "0s"}}]})
    routes: dict[str, dict] = {}
    for port, services in sorted(http_ports.items()):
        rname = str(port)
        routes[rname] = {
            "@type": T_ROUTE, "name": rname, "validate_clusters": False, "ignore_port_in_host_matching": True,
            "virtual_hosts": [_virtual_host(model, s, port, client_ns) for s in services] + [catch_all],
        }
        hcm = {"name": "envoy.filters.network.http_connection_manager", "typed_config": {
            "@type": T_HCM, "stat_prefix": f"outbound_0.0.0.0_{port}",
            "rds": {"route_config_name": rname, "config_source": rest_config_source()},
            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": T_ROUTER}}],
            "access_log": _access_log(wiring)}}
        listeners.append(_listener(f"0.0.0.0_{port}", "0.0.0.0", port, [hcm], wiring))

    # Inbound: one cluster per port of the Services selecting this pod, reached via virtualInbound.
    inbound_chains = []
    seen: set[int] = set()
    for svc in model.services:
        if not _selects(svc.selector, _labels(pod)) or svc.namespace != client_ns:
            continue
        for port in svc.ports:
            target = _target_port(port, pod)
            if target in seen:
                continue
            seen.add(target)
            iname = cluster_name("inbound", target, "", "")
            # Since Istio 1.10 the inbound cluster connects to the pod IP, not 127.0.0.1 (played by APP_ADDRESS).
            app_port = wiring.app_ports.get(pod.get("status", {}).get("podIP", ""))
            clusters.append(_static_cluster(iname, APP_ADDRESS, app_port) if app_port
                            else _static_cluster(iname, "127.0.0.1", target))
            # An HTTP port gets an HTTP connection manager, as Istio's plaintext inbound HTTP chain (its
            # permissive HTTP match has no ALPN condition), without accept_http_10 unless PILOT_HTTP10.
            filters = (_inbound_http_chain(iname, target, port["port"], wiring)
                       if port_protocol(port) in HTTP_PROTOCOLS else _tcp_chain(iname, wiring, iname))
            inbound_chains.append({"name": f"0.0.0.0_{target}",
                                   "filter_chain_match": {"destination_port": target},
                                   "filters": filters})
    if wiring.virtual_inbound_port:
        listeners.append({
            "@type": T_LISTENER, "name": "virtualInbound", "traffic_direction": "INBOUND",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": wiring.virtual_inbound_port}},
            "listener_filters": [_proxy_protocol_filter()],  # the pod IP:port the client called (lab only)
            "filter_chains": inbound_chains + [{"name": "virtualInbound-catchall",
                                                "filters": _tcp_chain("InboundPassthroughCluster", wiring,
                                                                      "InboundPassthroughCluster")}],
        })
    if wiring.virtual_outbound_port:
        # Unknown destinations: PassthroughCluster, or BlackHoleCluster under REGISTRY_ONLY (listener_builder.go).
        egress = "BlackHoleCluster" if registry_only else "PassthroughCluster"
        listeners.append({
            "@type": T_LISTENER, "name": "virtualOutbound", "traffic_direction": "OUTBOUND",
            "use_original_dst": True,
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": wiring.virtual_outbound_port}},
            # Lab only: no iptables here, so the driver states the original destination in a PROXY protocol
            # header; Envoy then logs it as %DOWNSTREAM_LOCAL_ADDRESS%, as it logs the real one in a pod.
            "listener_filters": [_proxy_protocol_filter()],
            "filter_chains": [{"name": "virtualOutbound-catchall-tcp",
                               "filters": _tcp_chain(egress, wiring, egress)}],
        })
    return SidecarResources(clusters=clusters, listeners=listeners, routes=routes)


# --- bootstrap ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BootstrapPorts:
    admin: int
    health: int  # the 15021 equivalent
    agent_status: int  # the pod's pilot-agent status server (15020 equivalent)
    xds: int  # where xds-grpc points; nothing listens there in the no-xds state


XDS_REST_CLUSTER = "xds-rest"
SDS_CLUSTER = "sds-grpc"  # Istio's name for the cluster its sidecars ask for secrets


def sds_secret(name: str) -> dict:
    """An SDS secret reference as Istio writes it into TLS contexts, fetched from the lab (SDS_CLUSTER)."""
    return {"name": name, "sds_config": rest_config_source(SDS_CLUSTER)}


def sds_secrets(cert_chain_pem: bytes, key_pem: bytes, root_pem: bytes) -> list[dict]:
    """The secrets Istio's agent serves a sidecar: its workload certificate and key, and the roots."""
    return [
        {"@type": T_SECRET, "name": "default", "tls_certificate": {
            "certificate_chain": {"inline_string": cert_chain_pem.decode()},
            "private_key": {"inline_string": key_pem.decode()}}},
        {"@type": T_SECRET, "name": "ROOTCA", "validation_context": {"trusted_ca": {"inline_string": root_pem.decode()}}},
    ]


def proxy_release(pod: dict) -> str:
    """The Istio release pilot-agent reports in the node metadata: its own image's tag."""
    proxy = next((c for c in pod.get("spec", {}).get("containers", ()) if c.get("name") == "istio-proxy"), {})
    return str(proxy.get("image", "")).rpartition(":")[2] or "1.24.2"


def node_id(pod: dict) -> str:
    """Istio's sidecar node id: sidecar~<pod IP>~<pod>.<namespace>~<namespace>.svc.cluster.local."""
    meta = pod["metadata"]
    ns = meta.get("namespace", "default")
    ip = pod.get("status", {}).get("podIP", "127.0.0.1")
    return f"sidecar~{ip}~{meta['name']}.{ns}~{ns}.{DOMAIN_SUFFIX}"


def rest_config_source(cluster: str = XDS_REST_CLUSTER, refresh_delay: str = "3600s") -> dict:
    """Ask the lab's REST xDS server once; a long refresh delay because lab configuration never changes."""
    return {"resource_api_version": "V3", "initial_fetch_timeout": "0s", "api_config_source": {
        "api_type": "REST", "transport_api_version": "V3", "cluster_names": [cluster],
        "refresh_delay": refresh_delay, "request_timeout": "10s"}}


# Istio's bootstrap keeps only these stats (stats_config.stats_matcher.inclusion_list of its bootstrap
# template), so the lab's Envoys show what a real sidecar shows: no control_plane.*, no per-service
# cluster stats. Checked against istio-data/bootstrap/default_golden.json by the lab tests.
ISTIO_STATS_INCLUSION = [
    {"prefix": "reporter="}, {"prefix": "cluster_manager"}, {"prefix": "listener_manager"}, {"prefix": "server"},
    {"prefix": "cluster.xds-grpc"}, {"prefix": "wasm"}, {"suffix": "rbac.allowed"}, {"suffix": "rbac.denied"},
    {"suffix": "shadow_allowed"}, {"suffix": "shadow_denied"}, {"safe_regex": {"regex": r"vhost\..*\.route\..*"}},
    {"prefix": "component"}, {"prefix": "istio"},
]
# How often a sidecar whose istiod went away retries (REST polls here; Istio's ADS stream reconnects).
LOST_RETRY = "1s"


def bootstrap(pod: dict, ports: BootstrapPorts, *, mode: str, xds_rest_port: int = 0, sds_port: int) -> dict:
    """Envoy bootstrap shaped like Istio's: node metadata, xds-grpc, agent cluster, 15021 listener.

    ``mode`` "rest" asks the lab's REST xDS server (a proxy that got its config); "ads" asks xds-grpc, where
    nothing answers, with initial_fetch_timeout 0 as Istio does, so Envoy stays PRE_INITIALIZING; "lost"
    asks, through the xds-grpc cluster as a sidecar does, a REST server that the lab stops once Envoy is
    configured, and keeps retrying it: a sidecar whose istiod went away after configuring it.
    """
    meta = pod["metadata"]
    ns = meta.get("namespace", "default")
    labels = _labels(pod)
    node = {
        "id": node_id(pod),
        "cluster": f"{labels.get('app', meta['name'])}.{ns}",
        "metadata": {"ISTIO_VERSION": proxy_release(pod), "NAMESPACE": ns, "NAME": meta["name"],
                     "POD_PORTS": "[]", "LABELS": labels, "CLUSTER_ID": "Kubernetes",
                     "SERVICE_ACCOUNT": pod.get("spec", {}).get("serviceAccountName", "default")},
    }
    clusters = []
    if mode == "rest":
        dynamic = {"cds_config": rest_config_source(), "lds_config": rest_config_source()}
        rest = _static_cluster(XDS_REST_CLUSTER, "127.0.0.1", xds_rest_port)
        rest.pop("@type")
        clusters.append(rest)
    elif mode == "ads":
        dynamic = {
            "ads_config": {"api_type": "GRPC", "transport_api_version": "V3", "set_node_on_first_message_only": True,
                           "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}]},
            "cds_config": {"ads": {}, "initial_fetch_timeout": "0s", "resource_api_version": "V3"},
            "lds_config": {"ads": {}, "initial_fetch_timeout": "0s", "resource_api_version": "V3"},
        }
    elif mode == "lost":
        dynamic = {"cds_config": rest_config_source("xds-grpc", LOST_RETRY),
                   "lds_config": rest_config_source("xds-grpc", LOST_RETRY)}
        rest = _static_cluster(XDS_REST_CLUSTER, "127.0.0.1", xds_rest_port)  # RDS, from the same server
        rest.pop("@type")
        clusters.append(rest)
    else:
        raise ValueError(f"unknown xDS mode {mode!r}")
    xds_grpc = _static_cluster("xds-grpc", "127.0.0.1", xds_rest_port if mode == "lost" else ports.xds)
    if mode != "lost":  # REST JSON is HTTP/1.1; gRPC needs HTTP/2
        xds_grpc["typed_extension_protocol_options"] = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": T_HTTP_OPTIONS, "explicit_http_config": {"http2_protocol_options": {}}}}
    xds_grpc.pop("@type")
    agent = _static_cluster("agent", "127.0.0.1", ports.agent_status)
    agent.pop("@type")
    sds = _static_cluster(SDS_CLUSTER, "127.0.0.1", sds_port)  # the secrets, whatever became of istiod
    sds.pop("@type")
    health_listener = {
        "name": "health", "address": {"socket_address": {"address": "127.0.0.1", "port_value": ports.health}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
            "@type": T_HCM, "stat_prefix": "agent", "codec_type": "AUTO",
            "route_config": {"virtual_hosts": [{"name": "backend", "domains": ["*"], "routes": [
                {"match": {"prefix": "/healthz/ready"}, "route": {"cluster": "agent"}}]}]},
            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": T_ROUTER}}],
        }}]}],
    }
    return {
        "node": node,
        "stats_config": {"stats_matcher": {"inclusion_list": {"patterns": ISTIO_STATS_INCLUSION}}},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": ports.admin}}},
        "dynamic_resources": dynamic,
        "static_resources": {
            "clusters": [agent, xds_grpc, sds, *clusters],
            "listeners": [health_listener],
        },
    }


def discovery_file(resources: list[dict], version: str = "1") -> dict:
    return {"version_info": version, "resources": resources}
