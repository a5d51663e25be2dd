"""Envoy's ``config_dump?resource=dynamic_endpoint_configs&include_eds`` reduced to who is behind each cluster.

Why: whether a sidecar holds the endpoints of another cluster shows in its EDS alone. Istio writes the
endpoint's origin into its metadata (pilot ``AppendLbEndpointMetadata``): ``filter_metadata.istio.workload``
is ``name;namespace;canonical-service;canonical-revision;cluster-id``, and an east-west gateway standing
in for a remote network's endpoints carries that remote cluster's ID (with an empty workload name).
Each endpoint keeps its address, its cluster ID (None when the metadata does not say) and its weight
(a gateway's weight is the number of endpoints behind it).

Real Envoy 1.40 (checked): items are ``...EndpointsConfigDump.DynamicEndpointConfig`` wrapping a
``ClusterLoadAssignment`` (``cluster_name``, ``endpoints[].lb_endpoints[]``); nothing matched is ``{}``.
"""

from __future__ import annotations

from kubectl_meshdoctor.envoy._decode import json_type, load_json_object
from kubectl_meshdoctor.errors import ParseError

_WHAT = "config_dump dynamic_endpoint_configs"
_CLUSTER_ID_FIELD = 4  # workload;namespace;canonical-service;canonical-revision;cluster-id


def parse_endpoint_configs(raw: bytes | str) -> dict[str, list[dict]]:
    """Cluster name -> its endpoints, each ``{"address": "ip:port", "clusterId": str | None, "weight": int}``."""
    document = load_json_object(raw, _WHAT)
    configs = document.get("configs", [])
    if not isinstance(configs, list):
        raise ParseError(f"{_WHAT}: 'configs' should be an array, got {json_type(configs)}")
    result: dict[str, list[dict]] = {}
    for index, item in enumerate(configs):
        assignment = item.get("endpoint_config") if isinstance(item, dict) else None
        name = assignment.get("cluster_name") if isinstance(assignment, dict) else None
        if not isinstance(name, str):
            raise ParseError(f"{_WHAT}: configs[{index}] has no endpoint_config.cluster_name")
        result[name] = [_endpoint(lb) for group in _list(assignment.get("endpoints"))
                        for lb in _list(group.get("lb_endpoints") if isinstance(group, dict) else None)
                        if isinstance(lb, dict)]
    return result


def _endpoint(lb: dict) -> dict:
    socket = ((lb.get("endpoint") or {}).get("address") or {}).get("socket_address") or {}
    workload = (((lb.get("metadata") or {}).get("filter_metadata") or {}).get("istio") or {}).get("workload")
    fields = workload.split(";") if isinstance(workload, str) else []
    cluster_id = fields[_CLUSTER_ID_FIELD] if len(fields) > _CLUSTER_ID_FIELD and fields[_CLUSTER_ID_FIELD] else None
    weight = lb.get("load_balancing_weight")
    return {"address": f"{socket.get('address', '')}:{socket.get('port_value', '')}", "clusterId": cluster_id,
            "weight": weight if isinstance(weight, int) else 1}


def _list(value) -> list:
    return value if isinstance(value, list) else []
