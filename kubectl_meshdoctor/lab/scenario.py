"""Lab scenarios: a compact YAML description expanded into the objects a real cluster would hold.

A scenario names workloads, Services and raw Istio resources; this module expands them into Namespaces,
Pods (with the injector's labels, annotation and istio-proxy container, and a status that says 1/2 or
2/2 READY), Services, Endpoints and EndpointSlices in their real schema, the kube-dns Service and the
istiod Service with its endpoints. It also yields, per pod, what its sidecar should be like (got its
config, never reached istiod, certificate lifetime, resolv.conf, extra log lines), which the Lab turns
into a real Envoy. Format (all keys but `name` optional)::

    name: my-scenario
    description: text
    cluster: {dnsServiceIP: 10.96.0.10, revision: default, istiodReady: true, caLifetimeHours: 87600,
              caRemainingHours: null,   # revision: the istiod revision of this scenario's sidecars
              dnsServiceCreated: 2026-11-20T14:02:00Z,   # the kube-dns Service's creationTimestamp
              istiodReplicas: 2, istiodPdb: true, istiodHpaMin: 2}   # that revision's redundancy (null: no HPA)
    namespaces: [{name: shop, injection: true, rootCa: new-root}]   # rootCa: CA in its istio-ca-root-cert
    sidecarDefaults: {state: healthy|no-xds|disconnected, nameservers: [...], log: [...], cert: {lifetimeHours, remainingHours}}
    workloads:
      - {name: cart-v1, namespace: shop, app: cart, version: v1, replicas: 2, serviceAccount: cart,
         port: 8080, sidecar: {...overrides sidecarDefaults...} | none, tlsModeLabel: true,
         created: 2026-11-20T14:05:00Z,   # the pods' creation, start and last readiness change
         proxyVersion: 1.22.3,   # the Istio release of its proxy (image tag and Envoy's node metadata)
         sidecar: {ca: new-root},   # its certificate and trusted root come from a second CA named new-root
         securityContext: {runAsUser: 1000},            # the application container's
         drive: [{port: 8080, path: /, host: cart, count: 3, concurrency: 1}],   # real requests sent
                                                    # through this pod's Envoy at start; or {external: IP, port, sni}
                                                    # (via virtualOutbound); or {inbound: true, port} (into its own
                                                    # virtualInbound, as a client elsewhere)
         serve: {delayMs: 0, listen: pod-ip|localhost}}   # a real HTTP stand-in app for each replica
    services:
      - {name: cart, namespace: shop, selector: {app: cart}, clusterIP: None|IP,
         ports: [{name: http, port: 8080, targetPort: 8080}], standIn: plaintext,   # a local plain TCP server
                                  # (standIn: mtls: a TLS server with the certificate of a pod behind it)
         created: "2026-10-01T08:00:00Z"}   # creationTimestamp, when which Service is older matters
    objects: [raw Kubernetes / Istio objects: DestinationRule, VirtualService, PeerAuthentication, ...]
    expect: [{code: MD0501, subject: {kind: VirtualService, namespace: shop, name: cart}}]

`{nameserver}`, `{pod_ip}`, `{dns_ip}` and `{istiod_ip}` in log lines are filled in per pod.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import yaml

from kubectl_meshdoctor.errors import UsageError
from kubectl_meshdoctor.lab.controlplane import PILOT_IMAGE, Redundancy, injector_webhook, istiod_objects

ISTIO_REVISION = "default"
PROXY_IMAGE = "docker.io/istio/proxyv2:1.24.2"
ISTIOD_CONTAINER = "discovery"
DEFAULT_DNS_IP = "10.96.0.10"
CREATED = "2026-11-20T09:00:00Z"


@dataclass(frozen=True)
class SidecarSpec:
    """What a pod's sidecar is like, as the Lab must build it."""

    namespace: str
    pod: str
    # "healthy" (config from the lab's xDS server), "no-xds" (ADS to an address where nothing answers) or
    # "disconnected" (configured, then its xDS server stops: istiod went away after configuring it)
    state: str
    nameservers: tuple[str, ...]
    log: tuple[str, ...] = ()
    cert_lifetime_hours: float = 24.0
    cert_remaining_hours: float | None = None
    drive: tuple[dict, ...] = ()
    # Pods of one scenario that may share a single Envoy (benchmarks: identical outbound config).
    share_envoy: bool = False
    revision: str = ISTIO_REVISION
    ca: str = ""  # the lab CA that issued its certificate and root ("": the mesh's; any other name: a second root)


