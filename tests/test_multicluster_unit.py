"""Multi-cluster plumbing without a lab: which contexts a run reads, bundle formats, the joined report."""

from __future__ import annotations

import json

import pytest
import yaml

from kubectl_meshdoctor.bundle import EvidenceBundle
from kubectl_meshdoctor.collect.multi import requested_contexts
from kubectl_meshdoctor.errors import BundleError, UsageError
from kubectl_meshdoctor.findings import Finding, Severity, Subject
from kubectl_meshdoctor.multianalysis import analyze_clusters
from kubectl_meshdoctor.multibundle import ClusterEvidence, MultiClusterBundle, load_bundle, mesh_identity


def kubeconfig(tmp_path, *contexts: str):
    document = {"apiVersion": "v1", "kind": "Config", "current-context": contexts[0],
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": name, "context": {"cluster": "c", "user": "u"}} for name in contexts]}
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(document))
    return str(path)


def test_one_context_is_an_ordinary_run_and_a_list_is_a_multi_cluster_run(tmp_path):
    path = kubeconfig(tmp_path, "east", "west", "odd,name")
    assert requested_contexts(path, None, False) is None
    assert requested_contexts(path, "east", False) is None
    assert requested_contexts(path, "odd,name", False) is None  # a context whose name holds a comma
    assert requested_contexts(path, "west, east,west", False) == ["west", "east"]
    assert requested_contexts(path, None, True) == ["east", "west", "odd,name"]


@pytest.mark.parametrize("context, all_contexts, message", [
    ("east,nowhere", False, "context 'nowhere' not found in the kubeconfig"),
    ("east,,west", False, "empty context name"),
    ("east", True, "--all-contexts and --context both choose the clusters"),
])
def test_bad_context_lists_are_usage_errors(tmp_path, context, all_contexts, message):
    with pytest.raises(UsageError, match=message):
        requested_contexts(kubeconfig(tmp_path, "east", "west"), context, all_contexts)


def pod(name: str, env: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "shop", "labels": {}},
            "spec": {"containers": [{"name": "app"}, {"name": "istio-proxy",
                                                       "env": [{"name": k, "value": v} for k, v in env.items()]}]}}


def test_mesh_identity_comes_from_the_sidecars_env_and_else_the_mesh_config():
    mesh_config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "istio", "namespace": "istio-system"},
                   "data": {"mesh": "trustDomain: corp.example\ndefaultConfig:\n  meshId: corp-mesh\n"}}
    bundle = EvidenceBundle(scope={}, objects=[pod("a", {"ISTIO_META_CLUSTER_ID": "east"}), mesh_config])
    assert mesh_identity(bundle) == {"clusterId": "east", "meshId": "corp-mesh", "trustDomain": "corp.example",
                                     "network": None}
    assert mesh_identity(EvidenceBundle(scope={})) == dict.fromkeys(("clusterId", "meshId", "trustDomain", "network"))


def test_single_cluster_findings_keep_their_json_shape():
    item = Finding("MD0501", Severity.ERROR, Subject("VirtualService", "vs", "shop"), "m", "r")
    assert "cluster" not in item.to_dict() and "clusterId" not in item.to_dict()


def test_v2_bundle_saves_and_loads_every_cluster_and_v1_still_loads(tmp_path):
    east = EvidenceBundle(scope={"kind": "namespace", "namespace": "shop", "pod": None, "pods": []},
                          objects=[pod("a", {"ISTIO_META_CLUSTER_ID": "east"})])
    multi = MultiClusterBundle([ClusterEvidence("east", east, identity={"clusterId": "east"}),
                                ClusterEvidence("gone/ctx", None, "connection refused")])
    loaded = load_bundle(multi.save(tmp_path / "multi"))
    assert isinstance(loaded, MultiClusterBundle)
    assert [(c.context, c.cluster_id, c.unreachable) for c in loaded.clusters] == [
        ("east", "east", None), ("gone/ctx", None, "connection refused")]
    assert sorted(p.name for p in (tmp_path / "multi" / "clusters").iterdir()) == ["0"]  # no context in a path
    report = analyze_clusters(loaded).to_dict()
    assert report["gaps"][0] == {"pod": None, "what": "cluster gone/ctx", "reason": "not read: connection refused",
                                 "affects": []}
    single = load_bundle(east.save(tmp_path / "single.tgz"))
    assert isinstance(single, EvidenceBundle) and single.objects[0]["metadata"]["name"] == "a"


