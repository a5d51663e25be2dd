"""Several lab clusters at once, behind one kubeconfig with a context per cluster.

A multi-cluster mesh is one mesh over several Kubernetes clusters, each with its own API server and its
own sidecars. The lab plays that with one ``Lab`` per cluster (its own API server, its own real Envoys)
and one kubeconfig naming each as a context, which is what ``--context east,west`` reads. A context may
also point at a closed port: the cluster that cannot be reached.

Each cluster gets the identity Istio's installation gives it: the injector's env on every istio-proxy
(``ISTIO_META_CLUSTER_ID``, ``ISTIO_META_MESH_ID``, ``TRUST_DOMAIN``, ``ISTIO_META_NETWORK``), istiod's
``CLUSTER_ID`` env, and ``trustDomain`` / ``defaultConfig.meshId`` in the mesh config. The clusters
share one root CA (the plugged-in ``cacerts`` of the install guides) unless one is given its own, so each
real Envoy's ROOTCA is the mesh's root (and the cluster holds the ``cacerts`` Secret). Each cluster has its
own pod CIDR, a loopback 127.x.y.0/24 so that every pod IP is reachable on this machine
(lab/crosscluster.py), and each sidecar's endpoints of a Service that also runs in a cluster its istiod
reads (synced) include that cluster's pods, as istiod merges them (lab/remote_endpoints.py): every
cluster is prepared first, the endpoints added, the called pods' sidecars opened at their pod IPs
(lab/crosscluster.py), then the Envoys started, and the traffic driven once all of them run.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import yaml

from kubectl_meshdoctor.lab.certs import CertificateAuthority
from kubectl_meshdoctor.lab.crosscluster import CALLER, SERVER, loopback_pod_cidrs, open_called_pods
from kubectl_meshdoctor.lab.istiod import ISTIOD_CONTAINER
from kubectl_meshdoctor.lab.kubeconfig import write_kubeconfig
from kubectl_meshdoctor.lab.lab import Lab
from kubectl_meshdoctor.lab.remote_endpoints import add_remote_endpoints


@dataclass(frozen=True)
class MeshIdentity:
    cluster_id: str
    mesh_id: str = "mesh1"
    trust_domain: str = "cluster.local"
    network: str = "network1"


@dataclass(frozen=True)
class LabCluster:
    context: str
    scenarios: Sequence[str | dict] = ("bookinfo-healthy",)
    identity: MeshIdentity | None = None  # None: the cluster ID is the context
    own_root: bool = False  # True: this cluster's istiod signs with a root of its own (no shared trust)
    # The east-west gateway: None (none installed), "ready", or "pending" (its LoadBalancer got no address).
    east_west_gateway: str | None = None
    # What this cluster's istiod reads (/debug/clusterz): cluster ID -> sync status ("synced", "timeout").
    # None: every other cluster of the lab, synced (multi-primary); {}: none at all.
    reads: dict[str, str] | None = None
    # The Istio release this cluster runs (istiod's image and the proxies its injector gives); None: the lab's.
    istio_version: str | None = None
    # Namespaces whose pods were injected onto another network (ISTIO_META_NETWORK and the pod label the
    # injector writes), and the networks besides its own this cluster runs a ready east-west gateway for.
    namespace_networks: dict[str, str] | None = None
    network_gateways: tuple[str, ...] = ()


class ClusterLab(Lab):
    """One cluster of a multi-cluster lab: a Lab whose objects carry that cluster's mesh identity."""

    drive_on_start = False  # MultiLab drives every cluster's traffic once all of them run

    def __init__(self, identity: MeshIdentity, scenarios: Sequence[str | dict], workdir: Path,
                 root: CertificateAuthority | None, east_west_gateway: str | None = None,
                 istio_version: str | None = None, pod_cidr: str = Lab.pod_cidr,
                 namespace_networks: dict[str, str] | None = None, network_gateways: Sequence[str] = ()):
        super().__init__(scenarios, workdir=workdir)
        self.pod_cidr = pod_cidr
        self.namespace_networks = dict(namespace_networks or {})
        self.network_gateways = tuple(network_gateways)
        self.identity = identity
        self.shared_ca = root
        self.east_west_gateway = east_west_gateway
        self.istio_version = istio_version
        if istio_version:  # the injector of this release: every workload's proxy (and its Envoy's metadata)
            self._scenario_data = [dict(data, workloads=[dict(w, proxyVersion=w.get("proxyVersion") or istio_version)
                                                         for w in data.get("workloads") or []])
                                   for data in self._scenario_data]

    def _build(self) -> None:
        super()._build()
        for obj in self.objects:
            network = self.namespace_networks.get((obj.get("metadata") or {}).get("namespace"), self.identity.network)
            apply_identity(obj, replace(self.identity, network=network) if obj["kind"] == "Pod" else self.identity)
            if self.istio_version:
                set_istiod_release(obj, self.istio_version)
        if self.shared_ca is not None:
            self.objects.append(plugged_in_ca(self.shared_ca))
        if self.east_west_gateway is not None:
            self.objects.extend(east_west_gateway(self.identity.network, self.east_west_gateway == "ready"))
        for network in self.network_gateways:
            self.objects.extend(east_west_gateway(network, True, suffix=f"-{network}"))

    def sidecar_resources(self) -> list:
        """The configuration of every configured sidecar, before its Envoy starts (lab/remote_endpoints.py)."""
        return self._xds.registered() + self._xds_lost.registered()


