"""Which clusters istiod reads, from istiod itself: read only in multi-cluster runs.

A primary cluster's istiod reads every other cluster of the mesh through a remote secret, and says which
ones and how far it got at ``/debug/clusterz`` (``[{"id", "secretName", "syncStatus"}]``, its own cluster
included with an empty secret name). The plugin asks one ready istiod pod with the fixed command
``pilot-discovery request GET /debug/clusterz`` in its discovery container (``collect/proxy.py``
ALLOWED_EXEC), never a Secret.
A cluster without istiod (a remote cluster of primary-remote) has nothing to say; a refused or failed
exec is a gap.
"""

from __future__ import annotations

import json

from kubectl_meshdoctor.bundle import EvidenceBundle
from kubectl_meshdoctor.collect import ClusterOptions
from kubectl_meshdoctor.collect.api import ISTIO_NAMESPACE, ApiReader
from kubectl_meshdoctor.collect.kube import connect
from kubectl_meshdoctor.collect.proxy import CLUSTERZ, ISTIOD_CONTAINER, Cancellation, exec_command
from kubectl_meshdoctor.errors import ClusterError, ExecError

ISTIOD_PODS = "app=istiod"
WHAT = "clusters istiod reads (/debug/clusterz)"


def read_clusterz(cluster: ClusterOptions, bundle: EvidenceBundle, timeout: float,
                  cancellation: Cancellation | None = None) -> list[dict] | None:
    """istiod's /debug/clusterz as a list of {id, secretName, syncStatus}; None when not known."""
    kube = connect(cluster)
    try:
        pods = ApiReader(kube).list("Pod", ISTIO_NAMESPACE, label_selector=ISTIOD_PODS)
        ready = [p for p in pods if _ready(p)]
        if not ready:
            return None  # no istiod here (a remote cluster), or none ready: MD0203's business
        output = exec_command(kube.api_client, ISTIO_NAMESPACE, ready[0]["metadata"]["name"], CLUSTERZ, timeout,
                              container=ISTIOD_CONTAINER, cancellation=cancellation)
    except (ClusterError, ExecError) as exc:
        bundle.add_gap(WHAT, str(exc))
        return None
    finally:
        kube.close()
    if output.exit_code != 0:
        bundle.add_gap(WHAT, f"exit {output.exit_code}: {output.stderr.decode(errors='replace').strip()[:200]}")
        return None
    try:
        listed = json.loads(output.stdout)
        return [{"id": str(c["id"]), "secretName": str(c.get("secretName") or ""),
                 "syncStatus": str(c.get("syncStatus") or "")} for c in listed]
    except (ValueError, TypeError, KeyError) as exc:
        bundle.add_gap(WHAT, f"istiod's answer is not a cluster list ({type(exc).__name__})")
        return None


def _ready(pod: dict) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
