"""Services that run in several clusters of one run: what MD0701's endpoint evidence is about.

A Service of the same namespace and name in several clusters of a multi-cluster mesh is one service to
Istio: each istiod that reads the other clusters gives its sidecars the endpoints of all of them. So the
Services worth asking a sidecar about are those present, with ready endpoints, in two or more clusters
of the run. Control-plane namespaces are left out: their Services (istiod, the gateways, kube-dns) are
each cluster's own (Istio keeps kube-system cluster-local by default). Headless Services are left out too:
their clusters are ORIGINAL_DST and have no EDS.

Pure: plain objects in, plain values out; used by the collection (what to ask) and by MD0701 (what it means).
"""

from __future__ import annotations

from dataclasses import dataclass

SKIPPED_NAMESPACES = ("istio-system", "kube-system")
DNS_DOMAIN = "svc.cluster.local"


@dataclass(frozen=True, order=True)
class SharedPort:
    namespace: str
    name: str
    port: int

    @property
    def host(self) -> str:
        return f"{self.name}.{self.namespace}.{DNS_DOMAIN}"

    @property
    def label(self) -> str:
        return f"{self.name}.{self.namespace}:{self.port}"


def ready_pods(objects: list[dict], namespace: str, name: str) -> int:
    """Ready addresses of the Service's Endpoints (a pod each); 0 when none or no Endpoints."""
    for obj in objects:
        meta = obj.get("metadata") or {}
        if obj.get("kind") == "Endpoints" and meta.get("namespace") == namespace and meta.get("name") == name:
            return sum(len(subset.get("addresses") or []) for subset in obj.get("subsets") or []
                       if isinstance(subset, dict))
    return 0


def pod_ips(objects: list[dict]) -> set[str]:
    return {ip for obj in objects if obj.get("kind") == "Pod"
            for ip in [((obj.get("status") or {}).get("podIP"))] if ip}


def shared_ports(bundles: dict[str, list[dict]]) -> dict[str, list[SharedPort]]:
    """Per context (its objects given), the ports of its Services that also run, ready, in another context."""
    ready: dict[tuple[str, str], dict[str, list[int]]] = {}
    for context, objects in bundles.items():
        for obj in objects:
            meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
            namespace, name = meta.get("namespace"), meta.get("name")
            if (obj.get("kind") != "Service" or not namespace or not name or namespace in SKIPPED_NAMESPACES
                    or spec.get("clusterIP") == "None" or spec.get("type") == "ExternalName"):
                continue
            ports = [p["port"] for p in spec.get("ports") or [] if isinstance(p, dict) and isinstance(p.get("port"), int)
                     and (p.get("protocol") or "TCP") == "TCP"]
            if ports and ready_pods(objects, namespace, name):
                ready.setdefault((namespace, name), {})[context] = ports
    shared: dict[str, list[SharedPort]] = {}
    for (namespace, name), by_context in sorted(ready.items()):
        if len(by_context) < 2:
            continue
        for context, ports in by_context.items():
            shared.setdefault(context, []).extend(SharedPort(namespace, name, port) for port in ports)
    return shared
