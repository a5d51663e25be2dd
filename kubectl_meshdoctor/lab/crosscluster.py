"""Calls from one lab cluster to another: the multi-cluster lab's cross-cluster traffic.

In a multi-primary mesh on one network, istiod gives each sidecar the endpoints of a Service in every
cluster it reads (same name and namespace: namespace sameness), and a sidecar calls a pod of another cluster
at that pod's IP, over Istio mTLS, which the pod's own sidecar terminates. The lab plays the network with
loopback: each cluster's pods get addresses of their own 127.x.y.0/24 (``pod_cidr``), every one of which is
this machine, so a client Envoy of one cluster connects to the pod IP of the other cluster's Envoy (its
endpoints come from lab/remote_endpoints.py, as istiod merges them), whose virtualInbound also listens
there (``open_called_pods``, lab/xds.py ``accept_mtls_at_pod_ip``). Whether the handshake succeeds is the
real Envoys' verdict: with one shared root it does, with a cluster on its own root the client logs
CERTIFICATE_VERIFY_FAILED.

The story used by the multi-cluster tests and the demo: ``payments`` in the calling cluster runs checkout,
which calls the ledger Service; ledger's pods run only in the serving cluster (the calling cluster holds
the Service object without pods, as the multi-cluster guides have it).
"""

from __future__ import annotations

import random

from kubectl_meshdoctor.lab import xds

CALLER = {
    "name": "payments-caller",
    "description": "checkout calls the ledger Service, whose pods run in another cluster of the mesh.",
    "namespaces": [{"name": "payments", "injection": True}],
    "workloads": [{"name": "checkout", "namespace": "payments", "app": "checkout", "version": "v1",
                   "serviceAccount": "checkout", "port": 8080,
                   "drive": [{"host": "ledger", "port": 8080, "path": "/entries", "count": 2}]}],
    "services": [{"name": "checkout", "namespace": "payments", "selector": {"app": "checkout"},
                  "ports": [{"name": "http", "port": 8080}]},
                 {"name": "ledger", "namespace": "payments", "selector": {"app": "ledger"},
                  "ports": [{"name": "http", "port": 8080}]}],
}

SERVER = {
    "name": "payments-server",
    "description": "ledger serves the payments of every cluster of the mesh.",
    "namespaces": [{"name": "payments", "injection": True}],
    "workloads": [{"name": "ledger", "namespace": "payments", "app": "ledger", "version": "v1",
                   "serviceAccount": "ledger", "port": 8080, "serve": {}}],
    "services": [{"name": "ledger", "namespace": "payments", "selector": {"app": "ledger"},
                  "ports": [{"name": "http", "port": 8080}]}],
}


def loopback_pod_cidrs(count: int) -> list[str]:
    """One 127.x.y.0/24 per cluster, distinct, chosen at random so that labs running side by side on this
    machine (other test runs) do not listen on the same pod IP and port."""
    chosen: list[str] = []
    while len(chosen) < count:
        cidr = f"127.{random.randint(16, 254)}.{random.randint(0, 255)}.0/24"
        if cidr not in chosen:
            chosen.append(cidr)
    return chosen


def open_called_pods(labs: list) -> None:
    """Every pod whose IP a sidecar of another cluster holds as an endpoint (after lab/remote_endpoints.py)
    gets its sidecar listening at that IP and port, over Istio mTLS. Before any Envoy starts."""
    called: dict[str, set[int]] = {}  # pod IP -> ports other clusters call it on
    for lab in labs:
        for resources in lab.sidecar_resources():
            for cluster in resources.clusters:
                for group in (cluster.get("load_assignment") or {}).get("endpoints") or []:
                    for endpoint in group.get("lb_endpoints") or []:
                        origin = ((endpoint.get("metadata") or {}).get("filter_metadata") or {}).get("istio") or {}
                        cluster_id = str(origin.get("workload", "")).split(";")[-1]
                        if cluster_id and cluster_id != lab.identity.cluster_id:
                            address = endpoint["endpoint"]["address"]["socket_address"]
                            called.setdefault(address["address"], set()).add(int(address["port_value"]))
    for lab in labs:
        for pod in lab.objects:
            ip = (pod.get("status") or {}).get("podIP")
            if pod["kind"] == "Pod" and ip in called:
                resources = lab._xds.registered_for(xds.node_id(pod))
                if resources is not None:
                    xds.accept_mtls_at_pod_ip(resources, ip, called[ip])
