"""One sidecar's full config_dump (with ``?include_eds``) indexed for walking a single request.

The sweep reduces each config_dump to a summary and drops it; ``--trace`` needs the opposite: the whole
listener, route, cluster and endpoint configuration of one pod, looked up by name and address the way
Envoy itself would. ``XdsIndex`` keeps the parsed dump and answers those look-ups; the matching rules
(which listener, which filter chain, which virtual host, which route) live in ``kubectl_meshdoctor.trace``.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field

from kubectl_meshdoctor.envoy._decode import gc_paused
from kubectl_meshdoctor.envoy.config_dump import ConfigDump, DumpedResource, _field

Json = Mapping[str, typing.Any]

# Istio names its outbound listeners "<address>_<port>" (0.0.0.0_9080, 10.96.0.10_53); the lab and some
# captures bind the same listener on a loopback port to drive real traffic, so the name is the truth.
_ISTIO_LISTENER_NAME = re.compile(r"^(?P<address>[0-9.]+|\[?[0-9a-fA-F:]+\]?)_(?P<port>\d{1,5})$")
# Envoy's HealthStatus values a load balancer still sends traffic to (UNKNOWN is "no health checking").
USABLE_HEALTH = frozenset({"UNKNOWN", "HEALTHY", "DEGRADED"})


def field_of(obj: typing.Any, snake: str) -> typing.Any:
    """``obj[snake]`` (or istioctl's camelCase spelling); None for anything that is not an object."""
    return _field(obj, snake) if isinstance(obj, Mapping) else None


def as_list(value: typing.Any) -> list:
    return value if isinstance(value, list) else []


def as_dict(value: typing.Any) -> Json:
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class ListenerAddress:
    """Where a listener takes connections, as Istio means it (see _ISTIO_LISTENER_NAME)."""

    ip: str
    port: int | None

    @property
    def wildcard(self) -> bool:
        return self.ip in ("0.0.0.0", "::", "[::]")


@dataclass(frozen=True)
class EnvoyEndpoint:
    """One host of a cluster as Envoy holds it."""

    address: str
    port: int | None
    health: str  # Envoy's HealthStatus name; UNKNOWN when no health checking is configured
    locality: str  # region/zone/subzone, "" when unset
    match_metadata: Json = field(default_factory=dict, repr=False)  # filter_metadata[envoy.transport_socket_match]

    @property
    def usable(self) -> bool:
        return self.health in USABLE_HEALTH

    @property
    def text(self) -> str:
        return f"{self.address}:{self.port}" if self.port is not None else self.address


class XdsIndex:
    """Listeners, route configurations, clusters and endpoints of one config_dump, by name."""

    def __init__(self, dump: ConfigDump):
        self.listeners: list[DumpedResource] = dump.listeners()
        self.clusters: dict[str, Json] = {}
        for cluster in dump.clusters():
            self.clusters.setdefault(cluster.name, cluster.config)
        self.route_configs: dict[str, Json] = {r.name: r.config for r in dump.route_configs()}
        self.has_endpoints = dump.has_section("Endpoints")
        self.rejected = dump.rejected()  # what istiod sent and Envoy refused: absent from the lists above
        self._assignments: dict[str, Json] = {}
        for section in dump._sections.get("Endpoints", ()):  # noqa: SLF001 - the dump's own sections
            for list_name in ("static_endpoint_configs", "dynamic_endpoint_configs"):
                for entry in as_list(field_of(section, list_name)):
                    assignment = as_dict(field_of(entry, "endpoint_config"))
                    name = field_of(assignment, "cluster_name")
                    if isinstance(name, str) and name:
                        self._assignments.setdefault(name, assignment)

    @classmethod
    def from_raw(cls, raw: bytes | str) -> "XdsIndex":
        with gc_paused:
            return cls(ConfigDump.from_raw(raw))

    @classmethod
    def from_dict(cls, data: Json) -> "XdsIndex":
        return cls(ConfigDump(data))

    def listener_address(self, listener: DumpedResource) -> ListenerAddress:
        named = _ISTIO_LISTENER_NAME.match(listener.name)
        if named:
            return ListenerAddress(named.group("address").strip("[]"), int(named.group("port")))
        socket = as_dict(field_of(as_dict(field_of(listener.config, "address")), "socket_address"))
        port = field_of(socket, "port_value")
        return ListenerAddress(str(field_of(socket, "address") or ""), port if isinstance(port, int) else None)

    def listener(self, name: str) -> DumpedResource | None:
        return next((item for item in self.listeners if item.name == name), None)

    def endpoints(self, cluster_name: str) -> list[EnvoyEndpoint] | None:
        """The cluster's hosts: from the EDS dump, else its inline load_assignment; None when unknown."""
        cluster = self.clusters.get(cluster_name)
        service_name = field_of(as_dict(field_of(cluster, "eds_cluster_config")), "service_name") or cluster_name
        assignment = self._assignments.get(service_name) or self._assignments.get(cluster_name)
        if assignment is None and cluster is not None:
            assignment = field_of(cluster, "load_assignment")
        if assignment is None:
            return None
        return list(_endpoints_of(as_dict(assignment)))


def _locality(value: typing.Any) -> str:
    locality = as_dict(value)
    parts = [str(field_of(locality, key) or "") for key in ("region", "zone", "sub_zone")]
    return "/".join(parts).rstrip("/")


def _endpoints_of(assignment: Json) -> typing.Iterator[EnvoyEndpoint]:
    for group in as_list(field_of(assignment, "endpoints")):
        locality = _locality(field_of(group, "locality"))
        for lb_endpoint in as_list(field_of(group, "lb_endpoints")):
            endpoint = as_dict(field_of(lb_endpoint, "endpoint"))
            socket = as_dict(field_of(as_dict(field_of(endpoint, "address")), "socket_address"))
            port = field_of(socket, "port_value")
            health = field_of(lb_endpoint, "health_status")
            metadata = as_dict(field_of(as_dict(field_of(lb_endpoint, "metadata")), "filter_metadata"))
            yield EnvoyEndpoint(
                address=str(field_of(socket, "address") or ""),
                port=port if isinstance(port, int) else None,
                health=health if isinstance(health, str) else "UNKNOWN",
                locality=locality,
                match_metadata=as_dict(metadata.get("envoy.transport_socket_match")),
            )
