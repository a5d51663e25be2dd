"""MD0203 IstiodUnavailable: no istiod Service, or one with no ready endpoint.

Anti-pattern: chasing each "1/2 READY" pod separately when the control plane itself is gone.

Best practice: check istiod once, mesh-wide, the way a proxy reaches it: through the Service
``istiod`` (``istiod-<rev>`` for revisioned installs, ``istio-pilot`` before 1.5) in the control-plane
namespace, and its ready endpoints. Report it once, without a pod, so every pod's "no config from
istiod" links to it and a sweep groups them all under this one cause.

Why: a sidecar gets its configuration and certificate from istiod. Without a ready istiod, every new or
restarted sidecar stays PRE_INITIALIZING and never becomes ready.

Each finding lists in ``affects`` the meshed pods of its revision, so a broken canary control plane
explains only the canary pods' symptoms, not those of pods on a healthy revision.

Decisions: the revisions looked for are those the meshed pods carry (``istio.io/rev`` label or
annotation, or the revision in ``sidecar.istio.io/status``); pods without one need the default
``istiod`` (or legacy ``istio-pilot``). The control-plane namespaces are istio-system plus every
namespace holding a Service labelled app=istiod.
"""

from __future__ import annotations

from typing import Iterable

from kubectl_meshdoctor.checks.base import Check, condition_since, finding, last_exit
from kubectl_meshdoctor.checks.context import AnalysisContext, key_of, labels_of
from kubectl_meshdoctor.evidence import Evidence
from kubectl_meshdoctor.findings import Finding, Subject
from kubectl_meshdoctor.pods import DEFAULT_REVISION, istiod_service_names, pod_revision

CONTROL_PLANE_NAMESPACE = "istio-system"
MAX_PODS_SHOWN = 5


class IstiodUnavailable(Check):
    name = "IstiodUnavailable"
    codes = ("MD0203",)
    needs = frozenset({Evidence.CONTROL_PLANE, Evidence.SERVICES})

    def run(self, ctx: AnalysisContext) -> Iterable[Finding]:
        namespaces = [CONTROL_PLANE_NAMESPACE] + sorted({
            (s.get("metadata") or {}).get("namespace") or ""
            for s in ctx.objects("Service") if labels_of(s).get("app") == "istiod"
        } - {CONTROL_PLANE_NAMESPACE})
        pods_by_revision: dict[str, list[str]] = {}
        for key, pod, _ in ctx.meshed_pods():
            pods_by_revision.setdefault(pod_revision(pod), []).append(key)
        for revision in sorted(pods_by_revision) or [DEFAULT_REVISION]:
            affected = sorted(pods_by_revision.get(revision, ()))
            names = istiod_service_names(revision)
            service = next((s for ns in namespaces for n in names if (s := ctx.service(ns, n)) is not None), None)
            if service is None:
                looked = " or ".join(names)
                yield finding(
                    "MD0203", Subject("Service", names[0], CONTROL_PLANE_NAMESPACE),
                    f"istiod Service not found (looked for {looked} in {', '.join(namespaces)})",
                    [f"no Service {n} in namespace {ns}" for ns in namespaces for n in names]
                    + [f"meshed pods of revision {revision!r} cannot reach istiod"],
                    affects=affected,
                )
                continue
            if ctx.ready_endpoint_count(service) > 0:
                continue
            meta = service["metadata"]
            selector = (service.get("spec") or {}).get("selector")
            evidence = [f"Service {key_of(service)}: 0 ready endpoints"]
            evidence += self._istiod_pods(ctx, meta.get("namespace") or "", selector)
            yield finding(
                "MD0203", Subject("Service", meta["name"], meta.get("namespace")),
                f"istiod has no ready endpoints (Service {key_of(service)})", evidence, affects=affected,
                since=self._istiod_moments(ctx, meta.get("namespace") or "", selector),
            )

    @staticmethod
    def _selected(ctx: AnalysisContext, namespace: str, selector: dict | None) -> list[dict]:
        if not selector:
            return []
        return [p for p in ctx.pods_in(namespace) if all(labels_of(p).get(k) == v for k, v in selector.items())]

    @classmethod
    def _istiod_moments(cls, ctx: AnalysisContext, namespace: str, selector: dict | None) -> list:
        """When each istiod pod turned not ready, and when its containers last exited (restarts)."""
        moments = []
        for pod in cls._selected(ctx, namespace, selector)[:MAX_PODS_SHOWN]:
            name = (pod.get("metadata") or {}).get("name")
            moments.append(condition_since(pod, "Ready", "False", f"istiod pod {name} not ready"))
            for status in (pod.get("status") or {}).get("containerStatuses") or []:
                moments.append(last_exit(status, f"{status.get('name')} container of {name}"))
        return moments

    @classmethod
    def _istiod_pods(cls, ctx: AnalysisContext, namespace: str, selector: dict | None) -> list[str]:
        """What the istiod pods are doing, when the bundle holds them: why the endpoints are empty."""
        if not selector:
            return []
        pods = cls._selected(ctx, namespace, selector)
        if not pods and Evidence.PODS in ctx.available:
            return [f"no pod in {namespace} matches the Service selector {selector}"]
        lines = []
        for pod in pods[:MAX_PODS_SHOWN]:
            status = pod.get("status") or {}
            container_states = []
            for item in status.get("containerStatuses") or []:
                waiting = (item.get("state") or {}).get("waiting") or {}
                state = waiting.get("reason") or ("ready" if item.get("ready") else "not ready")
                container_states.append(f"{item.get('name')} {state}")
            detail = f" ({', '.join(container_states)})" if container_states else ""
            lines.append(f"pod {key_of(pod)}: {status.get('phase') or 'Unknown'}{detail}")
        if len(pods) > MAX_PODS_SHOWN:
            lines.append(f"... and {len(pods) - MAX_PODS_SHOWN} more istiod pods")
        return lines


CHECK = IstiodUnavailable()