@dataclass(frozen=True)
class StandIn:
    """A server on 127.0.0.1 standing in for a Service's pods: plain TCP (Redis) or, with kind "mtls", a TLS
    server presenting the certificate of ``server_pod``'s sidecar (what its Envoy would serve inbound)."""

    service_host: str
    port: int
    kind: str = "plaintext"
    server_pod: tuple[str, str] = ("", "")  # (namespace, name)


@dataclass
class Expanded:
    """A scenario turned into cluster objects plus what the Lab must run for it."""

    name: str
    objects: list[dict] = field(default_factory=list)
    sidecars: list[SidecarSpec] = field(default_factory=list)
    resolv: dict[tuple[str, str], str] = field(default_factory=dict)  # (ns, pod) -> resolv.conf
    stand_ins: list[StandIn] = field(default_factory=list)
    expect: list[dict] = field(default_factory=list)
    namespace_roots: dict[str, str] = field(default_factory=dict)  # namespace -> CA name in istio-ca-root-cert
    served: dict[str, dict] = field(default_factory=dict)  # pod IP -> the workload's `serve` (a stand-in app)


def scenario_names() -> list[str]:
    folder = resources.files("kubectl_meshdoctor.lab") / "scenarios"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_scenario(name_or_path: str) -> dict:
    """A packaged scenario by name, or a scenario file by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        text = path.read_text()
    else:
        resource = resources.files("kubectl_meshdoctor.lab") / "scenarios" / f"{name_or_path}.yaml"
        if not resource.is_file():
            raise UsageError(f"unknown lab scenario {name_or_path!r}; known: {', '.join(scenario_names())}")
        text = resource.read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageError(f"lab scenario {name_or_path!r} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or "name" not in data:
        raise UsageError(f"lab scenario {name_or_path!r} has no name")
    return data


def _digest(*parts: str, length: int = 10) -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    number = int(hashlib.sha256("/".join(parts).encode()).hexdigest(), 16)
    out = []
    for _ in range(length):
        number, rem = divmod(number, len(alphabet))
        out.append(alphabet[rem])
    return "".join(out)


def _uid(*parts: str) -> str:
    h = hashlib.sha256("uid/".join(parts).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


class AddressPool:
    """Hands out pod and ClusterIP addresses unique across every scenario of one lab."""

    def __init__(self, pod_cidr: str = "10.244.0.0/16", service_cidr: str = "10.96.0.0/16"):
        self._pods = ipaddress.ip_network(pod_cidr).hosts()
        self._services = ipaddress.ip_network(service_cidr).hosts()
        self.taken: set[str] = {DEFAULT_DNS_IP}
        next(self._pods)

    def _next(self, it: Iterable) -> str:
        for address in it:
            if str(address) not in self.taken and not str(address).endswith((".0", ".1", ".255")):
                self.taken.add(str(address))
                return str(address)
        raise UsageError("the lab ran out of addresses")

    def pod_ip(self) -> str:
        return self._next(self._pods)

    def cluster_ip(self) -> str:
        return self._next(self._services)


def _meta(name: str, namespace: str | None, labels: dict | None = None, annotations: dict | None = None,
          created: str = CREATED) -> dict:
    meta: dict[str, Any] = {"name": name, "uid": _uid(namespace or "", name), "resourceVersion": "1",
                            "creationTimestamp": created}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def _running(name: str, image: str, ready: bool, started: str = CREATED) -> dict:
    return {"name": name, "image": image, "imageID": f"{image}@sha256:{_digest(image, length=16)}",
            "containerID": f"containerd://{hashlib.sha256(name.encode()).hexdigest()}", "ready": ready,
            "started": True, "restartCount": 0, "state": {"running": {"startedAt": started}}}


def _pod(name: str, namespace: str, labels: dict, sa: str, ip: str, app_image: str, port: int | None,
         sidecar: bool, proxy_ready: bool, app_ready: bool = True, node: str = "lab-node-1",
         revision: str = ISTIO_REVISION, created: str = CREATED, proxy_image: str = PROXY_IMAGE) -> dict:
    """A pod as the API shows it; ``created`` is its creation, start and last readiness change."""
    ports = [{"containerPort": port, "protocol": "TCP"}] if port else []
    containers = [{"name": labels.get("app", name), "image": app_image, "ports": ports,
                   "imagePullPolicy": "IfNotPresent"}]
    annotations = {}
    init_containers: list[dict] = []
    statuses = [_running(containers[0]["name"], app_image, app_ready, created)]
    if sidecar:
        labels = {**labels, "security.istio.io/tlsMode": labels.get("security.istio.io/tlsMode", "istio"),
                  "service.istio.io/canonical-name": labels.get("app", name),
                  "service.istio.io/canonical-revision": labels.get("version", "latest"),
                  **({"istio.io/rev": revision} if revision != ISTIO_REVISION else {})}
        if labels["security.istio.io/tlsMode"] is None:
            del labels["security.istio.io/tlsMode"]
        annotations = {
            "sidecar.istio.io/status": json.dumps({
                "initContainers": ["istio-init"], "containers": ["istio-proxy"],
                "volumes": ["workload-socket", "credential-socket", "workload-certs", "istio-envoy",
                            "istio-data", "istio-podinfo", "istio-token", "istiod-ca-cert"],
                "imagePullSecrets": None, "revision": revision}),
            "istio.io/rev": revision,
            "kubectl.kubernetes.io/default-container": containers[0]["name"],
            "prometheus.io/path": "/stats/prometheus", "prometheus.io/port": "15020", "prometheus.io/scrape": "true",
        }
        containers.append({
            "name": "istio-proxy", "image": proxy_image,
            "args": ["proxy", "sidecar", "--domain", f"{namespace}.svc.cluster.local", "--proxyLogLevel=warning",
                     "--proxyComponentLogLevel=misc:error", "--log_output_level=default:info"],
            "ports": [{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}],
            "readinessProbe": {"httpGet": {"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"},
                               "periodSeconds": 15, "timeoutSeconds": 3, "failureThreshold": 4},
            "startupProbe": {"httpGet": {"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"},
                             "periodSeconds": 1, "timeoutSeconds": 3, "failureThreshold": 600},
            "securityContext": {"runAsUser": 1337, "runAsGroup": 1337, "runAsNonRoot": True},
        })
        init_containers.append({"name": "istio-init", "image": proxy_image,
                                "args": ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337"]})
        statuses.append(_running("istio-proxy", proxy_image, proxy_ready, created))
    ready = all(s["ready"] for s in statuses)
    condition = {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": created}
    if not ready:
        condition.update(reason="ContainersNotReady",
                         message="containers with unready status: ["
                         + " ".join(s["name"] for s in statuses if not s["ready"]) + "]")
    containers_ready = dict(condition, type="ContainersReady")
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": _meta(name, namespace, labels, annotations or None, created),
        "spec": {"containers": containers, "serviceAccountName": sa, "serviceAccount": sa, "nodeName": node,
                 "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler"},
        "status": {
            "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "192.168.49.2",
            "startTime": created, "qosClass": "BestEffort",
            "conditions": [{"type": "Initialized", "status": "True", "lastTransitionTime": created},
                           condition, containers_ready,
                           {"type": "PodScheduled", "status": "True", "lastTransitionTime": created}],
            "containerStatuses": statuses,
        },
    }
    if init_containers:
        pod["spec"]["initContainers"] = init_containers
        pod["status"]["initContainerStatuses"] = [{
            "name": "istio-init", "image": proxy_image, "ready": True, "restartCount": 0, "started": False,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": created,
                                     "finishedAt": created}}}]
    return pod


def _is_ready(pod: dict) -> bool:
    return all(s.get("ready") for s in pod["status"].get("containerStatuses", ()))


def _service_objects(name: str, namespace: str, spec_ports: list[dict], selector: dict, cluster_ip: str,
                     pods: list[dict], labels: dict | None = None, created: str = CREATED) -> list[dict]:
    """The Service and, as the endpoints controllers would write them, its Endpoints and EndpointSlice."""
    ports = []
    for p in spec_ports:
        port = {"name": p.get("name", ""), "port": p["port"], "protocol": p.get("protocol", "TCP"),
                "targetPort": p.get("targetPort", p["port"])}
        if p.get("appProtocol"):
            port["appProtocol"] = p["appProtocol"]
        ports.append(port)
    spec: dict[str, Any] = {"type": "ClusterIP", "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                            "ports": ports, "sessionAffinity": "None", "ipFamilies": ["IPv4"]}
    if selector:
        spec["selector"] = dict(selector)
    service = {"apiVersion": "v1", "kind": "Service", "metadata": _meta(name, namespace, labels, created=created),
               "spec": spec,
               "status": {"loadBalancer": {}}}
    members = [p for p in pods if selector and all(p["metadata"].get("labels", {}).get(k) == v
                                                   for k, v in selector.items())]
    endpoint_ports = []
    for p in ports:
        target = p["targetPort"] if isinstance(p["targetPort"], int) else p["port"]
        entry = {"name": p["name"], "port": target, "protocol": p["protocol"]}
        if p.get("appProtocol"):
            entry["appProtocol"] = p["appProtocol"]
        endpoint_ports.append(entry)

    def address(pod: dict) -> dict:
        return {"ip": pod["status"]["podIP"], "nodeName": pod["spec"]["nodeName"],
                "targetRef": {"kind": "Pod", "namespace": namespace, "name": pod["metadata"]["name"],
                              "uid": pod["metadata"]["uid"]}}

    ready = [address(p) for p in members if _is_ready(p)]
    not_ready = [address(p) for p in members if not _is_ready(p)]
    subset: dict[str, Any] = {"ports": [{k: v for k, v in e.items()} for e in endpoint_ports]}
    if ready:
        subset["addresses"] = ready
    if not_ready:
        subset["notReadyAddresses"] = not_ready
    endpoints = {"apiVersion": "v1", "kind": "Endpoints", "metadata": _meta(name, namespace, labels),
                 "subsets": [subset] if members else []}
    slice_ = {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": _meta(f"{name}-{_digest(namespace, name, length=5)}", namespace, {
            **(labels or {}), "kubernetes.io/service-name": name,
            "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}),
        "addressType": "IPv4",
        "endpoints": [{"addresses": [p["status"]["podIP"]],
                       "conditions": {"ready": _is_ready(p), "serving": _is_ready(p), "terminating": False},
                       "nodeName": p["spec"]["nodeName"],
                       "targetRef": {"kind": "Pod", "namespace": namespace, "name": p["metadata"]["name"],
                                     "uid": p["metadata"]["uid"]}} for p in members],
        "ports": endpoint_ports,
    }
    slice_["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "Service", "name": name,
                                              "uid": service["metadata"]["uid"], "controller": True,
                                              "blockOwnerDeletion": True}]
    return [service, endpoints, slice_]


def _owner(workload: dict, namespace: str, template_hash: str, pod_name: str) -> list[dict]:
    """The controller a real cluster would name: a Deployment's ReplicaSet, or a StatefulSet for `name-N`."""
    if not workload.get("podName"):
        kind, name = "ReplicaSet", f"{workload['name']}-{template_hash}"
    elif pod_name.rpartition("-")[2].isdigit():
        kind, name = "StatefulSet", pod_name.rpartition("-")[0]
    else:
        return []
    return [{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": _uid(namespace, kind, name),
             "controller": True, "blockOwnerDeletion": True}]


