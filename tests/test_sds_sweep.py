"""The sweep reads certificates from the SDS secrets, and asks /certs only when those do not show them."""

from __future__ import annotations

import json

import pytest

from kubectl_meshdoctor.collect import collect_evidence
from kubectl_meshdoctor.collect.proxy import CERTS, CONFIG_PART_COMMANDS, SDS_CERTIFICATES
from kubectl_meshdoctor.collect.sweep import FULL_DUMP_VARIABLE
from kubectl_meshdoctor.envoy.certs import parse_certs
from kubectl_meshdoctor.envoy.secrets import parse_sds_certificates
from kubectl_meshdoctor.lab.apiserver import ExecResult
from tests.test_collect_support import FakeProxies, healthy_outputs, lab_cluster

certs = pytest.importorskip("kubectl_meshdoctor.lab.certs", reason="the lab extra (cryptography) is not installed")

T_DYNAMIC = "type.googleapis.com/envoy.admin.v3.SecretsConfigDump.DynamicSecret"
T_SECRET = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"


def _sds_answer() -> bytes:
    ca = certs.CertificateAuthority()
    leaf = ca.issue_workload("shop", "web")
    return json.dumps({"configs": [
        {"@type": T_DYNAMIC, "name": "default", "secret": {"@type": T_SECRET, "tls_certificate": {
            "certificate_chain": {"inline_string": leaf.cert_pem.decode()}}}},
        {"@type": T_DYNAMIC, "name": "ROOTCA", "secret": {"@type": T_SECRET, "validation_context": {
            "trusted_ca": {"inline_string": ca.cert_pem.decode()}}}},
    ]}).encode()


CERTS_ANSWER = json.dumps({"certificates": [{"cert_chain": [{
    "serial_number": "0a0b", "subject_alt_names": [{"uri": "spiffe://cluster.local/ns/shop/sa/web"}],
    "valid_from": "2026-11-30T00:00:00Z", "expiration_time": "2026-12-01T00:00:00Z"}]}]}).encode()


def _sweep(tmp_path, sds: ExecResult) -> tuple:
    outputs = healthy_outputs()
    outputs[SDS_CERTIFICATES], outputs[CERTS] = sds, ExecResult(0, CERTS_ANSWER)
    proxies = FakeProxies(per_pod={"shop/web-1": outputs, "shop/web-2": outputs})
    with lab_cluster(tmp_path, proxies=proxies) as lab:
        bundle = collect_evidence(lab.options(concurrency=2))
    asked = [argv for _, pod, _, argv in proxies.calls if pod == "web-1"]
    return bundle, asked


def test_certificates_come_from_the_secrets_and_certs_is_not_asked(tmp_path):
    answer = _sds_answer()
    bundle, asked = _sweep(tmp_path, ExecResult(0, answer))
    assert bundle.proxies["shop/web-1"].certs == parse_sds_certificates(answer) != ()
    assert SDS_CERTIFICATES in asked and CERTS not in asked
    assert not [g for g in bundle.gaps if g.what == "certs"]


@pytest.mark.parametrize("sds", [
    ExecResult(0, b"{}"),  # no active secret: static or file certificates, or none received yet
    ExecResult(0, b"dynamic_active_secrets not found in config dump"),  # pilot-agent passes a 404 body on
    ExecResult(255, b"", b"Error: received unsuccessful status code 400: FieldMask could not be used\n"),
], ids=["no-active-secret", "404", "400"])
def test_certs_is_asked_when_the_secrets_do_not_show_the_certificates(tmp_path, sds):
    bundle, asked = _sweep(tmp_path, sds)
    assert bundle.proxies["shop/web-1"].certs == parse_certs(CERTS_ANSWER)
    assert asked.index(SDS_CERTIFICATES) < asked.index(CERTS)
    assert not [g for g in bundle.gaps if g.what == "certs"]


def test_a_malformed_secrets_answer_is_a_gap_not_a_second_request(tmp_path):
    bundle, asked = _sweep(tmp_path, ExecResult(0, b'{"configs": {}}'))
    assert bundle.proxies["shop/web-1"].certs is None
    assert CERTS not in asked
    assert [g.reason for g in bundle.gaps if g.what == "certs" and g.pod == "shop/web-1"] == [
        "certs: SDS secrets: 'configs' should be an array, got object"]


def test_the_whole_dump_mode_reads_certs_only(tmp_path, monkeypatch):
    monkeypatch.setenv(FULL_DUMP_VARIABLE, "full")
    bundle, asked = _sweep(tmp_path, ExecResult(0, _sds_answer()))
    assert bundle.proxies["shop/web-1"].certs == parse_certs(CERTS_ANSWER)
    assert CERTS in asked and SDS_CERTIFICATES not in asked
    assert not set(asked) & set(CONFIG_PART_COMMANDS)
