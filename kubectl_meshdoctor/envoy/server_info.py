"""Envoy's ``/server_info``: whether the proxy is LIVE, and which Envoy it is.

A proxy stuck in PRE_INITIALIZING never got its first configuration from istiod; that state is the
first thing the readiness diagnosis needs.
"""

from __future__ import annotations

import re
import typing

from kubectl_meshdoctor.envoy._decode import json_type, load_json_object
from kubectl_meshdoctor.errors import ParseError
from kubectl_meshdoctor.evidence import ServerInfo

_WHAT = "server_info"
_STATES_BY_NUMBER = {0: "LIVE", 1: "DRAINING", 2: "PRE_INITIALIZING", 3: "INITIALIZING"}
_DURATION = re.compile(r"(\d{1,18})(?:\.\d{1,9})?s")  # protobuf Duration in JSON, e.g. "97s", "1.5s"


def _get(document: dict[str, typing.Any], snake: str, camel: str) -> typing.Any:
    value = document.get(snake)
    return document.get(camel) if value is None else value


def _uptime_seconds(value: typing.Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):
        matched = _DURATION.fullmatch(value.strip())
        if matched is None:
            raise ParseError(f"{_WHAT}: uptime {value[:40]!r} is not a duration like '97s'")
        return int(matched.group(1))
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ParseError(f"{_WHAT}: uptime should be a duration string, got {json_type(value)}")


def parse_server_info(raw: bytes | str) -> ServerInfo:
    document = load_json_object(raw, _WHAT)
    state = document.get("state")
    if isinstance(state, int) and not isinstance(state, bool):
        state = _STATES_BY_NUMBER.get(state, str(state))
    if not isinstance(state, str) or not state:
        raise ParseError(f"{_WHAT}: 'state' should be a non-empty string, got {json_type(state)}")
    version = document.get("version")
    if not isinstance(version, str):
        raise ParseError(f"{_WHAT}: 'version' should be a string, got {json_type(version)}")
    return ServerInfo(
        state=state,
        version=version,
        uptime_seconds=_uptime_seconds(_get(document, "uptime_current_epoch", "uptimeCurrentEpoch")),
        istio_version=_istio_version(document.get("node")),
    )


def _istio_version(node: typing.Any) -> str:
    """The ISTIO_VERSION pilot-agent writes into the node metadata; "" when absent or not a string."""
    metadata = node.get("metadata") if isinstance(node, dict) else None
    version = metadata.get("ISTIO_VERSION") if isinstance(metadata, dict) else None
    return version if isinstance(version, str) else ""
