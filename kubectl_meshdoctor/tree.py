"""The failure tree, as data in one place: which finding can explain which.

Read it top-down as the on-call engineer would: a symptom, then the causes that may explain it. A
finding whose possible causes were not found is the deepest cause found: ``rootCause: true``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable

from kubectl_meshdoctor.findings import Finding, Severity

# symptom code -> codes that can explain it
CAUSES: dict[str, tuple[str, ...]] = {
    "MD0101": ("MD0103",),  # sidecar missing <- injection failed (webhook failing, not selected, pod too old)
    "MD0102": ("MD0201", "MD0202"),  # istio-proxy not ready <- no config / config rejected
    "MD0201": ("MD0203", "MD0301"),  # no config from istiod <- istiod unavailable / pod DNS broken
    "MD0202": ("MD0205",),  # config rejected <- proxy and istiod releases outside the supported skew
    "MD0204": ("MD0203", "MD0301"),  # configured once, no updates now <- istiod unavailable / pod DNS broken
    "MD0601": ("MD0401", "MD0402", "MD0501", "MD0403", "MD0404",  # failing requests <- why they fail
               "MD0503",  # UH <- no healthy endpoint (linked by upstream cluster)
               "MD0504",  # NR <- no route for the Host/path (lines without cluster)
               "MD0505",  # UH to BlackHoleCluster <- REGISTRY_ONLY without a ServiceEntry
               "MD0506",  # UO <- connection pool limits
               "MD0507",  # UC <- the app closes kept-alive connections Envoy reuses
               "MD0508",  # 426 DPE <- an HTTP/1.0 client
               "MD0509",  # inbound UF, connection refused <- the app does not listen on the pod IP
               "MD0510",  # UT <- route timeout shorter than the server's latency
               ),
}

# Causes only a multi-cluster run finds (``multichecks``: one finding for several clusters, ``cluster``
# "east,west") -> the symptoms of one cluster they explain: a symptom in a pod of one of the cause's
# clusters whose own evidence shows the cause's failure (the cross-cluster check's ``explains``).
ACROSS_CLUSTERS: dict[str, tuple[str, ...]] = {
    "MD0601": ("MD0406",),  # failing requests <- the clusters trust different roots (verify failures logged)
}

# When a link of the chain could not be checked for a pod (its check was skipped, or that pod's proxy
# evidence is missing: exec refused or timed out), a symptom may still point past it to a deeper cause
# that other evidence shows: that link is *probable*, not confirmed. For each possible cause: what would
# have confirmed it, and the evidence that says so.
EXEC = "exec into istio-proxy"
WOULD_CONFIRM: dict[str, tuple[str, str]] = {
    "MD0201": (EXEC, "Envoy's CDS/LDS update counters at 0, state PRE_INITIALIZING (no config from istiod, MD0201)"),
    "MD0202": (EXEC, "the update_rejected counters and config_dump error_state (config rejected, MD0202)"),
    "MD0203": ("reading istio-system", "istiod's Service and its ready endpoints (MD0203)"),
    "MD0301": (EXEC, "/etc/resolv.conf against the kube-dns Service (MD0301)"),
    "MD0401": (EXEC, "the clusters' TLS settings in config_dump (MD0401)"),
    "MD0403": (EXEC, "the certificates' validity from the SDS secrets or /certs (MD0403)"),
}

# Causes that concern the whole mesh and carry no pod: they explain a symptom in any pod they affect
# (``Finding.affects``: e.g. the pods of the broken istiod revision; empty means every pod).
MESH_WIDE = frozenset({"MD0203"})


def _mesh_wide_causes(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.pod is None and f.code in MESH_WIDE]


def _concerns(cause: Finding, pod: str | None) -> bool:
    return not cause.affects or pod in cause.affects


def _explains(cause: Finding, symptom: Finding) -> bool:
    """A cause naming upstream clusters explains only the symptoms about one of those clusters."""
    return not cause.upstreams or bool(set(cause.upstreams) & set(symptom.upstreams))


def link(findings: list[Finding], unchecked: Callable[[str | None, str], bool] = lambda pod, code: False
         ) -> list[Finding]:
    """Set ``caused_by`` and ``root_cause`` on every finding, following ``CAUSES``.

    A cause links to a symptom when it was seen in the same pod, or when it is mesh-wide; when the cause
    names upstream clusters (``Finding.upstreams``), the symptom must share one. An info finding is an
    observation, not a symptom (MD0601's "access logging is off"): nothing causes it.

    ``unchecked(pod, code)`` says that ``code`` could not be looked for in ``pod``. When no cause of a
    symptom was found but some of its possible causes were unchecked, the symptom records them
    (``Finding.unchecked``), and the causes found *below* them become its probable causes.
    """
    by_pod: dict[str | None, list[Finding]] = defaultdict(list)
    for item in findings:
        if item.severity is not Severity.INFO:  # an observation explains nothing either (MD0205's patch skew)
            by_pod[item.pod].append(item)
    mesh_wide = _mesh_wide_causes(findings)

    linked = []
    for item in findings:
        present = ({c.code for c in by_pod[item.pod] if _explains(c, item)}
                   | {c.code for c in mesh_wide if _concerns(c, item.pod)})
        candidates = () if item.severity is Severity.INFO else CAUSES.get(item.code, ())
        causes = tuple(code for code in candidates if code in present and code != item.code)
        missing: tuple[str, ...] = ()
        if candidates and not causes:
            missing = tuple(code for code in candidates if unchecked(item.pod, code))
            causes = _probable_causes(item, missing, present, unchecked)
        linked.append(item.with_links(root_cause=not causes, caused_by=causes, unchecked=missing,
                                      would_confirm=would_confirm(missing) if missing else ""))
    return linked


def _probable_causes(item: Finding, missing: tuple[str, ...], present: set[str],
                     unchecked: Callable[[str | None, str], bool]) -> tuple[str, ...]:
    """The causes found below the unchecked links ``missing`` (through further unchecked links)."""
    causes: list[str] = []
    frontier = list(missing)
    seen = {item.code, *frontier}
    while frontier:
        below = CAUSES.get(frontier.pop(0), ())
        causes.extend(c for c in below if c in present and c not in causes)
        for deeper in below:
            if deeper not in seen and deeper not in present and unchecked(item.pod, deeper):
                seen.add(deeper)
                frontier.append(deeper)
    return tuple(causes)


def would_confirm(codes: tuple[str, ...]) -> str:
    """One line: what would have confirmed (or ruled out) these unchecked causes, by how to get it."""
    by_source: dict[str, list[str]] = defaultdict(list)
    for code in codes:
        source, shows = WOULD_CONFIRM.get(code, ("its evidence", code))
        by_source[source].append(shows)
    return "; ".join(f"{source} would have shown {', '.join(shows)}" for source, shows in by_source.items())


def root_causes_of(pod: str, findings: list[Finding]) -> list[tuple[Finding, bool]]:
    """The deepest findings reachable from ``pod``'s findings, in tree order, each with True when it
    was reached only through a probable link (a symptom's ``caused_by`` below ``unchecked`` links)."""
    own = [f for f in findings if f.pod == pod]
    by_code: dict[str, list[Finding]] = defaultdict(list)
    for item in findings:
        if item.pod == pod:
            by_code[item.code].append(item)
    for item in _mesh_wide_causes(findings):
        if _concerns(item, pod):
            by_code[item.code].append(item)
    seen: dict[tuple, tuple[Finding, bool]] = {}
    stack = [(item, False) for item in own]
    while stack:
        item, probable = stack.pop()
        if item.root_cause:
            known = seen.get(item.cause_key)
            if known is None or known[1] and not probable:
                seen[item.cause_key] = (item, probable)
        for code in item.caused_by:
            stack.extend((below, probable or bool(item.unchecked)) for below in by_code.get(code, []))
    return sorted(seen.values(), key=lambda pair: pair[0].code)
