"""MD0102 SidecarNotReady: the istio-proxy container is not ready (the "1/2 READY" symptom).

Anti-pattern: treating "1/2 READY" as the diagnosis, or as an application problem, and restarting
pods until it goes away.

Best practice: report it as the *symptom* it is, per pod, with the readiness answer itself (which port
answered, with what), and let the failure tree attach the cause found below it (no config from
istiod, config rejected, and what prevents istiod from being reached).

Why: kubelet takes the pod out of every Service while istio-proxy is not ready, so the workload gets
no traffic although the application container runs fine.

Decisions: pods being deleted (``deletionTimestamp``) are skipped, since a draining sidecar turns not
ready on purpose; so are finished pods (Succeeded/Failed) and pods whose istio-proxy has not started
yet (no status, or waiting in ContainerCreating/PodInitializing): nothing about the mesh can be said
before the proxy runs. A proxy waiting for any other reason (CrashLoopBackOff, ImagePullBackOff) is
reported, with the reason.
"""

from __future__ import annotations

import re
from typing import Iterable

from kubectl_meshdoctor.checks.base import Check, condition_since, finding, last_exit
from kubectl_meshdoctor.checks.context import (
    SIDECAR_CONTAINER, AnalysisContext, key_of, sidecar_container, sidecar_status,
)
from kubectl_meshdoctor.evidence import Evidence, Readiness
from kubectl_meshdoctor.findings import Finding, Subject

NOT_STARTED_REASONS = frozenset({"ContainerCreating", "PodInitializing"})
HEALTH_PORT = 15021  # Envoy's health listener, what kubelet probes
AGENT_PORT = 15020  # pilot-agent itself, asked when 15021 refuses (Envoy not initialised)


def ready_count(pod: dict) -> tuple[int, int]:
    """kubectl's READY column: ready/total over app containers and native sidecars (restartable init)."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    names = [c.get("name") for c in spec.get("containers") or []]
    restartable = {c.get("name") for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"}
    ready = sum(1 for s in status.get("containerStatuses") or [] if s.get("ready"))
    ready += sum(1 for s in status.get("initContainerStatuses") or [] if s.get("name") in restartable and s.get("ready"))
    return ready, len(names) + len(restartable)


# pilot-agent says a failed answer twice: cobra's "Error: ..." on stderr, then its logger's
# "<time> error received unsuccessful status code 503: ..." line; the collector keeps both.
_LOGGED_AGAIN = re.compile(r"\s+\S+\s+error\s+received unsuccessful status code \d{3}:\s*(.*)$", re.S)


def readiness_detail(readiness: Readiness) -> str:
    """The readiness answer on one line, said once (without pilot-agent's log line repeating it)."""
    detail = " ".join(readiness.detail.split())
    repeat = _LOGGED_AGAIN.search(detail)
    if repeat:
        head, again = detail[: repeat.start()], repeat.group(1).rstrip("…")
        if head.startswith(again) or again.startswith(head):
            return head
    return detail


def describe_readiness(readiness: Readiness) -> str:
    """One line saying what the readiness endpoint answered, port by port."""
    detail = readiness_detail(readiness)
    if readiness.status is None:
        return f"GET :{readiness.port}/healthz/ready refused" + (f" ({detail})" if detail else "")
    answer = f":{readiness.port} answered {readiness.status}" + (f": {detail}" if detail else "")
    if readiness.port == AGENT_PORT:
        # The collector asks pilot-agent on 15020 only after Envoy's 15021 listener refused.
        return f"GET :{HEALTH_PORT}/healthz/ready refused; {answer}"
    return f"GET {answer}"


def _waiting_reason(status: dict) -> str | None:
    waiting = (status.get("state") or {}).get("waiting")
    return (waiting.get("reason") or "Waiting") if isinstance(waiting, dict) else None


class SidecarNotReady(Check):
    name = "SidecarNotReady"
    codes = ("MD0102",)
    needs = frozenset({Evidence.PODS})

    def run(self, ctx: AnalysisContext) -> Iterable[Finding]:
        for pod in ctx.pods:
            if sidecar_container(pod) is None:
                continue
            meta = pod.get("metadata") or {}
            if meta.get("deletionTimestamp") or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            key = key_of(pod)
            status = sidecar_status(pod)
            proxy = ctx.proxy(key)
            readiness = proxy.readiness if proxy is not None else None
            waiting = _waiting_reason(status) if status is not None else None
            started = status is not None and waiting not in NOT_STARTED_REASONS
            status_not_ready = started and status.get("ready") is False
            probe_not_ready = readiness is not None and not readiness.ready
            if not (status_not_ready or probe_not_ready):
                continue
            ready, total = ready_count(pod)
            evidence = []
            if status is not None:
                evidence.append(f"{SIDECAR_CONTAINER} ready={str(bool(status.get('ready'))).lower()} ({ready}/{total} READY)")
                if waiting:
                    evidence.append(f"{SIDECAR_CONTAINER} waiting: {waiting}")
                if status.get("restartCount"):
                    evidence.append(f"{SIDECAR_CONTAINER} restarts: {status['restartCount']}")
            if readiness is not None:
                evidence.append(describe_readiness(readiness))
            message = f"istio-proxy in pod {key} is not ready ({ready}/{total} READY)"
            if waiting:
                message = f"istio-proxy in pod {key} is not running ({waiting})"
            subject = Subject("Pod", meta.get("name") or "", meta.get("namespace"))
            since = [condition_since(pod, "Ready", "False", f"{ready}/{total} READY", key),
                     last_exit(status, SIDECAR_CONTAINER, key)]
            yield finding("MD0102", subject, message, evidence, pod=key, since=since)


CHECK = SidecarNotReady()
