"""The core contracts: catalogue, check registry, bundle round trip, tree linking, analysis behaviour."""

from __future__ import annotations

import json
import re
import tarfile

import pytest

from kubectl_meshdoctor.analysis import analyze
from kubectl_meshdoctor.bundle import BUNDLE_FORMAT, EvidenceBundle
from kubectl_meshdoctor.catalogue import CATALOGUE, entry
from kubectl_meshdoctor.checks import all_checks
from kubectl_meshdoctor.checks.base import Check, finding
from kubectl_meshdoctor.errors import BundleError, UsageError
from kubectl_meshdoctor.evidence import (
    AccessLog, Certificate, ClusterSummary, ProxyConfig, ProxyEvidence, Readiness, ResolvConf,
    TLS_ISTIO_ALWAYS,
)
from kubectl_meshdoctor.findings import Severity, Subject
from kubectl_meshdoctor.tree import CAUSES, link


def test_catalogue_codes_are_unique_ordered_and_well_formed():
    codes = [e.code for e in CATALOGUE]
    assert codes == sorted(codes)
    assert len(set(codes)) == len(codes)
    assert len({e.name for e in CATALOGUE}) == len(codes)
    for item in CATALOGUE:
        assert re.fullmatch(r"MD0[1-9]\d\d", item.code)
        assert all([item.title, item.symptom, item.cause, item.detection, item.fix])


def test_catalogue_lookup_is_case_insensitive_and_rejects_unknown_codes():
    assert entry("md0301").name == "ClusterDnsChanged"
    with pytest.raises(UsageError):
        entry("MD9999")


def test_every_check_declares_catalogued_codes_and_known_evidence():
    from kubectl_meshdoctor.evidence import Evidence

    known = {e.code for e in CATALOGUE}
    names = [c.name for c in all_checks()]
    assert len(names) == len(set(names))
    for check in all_checks():
        assert check.codes and set(check.codes) <= known, check.name
        assert check.needs <= Evidence.API | Evidence.PROXY, check.name


def test_tree_refers_only_to_catalogued_codes():
    known = {e.code for e in CATALOGUE}
    for symptom, causes in CAUSES.items():
        assert symptom in known and set(causes) <= known


def _full_bundle() -> EvidenceBundle:
    proxy = ProxyEvidence(
        pod="shop/cart-1",
        readiness=Readiness(ready=False, port=15020, status=503, detail="config not received"),
        stats={"cluster_manager.cds.update_success": 0},
        config=ProxyConfig(clusters=(ClusterSummary("outbound|6379||redis.shop.svc.cluster.local", "ORIGINAL_DST", TLS_ISTIO_ALWAYS),)),
        certs=(Certificate("workload", "1f", ("spiffe://cluster.local/ns/shop/sa/cart",), "2026-11-23T00:00:00Z", "2026-11-24T00:00:00Z"),),
        resolv_conf=ResolvConf(nameservers=("10.0.0.10",)),
        access_log=AccessLog(lines_read=3, access_lines=0),
    )
    return EvidenceBundle(
        scope={"kind": "namespace", "namespace": "shop"},
        objects=[
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "cart-1", "namespace": "shop"},
             "spec": {"containers": [{"name": "app", "env": [{"name": "TOKEN", "value": "s3cr3t-value"}]}]}},
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"}, "data": {"p": "eA=="}},
        ],
        proxies={proxy.pod: proxy},
        available={"pods", "proxy-certs"},
    )


@pytest.mark.parametrize("name", ["bundle-dir", "bundle.tgz"])
def test_bundle_round_trip_keeps_evidence_and_drops_secrets(tmp_path, name):
    bundle = _full_bundle()
    bundle.add_gap("exec", "forbidden", pod="shop/cart-1")
    path = bundle.save(tmp_path / name)
    loaded = EvidenceBundle.load(path)
    assert loaded.proxies == bundle.proxies
    assert loaded.available == bundle.available
    assert loaded.gaps == bundle.gaps
    assert [o["kind"] for o in loaded.objects] == ["Pod"]  # the Secret is never written
    if path.is_file():
        with tarfile.open(path) as tar:
            raw = b"".join(tar.extractfile(m).read() for m in tar if m.isfile())
    else:
        raw = b"".join(p.read_bytes() for p in path.rglob("*.json"))
    assert b"s3cr3t-value" not in raw


def test_bundle_scrubs_private_keys_and_tokens(tmp_path):
    bundle = _full_bundle()
    bundle.add_gap("log", "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY----- Bearer abcdefghijklmnop")
    path = bundle.save(tmp_path / "b")
    text = (path / "bundle.json").read_text()
    assert "MIIB" not in text and "abcdefghijklmnop" not in text


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such file"),
        (b"", "cannot read bundle"),
        (b"\x1f\x8b\x08garbage", "cannot read bundle"),
    ],
)
def test_bad_bundles_raise_bundle_error(tmp_path, content, message):
    path = tmp_path / "b.tgz"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(BundleError, match=message):
        EvidenceBundle.load(path)


