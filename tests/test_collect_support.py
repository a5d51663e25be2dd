"""A small lab cluster for the collector's tests: the lab API server, a few objects, canned exec output.

The fake exec handler answers the collector's fixed commands with outputs a real istio-proxy gives
(captured files from ../shared/envoy-captures when present, minimal valid JSON otherwise) and records
every command, so tests can assert what was executed and where.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import parse_qs

from kubectl_meshdoctor.collect import ClusterOptions, CollectOptions
from kubectl_meshdoctor.collect.proxy import (
    CERTS,
    CLUSTERS,
    CONFIG_DUMP,
    CONFIG_PART_COMMANDS,
    CURL_FALLBACK,
    READY,
    READY_AGENT,
    RESOLV_CONF,
    ROUTES,
    SDS_CERTIFICATES,
    SERVER_INFO,
    STATS,
    SYNCZ,
)
from kubectl_meshdoctor.lab.apiserver import (
    AccessPolicy,
    ExecResult,
    KubeApiServer,
    KubeApiServerThread,
    ObjectStore,
)

CAPTURES = Path(__file__).resolve().parents[2] / "shared" / "envoy-captures"

MINIMAL_CONFIG_DUMP = json.dumps({"configs": [
    {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump", "static_clusters": [],
     "dynamic_active_clusters": []},
]}).encode()
MINIMAL_CERTS = json.dumps({"certificates": []}).encode()
MINIMAL_SERVER_INFO = json.dumps({"state": "LIVE", "version": "0/1.40.0/Clean/RELEASE/BoringSSL",
                                  "uptime_current_epoch": "97s"}).encode()
STATS_TEXT = (b"cluster_manager.cds.update_success: 3\nlistener_manager.lds.update_success: 3\n"
              b"listener_manager.workers_started: 1\nserver.state: 0\n"
              b"cluster_manager.cds.update_time: 1796059608740\nlistener_manager.lds.update_time: 1796059608785\n"
              b"cluster.xds-grpc.upstream_cx_active: 1\ncluster.xds-grpc.upstream_cx_total: 1\n")
# istiod's /debug/syncz holding both shop sidecars' streams, fully acknowledged
SYNCZ_JSON = json.dumps([
    {"cluster_id": "Kubernetes", "proxy": f"sidecar~10.0.0.5~{name}.shop~shop.svc.cluster.local",
     "istio_version": "1.24.2", "cluster_sent": "n1", "cluster_acked": "n1", "listener_sent": "n2",
     "listener_acked": "n2", "route_sent": "n3", "route_acked": "n3"} for name in ("web-1", "web-2")]).encode()
RESOLV_TEXT = b"search shop.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
UT_LOG_LINE = ('[2025-01-01T00:00:01.000Z] "GET /slow HTTP/1.1" 504 UT response_timeout - "-" 0 24 300 - "-" '
               '"curl/8" "abd" "reviews:9080" "10.0.0.9:9080" outbound|9080||reviews.shop.svc.cluster.local - '
               '10.96.1.1:9080 10.0.0.5:40002 - default\n')
ACCESS_LOG_LINE = ('[2025-01-01T00:00:00.000Z] "GET /reviews HTTP/1.1" 503 UF,URX upstream_reset_before_response_'
                   'started{connection_failure} - "-" 0 91 3 - "-" "curl/8" "abc" "reviews:9080" '
                   '"10.0.0.9:9080" outbound|9080||reviews.shop.svc.cluster.local - 10.96.1.1:9080 '
                   '10.0.0.5:40000 - default\n')


# Inside the validity of the captured workload certificate (exp2-certs.json: 2026-11-23T12:30:16Z for 24 h):
# analysing captured evidence at the real time of day would find it expired once that day has passed.
CAPTURE_TIME = datetime(2026, 11, 23, 13, 0, tzinfo=timezone.utc)


def captured(name: str, fallback: bytes) -> bytes:
    """A real Envoy capture when ../shared is present; else a minimal valid stand-in."""
    path = CAPTURES / name
    return path.read_bytes() if path.is_file() else fallback


def healthy_outputs() -> dict[tuple[str, ...], ExecResult]:
    return {
        READY: ExecResult(0, b""),
        SERVER_INFO: ExecResult(0, captured("exp2-server_info.json", MINIMAL_SERVER_INFO)),
        STATS: ExecResult(0, STATS_TEXT),
        CERTS: ExecResult(0, captured("exp2-certs.json", MINIMAL_CERTS)),
        CONFIG_DUMP: ExecResult(0, captured("exp2-config_dump.json", MINIMAL_CONFIG_DUMP)),
        RESOLV_CONF: ExecResult(0, RESOLV_TEXT),
        SYNCZ: ExecResult(0, SYNCZ_JSON),
        CLUSTERS: ExecResult(0, captured("exp2-clusters.json", b'{"cluster_statuses": []}')),  # asked: the log fails
        ROUTES: ExecResult(0, b"{}"),  # asked only when the log shows a timeout (UT)
    }


REFUSED_15021 = ExecResult(255, b"", b'Error: Get "http://localhost:15021/healthz/ready": dial tcp '
                                     b"127.0.0.1:15021: connect: connection refused\n")
AGENT_503 = ExecResult(255, b"2025-01-01T00:00:00Z error Envoy proxy is NOT ready\n",
                       b"Error: received unsuccessful status code 503: config not received from XDS server "
                       b"(is Istiod running?): cds updates: 0 successful, 0 rejected; lds updates: 0 "
                       b"successful, 0 rejected\n")


def curl_outputs() -> dict[tuple[str, ...], ExecResult]:
    """An image without pilot-agent: curl answers the same requests."""
    outputs: dict[tuple[str, ...], ExecResult] = {}
    for agent_command, result in healthy_outputs().items():
        if agent_command in CURL_FALLBACK:
            outputs[agent_command] = ExecResult(127, b"", b'exec: "pilot-agent": executable file not found\n')
            curl = CURL_FALLBACK[agent_command]
            outputs[curl] = ExecResult(0, b"\n200") if agent_command == READY else result
        else:
            outputs[agent_command] = result
    return outputs


# config_dump?resource=<field> names, per the entry type Envoy wraps each item in.
_ENTRY_TYPES = {"dynamic_active_clusters": "DynamicCluster", "static_clusters": "StaticCluster",
                "dynamic_listeners": "DynamicListener", "dynamic_route_configs": "DynamicRouteConfig",
                "dynamic_active_secrets": "DynamicSecret"}


def mask_config_dump(full: bytes, path: str) -> bytes:
    """What Envoy 1.40 answers to ``config_dump?resource=F&mask=...``, computed from its whole dump.

    For fake proxies that were given one whole config_dump: each item of the repeated field F, wrapped
    as ``<Section>ConfigDump.<Entry>``, keeping the mask's paths (into the item's first Any, whose
    ``@type`` stays). Checked against the real Envoy by tests/test_masked_sweep.py.
    """
    query = parse_qs(path.partition("?")[2])
    resource, mask = query["resource"][0], query["mask"][0].split(",")
    try:
        document = json.loads(full)
    except ValueError:
        return full  # broken stays broken
    items = []
    for config in document.get("configs", []):
        for item in config.get(resource) or []:
            kept: dict = {"@type": f"{config['@type']}.{_ENTRY_TYPES[resource]}"}
            for dotted in mask:
                _keep_path(kept, item, dotted.split("."), first_any=True)
            items.append(kept)
    return json.dumps({"configs": items} if items else {}).encode()


def _keep_path(kept: dict, item: dict, path: list[str], *, first_any: bool) -> None:
    """Copy one FieldMask path of ``item`` into ``kept``; the item's first Any keeps its ``@type``."""
    head, rest = path[0], path[1:]
    if not isinstance(item, dict) or head not in item:
        return
    if not rest:
        kept[head] = item[head]
        return
    value = item[head]
    keeps_type = first_any and isinstance(value, dict) and "@type" in value
    _keep_path(kept.setdefault(head, {"@type": value["@type"]} if keeps_type else {}), value, rest, first_any=False)


