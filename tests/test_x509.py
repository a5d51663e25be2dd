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


def _certificate(serial: int, names: list) -> bytes:
    import datetime as dt

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "t")])
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(serial).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1)))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=True)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def test_subject_alt_names_come_grouped_as_envoys_certs_prints_them():
    import ipaddress

    names = [x509.UniformResourceIdentifier("spiffe://cluster.local/ns/a/sa/b"), x509.DNSName("b.a.svc"),
             x509.IPAddress(ipaddress.ip_address("10.1.2.3")), x509.RFC822Name("ops@example.com"),
             x509.IPAddress(ipaddress.ip_address("fd00::1")), x509.UniformResourceIdentifier("spiffe://two")]
    (found,) = certificates_in_pem(_certificate(7, names).decode())
    # DNS, then URI, then IP, each in certificate order; e-mail is not printed (the critical flag is read past)
    assert found.subject_alt_names == ("b.a.svc", "spiffe://cluster.local/ns/a/sa/b", "spiffe://two",
                                       "10.1.2.3", "fd00::1")


def test_a_certificate_without_subject_alt_names_has_none():
    (found,) = certificates_in_pem(_certificate(7, []).decode())
    assert found.subject_alt_names == ()


@pytest.mark.parametrize(("serial", "printed"), [(0x01020304, "01020304"), (0xAB12, "ab12"), (0x7, "07"),
                                                 (0xFEDCBA9876543210, "fedcba9876543210")])
def test_serials_are_printed_as_envoy_prints_them(serial, printed):
    (found,) = certificates_in_pem(_certificate(serial, []).decode())
    assert (found.serial, found.envoy_serial) == (serial, printed)
