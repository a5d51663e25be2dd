"""The east-west gateway evidence of one cluster, read only in multi-cluster runs.

Clusters on different networks reach each other's workloads only through an east-west gateway: a
Service labelled ``istio=eastwestgateway`` in istio-system (what Istio's multi-cluster guides install),
with an external address and ready endpoints, and a Gateway exposing ``*.local`` on 15443 with TLS mode
AUTO_PASSTHROUGH. A single-cluster run never needs them, so only ``collect/multi.py`` reads them, after
the cluster's ordinary collection, into the same bundle. Refused access is a gap, not an error.
"""

from __future__ import annotations

from kubectl_meshdoctor.bundle import EvidenceBundle
from kubectl_meshdoctor.collect import ClusterOptions
from kubectl_meshdoctor.collect.api import ISTIO_NAMESPACE, ISTIO_NETWORKING, ApiReader
from kubectl_meshdoctor.collect.kube import connect
from kubectl_meshdoctor.errors import ClusterError
from kubectl_meshdoctor.multibundle import EAST_WEST_EVIDENCE

EAST_WEST_SELECTOR = "istio=eastwestgateway"


def read_east_west(cluster: ClusterOptions, bundle: EvidenceBundle) -> None:
    """Add istio-system's Namespace (its network label), the east-west gateway Services and Endpoints,
    and istio-system's Gateways to ``bundle``."""
    kube = connect(cluster)
    try:
        api = ApiReader(kube)
        found: list[dict] = []
        namespace = api.get_namespace(ISTIO_NAMESPACE)
        if namespace is not None:
            found.append(namespace)
        found += api.list("Service", ISTIO_NAMESPACE, label_selector=EAST_WEST_SELECTOR)
        found += api.list("Endpoints", ISTIO_NAMESPACE, label_selector=EAST_WEST_SELECTOR)
        version = api.served_version(ISTIO_NETWORKING)
        if version is not None:
            found += api.list_istio(ISTIO_NETWORKING, version, "gateways", "Gateway", ISTIO_NAMESPACE)
    except ClusterError as exc:  # refused, or the server went away after the sweep: this evidence only
        bundle.add_gap("east-west gateway (istio-system)", str(exc))
        return
    finally:
        kube.close()
    have = {_key(obj) for obj in bundle.objects}
    bundle.objects.extend(obj for obj in found if _key(obj) not in have)
    bundle.available.add(EAST_WEST_EVIDENCE)


def _key(obj: dict) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return str(obj.get("kind")), str(meta.get("namespace") or ""), str(meta.get("name") or "")
