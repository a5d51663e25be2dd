"""MD0101 SidecarMissing: a pod that injection should have meshed runs without istio-proxy.

Anti-pattern: enabling injection on a namespace (or labelling a pod ``sidecar.istio.io/inject=true``)
and assuming the pods already running there are now in the mesh.

Best practice: after enabling injection, restart the workloads (``kubectl rollout restart``) and check
that every pod has an ``istio-proxy`` container (or, on Kubernetes 1.33+, a native-sidecar init
container with ``restartPolicy: Always``).

Why: injection happens only when a pod is created, through the injector webhook. A pod started before
the label was set, or created while the webhook was down or failing open, keeps running without a
sidecar: it bypasses mTLS and routing, and STRICT servers reset its connections.

When injection is expected, following the injector's selectors: the namespace has
``istio-injection=enabled`` or an ``istio.io/rev`` label, or the pod has ``sidecar.istio.io/inject=true``
or an ``istio.io/rev`` label (unless its namespace says ``istio-injection=disabled``). Never for a pod
whose label or annotation ``sidecar.istio.io/inject`` is ``false``, a ``hostNetwork`` pod, a pod in
kube-system or kube-public, or a finished pod (phase Succeeded/Failed, e.g. a completed Job).

Control-plane pods are not user workloads, as for ``istioctl analyze`` (IST0103): a pod labelled
``istio`` (istiod's ``istio: pilot``, a gateway's ``istio: ingressgateway``) or ``release: istio`` is
never reported, and in the control-plane namespace a pod's own ``istio.io/rev`` label names the
revision it belongs to (``istiod-canary-...`` carries ``istio.io/rev: canary``), not a request to be
injected.

Without the Namespace objects in the evidence (the user may not list namespaces, or a manifest set
has none), the namespace's labels are unknown: only the pod's own labels can then show that injection
was expected. The check then stays silent about namespace-level injection rather than guess.
"""

from __future__ import annotations

from typing import Iterable

from kubectl_meshdoctor.checks.base import Check, created, finding
from kubectl_meshdoctor.checks.context import (
    NEVER_INJECTED_NAMESPACES, ROOT_NAMESPACE, AnalysisContext, is_istio_control_plane, key_of, labels_of,
    sidecar_container,
)
from kubectl_meshdoctor.evidence import Evidence
from kubectl_meshdoctor.findings import Finding, Subject

INJECT_LABEL = "sidecar.istio.io/inject"
NAMESPACE_INJECTION_LABEL = "istio-injection"
REVISION_LABEL = "istio.io/rev"
FINISHED_PHASES = frozenset({"Succeeded", "Failed"})


def injection_reason(namespace: str, namespace_labels: dict[str, str] | None, pod: dict) -> str | None:
    """Why the injector should have injected this pod, or None when it should not have."""
    meta = pod.get("metadata") or {}
    pod_labels = labels_of(pod)
    annotations = meta.get("annotations") or {}
    # The label takes precedence over the (deprecated) annotation, as in the injector.
    opt = pod_labels.get(INJECT_LABEL, annotations.get(INJECT_LABEL))
    if str(opt).lower() == "false":
        return None
    ns_labels = namespace_labels or {}
    if ns_labels.get(NAMESPACE_INJECTION_LABEL) == "enabled":
        return f"namespace {namespace}: {NAMESPACE_INJECTION_LABEL}=enabled"
    if ns_labels.get(NAMESPACE_INJECTION_LABEL) == "disabled":
        return None
    if ns_labels.get(REVISION_LABEL):
        return f"namespace {namespace}: {REVISION_LABEL}={ns_labels[REVISION_LABEL]}"
    if str(pod_labels.get(INJECT_LABEL)).lower() == "true":
        return f"pod label {INJECT_LABEL}=true"
    if pod_labels.get(REVISION_LABEL) and namespace != ROOT_NAMESPACE:
        return f"pod label {REVISION_LABEL}={pod_labels[REVISION_LABEL]}"
    return None


def missing_sidecar_reason(pod: dict, namespace_labels: dict[str, str] | None) -> str | None:
    """Why this pod should have a sidecar it lacks (MD0101), or None when it is fine without one."""
    namespace = (pod.get("metadata") or {}).get("namespace") or ""
    if (
        namespace in NEVER_INJECTED_NAMESPACES
        or (pod.get("spec") or {}).get("hostNetwork") is True
        or (pod.get("status") or {}).get("phase") in FINISHED_PHASES
        or sidecar_container(pod) is not None
        or is_istio_control_plane(pod)
    ):
        return None
    return injection_reason(namespace, namespace_labels, pod)


class SidecarMissing(Check):
    name = "SidecarMissing"
    codes = ("MD0101",)
    needs = frozenset({Evidence.PODS})

    def run(self, ctx: AnalysisContext) -> Iterable[Finding]:
        for pod in ctx.pods:
            meta = pod.get("metadata") or {}
            namespace = meta.get("namespace") or ""
            spec = pod.get("spec") or {}
            reason = missing_sidecar_reason(pod, ctx.namespace_labels(namespace))
            if reason is None:
                continue
            containers = [c.get("name") or "?" for c in spec.get("containers") or []]
            key = key_of(pod)
            yield finding(
                "MD0101",
                Subject("Pod", meta.get("name") or "", namespace),
                f"Pod {key} should be in the mesh ({reason}) but has no istio-proxy sidecar",
                [reason, f"containers: {', '.join(containers) or '(none)'} (no istio-proxy)"],
                pod=key,
                since=[created(pod, "created without istio-proxy", key)],
            )


CHECK = SidecarMissing()
