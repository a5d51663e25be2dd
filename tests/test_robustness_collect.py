"""Robustness of a live sweep: broken proxy output, odd but legal names, pods in every state, kubeconfigs.

Everything runs against the lab API server with a fake exec handler (tests/test_collect_support.py):
fast, and still through the official client, TLS and exec over WebSocket as with a real cluster. Each
test states what the user gets: evidence, or a gap naming what is missing and why, with the sweep
carrying on; never a traceback.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from kubectl_meshdoctor.analysis import FAILING, HEALTHY, INCOMPLETE, analyze
from kubectl_meshdoctor.bundle import EvidenceBundle
from kubectl_meshdoctor.cli import app
from kubectl_meshdoctor.collect import ClusterOptions, collect_evidence
from kubectl_meshdoctor.collect.proxy import ALL_COMMANDS, CONFIG_DUMP, READY, READY_AGENT, RESOLV_CONF
from kubectl_meshdoctor.errors import ClusterError, UsageError
from kubectl_meshdoctor.evidence import TLS_BY_ENDPOINT_LABEL
from kubectl_meshdoctor.lab.apiserver import ExecResult
from test_collect_support import (
    CAPTURE_TIME,
    ALL_AGENT_COMMANDS,
    RESOLV_TEXT,
    FakeProxies,
    healthy_outputs,
    lab_cluster,
    namespace,
    pod,
    shop_objects,
)

runner = CliRunner()


def pod_gaps(bundle: EvidenceBundle, key: str) -> list[tuple[str, str]]:
    return [(g.what, g.reason) for g in bundle.gaps if g.pod == key]


def statuses(bundle: EvidenceBundle) -> dict[str, str]:
    return {p.pod: p.status for p in analyze(bundle, now=CAPTURE_TIME).pods}


def assert_clean_cli(result, codes: tuple[int, ...]) -> None:
    assert result.exit_code in codes, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr


# --- 1. Envoy / pilot-agent output faults ---------------------------------------------------------------


@pytest.mark.parametrize("stdout, reason", [
    (b"", "config_dump: empty output"),
    (b"<html><head><title>502 Bad Gateway</title></head><body>upstream connect error</body></html>\n",
     "config_dump: not valid JSON"),
])
def test_config_dump_that_is_empty_or_not_json_is_a_gap(tmp_path, stdout, reason):
    broken = healthy_outputs()
    broken[CONFIG_DUMP] = ExecResult(0, stdout)
    with lab_cluster(tmp_path, proxies=FakeProxies(per_pod={"shop/web-1": broken})) as lab:
        bundle = collect_evidence(lab.options())

    gaps = pod_gaps(bundle, "shop/web-1")
    assert [what for what, _ in gaps] == ["config_dump"]
    assert gaps[0][1].startswith(reason), gaps
    web1 = bundle.proxies["shop/web-1"]
    assert web1.config is None and web1.certs is not None and web1.readiness.ready
    assert bundle.proxies["shop/web-2"].config is not None  # the sweep went on
    assert statuses(bundle)["shop/web-1"] in (INCOMPLETE, FAILING)


def istio_cluster(index: int) -> dict:
    """One outbound cluster as istiod pushes it: EDS, Istio mTLS chosen by the endpoint's tlsMode label."""
    name = f"outbound|9080||svc-{index:06d}.team-{index % 97:02d}.svc.cluster.local"
    sds = {"api_config_source": {"api_type": "GRPC", "transport_api_version": "V3",
                                 "grpc_services": [{"envoy_grpc": {"cluster_name": "sds-grpc"}}]},
           "resource_api_version": "V3"}
    return {"version_info": "2025-01-01T00:00:00Z/7", "last_updated": "2025-01-01T00:00:00.000Z", "cluster": {
        "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": name, "type": "EDS",
        "eds_cluster_config": {"eds_config": {"ads": {}, "resource_api_version": "V3"}, "service_name": name},
        "connect_timeout": "10s", "lb_policy": "LEAST_REQUEST",
        "circuit_breakers": {"thresholds": [{"max_connections": 4294967295, "max_pending_requests": 4294967295,
                                             "max_requests": 4294967295, "max_retries": 4294967295}]},
        "metadata": {"filter_metadata": {"istio": {"services": [
            {"host": name.split("||")[1], "name": f"svc-{index:06d}", "namespace": f"team-{index % 97:02d}"}]}}},
        "transport_socket_matches": [
            {"name": "tlsMode-istio", "match": {"tlsMode": "istio"}, "transport_socket": {
                "name": "envoy.transport_sockets.tls", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                    "common_tls_context": {"alpn_protocols": ["istio-peer-exchange", "istio"],
                                           "tls_certificate_sds_secret_configs": [{"name": "default",
                                                                                   "sds_config": sds}]},
                    "sni": name}}},
            {"name": "tlsMode-disabled", "match": {}, "transport_socket": {
                "name": "envoy.transport_sockets.raw_buffer",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"}}},
        ]}}


def large_config_dump(size: int) -> tuple[bytes, int]:
    """A valid Istio-shaped config_dump of at least ``size`` bytes, and how many clusters it holds."""
    count = size // len(json.dumps(istio_cluster(0))) + 1
    dump = {"configs": [
        {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump", "version_info": "2025-01-01T00:00:00Z/7",
         "static_clusters": [], "dynamic_active_clusters": [istio_cluster(i) for i in range(count)]},
        {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump", "dynamic_listeners": []},
    ]}
    return json.dumps(dump).encode(), count


def test_a_50_mb_config_dump_is_read_and_reduced(tmp_path):
    raw, count = large_config_dump(50 * 1024 * 1024)
    assert len(raw) >= 50 * 1024 * 1024
    big = healthy_outputs()
    big[CONFIG_DUMP] = ExecResult(0, raw)
    del raw
    with lab_cluster(tmp_path, proxies=FakeProxies(per_pod={"shop/web-1": big})) as lab:
        bundle = collect_evidence(lab.options(pod_timeout=600.0))

    assert pod_gaps(bundle, "shop/web-1") == []
    config = bundle.proxies["shop/web-1"].config
    assert config is not None and len(config.clusters) == count
    assert config.clusters[-1].name == f"outbound|9080||svc-{count - 1:06d}.team-{(count - 1) % 97:02d}.svc.cluster.local"
    assert {c.tls for c in config.clusters} == {TLS_BY_ENDPOINT_LABEL}
    assert config.listener_count == 0 and config.access_log_configured is False
    assert bundle.proxies["shop/web-2"].config is not None
    # Only the reduced evidence is kept: the saved bundle is a small fraction of the dump.
    saved = bundle.save(tmp_path / "big.tgz")
    assert saved.stat().st_size < 5 * 1024 * 1024
    assert statuses(bundle)["shop/web-1"] not in (INCOMPLETE,)


def agent_answering_503() -> dict[tuple[str, ...], ExecResult]:
    """Every `pilot-agent request` fails the way pilot-agent does when Envoy answers 503 to everything."""
    outputs = {command: ExecResult(255, b"", f"Error: received unsuccessful status code 503: upstream "
                                             f"unavailable ({command[3].split('?')[0]})\n".encode())
               for command in ALL_AGENT_COMMANDS if command[0] == "pilot-agent"}
    outputs[RESOLV_CONF] = ExecResult(0, RESOLV_TEXT)
    return outputs


def test_agent_answering_503_to_everything(tmp_path):
    proxies = FakeProxies(per_pod={"shop/web-1": agent_answering_503()})
    with lab_cluster(tmp_path, proxies=proxies) as lab:
        bundle = collect_evidence(lab.options())
        json_run = runner.invoke(app, ["namespace", "sweep", "-n", "shop", "-o", "json",
                                       "--kubeconfig", str(lab.kubeconfig)])
        executed = {argv for _, pod_name, _, argv in proxies.calls if pod_name == "web-1"}

    readiness = bundle.proxies["shop/web-1"].readiness
    assert readiness is not None and not readiness.ready
    assert (readiness.port, readiness.status) == (15021, 503)  # a status code: pilot-agent's port is not asked
    assert readiness.detail.startswith("upstream unavailable")
    assert READY in executed and READY_AGENT not in executed
    gaps = dict(pod_gaps(bundle, "shop/web-1"))
    assert set(gaps) == {"server_info", "stats", "certs", "config_dump"}
    for reason in gaps.values():
        assert reason.startswith("pilot-agent failed (exit 255): Error: received unsuccessful status code 503")
    assert bundle.proxies["shop/web-1"].resolv_conf is not None  # cat still worked
    assert pod_gaps(bundle, "shop/web-2") == []

    assert_clean_cli(json_run, (0, 1))
    report = json.loads(json_run.stdout)
    by_pod = {p["pod"]: p for p in report["pods"]}
    assert by_pod["shop/web-1"]["status"] in (INCOMPLETE, FAILING)
    assert {g["what"] for g in report["gaps"] if g["pod"] == "shop/web-1"} == set(gaps)
    assert by_pod["shop/web-2"]["status"] not in (INCOMPLETE,)


# --- 2. odd but legal names -----------------------------------------------------------------------------

LONG_NAMESPACE = ("ns-" + "a1b2c3d4e5" * 7)[:62] + "z"  # a DNS label: the longest namespace name
DOTTED_POD = "web.v1-0"
# A DNS subdomain of 253 characters: the longest pod name (labels of at most 63, dots between).
LONG_POD = ".".join(["web"] + [f"v1-{'0' * 59}a"] * 3 + ["x" * 57])
LONGEST_LABEL_VALUE = "A-._z" + "9" * 58  # 63 characters, every punctuation a label value may hold
SHELLISH_ANNOTATION = "$(touch /tmp/pwned); `id`; echo ${HOME} | sh && rm -rf / # 'quoted' \"dq\""


def test_names_at_the_legal_extremes_travel_verbatim(tmp_path):
    assert len(LONG_NAMESPACE) == 63 and len(LONG_POD) == 253
    objects = [namespace(LONG_NAMESPACE, {"istio-injection": "enabled"}), pod(DOTTED_POD, LONG_NAMESPACE),
               pod(LONG_POD, LONG_NAMESPACE, labels={"version": LONGEST_LABEL_VALUE})]
    objects[-1]["metadata"]["annotations"] = {"example.com/note": SHELLISH_ANNOTATION}
    proxies = FakeProxies()
    with lab_cluster(tmp_path, objects, istio=False, proxies=proxies) as lab:
        bundle = collect_evidence(lab.options(namespace=LONG_NAMESPACE))
        report_run = runner.invoke(app, ["namespace", "sweep", "-n", LONG_NAMESPACE, "-o", "json",
                                         "--kubeconfig", str(lab.kubeconfig)])
        pod_run = runner.invoke(app, ["pod", LONG_POD, "-n", LONG_NAMESPACE, "--kubeconfig", str(lab.kubeconfig),
                                      "--no-color"])
        execs = lab.exec_commands()

    keys = {f"{LONG_NAMESPACE}/{DOTTED_POD}", f"{LONG_NAMESPACE}/{LONG_POD}"}
    assert set(bundle.proxies) == keys
    assert not [g for g in bundle.gaps if g.pod]
    # The names reach the API server in the request path, exactly; the commands never contain them.
    assert {path for path, _, _ in execs} == {f"/api/v1/namespaces/{LONG_NAMESPACE}/pods/{name}/exec"
                                              for name in (DOTTED_POD, LONG_POD)}
    assert {(ns, name) for ns, name, _, _ in proxies.calls} == {(LONG_NAMESPACE, DOTTED_POD),
                                                                (LONG_NAMESPACE, LONG_POD)}
    for _, _, argv in execs:
        assert argv in ALL_COMMANDS
        assert not any(LONG_NAMESPACE in arg or DOTTED_POD in arg for arg in argv)
    long_pod = next(o for o in bundle.objects if o["kind"] == "Pod" and o["metadata"]["name"] == LONG_POD)
    assert long_pod["metadata"]["labels"]["version"] == LONGEST_LABEL_VALUE
    assert long_pod["metadata"]["annotations"]["example.com/note"] == SHELLISH_ANNOTATION

    assert_clean_cli(report_run, (0, 1))
    assert {p["pod"] for p in json.loads(report_run.stdout)["pods"]} == keys
    assert_clean_cli(pod_run, (0, 1))
    assert LONG_POD[:40] in pod_run.stdout

    # Saved and loaded back whole: a 253-character name is longer than a file name may be.
    for target in (tmp_path / "bundle-dir", tmp_path / "bundle.tgz"):
        loaded = EvidenceBundle.load(bundle.save(target))
        assert loaded.proxies == bundle.proxies
        saved_pod = next(o for o in loaded.objects if o["kind"] == "Pod" and o["metadata"]["name"] == LONG_POD)
        assert saved_pod["metadata"]["annotations"]["example.com/note"] == SHELLISH_ANNOTATION


def test_long_pod_names_sharing_a_prefix_save_to_distinct_files(tmp_path):
    from kubectl_meshdoctor.evidence import ProxyEvidence

    first, second = LONG_POD, LONG_POD[:-1] + "y"
    bundle = EvidenceBundle(scope={"kind": "namespace"}, proxies={
        f"{LONG_NAMESPACE}/{name}": ProxyEvidence(pod=f"{LONG_NAMESPACE}/{name}") for name in (first, second)})
    loaded = EvidenceBundle.load(bundle.save(tmp_path / "b"))
    assert set(loaded.proxies) == set(bundle.proxies)


def test_names_that_do_not_exist_are_usage_errors_naming_them(tmp_path):
    with lab_cluster(tmp_path) as lab:
        with pytest.raises(UsageError, match=f"^namespace {LONG_NAMESPACE} not found$"):
            collect_evidence(lab.options(namespace=LONG_NAMESPACE))
        with pytest.raises(UsageError, match=f"^pod {LONG_POD} not found in namespace shop$"):
            collect_evidence(lab.options(pod=LONG_POD))


# --- 3. pods in awkward states --------------------------------------------------------------------------


def multi_container_pod() -> dict:
    manifest = pod("multi-1")
    manifest["spec"]["containers"] = [{"name": "app", "image": "app:1"}, {"name": "log-shipper", "image": "fluent:1"},
                                      {"name": "istio-proxy", "image": "proxyv2:1.24"},
                                      {"name": "metrics", "image": "exporter:1"}]
    return manifest


def crash_looping_pod() -> dict:
    manifest = pod("crash-1")
    manifest["status"]["containerStatuses"] = [
        {"name": "app", "ready": True, "restartCount": 0, "state": {"running": {"startedAt": "2025-01-01T00:00:00Z"}}},
        {"name": "istio-proxy", "ready": False, "restartCount": 17,
         "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container"}},
         "lastState": {"terminated": {"exitCode": 255, "reason": "Error"}}},
    ]
    return manifest


