"""Run every check on a bundle, walk the failure tree, and build the report.

Pure: no I/O. A check whose evidence is missing is skipped with the reason; a check that raises
becomes a gap ("internal error in check X") and the others still run.
"""

from __future__ import annotations

import traceback
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable

from kubectl_meshdoctor.bundle import EvidenceBundle
from kubectl_meshdoctor.checks import all_checks
from kubectl_meshdoctor.checks.base import Check
from kubectl_meshdoctor.checks.context import AnalysisContext, key_of, sidecar_container
from kubectl_meshdoctor.evidence import Evidence, Gap, Skipped, evidence_in
from kubectl_meshdoctor.findings import Finding, Severity
from kubectl_meshdoctor.proxy_status import proxy_status
from kubectl_meshdoctor.tree import MESH_WIDE, link, root_causes_of
from kubectl_meshdoctor.unmeshed import server_view, why_unmeshed

REPORT_API_VERSION = "meshdoctor/v1"

HEALTHY, DEGRADED, FAILING, INCOMPLETE = "healthy", "degraded", "failing", "incomplete"
UNMESHED = "unmeshed"  # live, no istio-proxy, nothing wrong found: outside the mesh, and why


@dataclass(frozen=True)
class PodResult:
    pod: str
    status: str
    root_causes: tuple[str, ...]
    # Those of ``root_causes`` linked only through a probable link (a step of the chain unchecked).
    probable: tuple[str, ...] = ()
    reason: str | None = None  # a live pod without istio-proxy: why it is outside the mesh
    server: tuple[str, ...] = ()  # such a pod as a server: Services, DestinationRules, PeerAuthentication
    proxy_status: dict | None = None  # what istioctl proxy-status shows for it, from Envoy and istiod
    # Multi-cluster runs only (see Finding.cluster); then ``pod`` is "context/namespace/name".
    cluster: str | None = None
    cluster_id: str | None = None

    def to_dict(self) -> dict:
        data = {**({"cluster": self.cluster, "clusterId": self.cluster_id} if self.cluster is not None else {}),
                "pod": self.pod, "status": self.status, "rootCauses": list(self.root_causes),
                "probableRootCauses": list(self.probable)}
        if self.reason is not None:
            data.update(reason=self.reason, server=list(self.server))
        if self.proxy_status is not None:
            data["proxyStatus"] = self.proxy_status
        return data


@dataclass(frozen=True)
class RootCauseGroup:
    """Pods that share one root cause: what a sweep shows first."""

    cause: Finding
    pods: tuple[str, ...]
    # The pods linked to this cause only through a probable link (a step of the chain unchecked).
    probable_pods: tuple[str, ...] = ()
    # Multi-cluster runs only: the contexts whose pods share this cause (a group may span clusters).
    clusters: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {
            **({"clusters": list(self.clusters)} if self.clusters else {}),
            "code": self.cause.code,
            "subject": self.cause.subject.to_dict(),
            "message": self.cause.message,
            "pods": list(self.pods),
            "probablePods": list(self.probable_pods),
        }


@dataclass
class Report:
    scope: dict[str, Any]
    findings: list[Finding]
    pods: list[PodResult]
    groups: list[RootCauseGroup]
    gaps: list[Gap]
    skipped: list[Skipped]
    # Tracebacks of checks that raised; shown only with --debug, never serialised.
    check_errors: list[str] = field(default_factory=list)
    # Multi-cluster runs only: each cluster of the run (context, Istio cluster ID, read or why not).
    clusters: list[dict] | None = None

    def to_dict(self) -> dict:
        return {
            "apiVersion": REPORT_API_VERSION,
            "kind": "Report",
            "scope": self.scope,
            **({"clusters": self.clusters} if self.clusters is not None else {}),
            "findings": [f.to_dict() for f in self.findings],
            "pods": [p.to_dict() for p in self.pods],
            "rootCauseGroups": [g.to_dict() for g in self.groups],
            "gaps": [g.to_dict() for g in self.gaps],
            "skipped": [s.to_dict() for s in self.skipped],
        }

    def worst_severity(self) -> Severity | None:
        return max((f.severity for f in self.findings), key=lambda s: s.rank, default=None)

    def exit_code(self, fail_on: Severity = Severity.ERROR) -> int:
        worst = self.worst_severity()
        return 1 if worst is not None and worst.rank >= fail_on.rank else 0


def run_checks(
    ctx: AnalysisContext, checks: Iterable[Check]
) -> tuple[list[Finding], list[Skipped], list[Gap], list[str]]:
    findings: list[Finding] = []
    skipped: list[Skipped] = []
    gaps: list[Gap] = []
    errors: list[str] = []
    for check in checks:
        missing = sorted(check.needs - ctx.available)
        if missing:
            skipped.append(Skipped(check.name, check.codes, f"evidence not available: {', '.join(missing)}"))
            continue
        findings.extend(run_guarded(check, ctx, gaps, errors))
    return findings, skipped, gaps, errors


def run_guarded(check, evidence, gaps: list[Gap], errors: list[str]) -> list[Finding]:
    """``check.run(evidence)``; a check that raises becomes a gap (and a traceback for --debug)."""
    try:
        return list(check.run(evidence))
    except Exception as exc:  # a broken check must not abort the diagnosis
        gaps.append(Gap(what=f"check {check.name} ({', '.join(check.codes)})",
                        reason=f"internal error: {type(exc).__name__}: {exc}"))
        errors.append(f"check {check.name}:\n{traceback.format_exc()}")
        return []


def scope_pods(bundle: EvidenceBundle) -> list[str]:
    """Keys of the pods the user asked about (the bundle may hold others as context)."""
    listed = bundle.scope.get("pods")
    if isinstance(listed, list):
        return [str(p) for p in listed]
    return sorted(key_of(obj) for obj in bundle.objects if obj.get("kind") == "Pod")


