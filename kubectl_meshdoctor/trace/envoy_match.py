"""Envoy's own selection rules, applied to configuration instead of to live traffic.

A connection captured by iptables reaches ``virtualOutbound`` (15001), which hands it to the listener bound
to the original destination ``IP:PORT``, else to the wildcard ``0.0.0.0:PORT`` one, else keeps it (its
catch-all chain). Inside a listener, Envoy picks the filter chain whose ``filter_chain_match`` fits best,
criterion by criterion (destination port, destination IP, server name, transport protocol, application
protocols), and falls back to ``default_filter_chain``. An HTTP connection manager then picks the virtual
host by ``:authority`` (exact domain, then ``*.suffix``, then ``prefix*``, then ``*``) and the first route
whose match fits. These functions reproduce those rules on a parsed config_dump, so that the walk says
which listener, chain, virtual host and route a given request meets, and why.
"""

from __future__ import annotations

import ipaddress
import re
import typing
from dataclasses import dataclass

from kubectl_meshdoctor.envoy.config_dump import DumpedResource
from kubectl_meshdoctor.envoy.xds_index import Json, XdsIndex, as_dict, as_list, field_of

HCM_NAMES = frozenset({"envoy.filters.network.http_connection_manager", "envoy.http_connection_manager"})
TCP_PROXY_NAMES = frozenset({"envoy.filters.network.tcp_proxy", "envoy.tcp_proxy"})
VIRTUAL_OUTBOUND = "virtualOutbound"


@dataclass(frozen=True)
class Connection:
    """What Envoy knows of a new outbound connection when it picks a listener and a filter chain."""

    ip: str | None  # original destination; None when the host's address is not known here
    port: int
    transport: str = "raw_buffer"  # "tls" when the app itself speaks TLS
    alpn: tuple[str, ...] = ()  # what the HTTP inspector detects: ("http/1.1",) for plain HTTP/1.1
    sni: str | None = None


# --- listeners ------------------------------------------------------------------------------------------


def select_listener(index: XdsIndex, conn: Connection) -> tuple[DumpedResource | None, str]:
    """The listener virtualOutbound hands the connection to, and how it was chosen.

    Returns (None, reason) when no listener is bound to the destination: the connection stays on
    virtualOutbound.
    """
    exact, wildcard = None, None
    for listener in index.listeners:
        address = index.listener_address(listener)
        if address.port != conn.port or listener.name == VIRTUAL_OUTBOUND:
            continue
        if _is_inbound(listener):
            continue
        if conn.ip is not None and address.ip == conn.ip and exact is None:
            exact = listener
        elif address.wildcard and wildcard is None:
            wildcard = listener
    if exact is not None:
        return exact, f"bound to {conn.ip}:{conn.port}"
    if wildcard is not None:
        return wildcard, f"wildcard listener for port {conn.port}" + (
            "" if conn.ip else " (the host's address is not known here; a listener on that address would win)")
    return None, f"no listener for {conn.ip or '*'}:{conn.port}"


def _is_inbound(listener: DumpedResource) -> bool:
    return str(field_of(listener.config, "traffic_direction") or "") == "INBOUND"


@dataclass(frozen=True)
class FilterChain:
    name: str
    config: Json
    default: bool  # Envoy fell back to the listener's default_filter_chain


def select_filter_chain(listener: Json, conn: Connection) -> FilterChain | None:
    """Envoy's filter chain match for ``conn``; None when no chain (and no default) takes it."""
    chains = [as_dict(c) for c in as_list(field_of(listener, "filter_chains"))]
    candidates = chains
    for criterion in _CHAIN_CRITERIA:
        candidates = _most_specific(candidates, lambda match: criterion(match, conn))  # noqa: B023 - used at once
        if not candidates:
            break
    if candidates:
        chain = candidates[0]
        return FilterChain(str(field_of(chain, "name") or ""), chain, default=False)
    default = field_of(listener, "default_filter_chain")
    if isinstance(default, typing.Mapping):
        return FilterChain(str(field_of(default, "name") or "default_filter_chain"), default, default=True)
    return None


def _match(chain: Json) -> Json:
    return as_dict(field_of(chain, "filter_chain_match"))


def _most_specific(chains: list[Json], fits: typing.Callable[[Json], int | None]) -> list[Json]:
    """Chains with the best (highest) score; a score of None excludes; 0 means "criterion not set"."""
    scored = [(score, chain) for chain in chains if (score := fits(_match(chain))) is not None]
    if not scored:
        return []
    best = max(score for score, _ in scored)
    return [chain for score, chain in scored if score == best]


# Each criterion scores a chain's filter_chain_match: None excludes the chain, 0 means "criterion not set",
# higher is more specific. Envoy keeps the most specific chains at each criterion, in this order.
Score = typing.Optional[int]


