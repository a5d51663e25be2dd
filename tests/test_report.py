"""The terminal view and structured output, rendered from reports built by the real analysis."""

from __future__ import annotations

import io

import yaml

from kubectl_meshdoctor.analysis import analyze
from kubectl_meshdoctor.bundle import EvidenceBundle
from kubectl_meshdoctor.checks.base import Check, finding
from kubectl_meshdoctor.evidence import Evidence, Gap
from kubectl_meshdoctor.findings import Subject
from kubectl_meshdoctor.report import make_console, print_report, structured
from kubectl_meshdoctor.report.terminal import chain_to

DNS = Subject("Service", "kube-dns", "kube-system")


class BrokenDns(Check):
    """Every pod whose name starts with "bad" shows the DNS chain: not ready <- no config <- DNS changed."""

    name = "test-broken-dns"
    codes = ("MD0102", "MD0201", "MD0301")
    needs = frozenset({Evidence.PODS})

    def run(self, ctx):
        for pod in ctx.pods:
            key = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
            if pod["metadata"]["name"].startswith("bad"):
                yield finding("MD0102", Subject("Pod", pod["metadata"]["name"], "shop"), "istio-proxy not ready", pod=key)
                yield finding("MD0201", Subject("Pod", pod["metadata"]["name"], "shop"), "no config from istiod",
                              ["cds.update_success 0"], pod=key)
                yield finding("MD0301", DNS, "cluster DNS ClusterIP changed (10.96.0.10 -> 10.96.0.99)",
                              ["resolv.conf nameserver 10.96.0.10", "kube-dns ClusterIP 10.96.0.99"], pod=key)


class NeedsProxyConfig(Check):
    name = "test-needs-config"
    codes = ("MD0501",)
    needs = frozenset({Evidence.PROXY_CONFIG})

    def run(self, ctx):
        return []


def bundle(*names: str, gaps=()) -> EvidenceBundle:
    # meshed pods, as in the DNS story (a live pod without istio-proxy would be reported unmeshed)
    pods = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": n, "namespace": "shop"},
             "spec": {"containers": [{"name": "app"}, {"name": "istio-proxy"}]}} for n in names]
    return EvidenceBundle(scope={"kind": "namespace", "namespace": "shop"}, objects=pods,
                          available={Evidence.PODS}, gaps=list(gaps))


def render(report) -> str:
    out = io.StringIO()
    print_report(report, make_console(out, color=False))
    return out.getvalue()


def test_shared_root_cause_is_shown_once_with_its_pod_count():
    report = analyze(bundle("bad-1", "bad-2", "bad-3", "good-1"), checks=[BrokenDns()])
    text = render(report)
    assert text.count("3 pods: cluster DNS ClusterIP changed (10.96.0.10 -> 10.96.0.99)") == 1
    assert "Service kube-system/kube-dns" in text
    assert "same cause in 3 pods: shop/bad-1, shop/bad-2, shop/bad-3" in text
    assert "1 healthy pod" in text and "shop/bad-2  failing  MD0301" in text
    assert "| kube-dns ClusterIP 10.96.0.99" in text
    assert text.rstrip().endswith("9 findings: 9 errors in 4 pods (3 failing)")


def test_chain_runs_from_the_symptom_to_the_cause():
    report = analyze(bundle("bad-1"), checks=[BrokenDns()])
    cause = next(f for f in report.findings if f.code == "MD0301")
    assert [f.code for f in chain_to(cause, report.findings, "shop/bad-1")] == ["MD0102", "MD0201", "MD0301"]


def test_healthy_mesh_prints_one_line_plus_gaps_and_skips():
    gap = Gap(what="exec into istio-proxy", reason="exec refused: pods/exec is forbidden", pod="shop/good-2")
    report = analyze(bundle("good-1", "good-2", gaps=[gap]), checks=[BrokenDns(), NeedsProxyConfig()])
    lines = render(report).strip().splitlines()
    assert lines == [
        "no problems found in 2 pods",
        "gap: shop/good-2: exec into istio-proxy: exec refused: pods/exec is forbidden",
        "skipped: test-needs-config (MD0501): evidence not available: proxy-config",
    ]


def test_yaml_and_json_are_the_same_document():
    document = analyze(bundle("bad-1"), checks=[BrokenDns()]).to_dict()
    assert yaml.safe_load(structured(document, "yaml")) == document
    assert list(yaml.safe_load(structured(document, "yaml"))) == list(document)  # key order kept
