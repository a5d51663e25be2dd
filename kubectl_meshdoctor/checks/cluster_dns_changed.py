"""MD0301 ClusterDnsChanged: the pod's nameserver is not the cluster DNS Service's ClusterIP.

Anti-pattern: deleting and re-creating the ``kube-dns`` Service (or reinstalling CoreDNS) without
pinning ``spec.clusterIP``. Every running pod keeps the old address kubelet wrote into its
/etc/resolv.conf, so all lookups fail, istiod's included, and every sidecar stays "1/2 READY".

Best practice: compare each pod's resolv.conf nameservers with the ClusterIP of the Service labelled
``k8s-app=kube-dns`` in kube-system. Report one message for all pods that share the same stale
address, with the DNS Service as the subject, so a sweep shows one cause for many pods.

Why: the symptom (no configuration from istiod) points at istiod, which is healthy; the real fault
is one Service object in kube-system.

Decisions:
- Pods with dnsPolicy None or Default use other resolvers on purpose and are skipped; so are
  hostNetwork pods unless their dnsPolicy is ClusterFirstWithHostNet (ClusterFirst on the host
  network falls back to the node's resolv.conf).
- A nameserver in 169.254.0.0/16 is NodeLocal DNSCache's link-local address, not a stale ClusterIP.
- Every kube-system Service labelled k8s-app=kube-dns counts as cluster DNS (NodeLocal DNSCache adds
  ``kube-dns-upstream`` with that label), and all ClusterIPs of a dual-stack Service count.
- When no cluster DNS Service exists at all, each pod gets MD0301 with the pod-independent message
  "cluster DNS Service not found": the pods' lookups fail just the same, and one code keeps the
  failure tree simple (MD0201 <- MD0301).
"""

from __future__ import annotations

import ipaddress
from typing import Iterable

from kubectl_meshdoctor.checks.base import Check, created, finding, moment
from kubectl_meshdoctor.checks.context import AnalysisContext, key_of, labels_of
from kubectl_meshdoctor.evidence import Evidence
from kubectl_meshdoctor.findings import Finding, Subject

DNS_NAMESPACE = "kube-system"
DNS_LABEL = ("k8s-app", "kube-dns")
HOST_DNS_POLICIES = frozenset({"None", "Default"})
NODE_LOCAL_NETWORK = ipaddress.ip_network("169.254.0.0/16")


def cluster_ips(service: dict) -> list[str]:
    spec = service.get("spec") or {}
    ips = list(spec.get("clusterIPs") or [])
    if spec.get("clusterIP") and spec["clusterIP"] not in ips:
        ips.insert(0, spec["clusterIP"])
    return [ip for ip in ips if ip and ip != "None"]


def uses_cluster_dns(pod: dict | None) -> bool:
    """True when kubelet gives the pod the cluster DNS Service as nameserver."""
    if pod is None:
        return True  # ClusterFirst is the default; the proxy evidence says the pod exists
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy in HOST_DNS_POLICIES:
        return False
    if spec.get("hostNetwork") and policy != "ClusterFirstWithHostNet":
        return False
    return True


def _is_node_local(address: str) -> bool:
    try:
        return ipaddress.ip_address(address) in NODE_LOCAL_NETWORK
    except ValueError:
        return False


class ClusterDnsChanged(Check):
    name = "ClusterDnsChanged"
    codes = ("MD0301",)
    needs = frozenset({Evidence.RESOLV_CONF, Evidence.DNS_SERVICE})

    def run(self, ctx: AnalysisContext) -> Iterable[Finding]:
        dns_service = ctx.dns_service()
        dns_services = [
            s for s in ctx.objects("Service")
            if (s.get("metadata") or {}).get("namespace") == DNS_NAMESPACE and labels_of(s).get(DNS_LABEL[0]) == DNS_LABEL[1]
        ]
        # Prefer the Service kubelet's clusterDNS conventionally points at, whatever order the API gave.
        dns_service = next((s for s in dns_services if s["metadata"].get("name") == "kube-dns"), dns_service)
        valid = {ip for s in dns_services for ip in cluster_ips(s)}
        for key, proxy in sorted(ctx.proxies.items()):
            if proxy.resolv_conf is None or not uses_cluster_dns(ctx.pod(key)):
                continue
            nameservers = proxy.resolv_conf.nameservers
            if not nameservers or any(ns in valid or _is_node_local(ns) for ns in nameservers):
                continue
            resolv_lines = [f"/etc/resolv.conf: nameserver {ns}" for ns in nameservers]
            if dns_service is None:
                yield finding(
                    "MD0301", Subject("Service", "kube-dns", DNS_NAMESPACE),
                    "cluster DNS Service not found",
                    resolv_lines + [f"no Service labelled {'='.join(DNS_LABEL)} in {DNS_NAMESPACE}"],
                    pod=key,
                )
                continue
            meta = dns_service["metadata"]
            new = cluster_ips(dns_service)
            new_text = ", ".join(new) or "none"
            started = ((ctx.pod(key) or {}).get("status") or {}).get("startTime")
            yield finding(
                "MD0301", Subject("Service", meta["name"], meta.get("namespace")),
                f"cluster DNS ClusterIP changed ({meta['name']} {nameservers[0]} → {new_text})",
                resolv_lines + [f"Service {key_of(dns_service)} clusterIP {new_text}"],
                pod=key,
                since=[created(dns_service, f"{meta['name']} Service created with ClusterIP {new_text}"),
                       moment(started, f"started with nameserver {nameservers[0]}", key)],
            )


CHECK = ClusterDnsChanged()
