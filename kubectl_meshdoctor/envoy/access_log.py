"""Access-log lines in the istio-proxy container log, reduced to the failures they report.

The container log interleaves pilot-agent and Envoy messages with access-log lines, in Istio's default
text format or its JSON encoding. Only the response flags, the upstream cluster and host and the
transport failure reason matter for a diagnosis, so the summary keeps counts per (flags, cluster) and a
few sample lines each, in one pass and bounded memory however long the log is.
"""

from __future__ import annotations

import json
import re
import typing
from collections import Counter
from dataclasses import dataclass

from kubectl_meshdoctor.envoy._decode import as_text
from kubectl_meshdoctor.envoy.response_flags import split_flags
from kubectl_meshdoctor.evidence import AccessLog, AccessLogEntry

_WHAT = "access log"
MAX_LINE = 400

# A text line is bracketed start time, quoted request line, response code, flags, then bare words and
# quoted strings. Istio's formats since 1.6 all end with
#   ... "%UPSTREAM_TRANSPORT_FAILURE_REASON%" rx tx duration service-time "xff" "ua" "request-id"
#   "authority" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER% ...
# so counting quoted strings from the last one finds the upstream fields whatever sits in between.
_TOKEN = re.compile(r'"[^"]*"|\S+')
_START = re.compile(r'\[[^\]]*\] "')
_FLAGS = re.compile(r"-|[A-Z]+(?:,[A-Z]+)*")
_KUBECTL_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\S+ ")  # kubectl logs --timestamps prefix
_QUOTED_AFTER_FAILURE_REASON = 5  # xff, user agent, request id, authority, upstream host


# Istio's REGISTRY_ONLY answer to an HTTP request for a host no Service or ServiceEntry declares: a 502
# direct response of the `block_all` route, with no response flag and no upstream cluster (real Envoy
# logs `502 - direct_response ... block_all`). Kept as a failure, counted under this route name.
BLOCKED_ROUTE = "block_all"


@dataclass(frozen=True)
class _Parsed:
    flags: tuple[str, ...]
    response_code: int | None
    upstream_cluster: str
    upstream_host: str
    transport_failure_reason: str
    authority: str = ""
    downstream_local_address: str = ""
    route_name: str = ""
    duration_ms: int | None = None


def _token(tokens: list[str], index: int) -> str:
    return _dash(tokens[index].strip('"')) if 0 <= index < len(tokens) else ""


def _dash(value: str) -> str:
    return "" if value == "-" else value


def _parse_text(line: str) -> _Parsed | None:
    start = _START.match(line)
    if start is None:
        prefix = _KUBECTL_TIMESTAMP.match(line)
        if prefix is None or _START.match(line, prefix.end()) is None:
            return None
        line = line[prefix.end():]
    close = line.find("]")
    tokens = _TOKEN.findall(line, close + 1)
    if len(tokens) < 3 or not tokens[0].startswith('"'):
        return None
    code, flags = tokens[1], tokens[2]
    if not (code.isdigit() or code == "-") or _FLAGS.fullmatch(flags) is None:
        return None
    quoted = [i for i in range(3, len(tokens)) if tokens[i].startswith('"') and len(tokens[i]) >= 2 and tokens[i].endswith('"')]
    if len(quoted) < _QUOTED_AFTER_FAILURE_REASON + 1:
        return None
    host_index = quoted[-1]
    reason_index = quoted[-1 - _QUOTED_AFTER_FAILURE_REASON]
    failure_reason = tokens[reason_index][1:-1]
    cluster = tokens[host_index + 1] if host_index + 1 < len(tokens) else "-"
    duration = _token(tokens, reason_index + 3)  # after bytes received and sent
    # After the cluster: upstream local, downstream local, downstream remote, SNI, route name.
    return _Parsed(
        flags=split_flags(flags),
        response_code=int(code) if code.isdigit() and len(code) <= 4 else None,
        upstream_cluster=_dash(cluster),
        upstream_host=_dash(tokens[host_index][1:-1]),
        transport_failure_reason=_dash(failure_reason),
        authority=_token(tokens, quoted[-2]),
        downstream_local_address=_token(tokens, host_index + 3),
        route_name=_token(tokens, host_index + 6),
        duration_ms=int(duration) if duration.isdigit() and len(duration) <= 12 else None,
    )


