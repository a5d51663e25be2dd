"""MD0701 RemoteClusterNotSynced: an istiod does not read another cluster of the same mesh.

Why: in a multi-primary mesh each istiod discovers the other clusters' endpoints through their remote
secrets (label ``istio/multiCluster: "true"``); a missing or broken secret, or an API server istiod cannot
reach, leaves that cluster out, and the sidecars istiod configures see only local endpoints of a Service
that runs in both clusters. istiod's own ``/debug/clusterz`` lists the clusters it reads and their sync
state (``synced``, else e.g. ``timeout``).

Compared only between clusters of one mesh (the same mesh ID, when both show one) whose cluster IDs are
known, and only for clusters whose istiod answered (a remote cluster of primary-remote has no istiod).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable

from kubectl_meshdoctor.checks.base import finding
from kubectl_meshdoctor.findings import Finding, Subject
from kubectl_meshdoctor.multichecks import MultiCheck, meshes_differ

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
                item = finding("MD0701", ISTIOD, what + f": its sidecars get only local endpoints of services "
                               f"that also run in {other.context}", evidence)
                yield replace(item.with_links(root_cause=True, caused_by=()), cluster=reader.context)


CHECK = RemoteClusterNotSynced()
