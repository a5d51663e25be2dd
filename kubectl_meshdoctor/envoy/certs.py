"""Envoy's ``/certs``: which certificates the proxy actually serves and trusts right now.

config_dump shows the secrets Envoy was last sent, even rejected ones; ``/certs`` shows those in use,
so expiry and SPIFFE identity checks read this one.
"""

from __future__ import annotations

import typing

from kubectl_meshdoctor.envoy._decode import gc_paused, json_type, load_json_object, snake_or_camel
from kubectl_meshdoctor.errors import ParseError
from kubectl_meshdoctor.evidence import Certificate

_WHAT = "certs"
_ROLES = (("cert_chain", "workload"), ("ca_cert", "ca"))




def _text(entry: dict[str, typing.Any], snake: str, where: str) -> str:
    value = snake_or_camel(entry, snake)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ParseError(f"{_WHAT}: {where}.{snake} should be a string, got {json_type(value)}")
    return value


def _san(value: typing.Any, where: str) -> str:
    if not isinstance(value, dict):
        raise ParseError(f"{_WHAT}: {where} should be an object, got {json_type(value)}")
    for kind in ("uri", "dns", "ip_address", "ipAddress"):
        name = value.get(kind)
        if name is not None:
            if not isinstance(name, str):
                raise ParseError(f"{_WHAT}: {where}.{kind} should be a string, got {json_type(name)}")
            return name
    raise ParseError(f"{_WHAT}: {where} has no uri, dns or ip_address")


def _certificate(entry: typing.Any, role: str, where: str) -> Certificate:
    if not isinstance(entry, dict):
        raise ParseError(f"{_WHAT}: {where} should be an object, got {json_type(entry)}")
    sans = snake_or_camel(entry, "subject_alt_names")
    if sans is None:
        sans = []
    if not isinstance(sans, list):
        raise ParseError(f"{_WHAT}: {where}.subject_alt_names should be an array, got {json_type(sans)}")
    return Certificate(
        role=role,
        serial=_text(entry, "serial_number", where),
        subject_alt_names=tuple(_san(san, f"{where}.subject_alt_names[{i}]") for i, san in enumerate(sans)),
        valid_from=_text(entry, "valid_from", where),
        expiration_time=_text(entry, "expiration_time", where),
    )


def _seen_key(entry: typing.Any, role: str) -> tuple[str, str, str, str] | None:
    """What identifies an entry as a repeat: role, serial and validity (serials are only unique per CA).

    None when the entry lacks a serial or is malformed: it is then built, and validated, in full.
    """
    if type(entry) is not dict:
        return None
    serial = entry.get("serial_number")
    if serial is None:
        serial = entry.get("serialNumber")
    if type(serial) is not str or not serial:
        return None
    valid_from = snake_or_camel(entry, "valid_from")
    expiration = snake_or_camel(entry, "expiration_time")
    if type(valid_from) is not str or type(expiration) is not str:
        return None
    return role, serial, valid_from, expiration


def parse_certs(raw: bytes | str) -> tuple[Certificate, ...]:
    """Every certificate Envoy holds, workload chains first; one entry per distinct certificate.

    Envoy repeats a certificate once per TLS context that uses it, so duplicates are dropped.
    """
    with gc_paused:  # decoded, walked and freed before the collector runs again
        return _parse_certs(raw)


def _parse_certs(raw: bytes | str) -> tuple[Certificate, ...]:
    document = load_json_object(raw, _WHAT)
    if "certificates" not in document:
        raise ParseError(f"{_WHAT}: no 'certificates' in the document")
    groups = document["certificates"]
    if groups is None:
        groups = []
    if not isinstance(groups, list):
        raise ParseError(f"{_WHAT}: 'certificates' should be an array, got {json_type(groups)}")
    found: dict[Certificate, None] = {}
    # A mesh sidecar lists its one workload certificate and root once per TLS context (2000 entries
    # for 1000 clusters); entries already seen are skipped before any object is built for them.
    seen: set[tuple[str, str, str, str]] = set()
    for group_index, group in enumerate(groups):
        where = f"certificates[{group_index}]"
        if not isinstance(group, dict):
            raise ParseError(f"{_WHAT}: {where} should be an object, got {json_type(group)}")
        for field, role in _ROLES:
            entries = snake_or_camel(group, field)
            if entries is None:
                continue
            if not isinstance(entries, list):
                raise ParseError(f"{_WHAT}: {where}.{field} should be an array, got {json_type(entries)}")
            for index, entry in enumerate(entries):
                key = _seen_key(entry, role)
                if key is not None:
                    if key in seen:
                        continue
                    seen.add(key)
                found[_certificate(entry, role, f"{where}.{field}[{index}]")] = None
    return tuple(found)