@pytest.mark.parametrize("clusters, message", [
    ([{}], "corrupt multi-cluster bundle"),
    ("east", "corrupt multi-cluster bundle"),
    (None, "corrupt multi-cluster bundle"),
    ([], "lists no cluster"),
    ([{"context": "east", "directory": "clusters/0", "identity": "x"}], "corrupt multi-cluster bundle"),
    ([{"context": "east", "directory": None, "clusterz": 7}], None),  # unread: its clusterz is not used
    ([{"context": "east", "directory": "clusters/0", "clusterz": "x"}], "corrupt"),
    ([{"context": "east", "directory": "clusters/0", "endpoints": []}], "corrupt"),
    ([{"context": "east", "directory": "clusters/0", "endpoints": {"pod": "a/b", "asked": [], "clusters": {
        "x": [{"address": "a", "weight": "heavy"}]}}}], "corrupt"),
    ([{"context": "east", "directory": "clusters/0", "trustAnchor": {"rootCerts": "x"}}], "corrupt"),
    ([{"context": "east", "directory": "clusters/0", "trustAnchor": {"cacerts": {}}}], "corrupt"),
    ([{"context": "east", "directory": "../../etc"}], "is not a meshdoctor bundle"),  # no file there
])
def test_corrupt_v2_header_is_a_bundle_error(tmp_path, clusters, message):
    (tmp_path / "bundle.json").write_text(json.dumps({"format": "meshdoctor.bundle/v2", "clusters": clusters}))
    (tmp_path / "clusters" / "0").mkdir(parents=True)
    (tmp_path / "clusters" / "0" / "bundle.json").write_text(json.dumps({"format": "meshdoctor.bundle/v1"}))
    if message is None:
        assert load_bundle(tmp_path).clusters[0].bundle is None
        return
    with pytest.raises(BundleError, match=message):
        load_bundle(tmp_path)


def test_ctrl_c_stops_every_cluster_sweep_and_leaves_no_workers(tmp_path):
    """Each cluster's sweep runs outside the main thread; Ctrl-C must still stop their blocked execs."""
    import os
    import signal
    import threading

    from test_collect_support import lab_cluster

    from kubectl_meshdoctor.collect import ClusterOptions
    from kubectl_meshdoctor.collect.multi import WORKER_PREFIX, collect_clusters
    from kubectl_meshdoctor.collect.sweep import WORKER_PREFIX as POD_WORKER_PREFIX
    from kubectl_meshdoctor.lab.apiserver import AccessPolicy

    hung = AccessPolicy(hang_exec={("shop", "web-1"), ("shop", "web-2")})
    with lab_cluster(tmp_path / "east", policy=hung) as east, lab_cluster(tmp_path / "west", policy=hung) as west:
        path = two_lab_clusters(tmp_path, east, west)
        started = threading.Event()

        def interrupt_once_both_clusters_hang() -> None:
            for _ in range(400):
                if all(sum(r.verb == "exec" for r in lab.server.requests) >= 2 for lab in (east, west)):
                    break
                threading.Event().wait(0.05)
            started.set()
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does

        watcher = threading.Thread(target=interrupt_once_both_clusters_hang, daemon=True)
        watcher.start()
        options = east.options(cluster=ClusterOptions(kubeconfig=str(path), request_timeout=10.0),
                               pod_timeout=120.0, concurrency=2)
        with pytest.raises(KeyboardInterrupt):
            collect_clusters(options, ["east", "west"])
        watcher.join()
        assert started.is_set()
        left = [t.name for t in threading.enumerate() if t.name.startswith((WORKER_PREFIX, POD_WORKER_PREFIX))]
        assert not left, left


def test_a_cross_cluster_check_that_raises_is_a_gap_and_the_report_goes_on(monkeypatch):
    from kubectl_meshdoctor import multichecks

    class Broken(multichecks.MultiCheck):
        name, codes = "broken", ("MD0703",)

        def run(self, clusters):
            raise RuntimeError("boom")

    monkeypatch.setattr(multichecks, "all_multi_checks", lambda: (Broken(),))
    east = EvidenceBundle(scope={"kind": "namespace", "pods": []})
    west = EvidenceBundle(scope={"kind": "namespace", "pods": []})
    report = analyze_clusters(MultiClusterBundle([ClusterEvidence("east", east), ClusterEvidence("west", west)]))
    assert [(g.what, g.reason) for g in report.gaps] == [("check broken (MD0703)", "internal error: RuntimeError: boom")]
    assert report.check_errors and "boom" in report.check_errors[0]


