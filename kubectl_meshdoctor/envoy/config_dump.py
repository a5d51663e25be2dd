"""A typed view of Envoy's ``/config_dump`` and its reduction to the ProxyConfig evidence.

A sidecar's config_dump is megabytes of nested protobuf-JSON whose field names depend on who printed
it (Envoy says ``dynamic_active_clusters``, ``istioctl -o json`` says ``dynamicActiveClusters``) and
whose section types depend on the Envoy release (``envoy.admin.v3`` or ``envoy.admin.v2alpha``).
``ConfigDump`` hides those differences behind a few methods, like istioctl's own wrapper, so the
summary below reads as a walk over clusters, listeners and routes rather than dictionary plumbing.
The dump is parsed once and walked once; nothing is copied.
"""

from __future__ import annotations

import functools
import re
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from kubectl_meshdoctor.envoy._decode import camel, gc_paused, json_type, load_json_object, optional_object
from kubectl_meshdoctor.errors import ParseError
from kubectl_meshdoctor.evidence import (
    TLS_BY_ENDPOINT_LABEL,
    TLS_ISTIO_ALWAYS,
    TLS_NONE,
    TLS_OTHER,
    ClusterSummary,
    ProxyConfig,
    RejectedConfig,
    RouteTarget,
    XdsVersion,
)

_WHAT = "config_dump"

# "type.googleapis.com/envoy.admin.v3.ClustersConfigDump", optionally naming one entry type, as in
# config_dump?resource=dynamic_active_clusters ("...ClustersConfigDump.DynamicCluster").
_SECTION_TYPE = re.compile(r"(?:^|/)envoy\.admin\.(?:v3|v2alpha)\.(\w+)ConfigDump(?:\.(\w+))?$")

# With ?resource=..., Envoy lists bare entries; file each under the list it came from.
_ENTRY_LIST = {
    "StaticCluster": "static_clusters",
    "DynamicCluster": "dynamic_active_clusters",
    "StaticListener": "static_listeners",
    "DynamicListener": "dynamic_listeners",
    "StaticRouteConfig": "static_route_configs",
    "DynamicRouteConfig": "dynamic_route_configs",
    "StaticSecret": "static_secrets",
    "DynamicSecret": "dynamic_active_secrets",
}

# Envoy enum values of Cluster.DiscoveryType, for dumps that print enums as numbers.
_DISCOVERY_BY_NUMBER = {0: "STATIC", 1: "STRICT_DNS", 2: "LOGICAL_DNS", 3: "EDS", 4: "ORIGINAL_DST"}

_TLS_SOCKET_NAMES = frozenset({"envoy.transport_sockets.tls", "tls"})
_RAW_SOCKET_NAMES = frozenset({"envoy.transport_sockets.raw_buffer", "raw_buffer"})
_ISTIO_ALPN = frozenset({"istio-peer-exchange", "istio"})
_ISTIO_SECRETS = frozenset({"default", "ROOTCA"})
_HCM_NAMES = frozenset({"envoy.filters.network.http_connection_manager", "envoy.http_connection_manager"})
_TCP_PROXY_NAMES = frozenset({"envoy.filters.network.tcp_proxy", "envoy.tcp_proxy"})
_MAX_SOCKET_WRAPPING = 8

_CAMEL: dict[str, str] = {}


def _field(obj: Mapping[str, typing.Any], snake: str) -> typing.Any:
    """``obj[snake]``, or its camelCase spelling as istioctl prints it; None when neither is there."""
    value = obj.get(snake)
    if value is None:
        alias = _CAMEL.get(snake)
        if alias is None:
            alias = _CAMEL.setdefault(snake, camel(snake))
        value = obj.get(alias)
    return value


_obj = functools.partial(optional_object, _WHAT)  # (value, where)


