"""pilot-agent, emulated per lab pod, in front of that pod's real Envoy.

What the plugin sees through `kubectl exec ... -c istio-proxy` must be what a real sidecar answers, so
this module reproduces pilot-agent's observable behaviour rather than inventing a lab API:
- a status server per pod (the 15020 equivalent) whose `/healthz/ready` applies pilot-agent's readiness
  rules to the real Envoy's stats, word for word;
- the exec commands a diagnosis uses, run without any shell: `pilot-agent request GET <path>
  [--debug-port N]`, `curl` against localhost ports, `cat /etc/resolv.conf`; anything else fails as a
  missing executable does;
- the istio-proxy container log: pilot-agent's lines plus the Envoy access log.
Istio's well-known ports are mapped to the pod's real ones: 15000 admin, 15021 health listener,
15020 status server, 15090 Prometheus (admin), 15004 agent debug (answers 404 here).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import ClientError, ClientSession, ClientTimeout, web

from kubectl_meshdoctor.lab.apiserver import ExecResult
from kubectl_meshdoctor.lab.istiod import ISTIOD_CONTAINER, IstiodDebug

UPDATE_STATS_PATH = (
    r"stats?usedonly&filter=^(cluster_manager\.cds|listener_manager\.lds)\.(update_success|update_rejected)$"
)
READINESS_STATS_PATH = r"stats?usedonly&filter=^(server\.state|listener_manager\.workers_started)"
SERVER_STATES = {0: "LIVE", 1: "DRAINING", 2: "PRE_INITIALIZING", 3: "INITIALIZING"}
SIDECAR_CONTAINER = "istio-proxy"

ADMIN_PORT, STATUS_PORT, HEALTH_PORT, DEBUG_PORT, PROMETHEUS_PORT = 15000, 15020, 15021, 15004, 15090


# --- readiness rules (pilot/cmd/pilot-agent/status/ready/probe.go, util/stats.go) ------------------


def parse_stats(text: str) -> dict[str, int]:
    """`name: value` lines as Envoy's /stats prints them; non-numeric lines are ignored."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if not sep:
            continue
        try:
            values[name.strip()] = int(value.strip())
        except ValueError:
            continue
    return values


@dataclass(frozen=True)
class UpdateStats:
    cds_success: int = 0
    cds_rejected: int = 0
    lds_success: int = 0
    lds_rejected: int = 0

    @classmethod
    def from_text(cls, text: str) -> "UpdateStats":
        s = parse_stats(text)  # with usedonly, a counter still at 0 is absent: missing means 0
        return cls(s.get("cluster_manager.cds.update_success", 0), s.get("cluster_manager.cds.update_rejected", 0),
                   s.get("listener_manager.lds.update_success", 0), s.get("listener_manager.lds.update_rejected", 0))

    def __str__(self) -> str:
        return (f"cds updates: {self.cds_success} successful, {self.cds_rejected} rejected; "
                f"lds updates: {self.lds_success} successful, {self.lds_rejected} rejected")


def config_status_error(update_stats_text: str) -> str | None:
    s = UpdateStats.from_text(update_stats_text)
    cds, lds = s.cds_success > 0, s.lds_success > 0
    if cds and lds:
        return None
    if not cds and not lds:
        return f"config not received from XDS server (is Istiod running?): {s}"
    if s.cds_rejected > 0 or s.lds_rejected > 0:
        return f"config received from XDS server, but was rejected: {s}"
    return f"config not fully received from XDS server: {s}"


def envoy_readiness_error(readiness_stats_text: str) -> str | None:
    s = parse_stats(readiness_stats_text)
    if "server.state" not in s:
        return f"failed to get readiness stats: server.state is not yet updated: {readiness_stats_text}"
    if "listener_manager.workers_started" not in s:
        return ("failed to get readiness stats: listener_manager.workers_started is not yet updated: "
                f"{readiness_stats_text}")
    state = s["server.state"]
    if state != 0:
        return f"server is not live, current state is: {SERVER_STATES.get(state, str(state))}"
    if s["listener_manager.workers_started"] != 1:
        return "workers have not yet started"
    return None


def readiness_verdict(update_stats_text: str, readiness_stats_text: str) -> str | None:
    """pilot-agent's verdict on Envoy: None when ready, else its error text word for word."""
    return config_status_error(update_stats_text) or envoy_readiness_error(readiness_stats_text)