def pending_pod() -> dict:
    manifest = pod("pending-1", phase="Pending")
    del manifest["status"]["podIP"]
    manifest["status"]["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]
    return manifest


def deleting_pod() -> dict:
    manifest = pod("deleting-1")
    manifest["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    manifest["metadata"]["deletionGracePeriodSeconds"] = 30
    return manifest


class KubeletLikeProxies(FakeProxies):
    """What a kubelet answers for containers that are not running: exec and log requests fail."""

    NOT_RUNNING = {"crash-1": 'container not found ("istio-proxy")',
                   "pending-1": "pod pending-1 does not have a host assigned"}

    async def exec(self, namespace, pod, container, command):
        if pod in self.NOT_RUNNING:
            self.calls.append((namespace, pod, container, tuple(command)))
            raise RuntimeError(self.NOT_RUNNING[pod])
        return await super().exec(namespace, pod, container, command)

    async def log(self, namespace, pod, container, since, tail):
        if pod == "pending-1":
            raise RuntimeError('container "istio-proxy" in pod "pending-1" is waiting to start: ContainerCreating')
        return await super().log(namespace, pod, container, since, tail)


def test_pods_in_awkward_states_do_not_stop_the_sweep(tmp_path):
    objects = shop_objects() + [multi_container_pod(), crash_looping_pod(), pending_pod(), deleting_pod()]
    proxies = KubeletLikeProxies()
    with lab_cluster(tmp_path, objects, proxies=proxies) as lab:
        bundle = collect_evidence(lab.options())
        execs = lab.exec_commands()

    assert {"shop/multi-1", "shop/crash-1", "shop/pending-1", "shop/deleting-1"} <= set(bundle.scope["pods"])
    # never the first container; istiod's discovery container only for its /debug/syncz
    assert {container for path, container, _ in execs if "/istio-system/" not in path} == {"istio-proxy"}
    report = analyze(bundle, now=CAPTURE_TIME)
    status = {p.pod: p for p in report.pods}

    # istio-proxy third of four containers: found and read like any other sidecar.
    multi = bundle.proxies["shop/multi-1"]
    assert multi.readiness.ready and multi.config is not None and pod_gaps(bundle, "shop/multi-1") == []
    assert status["shop/multi-1"].status not in (FAILING, INCOMPLETE)

    # A crash-looping sidecar cannot be exec'd into: one gap, and the pod status explains it.
    assert pod_gaps(bundle, "shop/crash-1") == [
        ("proxy evidence", 'exec failed: exec handler failed: container not found ("istio-proxy")')]
    assert status["shop/crash-1"].status == FAILING and "MD0102" in status["shop/crash-1"].root_causes
    not_running = [f for f in report.findings if f.code == "MD0102" and f.pod == "shop/crash-1"]
    assert not_running and "CrashLoopBackOff" in not_running[0].message

    # Pending, no IP: neither exec nor log can be read; the pod is reported incomplete, not healthy.
    pending = dict(pod_gaps(bundle, "shop/pending-1"))
    assert set(pending) == {"proxy evidence", "access log"}
    assert "does not have a host assigned" in pending["proxy evidence"]
    assert status["shop/pending-1"].status in (INCOMPLETE, FAILING)

    # Being deleted but still running: examined like the others.
    assert bundle.proxies["shop/deleting-1"].config is not None and pod_gaps(bundle, "shop/deleting-1") == []
    assert status["shop/deleting-1"].status not in (FAILING, INCOMPLETE)
    assert status["shop/web-1"].status not in (FAILING, INCOMPLETE)


# --- 4. kubeconfig variants -----------------------------------------------------------------------------


def kubeconfig_with_user(lab, path: Path, user: dict) -> Path:
    document = yaml.safe_load(lab.kubeconfig.read_text())
    document["users"][0]["user"] = user
    path.write_text(yaml.safe_dump(document))
    return path


def exec_plugin_user(tmp_path: Path, token: str, *, api_version: str = "client.authentication.k8s.io/v1") -> dict:
    """users[].user.exec with a credential script that prints an ExecCredential carrying ``token``."""
    credential = {"apiVersion": api_version, "kind": "ExecCredential", "status": {"token": token}}
    script = tmp_path / "credential-plugin.sh"
    script.write_text("#!/bin/sh\ncat <<'JSON'\n" + json.dumps(credential) + "\nJSON\n")
    script.chmod(0o700)
    return {"exec": {"apiVersion": api_version, "command": str(script), "interactiveMode": "Never"}}


def test_exec_credential_plugin_authenticates_a_sweep(tmp_path):
    with lab_cluster(tmp_path) as lab:
        path = kubeconfig_with_user(lab, tmp_path / "exec-config", exec_plugin_user(tmp_path, lab.server.token))
        bundle = collect_evidence(lab.options(cluster=ClusterOptions(kubeconfig=str(path))))
        (tmp_path / "wrong").mkdir()
        wrong = kubeconfig_with_user(lab, tmp_path / "wrong-config", exec_plugin_user(tmp_path / "wrong", "not-the-token"))
        with pytest.raises(ClusterError, match="^unauthorized"):
            collect_evidence(lab.options(cluster=ClusterOptions(kubeconfig=str(wrong))))

    assert sorted(bundle.proxies) == ["shop/web-1", "shop/web-2"]
    assert not [g for g in bundle.gaps if g.pod]  # exec streams were authenticated too


def test_failing_exec_credential_plugin_is_a_usage_error(tmp_path):
    script = tmp_path / "broken-plugin.sh"
    script.write_text("#!/bin/sh\necho 'credential helper: not logged in' >&2\nexit 1\n")
    script.chmod(0o700)
    with lab_cluster(tmp_path) as lab:
        user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": str(script),
                         "interactiveMode": "Never"}}
        path = kubeconfig_with_user(lab, tmp_path / "broken-config", user)
        # A process of its own: the client's logging of the failure would only show outside pytest.
        result = subprocess.run([sys.executable, "-m", "kubectl_meshdoctor", "namespace", "sweep", "-n", "shop",
                                 "--kubeconfig", str(path)], capture_output=True, text=True, timeout=120,
                                stdin=subprocess.DEVNULL)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        "error: kubeconfig: the credential plugin of context 'meshdoctor-lab' failed: "
        "exec: process returned 1. credential helper: not logged in"]
    assert result.stdout == ""