def _list(value: typing.Any, where: str) -> list[typing.Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ParseError(f"{_WHAT}: {where} should be an array, got {json_type(value)}")
    return value


def _str(value: typing.Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ParseError(f"{_WHAT}: {where} should be a string, got {json_type(value)}")
    return value


@dataclass(frozen=True, eq=False)
class DumpedResource:
    """One cluster, listener, route configuration or secret as the dump shows it."""

    resource: str  # cluster, listener, route, secret
    name: str
    state: str  # static, active, warming, draining
    config: Mapping[str, typing.Any] = field(repr=False)


_XDS_TYPES = ("CDS", "LDS", "RDS")  # the order proxy-status shows them in


class ConfigDump:
    """Read access to a parsed config_dump, whoever printed it."""

    def __init__(self, data: Mapping[str, typing.Any]):
        if not isinstance(data, Mapping):
            raise ParseError(f"{_WHAT}: expected a JSON object, got {json_type(data)}")
        configs = data.get("configs")
        if configs is None:
            raise ParseError(f"{_WHAT}: no 'configs' in the document")
        if isinstance(configs, dict):  # very old Envoy keyed the sections by name
            configs = list(configs.values())
        self._sections: dict[str, list[dict[str, typing.Any]]] = {}
        # True when some section came whole (a full dump, or an Envoy that ignored ?resource=).
        self.whole_sections = False
        for index, section in enumerate(_list(configs, "configs")):
            section = _obj(section, f"configs[{index}]")
            type_url = _str(section.get("@type"), f"configs[{index}].@type")
            matched = _SECTION_TYPE.search(type_url)
            if matched is None:
                continue  # a section we have no use for, or a newer one
            kind, entry_type = matched.groups()
            if entry_type is not None:
                list_name = _ENTRY_LIST.get(entry_type)
                if list_name is None:
                    continue
                section = {list_name: [section]}
            else:
                self.whole_sections = True
            self._sections.setdefault(kind, []).append(section)

    @classmethod
    def from_raw(cls, raw: bytes | str) -> ConfigDump:
        return cls(load_json_object(raw, _WHAT))

    def has_section(self, kind: str) -> bool:
        """Whether the dump has a section of this kind ("Clusters", "Listeners", "Routes", ...)."""
        return kind in self._sections

    def _entries(self, kind: str, list_name: str) -> Iterator[tuple[int, dict[str, typing.Any]]]:
        for section in self._sections.get(kind, ()):
            entries = _field(section, list_name)
            if type(entries) is not list:
                entries = _list(entries, list_name)
            for index, entry in enumerate(entries):
                # Hot path (thousands of entries): the location text is built only for an error.
                yield index, entry if type(entry) is dict else _obj(entry, f"{list_name}[{index}]")

    def _named(self, resource: str, state: str, config: typing.Any, where: str, name: str = "") -> DumpedResource:
        config = _obj(config, where)
        return DumpedResource(resource, _str(config.get("name"), f"{where}.name") or name, state, config)

    def clusters(self) -> list[DumpedResource]:
        return [DumpedResource("cluster", name, state, config) for name, state, config in self._cluster_configs()]

    def _cluster_configs(self) -> Iterator[tuple[str, str, dict[str, typing.Any]]]:
        """(name, state, config) of every cluster, without building a DumpedResource for each."""
        for list_name, state in (
            ("static_clusters", "static"),
            ("dynamic_active_clusters", "active"),
            ("dynamic_warming_clusters", "warming"),
        ):
            for index, entry in self._entries("Clusters", list_name):
                cluster = entry.get("cluster")
                if cluster is None:
                    continue
                name = cluster.get("name") if type(cluster) is dict else None
                if type(name) is str and name:
                    yield name, state, cluster
                else:
                    dumped = self._named("cluster", state, cluster, f"{list_name}[{index}].cluster")
                    yield dumped.name, state, typing.cast(dict, dumped.config)

    def listeners(self, *, states: tuple[str, ...] = ("static", "active")) -> list[DumpedResource]:
        """Listeners in the given states; by default the ones serving traffic now."""
        found = []
        if "static" in states:
            for index, entry in self._entries("Listeners", "static_listeners"):
                found.append(self._named("listener", "static", entry.get("listener"), f"static_listeners[{index}]"))
        for index, entry in self._entries("Listeners", "dynamic_listeners"):
            where = f"dynamic_listeners[{index}]"
            entry_name = _str(entry.get("name"), f"{where}.name")
            for state in states:
                if state == "static":
                    continue
                holder = _field(entry, f"{state}_state")
                if holder is not None:
                    holder = _obj(holder, f"{where}.{state}_state")
                    listener = holder.get("listener")
                    if listener is not None:
                        found.append(self._named("listener", state, listener, f"{where}.{state}_state", entry_name))
        for state in states:  # v2alpha kept one list per state
            for index, entry in self._entries("Listeners", f"dynamic_{state}_listeners"):
                listener = entry.get("listener")
                if listener is not None:
                    found.append(self._named("listener", state, listener, f"dynamic_{state}_listeners[{index}]"))
        return found

    def route_configs(self) -> list[DumpedResource]:
        found = []
        for list_name, state in (("static_route_configs", "static"), ("dynamic_route_configs", "active")):
            for index, entry in self._entries("Routes", list_name):
                route_config = _field(entry, "route_config")
                if route_config is not None:
                    found.append(self._named("route", state, route_config, f"{list_name}[{index}].route_config"))
        return found

    def secrets(self) -> list[DumpedResource]:
        found = []
        for list_name, state in (
            ("static_secrets", "static"),
            ("dynamic_active_secrets", "active"),
            ("dynamic_warming_secrets", "warming"),
        ):
            for index, entry in self._entries("Secrets", list_name):
                secret = entry.get("secret")
                name = _str(entry.get("name"), f"{list_name}[{index}].name")
                if secret is not None:
                    found.append(self._named("secret", state, secret, f"{list_name}[{index}].secret", name))
        return found

    def rejected(self) -> tuple[RejectedConfig, ...]:
        """Every resource Envoy refused (an entry with ``error_state``), each reported once."""
        found: dict[RejectedConfig, None] = {}
        for kind, resource, list_name, holder in (
            ("Clusters", "cluster", "dynamic_active_clusters", "cluster"),
            ("Clusters", "cluster", "dynamic_warming_clusters", "cluster"),
            ("Listeners", "listener", "dynamic_listeners", "active_state"),
            ("Routes", "route", "dynamic_route_configs", "route_config"),
            ("Secrets", "secret", "dynamic_active_secrets", "secret"),
            ("Secrets", "secret", "dynamic_warming_secrets", "secret"),
            ("Endpoints", "endpoint", "dynamic_endpoint_configs", "endpoint_config"),
        ):
            for index, entry in self._entries(kind, list_name):
                error_state = _field(entry, "error_state")
                if error_state is None:
                    continue
                where = f"{list_name}[{index}]"
                error_state = _obj(error_state, f"{where}.error_state")
                name = _str(entry.get("name"), f"{where}.name") or self._rejected_name(entry, holder, error_state, where)
                details = _str(error_state.get("details"), f"{where}.error_state.details")
                found[RejectedConfig(resource=resource, name=name, details=details)] = None
        return tuple(found)

    @staticmethod
    def _rejected_name(entry: dict, holder: str, error_state: dict, where: str) -> str:
        current = _obj(_field(entry, holder), f"{where}.{holder}")
        if holder == "active_state":
            current = _obj(current.get("listener"), f"{where}.active_state.listener")
        failed = _obj(_field(error_state, "failed_configuration"), f"{where}.error_state.failed_configuration")
        for source in (current, failed):
            name = source.get("name") or source.get("cluster_name") or source.get("clusterName")
            if name is not None:
                return _str(name, f"{where} name")
        return ""

    def xds_versions(self) -> tuple[XdsVersion, ...]:
        """Per xDS type, the version Envoy last accepted and when: its side of proxy-status.

        CDS and LDS carry their version at the top of their section; each dynamic resource carries its
        own ``last_updated`` (and RDS its own ``version_info``): the newest one stands for the type.
        """
        found = []
        for kind, type_name, list_name, holder in (("Clusters", "CDS", "dynamic_active_clusters", None),
                                                   ("Listeners", "LDS", "dynamic_listeners", "active_state"),
                                                   ("Routes", "RDS", "dynamic_route_configs", None)):
            if not self.has_section(kind):
                continue
            version = ""
            for section in self._sections[kind]:
                top = _field(section, "version_info")
                if type(top) is str and top:
                    version = top
            newest, newest_version, count = "", "", 0
            for _, entry in self._entries(kind, list_name):
                if holder is not None:
                    entry = _field(entry, holder)
                    if type(entry) is not dict:
                        continue
                count += 1
                updated = _field(entry, "last_updated")
                if type(updated) is str and updated > newest:
                    newest = updated
                    entry_version = _field(entry, "version_info")
                    newest_version = entry_version if type(entry_version) is str else ""
            found.append(XdsVersion(type_name, version or newest_version, newest, count))
        return tuple(found)

    def partial(self) -> PartialConfig:
        """What this dump (whole, or one ``?resource=`` answer) contributes to the ProxyConfig."""
        part = PartialConfig(whole=self.whole_sections)
        clusters = part.clusters
        for name, _, config in self._cluster_configs():
            if name not in clusters:
                clusters[name] = summarize_cluster(config, name)

        targets = part.targets
        for dumped in self.route_configs():
            _collect_route_targets(dumped.config, dumped.name, targets, f"route config {dumped.name!r}")

        listeners = self.listeners()
        for dumped in listeners:
            if _walk_listener(dumped.config, dumped.name, targets):
                part.access_log = True
        part.listener_count = len(listeners)
        if self.has_section("Listeners"):
            part.listeners_seen = True
        part.rejected.update(dict.fromkeys(self.rejected()))
        part.xds_versions = {version.type: version for version in self.xds_versions()}
        return part

    def summary(self) -> ProxyConfig:
        return self.partial().config()


@dataclass
class PartialConfig:
    """The reduced evidence of one config_dump answer; several answers merge into one ProxyConfig.

    A sidecar's config is asked for in parts (``?resource=dynamic_active_clusters&mask=...``, routes,
    listeners), each reduced as it arrives so no raw part outlives its reduction. Merging keeps the
    first of equal names, as one whole dump does (static before active before warming).
    """

    whole: bool = False  # some answer was a whole dump: the proxy ignored ?resource=
    clusters: dict[str, ClusterSummary] = field(default_factory=dict)
    # Gathered as plain tuples (cheap to hash); RouteTarget objects are built once, in config().
    targets: dict[_Target, None] = field(default_factory=dict)
    rejected: dict[RejectedConfig, None] = field(default_factory=dict)
    listener_count: int = 0
    listeners_seen: bool = False  # a listeners section was there (even empty): the access-log answer is known
    access_log: bool = False
    # Per xDS type (CDS, LDS, RDS), what Envoy last accepted: each part brings its own type.
    xds_versions: dict[str, XdsVersion] = field(default_factory=dict)

    def add(self, other: PartialConfig) -> PartialConfig:
        self.whole = self.whole or other.whole
        for name, cluster in other.clusters.items():
            self.clusters.setdefault(name, cluster)
        self.targets.update(other.targets)
        self.rejected.update(other.rejected)
        self.listener_count += other.listener_count
        self.listeners_seen = self.listeners_seen or other.listeners_seen
        self.access_log = self.access_log or other.access_log
        for kind, version in other.xds_versions.items():
            if version.count or kind not in self.xds_versions:  # a part that holds the type wins over one that lacks it
                self.xds_versions[kind] = version
        return self

    def config(self, target: typing.Callable[[_Target], RouteTarget] | None = None) -> ProxyConfig:
        """The merged evidence; ``target`` makes each RouteTarget (a sweep passes one that shares them)."""
        make = target or (lambda t: RouteTarget(route_config=t[0], virtual_host=t[1], cluster=t[2]))
        return ProxyConfig(
            clusters=tuple(self.clusters.values()),
            route_targets=tuple(make(t) for t in self.targets),
            rejected=tuple(self.rejected),
            listener_count=self.listener_count,
            access_log_configured=self.access_log if self.listeners_seen else None,
            xds_versions=tuple(self.xds_versions[kind] for kind in _XDS_TYPES if kind in self.xds_versions),
        )


def summarize_config_dump(raw: bytes | str) -> ProxyConfig:
    """Reduce a raw config_dump (Envoy's or istioctl's JSON) to what the checks need."""
    return reduce_config_part(raw).config()


def reduce_config_part(raw: bytes | str, section: str | None = None) -> PartialConfig:
    """Reduce one config_dump answer; ``section`` names the kind a ``?resource=`` request asked for.

    Envoy answers a ``?resource=`` request that matched nothing with ``{}``: the section is there
    but empty (no listeners is an answer, not an unknown), so ``section`` records it.
    """
    with gc_paused:  # decoded, walked and freed before the collector runs again: it has nothing to find
        document = load_json_object(raw, _WHAT)
        if section is not None and not document:
            empty = {"configs": [{"@type": f"type.googleapis.com/envoy.admin.v3.{section}ConfigDump"}]}
            part = ConfigDump(empty).partial()
            part.whole = False
            return part
        return ConfigDump(document).partial()


# --- clusters ---------------------------------------------------------------------------------------


def summarize_cluster(cluster: Mapping[str, typing.Any], name: str) -> ClusterSummary:
    where = f"cluster {name!r}"
    return ClusterSummary(name=name, discovery=_discovery(cluster, where), tls=cluster_tls(cluster, where))


def _discovery(cluster: Mapping[str, typing.Any], where: str) -> str:
    kind = cluster.get("type")
    if type(kind) is str and _field(cluster, "cluster_type") is None:
        return kind  # the usual case, settled without further checks
    custom = _field(cluster, "cluster_type")
    if custom is not None:
        return _str(_obj(custom, f"{where}.cluster_type").get("name"), f"{where}.cluster_type.name") or "CUSTOM"
    if kind is None:
        return "STATIC"  # Envoy leaves the default out of its JSON
    if isinstance(kind, bool) or not isinstance(kind, (str, int)):
        raise ParseError(f"{_WHAT}: {where}.type should be a string, got {json_type(kind)}")
    if isinstance(kind, int):
        return _DISCOVERY_BY_NUMBER.get(kind, str(kind))
    return kind


def cluster_tls(cluster: Mapping[str, typing.Any], where: str = "cluster") -> str:
    """How the cluster's upstream TLS is decided: one of the evidence.TLS_* values."""
    matches = _field(cluster, "transport_socket_matches")
    if matches is not None:
        for index, match in enumerate(_list(matches, f"{where}.transport_socket_matches")):
            criteria = match.get("match") if type(match) is dict else None
            if type(criteria) is not dict:
                match = _obj(match, f"{where}.transport_socket_matches[{index}]")
                criteria = _obj(match.get("match"), f"{where}.transport_socket_matches[{index}].match")
            if criteria.get("tlsMode") == "istio":
                return TLS_BY_ENDPOINT_LABEL
    socket = _field(cluster, "transport_socket")
    if socket is not None:
        return _socket_tls(_obj(socket, f"{where}.transport_socket"), f"{where}.transport_socket", 0)
    legacy = _field(cluster, "tls_context")  # v2 clusters set TLS directly
    if legacy is not None:
        return _tls_context_kind(_obj(legacy, f"{where}.tls_context"), f"{where}.tls_context")
    return TLS_NONE


def _socket_tls(socket: dict[str, typing.Any], where: str, depth: int) -> str:
    if depth > _MAX_SOCKET_WRAPPING:
        raise ParseError(f"{_WHAT}: {where}: transport sockets wrapped too deeply")
    name = _str(socket.get("name"), f"{where}.name")
    config = _field(socket, "typed_config")
    if config is None:
        config = socket.get("config")  # v2 untyped Struct
    config = _obj(config, f"{where}.typed_config")
    type_url = _str(config.get("@type"), f"{where}.typed_config.@type")
    if name in _RAW_SOCKET_NAMES or type_url.endswith(".RawBuffer"):
        return TLS_NONE
    if name in _TLS_SOCKET_NAMES or type_url.endswith(".UpstreamTlsContext"):
        return _tls_context_kind(config, f"{where}.typed_config")
    inner = _field(config, "transport_socket")
    if inner is not None:  # internal_upstream, tap, proxy protocol and the like wrap the real socket
        return _socket_tls(_obj(inner, f"{where}.transport_socket"), f"{where}.transport_socket", depth + 1)
    if not name and not type_url:
        return TLS_NONE
    return TLS_OTHER


def _tls_context_kind(context: dict[str, typing.Any], where: str) -> str:
    common = _obj(_field(context, "common_tls_context"), f"{where}.common_tls_context")
    where = f"{where}.common_tls_context"
    for protocol in _list(_field(common, "alpn_protocols"), f"{where}.alpn_protocols"):
        if isinstance(protocol, str) and protocol in _ISTIO_ALPN:
            return TLS_ISTIO_ALWAYS
    secret_names = []
    for index, sds in enumerate(_list(_field(common, "tls_certificate_sds_secret_configs"), f"{where}.sds")):
        secret_names.append(_obj(sds, f"{where}.tls_certificate_sds_secret_configs[{index}]").get("name"))
    combined = _obj(_field(common, "combined_validation_context"), f"{where}.combined_validation_context")
    for holder in (combined, common):
        validation = _field(holder, "validation_context_sds_secret_config")
        if validation is not None:
            secret_names.append(_obj(validation, f"{where}.validation_context_sds_secret_config").get("name"))
    if any(isinstance(n, str) and n in _ISTIO_SECRETS for n in secret_names):
        return TLS_ISTIO_ALWAYS
    for index, certificate in enumerate(_list(_field(common, "tls_certificates"), f"{where}.tls_certificates")):
        chain = _obj(_field(_obj(certificate, f"{where}.tls_certificates[{index}]"), "certificate_chain"), where)
        filename = chain.get("filename")
        if isinstance(filename, str) and filename.startswith("/etc/certs/"):  # Istio before SDS
            return TLS_ISTIO_ALWAYS
    return TLS_OTHER


# --- routes and listeners ----------------------------------------------------------------------------


_Target = tuple[str, str, str]  # route config, virtual host, cluster


def _add_cluster(targets: dict[_Target, None], route_config: str, virtual_host: str, cluster: typing.Any, where: str) -> None:
    name = _str(cluster, where)
    if name:
        targets[(route_config, virtual_host, name)] = None


def _add_weighted(targets: dict[_Target, None], route_config: str, virtual_host: str, weighted: typing.Any, where: str) -> None:
    weighted = _obj(weighted, where)
    for index, entry in enumerate(_list(weighted.get("clusters"), f"{where}.clusters")):
        entry = _obj(entry, f"{where}.clusters[{index}]")
        _add_cluster(targets, route_config, virtual_host, entry.get("name"), f"{where}.clusters[{index}].name")


def _collect_route_targets(route_config: Mapping[str, typing.Any], name: str, targets: dict[_Target, None], where: str) -> None:
    # Hot path (a route per service): types are checked inline, location text is built only for an error.
    for vh_index, virtual_host in enumerate(_list(_field(route_config, "virtual_hosts"), f"{where}.virtual_hosts")):
        if type(virtual_host) is not dict or type(virtual_host.get("name")) is not str:
            vh_where = f"{where}.virtual_hosts[{vh_index}]"
            virtual_host = _obj(virtual_host, vh_where)
            _str(virtual_host.get("name"), f"{vh_where}.name")
        vh_name = virtual_host.get("name") or ""
        routes = virtual_host.get("routes")
        if type(routes) is not list:
            routes = _list(routes, f"{where}.virtual_hosts[{vh_index}].routes")
        for index, route in enumerate(routes):
            if type(route) is not dict:
                route = _obj(route, f"{where}.virtual_hosts[{vh_index}].routes[{index}]")
            action = route.get("route")
            if action is None:
                continue  # redirect, direct_response, filter_action
            route_where = None
            if type(action) is not dict:
                route_where = f"{where}.virtual_hosts[{vh_index}].routes[{index}].route"
                action = _obj(action, route_where)
            cluster = action.get("cluster")
            if type(cluster) is str:
                if cluster:
                    targets[(name, vh_name, cluster)] = None
            elif cluster is not None:
                _str(cluster, f"{where}.virtual_hosts[{vh_index}].routes[{index}].route.cluster")  # raises
            weighted = _field(action, "weighted_clusters")
            if weighted is not None:
                route_where = route_where or f"{where}.virtual_hosts[{vh_index}].routes[{index}].route"
                _add_weighted(targets, name, vh_name, weighted, f"{route_where}.weighted_clusters")


def _walk_listener(listener: Mapping[str, typing.Any], name: str, targets: dict[_Target, None]) -> bool:
    """Add the listener's inline route targets; True when it configures an access log anywhere."""
    where = f"listener {name!r}"
    access_log = bool(_list(_field(listener, "access_log"), f"{where}.access_log"))
    chains = list(_list(_field(listener, "filter_chains"), f"{where}.filter_chains"))
    default_chain = _field(listener, "default_filter_chain")
    if default_chain is not None:
        chains.append(default_chain)
    for chain_index, chain in enumerate(chains):
        chain_where = f"{where}.filter_chains[{chain_index}]"
        chain = _obj(chain, chain_where)
        for index, network_filter in enumerate(_list(chain.get("filters"), f"{chain_where}.filters")):
            filter_where = f"{chain_where}.filters[{index}]"
            network_filter = _obj(network_filter, filter_where)
            filter_name = _str(network_filter.get("name"), f"{filter_where}.name")
            config = _field(network_filter, "typed_config")
            if config is None:
                config = network_filter.get("config")
            config = _obj(config, f"{filter_where}.typed_config")
            type_url = _str(config.get("@type"), f"{filter_where}.typed_config.@type")
            if filter_name in _HCM_NAMES or type_url.endswith(".HttpConnectionManager"):
                if _list(_field(config, "access_log"), f"{filter_where}.access_log"):
                    access_log = True
                inline = _field(config, "route_config")
                if inline is not None:
                    inline = _obj(inline, f"{filter_where}.route_config")
                    route_name = _str(inline.get("name"), f"{filter_where}.route_config.name") or name
                    _collect_route_targets(inline, route_name, targets, f"{filter_where}.route_config")
            elif filter_name in _TCP_PROXY_NAMES or type_url.endswith(".TcpProxy"):
                if _list(_field(config, "access_log"), f"{filter_where}.access_log"):
                    access_log = True
                _add_cluster(targets, name, "", config.get("cluster"), f"{filter_where}.cluster")
                weighted = _field(config, "weighted_clusters")
                if weighted is not None:
                    _add_weighted(targets, name, "", weighted, f"{filter_where}.weighted_clusters")
    return access_log