def two_lab_clusters(tmp_path, east, west):
    """One kubeconfig with contexts east and west for two lab API servers (test_collect_support)."""
    from kubectl_meshdoctor.lab.kubeconfig import write_kubeconfig
    from kubectl_meshdoctor.lab.multicluster import _add_context

    document: dict = {"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [], "contexts": [],
                      "current-context": "east"}
    for context, lab in (("east", east), ("west", west)):
        _add_context(document, context, lab.server.kubeconfig(namespace="shop", context=context))
    return write_kubeconfig(tmp_path / "kubeconfig", document)


def test_refused_east_west_reads_are_a_gap_of_that_cluster_only(tmp_path):
    from test_collect_support import lab_cluster

    from kubectl_meshdoctor.collect import ClusterOptions
    from kubectl_meshdoctor.collect.multi import collect_clusters
    from kubectl_meshdoctor.lab.apiserver import AccessPolicy
    from kubectl_meshdoctor.multibundle import EAST_WEST_EVIDENCE

    refused = AccessPolicy(forbidden_resources={"gateways.networking.istio.io"})
    with lab_cluster(tmp_path / "east") as east, lab_cluster(tmp_path / "west", policy=refused) as west:
        path = two_lab_clusters(tmp_path, east, west)
        options = east.options(cluster=ClusterOptions(kubeconfig=str(path), request_timeout=10.0))
        multi = collect_clusters(options, ["east", "west"])
    bundles = {c.context: c.bundle for c in multi.clusters}
    assert EAST_WEST_EVIDENCE in bundles["east"].available and EAST_WEST_EVIDENCE not in bundles["west"].available
    gaps = [g for g in bundles["west"].gaps if g.what == "east-west gateway (istio-system)"]
    assert len(gaps) == 1 and "gateways" in gaps[0].reason
    assert bundles["west"].proxies, "the rest of west's evidence is there"


def test_md0601_with_verify_failures_in_a_cluster_of_md0406_is_caused_by_it():
    """east's web-1 logs CERTIFICATE_VERIFY_FAILED toward ledger (served by west, another root): its
    MD0601 is explained by MD0406 and joins MD0406's root-cause group; south's cart-1 fails with resets
    only (south is one of MD0406's clusters too) and keeps its own cause."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from caseloader import load_case

    bundle, _ = load_case(Path(__file__).parent / "cases/MD0406/fires-east-calls-to-west-fail-verification.yaml")
    report = analyze_clusters(bundle)
    failing = {f.pod: f for f in report.findings if f.code == "MD0601"}
    assert failing["east/shop/web-1"].caused_by == ("MD0406",) and not failing["east/shop/web-1"].root_cause
    assert failing["east/shop/web-1"].to_dict()["causedBy"] == ["MD0406"]
    assert failing["south/shop/cart-1"].caused_by == ("MD0507",)
    groups = {g.cause.code: g for g in report.groups}
    assert groups["MD0406"].pods == ("east/shop/web-1",) and groups["MD0406"].clusters == ("east",)
    assert "MD0601" not in groups and groups["MD0507"].pods == ("south/shop/cart-1",)


def test_verify_failures_outside_md0406_clusters_are_not_linked():
    """The same failing web-1, but only in a run whose clusters all share one root: no MD0406, no link."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from caseloader import load_case

    bundle, _ = load_case(Path(__file__).parent / "cases/MD0406/fires-east-calls-to-west-fail-verification.yaml")
    bundle.clusters = [c for c in bundle.clusters if c.context != "west"]  # east and south share a root
    report = analyze_clusters(bundle)
    assert not [f for f in report.findings if f.code == "MD0406"]
    web = next(f for f in report.findings if f.code == "MD0601" and f.pod == "east/shop/web-1")
    assert web.root_cause and web.caused_by == ()


