"""MD0703 MeshIdentityMismatch: the clusters of one mesh disagree on who the mesh is, or two share a name.

Why: a multi-cluster mesh needs one mesh ID and one trust domain in every cluster (the SPIFFE
identities ``spiffe://<trust domain>/ns/<ns>/sa/<sa>`` a sidecar accepts are the trust domain's), and a
cluster name (``values.global.multiCluster.clusterName``: istiod's ``CLUSTER_ID``, the sidecars'
``ISTIO_META_CLUSTER_ID``) unique to each cluster: istiod keys remote clusters by that name and skips a
remote secret whose cluster has its own name ("ignoring cluster as it would overwrite the config
cluster"), so the other cluster's endpoints silently never arrive. Left at the default, every cluster is
called "Kubernetes".

Reads the identity each cluster's evidence gave at collection (``multibundle.mesh_identity``); values a
cluster does not show are not compared. Two contexts of one API server are one cluster, not a duplicate.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from typing import Iterable

from kubectl_meshdoctor.checks.base import finding
from kubectl_meshdoctor.findings import Finding, Subject
from kubectl_meshdoctor.multichecks import MultiCheck

MESH_CONFIG = Subject("ConfigMap", "istio", "istio-system")
ISTIOD = Subject("Deployment", "istiod", "istio-system")
DISAGREEMENTS = (  # identity key, what it is called, where it is set
    ("meshId", "mesh ID", "values.global.meshID (meshConfig.defaultConfig.meshId)"),
    ("trustDomain", "trust domain", "meshConfig.trustDomain"),
)


class MeshIdentityMismatch(MultiCheck):
    name = "mesh-identity-mismatch"
    codes = ("MD0703",)

    def run(self, clusters: list) -> Iterable[Finding]:
        for key, what, where in DISAGREEMENTS:
            values = {c.context: c.identity.get(key) for c in clusters if c.identity.get(key)}
            if len(set(values.values())) > 1:
                shown = ", ".join(f"{context}={value}" for context, value in values.items())
                yield _mismatch(finding(
                    "MD0703", MESH_CONFIG, f"the clusters disagree on the {what}: {shown}",
                    [f"cluster {context}: {what} {value}" for context, value in values.items()],
                    remediation=f"Give every cluster of the mesh the same {what} ({where}) and restart the "
                    "workloads so their sidecars pick it up; a deliberate second trust domain needs "
                    "meshConfig.trustDomainAliases on both sides instead."), values)
        by_name: dict[str, dict[str, str]] = defaultdict(dict)  # cluster ID -> {server: context}
        for cluster in clusters:
            if cluster.cluster_id:
                by_name[cluster.cluster_id].setdefault(cluster.server or cluster.context, cluster.context)
        for cluster_id, servers in sorted(by_name.items()):
            if len(servers) > 1:
                contexts = list(servers.values())
                yield _mismatch(finding(
                    "MD0703", ISTIOD, f"clusters {', '.join(contexts)} use the same cluster name {cluster_id!r}",
                    [f"cluster {context}: cluster ID {cluster_id} (istiod CLUSTER_ID / sidecars' "
                     "ISTIO_META_CLUSTER_ID)" for context in contexts]), dict.fromkeys(contexts, cluster_id))


def _mismatch(item: Finding, values: dict[str, str]) -> Finding:
    """A root cause of its own, told as a finding of the clusters it names."""
    return replace(item.with_links(root_cause=True, caused_by=()), cluster=",".join(values))


CHECK = MeshIdentityMismatch()
