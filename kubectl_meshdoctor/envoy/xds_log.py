"""The istio-proxy log's account of the stream to istiod.

pilot-agent proxies Envoy's xDS stream to istiod (its ``xdsproxy`` scope): it logs ``connected to
upstream XDS server: <address>`` when the upstream stream opens and ``upstream terminated with unexpected
error ...`` (or, before 1.10, ``failed to create upstream grpc client``) when it breaks. Envoy itself logs
``StreamAggregatedResources gRPC config stream to xds-grpc closed ...`` each time its stream fails. Only the
last connection time, the number of failure lines and the newest failure are kept.
"""

from __future__ import annotations

import re

from kubectl_meshdoctor.envoy._decode import as_text
from kubectl_meshdoctor.evidence import XdsLog

MAX_LINE = 300
_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)")
_CONNECTED = "connected to upstream XDS server"
_FAILURES = ("upstream terminated with unexpected error", "failed to create upstream grpc client",
             "gRPC config stream to xds-grpc closed")


def summarize_xds_log(raw: bytes | str) -> XdsLog:
    """One pass over the log; lines that are neither connection nor failure lines are ignored."""
    text = as_text(raw, "istio-proxy log", lenient=True)
    last_connected = last_error = last_error_time = ""
    errors = 0
    for line in text.splitlines():
        if "xds" not in line:  # cheap filter: access-log lines are the bulk of the log
            continue
        if _CONNECTED in line and "xdsproxy" in line:
            last_connected = _time_of(line)
        elif any(marker in line for marker in _FAILURES):
            errors += 1
            last_error, last_error_time = " ".join(line.split())[:MAX_LINE], _time_of(line)
    return XdsLog(last_connected=last_connected, upstream_errors=errors, last_error=last_error,
                  last_error_time=last_error_time)


def _time_of(line: str) -> str:
    matched = _TIME.search(line[:64])
    return matched.group(1) if matched else ""
