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


class NotReadyEverywhere(Check):
    """Every pod's istio-proxy is not ready and nothing below was found: one root cause per pod."""

    name = "test-not-ready"
    codes = ("MD0102",)
    needs = frozenset({Evidence.PODS})

    def run(self, ctx):
        for pod in ctx.pods:
            key = f"shop/{pod['metadata']['name']}"
            yield finding("MD0102", Subject("Pod", pod["metadata"]["name"], "shop"),
                          f"istio-proxy in pod {key} is not ready (1/2 READY)", ["istio-proxy ready=false"], pod=key)


class MissingSubsets(Check):
    name = "test-subsets"
    codes = ("MD0501",)
    needs = frozenset()

    def run(self, ctx):
        vs = Subject("VirtualService", "catalog-split", "storefront")
        for subset in ("v2", "v1"):
            yield finding("MD0501", vs, f"VirtualService storefront/catalog-split routes to subset {subset} of "
                          "catalog.storefront.svc.cluster.local, which no DestinationRule defines", [f"subset {subset}"])
        yield finding("MD0501", Subject("VirtualService", "other", "storefront"),
                      "VirtualService storefront/other routes to subset v9 of other.storefront.svc.cluster.local, "
                      "which no DestinationRule defines")


def test_root_causes_naming_their_pod_are_one_line_with_the_pod_count():
    text = render(analyze(bundle("a-1", "a-2", "a-3"), checks=[NotReadyEverywhere()]))
    roots = text.split("ROOT CAUSES", 1)[1].split("DIAGNOSIS", 1)[0]
    assert roots.count("[ERROR]") == 1, roots
    assert "3 pods: istio-proxy is not ready (1/2 READY) (MD0102 SidecarNotReady, 3 Pods)" in roots
    # the diagnosis shows one representative chain and names every pod
    assert text.count("MD0102 SidecarNotReady: istio-proxy in pod") == 1
    assert "same cause in 3 pods: shop/a-1, shop/a-2, shop/a-3" in text


def test_one_pod_keeps_its_own_message():
    text = render(analyze(bundle("a-1"), checks=[NotReadyEverywhere()]))
    assert "1 pod: istio-proxy in pod shop/a-1 is not ready (1/2 READY)" in text


def test_subsets_of_one_virtual_service_are_one_line():
    text = render(analyze(EvidenceBundle(scope={"kind": "manifests"}), checks=[MissingSubsets()]))
    roots = text.split("ROOT CAUSES", 1)[1].split("DIAGNOSIS", 1)[0]
    assert ("VirtualService storefront/catalog-split routes to subsets v1, v2 of catalog.storefront.svc.cluster.local, "
            "which no DestinationRule defines") in roots
    assert "routes to subset v9" in roots  # another VirtualService stays its own line
    assert roots.count("[ERROR]") == 2
    assert "also: VirtualService storefront/catalog-split routes to subset v1" in text


def test_many_skipped_checks_are_one_line_unless_verbose():
    class Live(Check):
        needs = frozenset({Evidence.PROXY_CONFIG})

        def __init__(self, code):
            self.name, self.codes = f"live-{code}", (code,)

        def run(self, ctx):
            return []

    live = [Live(code) for code in ("MD0201", "MD0202", "MD0301")]
    report = analyze(EvidenceBundle(scope={"kind": "manifests"}), checks=live)
    assert render(report).strip().splitlines() == [
        "no problems found in the manifests",
        "3 live checks need a cluster or a bundle: --verbose lists them",
    ]
    out = io.StringIO()
    print_report(report, make_console(out, color=False), verbose=True)
    assert [line for line in out.getvalue().splitlines() if line.startswith("skipped: ")] == [
        f"skipped: live-{code} ({code}): evidence not available: proxy-config" for code in ("MD0201", "MD0202", "MD0301")]
    assert len(report.to_dict()["skipped"]) == 3  # JSON keeps every one


