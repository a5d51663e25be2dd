"""Certificates for the lab's sidecars: a mesh CA and SPIFFE workload certs with chosen lifetimes.

Istio's CA signs a short-lived certificate per workload whose URI SAN names the pod's service account.
The lab makes the same shape so Envoy's `/certs` shows what a real sidecar shows, and so a scenario can
put a certificate near (or past) the end of its life: Envoy loads expired certificates without complaint.
EC P-256 keys keep generation fast enough to mint dozens per lab start.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

TRUST_DOMAIN = "cluster.local"


def spiffe_id(namespace: str, service_account: str, trust_domain: str = TRUST_DOMAIN) -> str:
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


@dataclass(frozen=True)
class Validity:
    """A certificate lifetime: ``not_before`` .. ``not_after`` (timezone-aware UTC)."""

    not_before: dt.datetime
    not_after: dt.datetime

    @classmethod
    def around_now(cls, lifetime_hours: float, remaining_hours: float | None = None) -> "Validity":
        """A lifetime of ``lifetime_hours`` with ``remaining_hours`` left (negative: already expired).

        Without ``remaining_hours`` the certificate was just issued (a minute ago, as a fresh one is).
        """
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        lifetime = dt.timedelta(hours=lifetime_hours)
        if remaining_hours is None:
            not_before = now - dt.timedelta(minutes=1)
            return cls(not_before, not_before + lifetime)
        not_after = now + dt.timedelta(hours=remaining_hours)
        return cls(not_after - lifetime, not_after)


@dataclass(frozen=True)
class KeyPair:
    """PEM certificate (chain, leaf first) and PEM private key."""

    cert_pem: bytes
    key_pem: bytes
    validity: Validity


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class CertificateAuthority:
    """A self-signed root (Istio's ``istio-ca-root-cert``) that signs workload certificates."""

    def __init__(self, validity: Validity | None = None, organization: str = "cluster.local"):
        self.validity = validity or Validity.around_now(lifetime_hours=24 * 365 * 10)
        self._key = _new_key()
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)])
        self._name = name
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.validity.not_before)
            .not_valid_after(self.validity.not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )

    @property
    def cert_pem(self) -> bytes:
        return self._cert.public_bytes(serialization.Encoding.PEM)

    def issue_workload(self, namespace: str, service_account: str, validity: Validity | None = None) -> KeyPair:
        """A leaf like istiod's: empty subject, URI SAN naming the service account, client+server auth."""
        validity = validity or Validity.around_now(lifetime_hours=24)
        key = _new_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(validity.not_before)
            .not_valid_after(validity.not_after)
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.UniformResourceIdentifier(spiffe_id(namespace, service_account))]
                ),
                critical=True,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH, x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key), validity)