def _port_score(match: Json, conn: Connection) -> Score:
    port = field_of(match, "destination_port")
    return 0 if port is None else (1 if port == conn.port else None)


def _destination_ip_score(match: Json, conn: Connection) -> Score:
    ranges = as_list(field_of(match, "prefix_ranges"))
    if not ranges:
        return 0
    best = None
    for item in ranges if conn.ip is not None else ():
        prefix = str(field_of(item, "address_prefix") or "")
        length = field_of(item, "prefix_len")
        try:
            network = ipaddress.ip_network(f"{prefix}/{length if length is not None else 32}", strict=False)
            inside = ipaddress.ip_address(conn.ip) in network
        except ValueError:
            continue
        if inside:
            best = max(best or 0, network.prefixlen + 1)  # +1: a /0 still beats "no prefix set"
    return best


def _server_name_score(match: Json, conn: Connection) -> Score:
    names = as_list(field_of(match, "server_names"))
    if not names:
        return 0
    if conn.sni is None:
        return None
    if conn.sni in names:
        return 2
    return 1 if any(n.startswith("*.") and conn.sni.endswith(n[1:]) for n in names) else None


def _transport_score(match: Json, conn: Connection) -> Score:
    transport = field_of(match, "transport_protocol")
    return 0 if not transport else (1 if transport == conn.transport else None)


def _alpn_score(match: Json, conn: Connection) -> Score:
    protocols = as_list(field_of(match, "application_protocols"))
    return 0 if not protocols else (1 if set(protocols) & set(conn.alpn) else None)


_CHAIN_CRITERIA = (_port_score, _destination_ip_score, _server_name_score, _transport_score, _alpn_score)


@dataclass(frozen=True)
class NetworkFilter:
    kind: str  # "http", "tcp" or "other"
    name: str
    config: Json


def terminal_filter(chain: Json) -> NetworkFilter | None:
    """The chain's HTTP connection manager or TCP proxy (the filter that decides where traffic goes)."""
    for item in as_list(field_of(chain, "filters")):
        name = str(field_of(item, "name") or "")
        config = as_dict(field_of(item, "typed_config") or field_of(item, "config"))
        type_url = str(config.get("@type") or "")
        if name in HCM_NAMES or type_url.endswith(".HttpConnectionManager"):
            return NetworkFilter("http", name, config)
        if name in TCP_PROXY_NAMES or type_url.endswith(".TcpProxy"):
            return NetworkFilter("tcp", name, config)
    return None


# --- routes ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # with the query string, as sent
    authority: str
    headers: tuple[tuple[str, str], ...] = ()

    def header(self, name: str) -> str | None:
        name = name.lower()
        if name == ":method":
            return self.method
        if name == ":path":
            return self.path
        if name in (":authority", "host"):
            return self.authority
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


def select_virtual_host(route_config: Json, authority: str) -> tuple[Json | None, str]:
    """Envoy's virtual host for ``authority``: exact domain, longest ``*suffix``, longest ``prefix*``, ``*``."""
    host = authority.lower()
    if field_of(route_config, "ignore_port_in_host_matching"):
        host = _strip_port(host)
    hosts = [as_dict(v) for v in as_list(field_of(route_config, "virtual_hosts"))]
    exact, suffix, prefix, anything = None, None, None, None
    for vhost in hosts:
        for domain in as_list(field_of(vhost, "domains")):
            domain = str(domain).lower()
            if domain == "*":
                anything = anything or (vhost, domain)
            elif domain.startswith("*") and host.endswith(domain[1:]) and len(host) > len(domain) - 1:
                if suffix is None or len(domain) > len(suffix[1]):
                    suffix = (vhost, domain)
            elif domain.endswith("*") and host.startswith(domain[:-1]) and len(host) > len(domain) - 1:
                if prefix is None or len(domain) > len(prefix[1]):
                    prefix = (vhost, domain)
            elif domain == host and exact is None:
                exact = (vhost, domain)
    found = exact or suffix or prefix or anything
    return (found[0], found[1]) if found else (None, "")


def _strip_port(host: str) -> str:
    if host.startswith("["):  # [v6]:port
        return host.split("]", 1)[0] + "]"
    head, sep, tail = host.rpartition(":")
    return head if sep and tail.isdigit() and ":" not in head else host


def select_route(vhost: Json, request: Request) -> tuple[int, Json] | None:
    """The first route of the virtual host whose match fits the request, with its index."""
    for index, route in enumerate(as_list(field_of(vhost, "routes"))):
        route = as_dict(route)
        if route_matches(as_dict(field_of(route, "match")), request):
            return index, route
    return None


