"""MD0205 across clusters: the control planes of one mesh run Istio releases more than one minor apart.

Why: in a multi-cluster mesh each istiod reads the other clusters' API servers (remote secrets) and
configures its sidecars to call the other clusters' workloads; Istio supports the control planes of one
mesh at most one minor release apart, as it supports a proxy one minor older than its istiod (MD0205 in
one cluster). Upgrading one cluster and leaving the other two releases behind "works" until one istiod
reads or generates something the other release does not know.

Evidence and decisions, as the single-cluster MD0205 (its release parsing is reused): an istiod pod's
release is its ``discovery`` image tag, else its ``app.kubernetes.io/version`` label; a cluster's control
plane is the newest release of its istiod revisions (a canary revision mid-upgrade is that cluster's own
affair, reported by the single-cluster MD0205 on its proxies). Clusters whose istiod pods were not listed,
or whose tags are not releases, are not compared; nor are clusters that show different mesh IDs.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable

from kubectl_meshdoctor.checks.base import finding
from kubectl_meshdoctor.checks.context import AnalysisContext
from kubectl_meshdoctor.checks.proxy_version_skew import Release, istiod_releases, minor_distance, shown
from kubectl_meshdoctor.evidence import Evidence
from kubectl_meshdoctor.findings import Finding, Subject
from kubectl_meshdoctor.multichecks import MultiCheck, meshes_differ
from kubectl_meshdoctor.pods import DEFAULT_REVISION


def control_plane(bundle) -> tuple[Release, str, list[str]] | None:
    """The cluster's newest istiod release, its revision, and every istiod pod's release (evidence)."""
    if Evidence.ISTIOD_PODS not in bundle.available:
        return None
    by_revision = istiod_releases(AnalysisContext(bundle))
    if not by_revision:
        return None
    release, revision = max((max(pods.values()), revision) for revision, pods in by_revision.items())
    pods = [f"istiod pod {pod} (revision {rev}): {shown(found)}"
            for rev, found_pods in sorted(by_revision.items()) for pod, found in sorted(found_pods.items())]
    return release, revision, pods


class ControlPlaneVersionSkew(MultiCheck):
    name = "control-plane-version-skew"
    codes = ("MD0205",)

    def run(self, clusters: list) -> Iterable[Finding]:
        known = [(c, plane) for c in clusters if (plane := control_plane(c.bundle)) is not None]
        for i, (first, first_plane) in enumerate(known):
            for second, second_plane in known[i + 1:]:
                if meshes_differ(first, second):
                    continue
                (old, old_plane), (new, new_plane) = sorted(
                    [(first, first_plane), (second, second_plane)], key=lambda pair: pair[1][0])
                apart = minor_distance(old_plane[0], new_plane[0])
                if apart <= 1:
                    continue
                (old_release, old_revision, old_pods), (new_release, new_revision, _) = old_plane, new_plane
                deployment = "istiod" if old_revision == DEFAULT_REVISION else f"istiod-{old_revision}"
                item = finding(
                    "MD0205", Subject("Deployment", deployment, "istio-system"),
                    f"control planes of one mesh {apart} minor releases apart: cluster {old.context} runs istiod "
                    f"{shown(old_release)} (revision {old_revision}), cluster {new.context} istiod "
                    f"{shown(new_release)} (revision {new_revision}); Istio supports one minor at most",
                    [f"cluster {old.context}: {line}" for line in old_pods]
                    + [f"cluster {new.context}: {line}" for line in new_plane[2]],
                    remediation=f"Upgrade the control plane of cluster {old.context} ({deployment}) one minor "
                    f"release at a time towards {shown(new_release)} (a canary revision, then move the "
                    "namespaces), and upgrade the clusters of a mesh together from then on.")
                yield replace(item.with_links(root_cause=True, caused_by=()), cluster=f"{old.context},{new.context}")


CHECK = ControlPlaneVersionSkew()
