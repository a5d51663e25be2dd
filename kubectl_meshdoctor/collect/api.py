"""Read-only API evidence: one paginated list per resource kind per namespace, kept as raw dicts.

Objects are read as the JSON the API server sends (``_preload_content=False``), not through the
client's models: the models reject odd but real data (an Endpoints address without ``ip``), and the
checks read dicts anyway. Items of a list carry no ``kind``/``apiVersion`` on the wire, so they are
stamped from the list here; the checks index objects by kind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from kubernetes.client.rest import ApiException

from kubectl_meshdoctor.collect.kube import Kube, api_call
from kubectl_meshdoctor.errors import ClusterError

PAGE_LIMIT = 500  # items per list request; lists continue with the server's `continue` token
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"

ISTIO_NETWORKING = "networking.istio.io"
ISTIO_SECURITY = "security.istio.io"
ISTIO_NAMESPACE = "istio-system"
DNS_NAMESPACE = "kube-system"
DNS_SELECTOR = "k8s-app=kube-dns"
ISTIOD_SELECTOR = "app=istiod"
# Preferred first: v1 since Istio 1.22; older control planes serve only the beta/alpha versions.
ISTIO_VERSIONS = ("v1", "v1beta1", "v1alpha3")


@dataclass(frozen=True)
class Listing:
    """How to list one resource kind: its RBAC name and where its API group lives."""

    resource: str  # as RBAC names it: pods, endpointslices.discovery.k8s.io
    prefix: str  # /api/v1, /apis/discovery.k8s.io/v1
    plural: str
    namespaced: bool = True


class ApiReader:
    """Lists and gets against one cluster, answering plain dicts and raising our errors only."""

    def __init__(self, kube: Kube):
        self.kube = kube
        self._served: dict[str, set[str]] | None = None  # group -> versions, from one GET /apis
        self.listings = {
            "Pod": Listing("pods", "/api/v1", "pods"),
            "Service": Listing("services", "/api/v1", "services"),
            "Endpoints": Listing("endpoints", "/api/v1", "endpoints"),
            "EndpointSlice": Listing("endpointslices.discovery.k8s.io", "/apis/discovery.k8s.io/v1", "endpointslices"),
            # Why a pod has no sidecar (MD0103) and whether istiod is redundant (MD0206).
            "Event": Listing("events", "/api/v1", "events"),
            "MutatingWebhookConfiguration": Listing(
                "mutatingwebhookconfigurations.admissionregistration.k8s.io", "/apis/admissionregistration.k8s.io/v1",
                "mutatingwebhookconfigurations", namespaced=False),
            "Deployment": Listing("deployments.apps", "/apis/apps/v1", "deployments"),
            "PodDisruptionBudget": Listing("poddisruptionbudgets.policy", "/apis/policy/v1", "poddisruptionbudgets"),
            "HorizontalPodAutoscaler": Listing("horizontalpodautoscalers.autoscaling", "/apis/autoscaling/v2",
                                               "horizontalpodautoscalers"),
        }

    # --- core resources -------------------------------------------------------------------------------

    def list(self, kind: str, namespace: str | None, *, label_selector: str | None = None,
             field_selector: str | None = None) -> list[dict]:
        """Every object of ``kind`` in ``namespace`` (None: all namespaces, or cluster-scoped), page by page."""
        listing = self.listings[kind]
        with api_call(self.kube, "list", listing.resource, namespace,
                      all_namespaces=namespace is None and listing.namespaced):
            return self._paginate(_collection(listing.prefix, namespace, listing.plural), label_selector,
                                  field_selector)

    def list_namespaces(self) -> list[dict]:
        with api_call(self.kube, "list", "namespaces"):
            return self._paginate("/api/v1/namespaces", None)

    def get_namespace(self, name: str) -> dict | None:
        """The Namespace, or None when it does not exist."""
        return self._get_or_none("namespaces", None, f"/api/v1/namespaces/{_q(name)}", "v1", "Namespace")

    def get_pod(self, namespace: str, name: str) -> dict | None:
        return self._get_or_none("pods", namespace, f"{_collection('/api/v1', namespace, 'pods')}/{_q(name)}",
                                 "v1", "Pod")

    def get_service(self, namespace: str, name: str) -> dict | None:
        return self._get_or_none("services", namespace,
                                 f"{_collection('/api/v1', namespace, 'services')}/{_q(name)}", "v1", "Service")

    def get_endpoints(self, namespace: str, name: str) -> dict | None:
        return self._get_or_none("endpoints", namespace,
                                 f"{_collection('/api/v1', namespace, 'endpoints')}/{_q(name)}", "v1", "Endpoints")

    def get_config_map(self, namespace: str, name: str) -> dict | None:
        return self._get_or_none("configmaps", namespace,
                                 f"{_collection('/api/v1', namespace, 'configmaps')}/{_q(name)}", "v1", "ConfigMap")

    def get_metadata(self, resource: str, namespace: str, name: str) -> dict | None:
        """Only the metadata of one object (``Accept: ...;as=PartialObjectMetadata``: the server sends no
        data), or None when it does not exist. How a Secret's presence is read without its data."""
        with api_call(self.kube, "get", resource, namespace):
            try:
                return _json(self.kube.get(f"{_collection('/api/v1', namespace, resource)}/{_q(name)}",
                                           accept=METADATA_ONLY), "get")
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise

    # --- Istio resources ------------------------------------------------------------------------------

    def served_version(self, group: str) -> str | None:
        """The best Istio API version the cluster serves for ``group``, or None when the group is absent."""
        if self._served is None:  # one discovery request answers every group
            with api_call(self.kube, "get", "API discovery (/apis)"):
                response = self.kube.get("/apis/")
            self._served = {
                str(g.get("name")): {v.get("version") for v in g.get("versions") or []}
                for g in _json(response, "API group list").get("groups") or []
            }
        served = self._served.get(group, set())
        return next((v for v in ISTIO_VERSIONS if v in served), None)

    def list_istio(self, group: str, version: str, plural: str, kind: str, namespace: str | None) -> list[dict]:
        """Istio objects of one kind in ``namespace`` (None: all namespaces)."""
        with api_call(self.kube, "list", f"{plural}.{group}", namespace, all_namespaces=namespace is None):
            items = self._paginate(_collection(f"/apis/{_q(group)}/{_q(version)}", namespace, _q(plural)), None)
        for item in items:  # a custom list's items usually carry these already; make sure
            item.setdefault("kind", kind)
            item.setdefault("apiVersion", f"{group}/{version}")
        return items

    # --- plumbing -------------------------------------------------------------------------------------

    def _paginate(self, path: str, label_selector: str | None, field_selector: str | None = None) -> list[dict]:
        items: list[dict] = []
        token: str | None = None
        while True:
            query: list[tuple[str, object]] = []
            if label_selector:
                query.append(("labelSelector", label_selector))
            if field_selector:
                query.append(("fieldSelector", field_selector))
            query.append(("limit", PAGE_LIMIT))
            if token:
                query.append(("continue", token))
            page = _json(self.kube.get(path, query), "list")
            kind = str(page.get("kind") or "")
            item_kind = kind[:-4] if kind.endswith("List") else kind
            api_version = page.get("apiVersion")
            for item in page.get("items") or []:
                if isinstance(item, dict):
                    if item_kind:
                        item.setdefault("kind", item_kind)
                    if api_version:
                        item.setdefault("apiVersion", api_version)
                    items.append(item)
            token = (page.get("metadata") or {}).get("continue") or None
            if not token:
                return items

    def _get_or_none(self, resource: str, namespace: str | None, path: str,
                     api_version: str, kind: str) -> dict | None:
        with api_call(self.kube, "get", resource, namespace):
            try:
                obj = _json(self.kube.get(path), "get")
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise
        obj.setdefault("kind", kind)
        obj.setdefault("apiVersion", api_version)
        return obj


def _q(segment: str) -> str:
    return quote(segment, safe="")


def _collection(prefix: str, namespace: str | None, plural: str) -> str:
    """The path listing ``plural`` in ``namespace``, or in all namespaces when it is None."""
    return f"{prefix}/namespaces/{_q(namespace)}/{plural}" if namespace is not None else f"{prefix}/{plural}"


def _json(response: Any, what: str) -> dict:
    """The JSON body of a raw response; a body that is not a JSON object is the server's fault."""
    try:
        data = json.loads(response.data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ClusterError(f"the API server sent a {what} response that is not JSON ({exc})") from None
    finally:
        release = getattr(response, "release_conn", None)
        if release is not None:
            release()
    if not isinstance(data, dict):
        raise ClusterError(f"the API server sent a {what} response that is not a JSON object")
    return data