def masked_answer(outputs: dict[tuple[str, ...], ExecResult], argv: tuple[str, ...]) -> ExecResult | None:
    """A config_dump part (pilot-agent or curl) answered from the outputs' whole dump, if there is one."""
    parts = (*CONFIG_PART_COMMANDS, SDS_CERTIFICATES)
    curl_parts = {CURL_FALLBACK[c]: c for c in parts}
    part = argv if argv in parts else curl_parts.get(argv)
    if part is None:
        return None
    full_command = CONFIG_DUMP if argv == part else CURL_FALLBACK[CONFIG_DUMP]
    full = outputs.get(full_command)
    if full is None or full.exit_code != 0:
        return full
    path = part[3]
    return ExecResult(0, mask_config_dump(full.stdout, path))


@dataclass
class FakeProxies:
    """The exec handler: per-pod outputs (default: a healthy istio-proxy) and a record of every call."""

    per_pod: dict[str, dict[tuple[str, ...], ExecResult]] = field(default_factory=dict)
    calls: list[tuple[str, str, str, tuple[str, ...]]] = field(default_factory=list)

    async def exec(self, namespace: str, pod: str, container: str, command: list[str]) -> ExecResult:
        argv = tuple(command)
        self.calls.append((namespace, pod, container, argv))
        outputs = self.per_pod.get(f"{namespace}/{pod}") or healthy_outputs()
        if argv in outputs:
            return outputs[argv]
        masked = masked_answer(outputs, argv)
        if masked is not None:
            return masked
        return ExecResult(127, b"", f'exec: "{command[0]}": unexpected command in this test\n'.encode())

    async def log(self, namespace: str, pod: str, container: str, since: int | None, tail: int | None) -> str:
        return self.access_log if container == "istio-proxy" else ""

    access_log: str = ACCESS_LOG_LINE