def plugged_in_ca(root: CertificateAuthority) -> dict:
    """The cacerts Secret of the multi-cluster guides (the mesh's root, here also the signing CA), applied
    with kubectl apply: its data, private key included, is copied into the last-applied annotation too. The
    plugin may learn only that it exists."""
    import base64
    import json

    from kubectl_meshdoctor.lab.certs import _key_pem

    pem = root.cert_pem
    data = {name: base64.b64encode(value).decode() for name, value in (
        ("ca-cert.pem", pem), ("ca-key.pem", _key_pem(root._key)), ("root-cert.pem", pem), ("cert-chain.pem", pem))}
    meta = {"name": "cacerts", "namespace": "istio-system", "uid": "cacerts-plugged-in", "resourceVersion": "1",
            "creationTimestamp": "2026-11-20T08:30:00Z"}
    applied = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "data": data,
               "metadata": {"name": "cacerts", "namespace": "istio-system"}}
    meta["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": json.dumps(applied)}
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": meta, "data": data}


def apply_identity(obj: dict, identity: MeshIdentity) -> None:
    """Give one object the cluster's identity, where Istio's installation writes it."""
    kind, meta = obj.get("kind"), obj.get("metadata") or {}
    if kind == "Pod":
        for container in obj["spec"].get("containers") or []:
            if container["name"] == "istio-proxy":
                container["env"] = [{"name": "ISTIO_META_CLUSTER_ID", "value": identity.cluster_id},
                                    {"name": "ISTIO_META_MESH_ID", "value": identity.mesh_id},
                                    {"name": "TRUST_DOMAIN", "value": identity.trust_domain},
                                    {"name": "ISTIO_META_NETWORK", "value": identity.network}]
                meta.setdefault("labels", {})["topology.istio.io/network"] = identity.network  # as the injector
            elif meta.get("labels", {}).get("app") == "istiod" and container["name"] == ISTIOD_CONTAINER:
                container["env"] = [{"name": "CLUSTER_ID", "value": identity.cluster_id}]
    elif kind == "Namespace" and meta.get("name") == "istio-system":
        meta.setdefault("labels", {})["topology.istio.io/network"] = identity.network
    elif kind == "ConfigMap" and meta.get("namespace") == "istio-system" and meta.get("name") == "istio":
        mesh = yaml.safe_load(obj["data"]["mesh"]) or {}
        mesh["trustDomain"] = identity.trust_domain
        mesh.setdefault("defaultConfig", {})["meshId"] = identity.mesh_id
        obj["data"]["mesh"] = yaml.safe_dump(mesh, sort_keys=False)


