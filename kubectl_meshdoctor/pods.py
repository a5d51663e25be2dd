"""Facts about Kubernetes pod objects (and the istiod a pod talks to) that collection and checks share.

Kept apart from both layers so that the collector never imports the checks (and vice versa).
"""

from __future__ import annotations

import json

SIDECAR_CONTAINER = "istio-proxy"
REVISION_KEY = "istio.io/rev"
DEFAULT_REVISION = "default"


def pod_key(obj: dict) -> str:
    """"namespace/name" of an object, the key used for pods throughout the evidence."""
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"


def sidecar_container(pod: dict) -> dict | None:
    """The istio-proxy container: a classic sidecar, or a native sidecar (init, restartPolicy Always)."""
    spec = pod.get("spec") if isinstance(pod.get("spec"), dict) else {}
    containers, init_containers = spec.get("containers"), spec.get("initContainers")
    for container in containers if isinstance(containers, list) else []:
        if isinstance(container, dict) and container.get("name") == SIDECAR_CONTAINER:
            return container
    for container in init_containers if isinstance(init_containers, list) else []:
        if isinstance(container, dict) and container.get("name") == SIDECAR_CONTAINER \
                and container.get("restartPolicy") == "Always":
            return container
    return None


def pod_revision(pod: dict) -> str:
    """The control-plane revision a meshed pod belongs to; "default" when it names none.

    From the istio.io/rev label or annotation, else the revision the injector recorded in
    sidecar.istio.io/status.
    """
    meta = pod.get("metadata") or {}
    rev = (meta.get("labels") or {}).get(REVISION_KEY) or (meta.get("annotations") or {}).get(REVISION_KEY)
    if not rev:
        raw = (meta.get("annotations") or {}).get("sidecar.istio.io/status")
        try:
            rev = (json.loads(raw) or {}).get("revision") if raw else None
        except (ValueError, AttributeError):
            rev = None
    return str(rev) if rev else DEFAULT_REVISION


def istiod_service_names(revision: str) -> tuple[str, ...]:
    """The Services through which a pod of ``revision`` reaches istiod (istio-pilot: before Istio 1.5)."""
    if revision == DEFAULT_REVISION:
        return ("istiod", "istio-pilot")
    return (f"istiod-{revision}",)
