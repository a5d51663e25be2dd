"""Envoy's HTTP routes (``config_dump?resource=dynamic_route_configs``) reduced to the routes a diagnosis names.

Asked only when the access log shows a timeout (UT) or a request without route (NR). For UT, the timeout in force is the one of the Envoy route
the request matched, which is what a VirtualService ``timeout`` becomes, or Istio's default (``0s``:
none) when no VirtualService sets one. Only the routes toward the failing clusters are kept.

Real Envoy (1.40, checked): each item is ``{"@type": ...RoutesConfigDump.DynamicRouteConfig,
"route_config": {...}}``; an empty selection answers ``{}``. Durations are protobuf JSON ("0.300s").
"""

from __future__ import annotations

import typing
from typing import Iterable

from kubectl_meshdoctor.envoy._decode import json_type, load_json_object
from kubectl_meshdoctor.errors import ParseError
from kubectl_meshdoctor.evidence import AccessLog, RouteLookup, RouteTimeout

_WHAT = "route configs"


def parse_route_timeouts(raw: bytes | str, clusters: Iterable[str]) -> tuple[RouteTimeout, ...]:
    """The routes whose target (or one of whose weighted targets) is one of ``clusters``."""
    wanted = set(clusters)
    document = load_json_object(raw, _WHAT)
    configs = document.get("configs", [])
    if not isinstance(configs, list):
        raise ParseError(f"{_WHAT}: 'configs' should be an array, got {json_type(configs)}")
    out: list[RouteTimeout] = []
    for index, item in enumerate(configs):
        config = item.get("route_config") if isinstance(item, dict) else None
        if not isinstance(config, dict):
            raise ParseError(f"{_WHAT}: configs[{index}] has no route_config object")
        for vhost in _list(config, "virtual_hosts"):
            for route in _list(vhost, "routes"):
                action = route.get("route") if isinstance(route, dict) else None
                if not isinstance(action, dict):
                    continue  # direct responses and redirects have no upstream
                targets = _targets(action)
                for cluster in sorted(targets & wanted):
                    out.append(RouteTimeout(route_config=str(config.get("name", "")),
                                            virtual_host=str(vhost.get("name", "")),
                                            route=str(route.get("name", "")), cluster=cluster,
                                            timeout=_duration(action.get("timeout")),
                                            per_try_timeout=_duration((action.get("retry_policy") or {})
                                                                      .get("per_try_timeout"))))
    return tuple(out)


def _list(parent: dict, key: str) -> list:
    value = parent.get(key) or []
    if not isinstance(value, list):
        raise ParseError(f"{_WHAT}: {key!r} should be an array, got {json_type(value)}")
    return value


def _targets(action: dict[str, typing.Any]) -> set[str]:
    if isinstance(action.get("cluster"), str):
        return {action["cluster"]}
    weighted = (action.get("weighted_clusters") or {}).get("clusters") or []
    return {c["name"] for c in weighted if isinstance(c, dict) and isinstance(c.get("name"), str)}


def _duration(value: typing.Any) -> str | None:
    """A protobuf Duration as Envoy prints it ("15s", "0.300s"); None when unset (Envoy's default 15s)."""
    return value if isinstance(value, str) else None


# --- requests with no route (NR) --------------------------------------------------------------------------

MAX_OTHER_HOSTS = 8


def lookups_wanted(log: AccessLog | None) -> set[tuple[str, str]]:
    """(route config, Host) of the NR lines sampled: the route config is named by the port the app called."""
    wanted = set()
    for entry in log.failures if log else ():
        if "NR" in entry.flags and entry.authority:
            port = entry.downstream_local_address.rpartition(":")[2]
            wanted.add((port if port.isdigit() else "", entry.authority.lower()))
    return wanted


def parse_route_lookups(raw: bytes | str, wanted: Iterable[tuple[str, str]]) -> tuple[RouteLookup, ...]:
    """For each wanted (route config, Host): the virtual host Envoy would pick and its route matches.

    An empty route config name in ``wanted`` means "any route config" (the port was not in the log line).
    """
    document = load_json_object(raw, _WHAT)
    configs = [item.get("route_config") for item in document.get("configs", []) if isinstance(item, dict)]
    out = []
    for route_config, authority in sorted(set(wanted)):
        for config in configs:
            if not isinstance(config, dict) or (route_config and str(config.get("name")) != route_config):
                continue
            vhosts = [v for v in _list(config, "virtual_hosts") if isinstance(v, dict)]
            # Current istiod sets ignore_port_in_host_matching: Envoy matches the Host without its port.
            host = authority.rsplit(":", 1)[0] if config.get("ignore_port_in_host_matching") else authority
            chosen = _pick_virtual_host(vhosts, host)
            if chosen is None:
                names = tuple(str(v.get("name", "")) for v in vhosts[:MAX_OTHER_HOSTS])
                out.append(RouteLookup(str(config.get("name", "")), authority, other_virtual_hosts=names))
            else:
                matches = tuple(_describe_match(r.get("match") or {}) for r in _list(chosen, "routes")
                                if isinstance(r, dict))
                out.append(RouteLookup(str(config.get("name", "")), authority, str(chosen.get("name", "")), matches))
    return tuple(out)


def _pick_virtual_host(vhosts: list[dict], authority: str) -> dict | None:
    """Envoy's order: an exact domain, then the longest ``*.suffix``, then the longest ``prefix*``, then ``*``."""
    exact, suffix, prefix, catch_all = None, (0, None), (0, None), None
    for vhost in vhosts:
        for domain in vhost.get("domains") or []:
            domain = str(domain).lower()
            if domain == authority:
                exact = exact or vhost
            elif domain == "*":
                catch_all = catch_all or vhost
            elif domain.startswith("*") and authority.endswith(domain[1:]) and len(domain) > suffix[0]:
                suffix = (len(domain), vhost)
            elif domain.endswith("*") and authority.startswith(domain[:-1]) and len(domain) > prefix[0]:
                prefix = (len(domain), vhost)
    return exact or suffix[1] or prefix[1] or catch_all


def _describe_match(match: dict[str, typing.Any]) -> str:
    if "path" in match:
        text = f"path {match['path']}"
    elif "prefix" in match:
        text = f"prefix {match['prefix']}"
    elif "safe_regex" in match:
        text = f"regex {(match['safe_regex'] or {}).get('regex', '?')}"
    elif "path_separated_prefix" in match:
        text = f"prefix {match['path_separated_prefix']}"
    else:
        text = "any path"
    headers = [str(h.get("name")) for h in match.get("headers") or [] if isinstance(h, dict)]
    return text + (f" and headers {', '.join(headers)}" if headers else "")
