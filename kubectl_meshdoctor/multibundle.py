"""Evidence of several clusters in one run: one ordinary bundle per cluster, plus the clusters it could not read.

A multi-cluster run (``--context a,b`` or ``--all-contexts``) collects each cluster exactly as a
single-cluster run does; this module only keeps those bundles side by side, saves them and loads them
back. Each cluster's evidence stays a complete single-cluster bundle, so every existing check runs on it
unchanged; only the cross-cluster checks look at several at once.

Layout (format ``meshdoctor.bundle/v2``; a single-cluster run still saves ``v1``, and both load)::

    bundle.json                  format, the clusters in order (context, Istio cluster ID, directory, gap)
    clusters/<i>/bundle.json     the v1 bundle of the i-th cluster that could be read
    clusters/<i>/objects.json
    clusters/<i>/proxies/...

Directories are numbered, never named after contexts: a context name is user data and may hold "/".
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kubectl_meshdoctor.bundle import BUNDLE_FORMAT, EvidenceBundle, _dump, _read_files, write_files
from kubectl_meshdoctor.errors import BundleError
from kubectl_meshdoctor.pods import sidecar_container

MULTI_BUNDLE_FORMAT = "meshdoctor.bundle/v2"
# The env Istio's injection template gives every istio-proxy container: the cluster's name in the mesh
# (values.global.multiCluster.clusterName, "Kubernetes" when unset), the mesh ID, the trust domain and the
# network. Saved bundles blank every env value, so the identity is read at collection time and saved in
# the v2 header (these names and IDs are configuration, not secrets).
IDENTITY_ENV = {"clusterId": "ISTIO_META_CLUSTER_ID", "meshId": "ISTIO_META_MESH_ID",
                "trustDomain": "TRUST_DOMAIN", "network": "ISTIO_META_NETWORK"}
# What istiod itself is told: its cluster ID.
ISTIOD_CLUSTER_ID_ENV = "CLUSTER_ID"
IDENTITY_KEYS = tuple(IDENTITY_ENV)
# bundle.available marker (multi-cluster runs): the east-west gateway evidence was read (collect/eastwest.py),
# so a gateway absent from the objects is really absent.
EAST_WEST_EVIDENCE = "east-west-gateway"
# The network of a cluster's control plane, on the istio-system namespace (the default for its pods).
NETWORK_LABEL = "topology.istio.io/network"


@dataclass
class ClusterEvidence:
    """One cluster of the run: its kubeconfig context, and its bundle, or why it could not be read."""

    context: str
    bundle: EvidenceBundle | None = None
    unreachable: str | None = None  # the reason, when nothing could be read from it
    # clusterId, meshId, trustDomain, network: what this cluster's mesh calls itself (None: not known).
    identity: dict[str, str | None] = field(default_factory=dict)
    server: str | None = None  # the API server's URL: two contexts of one server are one cluster
    # istiod's /debug/clusterz ({id, secretName, syncStatus} per cluster it reads); None: not known.
    clusterz: list[dict] | None = None
    # What one of its sidecars holds in EDS for the Services shared with other clusters of the run
    # (collect/remote_endpoints.py): {"pod", "asked", "clusters": {name: [endpoint]}}; None: not asked.
    endpoints: dict | None = None
    # The root istiod publishes and whether it has a plugged-in CA (collect/trust_anchor.py); None: not read.
    trust_anchor: dict | None = None

    @property
    def cluster_id(self) -> str | None:
        return self.identity.get("clusterId")


@dataclass
class MultiClusterBundle:
    clusters: list[ClusterEvidence] = field(default_factory=list)

    @property
    def readable(self) -> list[ClusterEvidence]:
        return [c for c in self.clusters if c.bundle is not None]

    # --- save ---------------------------------------------------------------------------------------

    def files(self):
        header: dict = {"format": MULTI_BUNDLE_FORMAT, "clusters": []}
        entries = []
        for index, cluster in enumerate(self.clusters):
            entry = {"context": cluster.context, "server": cluster.server, "identity": cluster.identity,
                     "clusterz": cluster.clusterz, "endpoints": cluster.endpoints,
                     "trustAnchor": cluster.trust_anchor,
                     "directory": f"clusters/{index}" if cluster.bundle is not None else None,
                     "unreachable": cluster.unreachable}
            header["clusters"].append(entry)
            entries.append((entry["directory"], cluster.bundle))
        yield "bundle.json", _dump(header)
        for directory, bundle in entries:
            if bundle is not None:
                for name, content in bundle.files():
                    yield f"{directory}/{name}", content

    def save(self, path: str | Path) -> Path:
        return write_files(path, self.files())


def load_bundle(path: str | Path) -> EvidenceBundle | MultiClusterBundle:
    """A saved bundle of either format: v1 (one cluster) as before, v2 (several clusters) as a MultiClusterBundle."""
    path = Path(path)
    files = _read_files(path)
    try:
        header = json.loads(files.get("bundle.json", b"null"))
    except (ValueError, UnicodeDecodeError):
        header = None
    if not isinstance(header, dict) or header.get("format") != MULTI_BUNDLE_FORMAT:
        return EvidenceBundle.load(path)  # v1, or the clear error for anything else
    try:
        clusters = []
        for entry in header["clusters"]:
            context, directory = str(entry["context"]), entry.get("directory")
            if directory is None:
                clusters.append(ClusterEvidence(context, None, str(entry.get("unreachable") or "not read")))
                continue
            prefix = f"{directory}/"
            member = {name[len(prefix):]: content for name, content in files.items() if name.startswith(prefix)}
            identity = {key: (entry.get("identity") or {}).get(key) for key in IDENTITY_KEYS}
            clusters.append(ClusterEvidence(context, EvidenceBundle.from_files(member, f"{path}:{directory}"),
                                            identity=identity, server=entry.get("server"),
                                            clusterz=_clusterz(entry.get("clusterz")),
                                            endpoints=_endpoints(entry.get("endpoints")),
                                            trust_anchor=_trust_anchor(entry.get("trustAnchor"))))
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise BundleError(f"{path}: corrupt multi-cluster bundle ({type(exc).__name__}: {exc})") from None
    if not clusters:
        raise BundleError(f"{path}: multi-cluster bundle lists no cluster")
    return MultiClusterBundle(clusters)


def mesh_identity(bundle: EvidenceBundle) -> dict[str, str | None]:
    """What the evidence says this cluster's mesh calls itself: the values the sidecars were injected
    with (the most common one, should they differ), else istiod's env and the mesh config."""
    seen: dict[str, Counter[str]] = {key: Counter() for key in IDENTITY_KEYS}
    mesh: dict = {}
    for obj in bundle.objects:
        meta = obj.get("metadata") or {}
        if obj.get("kind") == "ConfigMap" and meta.get("name") == "istio":
            try:
                loaded = yaml.safe_load((obj.get("data") or {}).get("mesh") or "")
            except yaml.YAMLError:
                loaded = None
            mesh = loaded if isinstance(loaded, dict) else mesh
        if obj.get("kind") != "Pod":
            continue
        container = sidecar_container(obj)
        wanted = {name: key for key, name in IDENTITY_ENV.items()}
        if container is None and (meta.get("labels") or {}).get("app") == "istiod":
            container = next(iter((obj.get("spec") or {}).get("containers") or []), None)
            wanted = {ISTIOD_CLUSTER_ID_ENV: "clusterId"}
        for env in (container or {}).get("env") or []:
            if isinstance(env, dict) and env.get("name") in wanted and isinstance(env.get("value"), str):
                seen[wanted[env["name"]]][env["value"]] += 1
    identity = {key: counts.most_common(1)[0][0] if counts else None for key, counts in seen.items()}
    default_config = mesh.get("defaultConfig") if isinstance(mesh.get("defaultConfig"), dict) else {}
    identity["meshId"] = identity["meshId"] or _text(default_config.get("meshId"))
    identity["trustDomain"] = identity["trustDomain"] or _text(mesh.get("trustDomain"))
    control_plane = next((o for o in bundle.objects if o.get("kind") == "Namespace"
                          and (o.get("metadata") or {}).get("name") == "istio-system"), {})
    labels = (control_plane.get("metadata") or {}).get("labels") or {}
    identity["network"] = identity["network"] or _text(labels.get(NETWORK_LABEL))
    return identity


