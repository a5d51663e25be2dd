"""The evidence a check may read, as plain frozen values.

Proxy outputs (config_dump, certs, stats, ...) are parsed and *reduced* right after they are fetched:
only what the checks need is kept, so a sweep never holds every pod's full config_dump at once and a
saved bundle stays small. The parsers in ``kubectl_meshdoctor.envoy`` produce these values.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass


class Evidence:
    """Names of the kinds of evidence a bundle may hold; checks declare the ones they need."""

    PODS = "pods"
    SERVICES = "services"
    ENDPOINTS = "endpoints"
    NAMESPACES = "namespaces"
    ISTIO_CONFIG = "istio-config"  # DestinationRules, VirtualServices, PeerAuthentications
    DNS_SERVICE = "dns-service"  # the kube-system Service labelled k8s-app=kube-dns was looked for
    CONTROL_PLANE = "control-plane"  # istiod's Service and endpoints were looked for
    ISTIOD_PODS = "istiod-pods"  # the istiod pods (app=istiod) of the control-plane namespace were listed
    ROOT_CERT_CONFIGMAPS = "root-cert-configmaps"  # istio-ca-root-cert was looked for in each meshed namespace
    EGRESS_CONFIG = "egress-config"  # the mesh config (ConfigMap istio), Sidecars and ServiceEntries
    INJECTION_WEBHOOKS = "injection-webhooks"  # MutatingWebhookConfigurations were listed
    FAILED_CREATE_EVENTS = "failed-create-events"  # Events with reason FailedCreate in scope were listed
    CONTROL_PLANE_REDUNDANCY = "control-plane-redundancy"  # istiod Deployments, PDBs and HPAs in istio-system
    PROXY_READINESS = "proxy-readiness"
    PROXY_STATS = "proxy-stats"
    PROXY_SERVER_INFO = "proxy-server-info"
    PROXY_CONFIG = "proxy-config"
    PROXY_CERTS = "proxy-certs"
    PROXY_XDS_LOG = "proxy-xds-log"  # pilot-agent's xdsproxy and Envoy's xDS stream lines in the log
    ISTIOD_SYNC = "istiod-sync"  # every istiod pod answered /debug/syncz: its view of each proxy
    RESOLV_CONF = "resolv-conf"
    ACCESS_LOG = "access-log"
    # Read only when the access log shows the symptom, so never a check's precondition (not in PROXY):
    PROXY_CLUSTERS = "proxy-clusters"  # /clusters of the upstream clusters the access log shows failing
    PROXY_ROUTES = "proxy-routes"  # Envoy routes, for the clusters that timed out (UT) or Hosts without route (NR)

    API = frozenset({PODS, SERVICES, ENDPOINTS, NAMESPACES, ISTIO_CONFIG, DNS_SERVICE, CONTROL_PLANE, EGRESS_CONFIG,
                     INJECTION_WEBHOOKS, FAILED_CREATE_EVENTS, CONTROL_PLANE_REDUNDANCY, ISTIOD_PODS,
                     ROOT_CERT_CONFIGMAPS})
    PROXY = frozenset(
        {PROXY_READINESS, PROXY_STATS, PROXY_SERVER_INFO, PROXY_CONFIG, PROXY_CERTS, RESOLV_CONF, ACCESS_LOG,
         PROXY_XDS_LOG, ISTIOD_SYNC}
    )


# How a cluster's upstream TLS is decided (see istio-facts: "mTLS and how clusters choose TLS").
TLS_ISTIO_ALWAYS = "istio-mutual-always"  # one cluster-wide Istio mTLS transport_socket, no tlsMode match
TLS_BY_ENDPOINT_LABEL = "istio-mutual-by-label"  # transport_socket_matches tlsMode-istio / tlsMode-disabled
TLS_NONE = "plaintext"  # no transport socket, or raw_buffer only
TLS_OTHER = "tls-other"  # TLS that is not Istio mTLS (SIMPLE/MUTUAL to an external host)


@dataclass(frozen=True)
class ClusterSummary:
    name: str  # e.g. outbound|9080|v1|reviews.default.svc.cluster.local
    discovery: str  # EDS, ORIGINAL_DST, STRICT_DNS, LOGICAL_DNS, STATIC
    tls: str  # one of the TLS_* values above


@dataclass(frozen=True)
class RouteTarget:
    """One cluster a route points at (weighted clusters give one target each)."""

    route_config: str
    virtual_host: str
    cluster: str


@dataclass(frozen=True)
class RejectedConfig:
    """A resource Envoy refused (config_dump ``error_state``)."""

    resource: str  # cluster, listener, route, secret
    name: str
    details: str


@dataclass(frozen=True)
class XdsVersion:
    """What Envoy last accepted of one xDS type (CDS, LDS, RDS), as its config_dump shows it."""

    type: str  # "CDS", "LDS", "RDS"
    version: str  # version_info istiod sent ("" when none)
    last_updated: str  # RFC 3339: the newest last_updated among that type's resources ("" when none)
    count: int = 0  # dynamic resources of that type


@dataclass(frozen=True)
class ProxyConfig:
    """The reduced config_dump."""

    clusters: tuple[ClusterSummary, ...] = ()
    route_targets: tuple[RouteTarget, ...] = ()
    rejected: tuple[RejectedConfig, ...] = ()
    listener_count: int = 0
    # True when some listener configures an access log, False when none does, None when unknown.
    access_log_configured: bool | None = None
    xds_versions: tuple[XdsVersion, ...] = ()  # Envoy's side of proxy-status


@dataclass(frozen=True)
class Certificate:
    role: str  # "workload" (cert_chain) or "ca" (ca_cert)
    serial: str
    subject_alt_names: tuple[str, ...]
    valid_from: str  # RFC 3339, as Envoy prints it
    expiration_time: str


@dataclass(frozen=True)
class Readiness:
    ready: bool
    port: int  # 15021 (Envoy's health listener) or 15020 (pilot-agent)
    status: int | None  # HTTP status; None when the port refused the connection
    detail: str  # response body or refusal text, trimmed


@dataclass(frozen=True)
class ServerInfo:
    state: str  # LIVE, DRAINING, PRE_INITIALIZING, INITIALIZING
    version: str
    uptime_seconds: int | None = None
    istio_version: str = ""  # node.metadata.ISTIO_VERSION: the Istio release of the proxy (pilot-agent sets it)


@dataclass(frozen=True)
class ResolvConf:
    nameservers: tuple[str, ...]
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class AccessLogEntry:
    flags: tuple[str, ...]
    response_code: int | None
    upstream_cluster: str
    upstream_host: str
    transport_failure_reason: str
    line: str  # the raw line, trimmed
    # Read where the format has them ("" / None otherwise): what the MD05xx causes are matched on.
    authority: str = ""  # the Host the client asked for
    downstream_local_address: str = ""  # on outbound, the original destination the app connected to
    route_name: str = ""  # block_all: REGISTRY_ONLY's 502 for an unknown host
    duration_ms: int | None = None


@dataclass(frozen=True)
class AccessLog:
    """The istio-proxy container's recent log, reduced to access-log entries with failure flags."""

    lines_read: int
    access_lines: int  # lines recognised as access-log entries (0 while access logging is off)
    failures: tuple[AccessLogEntry, ...] = ()  # bounded: a few samples per (flags, cluster)
    failure_counts: tuple[tuple[str, str, int], ...] = ()  # (flags joined by ",", cluster, count)