def _json_text(document: dict[str, typing.Any], key: str) -> str | None:
    value = document.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        return None
    return _dash(value)


def _parse_json(line: str) -> _Parsed | None:
    try:
        document = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict) or "response_flags" not in document:
        return None
    if "response_code" not in document and "upstream_cluster" not in document:
        return None
    fields = {key: _json_text(document, key) for key in (
        "response_flags", "upstream_cluster", "upstream_host", "upstream_transport_failure_reason")}
    if any(value is None for value in fields.values()):
        return None
    raw_code = document.get("response_code")
    if isinstance(raw_code, int) and not isinstance(raw_code, bool):
        code: int | None = raw_code
    elif isinstance(raw_code, str) and raw_code.isdigit() and len(raw_code) <= 4:
        code = int(raw_code)
    elif raw_code is None or raw_code == "-":
        code = None
    else:
        return None
    flags_text = fields["response_flags"] or ""
    if flags_text and _FLAGS.fullmatch(flags_text) is None:
        return None
    extra = {key: _json_text(document, key) or "" for key in (
        "authority", "downstream_local_address", "route_name")}
    duration = document.get("duration")
    return _Parsed(
        flags=split_flags(flags_text),
        response_code=code,
        upstream_cluster=fields["upstream_cluster"] or "",
        upstream_host=fields["upstream_host"] or "",
        transport_failure_reason=fields["upstream_transport_failure_reason"] or "",
        duration_ms=duration if isinstance(duration, int) and not isinstance(duration, bool) else None,
        **extra,
    )


def parse_access_log_line(line: str) -> AccessLogEntry | None:
    """One access-log line as an entry, or None when the line is something else."""
    line = line.strip()
    parsed = _parse_json(line) if line.startswith("{") else _parse_text(line)
    if parsed is None:
        return None
    return AccessLogEntry(
        flags=parsed.flags,
        response_code=parsed.response_code,
        upstream_cluster=parsed.upstream_cluster,
        upstream_host=parsed.upstream_host,
        transport_failure_reason=parsed.transport_failure_reason,
        line=line[:MAX_LINE],
        authority=parsed.authority,
        downstream_local_address=parsed.downstream_local_address,
        route_name=parsed.route_name,
        duration_ms=parsed.duration_ms,
    )


def summarize_access_log(raw: bytes | str, max_samples_per_key: int = 3) -> AccessLog:
    """Count access-log lines and their failures (entries with response flags) per (flags, cluster).

    Undecodable bytes are replaced, not refused: one odd byte in a container log must not hide the rest.
    """
    if max_samples_per_key < 0:
        raise ValueError("max_samples_per_key must not be negative")
    text = as_text(raw, _WHAT, lenient=True)
    lines_read = 0
    access_lines = 0
    counts: Counter[tuple[str, str]] = Counter()
    samples: list[AccessLogEntry] = []
    for line in text.splitlines():
        lines_read += 1
        entry = parse_access_log_line(line)
        if entry is None:
            continue
        access_lines += 1
        blocked = not entry.flags and entry.route_name == BLOCKED_ROUTE
        if not entry.flags and not blocked:
            continue
        key = (",".join(entry.flags), BLOCKED_ROUTE if blocked else entry.upstream_cluster)
        counts[key] += 1
        if counts[key] <= max_samples_per_key:
            samples.append(entry)
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return AccessLog(
        lines_read=lines_read,
        access_lines=access_lines,
        failures=tuple(samples),
        failure_counts=tuple((flags, cluster, count) for (flags, cluster), count in ordered),
    )
