"""Envoy's own record of its xDS stream to istiod: Envoy's side of ``istioctl proxy-status``.

Istio's bootstrap keeps only some stats (its ``stats_matcher`` inclusion list: ``cluster_manager``,
``listener_manager``, ``server``, ``cluster.xds-grpc``, ...), so ``control_plane.connected_state`` is
not there on a default sidecar. What is there, and is enough: the CDS and LDS subscription counters
(``update_success`` / ``update_failure`` / ``update_rejected``), when the last accepted update arrived
(``update_time``, ms since the epoch) and its version (``version_text``, a text readout), and the
connection counters of ``cluster.xds-grpc``, the cluster Envoy reaches istiod through.

RDS stats (``http.<prefix>.rds.<name>.*``) are outside Istio's inclusion list, so route versions are
read from ``config_dump?resource=dynamic_route_configs`` masked to their version and update time.
"""

from __future__ import annotations

import re
import typing

from kubectl_meshdoctor.envoy._decode import as_text, json_type, load_json_object
from kubectl_meshdoctor.errors import ParseError
from kubectl_meshdoctor.evidence import RouteVersions, XdsStatus, XdsTypeStatus

_WHAT = "xds stats"
_ROUTES = "route versions"
_INTEGER = re.compile(r"\d{1,20}")
_PREFIXES = {"cluster_manager.cds.": "cds", "listener_manager.lds.": "lds"}
_COUNTERS = {"update_success", "update_failure", "update_rejected"}
_XDS_CLUSTER = "cluster.xds-grpc."
_CONNECTIONS = {"upstream_cx_active": "connections_active", "upstream_cx_total": "connections_total",
                "upstream_cx_connect_fail": "connect_failures"}

# What the collector asks for: the two subscriptions and the xds-grpc connection counters, nothing else.
XDS_STATS_FILTER = (r"^((cluster_manager\.cds|listener_manager\.lds)\."
                    r"(update_success|update_failure|update_rejected|update_time|version_text)"
                    r"|cluster\.xds-grpc\.upstream_cx_(active|total|connect_fail))$")
# Masked to what proxy-status shows; the route configurations themselves can be large.
ROUTE_VERSIONS_QUERY = "config_dump?resource=dynamic_route_configs&mask=version_info,last_updated"


def parse_xds_stats(raw: bytes | str) -> XdsStatus:
    """The ``stats?filter=XDS_STATS_FILTER`` answer (text format) reduced to an XdsStatus."""
    text = as_text(raw, _WHAT)
    fields: dict[str, dict[str, typing.Any]] = {"cds": {}, "lds": {}}
    connections: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, separator, value = line.partition(": ")
        if not separator:
            raise ParseError(f"{_WHAT}: line {number} is not 'name: value': {line[:80]!r}")
        name, value = name.strip(), value.strip()
        if name.startswith(_XDS_CLUSTER):
            key = _CONNECTIONS.get(name[len(_XDS_CLUSTER):])
            if key and _INTEGER.fullmatch(value):
                connections[key] = int(value)
            continue
        kind = next((k for prefix, k in _PREFIXES.items() if name.startswith(prefix)), None)
        if kind is None:
            continue
        stat = name.split(".", 2)[2]
        if stat == "version_text":
            fields[kind]["version"] = value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
        elif stat in _COUNTERS and _INTEGER.fullmatch(value):
            fields[kind][stat] = int(value)
        elif stat == "update_time" and _INTEGER.fullmatch(value):
            fields[kind]["update_time_ms"] = int(value)
    return XdsStatus(cds=XdsTypeStatus(**fields["cds"]), lds=XdsTypeStatus(**fields["lds"]), **connections)


def parse_route_versions(raw: bytes | str) -> RouteVersions:
    """``config_dump?resource=dynamic_route_configs&mask=...``: count, newest version and update time.

    Envoy answers ``{}`` when the proxy holds no dynamic route configuration.
    """
    document = load_json_object(raw, _ROUTES)
    configs = document.get("configs", [])
    if not isinstance(configs, list):
        raise ParseError(f"{_ROUTES}: 'configs' should be an array, got {json_type(configs)}")
    newest = ("", "")
    for index, item in enumerate(configs):
        if not isinstance(item, dict):
            raise ParseError(f"{_ROUTES}: configs[{index}] should be an object, got {json_type(item)}")
        updated = item.get("last_updated", item.get("lastUpdated", ""))
        version = item.get("version_info", item.get("versionInfo", ""))
        if not isinstance(updated, str) or not isinstance(version, str):
            raise ParseError(f"{_ROUTES}: configs[{index}] version_info and last_updated should be strings")
        newest = max(newest, (updated, version))  # RFC 3339 times in UTC sort as text
    return RouteVersions(count=len(configs), version=newest[1], last_updated=newest[0])