@dataclass(frozen=True)
class XdsTypeStatus:
    """Envoy's record of one subscription (CDS or LDS), from the stats Istio's bootstrap keeps.

    Derived from ``ProxyEvidence.stats`` and ``config.xds_versions`` (see envoy/xds_status.py), not collected."""

    update_success: int = 0
    update_failure: int = 0  # stream failures: each refused (re)connect to istiod counts one
    update_rejected: int = 0
    update_time_ms: int = 0  # when the last accepted update arrived, ms since the epoch (0: never)
    version: str = ""  # version_info of the last accepted update ("" when Envoy printed none)


@dataclass(frozen=True)
class XdsStatus:
    """Envoy's side of `istioctl proxy-status`: its CDS and LDS subscriptions and its istiod connection."""

    cds: XdsTypeStatus = XdsTypeStatus()
    lds: XdsTypeStatus = XdsTypeStatus()
    # cluster.xds-grpc counters (Envoy's connection toward istiod, through pilot-agent); None: not printed
    connections_active: int | None = None
    connections_total: int | None = None
    connect_failures: int | None = None


@dataclass(frozen=True)
class XdsLog:
    """What the istio-proxy log says about the stream to istiod (pilot-agent's xdsproxy, Envoy's gRPC mux)."""

    last_connected: str = ""  # time of the last "connected to upstream XDS server" line
    upstream_errors: int = 0  # lines saying the stream to istiod failed or closed
    last_error: str = ""  # the newest such line, trimmed
    last_error_time: str = ""