# --- objects ---------------------------------------------------------------------------------------------


def namespace(name: str, labels: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}


def pod(name: str, ns: str = "shop", *, meshed: bool = True, native: bool = False, labels: dict | None = None,
        phase: str = "Running") -> dict:
    containers = [{"name": "app", "image": "app:1"}]
    init: list[dict] = []
    if meshed and native:
        init.append({"name": "istio-proxy", "image": "proxyv2:1.24", "restartPolicy": "Always"})
    elif meshed:
        containers.append({"name": "istio-proxy", "image": "proxyv2:1.24"})
    spec: dict = {"containers": containers, "serviceAccountName": "default"}
    if init:
        spec["initContainers"] = init
    pod_labels = {"app": name.split("-")[0], **(labels or {})}
    if meshed:
        pod_labels["security.istio.io/tlsMode"] = "istio"
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": pod_labels},
            "spec": spec, "status": {"phase": phase, "podIP": "10.0.0.5"}}


def istiod_pod(name: str = "istiod-6d8f7c9b5-abcde", running: bool = True) -> dict:
    state = {"running": {}} if running else {"waiting": {"reason": "CrashLoopBackOff"}}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "istio-system", "labels": {"app": "istiod", "istio": "pilot"}},
            "spec": {"containers": [{"name": "discovery", "image": "docker.io/istio/pilot:1.24.2"}]},
            "status": {"phase": "Running", "podIP": "10.0.9.9",
                       "containerStatuses": [{"name": "discovery", "ready": running, "state": state}]}}


def service(name: str, ns: str, *, selector: dict | None = None, labels: dict | None = None,
            cluster_ip: str = "10.96.1.1", port: int = 9080) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
            "spec": {"clusterIP": cluster_ip, "selector": selector or {"app": name},
                     "ports": [{"name": "http", "port": port}]}}


