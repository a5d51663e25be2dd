"""The API-object checks (MD0101, MD0402, MD0501, MD0502) on Istio's real Bookinfo manifests, plus the
rules they encode that the case table does not show one by one.

Bookinfo is read from ../shared at test time (skipped without it), never copied here.
"""

from __future__ import annotations

import copy

import pytest

from kubectl_meshdoctor.analysis import analyze
from kubectl_meshdoctor.checks.port_protocol_unknown import declared_protocol
from kubectl_meshdoctor.checks.sidecar_missing import injection_reason
from kubectl_meshdoctor.checks.subset_not_defined import exported_to, subset_routes
from kubectl_meshdoctor.manifests import bundle_from_objects, is_kubernetes_object, read_documents


@pytest.fixture
def bookinfo(shared_dir):
    root = shared_dir / "istio-data" / "bookinfo"

    def load(*relative: str, extra: tuple[dict, ...] = ()) -> list[dict]:
        objects = [d for rel in relative for d in read_documents(root / rel) if is_kubernetes_object(d)]
        return objects + [copy.deepcopy(e) for e in extra]

    return load


def _report(objects: list[dict]):
    return analyze(bundle_from_objects(objects, {"kind": "manifests"}))


def _codes(report, code: str):
    assert not report.check_errors, report.check_errors
    assert not [s for s in report.skipped if code in s.codes], report.skipped
    return [f for f in report.findings if f.code == code]


PLATFORM = "platform/kube/bookinfo.yaml"
ALL_RULES = "networking/destination-rule-all.yaml"


def test_bookinfo_all_v1_routes_have_their_subsets(bookinfo):
    objects = bookinfo(PLATFORM, ALL_RULES, "networking/virtual-service-all-v1.yaml")
    assert {o["kind"] for o in objects} >= {"Service", "Deployment", "DestinationRule", "VirtualService"}
    assert _codes(_report(objects), "MD0501") == []


def test_bookinfo_reviews_v3_without_v3_subset_fires_on_the_virtual_service(bookinfo):
    broken = {
        "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": "reviews"},
        "spec": {"host": "reviews", "subsets": [
            {"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}},
        ]},
    }
    objects = [
        o for o in bookinfo(PLATFORM, ALL_RULES, "networking/virtual-service-reviews-v3.yaml")
        if not (o["kind"] == "DestinationRule" and o["metadata"]["name"] == "reviews")
    ] + [broken]
    found = _codes(_report(objects), "MD0501")
    assert len(found) == 1
    item = found[0]
    assert (item.subject.kind, item.subject.namespace, item.subject.name) == ("VirtualService", "default", "reviews")
    assert "subset v3 of reviews.default.svc.cluster.local" in item.message
    assert "DestinationRule default/reviews (host reviews) defines subsets: v1, v2" in item.evidence


def test_bookinfo_reviews_v3_with_the_real_rules_is_clean(bookinfo):
    objects = bookinfo(PLATFORM, ALL_RULES, "networking/virtual-service-reviews-v3.yaml")
    assert _codes(_report(objects), "MD0501") == []


def test_bookinfo_service_ports_are_all_recognised(bookinfo):
    assert _codes(_report(bookinfo(PLATFORM, ALL_RULES)), "MD0502") == []


def test_bookinfo_plain_text_rule_under_mesh_wide_strict_names_the_reviews_deployments(bookinfo):
    strict = {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
              "metadata": {"name": "default", "namespace": "istio-system"}, "spec": {"mtls": {"mode": "STRICT"}}}
    plain = {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
             "metadata": {"name": "reviews-plain"},
             "spec": {"host": "reviews", "trafficPolicy": {"tls": {"mode": "DISABLE"}}}}
    found = _codes(_report(bookinfo(PLATFORM, extra=(strict, plain))), "MD0402")
    assert [f.subject.name for f in found] == ["reviews-plain"]
    workloads = [line for line in found[0].evidence if " is STRICT by " in line]
    assert sorted(line.split(" is ")[0] for line in workloads) == [
        "Deployment default/reviews-v1", "Deployment default/reviews-v2", "Deployment default/reviews-v3",
    ]
    # Istio's own all-mTLS rules ask for ISTIO_MUTUAL: no conflict with STRICT.
    mutual = bookinfo(PLATFORM, "networking/destination-rule-all-mtls.yaml", extra=(strict,))
    assert _codes(_report(mutual), "MD0402") == []