@dataclass(frozen=True)
class IstiodSync:
    """istiod's side of `istioctl proxy-status` for one proxy (from /debug/syncz of every istiod pod)."""

    connected: bool  # False: no istiod pod lists this proxy
    istiod: str = ""  # "namespace/name" of the istiod pod holding its stream
    istio_version: str = ""
    # per type (cds, lds, rds, eds): (nonce sent, nonce acked); "" = nothing sent / acked
    sent_acked: tuple[tuple[str, str, str], ...] = ()  # (type, sent, acked)


@dataclass(frozen=True)
class UpstreamHost:
    """One endpoint of a cluster as Envoy's /clusters shows it."""

    address: str  # ip:port
    unhealthy: tuple[str, ...] = ()  # why Envoy will not use it (failed_outlier_check, eds UNHEALTHY ...)
    cx_connect_fail: int = 0
    rq_timeout: int = 0


@dataclass(frozen=True)
class UpstreamClusterStatus:
    """A cluster's endpoints and default-priority circuit breakers, from /clusters?format=json."""

    name: str
    hosts: tuple[UpstreamHost, ...] = ()
    max_connections: int | None = None
    max_pending_requests: int | None = None
    max_requests: int | None = None

    @property
    def healthy_hosts(self) -> tuple[UpstreamHost, ...]:
        return tuple(h for h in self.hosts if not h.unhealthy)


@dataclass(frozen=True)
class RouteTimeout:
    """An Envoy route toward one cluster and the timeouts it enforces (None: not set on the route)."""

    route_config: str  # "8080", or a name like "inventory.search.svc.cluster.local:8080"
    virtual_host: str
    route: str
    cluster: str
    timeout: str | None = None  # "0s" disables it; unset means Envoy's default of 15s
    per_try_timeout: str | None = None


@dataclass(frozen=True)
class RouteLookup:
    """How Envoy's routes answer one (route config, Host) a request with no route (NR) used."""

    route_config: str
    authority: str
    virtual_host: str = ""  # the virtual host Envoy picks for that Host; "" when none matches
    route_matches: tuple[str, ...] = ()  # that virtual host's route match conditions, in order
    other_virtual_hosts: tuple[str, ...] = ()  # when none matched: some of the route config's names


@dataclass(frozen=True)
class ProxyEvidence:
    """What was read from one pod's istio-proxy; a field is None when it could not be collected."""

    pod: str  # "namespace/name"
    container: str = "istio-proxy"
    readiness: Readiness | None = None
    stats: dict[str, int] | None = None
    server_info: ServerInfo | None = None
    config: ProxyConfig | None = None
    certs: tuple[Certificate, ...] | None = None
    resolv_conf: ResolvConf | None = None
    access_log: AccessLog | None = None
    # Read only when the access log shows failures, and only for the clusters those lines name.
    upstream_clusters: tuple[UpstreamClusterStatus, ...] | None = None
    # Read only when the access log shows timeouts (UT): the routes toward those clusters.
    route_timeouts: tuple[RouteTimeout, ...] | None = None
    # Read only when the access log shows NR: how the routes answer the Hosts of those requests.
    route_lookups: tuple[RouteLookup, ...] | None = None

    def upstream_cluster(self, name: str) -> UpstreamClusterStatus | None:
        return next((c for c in self.upstream_clusters or () if c.name == name), None)
    xds_log: XdsLog | None = None
    istiod_sync: IstiodSync | None = None


