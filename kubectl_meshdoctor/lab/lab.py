"""The Lab: scenarios turned into a running local mesh (API server, real Envoys, emulated pilot-agents).

Tests and `make demo` need a cluster whose sidecars are real: the plugin's exec into istio-proxy must
reach a real Envoy's admin API and a pilot-agent that judges readiness as the real one does. The Lab
builds that from scenario files in seconds and, whatever happens (exception, Ctrl-C, a failing test),
stops every process it started: Envoys run in their own process groups, are stopped in `stop()` (called
from `__exit__` and from a failed `start()`), and are killed at interpreter exit as a last resort.

When several scenarios are loaded together, cluster-wide settings merge: the kube-dns IP is the first
non-default one, istiod is unready if any scenario says so, and pods whose scenario does not pin their
nameservers get the lab's kube-dns IP. Expectations (`scenario_expectations()`) describe a scenario
loaded alone; together, cluster-wide findings (MD0203, MD0301) may show up for every scenario.
"""

from __future__ import annotations

import shutil
import socket
import socketserver
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from kubectl_meshdoctor.lab import xds
from kubectl_meshdoctor.lab.agent import PodAgent, SidecarExec
from kubectl_meshdoctor.lab.apps import AppServers
from kubectl_meshdoctor.lab.apiserver import AccessPolicy, KubeApiServer, KubeApiServerThread, ObjectStore
from kubectl_meshdoctor.lab.certs import CertificateAuthority, KeyPair, Validity
from kubectl_meshdoctor.lab.controlplane import Redundancy
from kubectl_meshdoctor.lab.envoy import EnvoyProcess, LabError, PortAllocator
from kubectl_meshdoctor.lab.istiod import ConnectedProxy, IstiodDebug
from kubectl_meshdoctor.lab.xdsserver import XdsRestServer
from kubectl_meshdoctor.lab.scenario import (
    CREATED,
    DEFAULT_DNS_IP,
    AddressPool,
    Expanded,
    SidecarSpec,
    StandIn,
    control_plane_objects,
    expand,
    istiod_service_name,
    load_scenario,
    scenario_revision,
)
from kubectl_meshdoctor.pods import pod_revision

# Sidecar states whose Envoy got its configuration (a "disconnected" one lost istiod afterwards).
CONFIGURED = ("healthy", "disconnected")
# pilot-agent's xdsproxy lines (pkg/istio-agent/xds_proxy.go) when its stream to istiod opens and breaks.
XDS_CONNECTED = "connected to upstream XDS server: {address}"
XDS_LOST = ("upstream terminated with unexpected error rpc error: code = Unavailable desc = error reading from "
            "server: EOF")

ROOT_CERT_CONFIG_MAP = "istio-ca-root-cert"

# What a plain-text server (Redis here) answers a TLS ClientHello with before closing.
_STAND_IN_REPLY = b"-ERR Protocol error: invalid multibulk length\r\n"


class _PlainTextServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class _PlainTextHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        try:
            self.request.settimeout(5)
            self.request.recv(4096)
            self.request.sendall(_STAND_IN_REPLY)
        except OSError:
            pass


class _TlsHandler(socketserver.BaseRequestHandler):
    """Completes a TLS handshake with the server pod's certificate, as its sidecar would inbound; a client
    that does not trust that certificate's root aborts the handshake, which is the failure to reproduce."""

    def handle(self) -> None:
        context: ssl.SSLContext = self.server.tls_context  # type: ignore[attr-defined]
        try:
            self.request.settimeout(5)
            with context.wrap_socket(self.request, server_side=True) as tls:
                tls.recv(4096)
        except (OSError, ssl.SSLError):
            pass


def _start_tls_stand_in(port: int, leaf: KeyPair, directory: Path) -> _PlainTextServer:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "cert.pem").write_bytes(leaf.cert_pem)
    (directory / "key.pem").write_bytes(leaf.key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    server = _PlainTextServer(("127.0.0.1", port), _TlsHandler)
    server.tls_context = context  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, name="lab-tls-stand-in", daemon=True).start()
    return server


