"""The collector against the lab's Kubernetes API server: scopes, errors, gaps, and the read-only promise."""

from __future__ import annotations

import pytest

from kubectl_meshdoctor.analysis import analyze
from kubectl_meshdoctor.bundle import EvidenceBundle
from kubectl_meshdoctor.collect import ClusterOptions, CollectOptions, collect_evidence
from kubectl_meshdoctor.collect import api as collect_api
from kubectl_meshdoctor.collect.proxy import (
    CONFIG_DUMP,
    CONFIG_PART_COMMANDS,
    CURL_FALLBACK,
    ALLOWED_EXEC,
    PROXY_COMMANDS,
    READY,
    READY_AGENT,
    SDS_CERTIFICATES,
    SYNCZ,
)
from kubectl_meshdoctor.errors import ClusterError, UsageError
from kubectl_meshdoctor.evidence import Evidence
from kubectl_meshdoctor.lab.apiserver import AccessPolicy, ExecResult
from test_collect_support import (
    ACCESS_LOG_LINE,
    AGENT_503,
    UT_LOG_LINE,
    REFUSED_15021,
    FakeProxies,
    curl_outputs,
    healthy_outputs,
    lab_cluster,
    masked_answer,
    pod,
    shop_objects,
)

READ_VERBS = {"get", "list", "exec", "log", "discovery"}


def kinds(bundle: EvidenceBundle) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for obj in bundle.objects:
        meta = obj["metadata"]
        found.setdefault(obj["kind"], []).append(f"{meta.get('namespace') or ''}/{meta['name']}")
    return found


def gap_reasons(bundle: EvidenceBundle) -> list[str]:
    return [f"{g.pod}: {g.what}: {g.reason}" for g in bundle.gaps]


# --- scopes ----------------------------------------------------------------------------------------------


def test_namespace_scope_collects_api_and_proxy_evidence(tmp_path):
    with lab_cluster(tmp_path) as lab:
        bundle = collect_evidence(lab.options())
        verbs = {r.verb for r in lab.server.requests}

    assert bundle.scope["kind"] == "namespace" and bundle.scope["namespace"] == "shop"
    assert bundle.scope["pods"] == ["shop/db-0", "shop/web-1", "shop/web-2"]
    found = kinds(bundle)
    # not other namespaces' pods, but istiod's (their release for MD0205, their /debug/syncz)
    assert sorted(found["Pod"]) == ["istio-system/istiod-6d8f7c9b5-abcde", "shop/db-0", "shop/web-1", "shop/web-2"]
    assert "kube-system/kube-dns" in found["Service"]
    assert "istio-system/istiod" in found["Service"] and "istio-system/istiod" in found["Endpoints"]
    assert found["DestinationRule"] == ["shop/web"]  # elsewhere's rule is out of scope
    assert found["PeerAuthentication"] == ["istio-system/default"]  # mesh-wide policy from the root namespace
    assert found["Namespace"] == ["/shop"]
    # Items of a list carry no kind on the wire: the collector stamps them.
    assert all(o.get("apiVersion") for o in bundle.objects)

    assert sorted(bundle.proxies) == ["shop/web-1", "shop/web-2"]  # db-0 has no sidecar: no exec
    proxy = bundle.proxies["shop/web-1"]
    assert proxy.readiness is not None and proxy.readiness.ready and proxy.readiness.port == 15021
    assert proxy.stats["cluster_manager.cds.update_success"] == 3
    assert proxy.server_info is not None and proxy.server_info.state == "LIVE"
    assert proxy.config is not None and proxy.certs is not None
    assert proxy.resolv_conf is not None and proxy.resolv_conf.nameservers == ("10.96.0.10",)
    assert proxy.access_log is not None and proxy.access_log.access_lines == 1
    # the log's line failed (UF), so /clusters was asked for its cluster too
    assert bundle.available == set(Evidence.API) | set(Evidence.PROXY) | {Evidence.PROXY_CLUSTERS}
    assert bundle.gaps == []
    assert bundle.collected_at and bundle.collected_at.endswith("Z")
    assert verbs <= READ_VERBS
    # What was collected is plain data: it saves and loads back unchanged.
    loaded = EvidenceBundle.load(bundle.save(tmp_path / "bundle.tgz"))
    assert loaded.proxies == bundle.proxies and loaded.scope == bundle.scope
    assert loaded.available == bundle.available


