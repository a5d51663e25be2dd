"""Workloads as the on-call engineer names them, and the facts about them several checks share.

A finding about how a workload is written (UID 1337, Services that disagree on a port's protocol) is
about the Deployment, not about each of its pods: live, pods are grouped under the controller that owns
them (a ReplicaSet's Deployment by Kubernetes' naming rule, ``<deployment>-<pod-template-hash>``); in
manifests, each Deployment (or other controller) stands for its pod template, and a Pod without owner
stands for itself, as istioctl analyze reports them.

Also here: Kubernetes label selectors (``matchLabels`` / ``matchExpressions``), which webhooks, PDBs and
Deployments use, and istioctl's "is this workload in the mesh" rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kubectl_meshdoctor.findings import Subject
from kubectl_meshdoctor.pods import pod_key, sidecar_container

# Controllers whose pod template stands for their pods.
CONTROLLER_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "ReplicationController")
INJECT_KEY = "sidecar.istio.io/inject"
INJECTION_LABEL = "istio-injection"
REVISION_LABEL = "istio.io/rev"


def dig(value: object, *keys: str) -> dict:
    """The mapping at ``value[k1][k2]...``, or ``{}`` where a level is missing or not a mapping.

    Objects come from the API or from a saved (maybe hand-edited) bundle: a wrong type somewhere must
    mean "not there", never an exception.
    """
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, dict) else {}


def listed(value: object) -> list:
    """``value`` when it is a list, else an empty one (same reason as ``dig``)."""
    return value if isinstance(value, list) else []


def _labels(meta: object) -> dict[str, str]:
    return {str(k): str(v) for k, v in dig(meta, "labels").items()}


def selector_selects(selector: dict | None, labels: dict[str, str]) -> bool:
    """A metav1.LabelSelector against labels: None selects everything, ``{}`` too (Kubernetes' rule)."""
    if selector is None:
        return True
    if not isinstance(selector, dict):
        return False  # not a selector: selects nothing, as the API server would refuse it
    labels = {str(k): str(v) for k, v in labels.items()}
    for key, value in dig(selector, "matchLabels").items():
        if labels.get(str(key)) != str(value):
            return False
    for expression in listed(selector.get("matchExpressions")):
        expression = dig(expression)
        key = str(expression.get("key") or "")
        operator = str(expression.get("operator") or "")
        values = {str(v) for v in listed(expression.get("values"))}
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False  # an invalid selector selects nothing, as the API server would refuse it
    return True


@dataclass
class Workload:
    """A pod template and the pods made from it (live), or the template alone (manifests)."""

    subject: Subject
    template_meta: dict
    spec: dict
    pods: list[str] = field(default_factory=list)  # keys of the live pods
    has_sidecar: bool = False  # any of its pods (or its template) has istio-proxy
    object_labels: dict[str, str] = field(default_factory=dict)  # the controller's (or Pod's) own labels

    @property
    def namespace(self) -> str:
        return self.subject.namespace or ""

    @property
    def labels(self) -> dict[str, str]:
        return _labels(self.template_meta)

    @property
    def annotations(self) -> dict[str, str]:
        return dict(dig(self.template_meta, "annotations"))

    def describe(self) -> str:
        return f"{self.subject.kind} {self.namespace}/{self.subject.name}"


def owner_subject(pod: dict) -> Subject:
    """The workload a pod belongs to: its controller (a ReplicaSet's Deployment), else the pod itself."""
    meta = dig(pod, "metadata")
    namespace = str(meta.get("namespace") or "")
    owners = [o for o in listed(meta.get("ownerReferences")) if isinstance(o, dict)]
    owner = next((o for o in owners if o.get("controller")), owners[0] if owners else None)
    if not owner or not owner.get("name"):
        return Subject("Pod", str(meta.get("name") or ""), namespace)
    kind, name = str(owner.get("kind") or ""), str(owner["name"])
    template_hash = _labels(meta).get("pod-template-hash")
    if kind == "ReplicaSet" and template_hash and name.endswith(f"-{template_hash}"):
        return Subject("Deployment", name[: -len(template_hash) - 1], namespace)
    return Subject(kind, name, namespace)


def workloads(objects_by_kind, pods: list[dict]) -> list[Workload]:
    """Controllers from the evidence (their templates) and the live pods grouped under their owners.

    ``objects_by_kind`` is a callable kind -> objects (``AnalysisContext.objects``).
    """
    found: dict[Subject, Workload] = {}
    for kind in CONTROLLER_KINDS:
        for obj in objects_by_kind(kind):
            meta = dig(obj, "metadata")
            spec = dig(obj, "spec", "jobTemplate", "spec") if kind == "CronJob" else dig(obj, "spec")
            template = dig(spec, "template")
            subject = Subject(kind, str(meta.get("name") or ""), str(meta.get("namespace") or ""))
            found[subject] = Workload(subject, dig(template, "metadata"), dig(template, "spec"),
                                      has_sidecar=sidecar_container(template) is not None,
                                      object_labels=_labels(meta))
    for pod in pods:
        subject = owner_subject(pod)
        workload = found.get(subject)
        if workload is None:
            workload = found[subject] = Workload(subject, dig(pod, "metadata"), dig(pod, "spec"),
                                                 object_labels=_labels(pod.get("metadata")))
        workload.pods.append(pod_key(pod))
        workload.has_sidecar = workload.has_sidecar or sidecar_container(pod) is not None
    return sorted(found.values(), key=lambda w: (w.namespace, w.subject.kind, w.subject.name))


def in_mesh(workload: Workload, namespace_labels: dict[str, str] | None, *, live: bool) -> bool | None:
    """Whether the workload's pods are (or will be) injected; None when the evidence cannot tell.

    ``live``: the pods came from a cluster, so one without istio-proxy was not injected; in manifests
    injection has not happened yet and the labels say what it will do.

    istioctl's rule (analyzers/util/in_mesh.go), read not copied: an istio-proxy container says yes; else
    the pod's ``sidecar.istio.io/inject`` label, else that annotation, decides; else the namespace's
    labels (``istio-injection=enabled``, or an ``istio.io/rev`` revision, which istioctl ignores).
    """
    if workload.has_sidecar:
        return True
    for source in (workload.labels, workload.annotations):
        if INJECT_KEY in source:
            return str(source[INJECT_KEY]).lower() == "true"
    if live and workload.pods:
        return False  # running pods without a sidecar are not in the mesh, whatever the labels promise
    if namespace_labels is None:
        return None
    if namespace_labels.get(INJECTION_LABEL) is not None:
        return namespace_labels[INJECTION_LABEL] == "enabled"
    return bool(namespace_labels.get(REVISION_LABEL))


def made_by_istio(workload: Workload) -> bool:
    """istiod, gateways and the operator carry ``istio=...`` or ``release=istio``: not an application."""
    labels = {**workload.labels, **workload.object_labels}
    return "istio" in labels or labels.get("release") == "istio"