@dataclass
class LabProxy:
    """One real Envoy and the pods whose istio-proxy it plays."""

    envoy: EnvoyProcess
    pods: list[SidecarSpec]
    access_log: Path
    bound: dict[str, int]
    drive: list[tuple[str, int, dict]]  # (kind http|tcp, local port, drive spec)


class Lab:
    """A running lab cluster. Use as a context manager; `.kubeconfig` points kubectl and the plugin at it."""

    shared_ca: CertificateAuthority | None = None  # set by lab/multicluster.py: the mesh's common root
    pod_cidr = "10.244.0.0/16"  # lab/multicluster.py gives each cluster its own, as one flat network needs
    drive_on_start = True  # a multi-cluster lab drives traffic once every cluster runs (calls cross clusters)

    def __init__(self, scenarios: Sequence[str | dict] = ("bookinfo-healthy",), workdir: str | Path | None = None,
                 policy: AccessPolicy | None = None):
        self._scenario_data = [s if isinstance(s, dict) else load_scenario(s) for s in scenarios]
        names = [s["name"] for s in self._scenario_data]
        if len(set(names)) != len(names):
            raise LabError(f"scenario loaded twice: {names}")
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="meshdoctor-lab-"))
        self.policy = policy
        self.kubeconfig = self.workdir / "kubeconfig"
        self.expanded: list[Expanded] = []
        self.objects: list[dict] = []
        self.agents: dict[tuple[str, str], PodAgent] = {}
        self.proxies: list[LabProxy] = []
        self._stand_ins: list[_PlainTextServer] = []
        self._apps = AppServers()
        self._app_ports: dict[str, int] = {}  # pod IP -> its stand-in app's port
        self._thread: KubeApiServerThread | None = None
        self._xds: XdsRestServer | None = None
        self._xds_lost: XdsRestServer | None = None  # serves "disconnected" sidecars, stopped once they are LIVE
        self._istiod = IstiodDebug()
        self._port_guards: list[socket.socket] = []
        self._exec: SidecarExec | None = None
        self._ports = PortAllocator()
        self.startup_seconds: float | None = None

    # -- public -----------------------------------------------------------------------------------

    @property
    def server(self) -> KubeApiServer:
        if self._thread is None:
            raise LabError("the lab is not running")
        return self._thread.server

    @property
    def requests(self) -> list:
        return self.server.requests

    def scenario_expectations(self) -> dict[str, list[dict]]:
        """Per scenario, the findings it is built to produce (code and subject), as listed in its file."""
        return {e.name: list(e.expect) for e in self.expanded}

    def exec(self, namespace: str, pod: str, container: str, command: list[str]):
        """Run an exec handler command as the API server would (for tests; kubectl goes through the server)."""
        if self._thread is None or self._exec is None:
            raise LabError("the lab is not running")
        return self._thread.call(self._exec.exec, namespace, pod, container, command, timeout=60)

    def logs(self, namespace: str, pod: str, container: str = "istio-proxy") -> str:
        if self._thread is None or self._exec is None:
            raise LabError("the lab is not running")
        return self._thread.call(self._exec.logs, namespace, pod, container, None, None, timeout=60)

    def pods(self, namespace: str, app: str | None = None) -> list[str]:
        """Names of the lab's pods in ``namespace`` (optionally only those labelled app=<app>)."""
        return [o["metadata"]["name"] for o in self.objects if o["kind"] == "Pod"
                and o["metadata"]["namespace"] == namespace
                and (app is None or o["metadata"].get("labels", {}).get("app") == app)]

    def served_secrets(self) -> list[dict]:
        """The SDS secrets the lab serves its Envoys, private keys included (for the safety tests)."""
        return self._xds.registered_secrets() if self._xds is not None else []

    def envoy_pids(self) -> list[int]:
        return [p.envoy.pid for p in self.proxies if p.envoy.pid is not None]

    def __enter__(self) -> "Lab":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> "Lab":
        began = time.monotonic()
        try:
            self._prepare()
            self._launch()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        return self

    def _prepare(self) -> None:
        """The API server, the xDS servers and every object and sidecar configuration; no Envoy runs yet
        (a multi-cluster lab adds the other clusters' endpoints in between, lab/remote_endpoints.py)."""
        sidecar_exec = self._exec = SidecarExec(self.agents, self._istiod)
        self._store = ObjectStore((), istio_installed=True)
        self._xds = XdsRestServer()
        self._xds_lost = XdsRestServer()
        self._thread = KubeApiServerThread(
            lambda: KubeApiServer(self._store, sidecar_exec.exec, sidecar_exec.logs, self.policy))
        self._thread.start()
        self._thread.call(self._xds.start)
        self._thread.call(self._xds_lost.start)
        self._build()
        for obj in self.objects:
            self._store.add(obj)

    def _launch(self) -> None:
        """Start what ``_prepare`` configured: stand-ins, Envoys, agents, then the scenario's traffic."""
        self._start_stand_ins()
        for expanded in self.expanded:
            for ip, settings in expanded.served.items():
                self._apps.start(self._app_ports[ip], settings, xds.APP_ADDRESS)
        for proxy in self.proxies:
            proxy.envoy.start()
        for proxy in self.proxies:
            proxy.envoy.wait_admin()
            if proxy.pods[0].state in CONFIGURED:
                proxy.envoy.wait_live()
        self._thread.call(self._start_agents)
        self._lose_istiod()
        if self.drive_on_start:
            self._drive_traffic()
        self.server.write_kubeconfig(self.kubeconfig)

    def stop(self) -> None:
        """Stop everything started, in reverse order; safe to call twice and after a failed start."""
        thread, self._thread = self._thread, None
        if thread is not None:
            try:
                thread.call(self._stop_agents, timeout=10)
                for server in (self._xds, self._xds_lost):
                    if server is not None:
                        thread.call(server.stop, timeout=10)
            except Exception:  # noqa: BLE001 - the loop may be gone already; the processes matter more
                pass
            thread.stop()
        for proxy in self.proxies:
            proxy.envoy.stop()
        for guard in self._port_guards:
            guard.close()
        self._port_guards = []
        for server in self._stand_ins:
            server.shutdown()
            server.server_close()
        self._stand_ins = []
        self._apps.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- building ---------------------------------------------------------------------------------

    def _build(self) -> None:
        clusters = [s.get("cluster") or {} for s in self._scenario_data]
        dns_ip = next((c["dnsServiceIP"] for c in clusters if c.get("dnsServiceIP")), DEFAULT_DNS_IP)
        dns_created = next((str(c["dnsServiceCreated"]) for c in clusters if c.get("dnsServiceCreated")), CREATED)
        # each revision is ready unless a scenario of that revision says otherwise
        revisions: dict[str, bool] = {}
        for data in self._scenario_data:
            revision = scenario_revision(data)
            revisions[revision] = revisions.get(revision, True) and (data.get("cluster") or {}).get("istiodReady", True)
        ca_cfg = next((c for c in clusters if c.get("caRemainingHours") is not None), {})
        pool = AddressPool(self.pod_cidr)
        pool.taken.add(dns_ip)
        redundancy = {scenario_revision(d): Redundancy.from_cluster(d.get("cluster") or {})
                      for d in reversed(self._scenario_data) if Redundancy.declared_in(d.get("cluster") or {})}
        objects, resolv = control_plane_objects(pool, dns_ip, revisions, dns_created, redundancy)
        self.objects = objects
        istiod_ips = {o["metadata"]["name"]: o["spec"]["clusterIP"] for o in objects
                      if o["kind"] == "Service" and o["metadata"]["namespace"] == "istio-system"}
        owners: dict[tuple[str, str], str] = {}
        for data in self._scenario_data:
            expanded = expand(data, pool, dns_ip, istiod_ips[istiod_service_name(scenario_revision(data))])
            for spec in expanded.sidecars:  # two scenarios naming the same pod would share one Envoy's files
                first = owners.setdefault((spec.namespace, spec.pod), expanded.name)
                if first != expanded.name:
                    raise LabError(f"scenarios {first} and {expanded.name} both define pod {spec.namespace}/{spec.pod}")
            self.expanded.append(expanded)
            self.objects.extend(expanded.objects)
            resolv.update(expanded.resolv)
        for (ns, pod), text in resolv.items():
            self.agents[(ns, pod)] = PodAgent(namespace=ns, pod=pod, resolv_conf=text, has_sidecar=False)
        # A multi-cluster lab hands its clusters one root (``shared_ca``), as a mesh's plugged-in CA would.
        self._ca = self.shared_ca or CertificateAuthority(Validity.around_now(
            float(ca_cfg.get("caLifetimeHours", 24 * 365 * 10)), ca_cfg.get("caRemainingHours")))
        self._cas: dict[str, CertificateAuthority] = {"": self._ca}
        self.objects.extend(self._root_cert_config_maps())
        model = xds.MeshModel(self.objects)
        pods = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in self.objects if o["kind"] == "Pod"}
        self._stand_in_ports: dict[str, int] = {}
        self._stand_in_specs: dict[int, StandIn] = {}
        self._leaves: dict[tuple[str, str], KeyPair] = {}
        for expanded in self.expanded:
            for ip in expanded.served:
                self._app_ports[ip] = self._ports.take(1)[0]
        for expanded in self.expanded:
            for stand_in in expanded.stand_ins:
                port = self._stand_in_ports.setdefault(stand_in.service_host, self._ports.take(1)[0])
                self._stand_in_specs.setdefault(port, stand_in)
            groups: list[list[SidecarSpec]] = []
            shared: dict[str, list[SidecarSpec]] = {}
            for spec in expanded.sidecars:
                if spec.share_envoy:
                    shared.setdefault(spec.state, []).append(spec)
                else:
                    groups.append([spec])
            groups.extend(shared.values())
            for group in groups:
                self.proxies.append(self._make_proxy(model, pods, group))
        self._wire_istiod(pods)

    def _wire_istiod(self, pods: dict) -> None:
        """Each istiod pod, whether it runs, and the streams it holds: its revision's connected sidecars."""
        by_revision: dict[str, tuple[str, str]] = {}
        for (ns, name), pod in pods.items():
            labels = pod["metadata"].get("labels", {})
            if ns == "istio-system" and labels.get("app") == "istiod":
                self._istiod.running[(ns, name)] = pod["status"]["containerStatuses"][0].get("ready", False)
                by_revision[labels.get("istio.io/rev", "default")] = (ns, name)
        for proxy in self.proxies:
            for spec in proxy.pods:
                pod = pods[(spec.namespace, spec.pod)]
                istiod = by_revision.get(pod_revision(pod))
                if spec.state == "healthy" and istiod is not None and self._istiod.running[istiod]:
                    self._istiod.connected.setdefault(istiod, []).append(
                        ConnectedProxy(xds.node_id(pod), xds.proxy_release(pod)))

    def _make_proxy(self, model: xds.MeshModel, pods: dict, group: list[SidecarSpec]) -> LabProxy:
        first = group[0]
        pod = pods[(first.namespace, first.pod)]
        directory = self.workdir / "proxies" / f"{first.namespace}.{first.pod}"
        directory.mkdir(parents=True, exist_ok=True)
        access_log = directory / "access.log"
        access_log.touch()
        drives = self._plan_drives(model, first) if first.state in CONFIGURED else []
        admin, health, xds_port, vout, vin, *rest = self._ports.take(5 + len(drives) + len(group))
        drive_ports, status_ports = rest[:len(drives)], rest[len(drives):]
        # A drive to an external destination enters through virtualOutbound, as iptables would send it.
        drive_ports = [{"external": vout, "inbound": vin}.get(kind, port)
                       for (_, _, _, (kind, _)), port in zip(drives, drive_ports)]
        bound = {name: port for (name, _, _, _), port in zip(drives, drive_ports) if name}
        targets = {cluster: target for (_, cluster, target, _) in drives if target}
        for spec, status_port in zip(group, status_ports):
            agent = self.agents[(spec.namespace, spec.pod)]
            agent.has_sidecar = True
            agent.admin_port, agent.health_port, agent.status_port = admin, health, status_port
            agent.access_log_path = access_log
        ca = self._ca_named(first.ca)
        leaf = ca.issue_workload(first.namespace, pod["spec"].get("serviceAccountName", "default"),
                                 Validity.around_now(first.cert_lifetime_hours, first.cert_remaining_hours))
        for spec in group:
            self._leaves[(spec.namespace, spec.pod)] = leaf
        ports = xds.BootstrapPorts(admin=admin, health=health, agent_status=status_ports[0], xds=xds_port)
        xds_server = self._xds_lost if first.state == "disconnected" else self._xds
        if first.state in CONFIGURED:
            wiring = xds.SidecarWiring(access_log_path=str(access_log), bound_listeners=bound,
                                       original_dst_targets=targets, virtual_outbound_port=vout,
                                       virtual_inbound_port=vin, app_ports=self._app_ports)
            resources = xds.sidecar_resources(model, pod, wiring)
            xds_server.register(xds.node_id(pod), resources)
            mode = "rest" if first.state == "healthy" else "lost"
        elif first.state == "no-xds":
            mode = "ads"
        else:
            raise LabError(f"pod {first.namespace}/{first.pod}: unknown sidecar state {first.state!r}")
        # Secrets from the server that stays up: a sidecar keeps its certificates when istiod goes away.
        self._xds.register_secrets(xds.node_id(pod), xds.sds_secrets(leaf.cert_pem, leaf.key_pem, ca.cert_pem))
        bootstrap = xds.bootstrap(pod, ports, mode=mode, xds_rest_port=xds_server.port, sds_port=self._xds.port)
        envoy = EnvoyProcess(f"{first.namespace}/{first.pod}", directory / "envoy", bootstrap, admin)
        return LabProxy(envoy, group, access_log, bound,
                        [(kind, port, spec) for (_, _, _, (kind, spec)), port in zip(drives, drive_ports)])

    def _plan_drives(self, model: xds.MeshModel, spec: SidecarSpec) -> list[tuple[str, str, str, tuple]]:
        """For each drive: (listener to bind, cluster, ORIGINAL_DST target or "", (kind, drive spec))."""
        plans = []
        for drive in spec.drive:
            port = int(drive["port"])
            if drive.get("external"):  # {external: 203.0.113.10, port: 443, sni: api.example.com}
                plans.append(("", "", "", ("external", drive)))
                continue
            if drive.get("inbound"):  # {inbound: true, port: 9100}: a client elsewhere calls this pod's port
                pod_ip = next(p["status"]["podIP"] for p in model.pods if p["metadata"]["name"] == spec.pod
                              and p["metadata"]["namespace"] == spec.namespace)
                source = next((p["status"]["podIP"] for p in model.pods if drive.get("from")  # {from: app}
                               and p["metadata"]["labels"].get("app") == drive["from"]), "127.0.0.1")
                plans.append(("", "", "", ("inbound", {**drive, "destination": f"{pod_ip}:{port}",
                                                       "source": source})))
                continue
            host = xds._resolve_host(drive.get("host", ""), spec.namespace) if drive.get("host") else ""
            service = next((s for s in model.services if s.host == host), None)
            svc_port = next((p for p in service.ports if p["port"] == port), None) if service else None
            if svc_port is None or xds.port_protocol(svc_port) in xds.HTTP_PROTOCOLS:
                # the address the app would connect to: the Service's ClusterIP, or a made-up external one
                destination = f"{service.cluster_ip if service and service.cluster_ip else '198.51.100.7'}:{port}"
                plans.append((f"0.0.0.0_{port}", "", "", ("http", {**drive, "destination": destination})))
                continue
            address = service.cluster_ip or next(
                (p["status"]["podIP"] for p in model.service_pods(service)), None)
            if address is None:
                raise LabError(f"drive to {host}:{port}: the Service has no endpoints to connect to")
            cluster = xds.cluster_name("outbound", port, "", host)
            target = f"127.0.0.1:{self._stand_in_ports[host]}" if host in self._stand_in_ports else ""
            plans.append((f"{address}_{port}", cluster, target, ("tcp", drive)))
        return plans

    # -- running ----------------------------------------------------------------------------------

    def _ca_named(self, name: str) -> CertificateAuthority:
        """The mesh's CA (""), or another root by name: a second root, as after a botched root rotation."""
        if name not in self._cas:
            self._cas[name] = CertificateAuthority()
        return self._cas[name]

    def _root_cert_config_maps(self) -> list[dict]:
        """istiod's istio-ca-root-cert ConfigMap in every namespace but kube-*: the root new pods trust."""
        roots = {ns: ca for e in self.expanded for ns, ca in e.namespace_roots.items()}
        maps = []
        for obj in self.objects:
            name = obj["metadata"]["name"]
            if obj["kind"] != "Namespace" or name.startswith("kube-"):
                continue
            maps.append({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": ROOT_CERT_CONFIG_MAP, "namespace": name, "resourceVersion": "1",
                                      "labels": {"istio.io/config": "true"}},
                         "data": {"root-cert.pem": self._ca_named(roots.get(name, "")).cert_pem.decode()}})
        return maps

    def _start_stand_ins(self) -> None:
        for port in self._stand_in_ports.values():
            spec = self._stand_in_specs[port]
            if spec.kind == "mtls":
                self._stand_ins.append(_start_tls_stand_in(port, self._leaves[spec.server_pod],
                                                           self.workdir / "stand-ins" / str(port)))
                continue
            server = _PlainTextServer(("127.0.0.1", port), _PlainTextHandler)
            threading.Thread(target=server.serve_forever, name="lab-stand-in", daemon=True).start()
            self._stand_ins.append(server)

    async def _start_agents(self) -> None:
        for proxy in self.proxies:
            for spec in proxy.pods:
                agent = self.agents[(spec.namespace, spec.pod)]
                agent.log("info", "Version 1.24.2-lab (pilot-agent emulated by kubectl-meshdoctor lab)")
                agent.log("info", f"Proxy role: type=sidecar id={spec.pod}.{spec.namespace} "
                          f"domain={spec.namespace}.svc.cluster.local")
                agent.log("info", "Pilot SAN: [istiod.istio-system.svc]")
                agent.log("info", "Starting proxy agent")
                for line in spec.log:
                    level, _, message = line.partition("\t") if "\t" in line else ("warn", "", line)
                    agent.log(level, message)
                if spec.state in CONFIGURED:
                    address = f"{istiod_service_name(spec.revision)}.istio-system.svc:15012"
                    agent.log("info", XDS_CONNECTED.format(address=address), "xdsproxy")
                await agent.start()
                verdict = await agent.readiness()
                if verdict is None:
                    agent.log("info", "Readiness succeeded in 1.102338479s")
                    agent.log("info", "Envoy proxy is ready")
                else:
                    agent.log("warn", f"Envoy proxy is NOT ready: {verdict}")

    def _lose_istiod(self) -> None:
        """Stop the server of the "disconnected" sidecars now that they are configured, as if istiod went away,
        and wait until each Envoy has counted a failed retry (its cds update_failure)."""
        lost = [p for p in self.proxies if p.pods[0].state == "disconnected"]
        if not lost or self._thread is None or self._xds_lost is None:
            return
        self._thread.call(self._xds_lost.stop)
        # Hold the port, bound but not listening, so reconnects stay refused: a server started later
        # (a stand-in app on an ephemeral port) could otherwise take it and answer the lost Envoys.
        guard = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        guard.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        guard.bind(("127.0.0.1", self._xds_lost.port))
        self._port_guards.append(guard)
        for proxy in lost:
            for spec in proxy.pods:
                self.agents[(spec.namespace, spec.pod)].log("warn", XDS_LOST, "xdsproxy")
        deadline = time.monotonic() + 15
        for proxy in lost:
            while time.monotonic() < deadline:
                status, body = proxy.envoy.get("stats?filter=^cluster_manager.cds.update_failure$", timeout=2)
                if status == 200 and not body.strip().endswith(b": 0"):
                    break
                time.sleep(0.1)

    async def _stop_agents(self) -> None:
        for agent in self.agents.values():
            await agent.stop()

    def _drive_traffic(self) -> None:
        """Send the scenario's requests through real Envoys, so their access logs hold real lines."""
        for proxy in self.proxies:
            if not proxy.drive:
                continue
            before = _line_count(proxy.access_log)
            for kind, port, spec in proxy.drive:
                _send_all(kind, port, spec)
            deadline = time.monotonic() + 5
            want = before + sum(int(spec.get("count", 1)) for _, _, spec in proxy.drive)
            while _line_count(proxy.access_log) < want and time.monotonic() < deadline:
                time.sleep(0.05)