def test_pod_scope_reads_one_pod_and_its_namespace_context(tmp_path):
    with lab_cluster(tmp_path) as lab:
        bundle = collect_evidence(lab.options(pod="web-2"))
        execs = lab.exec_commands()

    assert bundle.scope == {"kind": "pod", "namespace": "shop", "pod": "web-2", "pods": ["shop/web-2"]}
    assert sorted(kinds(bundle)["Pod"]) == ["istio-system/istiod-6d8f7c9b5-abcde", "shop/db-0", "shop/web-1",
                                             "shop/web-2"]  # pods for correlation, and istiod's
    assert list(bundle.proxies) == ["shop/web-2"]
    proxy_execs = [(path, container) for path, container, argv in execs if argv != SYNCZ]
    assert {path for path, _ in proxy_execs} == {"/api/v1/namespaces/shop/pods/web-2/exec"}
    assert {container for _, container in proxy_execs} == {"istio-proxy"}
    # istiod's view of that pod: one /debug/syncz in each running istiod's discovery container
    assert [(path, container) for path, container, argv in execs if argv == SYNCZ] == [
        ("/api/v1/namespaces/istio-system/pods/istiod-6d8f7c9b5-abcde/exec", "discovery")]
    assert bundle.proxies["shop/web-2"].istiod_sync.connected


def test_all_namespaces_scope(tmp_path):
    with lab_cluster(tmp_path) as lab:
        bundle = collect_evidence(lab.options(namespace=None, all_namespaces=True))

    assert bundle.scope["kind"] == "all-namespaces"
    assert "elsewhere/other-1" in bundle.scope["pods"] and "shop/web-1" in bundle.scope["pods"]
    assert sorted(bundle.proxies) == ["elsewhere/other-1", "shop/web-1", "shop/web-2"]
    found = kinds(bundle)
    assert {"/shop", "/elsewhere", "/istio-system", "/kube-system"} <= set(found["Namespace"])
    assert sorted(found["DestinationRule"]) == ["elsewhere/unrelated", "shop/web"]
    assert Evidence.NAMESPACES in bundle.available


def test_context_namespace_is_the_default_namespace(tmp_path):
    with lab_cluster(tmp_path, kube_namespace="elsewhere") as lab:
        bundle = collect_evidence(lab.options(namespace=None))
    assert bundle.scope["namespace"] == "elsewhere"
    assert bundle.scope["pods"] == ["elsewhere/other-1"]


def test_unknown_pod_and_namespace_are_usage_errors(tmp_path):
    with lab_cluster(tmp_path) as lab:
        with pytest.raises(UsageError, match="^pod nope not found in namespace shop$"):
            collect_evidence(lab.options(pod="nope"))
        with pytest.raises(UsageError, match="^namespace ghost not found$"):
            collect_evidence(lab.options(namespace="ghost"))
        with pytest.raises(UsageError, match="^namespace ghost not found$"):
            collect_evidence(lab.options(namespace="ghost", pod="web-1"))


# --- kubeconfig and server errors ------------------------------------------------------------------------


def _options(kubeconfig, **cluster) -> CollectOptions:
    return CollectOptions(cluster=ClusterOptions(kubeconfig=str(kubeconfig), **cluster), progress=False)


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("", "empty file"),
    ("clusters: [unclosed\n  - x: {", "not valid YAML"),
    ("- just\n- a list\n", "not a kubeconfig"),
    ("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n", "no current-context"),
])
def test_broken_kubeconfig_is_a_usage_error(tmp_path, content, message):
    path = tmp_path / "config"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UsageError, match=message) as caught:
        collect_evidence(_options(path))
    assert "\n" not in str(caught.value)


def test_unknown_context_is_a_usage_error(tmp_path):
    with lab_cluster(tmp_path) as lab:
        with pytest.raises(UsageError, match="context 'prod' not found in kubeconfig"):
            collect_evidence(_options(lab.kubeconfig, context="prod"))


def test_kubeconfig_from_environment_list(tmp_path, monkeypatch):
    with lab_cluster(tmp_path) as lab:
        monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}:{lab.kubeconfig}")
        bundle = collect_evidence(CollectOptions(cluster=ClusterOptions(), namespace="shop", pod="web-1",
                                                 progress=False))
    assert list(bundle.proxies) == ["shop/web-1"]