# --- one pod's agent ----------------------------------------------------------------------------


def _log_time() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class PodAgent:
    """A pod's pilot-agent: where its Envoy is, its resolv.conf, its log."""

    namespace: str
    pod: str
    resolv_conf: str
    has_sidecar: bool = True
    admin_port: int = 0
    health_port: int = 0
    status_port: int = 0
    access_log_path: Path | None = None
    log_lines: list[str] = field(default_factory=list)
    _ready_once: bool = False
    _runner: web.AppRunner | None = None

    def log(self, level: str, message: str, scope: str | None = None) -> None:
        self.log_lines.append("\t".join([_log_time(), level, *([scope] if scope else []), message]))

    def port_for(self, istio_port: int) -> int | None:
        """The real local port behind one of Istio's well-known in-pod ports."""
        return {ADMIN_PORT: self.admin_port, PROMETHEUS_PORT: self.admin_port, HEALTH_PORT: self.health_port,
                STATUS_PORT: self.status_port}.get(istio_port) or None

    async def readiness(self) -> str | None:
        if self._ready_once:
            return None  # pilot-agent stops re-checking config once Envoy was ready
        try:
            async with ClientSession(timeout=ClientTimeout(total=5)) as session:
                texts = []
                for path in (UPDATE_STATS_PATH, READINESS_STATS_PATH):
                    async with session.get(f"http://127.0.0.1:{self.admin_port}/{path}") as resp:
                        texts.append(await resp.text())
        except (ClientError, OSError, asyncio.TimeoutError) as exc:
            return f"failed to get readiness stats: {exc}"
        verdict = readiness_verdict(*texts)
        if verdict is None:
            self._ready_once = True
        return verdict

    async def _ready_handler(self, _request: web.Request) -> web.Response:
        verdict = await self.readiness()
        if verdict is None:
            return web.Response(status=200, text="")
        self.log("warn", f"Envoy proxy is NOT ready: {verdict}")
        return web.Response(status=503, text=verdict)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz/ready", self._ready_handler)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.status_port)
        await site.start()
        self._runner = runner

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


# --- exec ---------------------------------------------------------------------------------------


def _not_found(executable: str) -> ExecResult:
    return ExecResult(127, b"", f'exec: "{executable}": executable file not found in $PATH\n'.encode())


async def _http_get(port: int, path: str) -> tuple[int, bytes]:
    async with ClientSession(timeout=ClientTimeout(total=30)) as session:
        async with session.get(f"http://127.0.0.1:{port}/{path.lstrip('/')}") as resp:
            return resp.status, await resp.read()


