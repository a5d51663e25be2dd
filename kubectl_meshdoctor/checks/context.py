"""Indexes over an evidence bundle, built once per analysis so no check needs a nested scan.

Everything is keyed (namespace/name, FQDN, label) so correlating pods, Services, endpoints and Istio
resources stays linear in the size of the bundle.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property
from typing import Iterable, Iterator

from kubectl_meshdoctor.bundle import EvidenceBundle
from kubectl_meshdoctor.evidence import ProxyEvidence
from kubectl_meshdoctor.pods import SIDECAR_CONTAINER, sidecar_container
from kubectl_meshdoctor.pods import pod_key as key_of
from kubectl_meshdoctor.workloads import Workload, in_mesh, made_by_istio, workloads

__all__ = ["SIDECAR_CONTAINER", "sidecar_container", "key_of"]  # re-exported for the checks

CLUSTER_DOMAIN = "cluster.local"
ROOT_NAMESPACE = "istio-system"  # where the mesh-wide PeerAuthentication lives
TLS_MODE_LABEL = "security.istio.io/tlsMode"
NEVER_INJECTED_NAMESPACES = frozenset({"kube-system", "kube-public"})
# Kinds whose pod template stands in for pods when analysing manifests (injection never shows there).
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController"})


def labels_of(obj: dict) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def is_istio_control_plane(obj: dict) -> bool:
    """Made by Istio's own install, not a user workload: labelled ``istio`` (istio: pilot, istio:
    ingressgateway) or ``release: istio``. The same rule istioctl analyze uses to skip such objects."""
    labels = labels_of(obj)
    return "istio" in labels or labels.get("release") == "istio"


def selector_matches(selector: dict[str, str] | None, labels: dict[str, str]) -> bool:
    """Service/PeerAuthentication style equality selector; an empty selector selects nothing here."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def sidecar_status(pod: dict) -> dict | None:
    """The istio-proxy entry of the pod's container statuses (regular or init), if any."""
    status = pod.get("status") or {}
    for group in ("containerStatuses", "initContainerStatuses"):
        for item in status.get(group) or []:
            if item.get("name") == SIDECAR_CONTAINER:
                return item
    return None


def service_fqdn(name: str, namespace: str) -> str:
    return f"{name}.{namespace}.svc.{CLUSTER_DOMAIN}"


def resolve_host(host: str, namespace: str) -> str:
    """Istio's short-name rule: ``reviews`` in namespace ``ns`` means reviews.ns.svc.cluster.local."""
    if "*" in host:
        return host
    parts = host.split(".")
    if len(parts) == 1:
        return service_fqdn(host, namespace)
    if len(parts) == 2:
        return service_fqdn(parts[0], parts[1])
    if len(parts) == 3 and parts[2] == "svc":
        return f"{host}.{CLUSTER_DOMAIN}"
    return host


@dataclass(frozen=True)
class IstioClusterName:
    """Istio's cluster naming: direction|port|subset|host, e.g. outbound|9080|v1|reviews.ns.svc.cluster.local."""

    direction: str
    port: int | None
    subset: str
    host: str

    @classmethod
    def parse(cls, name: str) -> "IstioClusterName | None":
        parts = name.split("|")
        if len(parts) != 4 or parts[0] not in ("outbound", "inbound"):
            return None
        port = int(parts[1]) if parts[1].isdigit() else None
        return cls(direction=parts[0], port=port, subset=parts[2], host=parts[3])


