"""The failure tree, as data in one place: which finding can explain which.

Read it top-down as the on-call engineer would: a symptom, then the causes that may explain it. A
finding whose possible causes were not found is the deepest cause found: ``rootCause: true``.
"""

from __future__ import annotations

from collections import defaultdict

from kubectl_meshdoctor.findings import Finding, Severity

# symptom code -> codes that can explain it
CAUSES: dict[str, tuple[str, ...]] = {
    "MD0102": ("MD0201", "MD0202"),  # istio-proxy not ready <- no config / config rejected
    "MD0201": ("MD0203", "MD0301"),  # no config from istiod <- istiod unavailable / pod DNS broken
    "MD0202": ("MD0205",),  # config rejected <- proxy and istiod releases outside the supported skew
    "MD0204": ("MD0203", "MD0301"),  # configured once, no updates now <- istiod unavailable / pod DNS broken
    "MD0601": ("MD0401", "MD0402", "MD0501", "MD0403", "MD0404"),  # failing requests <- why they fail
}

# Causes that concern the whole mesh and carry no pod: they explain a symptom in any pod they affect
# (``Finding.affects``: e.g. the pods of the broken istiod revision; empty means every pod).
MESH_WIDE = frozenset({"MD0203"})


def _mesh_wide_causes(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.pod is None and f.code in MESH_WIDE]


def _concerns(cause: Finding, pod: str | None) -> bool:
    return not cause.affects or pod in cause.affects


def link(findings: list[Finding]) -> list[Finding]:
    """Set ``caused_by`` and ``root_cause`` on every finding, following ``CAUSES``.

    A cause links to a symptom when it was seen in the same pod, or when it is mesh-wide. An info
    finding is an observation, not a symptom (MD0601's "access logging is off"): nothing causes it.
    """
    codes_by_pod: dict[str | None, set[str]] = defaultdict(set)
    for item in findings:
        codes_by_pod[item.pod].add(item.code)
    mesh_wide = _mesh_wide_causes(findings)

    linked = []
    for item in findings:
        present = codes_by_pod[item.pod] | {c.code for c in mesh_wide if _concerns(c, item.pod)}
        candidates = () if item.severity is Severity.INFO else CAUSES.get(item.code, ())
        causes = tuple(code for code in candidates if code in present and code != item.code)
        linked.append(item.with_links(root_cause=not causes, caused_by=causes))
    return linked


def root_causes_of(pod: str, findings: list[Finding]) -> list[Finding]:
    """The deepest findings reachable from ``pod``'s findings, in tree order."""
    own = [f for f in findings if f.pod == pod]
    by_code: dict[str, list[Finding]] = defaultdict(list)
    for item in findings:
        if item.pod == pod:
            by_code[item.code].append(item)
    for item in _mesh_wide_causes(findings):
        if _concerns(item, pod):
            by_code[item.code].append(item)
    seen: dict[tuple, Finding] = {}
    stack = list(own)
    while stack:
        item = stack.pop()
        if item.root_cause:
            seen.setdefault(item.cause_key, item)
        for code in item.caused_by:
            stack.extend(by_code.get(code, []))
    return sorted(seen.values(), key=lambda f: f.code)
