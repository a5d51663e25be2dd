"""Scrub secrets from anything that is written to disk or printed.

Envoy already redacts private keys in config_dump, and the bundle keeps only reduced proxy data, but we
verify rather than trust: Secret objects are dropped, env values and last-applied annotations are
blanked, and any string that looks like a private key, a JWT or a bearer token is replaced.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[redacted by meshdoctor]"

_SECRET_PATTERNS = (
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S),
    re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),  # JWT (service account tokens)
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"),
)
# Annotations that copy a whole object, secrets and all.
_COPYING_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def scrub_text(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


def scrub(value: Any) -> Any:
    """Return a copy of plain data with every secret-looking string replaced."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items()}
    return value


def sanitize_object(obj: dict) -> dict | None:
    """A Kubernetes object fit to be saved, or None when it must not be saved at all (a Secret)."""
    if obj.get("kind") == "Secret":
        return None
    obj = scrub(obj)
    metadata = obj.get("metadata") or {}
    metadata.pop("managedFields", None)
    annotations = metadata.get("annotations") or {}
    for key in _COPYING_ANNOTATIONS:
        if key in annotations:
            annotations[key] = REDACTED
    spec = obj.get("spec") or {}
    for group in ("containers", "initContainers", "ephemeralContainers"):
        for container in spec.get(group) or []:
            for env in container.get("env") or []:
                if "value" in env:
                    env["value"] = REDACTED
    return obj
