"""One report for several clusters: each cluster analysed alone, then the reports joined.

Every check runs on one cluster's bundle exactly as in a single-cluster run, so a finding means the same
in both. Joining then names the cluster on everything: pods become "context/namespace/name" (a pod name
is unique only inside its cluster), findings and pods carry ``cluster`` and ``clusterId``, gaps say
their cluster, and root-cause groups of the same cause (code, subject, message) in several clusters
become one group listing the clusters ("2 clusters: ..."). A cluster that could not be read is a gap.
Cross-cluster checks (``multichecks``) then look at the clusters side by side.

Pure: no I/O, like ``analysis``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from kubectl_meshdoctor.analysis import Report, RootCauseGroup, analyze, run_guarded
from kubectl_meshdoctor.evidence import Gap, Skipped
from kubectl_meshdoctor.findings import Finding
from kubectl_meshdoctor.multibundle import IDENTITY_KEYS, MultiClusterBundle


def qualified(context: str, pod: str) -> str:
    """A pod key that is unique across the run's clusters."""
    return f"{context}/{pod}"


def analyze_clusters(multi: MultiClusterBundle, *, now: datetime | None = None, ca_warn_days: int = 30,
                     checks=None) -> Report:
    findings: list[Finding] = []
    pods = []
    gaps: list[Gap] = []
    skipped: dict[tuple, Skipped] = {}
    errors: list[str] = []
    groups: dict[tuple, dict] = {}
    scope: dict = {}
    scope_pods: list[str] = []
    clusters: list[dict] = []
    for cluster in multi.clusters:
        context, cluster_id = cluster.context, cluster.cluster_id
        clusters.append({"context": context, **{key: cluster.identity.get(key) for key in IDENTITY_KEYS},
                         "read": cluster.bundle is not None, "reason": cluster.unreachable})
        if cluster.bundle is None:
            gaps.append(Gap(what=f"cluster {context}", reason=f"not read: {cluster.unreachable}"))
            continue
        report = analyze(cluster.bundle, now=now, ca_warn_days=ca_warn_days, checks=checks)

        def q(pod: str, context: str = context) -> str:
            return qualified(context, pod)

        def tag(item: Finding, context: str = context, cluster_id: str | None = cluster_id) -> Finding:
            return replace(item, pod=qualified(context, item.pod) if item.pod else None,
                           affects=tuple(qualified(context, p) for p in item.affects),
                           cluster=context, cluster_id=cluster_id)

        scope = scope or {k: v for k, v in report.scope.items() if k != "pods"}
        scope_pods.extend(q(p) for p in report.scope.get("pods") or [])
        findings.extend(tag(f) for f in report.findings)
        pods.extend(replace(p, pod=q(p.pod), cluster=context, cluster_id=cluster_id) for p in report.pods)
        gaps.extend(replace(g, what=f"cluster {context}: {g.what}", pod=q(g.pod) if g.pod else None,
                            affects=tuple(q(p) for p in g.affects)) for g in report.gaps)
        for item in report.skipped:
            skipped.setdefault((item.check, item.codes, item.reason), item)
        errors.extend(f"cluster {context}: {text}" for text in report.check_errors)
        for group in report.groups:
            joined = groups.setdefault(group.cause.cause_key, {
                "cause": tag(group.cause),
                "pods": [], "probable": [], "clusters": []})
            joined["pods"].extend(q(p) for p in group.pods)
            joined["probable"].extend(q(p) for p in group.probable_pods)
            joined["clusters"].append(context)
    readable = multi.readable
    if len(readable) > 1:
        findings.extend(_compare(readable, errors, gaps, checks is None))
        findings = _link_across(readable, findings, groups)
    findings.sort(key=lambda f: (-f.severity.rank, not f.root_cause, f.code, f.pod or "", str(f.subject),
                                 f.cluster or ""))
    merged = [RootCauseGroup(g["cause"], tuple(g["pods"]), tuple(g["probable"]), tuple(dict.fromkeys(g["clusters"])))
              for g in groups.values()]
    merged.sort(key=lambda g: (-g.cause.severity.rank, -len(g.pods), g.cause.code))
    scope = {**scope, "clusters": [c.context for c in multi.clusters], "pods": scope_pods}
    return Report(scope, findings, pods, merged, gaps, list(skipped.values()), errors, clusters)


def _link_across(clusters: list, findings: list[Finding], groups: dict[tuple, dict]) -> list[Finding]:
    """Link each cluster's symptoms to the cross-cluster causes that explain them (``tree.ACROSS_CLUSTERS``):
    the symptom's pod is in one of the cause's clusters and its evidence shows the cause (``explains``).
    A linked symptom is no longer a root cause; its pods move to the cause's root-cause group."""
    from kubectl_meshdoctor.multichecks import all_multi_checks
    from kubectl_meshdoctor.tree import ACROSS_CLUSTERS

    checks = {code: check for check in all_multi_checks() for code in check.codes}
    bundles = {c.context: c.bundle for c in clusters}
    causes = [f for f in findings if f.pod is None and f.cluster and f.code in checks]
    linked_pods: dict[tuple, list[tuple[str, str]]] = {}  # cause -> (pod, its cluster)
    result = []
    for item in findings:
        found = []
        if item.pod and item.cluster in bundles:
            proxy = bundles[item.cluster].proxies.get(item.pod[len(item.cluster) + 1:])
            for cause in causes:
                if (cause.code in ACROSS_CLUSTERS.get(item.code, ()) and item.cluster in cause.cluster.split(",")
                        and checks[cause.code].explains(cause, item, proxy, clusters)):
                    found.append(cause)
                    linked_pods.setdefault(cause.cause_key, []).append((item.pod, item.cluster))
        if found:
            item = replace(item, root_cause=False,
                           caused_by=tuple(dict.fromkeys((*item.caused_by, *(c.code for c in found)))))
        result.append(item)
    if linked_pods:
        moved = {pod for pods in linked_pods.values() for pod, _ in pods}
        for key, group in list(groups.items()):
            if group["cause"].code in ACROSS_CLUSTERS:
                group["pods"] = [p for p in group["pods"] if p not in moved]
                if not group["pods"] and not group["probable"]:
                    del groups[key]
        for cause in causes:
            pods = linked_pods.get(cause.cause_key)
            if pods:
                groups[cause.cause_key] = {"cause": cause, "pods": list(dict.fromkeys(p for p, _ in pods)),
                                           "probable": [], "clusters": [c for _, c in pods]}
    return result


def _compare(clusters: list, errors: list[str], gaps: list[Gap], run: bool) -> list[Finding]:
    """The cross-cluster checks' findings; one that raises is a gap, as in ``run_checks``."""
    from kubectl_meshdoctor.multichecks import all_multi_checks

    return [item for check in (all_multi_checks() if run else ()) for item in run_guarded(check, clusters, gaps, errors)]