def resolv_conf(namespace: str, nameservers: Iterable[str]) -> str:
    lines = [f"search {namespace}.svc.cluster.local svc.cluster.local cluster.local"]
    lines += [f"nameserver {ns}" for ns in nameservers]
    lines.append("options ndots:5")
    return "\n".join(lines) + "\n"


def expand(data: dict, pool: AddressPool, dns_ip: str, istiod_ip: str = "") -> Expanded:
    """Turn one scenario into cluster objects and sidecar specs; ``dns_ip`` is the lab's kube-dns IP."""
    out = Expanded(name=data["name"], expect=list(data.get("expect") or ()))
    defaults = dict(data.get("sidecarDefaults") or {})
    revision = scenario_revision(data)
    injected = {ns["name"]: bool(ns.get("injection", True)) for ns in data.get("namespaces") or ()}
    out.namespace_roots = {ns["name"]: str(ns["rootCa"]) for ns in data.get("namespaces") or () if ns.get("rootCa")}
    for ns, inject in injected.items():
        # a revisioned control plane is selected with istio.io/rev, the default one with istio-injection
        injection = {"istio.io/rev": revision} if revision != ISTIO_REVISION else {"istio-injection": "enabled"}
        labels = {"kubernetes.io/metadata.name": ns, **(injection if inject else {})}
        out.objects.append({"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(ns, None, labels),
                            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
    pods: list[dict] = []
    for w in data.get("workloads") or ():
        ns = w.get("namespace", "default")
        sidecar_cfg = w.get("sidecar", "inherit")
        has_sidecar = sidecar_cfg != "none" and injected.get(ns, False)
        settings = {**defaults, **(sidecar_cfg if isinstance(sidecar_cfg, dict) else {})}
        state = settings.get("state", "healthy")
        app = w.get("app", w["name"])
        labels = {"app": app, **({"version": w["version"]} if w.get("version") else {}), **(w.get("labels") or {})}
        if has_sidecar and not w.get("tlsModeLabel", True):
            labels["security.istio.io/tlsMode"] = None
        if not has_sidecar and w.get("tlsModeLabel"):
            labels["security.istio.io/tlsMode"] = "istio"  # labelled without a running sidecar
        hash_ = _digest(ns, w["name"])
        for i in range(int(w.get("replicas", 1))):
            pod_name = w.get("podName") or f"{w['name']}-{hash_}-{_digest(ns, w['name'], str(i), length=5)}"
            ip = pool.pod_ip()
            pod = _pod(pod_name, ns, {**labels, "pod-template-hash": hash_}, w.get("serviceAccount", app), ip,
                       w.get("image", f"docker.io/istio/examples-{app}:1.20.2"), w.get("port"),
                       sidecar=has_sidecar, proxy_ready=(state in ("healthy", "disconnected")), revision=revision,
                       created=str(w.get("created") or CREATED), proxy_image=proxy_image(w.get("proxyVersion")))
            pod["metadata"]["ownerReferences"] = _owner(w, ns, hash_, pod_name)
            if w.get("securityContext"):  # the application container's, e.g. {runAsUser: 1337}
                pod["spec"]["containers"][0]["securityContext"] = dict(w["securityContext"])
            pods.append(pod)
            if w.get("serve") is not None:
                out.served[ip] = dict(w.get("serve") or {})
            nameservers = tuple(settings.get("nameservers") or (dns_ip,))
            out.resolv[(ns, pod_name)] = resolv_conf(ns, nameservers)
            if has_sidecar:
                cert = settings.get("cert") or {}
                fill = {"nameserver": nameservers[0], "pod_ip": ip, "dns_ip": dns_ip, "istiod_ip": istiod_ip}
                out.sidecars.append(SidecarSpec(
                    namespace=ns, pod=pod_name, state=state, nameservers=nameservers,
                    log=tuple(str(line).format(**fill) for line in settings.get("log") or ()),
                    cert_lifetime_hours=float(cert.get("lifetimeHours", 24)),
                    cert_remaining_hours=cert.get("remainingHours"),
                    drive=tuple(w.get("drive") or ()),
                    share_envoy=bool(settings.get("shareEnvoy")),
                    revision=revision,
                    ca=str(settings.get("ca") or ""),
                ))
    out.objects.extend(pods)
    for s in data.get("services") or ():
        ns = s.get("namespace", "default")
        ip = s.get("clusterIP") or pool.cluster_ip()
        service_objects = _service_objects(s["name"], ns, s["ports"], s.get("selector") or {}, ip, pods,
                                           s.get("labels"))
        if s.get("created"):  # when it matters which Service is older (istiod keeps the oldest's protocol)
            service_objects[0]["metadata"]["creationTimestamp"] = s["created"]
        out.objects.extend(service_objects)
        if s.get("standIn"):
            behind = next((p for p in pods if p["metadata"]["namespace"] == ns and s.get("selector") and all(
                p["metadata"].get("labels", {}).get(k) == v for k, v in s["selector"].items())), None)
            server = (ns, behind["metadata"]["name"]) if behind else ("", "")
            for p in s["ports"]:
                out.stand_ins.append(StandIn(f"{s['name']}.{ns}.svc.cluster.local", p["port"], str(s["standIn"]),
                                             server))
    for obj in data.get("objects") or ():
        obj = dict(obj)
        obj["metadata"] = {**_meta(obj["metadata"]["name"], obj["metadata"].get("namespace")),
                           **obj["metadata"]}
        out.objects.append(obj)
    return out


def proxy_image(istio_version: str | None) -> str:
    """The proxyv2 image of an Istio release (a workload's `proxyVersion`), the lab's own by default."""
    return f"{PROXY_IMAGE.rpartition(':')[0]}:{istio_version}" if istio_version else PROXY_IMAGE


def scenario_revision(data: dict) -> str:
    """The istiod revision a scenario's sidecars belong to (``cluster.revision``; "default" if unset)."""
    return str((data.get("cluster") or {}).get("revision") or ISTIO_REVISION)


def istiod_service_name(revision: str) -> str:
    return "istiod" if revision == ISTIO_REVISION else f"istiod-{revision}"


def control_plane_objects(pool: AddressPool, dns_ip: str, revisions: dict[str, bool],
                          dns_created: str = CREATED, redundancy: dict[str, Redundancy] | None = None
                          ) -> tuple[list[dict], dict]:
    """kube-system's DNS and istio-system's istiod (one per revision, ready or not); plus their resolv.confs.

    The default revision always exists, so a broken canary revision leaves the other pods' istiod intact.
    Each revision also gets its Deployment, PDB, HPA and injector webhook (``redundancy``: per revision,
    default two replicas with both).
    """
    objects: list[dict] = []
    for ns, labels in (("kube-system", {}), ("istio-system", {})):
        objects.append({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": _meta(ns, None, {"kubernetes.io/metadata.name": ns, **labels}),
                        "status": {"phase": "Active"}})
    coredns = _pod(f"coredns-{_digest('coredns')}-{_digest('coredns', '0', length=5)}", "kube-system",
                   {"k8s-app": "kube-dns"}, "coredns", pool.pod_ip(), "registry.k8s.io/coredns/coredns:v1.11.3",
                   53, sidecar=False, proxy_ready=True)
    objects.append(coredns)
    objects += _service_objects("kube-dns", "kube-system", [
        {"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53},
        {"name": "metrics", "port": 9153}], {"k8s-app": "kube-dns"}, dns_ip, [coredns],
        {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS", "kubernetes.io/cluster-service": "true"}, dns_created)
    # The mesh-wide default most production meshes set: each sidecar learns its own namespace's Services
    # and the control plane's, not every Service of the cluster.
    objects.append({"apiVersion": "networking.istio.io/v1", "kind": "Sidecar",
                    "metadata": _meta("default", "istio-system"),
                    "spec": {"egress": [{"hosts": ["./*", "istio-system/*"]}]}})
    # The mesh config istiod reads (what `istioctl install` writes; outboundTrafficPolicy unset = ALLOW_ANY).
    objects.append({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": _meta("istio", "istio-system", {"istio.io/rev": ISTIO_REVISION}),
                    "data": {"mesh": "accessLogFile: /dev/stdout\ndefaultConfig:\n  discoveryAddress: "
                                     "istiod.istio-system.svc:15012\nenablePrometheusMerge: true\n"
                                     "rootNamespace: istio-system\ntrustDomain: cluster.local\n",
                             "meshNetworks": "networks: {}"}})
    resolv = {("kube-system", coredns["metadata"]["name"]): "nameserver 192.168.49.1\n"}
    for revision, ready in sorted({ISTIO_REVISION: True, **revisions}.items()):
        name = istiod_service_name(revision)
        selector = {"app": "istiod", "istio.io/rev": revision}
        kept = (redundancy or {}).get(revision) or Redundancy()
        istiods = []
        for index in range(max(1, kept.replicas)):
            istiod = _pod(f"{name}-{_digest(name)}-{_digest(name, str(index), length=5)}", "istio-system",
                          {**selector, "istio": "pilot", "sidecar.istio.io/inject": "false"}, "istiod",
                          pool.pod_ip(), PILOT_IMAGE, 15010, sidecar=False, proxy_ready=True, app_ready=ready)
            # istiod's one container is called `discovery` (the istio-discovery chart), whatever the app label
            istiod["spec"]["containers"][0]["name"] = istiod["status"]["containerStatuses"][0]["name"] = ISTIOD_CONTAINER
            if not ready:
                status = istiod["status"]["containerStatuses"][0]
                status.update(ready=False, started=False, restartCount=14,
                              state={"waiting": {"reason": "CrashLoopBackOff",
                                                 "message": "back-off 5m0s restarting failed container=discovery"}})
            istiods.append(istiod)
            resolv[("istio-system", istiod["metadata"]["name"])] = resolv_conf("istio-system", [dns_ip])
        objects += istiods
        objects += _service_objects(name, "istio-system", [
            {"name": "grpc-xds", "port": 15010}, {"name": "https-dns", "port": 15012},
            {"name": "https-webhook", "port": 443, "targetPort": 15017}, {"name": "http-monitoring", "port": 15014}],
            selector, pool.cluster_ip(), istiods, {**selector, "istio": "pilot"})
        objects += istiod_objects(name, revision, selector, len(istiods) if ready else 0, kept, _meta)
        objects.append(injector_webhook(revision, name, _meta))
    return objects, resolv


def bench_scenario(pods: int = 60, services: int = 1000, namespace: str = "bench") -> dict:
    """A generated scenario for benchmarks: `pods` meshed pods, `services` HTTP Services (one cluster each)."""
    return {
        "name": f"bench-{pods}",
        "description": f"{pods} meshed pods whose sidecars each hold about {services} outbound clusters",
        "namespaces": [{"name": namespace, "injection": True}],
        "sidecarDefaults": {"state": "healthy", "shareEnvoy": True},
        "workloads": [{"name": f"app{i:03d}", "namespace": namespace, "app": f"app{i:03d}", "port": 8080,
                       "serviceAccount": f"app{i:03d}"} for i in range(pods)],
        "services": [{"name": f"svc{i:04d}", "namespace": namespace, "selector": {"app": f"app{i % pods:03d}"},
                      "ports": [{"name": "http-web", "port": 8080}]} for i in range(services)],
        "expect": [],
    }
