"""Facts about Kubernetes pod objects that both collection and the checks need.

Kept apart from both layers so that the collector never imports the checks (and vice versa).
"""

from __future__ import annotations

SIDECAR_CONTAINER = "istio-proxy"


def pod_key(obj: dict) -> str:
    """"namespace/name" of an object, the key used for pods throughout the evidence."""
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"


def sidecar_container(pod: dict) -> dict | None:
    """The istio-proxy container: a classic sidecar, or a native sidecar (init, restartPolicy Always)."""
    spec = pod.get("spec") or {}
    for container in spec.get("containers") or []:
        if container.get("name") == SIDECAR_CONTAINER:
            return container
    for container in spec.get("initContainers") or []:
        if container.get("name") == SIDECAR_CONTAINER and container.get("restartPolicy") == "Always":
            return container
    return None
