"""MD0701 RemoteClusterNotSynced: an istiod does not read another cluster of the same mesh.

Why: in a multi-primary mesh each istiod discovers the other clusters' endpoints through their remote
secrets (label ``istio/multiCluster: "true"``); a missing or broken secret, or an API server istiod cannot
reach, leaves that cluster out, and the sidecars istiod configures see only local endpoints of a Service
that runs in both clusters. istiod's own ``/debug/clusterz`` lists the clusters it reads and their sync
state (``synced``, else e.g. ``timeout``).

The evidence shows the symptom too, where it was read: for each Service that also runs (ready) in the
unread cluster, the EDS one sidecar of the reading cluster holds (``ClusterEvidence.endpoints``). An
endpoint is the reading cluster's own when Istio's metadata names that cluster, or, without it, when its
address is one of that cluster's pod IPs; a line is written only when every endpoint is local, and none
when the sidecar has no such cluster (a ``Sidecar`` may hide it) or an endpoint's origin is unknown.

Not said: remote endpoints missing while istiod reports the cluster synced. /debug/clusterz then rules
this cause out, and what remains is mostly deliberate (``meshConfig.serviceSettings`` ``clusterLocal``,
``discoverySelectors`` leaving the namespace out in one cluster) or another cause's symptom (MD0702:
no east-west gateway); without a cause to name, the tool stays silent rather than guess.

Compared only between clusters of one mesh (the same mesh ID, when both show one) whose cluster IDs are
known, and only for clusters whose istiod answered (a remote cluster of primary-remote has no istiod).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable

from kubectl_meshdoctor.checks.base import finding
from kubectl_meshdoctor.findings import Finding, Subject
from kubectl_meshdoctor.multichecks import MultiCheck, meshes_differ
from kubectl_meshdoctor.shared_services import SharedPort, pod_ips, ready_pods

ISTIOD = Subject("Deployment", "istiod", "istio-system")
SYNCED = "synced"


class RemoteClusterNotSynced(MultiCheck):
    name = "remote-cluster-not-synced"
    codes = ("MD0701",)

    def run(self, clusters: list) -> Iterable[Finding]:
        for reader in clusters:
            if reader.clusterz is None or not reader.cluster_id:
                continue
            read = {c["id"]: c for c in reader.clusterz}
            for other in clusters:
                if other is reader or not other.cluster_id or other.cluster_id == reader.cluster_id:
                    continue
                if meshes_differ(reader, other):
                    continue
                entry = read.get(other.cluster_id)
                if entry is not None and entry["syncStatus"] == SYNCED:
                    continue
                if entry is None:
                    what = (f"istiod of cluster {reader.context} does not read cluster {other.context} "
                            f"(cluster ID {other.cluster_id}): no remote secret for it")
                else:
                    what = (f"istiod of cluster {reader.context} reads cluster {other.context} but has not synced "
                            f"it (sync status {entry['syncStatus'] or 'unknown'}, secret {entry['secretName']})")
                evidence = [f"cluster {reader.context} /debug/clusterz: "
                            + (", ".join(f"{c['id']} ({c['syncStatus']})" for c in reader.clusterz) or "empty")]
                evidence += only_local_endpoints(reader, other)
                item = finding("MD0701", ISTIOD, what + f": its sidecars get only local endpoints of services "
                               f"that also run in {other.context}", evidence)
                yield replace(item.with_links(root_cause=True, caused_by=()), cluster=reader.context)


def only_local_endpoints(reader, other) -> list[str]:
    """Evidence lines: Services whose EDS in ``reader``'s sidecar is all local while ``other`` has ready pods."""
    held = reader.endpoints
    if not held or other.bundle is None:
        return []
    local_ips = pod_ips(reader.bundle.objects)
    lines = []
    for name in held["asked"]:
        endpoints = held["clusters"].get(name)
        port = _shared_port(name)
        if endpoints is None or port is None:
            continue  # not in this sidecar's configuration: nothing to say about it
        remote = ready_pods(other.bundle.objects, port.namespace, port.name)
        origins = {_origin(e, reader.cluster_id, local_ips) for e in endpoints}
        if remote and origins <= {"local"}:
            lines.append(f"EDS of {port.label} in sidecar {held['pod']} (cluster {reader.context}): "
                         f"{_count(len(endpoints), 'endpoint') + ', all local' if endpoints else 'no endpoint'}; "
                         f"cluster {other.context} has {_count(remote, 'ready pod')}")
    return lines


def _origin(endpoint: dict, local_id: str, local_ips: set[str]) -> str:
    if endpoint["clusterId"] is not None:
        return "local" if endpoint["clusterId"] == local_id else "remote"
    return "local" if endpoint["address"].rpartition(":")[0] in local_ips else "unknown"


def _shared_port(cluster_name: str) -> SharedPort | None:
    """``outbound|9080||reviews.bookinfo.svc.cluster.local`` -> reviews.bookinfo:9080."""
    parts = cluster_name.split("|")
    host = parts[3].split(".") if len(parts) == 4 else []
    if len(host) < 2 or not parts[1].isdigit():
        return None
    return SharedPort(host[1], host[0], int(parts[1]))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


CHECK = RemoteClusterNotSynced()