@pytest.mark.parametrize(
    "value, protocol",
    [
        ("http", "http"), ("HTTP", "http"), ("http-web", "http"), ("http2-foo", "http2"), ("grpc", "grpc"),
        ("grpc-web", "grpc-web"), ("GRPC-Web-ui", "grpc-web"), ("grpc-webfoo", "grpc-web"), ("https", "https"),
        ("tcp", "tcp"), ("tls-sni", "tls"), ("mongo", "mongo"), ("mysql", "mysql"), ("redis", "redis"),
        ("udp", "udp"), ("http_proxy", "http_proxy"), ("kubernetes.io/h2c", "kubernetes.io/h2c"),
        ("http2foo", None), ("web", None), ("h2c", None), ("HTTP/1.1", None), ("", None), ("-http", None),
        ("kubernetes.io/grpc", None),
    ],
)
def test_declared_protocol_follows_istio_rules(value, protocol):
    assert declared_protocol(value) == protocol


def _pod(labels=None, annotations=None):
    return {"metadata": {"name": "p", "namespace": "ns", "labels": labels or {}, "annotations": annotations or {}}}


@pytest.mark.parametrize(
    "ns_labels, pod, expected",
    [
        ({"istio-injection": "enabled"}, _pod(), "namespace ns: istio-injection=enabled"),
        ({"istio.io/rev": "1-24"}, _pod(), "namespace ns: istio.io/rev=1-24"),
        (None, _pod({"sidecar.istio.io/inject": "true"}), "pod label sidecar.istio.io/inject=true"),
        (None, _pod({"istio.io/rev": "canary"}), "pod label istio.io/rev=canary"),
        (None, _pod(), None),  # Namespace object absent: nothing on the pod asks for injection
        ({}, _pod(), None),
        ({"istio-injection": "enabled"}, _pod({"sidecar.istio.io/inject": "false"}), None),
        ({"istio-injection": "enabled"}, _pod(annotations={"sidecar.istio.io/inject": "false"}), None),
        # the label wins over the annotation, as in the injector
        ({"istio-injection": "enabled"},
         _pod({"sidecar.istio.io/inject": "true"}, {"sidecar.istio.io/inject": "false"}),
         "namespace ns: istio-injection=enabled"),
        ({"istio-injection": "disabled"}, _pod({"sidecar.istio.io/inject": "true"}), None),
    ],
)
def test_injection_reason(ns_labels, pod, expected):
    assert injection_reason("ns", ns_labels, pod) == expected


def test_export_to_rules():
    rule = {"metadata": {"namespace": "a"}, "spec": {}}
    assert exported_to(rule, "b")
    rule["spec"]["exportTo"] = ["."]
    assert exported_to(rule, "a") and not exported_to(rule, "b")
    rule["spec"]["exportTo"] = ["b", "c"]
    assert exported_to(rule, "c") and not exported_to(rule, "a")
    rule["spec"]["exportTo"] = ["~"]
    assert not exported_to(rule, "a")


def test_subset_routes_cover_http_tcp_tls_and_mirrors_and_resolve_short_names():
    vs = {"metadata": {"namespace": "web"}, "spec": {
        "http": [{"route": [{"destination": {"host": "a", "subset": "x"}}, {"destination": {"host": "b"}}],
                  "mirror": {"host": "m.other", "subset": "y"},
                  "mirrors": [{"destination": {"host": "n", "subset": "z"}}]}],
        "tcp": [{"route": [{"destination": {"host": "db.data.svc.cluster.local", "subset": "p"}}]}],
        "tls": [{"route": [{"destination": {"host": "api.example.com", "subset": "q"}}]}],
    }}
    found = [(r.where, r.fqdn, r.subset) for r in subset_routes(vs)]
    assert found == [
        ("http[0].route[0]", "a.web.svc.cluster.local", "x"),
        ("http[0].mirror", "m.other.svc.cluster.local", "y"),
        ("http[0].mirrors[0]", "n.web.svc.cluster.local", "z"),
        ("tcp[0].route[0]", "db.data.svc.cluster.local", "p"),
        ("tls[0].route[0]", "api.example.com", "q"),
    ]


def _vs_and_rule(rule_subsets: list[str]) -> list[dict]:
    return [
        {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
         "metadata": {"name": "partner", "namespace": "web"},
         "spec": {"hosts": ["api.partner.example.com"],
                  "http": [{"route": [{"destination": {"host": "api.partner.example.com", "subset": "eu"}}]}]}},
        {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
         "metadata": {"name": "partners", "namespace": "web"},
         "spec": {"host": "*.partner.example.com", "subsets": [{"name": s, "labels": {"region": s}} for s in rule_subsets]}},
    ]


def test_wildcard_destination_rule_counts_for_the_hosts_it_covers():
    assert _codes(_report(_vs_and_rule(["eu", "us"])), "MD0501") == []
    found = _codes(_report(_vs_and_rule(["us"])), "MD0501")
    assert [f.subject.name for f in found] == ["partner"]
    assert any("*.partner.example.com" in line for line in found[0].evidence)