def route_matches(match: Json, request: Request) -> bool:
    path, _, query = request.path.partition("?")
    sensitive = field_of(match, "case_sensitive")
    case = sensitive is None or bool(sensitive)
    compare_path = path if case else path.lower()

    def norm(text: str) -> str:
        return text if case else text.lower()

    if (prefix := field_of(match, "prefix")) is not None:
        if not compare_path.startswith(norm(str(prefix))):
            return False
    elif (exact := field_of(match, "path")) is not None:
        if compare_path != norm(str(exact)):
            return False
    elif (separated := field_of(match, "path_separated_prefix")) is not None:
        separated = norm(str(separated))
        if not (compare_path == separated or compare_path.startswith(separated.rstrip("/") + "/")):
            return False
    elif (regex := field_of(match, "safe_regex")) is not None:
        if not _regex_fullmatch(field_of(regex, "regex"), path):
            return False
    elif field_of(match, "connect_matcher") is not None:
        return request.method == "CONNECT"
    for header in as_list(field_of(match, "headers")):
        if not header_matches(as_dict(header), request):
            return False
    if query or as_list(field_of(match, "query_parameters")):
        params = _query(query)
        for item in as_list(field_of(match, "query_parameters")):
            name = str(field_of(item, "name") or "")
            value = params.get(name)
            matcher = field_of(item, "string_match")
            if matcher is None:
                if value is None and not field_of(item, "present_match"):
                    return False
                continue
            if value is None or not string_matches(as_dict(matcher), value):
                return False
    return True


def _query(query: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for part in query.split("&"):
        if part:
            name, _, value = part.partition("=")
            params.setdefault(name, value)
    return params


def header_matches(header: Json, request: Request) -> bool:
    name = str(field_of(header, "name") or "")
    value = request.header(name)
    if value is None and field_of(header, "treat_missing_header_as_empty"):
        value = ""
    invert = bool(field_of(header, "invert_match"))
    present = field_of(header, "present_match")
    if present is not None:
        result = (value is not None) == bool(present)
    elif value is None:
        return False if not invert else True
    elif (matcher := field_of(header, "string_match")) is not None:
        result = string_matches(as_dict(matcher), value)
    elif (exact := field_of(header, "exact_match")) is not None:
        result = value == exact
    elif (prefix := field_of(header, "prefix_match")) is not None:
        result = value.startswith(str(prefix))
    elif (suffix := field_of(header, "suffix_match")) is not None:
        result = value.endswith(str(suffix))
    elif (contains := field_of(header, "contains_match")) is not None:
        result = str(contains) in value
    elif (regex := field_of(header, "safe_regex_match")) is not None:
        result = _regex_fullmatch(field_of(regex, "regex"), value)
    else:
        result = True  # only the name: the header must be present
    return result != invert


def string_matches(matcher: Json, value: str) -> bool:
    ignore = bool(field_of(matcher, "ignore_case"))
    subject = value.lower() if ignore else value

    def norm(text: typing.Any) -> str:
        return str(text).lower() if ignore else str(text)

    if (exact := field_of(matcher, "exact")) is not None:
        return subject == norm(exact)
    if (prefix := field_of(matcher, "prefix")) is not None:
        return subject.startswith(norm(prefix))
    if (suffix := field_of(matcher, "suffix")) is not None:
        return subject.endswith(norm(suffix))
    if (contains := field_of(matcher, "contains")) is not None:
        return norm(contains) in subject
    if (regex := field_of(matcher, "safe_regex")) is not None:
        return _regex_fullmatch(field_of(regex, "regex"), value)
    return True


def _regex_fullmatch(pattern: typing.Any, value: str) -> bool:
    """RE2 as Envoy uses it: the whole value must match. Python's re covers the RE2 syntax Istio emits."""
    try:
        return re.fullmatch(str(pattern or ""), value) is not None
    except re.error:
        return False


def describe_match(match: Json) -> str:
    """A route match in one short phrase: ``prefix /``, ``path /login, header end-user``."""
    parts = []
    for key in ("prefix", "path", "path_separated_prefix"):
        if (value := field_of(match, key)) is not None:
            parts.append(f"{key.replace('_', ' ')} {value}")
    if (regex := field_of(match, "safe_regex")) is not None:
        parts.append(f"regex {field_of(regex, 'regex')}")
    for header in as_list(field_of(match, "headers")):
        name = field_of(header, "name")
        matcher = as_dict(field_of(header, "string_match"))
        value = next((f"{k} {v}" for k, v in matcher.items() if k != "ignore_case"), None)
        value = value or next((f"{k.removesuffix('_match')} {field_of(header, k)}" for k in
                               ("exact_match", "prefix_match", "present_match") if field_of(header, k) is not None), "")
        parts.append(f"header {name}" + (f" {value}" if value else ""))
    for item in as_list(field_of(match, "query_parameters")):
        parts.append(f"query {field_of(item, 'name')}")
    return ", ".join(parts) or "any"
