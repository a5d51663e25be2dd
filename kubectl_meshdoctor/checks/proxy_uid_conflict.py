"""MD0104 ProxyUidConflict: an application container runs as UID 1337, the sidecar's own UID.

Anti-pattern: ``securityContext.runAsUser: 1337`` on a meshed pod (often copied from the istio-proxy
container, or chosen because "1337 is free").

Best practice: run applications as any other UID. 1337 belongs to istio-proxy.

Why: istio-init's iptables rules exempt traffic of UID 1337 from redirection (``-u 1337``), so Envoy's
own upstream connections are not captured again. An application running as 1337 is exempted too: its
outbound calls leave the pod without the sidecar, without mTLS, routing, retries or telemetry, and a
STRICT server rejects them.

Decisions, following istioctl's IST0144 (analyzers/deployment/pod.go) on its own test cases:
- The subject is the workload: the Deployment (or other controller) for pods it owns, the Pod for a
  pod without owner. Live, every pod of it carries the finding, so a sweep groups them.
- A container's UID is its own ``securityContext.runAsUser``, else the pod's: a pod-level 1337 that
  every container overrides is no conflict (istioctl flags it anyway; the kernel does not).
- istio-proxy (and istio-operator) containers, and Istio's own workloads (label ``istio`` or
  ``release=istio``) are skipped; so are workloads known to be outside the mesh (injection disabled,
  or running pods without a sidecar). When the manifests cannot tell (no Namespace object), the check
  reports: the workload may well be injected once applied.
"""

from __future__ import annotations

from typing import Iterable

from kubectl_meshdoctor.checks.base import Check, finding
from kubectl_meshdoctor.checks.context import AnalysisContext
from kubectl_meshdoctor.findings import Finding
from kubectl_meshdoctor.workloads import dig, listed

PROXY_UID = 1337
PROXY_CONTAINERS = frozenset({"istio-proxy", "istio-operator"})


def _run_as_user(security_context: object) -> object:
    return dig(security_context).get("runAsUser")


class ProxyUidConflict(Check):
    name = "ProxyUidConflict"
    codes = ("MD0104",)
    needs: frozenset[str] = frozenset()  # reads whatever pods and controllers the evidence holds

    def run(self, ctx: AnalysisContext) -> Iterable[Finding]:
        for workload, _ in ctx.mesh_workloads():
            pod_uid = _run_as_user(workload.spec.get("securityContext"))
            offenders = []
            for container in listed(workload.spec.get("containers")):
                container = dig(container)
                name = str(container.get("name") or "?")
                own = _run_as_user(container.get("securityContext"))
                uid = own if own is not None else pod_uid
                if name not in PROXY_CONTAINERS and uid == PROXY_UID:
                    where = "its securityContext" if own is not None else "the pod's securityContext"
                    offenders.append(f"container {name} runs as UID {PROXY_UID} ({where}.runAsUser)")
            if not offenders:
                continue
            message = (f"{workload.describe()}: an application container runs as UID {PROXY_UID}, the sidecar's "
                       "UID; iptables lets its outbound traffic bypass istio-proxy (no mTLS, no routing)")
            evidence = offenders + ["istio-init exempts UID 1337 from redirection (istio-iptables -u 1337)"]
            for pod in workload.pods or [None]:
                yield finding("MD0104", workload.subject, message, evidence, pod=pod)


CHECK = ProxyUidConflict()
