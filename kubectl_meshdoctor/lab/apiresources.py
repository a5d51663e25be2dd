"""The resource types the lab's API server serves, and their discovery documents.

kubectl resolves `pods`, `vs` or `virtualservices.networking.istio.io` through discovery before it
sends a single request, and the Python client's CustomObjectsApi addresses Istio objects by group,
version and plural; so the table below must match the real API's names, kinds, scopes and versions.
"""

from __future__ import annotations

from dataclasses import dataclass

ISTIO_GROUPS = ("networking.istio.io", "security.istio.io")


@dataclass(frozen=True)
class ResourceType:
    group: str  # "" for the core group
    versions: tuple[str, ...]  # first is the preferred version
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def qualified_name(self) -> str:
        """`pods` for the core group, `virtualservices.networking.istio.io` otherwise."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version


_ISTIO_NETWORKING = ("v1", "v1beta1", "v1alpha3")
_ISTIO_SECURITY = ("v1", "v1beta1")

RESOURCE_TYPES: tuple[ResourceType, ...] = (
    ResourceType("", ("v1",), "pods", "Pod", short_names=("po",), categories=("all",),
                 subresources=("exec", "log", "status")),
    ResourceType("", ("v1",), "services", "Service", short_names=("svc",), categories=("all",),
                 subresources=("status",)),
    ResourceType("", ("v1",), "endpoints", "Endpoints", short_names=("ep",)),
    ResourceType("", ("v1",), "namespaces", "Namespace", namespaced=False, short_names=("ns",),
                 subresources=("status",)),
    ResourceType("", ("v1",), "nodes", "Node", namespaced=False, short_names=("no",), subresources=("status",)),
    ResourceType("", ("v1",), "secrets", "Secret"),
    ResourceType("", ("v1",), "configmaps", "ConfigMap", short_names=("cm",)),
    ResourceType("", ("v1",), "serviceaccounts", "ServiceAccount", short_names=("sa",)),
    ResourceType("", ("v1",), "events", "Event", short_names=("ev",)),
    ResourceType("apps", ("v1",), "deployments", "Deployment", short_names=("deploy",), categories=("all",),
                 subresources=("status",)),
    ResourceType("apps", ("v1",), "replicasets", "ReplicaSet", short_names=("rs",), categories=("all",),
                 subresources=("status",)),
    ResourceType("apps", ("v1",), "statefulsets", "StatefulSet", short_names=("sts",), categories=("all",),
                 subresources=("status",)),
    ResourceType("apps", ("v1",), "daemonsets", "DaemonSet", short_names=("ds",), categories=("all",),
                 subresources=("status",)),
    ResourceType("discovery.k8s.io", ("v1",), "endpointslices", "EndpointSlice"),
    ResourceType("policy", ("v1",), "poddisruptionbudgets", "PodDisruptionBudget", short_names=("pdb",),
                 subresources=("status",)),
    ResourceType("autoscaling", ("v2",), "horizontalpodautoscalers", "HorizontalPodAutoscaler",
                 short_names=("hpa",), categories=("all",), subresources=("status",)),
    ResourceType("admissionregistration.k8s.io", ("v1",), "mutatingwebhookconfigurations",
                 "MutatingWebhookConfiguration", namespaced=False),
    ResourceType("networking.istio.io", _ISTIO_NETWORKING, "virtualservices", "VirtualService",
                 short_names=("vs",), categories=("istio-io", "networking-istio-io")),
    ResourceType("networking.istio.io", _ISTIO_NETWORKING, "destinationrules", "DestinationRule",
                 short_names=("dr",), categories=("istio-io", "networking-istio-io")),
    ResourceType("networking.istio.io", _ISTIO_NETWORKING, "gateways", "Gateway",
                 short_names=("gw",), categories=("istio-io", "networking-istio-io")),
    ResourceType("networking.istio.io", _ISTIO_NETWORKING, "serviceentries", "ServiceEntry",
                 short_names=("se",), categories=("istio-io", "networking-istio-io")),
    ResourceType("networking.istio.io", _ISTIO_NETWORKING, "sidecars", "Sidecar",
                 categories=("istio-io", "networking-istio-io")),
    ResourceType("networking.istio.io", _ISTIO_NETWORKING, "workloadentries", "WorkloadEntry",
                 short_names=("we",), categories=("istio-io", "networking-istio-io")),
    # EnvoyFilter has only ever been served as v1alpha3.
    ResourceType("networking.istio.io", ("v1alpha3",), "envoyfilters", "EnvoyFilter",
                 categories=("istio-io", "networking-istio-io")),
    ResourceType("security.istio.io", _ISTIO_SECURITY, "authorizationpolicies", "AuthorizationPolicy",
                 short_names=("ap",), categories=("istio-io", "security-istio-io")),
    ResourceType("security.istio.io", _ISTIO_SECURITY, "peerauthentications", "PeerAuthentication",
                 short_names=("pa",), categories=("istio-io", "security-istio-io")),
    ResourceType("security.istio.io", _ISTIO_SECURITY, "requestauthentications", "RequestAuthentication",
                 short_names=("ra",), categories=("istio-io", "security-istio-io")),
)

# What the lab actually serves: read-only verbs. Advertising only these keeps discovery honest.
READ_VERBS = ["get", "list", "watch"]

_SUBRESOURCE_DISCOVERY = {
    "exec": {"kind": "PodExecOptions", "verbs": ["create", "get"]},
    "log": {"kind": "Pod", "verbs": ["get"]},
}


def served_types(istio_installed: bool) -> tuple[ResourceType, ...]:
    return tuple(t for t in RESOURCE_TYPES if istio_installed or t.group not in ISTIO_GROUPS)


def groups_and_versions(types: tuple[ResourceType, ...]) -> dict[str, list[str]]:
    """Named groups (not the core group) and their versions, preferred first, in table order."""
    groups: dict[str, list[str]] = {}
    preferred_of: dict[str, str] = {}
    for resource in types:
        if not resource.group:
            continue
        versions = groups.setdefault(resource.group, [])
        preferred_of.setdefault(resource.group, resource.versions[0])
        for version in resource.versions:
            if version not in versions:
                versions.append(version)
    for group, versions in groups.items():
        versions.sort(key=lambda v: v != preferred_of[group])
    return groups


def api_group_list(types: tuple[ResourceType, ...]) -> dict:
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            {
                "name": group,
                "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
                "preferredVersion": {"groupVersion": f"{group}/{versions[0]}", "version": versions[0]},
            }
            for group, versions in groups_and_versions(types).items()
        ],
    }


def api_group(types: tuple[ResourceType, ...], group: str) -> dict | None:
    for entry in api_group_list(types)["groups"]:
        if entry["name"] == group:
            return {"kind": "APIGroup", "apiVersion": "v1", **entry}
    return None


def api_resource_list(types: tuple[ResourceType, ...], group: str, version: str) -> dict | None:
    resources = [t for t in types if t.group == group and version in t.versions]
    if not resources:
        return None
    listed: list[dict] = []
    for resource in resources:
        entry = {
            "name": resource.plural,
            "singularName": resource.singular,
            "namespaced": resource.namespaced,
            "kind": resource.kind,
            "verbs": list(READ_VERBS),
        }
        if resource.short_names:
            entry["shortNames"] = list(resource.short_names)
        if resource.categories:
            entry["categories"] = list(resource.categories)
        listed.append(entry)
        for sub in resource.subresources:
            detail = _SUBRESOURCE_DISCOVERY.get(sub, {"kind": resource.kind, "verbs": ["get"]})
            listed.append({"name": f"{resource.plural}/{sub}", "singularName": "",
                           "namespaced": resource.namespaced, **detail})
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": resource.api_version(version) if group else version,
        "resources": listed,
    }