@pytest.mark.parametrize("case, message, evidence", [
    ("fires-namespace-pods-injected-onto-another-network",
     "cluster west (namespace payments: 2 pods (ledger-1, ledger-2) on network network2): no east-west gateway "
     "for network network2, so clusters on network network1 cannot reach them",
     "namespace payments: 2 pods (ledger-1, ledger-2): topology.istio.io/network=network2"),
    ("fires-pod-labelled-with-another-network",
     "cluster west (pod shop/ledger-1 on network network3): no east-west gateway for network network3, so "
     "clusters on network network1 cannot reach them",
     "pod shop/ledger-1: topology.istio.io/network=network3"),
])
def test_md0702_follows_the_network_of_each_pod(case, message, evidence):
    """Both control planes sit on network1, but some of west's pods are on another network by their own
    topology.istio.io/network label: west needs a gateway for that network, and only that is reported
    (east's and west's network1 gateways work)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from caseloader import load_case

    bundle, _ = load_case(Path(__file__).parent / f"cases/MD0702/{case}.yaml")
    found = [f for f in analyze_clusters(bundle).findings if f.code == "MD0702"]
    assert [(f.cluster, f.message) for f in found] == [("west", message)]
    assert found[0].evidence[0] == evidence


def _pod_at(name: str, ip: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "shop", "labels": {"app": "x"}},
            "spec": {"containers": [{"name": "app"}]}, "status": {"podIP": ip, "podIPs": [{"ip": ip}]}}


@pytest.mark.parametrize("owner, linked", [
    ("west", True),    # the failing endpoint is west's ledger-1: a cluster on another root
    ("east", False),   # the address is a pod of web-1's own cluster: not a cross-cluster failure
    ("south", False),  # a pod of south, which shares east's root: the roots do not explain it
    ("both", True),    # east and west both show the IP (overlapping CIDRs): unknown, the log lines decide
])
def test_md0406_link_checks_which_cluster_the_failing_endpoint_belongs_to(owner, linked):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from caseloader import load_case

    bundle, _ = load_case(Path(__file__).parent / "cases/MD0406/fires-east-calls-to-west-fail-verification.yaml")
    clusters = {c.context: c.bundle for c in bundle.clusters}
    for context in (["east", "west"] if owner == "both" else [owner]):
        clusters[context].objects.append(_pod_at("ledger-1", "10.245.0.9"))
    report = analyze_clusters(bundle)
    web = next(f for f in report.findings if f.code == "MD0601" and f.pod == "east/shop/web-1")
    assert (web.caused_by == ("MD0406",)) is linked and web.root_cause is not linked
    cause = next(f for f in report.findings if f.code == "MD0406")
    named = [line for line in cause.evidence if "failed CERTIFICATE_VERIFY_FAILED" in line]
    if owner == "west":
        assert named == ["cluster east: shop/web-1 -> outbound|7000||ledger.shop.svc.cluster.local at 10.245.0.9:7000, "
                         "pod shop/ledger-1 of cluster west: 1 call failed CERTIFICATE_VERIFY_FAILED"]
    else:
        assert named == []


def test_multi_cluster_progress_draws_one_bar_per_cluster():
    """Each cluster's sweep reports through its own sink from its own thread; the display says which
    cluster is where, and a cluster that could not be read says so."""
    import io
    import threading

    from rich.console import Console

    from kubectl_meshdoctor.collect.cluster_progress import ClusterProgress

    out = io.StringIO()
    display = ClusterProgress(["east", "west", "north"], console=Console(file=out, force_terminal=True, width=100))
    display.start()

    def sweep(context: str, pods: int) -> None:
        advance = display.sink(context)(pods)
        for _ in range(pods):
            advance()

    threads = [threading.Thread(target=sweep, args=args) for args in (("east", 3), ("west", 5))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert display.state("west").description == "examining istio-proxy" and display.state("west").completed == 5
    assert display.state("north").total is None  # still reading its API
    display.finished("east", True)
    display.finished("west", True)
    display.finished("north", False)
    display.progress.refresh()
    text = out.getvalue()
    display.stop()
    assert [(display.state(c).description, display.state(c).completed, display.state(c).total)
            for c in ("east", "west", "north")] == [("done", 3, 3), ("done", 5, 5), ("not read", 0, 1)]
    assert "east " in text and "west " in text and "north" in text and "5/5" in text and "not read" in text


def test_multi_cluster_sweep_feeds_each_cluster_bar_with_its_pods(tmp_path, monkeypatch):
    """Through two lab clusters: with progress on (a table on a terminal) each cluster's sweep advances its
    own bar to the pods it examined; with progress off (-o json/yaml, no terminal) no display exists."""
    import io

    from rich.console import Console
    from test_collect_support import lab_cluster

    from kubectl_meshdoctor.collect import ClusterOptions
    from kubectl_meshdoctor.collect import multi
    from kubectl_meshdoctor.collect.cluster_progress import ClusterProgress

    made: list[ClusterProgress] = []

    def recording(contexts):
        made.append(ClusterProgress(contexts, console=Console(file=io.StringIO(), force_terminal=True)))
        return made[-1]

    monkeypatch.setattr(multi, "ClusterProgress", recording)
    with lab_cluster(tmp_path / "east") as east, lab_cluster(tmp_path / "west") as west:
        path = two_lab_clusters(tmp_path, east, west)
        options = east.options(cluster=ClusterOptions(kubeconfig=str(path), request_timeout=10.0))
        quiet = multi.collect_clusters(options, ["east", "west"])  # the lab's options: progress off
        assert not made
        shown = multi.collect_clusters(replace_progress(options), ["east", "west"])
    assert len(made) == 1
    for cluster in shown.clusters:
        state = made[0].state(cluster.context)
        examined = len(cluster.bundle.proxies)
        assert examined > 1 and (state.description, state.completed, state.total) == ("done", examined, examined)
    assert [len(c.bundle.proxies) for c in quiet.clusters] == [len(c.bundle.proxies) for c in shown.clusters]


def replace_progress(options):
    from dataclasses import replace

    return replace(options, progress=True)


@pytest.mark.parametrize("output", ["json", "yaml", "table"])
def test_multi_cluster_runs_show_no_progress_off_a_terminal_or_for_machine_output(tmp_path, monkeypatch, output):
    """The CLI turns the display on only for a table on a terminal; here stderr is CliRunner's (no terminal)."""
    from typer.testing import CliRunner

    from kubectl_meshdoctor.cli import app
    from kubectl_meshdoctor.collect import multi

    seen = []

    def record(options, contexts):
        seen.append((options.progress, contexts))
        bundle = EvidenceBundle(scope={"kind": "namespace", "namespace": "shop", "pod": None, "pods": []})
        return MultiClusterBundle([ClusterEvidence(c, bundle) for c in contexts])

    monkeypatch.setattr(multi, "collect_clusters", record)
    result = CliRunner().invoke(app, ["namespace", "sweep", "-n", "shop", "--kubeconfig", kubeconfig(tmp_path, "east", "west"),
                                      "--context", "east,west", "-o", output])
    assert result.exit_code == 0, result.output
    assert seen == [(False, ["east", "west"])]


