"""Odd but loadable objects (a saved bundle edited by hand, a cluster with strange data) never make the
analysis raise, nor the code added for issue 12 (workloads, injectors, unmeshed pods and their checks):
each case's objects with one value replaced by arbitrary JSON are analysed. Older shared helpers
(AnalysisContext's indexes) may still fail on such data; a check then becomes an "internal error" gap,
as designed, so only failures inside the new modules fail this test."""

from __future__ import annotations

import copy
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caseloader import load_case
from kubectl_meshdoctor.analysis import analyze
from kubectl_meshdoctor.checks import all_checks

CASES = Path(__file__).parent / "cases"
SEEDS = sorted(p for code in ("MD0103", "MD0104", "MD0206", "MD0511", "MD0401") for p in (CASES / code).glob("*.yaml"))
CODES = {"MD0103", "MD0104", "MD0206", "MD0511", "MD0401"}
CHECKS = [c for c in all_checks() if set(c.codes) & CODES]
NEW_MODULES = ("workloads.py", "injectors.py", "unmeshed.py", "injection_failed.py", "proxy_uid_conflict.py",
               "port_protocol_conflict.py", "control_plane_not_redundant.py", "mtls_to_unmeshed_server.py")
EXAMPLES = int(os.environ.get("MESHDOCTOR_FUZZ_EXAMPLES", "150"))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def _replace(node, choices: list[int], value):
    """Replace one value somewhere inside ``node`` (not the kind or metadata.name, which loading requires)."""
    for index, choice in enumerate(choices):
        children = list(node.items()) if isinstance(node, dict) else list(enumerate(node)) if isinstance(node, list) else []
        children = [(k, c) for k, c in children if k not in ("kind", "apiVersion")]
        if not children:
            return
        key, child = children[choice % len(children)]
        if not isinstance(child, (dict, list)) or index == len(choices) - 1:
            node[key] = value
            return
        node = child


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(SEEDS), which=st.integers(0, 50), path=st.lists(st.integers(0, 50), min_size=1, max_size=6),
       value=json_values)
def test_damaged_objects_never_crash_the_checks(seed, which, path, value):
    bundle, case = load_case(seed)
    bundle.objects = copy.deepcopy(bundle.objects)
    target = bundle.objects[which % len(bundle.objects)]
    _replace(target, path, value)
    if not isinstance(target.get("metadata"), dict):
        target["metadata"] = {"name": "x"}
    report = analyze(bundle, now=case.now, checks=CHECKS)  # never raises
    for error in report.check_errors:
        frames = [line for line in error.splitlines() if line.strip().startswith('File "')]
        assert not any(module in frames[-1] for module in NEW_MODULES), error