def _line_count(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except OSError:
        return 0


def _send_all(kind: str, port: int, spec: dict) -> None:
    """``count`` requests, ``concurrency`` at a time (concurrent load is what trips a circuit breaker)."""
    count, concurrency = int(spec.get("count", 1)), max(1, int(spec.get("concurrency", 1)))
    for start in range(0, count, concurrency):
        batch = [threading.Thread(target=_send, args=(kind, port, spec))
                 for _ in range(min(concurrency, count - start))]
        for thread in batch:
            thread.start()
        for thread in batch:
            thread.join()


def _send(kind: str, port: int, spec: dict) -> None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            if kind == "external":
                # PROXY protocol v1 header: the original destination iptables would have kept (see xds.py).
                conn.sendall(f"PROXY TCP4 127.0.0.1 {spec['external']} 40000 {spec['port']}\r\n".encode())
                if spec.get("sni"):
                    ssl.create_default_context().wrap_socket(conn, server_hostname=spec["sni"]).do_handshake()
                else:
                    conn.sendall(spec.get("payload", "PING\r\n").encode())
                    while conn.recv(65536):
                        pass
            elif kind in ("http", "inbound"):
                if spec.get("destination"):  # PROXY protocol v1: the original destination (see xds._listener)
                    ip, _, dport = spec["destination"].rpartition(":")
                    conn.sendall(f"PROXY TCP4 {spec.get('source', '127.0.0.1')} {ip} 40000 {dport}\r\n".encode())
                host = spec.get("host", "localhost")
                version = spec.get("httpVersion", "1.1")  # "1.0": nginx proxy_pass without proxy_http_version 1.1
                request = (f"GET {spec.get('path', '/')} HTTP/{version}\r\nHost: {host}:{spec['port']}\r\n"
                           f"User-Agent: {spec.get('userAgent', 'curl/8.5.0')}\r\nConnection: close\r\n\r\n")
                conn.sendall(request.encode())
                _read_http_response(conn)  # not until close: Envoy delays closing by a second
            else:
                conn.sendall(spec.get("payload", "PING\r\n").encode())
                while conn.recv(65536):
                    pass
    except OSError:
        pass  # a reset is the expected outcome of the failures the lab reproduces


def _read_http_response(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip() or 0)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return
        body += chunk
