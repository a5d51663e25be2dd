"""What decides where a sidecar may send traffic outside the registry: one extra read per sweep.

Why separate from the other Istio kinds: a cluster whose RBAC predates these reads must still be
diagnosed; a refused read here is a gap for the egress diagnosis (MD0505), not a failed sweep.

- The mesh config: ConfigMap ``istio`` in istio-system, key ``mesh`` (YAML), where
  ``outboundTrafficPolicy.mode`` (ALLOW_ANY unless set) lives. Only that key is kept: the other keys
  (meshNetworks, revisions' extras) are not needed and do not belong in a saved bundle.
- Sidecars (their ``outboundTrafficPolicy`` overrides the mesh config's) and ServiceEntries (what
  REGISTRY_ONLY lets through), in the scope's namespace and the root namespace.
"""

from __future__ import annotations

from kubectl_meshdoctor.collect.api import ISTIO_NAMESPACE, ISTIO_NETWORKING, ApiReader

MESH_CONFIG_MAP = "istio"
EGRESS_KINDS = (("sidecars", "Sidecar"), ("serviceentries", "ServiceEntry"))


def read_egress_config(api: ApiReader, namespace: str | None) -> list[dict]:
    """The mesh ConfigMap (``mesh`` key only), Sidecars and ServiceEntries; raises AccessRefused."""
    objects: list[dict] = []
    config_map = api.get_config_map(ISTIO_NAMESPACE, MESH_CONFIG_MAP)
    if config_map is not None:
        data = config_map.get("data") or {}
        objects.append({**config_map, "data": {"mesh": data["mesh"]} if "mesh" in data else {}})
    version = api.served_version(ISTIO_NETWORKING)
    if version is None:
        return objects
    namespaces = [namespace] if namespace is None or namespace == ISTIO_NAMESPACE else [namespace, ISTIO_NAMESPACE]
    for plural, kind in EGRESS_KINDS:
        for each in namespaces:
            objects += api.list_istio(ISTIO_NETWORKING, version, plural, kind, each)
    return objects
