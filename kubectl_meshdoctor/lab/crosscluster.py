"""Calls from one lab cluster to another: the multi-cluster lab's cross-cluster traffic.

In a multi-primary mesh on one network, istiod gives each sidecar the endpoints of a Service in every
cluster it reads (same name and namespace: namespace sameness), and a sidecar calls a pod of another cluster
at that pod's IP, over Istio mTLS, which the pod's own sidecar terminates. The lab plays the network with
loopback: each cluster's pods get addresses of their own 127.x.y.0/24 (``pod_cidr``), every one of which is
this machine, so a client Envoy of one cluster connects to the pod IP of the other cluster's Envoy, whose
virtualInbound also listens there (lab/xds.py ``mtls_at_pod_ip``). Whether the handshake succeeds is the
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


def meshed_pods(objects: list[dict]) -> list[dict]:
    """The pods of a cluster whose sidecar another cluster's sidecars may call."""
    return [o for o in objects if o["kind"] == "Pod" and o.get("status", {}).get("podIP")
            and o["metadata"]["labels"].get("security.istio.io/tlsMode") == "istio"]


def called_pods(objects: list[dict], remote_pods: list[dict]) -> set[tuple[str, str]]:
    """(namespace, name) of the remote pods that this cluster's Services send traffic to (no local pod)."""
    model = xds.MeshModel(objects, remote_pods=remote_pods)
    remote = {id(p) for p in remote_pods}
    return {(p["metadata"]["namespace"], p["metadata"]["name"])
            for service in model.services for p in model.service_pods(service) if id(p) in remote}
