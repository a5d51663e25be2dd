"""Cross-cluster checks: what only shows when the clusters of one mesh are looked at side by side.

Every ordinary check (``kubectl_meshdoctor.checks``) runs on one cluster's bundle; a check here gets
every cluster of a multi-cluster run (``ClusterEvidence``: context, identity, bundle) and compares them.
Same rules as the ordinary checks: one module per check defining ``CHECK``, pure, no I/O, codes in the
catalogue. They run only when at least two clusters could be read.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from typing import ClassVar, Iterable

from kubectl_meshdoctor.findings import Finding


class MultiCheck:
    name: ClassVar[str]
    codes: ClassVar[tuple[str, ...]]

    def run(self, clusters: list) -> Iterable[Finding]:  # clusters: list[ClusterEvidence], all readable
        raise NotImplementedError

    def explains(self, cause: Finding, symptom: Finding, proxy, clusters: list = ()) -> bool:
        """Whether the pod's own evidence (its ProxyEvidence, or None) shows ``cause`` behind ``symptom``
        (tree.ACROSS_CLUSTERS names the pairs worth asking about); ``clusters``: every readable cluster, to
        tell where that evidence points (the pod behind an endpoint address)."""
        return False


@cache
def all_multi_checks() -> tuple[MultiCheck, ...]:
    checks = []
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not module_info.name.startswith("_"):
            checks.append(importlib.import_module(f"{__name__}.{module_info.name}").CHECK)
    return tuple(sorted(checks, key=lambda c: (c.codes, c.name)))


def meshes_differ(a, b) -> bool:
    """Two clusters (ClusterEvidence) that both show a mesh ID, and not the same one: not one mesh."""
    first, second = a.identity.get("meshId"), b.identity.get("meshId")
    return bool(first and second and first != second)