def cert_user(leaf) -> dict:
    return {"client-certificate-data": base64.b64encode(leaf.cert_chain_pems[0].bytes()).decode(),
            "client-key-data": base64.b64encode(leaf.private_key_pem.bytes()).decode()}


def test_lab_server_authenticates_a_client_certificate_of_its_client_ca(tmp_path):
    import trustme

    with lab_cluster(tmp_path) as lab:
        certified = kubeconfig_with_user(lab, tmp_path / "cert-config", cert_user(lab.server.issue_client_certificate()))
        bundle = collect_evidence(lab.options(cluster=ClusterOptions(kubeconfig=str(certified))))
        anonymous = kubeconfig_with_user(lab, tmp_path / "anon-config", {})
        with pytest.raises(ClusterError, match="^unauthorized"):
            collect_evidence(lab.options(cluster=ClusterOptions(kubeconfig=str(anonymous))))
        stranger = kubeconfig_with_user(lab, tmp_path / "stranger-config",
                                        cert_user(trustme.CA().issue_cert("someone@example.com")))
        # A certificate of another CA: the TLS 1.3 server drops the connection once it has checked it.
        with pytest.raises(ClusterError, match="closed the connection without answering|TLS handshake failed"):
            collect_evidence(lab.options(cluster=ClusterOptions(kubeconfig=str(stranger), request_timeout=5.0)))
        exec_requests = [r for r in lab.server.requests if r.verb == "exec"]

    assert sorted(bundle.proxies) == ["shop/web-1", "shop/web-2"]
    assert exec_requests and not [g for g in bundle.gaps if g.pod]  # exec over WebSocket used the certificate too