@dataclass(frozen=True)
class Gap:
    """Something that could not be collected or analysed, and why.

    A gap said once for many pods (exec refused for the whole sweep) lists them in ``affects``, so each
    of those pods is reported as incomplete without repeating the gap.
    """

    what: str
    reason: str
    pod: str | None = None
    affects: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"pod": self.pod, "what": self.what, "reason": self.reason, "affects": list(self.affects)}

    @classmethod
    def from_dict(cls, data: dict) -> "Gap":
        return cls(what=data["what"], reason=data["reason"], pod=data.get("pod"),
                   affects=tuple(str(p) for p in data.get("affects") or ()))

    def concerns(self) -> set[str]:
        """The pods this gap leaves incompletely examined."""
        return ({self.pod} if self.pod else set()) | set(self.affects)


@dataclass(frozen=True)
class Skipped:
    """A check that did not run, with the evidence it lacked."""

    check: str
    codes: tuple[str, ...]
    reason: str

    def to_dict(self) -> dict:
        return {"check": self.check, "codes": list(self.codes), "reason": self.reason}


# --- plain-data conversion: dataclasses <-> JSON-able dicts, driven by the type hints ---------------


def to_plain(value: typing.Any) -> typing.Any:
    if dataclasses.is_dataclass(value):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    return value


_HINTS: dict[type, dict[str, typing.Any]] = {}


def from_plain(cls: typing.Any, data: typing.Any) -> typing.Any:
    """Rebuild ``cls`` from ``to_plain`` output; raises TypeError/ValueError on a wrong shape."""
    origin = typing.get_origin(cls)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(cls) if a is not type(None)]
        if data is None:
            return None
        return from_plain(args[0], data)
    if origin is tuple:
        if not isinstance(data, list):
            raise TypeError(f"expected a list, got {type(data).__name__}")
        args = typing.get_args(cls)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_plain(args[0], v) for v in data)
        return tuple(from_plain(a, v) for a, v in zip(args, data, strict=True))
    if origin is dict:
        if not isinstance(data, dict):
            raise TypeError(f"expected a mapping, got {type(data).__name__}")
        _, value_type = typing.get_args(cls)
        return {str(k): from_plain(value_type, v) for k, v in data.items()}
    if dataclasses.is_dataclass(cls):
        if not isinstance(data, dict):
            raise TypeError(f"expected a mapping for {cls.__name__}, got {type(data).__name__}")
        hints = _HINTS.get(cls) or _HINTS.setdefault(cls, typing.get_type_hints(cls))
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: from_plain(hints[k], v) for k, v in data.items() if k in known})
    if cls in (str, int, bool, float):
        if cls is int and isinstance(data, bool) or not isinstance(data, (cls, int) if cls is float else cls):
            raise TypeError(f"expected {cls.__name__}, got {type(data).__name__}")
        return data
    if cls is typing.Any:
        return data
    raise TypeError(f"cannot rebuild {cls!r}")



# Which evidence kind each ProxyEvidence field provides (the collector and loaders set ``available``).
PROXY_FIELD_EVIDENCE: dict[str, str] = {
    "readiness": Evidence.PROXY_READINESS,
    "stats": Evidence.PROXY_STATS,
    "server_info": Evidence.PROXY_SERVER_INFO,
    "config": Evidence.PROXY_CONFIG,
    "certs": Evidence.PROXY_CERTS,
    "resolv_conf": Evidence.RESOLV_CONF,
    "access_log": Evidence.ACCESS_LOG,
    "upstream_clusters": Evidence.PROXY_CLUSTERS,
    "route_timeouts": Evidence.PROXY_ROUTES,
    "route_lookups": Evidence.PROXY_ROUTES,
    "xds_log": Evidence.PROXY_XDS_LOG,
    "istiod_sync": Evidence.ISTIOD_SYNC,
}


def evidence_in(proxy: ProxyEvidence) -> set[str]:
    """The evidence kinds this pod's proxy evidence actually holds."""
    return {kind for name, kind in PROXY_FIELD_EVIDENCE.items() if getattr(proxy, name) is not None}
