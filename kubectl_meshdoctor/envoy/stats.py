"""Envoy's ``/stats`` reduced to its integer counters and gauges.

Readiness (cds/lds update counts, server.state) and several checks read single counters; histograms
and text readouts are of no use to them and are dropped.
"""

from __future__ import annotations

import re

from kubectl_meshdoctor.envoy._decode import as_text, json_type, load_json_object
from kubectl_meshdoctor.errors import ParseError

_WHAT = "stats"
_INTEGER = re.compile(r"-?\d{1,20}")


def parse_stats(raw: bytes | str) -> dict[str, int]:
    """Counters and gauges from ``/stats`` text (``name: value`` lines) or ``/stats?format=json``.

    An empty answer is valid: ``stats?usedonly&filter=...`` prints nothing when no stat matches.
    """
    text = as_text(raw, _WHAT)
    stripped = text.lstrip()
    if stripped.startswith("{"):
        return _parse_json(text)
    stats: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, separator, value = line.partition(": ")
        if not separator:
            if line.endswith(":"):  # a value cut off at the end of the output
                raise ParseError(f"{_WHAT}: line {number} has no value (truncated output?)")
            raise ParseError(f"{_WHAT}: line {number} is not 'name: value': {line[:80]!r}")
        name = name.strip()
        if not name:
            raise ParseError(f"{_WHAT}: line {number} has no stat name")
        value = value.strip()
        if _INTEGER.fullmatch(value):  # histograms and quoted text readouts are skipped
            stats[name] = int(value)
    return stats


def _parse_json(text: str) -> dict[str, int]:
    document = load_json_object(text, _WHAT)
    entries = document.get("stats")
    if not isinstance(entries, list):
        raise ParseError(f"{_WHAT}: 'stats' should be an array, got {json_type(entries)}")
    stats: dict[str, int] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ParseError(f"{_WHAT}: stats[{index}] should be an object, got {json_type(entry)}")
        if "histograms" in entry:
            continue
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise ParseError(f"{_WHAT}: stats[{index}].name should be a non-empty string, got {json_type(name)}")
        value = entry.get("value")
        if isinstance(value, int) and not isinstance(value, bool):
            stats[name] = value
    return stats
