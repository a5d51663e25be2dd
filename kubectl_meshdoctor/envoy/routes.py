"""Envoy's HTTP routes (``config_dump?resource=dynamic_route_configs``) reduced to the routes a diagnosis names.

Asked only when the access log shows a timeout (UT): the timeout in force is the one of the Envoy route
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
from kubectl_meshdoctor.evidence import RouteTimeout

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
