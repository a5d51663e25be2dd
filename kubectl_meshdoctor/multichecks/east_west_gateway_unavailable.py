"""MD0702 EastWestGatewayUnavailable: a cluster on its own network cannot be entered from the others.

Why: pods of clusters on different networks cannot reach each other directly; istiod gives the other
networks' sidecars the address of the cluster's east-west gateway instead (the Service labelled
``istio=eastwestgateway`` in istio-system), and the gateway passes the mTLS connection through to the
workload by SNI (a Gateway on 15443, TLS mode AUTO_PASSTHROUGH, hosts ``*.local``). Without a gateway,
without an address other networks can reach, without a ready gateway pod, or without that Gateway,
the remote endpoints are dropped or unreachable and the callers see only their local endpoints, or 503.

A cluster's network is its sidecars' ``ISTIO_META_NETWORK``, else the ``topology.istio.io/network`` label
of istio-system. Runs only when the clusters read are on at least two networks, and only on clusters
whose east-west evidence was read.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable

from kubectl_meshdoctor.checks.base import finding
from kubectl_meshdoctor.findings import Finding, Subject
from kubectl_meshdoctor.multibundle import EAST_WEST_EVIDENCE
from kubectl_meshdoctor.multichecks import MultiCheck

NAMESPACE = "istio-system"
PASSTHROUGH_PORT = 15443
DEFAULT_GATEWAY = Subject("Service", "istio-eastwestgateway", NAMESPACE)


class EastWestGatewayUnavailable(MultiCheck):
    name = "east-west-gateway-unavailable"
    codes = ("MD0702",)

    def run(self, clusters: list) -> Iterable[Finding]:
        networks = {c.context: c.identity.get("network") for c in clusters if c.identity.get("network")}
        if len(set(networks.values())) < 2:
            return
        for cluster in clusters:
            network = networks.get(cluster.context)
            if network is None or EAST_WEST_EVIDENCE not in cluster.bundle.available:
                continue
            others = sorted({n for c, n in networks.items() if n != network})
            problem = _problem(cluster.bundle.objects)
            if problem is None:
                continue
            subject, what, evidence = problem
            message = (f"cluster {cluster.context} (network {network}): {what}, so clusters on network "
                       f"{', '.join(others)} cannot reach its workloads")
            yield replace(finding("MD0702", subject, message, evidence).with_links(root_cause=True, caused_by=()),
                          cluster=cluster.context)


def _problem(objects: list[dict]) -> tuple[Subject, str, list[str]] | None:
    """What keeps this cluster's east-west gateway from working: (subject, what, evidence), or None."""
    def of(kind: str) -> list[dict]:
        return [o for o in objects if o.get("kind") == kind and (o.get("metadata") or {}).get("namespace") == NAMESPACE]

    services = [s for s in of("Service") if ((s["metadata"].get("labels") or {}).get("istio") == "eastwestgateway")]
    if not services:
        return DEFAULT_GATEWAY, "no east-west gateway exists", [
            f"no Service labelled istio=eastwestgateway in {NAMESPACE}"]
    service = services[0]
    name = service["metadata"]["name"]
    subject = Subject("Service", name, NAMESPACE)
    spec, status = service.get("spec") or {}, service.get("status") or {}
    addresses = [i.get("ip") or i.get("hostname") for i in (status.get("loadBalancer") or {}).get("ingress") or []]
    addresses = [a for a in addresses + list(spec.get("externalIPs") or []) if a]
    if not addresses:
        return subject, f"the east-west gateway {name} has no external address", [
            f"Service {NAMESPACE}/{name}: type {spec.get('type', 'ClusterIP')}, no status.loadBalancer.ingress "
            "and no externalIPs"]
    endpoints = next((e for e in of("Endpoints") if e["metadata"]["name"] == name), None)
    ready = [a for subset in (endpoints or {}).get("subsets") or [] for a in subset.get("addresses") or []]
    if not ready:
        return subject, f"the east-west gateway {name} has no ready endpoint", [
            f"Endpoints {NAMESPACE}/{name}: no ready address (gateway pods missing or not ready)"]
    selector = spec.get("selector") or {}
    for gateway in of("Gateway"):
        wanted = (gateway.get("spec") or {}).get("selector") or {}
        if not wanted or any(selector.get(k) != v for k, v in wanted.items()):
            continue
        for server in (gateway.get("spec") or {}).get("servers") or []:
            port, tls = server.get("port") or {}, server.get("tls") or {}
            if (port.get("number") == PASSTHROUGH_PORT and tls.get("mode") == "AUTO_PASSTHROUGH"
                    and any(h in ("*.local", "*") or h.endswith("/*.local") for h in server.get("hosts") or [])):
                return None
    return (Subject("Gateway", "cross-network-gateway", NAMESPACE),
            f"no Gateway exposes *.local on {PASSTHROUGH_PORT} with AUTO_PASSTHROUGH through {name}",
            [f"Gateways in {NAMESPACE} selecting {', '.join(f'{k}={v}' for k, v in selector.items()) or 'the gateway'}: "
             f"none with port {PASSTHROUGH_PORT}, tls.mode AUTO_PASSTHROUGH and hosts *.local"])


CHECK = EastWestGatewayUnavailable()