def test_unreachable_server_is_a_cluster_error_naming_the_url(tmp_path):
    with lab_cluster(tmp_path) as lab:
        kubeconfig = lab.kubeconfig.read_text()
        url = lab.server.url
    # The server is stopped: nothing listens on its port any more.
    path = tmp_path / "stale"
    path.write_text(kubeconfig)
    with pytest.raises(ClusterError, match=f"cannot reach the API server at {url}: connection refused"):
        collect_evidence(_options(path, request_timeout=5.0))


def test_unresolvable_server_name(tmp_path):
    with lab_cluster(tmp_path) as lab:
        text = lab.kubeconfig.read_text().replace("127.0.0.1", "no-such-host.invalid")
    path = tmp_path / "dns"
    path.write_text(text)
    with pytest.raises(ClusterError, match="no-such-host.invalid"):
        collect_evidence(_options(path, request_timeout=5.0))


def test_tls_failure_is_a_cluster_error(tmp_path):
    with lab_cluster(tmp_path) as lab:
        other_ca = lab.kubeconfig.read_text()
    with lab_cluster(tmp_path / "two") as lab:
        # The first server's CA does not sign the second server's certificate.
        lines = lab.kubeconfig.read_text().splitlines()
        ca_line = next(line for line in other_ca.splitlines() if "certificate-authority-data" in line)
        text = "\n".join(ca_line if "certificate-authority-data" in line else line for line in lines)
        path = tmp_path / "wrong-ca"
        path.write_text(text)
        with pytest.raises(ClusterError, match="TLS"):
            collect_evidence(_options(path, request_timeout=5.0))


def test_forbidden_list_names_the_resource(tmp_path):
    policy = AccessPolicy(forbidden_resources={"destinationrules.networking.istio.io"})
    with lab_cluster(tmp_path, policy=policy) as lab:
        with pytest.raises(ClusterError) as caught:
            collect_evidence(lab.options())
    assert str(caught.value).startswith("forbidden: cannot list destinationrules.networking.istio.io "
                                        "in namespace shop")
    assert caught.value.exit_code == 3


def test_unauthorized_is_a_cluster_error(tmp_path):
    with lab_cluster(tmp_path, policy=AccessPolicy(unauthorized=True)) as lab:
        with pytest.raises(ClusterError, match="unauthorized"):
            collect_evidence(lab.options())


# --- degraded collection ---------------------------------------------------------------------------------


def test_exec_forbidden_degrades_the_sweep_once(tmp_path):
    with lab_cluster(tmp_path, policy=AccessPolicy(forbid_exec=True)) as lab:
        bundle = collect_evidence(lab.options(concurrency=1))
        execs = lab.exec_commands()

    assert len(execs) == 1  # after the first refusal no other exec is attempted
    exec_gaps = [g for g in bundle.gaps if "exec refused" in g.reason]
    assert len(exec_gaps) == 1
    assert exec_gaps[0].reason.startswith("exec refused (RBAC: create pods/exec): only API-level checks ran")
    assert {Evidence.PODS, Evidence.SERVICES, Evidence.ISTIO_CONFIG} <= bundle.available
    assert Evidence.PROXY_READINESS not in bundle.available and Evidence.PROXY_CONFIG not in bundle.available
    # The log is API-level, not exec: it is still read.
    assert all(p.access_log is not None and p.readiness is None for p in bundle.proxies.values())
    # Said once, yet every meshed pod it left unexamined is reported as incomplete, not healthy.
    assert set(exec_gaps[0].affects) == set(bundle.proxies)
    report = analyze(bundle)
    statuses = {p.pod: p.status for p in report.pods if p.pod in bundle.proxies}
    assert statuses and set(statuses.values()) <= {"incomplete", "failing"}, statuses


def test_exec_timeout_is_a_gap_and_the_sweep_finishes(tmp_path):
    policy = AccessPolicy(hang_exec={("shop", "web-1")})
    with lab_cluster(tmp_path, policy=policy) as lab:
        bundle = collect_evidence(lab.options(pod_timeout=1.5))

    hung = [g for g in bundle.gaps if g.pod == "shop/web-1"]
    assert hung and "timed out" in hung[0].reason and "config_dump" in hung[0].reason
    assert bundle.proxies["shop/web-1"].readiness is None
    assert bundle.proxies["shop/web-2"].config is not None  # the other pod is examined fully
    assert not [g for g in bundle.gaps if g.pod == "shop/web-2"]


