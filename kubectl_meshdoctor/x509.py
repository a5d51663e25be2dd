"""Just enough X.509 to name a certificate as Envoy's /certs does: serial, validity, SANs, fingerprint.

The plugin has no cryptography dependency (it ships as a zipapp of pure-Python packages), and the
certificates it reads as PEM (the ``istio-ca-root-cert`` ConfigMap, the SDS secrets of a sidecar's
config_dump) only need to be named the way Envoy's /certs names them. So this reads the few DER fields
it needs and nothing more; a malformed certificate is skipped, never an exception.

How Envoy 1.40's /certs prints them (checked on a real Envoy, see tests/envoy/test_sds_certificates.py):
the serial as lowercase hex of its bytes, two digits each ("01020304", "ab12"); validity as RFC 3339 to
the second; the subject alternative names grouped by kind, DNS names first, then URIs, then IP
addresses, each group in certificate order, e-mail and other kinds left out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime, timezone

_PEM = re.compile(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.S)


@dataclass(frozen=True)
class CertificateId:
    serial: int
    not_before: str  # RFC 3339, as Envoy's /certs prints valid_from
    not_after: str  # RFC 3339, as Envoy's /certs prints expiration_time
    sha256: str = ""  # hex fingerprint of the DER
    subject_alt_names: tuple[str, ...] = ()  # in /certs order: DNS, then URI, then IP

    @property
    def envoy_serial(self) -> str:
        """The serial as Envoy's /certs prints it."""
        return self.serial.to_bytes(max(1, (self.serial.bit_length() + 7) // 8), "big").hex()


class _Malformed(Exception):
    pass


def _element(der: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER element at ``offset``."""
    if offset + 2 > len(der):
        raise _Malformed
    tag, length = der[offset], der[offset + 1]
    offset += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or offset + count > len(der):
            raise _Malformed
        length = int.from_bytes(der[offset:offset + count], "big")
        offset += count
    if offset + length > len(der):
        raise _Malformed
    return tag, offset, offset + length


def _time(der: bytes, offset: int) -> tuple[str, int]:
    tag, start, end = _element(der, offset)
    text = der[start:end].decode("ascii", "replace").rstrip("Z")
    try:
        if tag == 0x17:  # UTCTime YYMMDDHHMMSS
            moment = datetime.strptime(text, "%y%m%d%H%M%S")
        elif tag == 0x18:  # GeneralizedTime YYYYMMDDHHMMSS
            moment = datetime.strptime(text[:14], "%Y%m%d%H%M%S")
        else:
            raise _Malformed
    except ValueError:
        raise _Malformed from None
    return moment.replace(tzinfo=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), end


def certificate_id(der: bytes) -> CertificateId | None:
    try:
        _, cert_start, _ = _element(der, 0)
        _, tbs, tbs_end = _element(der, cert_start)
        tag, start, end = _element(der, tbs)
        if tag == 0xA0:  # explicit [0] version
            tag, start, end = _element(der, end)
        if tag != 0x02:
            raise _Malformed
        serial = int.from_bytes(der[start:end], "big")
        _, _, after_signature = _element(der, end)  # signature AlgorithmIdentifier
        _, _, after_issuer = _element(der, after_signature)  # issuer Name
        tag, validity, after_validity = _element(der, after_issuer)
        if tag != 0x30:
            raise _Malformed
        not_before, next_offset = _time(der, validity)
        not_after, _ = _time(der, next_offset)
        names = _subject_alt_names(der, after_validity, tbs_end)
    except _Malformed:
        return None
    return CertificateId(serial, not_before, not_after, hashlib.sha256(der).hexdigest(), names)


_SUBJECT_ALT_NAME_OID = bytes.fromhex("551d11")  # 2.5.29.17
_EXTENSIONS_TAG = 0xA3  # explicit [3] in TBSCertificate
# GeneralName kinds Envoy's /certs prints, in the order it prints them: dNSName [2], URI [6], iPAddress [7].
_DNS, _URI, _IP = 0x82, 0x86, 0x87


def _subject_alt_names(der: bytes, offset: int, tbs_end: int) -> tuple[str, ...]:
    """The SANs, from the TBSCertificate fields after the validity (subject, key, optional IDs, extensions)."""
    _, _, offset = _element(der, offset)  # subject
    _, _, offset = _element(der, offset)  # subjectPublicKeyInfo
    while offset < tbs_end:
        tag, start, end = _element(der, offset)
        if tag == _EXTENSIONS_TAG:
            _, position, extensions_end = _element(der, start)  # SEQUENCE OF Extension
            while position < extensions_end:
                _, field, extension_end = _element(der, position)
                tag, oid_start, oid_end = _element(der, field)
                if tag == 0x06 and der[oid_start:oid_end] == _SUBJECT_ALT_NAME_OID:
                    tag, value_start, value_end = _element(der, oid_end)
                    if tag == 0x01:  # the critical flag
                        tag, value_start, value_end = _element(der, value_end)
                    if tag != 0x04:  # OCTET STRING around GeneralNames
                        raise _Malformed
                    _, names_start, names_end = _element(der, value_start)
                    return _general_names(der, names_start, names_end)
                position = extension_end
        offset = end
    return ()


def _general_names(der: bytes, position: int, end: int) -> tuple[str, ...]:
    found: dict[int, list[str]] = {_DNS: [], _URI: [], _IP: []}
    while position < end:
        tag, start, position = _element(der, position)
        value = der[start:position]
        if tag in (_DNS, _URI):
            found[tag].append(value.decode("ascii", "replace"))
        elif tag == _IP:
            try:
                found[tag].append(str(ipaddress.ip_address(value)))
            except ValueError:
                raise _Malformed from None
    return (*found[_DNS], *found[_URI], *found[_IP])


def certificates_in_pem(text: str) -> list[CertificateId]:
    """Every well-formed certificate of a PEM bundle, in order."""
    found = []
    for block in _PEM.findall(text or ""):
        try:
            der = base64.b64decode("".join(block.split()), validate=True)
        except (binascii.Error, ValueError):
            continue
        parsed = certificate_id(der)
        if parsed is not None:
            found.append(parsed)
    return found