class SidecarExec:
    """The exec and log handlers the lab API server calls, over every lab pod's agent."""

    def __init__(self, agents: dict[tuple[str, str], PodAgent], istiod: "IstiodDebug | None" = None):
        self.agents = agents
        self.istiod = istiod

    async def exec(self, namespace: str, pod: str, container: str, command: list[str]) -> ExecResult:
        agent = self.agents.get((namespace, pod))
        if not command:
            return ExecResult(126, b"", b"exec: no command\n")
        if container == ISTIOD_CONTAINER and self.istiod is not None:
            answer = await self.istiod.exec(namespace, pod, command)
            if answer is not None:
                return answer
        program = command[0].rsplit("/", 1)[-1]
        if program == "cat" and len(command) == 2:
            if command[1] == "/etc/resolv.conf" and agent is not None:
                return ExecResult(0, agent.resolv_conf.encode())
            return ExecResult(1, b"", f"cat: {command[1]}: No such file or directory\n".encode())
        if container != SIDECAR_CONTAINER or agent is None or not agent.has_sidecar:
            return _not_found(command[0])
        if program == "pilot-agent":
            return await self._pilot_agent(agent, command[1:])
        if program == "curl":
            return await self._curl(agent, command[1:])
        return _not_found(command[0])

    async def _pilot_agent(self, agent: PodAgent, args: list[str]) -> ExecResult:
        if not args or args[0] != "request":
            return ExecResult(255, b"", b"Error: the lab emulates only `pilot-agent request`\n")
        rest = args[1:]
        debug_port = ADMIN_PORT
        positional = []
        i = 0
        while i < len(rest):
            arg = rest[i]
            if arg == "--debug-port" and i + 1 < len(rest):
                debug_port, i = _int(rest[i + 1]), i + 2
                continue
            if arg.startswith("--debug-port="):
                debug_port = _int(arg.split("=", 1)[1])
            else:
                positional.append(arg)
            i += 1
        if len(positional) < 2 or debug_port is None:
            return ExecResult(255, b"", b"Error: requires at least 2 arg(s), only received "
                              + str(len(positional)).encode() + b"\n")
        method, path = positional[0].upper(), positional[1]
        if method != "GET":
            return ExecResult(255, b"", f"Error: the lab is read-only and refuses {method}\n".encode())
        url = f"http://localhost:{debug_port}/{path.lstrip('/')}"
        if debug_port == DEBUG_PORT:
            return ExecResult(0, b"404 page not found\n")
        real = agent.port_for(debug_port)
        try:
            if real is None:
                raise ConnectionRefusedError
            status, body = await _http_get(real, path)
        except (ClientError, OSError, asyncio.TimeoutError) as exc:
            reason = "connect: connection refused" if isinstance(exc, (ConnectionRefusedError, ClientError)) \
                else str(exc)
            message = f'Get "{url}": dial tcp 127.0.0.1:{debug_port}: {reason}'
            return ExecResult(255, f"{_log_time()}\terror\t{message}\n".encode(), f"Error: {message}\n".encode())
        if 200 <= status < 300 or status == 404:
            return ExecResult(0, body)
        message = f"received unsuccessful status code {status}: {body.decode(errors='replace')}"
        return ExecResult(255, f"{_log_time()}\terror\t{message}\n".encode(), f"Error: {message}\n".encode())

    async def _curl(self, agent: PodAgent, args: list[str]) -> ExecResult:
        silent = show_error = fail = False
        url = None
        i = 0
        while i < len(args):
            arg = args[i]
            if arg in ("--silent",):
                silent = True
            elif arg in ("--fail",):
                fail = True
            elif arg in ("--show-error",):
                show_error = True
            elif arg in ("-m", "--max-time", "--connect-timeout", "-H", "--header", "-o", "--output"):
                i += 1
            elif arg.startswith("-") and not arg.startswith("--"):
                flags = arg[1:]
                silent |= "s" in flags
                fail |= "f" in flags
                show_error |= "S" in flags
            elif not arg.startswith("-"):
                url = arg
            i += 1
        quiet = silent and not show_error
        if url is None:
            return ExecResult(2, b"", b"" if quiet else b"curl: no URL specified!\n")
        host_port, _, path = url.split("://", 1)[-1].partition("/")
        host, _, port_text = host_port.partition(":")
        port = _int(port_text) if port_text else 80
        if host not in ("localhost", "127.0.0.1") or port is None:
            return ExecResult(6, b"", b"" if quiet else f"curl: (6) Could not resolve host: {host}\n".encode())
        real = agent.port_for(port)
        try:
            if port == DEBUG_PORT:
                status, body = 404, b"404 page not found\n"
            elif real is None:
                raise ConnectionRefusedError
            else:
                status, body = await _http_get(real, path)
        except (ClientError, OSError, asyncio.TimeoutError):
            message = f"curl: (7) Failed to connect to {host} port {port} after 0 ms: Couldn't connect to server\n"
            return ExecResult(7, b"", b"" if quiet else message.encode())
        if fail and status >= 400:
            message = f"curl: (22) The requested URL returned error: {status}\n"
            return ExecResult(22, b"", b"" if quiet else message.encode())
        return ExecResult(0, body)

    async def logs(self, namespace: str, pod: str, container: str, since_seconds: int | None,
                   tail_lines: int | None) -> str:
        """istio-proxy's log: pilot-agent lines, then the Envoy access log (empty for other containers)."""
        agent = self.agents.get((namespace, pod))
        if agent is None or container != SIDECAR_CONTAINER or not agent.has_sidecar:
            return ""
        lines = list(agent.log_lines)
        if agent.access_log_path is not None:
            try:
                lines += agent.access_log_path.read_text(errors="replace").splitlines()
            except OSError:
                pass
        if tail_lines is not None and tail_lines >= 0:
            lines = lines[-tail_lines:] if tail_lines else []
        return "".join(line + "\n" for line in lines)


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None

