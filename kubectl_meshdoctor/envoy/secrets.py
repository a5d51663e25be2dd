"""The certificates a sidecar holds, from its SDS secrets (``config_dump?resource=dynamic_active_secrets``).

Why not /certs: Envoy's /certs lists the certificates once per TLS context, so a sidecar with 1500
outbound clusters answers with 1 MB that says the same two things 1500 times. Istio delivers the
workload certificate (secret ``default``) and the roots (``ROOTCA``) by SDS, and the config_dump's
SecretsConfigDump holds each once: a few KB. The checks read the same ``Certificate`` evidence either
way, named as /certs names it (``kubectl_meshdoctor/x509.py``):
- a ``tls_certificate`` secret gives its chain's first certificate, role "workload" (/certs lists the
  leaf only, not the intermediates);
- a ``validation_context`` secret gives every certificate of its ``trusted_ca``, role "ca" (/certs
  lists every root of the bundle).

The answer is only used when it shows everything /certs would. An empty tuple tells the reader to ask
/certs instead: no active secret (certificates mounted as files or given as static secrets, a secret
not received yet, an Envoy that answered with something else) or a secret whose data is not inline
(a ``filename``: Envoy shows the path, not the certificate).
"""

from __future__ import annotations

import base64
import binascii
import functools
import typing

from kubectl_meshdoctor.envoy._decode import json_type, load_json_object, optional_object, snake_or_camel
from kubectl_meshdoctor.errors import ParseError
from kubectl_meshdoctor.evidence import Certificate
from kubectl_meshdoctor.x509 import CertificateId, certificates_in_pem

_WHAT = "SDS secrets"
_DYNAMIC_SECRET = "SecretsConfigDump.DynamicSecret"


class _NotInline(Exception):
    """A secret whose certificates are not in the answer: /certs has to be asked."""


_object = functools.partial(optional_object, _WHAT)  # (value, where)


def _pem(source: dict[str, typing.Any], where: str) -> str:
    """The PEM text of a DataSource: inline_bytes (base64, as Istio's agent sends it) or inline_string."""
    inline = snake_or_camel(source, "inline_bytes")
    if inline is not None:
        if not isinstance(inline, str):
            raise ParseError(f"{_WHAT}: {where}.inline_bytes should be a string, got {json_type(inline)}")
        try:
            return base64.b64decode(inline, validate=True).decode("ascii", "replace")
        except (binascii.Error, ValueError):
            raise ParseError(f"{_WHAT}: {where}.inline_bytes is not base64") from None
    text = snake_or_camel(source, "inline_string")
    if isinstance(text, str):
        return text
    raise _NotInline


def _certificate(role: str, found: CertificateId) -> Certificate:
    return Certificate(role=role, serial=found.envoy_serial, subject_alt_names=found.subject_alt_names,
                       valid_from=found.not_before, expiration_time=found.not_after)


def _secret_certificates(secret: dict[str, typing.Any], where: str) -> tuple[list[Certificate], list[Certificate]]:
    """(workload, ca) certificates of one Secret message."""
    workload: list[Certificate] = []
    roots: list[Certificate] = []
    tls = _object(snake_or_camel(secret, "tls_certificate"), f"{where}.tls_certificate")
    if tls:
        chain = _object(snake_or_camel(tls, "certificate_chain"), f"{where}.tls_certificate.certificate_chain")
        certificates = certificates_in_pem(_pem(chain, f"{where}.tls_certificate.certificate_chain"))
        if not certificates:
            raise _NotInline  # nothing readable: /certs says what Envoy made of it
        workload.append(_certificate("workload", certificates[0]))
    validation = _object(snake_or_camel(secret, "validation_context"), f"{where}.validation_context")
    trusted = _object(snake_or_camel(validation, "trusted_ca"), f"{where}.validation_context.trusted_ca")
    if trusted:
        certificates = certificates_in_pem(_pem(trusted, f"{where}.validation_context.trusted_ca"))
        if not certificates:
            raise _NotInline
        roots.extend(_certificate("ca", found) for found in certificates)
    return workload, roots


def parse_sds_certificates(raw: bytes | str) -> tuple[Certificate, ...]:
    """Every certificate of the active SDS secrets, workload certificates first; () means "ask /certs"."""
    document = load_json_object(raw, _WHAT)
    items = document.get("configs")
    if items is None:
        return ()  # {}: no active secret
    if not isinstance(items, list):
        raise ParseError(f"{_WHAT}: 'configs' should be an array, got {json_type(items)}")
    workload: dict[Certificate, None] = {}
    roots: dict[Certificate, None] = {}
    try:
        for index, item in enumerate(items):
            where = f"configs[{index}]"
            item = _object(item, where)
            kind = item.get("@type")
            if not isinstance(kind, str) or not kind.endswith(_DYNAMIC_SECRET):
                return ()  # not the answer asked for (a whole dump, say): /certs
            found_workload, found_roots = _secret_certificates(_object(item.get("secret"), f"{where}.secret"),
                                                               f"{where}.secret")
            workload.update(dict.fromkeys(found_workload))
            roots.update(dict.fromkeys(found_roots))
    except _NotInline:
        return ()
    return (*workload, *roots)
