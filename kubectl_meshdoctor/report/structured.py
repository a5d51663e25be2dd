"""Machine-readable output: the same document as JSON or YAML, so scripts can pick either."""

from __future__ import annotations

import json
from typing import Any


def structured(document: Any, fmt: str) -> str:
    """``document`` (plain data) as ``json`` or ``yaml`` text, ending in a newline."""
    if fmt == "json":
        return json.dumps(document, indent=2) + "\n"
    if fmt == "yaml":
        import yaml  # here, not at the top: its import is ~12% of the start-up of a table command

        return yaml.safe_dump(document, sort_keys=False, default_flow_style=False, allow_unicode=True)
    raise ValueError(f"unknown structured format {fmt!r}")
