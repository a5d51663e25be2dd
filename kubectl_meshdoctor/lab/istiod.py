"""istiod's debug answers, emulated per lab istiod pod: ``pilot-discovery request GET /debug/syncz``
(and ``/debug/clusterz``, the clusters istiod reads).

A real istiod lists, in /debug/syncz, every proxy whose ADS stream it holds, with the nonce it last sent
and the one the proxy last acknowledged per type (pilot/pkg/xds/debug.go ``SyncStatus``, snake_case JSON,
empty fields left out). The lab's istiod of a revision "holds" the stream of each of that revision's
sidecars that got their configuration and are still connected; a sidecar whose istiod went away, or that
never reached it, is in no list. A crash-looping istiod cannot be exec'd into.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from kubectl_meshdoctor.lab.apiserver import ExecResult

ISTIOD_CONTAINER = "discovery"
_TYPES = ("cluster", "listener", "route", "endpoint")


@dataclass(frozen=True)
class ConnectedProxy:
    node_id: str
    istio_version: str
    stale_types: tuple[str, ...] = ()  # types sent but not acked (a proxy slow to apply, or a NACK)


def _nonce(*parts: str) -> str:
    digest = hashlib.sha256("/".join(parts).encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


@dataclass
class IstiodDebug:
    """(namespace, pod) of each istiod -> whether its discovery container runs and the proxies it holds."""

    running: dict[tuple[str, str], bool] = field(default_factory=dict)
    connected: dict[tuple[str, str], list[ConnectedProxy]] = field(default_factory=dict)
    # /debug/clusterz: the clusters istiod reads ({id, secretName, syncStatus}), its own first with no
    # secret. Set by lab/multicluster.py; a lone lab's istiod reads only its own cluster, "Kubernetes".
    clusterz: list[dict] = field(default_factory=lambda: [
        {"id": "Kubernetes", "secretName": "", "syncStatus": "synced"}])

    def syncz(self, istiod: tuple[str, str]) -> list[dict]:
        entries = []
        for proxy in self.connected.get(istiod, ()):
            entry: dict[str, str] = {"cluster_id": "Kubernetes", "proxy": proxy.node_id,
                                     "istio_version": proxy.istio_version}
            for kind in _TYPES:
                if kind == "endpoint":
                    continue  # the lab's clusters carry their endpoints inline: no EDS is ever sent
                sent = _nonce(proxy.node_id, kind, "1")
                entry[f"{kind}_sent"] = sent
                if kind not in proxy.stale_types:
                    entry[f"{kind}_acked"] = sent
            entries.append(entry)
        return entries

    async def exec(self, namespace: str, pod: str, command: list[str]) -> ExecResult | None:
        """The answer for an exec into an istiod pod; None when (namespace, pod) is no istiod."""
        if (namespace, pod) not in self.running:
            return None
        if not self.running[(namespace, pod)]:
            return ExecResult(126, b"", b"error: Internal error occurred: error executing command in container: "
                                        b"container is not running\n")
        program = command[0].rsplit("/", 1)[-1] if command else ""
        if program != "pilot-discovery":
            return ExecResult(127, b"", f'exec: "{program}": executable file not found in $PATH\n'.encode())
        args = command[1:]
        if len(args) < 3 or args[0] != "request" or args[1].upper() != "GET":
            return ExecResult(255, b"", b"Error: the lab emulates only `pilot-discovery request GET <path>`\n")
        path = "/" + args[2].lstrip("/")
        if path == "/debug/clusterz":
            return ExecResult(0, json.dumps(self.clusterz).encode() + b"\n")
        if path != "/debug/syncz":
            return ExecResult(0, b"404 page not found\n")
        return ExecResult(0, json.dumps(self.syncz((namespace, pod)), indent=2).encode() + b"\n")
