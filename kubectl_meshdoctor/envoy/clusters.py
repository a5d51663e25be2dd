"""Envoy's ``/clusters?format=json`` reduced to the clusters a diagnosis asks about.

Why /clusters and not config_dump: it is the only place that says which endpoints Envoy will actually
use *now* (EDS health, outlier ejection, active health checks) and it shows the circuit breaker
thresholds in force. Only the clusters named by failing access-log lines are kept, so the evidence stays
a few lines per pod even when the proxy knows a thousand clusters.

Real Envoy (1.40, checked): counters are strings and zero values are omitted; ``health_status`` holds
``eds_health_status`` plus a ``failed_*`` boolean per reason a host is unusable.
"""

from __future__ import annotations

import typing
from typing import Iterable

from kubectl_meshdoctor.envoy._decode import json_type, load_json_object
from kubectl_meshdoctor.errors import ParseError
from kubectl_meshdoctor.evidence import UpstreamClusterStatus, UpstreamHost

_WHAT = "clusters"
_USABLE_EDS = ("HEALTHY", "UNKNOWN", "")  # DEGRADED/UNHEALTHY/DRAINING/TIMEOUT hosts are not load-balanced to
_THRESHOLDS = ("max_connections", "max_pending_requests", "max_requests")


def parse_clusters(raw: bytes | str, wanted: Iterable[str] | None = None) -> tuple[UpstreamClusterStatus, ...]:
    """The clusters named in ``wanted`` (every cluster when None), in Envoy's order."""
    names = None if wanted is None else set(wanted)
    document = load_json_object(raw, _WHAT)
    statuses = document.get("cluster_statuses", [])
    if not isinstance(statuses, list):
        raise ParseError(f"{_WHAT}: 'cluster_statuses' should be an array, got {json_type(statuses)}")
    out = []
    for index, item in enumerate(statuses):
        if not isinstance(item, dict):
            raise ParseError(f"{_WHAT}: cluster_statuses[{index}] should be an object, got {json_type(item)}")
        name = item.get("name")
        if not isinstance(name, str):
            raise ParseError(f"{_WHAT}: cluster_statuses[{index}].name should be a string, got {json_type(name)}")
        if names is not None and name not in names:
            continue
        hosts = item.get("host_statuses") or []
        if not isinstance(hosts, list):
            raise ParseError(f"{_WHAT}: {name}: 'host_statuses' should be an array, got {json_type(hosts)}")
        out.append(UpstreamClusterStatus(name=name, hosts=tuple(_host(name, h) for h in hosts),
                                         **_default_thresholds(item.get("circuit_breakers"))))
    return tuple(out)


def _host(cluster: str, host: typing.Any) -> UpstreamHost:
    if not isinstance(host, dict):
        raise ParseError(f"{_WHAT}: {cluster}: a host status should be an object, got {json_type(host)}")
    socket = (host.get("address") or {}).get("socket_address") or {}
    address = f"{socket.get('address', '?')}:{socket.get('port_value', '?')}"
    health = host.get("health_status") or {}
    unhealthy = []
    eds = str(health.get("eds_health_status") or "")
    if eds not in _USABLE_EDS:
        unhealthy.append(f"eds_health_status={eds}")
    unhealthy += sorted(k for k, v in health.items() if k.startswith("failed_") and v is True)
    stats = {s.get("name"): s.get("value") for s in host.get("stats") or () if isinstance(s, dict)}
    return UpstreamHost(address=address, unhealthy=tuple(unhealthy),
                        cx_connect_fail=_count(stats.get("cx_connect_fail")), rq_timeout=_count(stats.get("rq_timeout")))


def _count(value: typing.Any) -> int:
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _default_thresholds(breakers: typing.Any) -> dict[str, int | None]:
    """The DEFAULT-priority thresholds (the entry without ``priority``, or with priority DEFAULT)."""
    for threshold in (breakers or {}).get("thresholds") or ():
        if isinstance(threshold, dict) and threshold.get("priority", "DEFAULT") == "DEFAULT":
            return {key: _count(threshold[key]) if key in threshold else None for key in _THRESHOLDS}
    return {}
