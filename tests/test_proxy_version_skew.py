"""MD0205's version reading: releases from image tags and labels, the workload to restart, and the
Istio release a real Envoy reports in /server_info's node metadata."""

from __future__ import annotations

import pytest

from kubectl_meshdoctor.checks.proxy_version_skew import image_tag, minor_distance, release_of, workload_of
from kubectl_meshdoctor.envoy.server_info import parse_server_info


@pytest.mark.parametrize("text, release", [
    ("1.24.2", (1, 24, 2)), ("1.24.2-distroless", (1, 24, 2)), ("1.25.0-beta.1", (1, 25, 0)),
    ("v1.23", (1, 23, 0)), ("latest", None), ("", None), ("binary-1.0", None), ("1.2.3.4", None),
])
def test_release_of(text, release):
    assert release_of(text) == release


@pytest.mark.parametrize("image, tag", [
    ("docker.io/istio/proxyv2:1.24.2", "1.24.2"), ("registry:5000/istio/proxyv2:1.22.1-distroless", "1.22.1-distroless"),
    ("registry:5000/istio/proxyv2", ""), ("gcr.io/istio/pilot@sha256:abcd", ""),
])
def test_image_tag(image, tag):
    assert image_tag(image) == tag


def test_minor_distance_counts_minors_behind_and_ahead():
    assert minor_distance((1, 22, 9), (1, 24, 0)) == 2
    assert minor_distance((1, 25, 0), (1, 24, 2)) == -1
    assert minor_distance((1, 99, 0), (2, 0, 0)) > 1


def test_workload_of_names_the_deployment_to_restart():
    owned = {"metadata": {"name": "cart-7d9f4-x2x8q", "labels": {"pod-template-hash": "7d9f4"},
                          "ownerReferences": [{"kind": "ReplicaSet", "name": "cart-7d9f4", "controller": True}]}}
    assert workload_of(owned) == "deployment/cart"
    stateful = {"metadata": {"name": "db-0", "ownerReferences": [{"kind": "StatefulSet", "name": "db", "controller": True}]}}
    assert workload_of(stateful) == "statefulset/db"
    bare = {"metadata": {"name": "web-abc12-xyz", "labels": {"pod-template-hash": "abc12"}}}
    assert workload_of(bare) == "deployment/web"
    assert workload_of({"metadata": {"name": "lonely"}}) == "deployment/<workload>"


def test_server_info_keeps_the_istio_release_of_the_node_metadata(shared_dir):
    info = parse_server_info((shared_dir / "envoy-captures" / "exp2-server_info.json").read_bytes())
    assert info.istio_version == "1.28.0"
    assert parse_server_info(b'{"state": "LIVE", "version": "x", "node": {"metadata": {}}}').istio_version == ""
    assert parse_server_info(b'{"state": "LIVE", "version": "x", "node": "odd"}').istio_version == ""


def test_skew_explains_a_rejection_only_when_it_is_outside_support():
    from kubectl_meshdoctor.findings import Finding, Severity, Subject
    from kubectl_meshdoctor.tree import link

    def found(code, severity):
        return Finding(code=code, severity=severity, subject=Subject("Pod", "web-1", "shop"), message=code,
                       remediation="", pod="shop/web-1")

    rejected = found("MD0202", Severity.ERROR)
    linked = {f.code: f for f in link([rejected, found("MD0205", Severity.WARNING)])}
    assert linked["MD0202"].caused_by == ("MD0205",) and linked["MD0205"].root_cause
    linked = {f.code: f for f in link([rejected, found("MD0205", Severity.INFO)])}
    assert linked["MD0202"].caused_by == () and linked["MD0202"].root_cause  # a patch difference explains nothing