def test_truncated_config_dump_is_a_gap_naming_config_dump(tmp_path):
    outputs = healthy_outputs()
    outputs[SDS_CERTIFICATES] = masked_answer(outputs, SDS_CERTIFICATES)  # its own answer, whole
    outputs[CONFIG_DUMP] = ExecResult(0, outputs[CONFIG_DUMP].stdout[: len(outputs[CONFIG_DUMP].stdout) // 2])
    proxies = FakeProxies(per_pod={"shop/web-1": outputs})
    with lab_cluster(tmp_path, proxies=proxies) as lab:
        bundle = collect_evidence(lab.options())

    gaps = [g for g in bundle.gaps if g.pod == "shop/web-1"]
    assert [g.what for g in gaps] == ["config_dump"]
    assert gaps[0].reason.startswith("config_dump: not valid JSON")
    proxy = bundle.proxies["shop/web-1"]
    assert proxy.config is None and proxy.certs is not None and proxy.server_info is not None


def test_istio_not_installed(tmp_path):
    with lab_cluster(tmp_path, istio=False) as lab:
        bundle = collect_evidence(lab.options())

    reasons = gap_reasons(bundle)
    assert "None: Istio configuration: Istio CRDs not installed (networking.istio.io not served)" in reasons
    assert any("namespace istio-system not found" in r for r in reasons)
    assert Evidence.ISTIO_CONFIG not in bundle.available
    assert Evidence.PODS in bundle.available


def test_native_sidecar_pod_is_examined(tmp_path):
    objects = shop_objects() + [pod("native-1", native=True)]
    with lab_cluster(tmp_path, objects) as lab:
        bundle = collect_evidence(lab.options(pod="native-1"))
        execs = lab.exec_commands()

    assert bundle.proxies["shop/native-1"].config is not None
    assert execs and {c for _, c, _ in execs} == {"istio-proxy", "discovery"}
    assert {argv for _, c, argv in execs if c == "discovery"} == {SYNCZ}


def test_pending_pod_exec_failure_is_a_gap(tmp_path):
    objects = shop_objects() + [pod("done-1", phase="Failed")]
    with lab_cluster(tmp_path, objects) as lab:
        bundle = collect_evidence(lab.options(pod="done-1"))
    gaps = [g for g in bundle.gaps if g.pod == "shop/done-1"]
    assert gaps and "completed pod" in gaps[0].reason


def test_pagination_follows_continue_tokens(tmp_path, monkeypatch):
    monkeypatch.setattr(collect_api, "PAGE_LIMIT", 2)
    objects = shop_objects() + [pod(f"batch-{i}", meshed=False) for i in range(5)]
    with lab_cluster(tmp_path, objects) as lab:
        bundle = collect_evidence(lab.options())
        pod_lists = [r.query for r in lab.server.requests
                     if r.verb == "list" and r.path == "/api/v1/namespaces/shop/pods"]

    assert len(bundle.scope["pods"]) == 8
    assert len(pod_lists) == 4 and all("limit=2" in q for q in pod_lists)
    assert sum("continue=" in q for q in pod_lists) == 3


# --- the fixed command set -------------------------------------------------------------------------------


def test_executed_commands_are_exactly_the_fixed_set(tmp_path):
    refused = healthy_outputs()
    refused[READY] = REFUSED_15021
    refused[READY_AGENT] = AGENT_503
    refused[SDS_CERTIFICATES] = ExecResult(0, b"{}")  # no active SDS secret: /certs is asked too
    proxies = FakeProxies(per_pod={"shop/web-2": refused})
    proxies.access_log = ACCESS_LOG_LINE + UT_LOG_LINE  # failing lines and a timeout: the follow-ups run too
    with lab_cluster(tmp_path, proxies=proxies) as lab:
        bundle = collect_evidence(lab.options())
        execs = lab.exec_commands()
        verbs = {r.method + " " + r.verb for r in lab.server.requests}

    # The whole config_dump is only the fallback for a proxy that refuses the masked parts.
    assert {argv for _, _, argv in execs} == (set(PROXY_COMMANDS) - {CONFIG_DUMP}) | {SYNCZ}
    assert all(argv in ALLOWED_EXEC[container] for _, container, argv in execs)
    assert READY_AGENT not in {argv for path, _, argv in execs if "/web-1/" in path}  # only when 15021 refuses
    assert verbs <= {f"GET {v}" for v in READ_VERBS}  # nothing but reads: no create/update/patch/delete
    readiness = bundle.proxies["shop/web-2"].readiness
    assert readiness is not None and not readiness.ready
    assert (readiness.port, readiness.status) == (15020, 503)
    assert readiness.detail.startswith("config not received from XDS server")
    assert not [g for g in bundle.gaps if g.pod == "shop/web-2"]  # a 503 is evidence, not a gap


def test_readiness_503_on_15021_is_evidence(tmp_path):
    outputs = healthy_outputs()
    outputs[READY] = ExecResult(255, b"", b"Error: received unsuccessful status code 503: PRE_INITIALIZING\n")
    with lab_cluster(tmp_path, proxies=FakeProxies(per_pod={"shop/web-1": outputs})) as lab:
        bundle = collect_evidence(lab.options(pod="web-1"))
    readiness = bundle.proxies["shop/web-1"].readiness
    assert readiness is not None and (readiness.ready, readiness.port, readiness.status) == (False, 15021, 503)
    assert readiness.detail == "PRE_INITIALIZING"


def test_curl_fallback_without_pilot_agent(tmp_path):
    with lab_cluster(tmp_path, proxies=FakeProxies(per_pod={"shop/web-1": curl_outputs()})) as lab:
        bundle = collect_evidence(lab.options(pod="web-1"))
        executed = {argv for _, _, argv in lab.exec_commands()}

    proxy = bundle.proxies["shop/web-1"]
    assert proxy.readiness is not None and proxy.readiness.ready and proxy.readiness.status == 200
    assert proxy.config is not None and proxy.stats is not None and proxy.certs is not None
    assert {CURL_FALLBACK[READY], *(CURL_FALLBACK[part] for part in CONFIG_PART_COMMANDS)} <= executed
    assert not bundle.gaps


def test_ctrl_c_cancels_the_sweep_and_leaves_no_workers(tmp_path):
    import os
    import signal
    import threading

    from kubectl_meshdoctor.collect.sweep import WORKER_PREFIX

    hung = {("shop", "web-1"), ("shop", "web-2")}
    with lab_cluster(tmp_path, policy=AccessPolicy(hang_exec=hung)) as lab:
        started = threading.Event()

        def interrupt_once_streams_hang() -> None:
            # Both workers are blocked on exec streams that never answer when the server has seen them.
            for _ in range(400):
                if sum(r.verb == "exec" for r in lab.server.requests) >= 2:
                    break
                threading.Event().wait(0.05)
            started.set()
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does

        watcher = threading.Thread(target=interrupt_once_streams_hang, daemon=True)
        watcher.start()
        with pytest.raises(KeyboardInterrupt):
            collect_evidence(lab.options(pod_timeout=120.0, concurrency=2))
        watcher.join()
        assert started.is_set()
        assert not [t for t in threading.enumerate() if t.name.startswith(WORKER_PREFIX)]


def test_older_istio_api_versions_are_used_when_v1_is_not_served():
    import json
    from types import SimpleNamespace

    groups = {"groups": [
        {"name": "networking.istio.io", "versions": [{"version": "v1beta1"}, {"version": "v1alpha3"}]},
        {"name": "security.istio.io", "versions": [{"version": "v1beta1"}]},
    ]}
    response = SimpleNamespace(data=json.dumps(groups).encode(), release_conn=lambda: None)
    requested = []
    kube = SimpleNamespace(get=lambda path, query=None: requested.append(path) or response, request_timeout=5.0)
    reader = collect_api.ApiReader(kube)
    assert reader.served_version("networking.istio.io") == "v1beta1"
    assert reader.served_version("security.istio.io") == "v1beta1"
    assert reader.served_version("telemetry.istio.io") is None
    assert requested == ["/apis/"]  # one discovery request serves every group


def test_log_forbidden_is_said_once_and_exec_evidence_stays(tmp_path):
    with lab_cluster(tmp_path, policy=AccessPolicy(forbidden_resources={"pods/log"})) as lab:
        bundle = collect_evidence(lab.options(concurrency=1))
        log_reads = [r for r in lab.server.requests if r.verb == "log"]

    assert len(log_reads) == 1
    assert [g.reason for g in bundle.gaps] == [
        "istio-proxy log refused (RBAC: get pods/log): access-log checks did not run"]
    assert Evidence.ACCESS_LOG not in bundle.available and Evidence.PROXY_CONFIG in bundle.available


def test_istiod_exec_refused_is_a_gap_and_the_proxies_are_still_read(tmp_path):
    with lab_cluster(tmp_path, policy=AccessPolicy(forbid_exec_in={"istio-system"})) as lab:
        bundle = collect_evidence(lab.options())
        execs = lab.exec_commands()
    assert [argv for _, _, argv in execs].count(SYNCZ) == 1  # asked once, refused
    gaps = [g for g in bundle.gaps if g.what.startswith("istiod sync status")]
    assert len(gaps) == 1 and "exec refused (RBAC: create pods/exec)" in gaps[0].reason and not gaps[0].affects
    for key in ("shop/web-1", "shop/web-2"):
        proxy = bundle.proxies[key]
        assert proxy.istiod_sync is None and proxy.stats is not None and proxy.config is not None
    assert Evidence.ISTIOD_SYNC not in bundle.available
    assert {p.pod: p.status for p in analyze(bundle).pods}["shop/web-1"] != "incomplete"


def test_a_crash_looping_istiod_is_not_asked_and_a_listed_proxy_is_synced(tmp_path):
    from test_collect_support import CAPTURES, istiod_pod, shop_objects

    objects = shop_objects() + [istiod_pod("istiod-6d8f7c9b5-crash", running=False)]
    with lab_cluster(tmp_path, objects) as lab:
        bundle = collect_evidence(lab.options())
        execs = lab.exec_commands()
    assert [path for path, _, argv in execs if argv == SYNCZ] == [
        "/api/v1/namespaces/istio-system/pods/istiod-6d8f7c9b5-abcde/exec"]
    sync = bundle.proxies["shop/web-1"].istiod_sync
    assert sync.connected and sync.istiod == "istio-system/istiod-6d8f7c9b5-abcde"
    status = {p.pod: p.proxy_status for p in analyze(bundle).pods}["shop/web-1"]
    assert status["istiod"] == {"connected": True, "istiod": "istio-system/istiod-6d8f7c9b5-abcde",
                                "istioVersion": "1.24.2", "CDS": "SYNCED", "LDS": "SYNCED", "RDS": "SYNCED",
                                "EDS": "NOT SENT"}
    assert status["envoy"]["CDS"]["lastUpdated"] == "2026-11-30T17:26:48Z"  # the stats' update_time
    assert status["envoy"]["istiodConnections"] == 1
    if CAPTURES.is_dir():  # versions from the (captured, real) config_dump
        assert status["envoy"]["CDS"]["version"] == "2026-11-23T12:00:00Z/1"
        assert status["envoy"]["RDS"] == {"version": "2026-11-23T12:41:00Z/3",
                                          "lastUpdated": "2026-11-23T12:34:14.995Z", "routeConfigs": 1}


def test_root_cert_configmap_is_read_by_name_and_its_refusal_is_a_gap(tmp_path):
    from test_collect_support import shop_objects

    root = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "istio-ca-root-cert", "namespace": "shop"},
            "data": {"root-cert.pem": "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n"}}
    other = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-settings", "namespace": "shop"},
             "data": {"password": "hunter2"}}
    with lab_cluster(tmp_path, shop_objects() + [root, other]) as lab:
        bundle = collect_evidence(lab.options())
        paths = [(r.verb, r.path) for r in lab.server.requests if "configmaps" in r.path and "/istio-system/" not in r.path]
    assert paths == [("get", "/api/v1/namespaces/shop/configmaps/istio-ca-root-cert")]  # app-settings never
    assert [o["metadata"]["name"] for o in bundle.objects if o["kind"] == "ConfigMap"] == ["istio-ca-root-cert"]
    assert Evidence.ROOT_CERT_CONFIGMAPS in bundle.available
    with lab_cluster(tmp_path, shop_objects() + [root], policy=AccessPolicy(forbidden_resources={"configmaps"})) as lab:
        refused = collect_evidence(lab.options())
    gaps = [g for g in refused.gaps if g.what == "istio-ca-root-cert ConfigMaps"]
    assert len(gaps) == 1 and "configmaps" in gaps[0].reason
    assert Evidence.ROOT_CERT_CONFIGMAPS not in refused.available and refused.proxies["shop/web-1"].certs is not None