def _clusterz(value) -> list[dict] | None:
    if value is None:
        return None
    return [{"id": str(c["id"]), "secretName": str(c.get("secretName") or ""),
             "syncStatus": str(c.get("syncStatus") or "")} for c in value]


def _endpoints(value) -> dict | None:
    """The saved EDS evidence; absent in bundles saved before it was collected (None, as not asked)."""
    if value is None:
        return None
    return {"pod": str(value["pod"]), "asked": [str(name) for name in value["asked"]],
            "clusters": {str(name): [{"address": str(e["address"]),
                                      "clusterId": None if e.get("clusterId") is None else str(e["clusterId"]),
                                      "weight": int(e.get("weight", 1))} for e in endpoints]
                         for name, endpoints in value["clusters"].items()}}


def _trust_anchor(value) -> dict | None:
    """The saved trust anchor, reduced again to its known fields (a header is user-editable input)."""
    if value is None:
        return None
    roots = value.get("rootCerts")
    cacerts = value.get("cacerts")
    return {"rootCerts": None if roots is None else [
                {key: str(root[key]) for key in ("serial", "notBefore", "notAfter", "sha256")} for root in roots],
            "rootCertFound": value.get("rootCertFound"),
            "cacerts": None if cacerts is None else {"present": bool(cacerts["present"]),
                                                     "created": _text(cacerts.get("created"))}}


def _text(value) -> str | None:
    return str(value) if value not in (None, "") else None


__all__ = ["BUNDLE_FORMAT", "MULTI_BUNDLE_FORMAT", "ClusterEvidence", "MultiClusterBundle", "mesh_identity",
           "load_bundle"]