def test_probable_root_cause_says_what_exec_would_have_confirmed():
    class IstiodDown(Check):
        name, codes, needs = "test-istiod", ("MD0203",), frozenset()

        def run(self, ctx):
            yield finding("MD0203", Subject("Service", "istiod", "istio-system"), "istiod has no ready endpoints")

    class NeedsStats(Check):  # MD0201's place in the tree, skipped without Envoy's stats
        name, codes, needs = "test-stats", ("MD0201",), frozenset({Evidence.PROXY_STATS})

        def run(self, ctx):
            raise AssertionError("must not run")

    report = analyze(bundle("a-1", "a-2"), checks=[NotReadyEverywhere(), IstiodDown(), NeedsStats()])
    text = render(report)
    roots = [line.strip() for line in text.split("ROOT CAUSES", 1)[1].split("DIAGNOSIS", 1)[0].strip().splitlines()]
    assert roots[0].startswith("[ERROR] 2 pods: istiod has no ready endpoints (MD0203")
    assert roots[1].startswith("probable for all of these pods, not confirmed: exec into istio-proxy would have shown")
    assert "not ready" not in "\n".join(roots)  # the symptom is no longer listed as a root cause
    assert "probable cause below, not checked for this pod: MD0201 XdsConfigNotReceived" in text


def test_a_short_timeline_is_shown_under_each_root_cause():
    from kubectl_meshdoctor.checks.base import moment

    class DnsWithTimes(Check):
        name = "test-dns-times"
        codes = ("MD0102", "MD0201", "MD0301")
        needs = frozenset({Evidence.PODS})

        def run(self, ctx):
            for i, pod in enumerate(ctx.pods):
                key = f"shop/{pod['metadata']['name']}"
                subject = Subject("Pod", pod["metadata"]["name"], "shop")
                yield finding("MD0102", subject, f"istio-proxy in pod {key} is not ready (1/2 READY)", pod=key,
                              since=[moment(f"2026-11-20T14:{5 + 3 * i:02d}:30Z", "1/2 READY", key)])
                yield finding("MD0201", subject, "no config from istiod", pod=key)
                yield finding("MD0301", DNS, "cluster DNS ClusterIP changed (10.96.0.10 -> 10.96.0.99)", pod=key,
                              since=[moment("2026-11-20T14:02:00Z", "kube-dns Service created with ClusterIP 10.96.0.99"),
                                     moment(f"2026-11-20T14:{5 + 3 * i:02d}:00Z", "started with nameserver 10.96.0.10", key)])

    text = render(analyze(bundle("bad-1", "bad-2", "bad-3"), checks=[DnsWithTimes()]))
    roots = text.split("ROOT CAUSES", 1)[1].split("DIAGNOSIS", 1)[0]
    assert ("when (UTC, 2026-11-20): 14:02 kube-dns Service created with ClusterIP 10.96.0.99; "
            "14:05 first pod started with nameserver 10.96.0.10; 3 pods since; 14:05 first pod 1/2 READY; 3 pods since"
            ) in roots, roots


def test_moments_on_different_days_carry_their_date_and_a_finding_without_times_shows_none():
    from kubectl_meshdoctor.checks.base import moment

    class Cert(Check):
        name, codes, needs = "test-cert", ("MD0403",), frozenset()

        def run(self, ctx):
            yield finding("MD0403", Subject("Pod", "a", "shop"), "workload certificate of shop/a expired 1h ago",
                          pod="shop/a", since=[moment("2026-11-22T12:00:00Z", "issued", "shop/a"),
                                               moment("2026-11-23T11:00:00+00:00", "expires", "shop/a")])
            yield finding("MD0501", Subject("VirtualService", "r", "shop"), "routes to subset v9")

    text = render(analyze(EvidenceBundle(scope={"kind": "manifests"}), checks=[Cert()]))
    assert "when (UTC): 2026-11-22 12:00 issued; 2026-11-23 11:00 expires" in text
    assert text.count("when (UTC") == 1