def test_bundle_of_another_format_version_is_refused(tmp_path):
    (tmp_path / "bundle.json").write_text(json.dumps({"format": "meshdoctor.bundle/v99"}))
    with pytest.raises(BundleError, match="v99.*not supported"):
        EvidenceBundle.load(tmp_path)


def test_corrupt_proxy_file_is_a_bundle_error(tmp_path):
    path = _full_bundle().save(tmp_path / "b")
    proxy_file = next((path / "proxies").rglob("*.json"))
    proxy_file.write_text('{"pod": "shop/cart-1", "certs": "not-a-list"}')
    with pytest.raises(BundleError, match="corrupt bundle"):
        EvidenceBundle.load(path)
    assert BUNDLE_FORMAT.endswith("/v1")


def _f(code, pod):
    return finding(code, Subject("Pod", pod.split("/")[1], pod.split("/")[0]) if pod else Subject("Service", "istiod", "istio-system"), "m", pod=pod)


def test_link_marks_deepest_cause_and_chains_symptoms():
    linked = {(f.code, f.pod): f for f in link([_f("MD0102", "a/p"), _f("MD0201", "a/p"), _f("MD0301", "a/p"), _f("MD0102", "a/q")])}
    assert linked[("MD0102", "a/p")].caused_by == ("MD0201",) and not linked[("MD0102", "a/p")].root_cause
    assert linked[("MD0201", "a/p")].caused_by == ("MD0301",)
    assert linked[("MD0301", "a/p")].root_cause
    # a symptom whose cause was not found is the deepest cause found
    assert linked[("MD0102", "a/q")].root_cause and linked[("MD0102", "a/q")].caused_by == ()


def test_mesh_wide_cause_links_to_every_pod_and_groups_them():
    class Fake(Check):
        name, codes, needs = "fake", ("MD0201", "MD0203"), frozenset()

        def run(self, ctx):
            yield _f("MD0203", None)
            for pod in ("a/p", "a/q"):
                yield _f("MD0201", pod)

    bundle = EvidenceBundle(scope={"kind": "namespace", "pods": ["a/p", "a/q"]})
    report = analyze(bundle, checks=[Fake()])
    assert [p.root_causes for p in report.pods] == [("MD0203",), ("MD0203",)]
    assert [(g.cause.code, g.pods) for g in report.groups] == [("MD0203", ("a/p", "a/q"))]
    assert report.exit_code() == 1


def test_a_mesh_wide_cause_links_only_to_the_pods_it_affects():
    class Fake(Check):
        name, codes, needs = "fake", ("MD0201", "MD0203"), frozenset()

        def run(self, ctx):
            # istiod-canary is down: it explains the canary pod, not the pod of the healthy default revision
            yield finding("MD0203", Subject("Service", "istiod-canary", "istio-system"), "down", affects=("a/canary",))
            yield _f("MD0201", "a/canary")
            yield _f("MD0201", "a/stable")

    report = analyze(EvidenceBundle(scope={"kind": "namespace", "pods": ["a/canary", "a/stable"]}), checks=[Fake()])
    by_pod = {f.pod: f for f in report.findings if f.code == "MD0201"}
    assert by_pod["a/canary"].caused_by == ("MD0203",) and not by_pod["a/canary"].root_cause
    assert by_pod["a/stable"].caused_by == () and by_pod["a/stable"].root_cause
    assert {p.pod: p.root_causes for p in report.pods} == {"a/canary": ("MD0203",), "a/stable": ("MD0201",)}


def test_a_check_that_raises_becomes_a_gap_and_others_still_run():
    class Broken(Check):
        name, codes, needs = "broken", ("MD0502",), frozenset()

        def run(self, ctx):
            raise RuntimeError("boom")

    class Works(Check):
        name, codes, needs = "works", ("MD0203",), frozenset()

        def run(self, ctx):
            yield _f("MD0203", None)

    report = analyze(EvidenceBundle(scope={"kind": "manifests"}), checks=[Broken(), Works()])
    assert [f.code for f in report.findings] == ["MD0203"]
    assert any("broken" in g.what and "RuntimeError: boom" in g.reason for g in report.gaps)
    assert "Traceback" in report.check_errors[0]


def test_a_check_without_its_evidence_is_skipped_with_the_reason():
    class NeedsDns(Check):
        name, codes, needs = "dns", ("MD0301",), frozenset({"resolv-conf"})

        def run(self, ctx):
            raise AssertionError("must not run")

    report = analyze(EvidenceBundle(scope={"kind": "manifests"}), checks=[NeedsDns()])
    assert report.skipped[0].reason == "evidence not available: resolv-conf"


def test_an_info_finding_is_an_observation_and_links_to_no_cause():
    logging_off = finding("MD0601", Subject("ConfigMap", "istio", "istio-system"), "access logging is off", pod="a/p",
                          severity=Severity.INFO)
    failures = _f("MD0601", "a/q")
    linked = {(f.code, f.pod): f for f in link([logging_off, failures, _f("MD0403", "a/p"), _f("MD0403", "a/q")])}
    assert linked[("MD0601", "a/p")].caused_by == () and linked[("MD0601", "a/p")].root_cause
    assert linked[("MD0601", "a/q")].caused_by == ("MD0403",) and not linked[("MD0601", "a/q")].root_cause
