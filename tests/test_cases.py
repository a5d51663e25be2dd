"""Table-driven check cases: every finding code has a case that fires it and one that must not."""

from __future__ import annotations

from pathlib import Path

import pytest

from caseloader import load_case
from kubectl_meshdoctor.analysis import analyze
from kubectl_meshdoctor.catalogue import CATALOGUE
from kubectl_meshdoctor.multianalysis import analyze_clusters
from kubectl_meshdoctor.multibundle import MultiClusterBundle

CASES_DIR = Path(__file__).parent / "cases"
CASE_FILES = sorted(CASES_DIR.glob("MD*/*.yaml"))


@pytest.mark.parametrize("path", CASE_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_case(path: Path):
    bundle, case = load_case(path)
    assert case.outcome in ("fires", "clean"), f"{path.name} must start with fires- or clean-"
    if isinstance(bundle, MultiClusterBundle):  # cross-cluster codes: a case of several clusters
        report = analyze_clusters(bundle, now=case.now, ca_warn_days=case.ca_warn_days)
    else:
        report = analyze(bundle, now=case.now, ca_warn_days=case.ca_warn_days)
    assert not report.check_errors, report.check_errors
    skipped = [s for s in report.skipped if case.code in s.codes]
    assert not skipped, f"the check for {case.code} was skipped: {skipped[0].reason}"
    found = [f for f in report.findings if f.code == case.code]
    if case.outcome == "fires":
        assert found, f"{case.code} did not fire; findings: {[f.code for f in report.findings]}"
        for expected in case.expect:
            assert any(case.matches(f, expected) for f in found), (expected, [f.to_dict() for f in found])
    else:
        assert not found, [f.to_dict() for f in found]


def test_every_code_has_a_firing_and_a_clean_case():
    missing = []
    for item in CATALOGUE:
        if item.retired:
            continue
        names = [p.name for p in (CASES_DIR / item.code).glob("*.yaml")]
        for outcome in ("fires", "clean"):
            if not any(n.startswith(f"{outcome}-") for n in names):
                missing.append(f"{item.code}: no {outcome}-*.yaml")
    assert not missing, missing