class AnalysisContext:
    def __init__(self, bundle: EvidenceBundle, *, now_iso: str | None = None, ca_warn_days: int = 30):
        self.bundle = bundle
        self.available = frozenset(bundle.available)
        self.now_iso = now_iso
        self.ca_warn_days = ca_warn_days

    @property
    def live(self) -> bool:
        """Evidence read from a cluster (pods as they run), not manifests (pods as they will be created)."""
        return self.bundle.scope.get("kind") != "manifests"

    # --- raw access ---------------------------------------------------------------------------------

    @cached_property
    def _by_kind(self) -> dict[str, list[dict]]:
        index: dict[str, list[dict]] = defaultdict(list)
        for obj in self.bundle.objects:
            index[obj.get("kind") or ""].append(obj)
        return index

    def objects(self, kind: str) -> list[dict]:
        return self._by_kind.get(kind, [])

    @property
    def proxies(self) -> dict[str, ProxyEvidence]:
        return self.bundle.proxies

    def proxy(self, pod_key: str) -> ProxyEvidence | None:
        return self.bundle.proxies.get(pod_key)

    # --- pods and namespaces ------------------------------------------------------------------------

    @property
    def pods(self) -> list[dict]:
        return self.objects("Pod")

    @cached_property
    def _pods_by_key(self) -> dict[str, dict]:
        return {key_of(p): p for p in self.pods}

    def pod(self, key: str) -> dict | None:
        return self._pods_by_key.get(key)

    @cached_property
    def _pods_by_namespace(self) -> dict[str, list[dict]]:
        index: dict[str, list[dict]] = defaultdict(list)
        for pod in self.pods:
            index[(pod.get("metadata") or {}).get("namespace") or ""].append(pod)
        return index

    def pods_in(self, namespace: str) -> list[dict]:
        return self._pods_by_namespace.get(namespace, [])

    @cached_property
    def _namespace_labels(self) -> dict[str, dict[str, str]]:
        return {(ns.get("metadata") or {}).get("name") or "": labels_of(ns) for ns in self.objects("Namespace")}

    def namespace_labels(self, namespace: str) -> dict[str, str] | None:
        """Labels of the namespace, or None when the Namespace object is not in the evidence."""
        return self._namespace_labels.get(namespace)

    def workload_label_sets(self, namespace: str) -> Iterator[tuple[dict, dict[str, str]]]:
        """(object, labels) of every pod, and of every workload's pod template, in ``namespace``."""
        for pod in self.pods_in(namespace):
            yield pod, labels_of(pod)
        for kind in WORKLOAD_KINDS:
            for obj in self.objects(kind):
                if (obj.get("metadata") or {}).get("namespace") == namespace:
                    template = ((obj.get("spec") or {}).get("template") or {})
                    yield obj, labels_of(template)

    # --- services and endpoints ---------------------------------------------------------------------

    @cached_property
    def _services_by_key(self) -> dict[str, dict]:
        return {key_of(s): s for s in self.objects("Service")}

    def service(self, namespace: str, name: str) -> dict | None:
        return self._services_by_key.get(f"{namespace}/{name}")

    @cached_property
    def _services_by_fqdn(self) -> dict[str, dict]:
        return {
            service_fqdn(s["metadata"]["name"], s["metadata"].get("namespace") or "default"): s
            for s in self.objects("Service")
            if (s.get("metadata") or {}).get("name")
        }

    def service_by_host(self, host: str, namespace: str = "default") -> dict | None:
        return self._services_by_fqdn.get(resolve_host(host, namespace))

    @cached_property
    def _services_by_namespace(self) -> dict[str, list[dict]]:
        index: dict[str, list[dict]] = defaultdict(list)
        for svc in self.objects("Service"):
            index[(svc.get("metadata") or {}).get("namespace") or ""].append(svc)
        return index

    def services_in(self, namespace: str) -> list[dict]:
        return self._services_by_namespace.get(namespace, [])

    def services_selecting(self, pod: dict) -> list[dict]:
        namespace = (pod.get("metadata") or {}).get("namespace") or ""
        labels = labels_of(pod)
        return [
            s for s in self._services_by_namespace.get(namespace, [])
            if selector_matches((s.get("spec") or {}).get("selector"), labels)
        ]

    @cached_property
    def _endpoint_pod_keys(self) -> dict[str, set[str]]:
        """Service key -> keys of the pods behind it, from Endpoints and EndpointSlices targetRefs."""
        index: dict[str, set[str]] = defaultdict(set)
        for ep in self.objects("Endpoints"):
            namespace = ep["metadata"].get("namespace") or ""
            for subset in ep.get("subsets") or []:
                for address in (subset.get("addresses") or []) + (subset.get("notReadyAddresses") or []):
                    ref = address.get("targetRef") or {}
                    if ref.get("kind") == "Pod":
                        index[key_of(ep)].add(f"{ref.get('namespace') or namespace}/{ref.get('name')}")
        for eps in self.objects("EndpointSlice"):
            namespace = eps["metadata"].get("namespace") or ""
            service = labels_of(eps).get("kubernetes.io/service-name")
            if not service:
                continue
            for endpoint in eps.get("endpoints") or []:
                ref = endpoint.get("targetRef") or {}
                if ref.get("kind") == "Pod":
                    index[f"{namespace}/{service}"].add(f"{ref.get('namespace') or namespace}/{ref.get('name')}")
        return index

    def pods_behind(self, service: dict) -> list[dict]:
        """Pods a Service sends traffic to: its endpoints' pods, else the pods its selector matches."""
        keys = self._endpoint_pod_keys.get(key_of(service))
        if keys:
            return [p for k in sorted(keys) if (p := self.pod(k)) is not None]
        selector = (service.get("spec") or {}).get("selector")
        namespace = (service.get("metadata") or {}).get("namespace") or ""
        return [p for p in self.pods_in(namespace) if selector_matches(selector, labels_of(p))]

    def ready_endpoint_count(self, service: dict) -> int:
        """Ready addresses behind a Service, from EndpointSlices when present, else Endpoints."""
        key = key_of(service)
        slices = self._endpoint_slices_by_service.get(key)
        if slices:
            return sum(
                1 for s in slices for e in s.get("endpoints") or []
                if (e.get("conditions") or {}).get("ready", True) is not False
            )
        return sum(
            len(subset.get("addresses") or [])
            for ep in self._endpoints_by_key.get(key, [])
            for subset in ep.get("subsets") or []
        )

    @cached_property
    def _endpoint_slices_by_service(self) -> dict[str, list[dict]]:
        index: dict[str, list[dict]] = defaultdict(list)
        for eps in self.objects("EndpointSlice"):
            service = labels_of(eps).get("kubernetes.io/service-name")
            if service:
                index[f"{(eps.get('metadata') or {}).get('namespace') or ''}/{service}"].append(eps)
        return index

    @cached_property
    def _endpoints_by_key(self) -> dict[str, list[dict]]:
        index: dict[str, list[dict]] = defaultdict(list)
        for ep in self.objects("Endpoints"):
            index[key_of(ep)].append(ep)
        return index

    # --- cluster services ---------------------------------------------------------------------------

    def dns_service(self) -> dict | None:
        """The cluster DNS Service: kube-system, label k8s-app=kube-dns, whatever its name."""
        for svc in self._services_by_namespace.get("kube-system", []):
            if labels_of(svc).get("k8s-app") == "kube-dns":
                return svc
        return None

    # --- Istio configuration ------------------------------------------------------------------------

    @cached_property
    def _destination_rules_by_host(self) -> dict[str, list[dict]]:
        index: dict[str, list[dict]] = defaultdict(list)
        for dr in self.objects("DestinationRule"):
            host = (dr.get("spec") or {}).get("host")
            if host:
                index[resolve_host(host, dr["metadata"].get("namespace") or "default")].append(dr)
        return index

    def destination_rules_for(self, fqdn: str) -> list[dict]:
        """DestinationRules whose host is exactly ``fqdn`` (after short-name resolution)."""
        return self._destination_rules_by_host.get(fqdn, [])

    @property
    def virtual_services(self) -> list[dict]:
        return self.objects("VirtualService")

    @cached_property
    def _peer_authentications_by_namespace(self) -> dict[str, list[dict]]:
        index: dict[str, list[dict]] = defaultdict(list)
        for policy in self.objects("PeerAuthentication"):
            index[(policy.get("metadata") or {}).get("namespace") or ""].append(policy)
        return index

    def peer_authentication_mode(self, namespace: str, labels: dict[str, str]) -> tuple[str, dict | None]:
        """Effective PeerAuthentication mode for a workload, and the policy that decided it.

        Workload selector policy, else namespace policy (no selector), else the mesh-wide policy in the
        root namespace. ``UNSET`` and ``INHERIT`` defer to the next level; with no policy the mode is
        PERMISSIVE (Istio's default).
        """
        in_namespace = self._peer_authentications_by_namespace.get(namespace, [])
        ordered: list[dict] = [
            p for p in in_namespace
            if selector_matches(((p.get("spec") or {}).get("selector") or {}).get("matchLabels"), labels)
        ]
        ordered += [p for p in in_namespace if not (p.get("spec") or {}).get("selector")]
        ordered += [
            p for p in self._peer_authentications_by_namespace.get(ROOT_NAMESPACE, [])
            if not (p.get("spec") or {}).get("selector")
        ]
        for policy in ordered:
            mode = (((policy.get("spec") or {}).get("mtls") or {}).get("mode") or "UNSET").upper()
            if mode not in ("UNSET", "INHERIT"):
                return mode, policy
        return "PERMISSIVE", None

    # --- iteration helpers --------------------------------------------------------------------------

    def mesh_workloads(self) -> Iterator[tuple[Workload, bool | None]]:
        """(workload, meshed) of each application workload that is, will be, or may be in the mesh.

        ``meshed`` is None when the evidence cannot tell (manifests without their Namespace). Istio's own
        workloads and those known to be outside the mesh (never-injected namespaces included) are left out.
        """
        return iter(self._mesh_workloads)

    @cached_property
    def _mesh_workloads(self) -> list[tuple[Workload, bool | None]]:
        found = []
        for workload in workloads(self.objects, self.pods):
            if workload.namespace in NEVER_INJECTED_NAMESPACES or made_by_istio(workload):
                continue
            meshed = in_mesh(workload, self.namespace_labels(workload.namespace), live=self.live)
            if meshed is not False:
                found.append((workload, meshed))
        return found

    def meshed_pods(self) -> Iterable[tuple[str, dict, ProxyEvidence | None]]:
        """(key, pod, proxy evidence or None) for every pod with an istio-proxy container."""
        for pod in self.pods:
            if sidecar_container(pod) is not None:
                key = key_of(pod)
                yield key, pod, self.proxy(key)
