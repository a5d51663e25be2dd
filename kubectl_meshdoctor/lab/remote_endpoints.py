"""The other clusters' endpoints in a multi-cluster lab's sidecars, the way istiod adds them.

In a multi-primary mesh each istiod watches the other clusters through their remote secrets and merges
their endpoints into the EDS of every Service of the same namespace and name (pilot's endpoint builder;
read in istio/istio ``pilot/pkg/xds/endpoints``):
- each endpoint carries its origin in ``filter_metadata.istio.workload``:
  ``name;namespace;canonical-service;canonical-revision;cluster-id`` (``util.AppendLbEndpointMetadata``);
- a remote endpoint on the sidecar's own network is the remote pod's IP and target port;
- on another network with an east-west gateway (``EndpointsByNetworkFilter``), the remote endpoints are
  replaced by the gateway's address on 15443, weighted by how many they stand for, carrying the remote
  cluster's ID and ``tlsMode: istio``; endpoints without mTLS cannot cross and are dropped. A network
  without a gateway istiod knows (none, or one without an address) is reached directly, pod IPs as is;
- a cluster istiod does not read, or whose sync timed out, adds nothing: its sidecars keep the local
  endpoints only, the symptom MD0701 explains.

The lab's clusters are inline ``load_assignment`` (see lab/xds.py), so the endpoints are amended there,
after every cluster's objects exist and before any Envoy first asks for its configuration.
"""

from __future__ import annotations

from typing import Any

from kubectl_meshdoctor.lab import xds

GATEWAY_PORT = 15443
SYNCED = "synced"


def add_remote_endpoints(clusters: list[tuple[Any, dict[str, str]]]) -> None:
    """``clusters``: (prepared ClusterLab, what its istiod reads: cluster ID -> sync status) per cluster."""
    models = {lab.identity.cluster_id: (lab, xds.MeshModel(lab.objects)) for lab, _ in clusters}
    for lab, reads in clusters:
        local = models[lab.identity.cluster_id][1]
        peers = [models[cluster_id] for cluster_id, status in reads.items()
                 if status == SYNCED and cluster_id in models and cluster_id != lab.identity.cluster_id]
        for resources in lab.sidecar_resources():
            for cluster in resources.clusters:
                if cluster["name"].startswith("outbound|") and "load_assignment" in cluster:
                    _amend(cluster, lab, local, peers)


def _amend(cluster: dict, lab, local: xds.MeshModel, peers: list) -> None:
    _, port, subset, host = cluster["name"].split("|")
    groups = cluster["load_assignment"]["endpoints"]
    for group in groups:
        for endpoint in group["lb_endpoints"]:
            _set_origin(endpoint, lab.identity.cluster_id)
    labels = _subset_labels(local.destination_rule(host), subset)
    remote: list[dict] = []
    for peer, model in peers:
        service = next((s for s in model.services if s.host == host), None)
        service_port = next((p for p in service.ports if p["port"] == int(port)), None) if service else None
        pods = model.service_pods(service, labels) if service_port else []
        if not pods:
            continue
        gateway = _gateway_address(peer)
        if peer.identity.network != lab.identity.network and gateway:
            meshed = [p for p in pods if xds._labels(p).get("security.istio.io/tlsMode") == "istio"]
            if meshed:
                remote.append(_gateway_endpoint(gateway, len(meshed), peer.identity.cluster_id))
            continue
        for pod in pods:
            endpoint = xds._endpoint(pod["status"]["podIP"], xds._target_port(service_port, pod), pod)
            _set_origin(endpoint, peer.identity.cluster_id)
            remote.append(endpoint)
    if not remote:
        return
    if groups:
        groups[0]["lb_endpoints"].extend(remote)
    else:
        groups.append({"locality": {}, "lb_endpoints": remote})


def _set_origin(endpoint: dict, cluster_id: str) -> None:
    """Istio's workload metadata, with the endpoint's cluster in the fifth field."""
    istio = endpoint["metadata"]["filter_metadata"].setdefault("istio", {})
    name, _, namespace = str(istio.get("workload", ";")).partition(";")
    istio["workload"] = f"{name};{namespace.split(';')[0]};{name};;{cluster_id}"


def _gateway_endpoint(address: str, weight: int, cluster_id: str) -> dict:
    return {"endpoint": {"address": {"socket_address": {"address": address, "port_value": GATEWAY_PORT}}},
            "metadata": {"filter_metadata": {"envoy.transport_socket_match": {"tlsMode": "istio"},
                                             "istio": {"workload": f";;;;{cluster_id}"}}},
            "load_balancing_weight": weight}


def _gateway_address(lab) -> str | None:
    """The address other networks reach ``lab``'s east-west gateway at; None: none istiod would use."""
    for obj in lab.objects:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if obj.get("kind") == "Service" and labels.get("istio") == "eastwestgateway":
            ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            return next((i.get("ip") for i in ingress if i.get("ip")), None)
    return None


def _subset_labels(rule: dict | None, subset: str) -> dict[str, str]:
    if not subset:
        return {}
    return next((s.get("labels") or {} for s in ((rule or {}).get("spec") or {}).get("subsets") or []
                 if s.get("name") == subset), {})
