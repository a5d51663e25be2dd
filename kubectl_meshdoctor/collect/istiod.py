"""istiod's side of ``istioctl proxy-status``: /debug/syncz of every running istiod pod, per proxy.

``pilot-discovery request GET /debug/syncz`` in the ``discovery`` container asks istiod's debug port on
localhost, so no port-forward and no istiod token are needed: only ``create pods/exec`` in istio-system.
Each proxy holds its stream on one istiod pod; a proxy that no istiod pod lists is not connected. That
can be said only when every running istiod pod answered, so one that could not be read leaves every
proxy not found in the others without an istiod view (and a gap says why).

An istiod pod whose discovery container is not running (CrashLoopBackOff) holds no stream and is not
asked; MD0203 covers it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from kubernetes import client as k8s

from kubectl_meshdoctor.collect.kube import one_line
from kubectl_meshdoctor.collect.proxy import ISTIOD_CONTAINER, SYNCZ, Cancellation, exec_command
from kubectl_meshdoctor.envoy.syncz import SyncEntry, parse_syncz
from kubectl_meshdoctor.errors import ExecError, ParseError
from kubectl_meshdoctor.evidence import IstiodSync
from kubectl_meshdoctor.pods import pod_key

WHAT = "istiod sync status (/debug/syncz)"


@dataclass
class IstiodView:
    """What the istiod pods said: pod key -> (istiod pod, its entry), and what could not be read."""

    entries: dict[str, tuple[str, SyncEntry]] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (istiod pod, reason)
    refused: bool = False

    @property
    def complete(self) -> bool:
        return bool(self.asked) and not self.failures

    def sync_of(self, pod: str) -> IstiodSync | None:
        """This pod's sync status; None when istiod's view of it is unknown."""
        found = self.entries.get(pod)
        if found is not None:
            istiod, entry = found
            return IstiodSync(connected=True, istiod=istiod, istio_version=entry.istio_version,
                              sent_acked=entry.sent_acked)
        return IstiodSync(connected=False) if self.complete else None


def discovery_running(pod: dict) -> bool:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == ISTIOD_CONTAINER:
            return "running" in (status.get("state") or {})
    return False


def read_istiod_views(api_client: k8s.ApiClient, istiod_pods: list[dict], timeout: float,
                      cancellation: Cancellation | None = None) -> IstiodView:
    view = IstiodView()
    deadline = time.monotonic() + timeout
    for pod in sorted(istiod_pods, key=pod_key):
        if not discovery_running(pod) or view.refused:
            continue
        key = pod_key(pod)
        namespace, _, name = key.partition("/")
        view.asked.append(key)
        try:
            output = exec_command(api_client, namespace, name, SYNCZ, max(deadline - time.monotonic(), 0.001),
                                  container=ISTIOD_CONTAINER, cancellation=cancellation)
        except ExecError as exc:
            view.refused = exc.forbidden
            view.failures.append((key, str(exc)))
            continue
        if output.exit_code != 0:
            detail = one_line((output.stderr or output.stdout).decode("utf-8", "replace"))[:200]
            view.failures.append((key, f"pilot-discovery failed (exit {output.exit_code}): {detail}"))
            continue
        try:
            entries = parse_syncz(output.stdout)
        except ParseError as exc:
            view.failures.append((key, str(exc)))
            continue
        for entry in entries:
            if entry.pod:
                view.entries.setdefault(entry.pod, (key, entry))
    return view