def test_refused_cacerts_read_is_a_gap_and_the_published_root_is_still_read(tmp_path):
    """west may not get Secrets: whether istiod has a plugged-in CA stays unknown (a gap); the root its
    istiod publishes is read all the same, kept as serial, validity and fingerprint."""
    from test_collect_support import lab_cluster, shop_objects

    from kubectl_meshdoctor.collect import ClusterOptions
    from kubectl_meshdoctor.collect.multi import collect_clusters
    from kubectl_meshdoctor.lab.apiserver import AccessPolicy
    from kubectl_meshdoctor.lab.certs import CertificateAuthority

    published = {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "istio-ca-root-cert", "namespace": "istio-system"},
                 "data": {"root-cert.pem": CertificateAuthority().cert_pem.decode()}}
    with lab_cluster(tmp_path / "east") as east, \
            lab_cluster(tmp_path / "west", shop_objects() + [published],
                        policy=AccessPolicy(forbidden_resources={"secrets"})) as west:
        path = two_lab_clusters(tmp_path, east, west)
        options = east.options(cluster=ClusterOptions(kubeconfig=str(path), request_timeout=10.0))
        multi = collect_clusters(options, ["east", "west"])
        secret_reads = [r for r in west.server.requests if "/secrets" in r.path]
    anchors = {c.context: c.trust_anchor for c in multi.clusters}
    assert anchors["east"]["cacerts"] == {"present": False, "created": None}  # no cacerts: istiod self-signed
    assert anchors["east"]["rootCertFound"] is False and anchors["east"]["rootCerts"] is None
    assert anchors["west"]["cacerts"] is None
    assert anchors["west"]["rootCertFound"] and len(anchors["west"]["rootCerts"]) == 1
    assert set(anchors["west"]["rootCerts"][0]) == {"serial", "notBefore", "notAfter", "sha256"}
    gaps = [g for g in multi.clusters[1].bundle.gaps if g.what.startswith("cacerts Secret presence")]
    assert len(gaps) == 1 and "forbidden" in gaps[0].reason
    assert [r.accept for r in secret_reads] == ["application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"]
