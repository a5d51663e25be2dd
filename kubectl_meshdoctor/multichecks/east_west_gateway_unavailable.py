"""MD0702 EastWestGatewayUnavailable: a cluster on its own network cannot be entered from the others.

Why: pods of clusters on different networks cannot reach each other directly; istiod gives the other
networks' sidecars the address of the cluster's east-west gateway instead (the Service labelled
``istio=eastwestgateway`` in istio-system), and the gateway passes the mTLS connection through to the
workload by SNI (a Gateway on 15443, TLS mode AUTO_PASSTHROUGH, hosts ``*.local``). Without a gateway,
without an address other networks can reach, without a ready gateway pod, or without that Gateway,
the remote endpoints are dropped or unreachable and the callers see only their local endpoints, or 503.

A cluster's network is its sidecars' ``ISTIO_META_NETWORK``, else the ``topology.istio.io/network`` label
of istio-system. A cluster may also hold workloads on other networks, by the pod's own
``topology.istio.io/network`` label: istiod takes an endpoint's network from that label, else from the
system namespace (or meshNetworks), and the injector writes the label from the network it injects
(values.global.network, overridden by a network label the pod already has). A workload namespace's label
is read by neither (istio/istio pkg/kube/inject and the endpoint builder, checked), so it is not counted
here. Each network with workloads in a cluster needs that cluster's gateway for that network (the
Service labelled with it; an unlabelled gateway, or one labelled with no network of the cluster's
workloads, serves the cluster's own network). Runs only when the clusters read are on at least two
networks, and only on clusters whose east-west evidence was read.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable

from kubectl_meshdoctor.checks.base import finding
from kubectl_meshdoctor.findings import Finding, Subject
from kubectl_meshdoctor.multibundle import EAST_WEST_EVIDENCE, NETWORK_LABEL
from kubectl_meshdoctor.multichecks import MultiCheck
from kubectl_meshdoctor.pods import sidecar_container

NAMESPACE = "istio-system"
PASSTHROUGH_PORT = 15443
DEFAULT_GATEWAY = Subject("Service", "istio-eastwestgateway", NAMESPACE)


class EastWestGatewayUnavailable(MultiCheck):
    name = "east-west-gateway-unavailable"
    codes = ("MD0702",)

    def run(self, clusters: list) -> Iterable[Finding]:
        networks = {c.context: c.identity.get("network") for c in clusters if c.identity.get("network")}
        placed = {c.context: workload_networks(c.bundle.objects, networks.get(c.context)) for c in clusters}
        every = set(networks.values()) | {n for found in placed.values() for n in found}
        if len(every) < 2:
            return
        for cluster in clusters:
            network = networks.get(cluster.context)
            if EAST_WEST_EVIDENCE not in cluster.bundle.available:
                continue
            own = dict.fromkeys([network] if network else [])
            own.update(dict.fromkeys(placed[cluster.context]))
            for local in own:
                others = sorted(every - {local})
                problem = _problem(cluster.bundle.objects, local, local == network, set(own))
                if problem is None:
                    continue
                subject, what, evidence = problem
                if local != network:
                    places = placed[cluster.context][local]
                    evidence = [f"{place}: {NETWORK_LABEL}={local}" for place in places] + evidence
                    message = (f"cluster {cluster.context} ({', '.join(places)} on network {local}): {what}, so "
                               f"clusters on network {', '.join(others)} cannot reach them")
                else:
                    message = (f"cluster {cluster.context} (network {local}): {what}, so clusters on network "
                               f"{', '.join(others)} cannot reach its workloads")
                yield replace(finding("MD0702", subject, message, evidence).with_links(root_cause=True, caused_by=()),
                              cluster=cluster.context)


def workload_networks(objects: list[dict], default: str | None, named: int = 3) -> dict[str, list[str]]:
    """network -> where its workloads are ("pod shop/cart-1", "namespace shop: 4 pods"), for the meshed pods
    whose own topology.istio.io/network label puts them on another network than the cluster's."""
    by_network: dict[str, dict[str, list[str]]] = {}
    for pod in objects:
        meta = pod.get("metadata") or {}
        network = (meta.get("labels") or {}).get(NETWORK_LABEL)
        if pod.get("kind") != "Pod" or sidecar_container(pod) is None or not network or network == default:
            continue
        by_network.setdefault(network, {}).setdefault(str(meta.get("namespace") or ""), []).append(str(meta.get("name")))
    return {network: [f"pod {ns}/{pods[0]}" if len(pods) == 1 else
                      f"namespace {ns}: {len(pods)} pods ({', '.join(sorted(pods)[:named])}{', ...' if len(pods) > named else ''})"
                      for ns, pods in sorted(namespaces.items())]
            for network, namespaces in by_network.items()}


def _problem(objects: list[dict], network: str, cluster_network: bool,
             own: set[str]) -> tuple[Subject, str, list[str]] | None:
    """What keeps this cluster's east-west gateway for ``network`` from working: (subject, what, evidence),
    or None. The cluster's own network takes the gateways not labelled with another of its networks."""
    def of(kind: str) -> list[dict]:
        return [o for o in objects if o.get("kind") == kind and (o.get("metadata") or {}).get("namespace") == NAMESPACE]

    def serves(service: dict) -> bool:
        label = (service["metadata"].get("labels") or {}).get(NETWORK_LABEL)
        return label == network or (cluster_network and label not in own - {network})

    services = [s for s in of("Service") if ((s["metadata"].get("labels") or {}).get("istio") == "eastwestgateway")]
    services = [s for s in services if serves(s)]
    if not services:
        if cluster_network:
            return DEFAULT_GATEWAY, "no east-west gateway exists", [
                f"no Service labelled istio=eastwestgateway in {NAMESPACE}"]
        return DEFAULT_GATEWAY, f"no east-west gateway for network {network}", [
            f"no Service labelled istio=eastwestgateway and {NETWORK_LABEL}={network} in {NAMESPACE}"]
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
