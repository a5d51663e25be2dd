"""MD0206 ControlPlaneNotRedundant: the istiod revision serving these pods can go away all at once.

Anti-pattern: the default install left as it is: one istiod replica, an autoscaler allowed down to one,
and (with one replica) a PodDisruptionBudget that either blocks node drains or is deleted to unblock
them.

Best practice: at least two istiod replicas at all times (``autoscaleMin: 2`` or ``replicaCount: 2``)
and a PodDisruptionBudget selecting them, so upgrades and node drains always leave one running.

Why: every sidecar of a revision gets its configuration and certificates from that revision's istiod.
While none runs, new pods never become ready and running ones stop receiving updates; the operations
book measured about 5% failed calls during a control-plane upgrade without HA.

Decisions: looked at only for the revisions the meshed pods in scope use (``istio.io/rev``, else the
revision the injector recorded, else "default"), through the Deployment named as istiod's Service is
(``istiod``, ``istiod-<rev>``) in istio-system. An HPA targeting it decides the floor (its
``minReplicas``, 1 when unset, as in Kubernetes); without one, ``spec.replicas`` (1 when unset). A
Deployment meant to be redundant that has one ready replica now (``status.readyReplicas``; none at
all is MD0203's istiod unavailable) is reported too. A PDB counts when its selector selects the Deployment's pod template. Reported once per revision, without a
pod, listing the revision's pods in ``affects``. A revision whose Deployment is not in the evidence is
not judged (istiod may run elsewhere, e.g. an external control plane).
"""

from __future__ import annotations

from typing import Iterable

from kubectl_meshdoctor.checks.base import Check, finding
from kubectl_meshdoctor.checks.context import AnalysisContext
from kubectl_meshdoctor.evidence import Evidence
from kubectl_meshdoctor.findings import Finding, Subject
from kubectl_meshdoctor.pods import istiod_service_names, pod_revision
from kubectl_meshdoctor.workloads import dig, selector_selects

CONTROL_PLANE_NAMESPACE = "istio-system"


def _count(value: object, default: int = 1) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


class ControlPlaneNotRedundant(Check):
    name = "ControlPlaneNotRedundant"
    codes = ("MD0206",)
    needs = frozenset({Evidence.CONTROL_PLANE_REDUNDANCY, Evidence.PODS})

    def run(self, ctx: AnalysisContext) -> Iterable[Finding]:
        pods_by_revision: dict[str, list[str]] = {}
        for key, pod, _ in ctx.meshed_pods():
            pods_by_revision.setdefault(pod_revision(pod), []).append(key)
        deployments = {str(dig(d, "metadata").get("name")): d for d in ctx.objects("Deployment")
                       if dig(d, "metadata").get("namespace") == CONTROL_PLANE_NAMESPACE}
        for revision, pods in sorted(pods_by_revision.items()):
            deployment = next((deployments[n] for n in istiod_service_names(revision) if n in deployments), None)
            if deployment is None:
                continue
            problems = self._problems(ctx, deployment)
            if not problems:
                continue
            name = str(dig(deployment, "metadata").get("name"))
            yield finding(
                "MD0206", Subject("Deployment", name, CONTROL_PLANE_NAMESPACE),
                f"istiod revision {revision!r} ({CONTROL_PLANE_NAMESPACE}/{name}) is not redundant: "
                f"{'; '.join(problems)}; an upgrade or node drain cuts its {len(pods)} sidecar(s) off",
                problems + [f"{len(pods)} meshed pod(s) in scope use revision {revision!r}"],
                affects=sorted(pods),
            )

    @staticmethod
    def _problems(ctx: AnalysisContext, deployment: dict) -> list[str]:
        name = dig(deployment, "metadata").get("name")
        template_labels = {str(k): str(v) for k, v in dig(deployment, "spec", "template", "metadata", "labels").items()}
        problems = []
        autoscalers = [h for h in ctx.objects("HorizontalPodAutoscaler")
                       if dig(h, "metadata").get("namespace") == CONTROL_PLANE_NAMESPACE
                       and dig(h, "spec", "scaleTargetRef").get("kind") == "Deployment"
                       and dig(h, "spec", "scaleTargetRef").get("name") == name]
        if autoscalers:
            floor = min(_count(dig(h, "spec").get("minReplicas")) for h in autoscalers)
            if floor < 2:
                hpa = dig(autoscalers[0], "metadata").get("name")
                problems.append(f"HorizontalPodAutoscaler {hpa} may scale it to {floor} replica (minReplicas {floor})")
        else:
            replicas = _count(dig(deployment, "spec").get("replicas"))
            if replicas < 2:
                problems.append(f"Deployment runs {replicas} replica and no HorizontalPodAutoscaler targets it")
        # One ready replica left is this finding; none at all is istiod being unavailable (MD0203).
        if dig(deployment, "status").get("readyReplicas") == 1 and not problems:
            problems.append("only 1 replica ready now (status.readyReplicas)")
        budgets = [p for p in ctx.objects("PodDisruptionBudget")
                   if dig(p, "metadata").get("namespace") == CONTROL_PLANE_NAMESPACE
                   and dig(p, "spec").get("selector") is not None
                   and selector_selects(dig(p, "spec").get("selector"), template_labels)]
        if not budgets:
            problems.append("no PodDisruptionBudget selects its pods")
        return problems


CHECK = ControlPlaneNotRedundant()