def set_istiod_release(obj: dict, version: str) -> None:
    """An istiod pod of another release: its discovery container's image tag, as the chart of that release sets it."""
    if obj.get("kind") != "Pod" or (obj.get("metadata") or {}).get("labels", {}).get("app") != "istiod":
        return
    for container in obj["spec"].get("containers", []) + (obj.get("status") or {}).get("containerStatuses", []):
        if container.get("name") == ISTIOD_CONTAINER:
            container["image"] = f"{container['image'].rpartition(':')[0]}:{version}"


def east_west_gateway(network: str, addressed: bool, suffix: str = "") -> list[dict]:
    """The east-west gateway Istio's multi-cluster guide installs (gen-eastwest-gateway.sh, then the
    cross-network Gateway): its Service (with a LoadBalancer address when ``addressed``), ready Endpoints,
    and the AUTO_PASSTHROUGH Gateway. The gateway pod itself is not played."""
    labels = {"istio": "eastwestgateway", "app": f"istio-eastwestgateway{suffix}", "topology.istio.io/network": network}
    meta = {"name": f"istio-eastwestgateway{suffix}", "namespace": "istio-system", "labels": labels,
            "creationTimestamp": "2026-11-20T09:00:00Z", "uid": f"eastwest-{network}"}
    ports = [{"name": "status-port", "port": 15021, "protocol": "TCP"}, {"name": "tls", "port": 15443, "protocol": "TCP"},
             {"name": "tls-istiod", "port": 15012, "protocol": "TCP"}]
    ingress = [{"ip": "203.0.113.20"}] if addressed else []
    # a gateway of a second network of the cluster selects its own pods
    selector = {"istio": "eastwestgateway", **({"topology.istio.io/network": network} if suffix else {})}
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": meta,
         "spec": {"type": "LoadBalancer", "selector": selector, "ports": ports,
                  "clusterIP": "10.96.200.20"},
         "status": {"loadBalancer": {"ingress": ingress} if ingress else {}}},
        {"apiVersion": "v1", "kind": "Endpoints", "metadata": dict(meta, uid=f"eastwest-ep-{network}"),
         "subsets": [{"addresses": [{"ip": "10.244.200.20"}], "ports": [{"name": "tls", "port": 15443}]}]},
        {"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
         "metadata": {"name": f"cross-network-gateway{suffix}", "namespace": "istio-system",
                      "creationTimestamp": "2026-11-20T09:00:00Z", "uid": f"cross-network-{network}"},
         "spec": {"selector": selector,
                  "servers": [{"port": {"number": 15443, "name": "tls", "protocol": "TLS"},
                               "tls": {"mode": "AUTO_PASSTHROUGH"}, "hosts": ["*.local"]}]}},
    ]