def endpoints(name: str, ns: str, ips: list[str], labels: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
            "subsets": [{"addresses": [{"ip": ip} for ip in ips], "ports": [{"port": 15012}]}] if ips else []}


def istio_object(kind: str, name: str, ns: str, spec: dict, group: str = "networking.istio.io") -> dict:
    return {"apiVersion": f"{group}/v1", "kind": kind, "metadata": {"name": name, "namespace": ns}, "spec": spec}


def shop_objects(*, istio: bool = True) -> list[dict]:
    objects = [
        namespace("shop", {"istio-injection": "enabled"}),
        namespace("kube-system"),
        pod("web-1"),
        pod("web-2"),
        pod("db-0", meshed=False),
        service("web", "shop"),
        service("db", "shop"),
        endpoints("web", "shop", ["10.0.0.5"]),
        pod("other-1", "elsewhere"),
        service("kube-dns", "kube-system", selector={"k8s-app": "kube-dns"}, labels={"k8s-app": "kube-dns"},
                cluster_ip="10.96.0.10", port=53),
    ]
    if istio:
        objects += [
            namespace("istio-system"),
            istiod_pod(),
            service("istiod", "istio-system", labels={"app": "istiod"}, selector={"app": "istiod"},
                    cluster_ip="10.96.5.5", port=15012),
            endpoints("istiod", "istio-system", ["10.0.9.9"], labels={"app": "istiod"}),
            istio_object("DestinationRule", "web", "shop",
                         {"host": "web", "trafficPolicy": {"tls": {"mode": "DISABLE"}}}),
            istio_object("VirtualService", "web", "shop", {"hosts": ["web"], "http": [{"route": [
                {"destination": {"host": "web", "subset": "v1"}}]}]}),
            istio_object("PeerAuthentication", "default", "istio-system", {"mtls": {"mode": "STRICT"}},
                         group="security.istio.io"),
            istio_object("DestinationRule", "unrelated", "elsewhere", {"host": "x"}),
        ]
    return objects


# --- running ---------------------------------------------------------------------------------------------


@dataclass
class LabCluster:
    thread: KubeApiServerThread
    kubeconfig: Path
    proxies: FakeProxies

    @property
    def server(self) -> KubeApiServer:
        return self.thread.server

    def options(self, **overrides) -> CollectOptions:
        values = dict(cluster=ClusterOptions(kubeconfig=str(self.kubeconfig), request_timeout=10.0),
                      namespace="shop", progress=False, pod_timeout=20.0, concurrency=4)
        values.update(overrides)
        return CollectOptions(**values)

    def exec_commands(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """(pod path, container, argv) of every exec request the server received, from its own record."""
        found = []
        for request in self.server.requests:
            if request.verb == "exec":
                query = parse_qs(request.query)
                found.append((request.path, query.get("container", [""])[0], tuple(query.get("command", []))))
        return found


@contextlib.contextmanager
def lab_cluster(tmp_path: Path, objects: list[dict] | None = None, *, istio: bool = True,
                policy: AccessPolicy | None = None, proxies: FakeProxies | None = None,
                kube_namespace: str | None = None) -> Iterator[LabCluster]:
    store = ObjectStore(objects if objects is not None else shop_objects(istio=istio), istio_installed=istio)
    proxies = proxies or FakeProxies()
    factory: Callable[[], KubeApiServer] = lambda: KubeApiServer(  # noqa: E731
        store, exec_handler=proxies.exec, log_handler=proxies.log, policy=policy)
    with KubeApiServerThread(factory) as thread:
        kubeconfig = thread.server.write_kubeconfig(tmp_path / "kubeconfig", namespace=kube_namespace)
        yield LabCluster(thread, kubeconfig, proxies)


ALL_AGENT_COMMANDS = {READY, READY_AGENT, SERVER_INFO, STATS, SDS_CERTIFICATES, CERTS, CONFIG_DUMP, RESOLV_CONF}
