"""Just enough X.509 to name a root certificate: serial, validity and SHA-256 fingerprint from PEM.

The plugin has no cryptography dependency (it ships as a zipapp of pure-Python packages), and a root
certificate in the ``istio-ca-root-cert`` ConfigMap only needs to be matched with what Envoy's /certs
reports (serial number and validity). So this reads the few DER fields it needs and nothing more; a
malformed certificate is skipped, never an exception.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
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
        _, tbs, _ = _element(der, cert_start)
        tag, start, end = _element(der, tbs)
        if tag == 0xA0:  # explicit [0] version
            tag, start, end = _element(der, end)
        if tag != 0x02:
            raise _Malformed
        serial = int.from_bytes(der[start:end], "big")
        _, _, after_signature = _element(der, end)  # signature AlgorithmIdentifier
        _, _, after_issuer = _element(der, after_signature)  # issuer Name
        tag, validity, _ = _element(der, after_issuer)
        if tag != 0x30:
            raise _Malformed
        not_before, next_offset = _time(der, validity)
        not_after, _ = _time(der, next_offset)
    except _Malformed:
        return None
    return CertificateId(serial, not_before, not_after, hashlib.sha256(der).hexdigest())


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