class MultiLab:
    """Lab clusters side by side; ``kubeconfig`` has one context per cluster (and per unreachable name)."""

    def __init__(self, clusters: Sequence[LabCluster], unreachable: Sequence[str] = ()):
        self.clusters = list(clusters)
        self.unreachable = list(unreachable)
        self.workdir = Path(tempfile.mkdtemp(prefix="meshdoctor-multilab-"))
        self.kubeconfig = self.workdir / "kubeconfig"
        self.labs: dict[str, ClusterLab] = {}
        # One root for the mesh, as the multi-cluster install guides plug into every cluster (cacerts).
        self.root = CertificateAuthority()

    def __enter__(self) -> "MultiLab":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> "MultiLab":
        try:
            ids = {c.context: (c.identity or MeshIdentity(cluster_id=c.context)).cluster_id for c in self.clusters}
            prepared = []
            for cluster, cidr in zip(self.clusters, loopback_pod_cidrs(len(self.clusters))):
                identity = cluster.identity or MeshIdentity(cluster_id=cluster.context)
                lab = ClusterLab(identity, cluster.scenarios, self.workdir / cluster.context,
                                 None if cluster.own_root else self.root, cluster.east_west_gateway,
                                 cluster.istio_version, pod_cidr=cidr, namespace_networks=cluster.namespace_networks,
                                 network_gateways=cluster.network_gateways)
                reads = cluster.reads if cluster.reads is not None else \
                    {ids[c]: "synced" for c in ids if c != cluster.context}
                # istiod lists its own cluster first, with no secret, then each remote cluster's secret.
                lab._istiod.clusterz = [{"id": identity.cluster_id, "secretName": "", "syncStatus": "synced"}] + [
                    {"id": other, "secretName": f"istio-system/istio-remote-secret-{other}", "syncStatus": status}
                    for other, status in reads.items()]
                self.labs[cluster.context] = lab
                # One allocator for every cluster: each binds its ports only when its Envoys start, after
                # all clusters are prepared, so separate allocators could hand out the same free port.
                if prepared:
                    lab._ports = prepared[0][0]._ports
                lab._prepare()
                prepared.append((lab, reads))
            add_remote_endpoints(prepared)
            open_called_pods([lab for lab, _ in prepared])
            for lab, _ in prepared:
                lab._launch()
            for lab, _ in prepared:  # calls cross clusters: every cluster's Envoys run by now
                lab._drive_traffic()
            write_kubeconfig(self.kubeconfig, self.kubeconfig_document())
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for lab in self.labs.values():
            lab.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def kubeconfig_document(self) -> dict:
        """One kubeconfig: each lab's cluster, user and context renamed after the context."""
        document: dict = {"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [], "contexts": [],
                          "current-context": self.clusters[0].context, "preferences": {}}
        for context, lab in self.labs.items():
            _add_context(document, context, lab.server.kubeconfig(context=context))
        if self.unreachable:
            first = next(iter(self.labs.values()))
            closed = f"https://127.0.0.1:{closed_port()}"
            for context in self.unreachable:
                single = first.server.kubeconfig(context=context)
                single["clusters"][0]["cluster"]["server"] = closed
                _add_context(document, context, single)
        return document


def _add_context(document: dict, context: str, single: dict) -> None:
    user = f"{context}-user"
    document["clusters"] += single["clusters"]
    document["users"].append({"name": user, "user": single["users"][0]["user"]})
    body = dict(single["contexts"][0]["context"], user=user)
    document["contexts"].append({"name": context, "context": body})


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def demo_story(command: list[str], shown: str) -> int:
    """`make demo`'s multi-cluster story: east and west run bookinfo, but west kept istiod's self-signed
    root (MD0406) and west's istiod has no remote secret for east (MD0701: west's sidecars hold only
    local endpoints of bookinfo), and north cannot be reached (a gap). ``command`` runs the plugin;
    returns its status."""
    import os
    import subprocess

    clusters = [LabCluster("east", ("bookinfo-healthy", CALLER)),
                LabCluster("west", ("bookinfo-healthy", SERVER), own_root=True, reads={})]
    print("\nmulti-cluster story: east and west run bookinfo, east's checkout calls west's ledger, but west kept its "
          "own root CA and west's istiod reads no other cluster; north is down", flush=True)
    with MultiLab(clusters, unreachable=["north"]) as lab:
        args = ["-A", "--context", "east,west,north"]
        print(f"$ KUBECONFIG={lab.kubeconfig} {shown} {' '.join(args)}\n", flush=True)
        env = {**os.environ, "KUBECONFIG": str(lab.kubeconfig)}
        return subprocess.run([*command, *args], env=env, stdin=subprocess.DEVNULL).returncode
