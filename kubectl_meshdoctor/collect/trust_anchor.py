"""The root of trust a cluster's istiod publishes, read only in multi-cluster runs (MD0406).

Two things say which root a cluster's mesh uses without any sidecar: the ``istio-ca-root-cert`` ConfigMap
istiod writes (istio-system's copy; key ``root-cert.pem``, a public certificate), and whether istiod was
given a plugged-in CA at all (the ``cacerts`` Secret of istio-system: without it istiod signs with a
self-signed root of its own, which no other cluster shares). Of the ConfigMap only each certificate's
serial, validity and SHA-256 fingerprint are kept (kubectl_meshdoctor/x509.py), never the PEM; of the
Secret only its name and creation time, read metadata-only (``as=PartialObjectMetadata``: the API server
sends no data; its annotations, which may hold a last-applied copy of the data, are dropped here too).
Refused access is a gap, not an error.
"""

from __future__ import annotations

from kubectl_meshdoctor.bundle import EvidenceBundle
from kubectl_meshdoctor.collect import ClusterOptions
from kubectl_meshdoctor.collect.api import ISTIO_NAMESPACE, ApiReader
from kubectl_meshdoctor.collect.kube import connect
from kubectl_meshdoctor.errors import ClusterError
from kubectl_meshdoctor.x509 import certificates_in_pem

ROOT_CERT_CONFIGMAP = "istio-ca-root-cert"
ROOT_CERT_KEY = "root-cert.pem"
PLUGGED_IN_CA = "cacerts"


def read_trust_anchor(cluster: ClusterOptions, bundle: EvidenceBundle) -> dict:
    """{"rootCerts": [{serial, notBefore, notAfter, sha256}] or None (not read / absent: see "rootCertFound"),
    "cacerts": {"present": bool, "created": str | None} or None (not read)}."""
    found: dict = {"rootCerts": None, "rootCertFound": None, "cacerts": None}
    kube = connect(cluster)
    try:
        api = ApiReader(kube)
        try:
            config_map = api.get_config_map(ISTIO_NAMESPACE, ROOT_CERT_CONFIGMAP)
            found["rootCertFound"] = config_map is not None
            if config_map is not None:
                pem = str((config_map.get("data") or {}).get(ROOT_CERT_KEY) or "")
                found["rootCerts"] = [{"serial": format(c.serial, "x"), "notBefore": c.not_before,
                                       "notAfter": c.not_after, "sha256": c.sha256} for c in certificates_in_pem(pem)]
        except ClusterError as exc:
            bundle.add_gap(f"{ROOT_CERT_CONFIGMAP} ConfigMap ({ISTIO_NAMESPACE})", str(exc))
        try:
            secret = api.get_metadata("secrets", ISTIO_NAMESPACE, PLUGGED_IN_CA)
            created = ((secret or {}).get("metadata") or {}).get("creationTimestamp")
            found["cacerts"] = {"present": secret is not None, "created": str(created) if created else None}
        except ClusterError as exc:
            bundle.add_gap(f"{PLUGGED_IN_CA} Secret presence ({ISTIO_NAMESPACE}, metadata only)", str(exc))
    finally:
        kube.close()
    return found