def analyze(
    bundle: EvidenceBundle,
    *,
    now: datetime | None = None,
    ca_warn_days: int = 30,
    checks: Iterable[Check] | None = None,
) -> Report:
    now = now or datetime.now(timezone.utc)
    ctx = AnalysisContext(bundle, now_iso=now.isoformat(), ca_warn_days=ca_warn_days)
    checks = tuple(all_checks() if checks is None else checks)
    raw, skipped, check_gaps, errors = run_checks(ctx, checks)
    findings = _dedupe(link(raw, _unchecked(bundle, checks, skipped)))

    in_scope = scope_pods(bundle)
    scope_set = set(in_scope)
    if bundle.scope.get("kind") == "pod":
        findings = [f for f in findings if f.pod in scope_set or f.pod is None and _relevant(f, findings, scope_set)]
    findings.sort(key=lambda f: (-f.severity.rank, not f.root_cause, f.code, f.pod or "", str(f.subject)))

    gaps = list(bundle.gaps) + check_gaps
    gapped = {pod for g in gaps for pod in g.concerns()}
    pods = []
    by_pod: dict[str | None, list[Finding]] = defaultdict(list)
    for item in findings:
        by_pod[item.pod].append(item)
    mesh_wide = [f for f in findings if f.pod is None and f.code in MESH_WIDE]
    group_members: dict[tuple, list[str]] = defaultdict(list)
    group_probable: dict[tuple, list[str]] = defaultdict(list)
    group_cause: dict[tuple, Finding] = {}
    for pod in in_scope:
        own = by_pod.get(pod, [])
        # root_causes_of reads only the pod's own findings and mesh-wide ones: give it just those, so a
        # sweep with thousands of findings stays linear.
        roots = root_causes_of(pod, own + mesh_wide)
        codes = tuple(dict.fromkeys(r.code for r, _ in roots))
        sure = {r.code for r, probable in roots if not probable}
        pods.append(_pod_result(ctx, pod, _status(own, pod in gapped), codes,
                                tuple(c for c in codes if c not in sure)))
        for root, probable in roots:
            group_cause.setdefault(root.cause_key, root)
            group_members[root.cause_key].append(pod)
            if probable:
                group_probable[root.cause_key].append(pod)
    groups = [RootCauseGroup(group_cause[k], tuple(v), tuple(group_probable[k])) for k, v in group_members.items()]
    groups.sort(key=lambda g: (-g.cause.severity.rank, -len(g.pods), g.cause.code))
    return Report(dict(bundle.scope), findings, pods, groups, gaps, skipped, errors)


def _pod_result(ctx: AnalysisContext, key: str, status: str, roots: tuple[str, ...],
                probable: tuple[str, ...]) -> PodResult:
    """A live pod without istio-proxy says why; with nothing wrong it is not "healthy" but "unmeshed"."""
    pod = ctx.pod(key)
    if not ctx.live or pod is None or sidecar_container(pod) is not None:
        return PodResult(key, status, roots, probable, proxy_status=proxy_status(ctx.proxy(key)))
    namespace = (pod.get("metadata") or {}).get("namespace") or ""
    try:
        reason, server = why_unmeshed(pod, ctx.namespace_labels(namespace)), tuple(server_view(ctx, pod))
    except (TypeError, AttributeError, ValueError) as exc:  # damaged objects in a hand-edited bundle
        reason, server = f"no istio-proxy (not described further: {type(exc).__name__}: {exc})", ()
    return PodResult(key, UNMESHED if status == HEALTHY else status, roots, probable, reason, server)


def _unchecked(bundle: EvidenceBundle, checks: tuple[Check, ...], skipped: list[Skipped]):
    """``unchecked(pod, code)``: the check for ``code`` did not run, or lacked that pod's proxy evidence."""
    skipped_codes = {code for item in skipped for code in item.codes}
    proxy_needs: dict[str, frozenset[str]] = defaultdict(frozenset)
    for check in checks:  # a code several checks report (MD0401: client and server side) needs all theirs
        for code in check.codes:
            proxy_needs[code] |= check.needs & Evidence.PROXY

    def unchecked(pod: str | None, code: str) -> bool:
        if code in skipped_codes:
            return True
        needs = proxy_needs.get(code)
        if not needs or pod is None:
            return False
        proxy = bundle.proxies.get(pod)
        return bool(needs - (evidence_in(proxy) if proxy is not None else set()))

    return unchecked


def _status(own: list[Finding], gapped: bool) -> str:
    if any(f.severity is Severity.ERROR for f in own):
        return FAILING
    if gapped:
        return INCOMPLETE
    if any(f.severity is Severity.WARNING for f in own):
        return DEGRADED
    return HEALTHY


def _relevant(item: Finding, findings: list[Finding], scope: set[str]) -> bool:
    """A pod-less finding belongs in a one-pod report when a finding of that pod links to it.

    Links are by code; a pod-less finding explains a pod's symptom only when it is mesh-wide and
    concerns that pod (``tree.link``'s rule), not merely because it shares a code with the pod's cause
    (a ReplicaSet refused by the injector does not explain another pod's missing sidecar).
    """
    for symptom in findings:
        if symptom.pod not in scope or item.code not in symptom.caused_by:
            continue
        if item.code in MESH_WIDE:
            if not item.affects or symptom.pod in item.affects:
                return True
        elif not any(g.pod == symptom.pod and g.code == item.code for g in findings):
            return True  # the pod's symptom names this code and no finding of the pod's own carries it
    return False


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen = {}
    for item in findings:
        seen.setdefault((item.pod, *item.cause_key), item)
    return list(seen.values())
