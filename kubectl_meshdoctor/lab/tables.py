"""Server-side tables (meta.k8s.io/v1 Table) so `kubectl get` against the lab prints the usual columns.

kubectl asks for a Table and, without one, prints only NAME and AGE; a lab whose pods show READY and
STATUS like a real cluster's is easier to read when a scenario is being demonstrated or debugged.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

_NAME = {"name": "Name", "type": "string", "format": "name", "priority": 0,
         "description": "Name must be unique within a namespace."}
_AGE = {"name": "Age", "type": "string", "format": "", "priority": 0,
        "description": "CreationTimestamp is when this object was created."}
_POD_COLUMNS = [
    _NAME,
    {"name": "Ready", "type": "string", "format": "", "priority": 0, "description": "Ready containers / total."},
    {"name": "Status", "type": "string", "format": "", "priority": 0, "description": "Pod status."},
    {"name": "Restarts", "type": "string", "format": "", "priority": 0, "description": "Container restarts."},
    _AGE,
]


def wants_table(accept: str) -> bool:
    return any("as=Table" in part and "g=meta.k8s.io" in part for part in accept.split(","))


def human_age(timestamp: str | None, now: datetime | None = None) -> str:
    if not timestamp:
        return "<unknown>"
    try:
        created = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return "<invalid>"
    seconds = max(0, int(((now or datetime.now(timezone.utc)) - created).total_seconds()))
    # Coarser units only from two of them on, as kubectl shows "90s" rather than "1m".
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 2 * 3600:
        return f"{seconds // 60}m"
    if seconds < 2 * 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _pod_cells(pod: dict[str, Any]) -> list[Any]:
    spec, status = pod.get("spec", {}), pod.get("status", {})
    statuses = status.get("containerStatuses", [])
    ready = sum(1 for s in statuses if s.get("ready"))
    shown = status.get("reason") or status.get("phase") or "Unknown"
    for container in statuses:
        waiting = container.get("state", {}).get("waiting", {})
        if waiting.get("reason"):
            shown = waiting["reason"]
    if pod.get("metadata", {}).get("deletionTimestamp"):
        shown = "Terminating"
    restarts = sum(int(s.get("restartCount", 0)) for s in statuses)
    age = human_age(pod.get("metadata", {}).get("creationTimestamp"))
    return [pod["metadata"]["name"], f"{ready}/{len(spec.get('containers', []))}", shown, str(restarts), age]


def table(kind: str, objects: list[dict], list_metadata: dict | None = None) -> dict:
    columns = _POD_COLUMNS if kind == "Pod" else [_NAME, _AGE]
    rows = []
    for obj in objects:
        if kind == "Pod":
            cells = _pod_cells(obj)
        else:
            cells = [obj["metadata"]["name"], human_age(obj["metadata"].get("creationTimestamp"))]
        rows.append({"cells": cells, "object": obj})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": dict(list_metadata or {}),
            "columnDefinitions": columns, "rows": rows}
