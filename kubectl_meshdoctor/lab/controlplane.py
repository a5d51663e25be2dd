"""What an istiod revision installs besides its pods and Service: its Deployment, the objects that keep
it available (PodDisruptionBudget, HorizontalPodAutoscaler) and its sidecar injector webhook.

Shaped like the istio-discovery chart's output: the Deployment ``istiod[-<rev>]`` labelled
``app=istiod, istio.io/rev=<rev>``; a PDB and an HPA of the same name; the MutatingWebhookConfiguration
``istio-sidecar-injector[-<rev>]`` whose webhooks select namespaces by ``istio.io/rev`` (and, for the
default revision, ``istio-injection=enabled``) and pods by ``sidecar.istio.io/inject`` / ``istio.io/rev``.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_REVISION = "default"
ISTIO_NAMESPACE = "istio-system"
PILOT_IMAGE = "docker.io/istio/pilot:1.24.2"


@dataclass(frozen=True)
class Redundancy:
    """How a revision's istiod is kept available; the default is what a production install should have."""

    replicas: int = 2
    pdb: bool = True
    hpa_min: int | None = 2  # None: no HorizontalPodAutoscaler

    @classmethod
    def from_cluster(cls, cluster: dict) -> "Redundancy":
        """From a scenario's ``cluster`` block: istiodReplicas, istiodPdb, istiodHpaMin (null: no HPA)."""
        return cls(replicas=int(cluster.get("istiodReplicas", 2)), pdb=bool(cluster.get("istiodPdb", True)),
                   hpa_min=cluster.get("istiodHpaMin", 2))

    @staticmethod
    def declared_in(cluster: dict) -> bool:
        return any(key in cluster for key in ("istiodReplicas", "istiodPdb", "istiodHpaMin"))


def istiod_objects(name: str, revision: str, selector: dict, ready_pods: int, redundancy: Redundancy,
                   meta) -> list[dict]:
    """The Deployment (with a status matching its pods), and its PDB and HPA when the revision has them."""
    template_labels = {**selector, "istio": "pilot", "sidecar.istio.io/inject": "false"}
    labels = {"app": "istiod", "istio.io/rev": revision, "istio": "pilot", "release": "istio"}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(name, ISTIO_NAMESPACE, labels),
        "spec": {"replicas": redundancy.replicas, "selector": {"matchLabels": selector},
                 "template": {"metadata": {"labels": template_labels},
                              "spec": {"serviceAccountName": "istiod",
                                       "containers": [{"name": "discovery", "image": PILOT_IMAGE}]}}},
        "status": {"replicas": redundancy.replicas, "readyReplicas": ready_pods,
                   "availableReplicas": ready_pods, "updatedReplicas": redundancy.replicas},
    }
    objects = [deployment]
    if redundancy.pdb:
        objects.append({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                        "metadata": meta(name, ISTIO_NAMESPACE, labels),
                        "spec": {"minAvailable": 1, "selector": {"matchLabels": selector}}})
    if redundancy.hpa_min is not None:
        objects.append({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                        "metadata": meta(name, ISTIO_NAMESPACE, labels),
                        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                                 "minReplicas": redundancy.hpa_min, "maxReplicas": 5,
                                 "metrics": [{"type": "Resource", "resource": {
                                     "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]}})
    return objects


def _webhook(name: str, service: str, namespace_selector: list[dict], object_selector: list[dict]) -> dict:
    return {
        "name": name, "admissionReviewVersions": ["v1"], "failurePolicy": "Fail", "matchPolicy": "Equivalent",
        "reinvocationPolicy": "Never", "sideEffects": "None", "timeoutSeconds": 10,
        "clientConfig": {"service": {"name": service, "namespace": ISTIO_NAMESPACE, "path": "/inject", "port": 443}},
        "namespaceSelector": {"matchExpressions": namespace_selector},
        "objectSelector": {"matchExpressions": object_selector},
        "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"],
                   "scope": "*"}],
    }


def injector_webhook(revision: str, service: str, meta) -> dict:
    """The revision's MutatingWebhookConfiguration, webhooks as the chart names and selects them."""
    not_opted_out = {"key": "sidecar.istio.io/inject", "operator": "NotIn", "values": ["false"]}
    no_legacy = {"key": "istio-injection", "operator": "DoesNotExist"}
    webhooks = [
        _webhook("rev.namespace.sidecar-injector.istio.io", service,
                 [{"key": "istio.io/rev", "operator": "In", "values": [revision]}, no_legacy], [not_opted_out]),
        _webhook("rev.object.sidecar-injector.istio.io", service,
                 [{"key": "istio.io/rev", "operator": "DoesNotExist"}, no_legacy],
                 [not_opted_out, {"key": "istio.io/rev", "operator": "In", "values": [revision]}]),
    ]
    if revision == DEFAULT_REVISION:
        webhooks += [
            _webhook("namespace.sidecar-injector.istio.io", service,
                     [{"key": "istio-injection", "operator": "In", "values": ["enabled"]}], [not_opted_out]),
            _webhook("object.sidecar-injector.istio.io", service,
                     [no_legacy, {"key": "istio.io/rev", "operator": "DoesNotExist"}],
                     [{"key": "sidecar.istio.io/inject", "operator": "In", "values": ["true"]},
                      {"key": "istio.io/rev", "operator": "DoesNotExist"}]),
        ]
    name = "istio-sidecar-injector" if revision == DEFAULT_REVISION else f"istio-sidecar-injector-{revision}"
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": meta(name, None, {"app": "sidecar-injector", "istio.io/rev": revision, "release": "istio"}),
            "webhooks": webhooks}
