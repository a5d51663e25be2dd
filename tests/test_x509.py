"""The minimal X.509 reader against certificates the cryptography package writes."""

from __future__ import annotations

import pytest

from kubectl_meshdoctor.x509 import certificate_id, certificates_in_pem

x509 = pytest.importorskip("cryptography.x509", reason="the lab extra (cryptography) is not installed")
certs = pytest.importorskip("kubectl_meshdoctor.lab.certs")


def test_serial_validity_and_fingerprint_match_cryptography():
    ca = certs.CertificateAuthority()
    leaf = ca.issue_workload("shop", "web")
    pem = (ca.cert_pem + leaf.cert_pem).decode()
    found = certificates_in_pem("junk\n" + pem)
    expected = [x509.load_pem_x509_certificate(p) for p in (ca.cert_pem, leaf.cert_pem)]
    assert [c.serial for c in found] == [e.serial_number for e in expected]
    assert [c.not_before for c in found] == [e.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ") for e in expected]
    assert [c.not_after for c in found] == [e.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ") for e in expected]
    assert found[0].sha256 == expected[0].fingerprint(__import__("cryptography.hazmat.primitives.hashes",
                                                                 fromlist=["SHA256"]).SHA256()).hex()


@pytest.mark.parametrize("text", ["", "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----",
                                  "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"])
def test_malformed_pem_is_skipped(text):
    assert certificates_in_pem(text) == []


def test_truncated_der_is_none():
    assert certificate_id(b"\x30\x82\xff\xff\x30") is None
    assert certificate_id(b"") is None
