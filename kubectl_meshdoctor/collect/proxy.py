"""Reading one pod's istio-proxy: a fixed set of commands run by exec, each output reduced at once.

Why a fixed set: the tool is read-only and must be auditable. Every command the plugin may run in a
container is listed below as an argv tuple (never a shell string, so no pod or namespace name can
reach a shell), and the tests assert that nothing else is ever executed.

Why pilot-agent: ``pilot-agent request GET <path>`` reaches Envoy's admin API (localhost:15000) from
inside the container in every proxyv2 image, distroless included. When the image has no pilot-agent
(exit 127), the same paths are fetched with curl. Readiness asks Envoy's health listener (15021) first
and pilot-agent's own port (15020) only when 15021 refuses the connection, which is what an Envoy that
never got its configuration does.

The admin paths come from one table (collect/admin_requests.py). A pod's requests run side by side in
the sweep's pool; each output is reduced right after it arrives and only the reduced evidence is
kept, and at most LARGE_ANSWERS_IN_FLIGHT large answers are received or held at once, however many
pods.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import itertools
import json
import re
import select
import socket
import ssl
import threading
import time
import weakref
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator
from urllib.parse import quote, urlencode, urlsplit

import certifi
import urllib3.exceptions
import websocket
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from kubectl_meshdoctor.collect.admin_requests import (
    ADMIN_REQUESTS, CONFIG_DUMP_FULL, CONFIG_PARTS, FULL_CONFIG_REDUCE, AdminRequest)
from kubectl_meshdoctor.collect.endpoint_query import is_endpoint_query
from kubectl_meshdoctor.collect.kube import get_raw, one_line
from kubectl_meshdoctor.collect.reducers import reduce_inline
from kubectl_meshdoctor.envoy.access_log import summarize_access_log
from kubectl_meshdoctor.envoy.clusters import parse_clusters
from kubectl_meshdoctor.envoy.config_dump import PartialConfig
from kubectl_meshdoctor.envoy.resolv import parse_resolv_conf
from kubectl_meshdoctor.envoy.routes import lookups_wanted, parse_route_lookups, parse_route_timeouts
from kubectl_meshdoctor.envoy.xds_log import summarize_xds_log
from kubectl_meshdoctor.errors import ExecError, ParseError
from kubectl_meshdoctor.evidence import ClusterSummary, Gap, ProxyConfig, ProxyEvidence, Readiness, RouteTarget

SIDECAR = "istio-proxy"
ENVOY_ADMIN_PORT = 15000
HEALTH_PORT = 15021  # Envoy's health listener, forwarding to pilot-agent
AGENT_PORT = 15020  # pilot-agent's status port, answering even while Envoy accepts nothing

Argv = tuple[str, ...]


def _agent(path: str, port: int | None = None) -> Argv:
    return ("pilot-agent", "request", "GET", path) + (("--debug-port", str(port)) if port else ())


# The admin requests come from one table (collect/admin_requests.py): the stats the checks read, the
# config_dump parts (each masked to the fields its reducer reads), certs and server_info.
READY = _agent("healthz/ready", HEALTH_PORT)
READY_AGENT = _agent("healthz/ready", AGENT_PORT)
ADMIN_COMMANDS: dict[str, Argv] = {request.field: _agent(request.path) for request in ADMIN_REQUESTS}
# The long way to the same evidence, asked only when the short answer does not show it (AdminRequest.fallback).
ADMIN_FALLBACK_COMMANDS: dict[str, Argv] = {request.field: _agent(request.fallback.path)
                                            for request in ADMIN_REQUESTS if request.fallback is not None}
SERVER_INFO, STATS = ADMIN_COMMANDS["server_info"], ADMIN_COMMANDS["stats"]
SDS_CERTIFICATES, CERTS = ADMIN_COMMANDS["certs"], ADMIN_FALLBACK_COMMANDS["certs"]
CONFIG_PART_COMMANDS: tuple[Argv, ...] = tuple(_agent(part.path) for part in CONFIG_PARTS)
CONFIG_DUMP = _agent(CONFIG_DUMP_FULL)  # the whole dump: fallback, or MESHDOCTOR_CONFIG_DUMP=full
RESOLV_CONF = ("cat", "/etc/resolv.conf")
# Endpoint health and circuit breakers of the upstream clusters; asked only when the access log shows
# failures (see PodReader._read_failing_upstreams).
CLUSTERS = _agent("clusters?format=json")
# The HTTP routes (with their timeouts); asked only when the access log shows timeouts (UT).
ROUTES = _agent("config_dump?resource=dynamic_route_configs")

# Every command the plugin may exec in istio-proxy. READY_AGENT runs only when READY is refused,
# CONFIG_DUMP only for a proxy that refuses the config_dump parameters (or when asked for), CLUSTERS and
# ROUTES only after failing requests, CERTS only when the SDS secrets do not show the certificates.
PROXY_COMMANDS: tuple[Argv, ...] = (READY, READY_AGENT, *ADMIN_COMMANDS.values(), *ADMIN_FALLBACK_COMMANDS.values(),
                                    *CONFIG_PART_COMMANDS, CONFIG_DUMP, RESOLV_CONF, CLUSTERS, ROUTES)
# `pod NAME --trace` runs this one instead, in the traced pod only: the whole dump, endpoints included.
TRACE_CONFIG_DUMP = _agent("config_dump?include_eds")
TRACE_COMMANDS: tuple[Argv, ...] = (TRACE_CONFIG_DUMP,)


def _curl_admin(path: str) -> Argv:
    # -g: no URL globbing, the stats regex is sent as written; -f: an HTTP error is a non-zero exit.
    return ("curl", "-sSfg", f"http://localhost:{ENVOY_ADMIN_PORT}/{path}")


def _curl_status(port: int) -> Argv:
    # Status code on the last line, body before it; the readiness verdict needs both.
    return ("curl", "-sSg", "-w", r"\n%{http_code}", f"http://localhost:{port}/healthz/ready")


# The same requests for an istio-proxy image without pilot-agent (exit 127): `pilot-agent request GET
# <path>` becomes curl of the same admin path.
CURL_FALLBACK: dict[Argv, Argv] = {
    READY: _curl_status(HEALTH_PORT),
    READY_AGENT: _curl_status(AGENT_PORT),
    **{command: _curl_admin(command[3]) for command in (*ADMIN_COMMANDS.values(), *ADMIN_FALLBACK_COMMANDS.values(),
                                                         *CONFIG_PART_COMMANDS, CONFIG_DUMP, CLUSTERS, ROUTES,
                                                         TRACE_CONFIG_DUMP)},
}

ALL_COMMANDS: frozenset[Argv] = (frozenset(PROXY_COMMANDS) | frozenset(TRACE_COMMANDS)
                                 | frozenset(CURL_FALLBACK.values()))

# istiod's view of the proxies (the data of `istioctl proxy-status`), read in its discovery container.
ISTIOD_CONTAINER = "discovery"
SYNCZ: Argv = ("pilot-discovery", "request", "GET", "/debug/syncz")
# Multi-cluster runs only: the clusters istiod reads and their sync state (MD0701).
CLUSTERZ: Argv = ("pilot-discovery", "request", "GET", "/debug/clusterz")
# The only commands the plugin ever runs, per container; plus, in istio-proxy and in multi-cluster runs
# only, the EDS of named outbound clusters, whose one shape collect/endpoint_query.py checks (MD0701).
ALLOWED_EXEC: dict[str, frozenset[Argv]] = {SIDECAR: ALL_COMMANDS, ISTIOD_CONTAINER: frozenset({SYNCZ, CLUSTERZ})}


def allowed_exec(container: str, argv: Argv) -> bool:
    return argv in ALLOWED_EXEC.get(container, ()) or (container == SIDECAR and is_endpoint_query(argv))

STDOUT_CHANNEL, STDERR_CHANNEL, ERROR_CHANNEL = 1, 2, 3
V5_CLOSE_CHANNEL = 255  # v5.channel.k8s.io: "channel N closed" signal, carries no output
# Offered in kubectl's order; v4 is what API servers before 1.30 speak.
EXEC_SUBPROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
MISSING_EXIT_CODES = (126, 127)  # the runtime could not start the command (not found / not executable)
CURL_CONNECTION_REFUSED = 7
CURL_HTTP_ERROR = 22  # curl -f: the server answered 400 or more
LOG_LIMIT_BYTES = 8 * 1024 * 1024  # newest log window is bounded, like the reduced evidence
# Answers that can be large (config_dump parts, /certs, server_info: up to megabytes each) being
# received or waiting to be reduced, over a whole sweep: room is taken when an answer starts to arrive,
# not when it is asked for, so it bounds memory without holding requests back. Measured on the bench
# (60 pods, 1500 services, one reducer helper, load 3-5): plugin peak RSS ~118 MB with 12, ~125 MB with
# 16, ~150 MB with 24 when room was taken at the request (bench/RESULTS.md).
LARGE_ANSWERS_IN_FLIGHT = 12
_REFUSED = re.compile(r"connection refused", re.I)
_UNSUCCESSFUL = re.compile(r"unsuccessful status code (\d{3}):?\s*(.*)", re.S)
_PARAMETERS_REFUSED = re.compile(r"unsuccessful status code (400|404)")
# A whole dump's first section (Envoy writes "@type" first): a section type, not one resource's
# ("...ClustersConfigDump.DynamicCluster"). Read from the answer's first bytes, before it is reduced.
_WHOLE_DUMP = re.compile(rb'"@type"\s*:\s*"type\.googleapis\.com/envoy\.admin\.v[23]\.\w+ConfigDump"')


@dataclass(frozen=True)
class Step:
    """One request for proxy evidence: the ProxyEvidence field it fills, its command and its reducer."""

    field: str
    endpoint: str  # how gaps name it
    command: Argv
    parse: Callable[[bytes], Any]
    fallback: Step | None = None  # see AdminRequest.fallback


def _admin_step(request: AdminRequest) -> Step:
    fallback = None if request.fallback is None else _admin_step(request.fallback)
    return Step(request.field, request.endpoint, _agent(request.path), request.reduce, fallback)


STEPS: tuple[Step, ...] = (
    *(_admin_step(request) for request in ADMIN_REQUESTS),
    Step("resolv_conf", "resolv.conf", RESOLV_CONF, parse_resolv_conf),
)
# The config_dump parts: each reduced to a PartialConfig as it arrives, merged once all are in.
CONFIG_STEPS: tuple[Step, ...] = tuple(Step("config", f"config_dump {part.resource}", command, part.reduce)
                                       for command, part in zip(CONFIG_PART_COMMANDS, CONFIG_PARTS))
FULL_CONFIG_STEP = Step("config", "config_dump", CONFIG_DUMP, FULL_CONFIG_REDUCE)


@dataclass(frozen=True)
class ExecOutput:
    exit_code: int
    stdout: bytes | bytearray
    stderr: bytes | bytearray


# --- exec -----------------------------------------------------------------------------------------------


class Cancellation:
    """Lets Ctrl-C stop every worker at once, including one blocked waiting on an exec stream."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._streams: set[Any] = set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self) -> None:
        self._event.set()
        with self._lock:
            streams = list(self._streams)
        for ws in streams:
            # Shutting the socket down wakes the worker's poll() at once; close() alone would not.
            raw = getattr(ws, "sock", None)
            try:
                if raw is not None:
                    raw.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def track(self, ws: Any) -> None:
        with self._lock:
            self._streams.add(ws)
        if self.cancelled:
            self.cancel()

    def untrack(self, ws: Any) -> None:
        with self._lock:
            self._streams.discard(ws)



def exec_command(api_client: k8s.ApiClient, namespace: str, pod: str, argv: Argv, timeout: float,
                 container: str = SIDECAR, cancellation: Cancellation | None = None,
                 before_output: Callable[[], None] | None = None) -> ExecOutput:
    """Run ``argv`` in the container and wait at most ``timeout`` seconds; raises ExecError only.

    ``before_output`` runs once, when the first frame of the answer is there and before it is read:
    the caller may wait there for room to hold a large answer (it may raise ExecError).

    The exec is requested the way kubectl does it (a WebSocket upgrade of GET .../pods/NAME/exec,
    channel protocol v5 or v4), directly on websocket-client rather than through
    ``kubernetes.stream``: that helper validates every argument, builds a new SSL context and loads
    the CA for each call, which cost a sweep about as much CPU as parsing the config_dumps.
    """
    if not allowed_exec(container, argv):  # the read-only promise is enforced, not just documented
        raise ValueError(f"not one of the commands allowed in {container}: {argv!r}")
    ws = _open_exec_stream(api_client, namespace, pod, container, argv, timeout)
    if cancellation is not None:
        cancellation.track(ws)
    try:
        channels = _read_until_closed(ws, timeout, before_output)
        if cancellation is not None and cancellation.cancelled:
            raise ExecError("cancelled")
        if channels is None:
            raise ExecError(f"timed out after {timeout:.0f}s", timed_out=True)
        stdout, stderr, status = (channels.get(c) or b"" for c in (STDOUT_CHANNEL, STDERR_CHANNEL, ERROR_CHANNEL))
    except (websocket.WebSocketException, OSError, ValueError) as exc:
        if cancellation is not None and cancellation.cancelled:  # cancel() shut the socket down
            raise ExecError("cancelled") from None
        raise ExecError(f"exec stream failed: {one_line(exc)}") from None
    finally:
        if cancellation is not None:
            cancellation.untrack(ws)
        try:
            ws.close(timeout=0)
        except (websocket.WebSocketException, OSError):
            pass
    return ExecOutput(_exit_code(status, stderr), stdout, stderr)


def _exec_url(host: str, namespace: str, pod: str, container: str, argv: Argv) -> str:
    query = [("command", arg) for arg in argv]
    query += [("container", container), ("stderr", "true"), ("stdout", "true")]
    scheme, rest = host.rstrip("/").split("://", 1) if "://" in host else ("https", host.rstrip("/"))
    ws_scheme = "wss" if scheme == "https" else "ws"
    path = f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(pod, safe='')}/exec"
    return f"{ws_scheme}://{rest}{path}?{urlencode(query)}"


def _open_exec_stream(api_client: k8s.ApiClient, namespace: str, pod: str, container: str, argv: Argv,
                      timeout: float) -> websocket.WebSocket:
    configuration = api_client.configuration
    url = _exec_url(configuration.host, namespace, pod, container, argv)
    headers: dict[str, str] = {}
    # The client's own auth step: bearer token, refreshed by an exec credential plugin when it expires.
    api_client.update_params_for_auth(headers, [], ["BearerToken"], "", "GET", None)
    header = [f"Authorization: {headers['authorization']}"] if headers.get("authorization") else []
    sslopt: dict[str, Any] = {}
    if url.startswith("wss://"):
        sslopt["context"] = _ssl_context(configuration)
        if configuration.tls_server_name:
            sslopt["server_hostname"] = configuration.tls_server_name
    ws = websocket.WebSocket(sslopt=sslopt, skip_utf8_validation=True)
    try:
        ws.connect(url, header=header, subprotocols=list(EXEC_SUBPROTOCOLS), timeout=max(timeout, 0.001),
                   **_proxy_options(configuration))
    except websocket.WebSocketBadStatusException as exc:
        body = exc.resp_body.decode("utf-8", "replace") if isinstance(exc.resp_body, bytes) else str(exc.resp_body or "")
        raise _refused(exc.status_code, body) from None
    except (websocket.WebSocketException, OSError, ValueError) as exc:
        ws.shutdown()
        if isinstance(exc, (socket.timeout, websocket.WebSocketTimeoutException)):
            raise ExecError(f"timed out after {timeout:.0f}s", timed_out=True) from None
        raise ExecError(f"exec failed: {one_line(exc)}") from None
    return ws


_SSL_CONTEXTS: weakref.WeakKeyDictionary[Any, ssl.SSLContext] = weakref.WeakKeyDictionary()
_SSL_CONTEXTS_LOCK = threading.Lock()


def _ssl_context(configuration: k8s.Configuration) -> ssl.SSLContext:
    """One SSL context per client configuration, shared by every exec of a sweep.

    Loading the CA into a new context for each exec was measurable CPU at 7 execs per pod; one
    context also lets OpenSSL keep the server's verified chain and session state warm.
    """
    with _SSL_CONTEXTS_LOCK:
        context = _SSL_CONTEXTS.get(configuration)
        if context is None:
            context = _SSL_CONTEXTS[configuration] = _new_ssl_context(configuration)
        return context


def _new_ssl_context(configuration: k8s.Configuration) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        if configuration.verify_ssl:
            context.load_verify_locations(cafile=configuration.ssl_ca_cert or certifi.where())
            context.check_hostname = configuration.assert_hostname is not False
        else:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if configuration.cert_file:
            context.load_cert_chain(configuration.cert_file, configuration.key_file or None)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise ExecError(f"exec failed: TLS settings of the kubeconfig: {one_line(exc)}") from None
    return context


def _proxy_options(configuration: k8s.Configuration) -> dict[str, Any]:
    """The kubeconfig's proxy-url, as kubernetes.stream passes it to websocket-client."""
    options: dict[str, Any] = {}
    if configuration.proxy:
        proxy = urlsplit(configuration.proxy)
        options.update(http_proxy_host=proxy.hostname, http_proxy_port=proxy.port, proxy_type="http")
    if configuration.no_proxy:
        options["http_no_proxy"] = configuration.no_proxy.split(",")
    return options


def _read_until_closed(ws: websocket.WebSocket, timeout: float,
                       before_output: Callable[[], None] | None = None) -> dict[int, bytearray] | None:
    """Every channel's output once the server closes the exec stream; None when ``timeout`` runs out.

    Frames are appended to one bytearray per channel (amortised growth, no copy at the end): a growing
    bytes object, as kubernetes.stream's ``run_forever`` keeps, is quadratic for a multi-megabyte
    answer, and a list of frames joined at the end holds the answer twice while it is joined.
    """
    raw = ws.sock
    parts: dict[int, bytearray] = {}
    deadline = time.monotonic() + timeout
    poller = select.poll()
    poller.register(raw, select.POLLIN)
    while True:
        # TLS may hold decrypted frames already, which poll() on the socket cannot see.
        if not (isinstance(raw, ssl.SSLSocket) and raw.pending()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if not poller.poll(remaining * 1000):
                continue
        if before_output is not None:
            before_output()
            before_output = None
        opcode, frame = ws.recv_data_frame(True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            break
        data = frame.data if opcode in (websocket.ABNF.OPCODE_BINARY, websocket.ABNF.OPCODE_TEXT) else b""
        if isinstance(data, str):
            data = data.encode()
        if data and data[0] != V5_CLOSE_CHANNEL:  # first byte: the channel
            parts.setdefault(data[0], bytearray()).extend(memoryview(data)[1:])
    return parts


def _refused(code: int, text: str) -> ExecError:
    """ExecError for an exec the API server refused with HTTP status ``code`` and body ``text``."""
    text = " ".join(text.split())
    message = _status_message(text) or text[:200] or "exec refused"
    if code == 403:
        return ExecError(f"exec refused (RBAC: create pods/exec): {message}", forbidden=True)
    if code == 401:
        return ExecError(f"exec unauthorized: {message}", forbidden=True)
    if code == 404:
        return ExecError(f"pod not found (deleted?): {message}")
    return ExecError(f"exec failed{f' ({code})' if code else ''}: {message}")


def _status_message(text: str) -> str:
    match = re.search(r'"message"\s*:\s*"((?:[^"\\]|\\.)*)"', text)
    return match.group(1).encode().decode("unicode_escape", "replace") if match else ""


def _exit_code(status: bytes, stderr: bytes) -> int:
    """The command's exit code from the status channel; a runtime failure to start it counts as 127."""
    if not status:
        raise ExecError("exec stream ended without an exit status")
    try:
        document = json.loads(status)
    except ValueError:
        raise ExecError(f"exec status is not JSON: {status[:120]!r}") from None
    if document.get("status") == "Success":
        return 0
    for cause in (document.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode" and str(cause.get("message", "")).lstrip("-").isdigit():
            return int(cause["message"]) % 256
    message = str(document.get("message") or "")
    if "executable file not found" in message or "no such file or directory" in message:
        return 127
    raise ExecError(f"exec failed: {one_line(message) or document.get('reason') or 'unknown error'}")


# --- one pod --------------------------------------------------------------------------------------------


@dataclass
class ProxyReading:
    """What was read from one pod, what is missing, and whether exec itself was refused."""

    pod: str
    fields: dict[str, Any] = field(default_factory=dict)
    gaps: list[Gap] = field(default_factory=list)
    exec_refused: bool = False
    log_refused: bool = False

    def gap(self, what: str, reason: str) -> None:
        self.gaps.append(Gap(what=what, reason=reason, pod=self.pod))

    def evidence(self, container: str = SIDECAR) -> ProxyEvidence:
        return ProxyEvidence(pod=self.pod, container=container, **self.fields)


class ParameterSupport:
    """Envoy versions that refuse (or ignore) config_dump's ``resource``/``mask``, learnt once per sweep.

    An old Envoy answers the parts with an error (fall back to the whole dump) or ignores the
    parameters and sends the whole dump each time (correct, but three times the bytes). Either way,
    later pods running the same version go straight to one whole dump.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._versions: set[str] = set()

    def any(self) -> bool:
        return bool(self._versions)

    def refuses(self, version: str) -> bool:
        with self._lock:
            return version in self._versions

    def remember(self, version: str) -> None:
        with self._lock:
            self._versions.add(version)


UNKNOWN_VERSION = "unknown"


class PodReader:
    """Reads one pod's istio-proxy: each request is a task, run concurrently with the others.

    The tasks of every pod share one bounded pool (``submit_interleaved``); ``result`` waits for this pod's. The
    pod's time budget is spent while one of its execs is in flight. Every failure becomes a gap.
    """

    def __init__(self, client: Callable[[], k8s.ApiClient], namespace: str, name: str,
                 timeout: float, *, exec_allowed: Callable[[], bool] = lambda: True,
                 log_allowed: Callable[[], bool] = lambda: True, on_exec_refused: Callable[[], None] = lambda: None,
                 on_log_refused: Callable[[], None] = lambda: None,
                 on_exec_answered: Callable[[], None] = lambda: None,
                 cancellation: Cancellation | None = None, full_config_dump: bool = False,
                 parameter_support: ParameterSupport | None = None,
                 large_answers: threading.BoundedSemaphore | None = None,
                 reduce: Callable[[Callable[[bytes], Any], bytes], Any] = reduce_inline,
                 in_flight: contextlib.AbstractContextManager | None = None):
        self._client = client  # the calling worker thread's API client
        self.namespace = namespace
        self.name = name
        self.timeout = timeout
        self.exec_allowed = exec_allowed
        self.log_allowed = log_allowed
        self.on_exec_refused = on_exec_refused
        self.on_log_refused = on_log_refused
        self.on_exec_answered = on_exec_answered  # an exec came back: exec is allowed in this cluster
        self.cancellation = cancellation or Cancellation()
        self.support = parameter_support or ParameterSupport()  # a sweep passes one for all its pods
        self.large_answers = large_answers or threading.BoundedSemaphore(LARGE_ANSWERS_IN_FLIGHT)
        self.reduce = reduce  # (reducer, raw answer) -> reduced value: in process, or a sweep's helpers
        # Requests in flight over the whole sweep (--concurrency): held for an exec or a log read only,
        # not while its answer is reduced, so a slot never waits for a reduction.
        self.in_flight = in_flight or contextlib.nullcontext()
        self.reading = ProxyReading(pod=f"{namespace}/{name}")
        self.use_curl = False
        self._lock = threading.Lock()
        self._busy_seconds = 0.0  # the pod's budget spent: time with an exec of it in flight
        self._busy_since = 0.0
        self._in_flight = 0
        self._server_info_read = threading.Event()
        self._whole_dump_asked = full_config_dump
        self._config_mode = "full" if full_config_dump else ""  # decided by the first config task
        self._full_claimed = False  # a config task of this pod reads (or read) the whole dump
        self._parts: dict[int, PartialConfig] = {}
        self._part_failures: list[tuple[str, str]] = []
        self._full: PartialConfig | None = None
        self._exec_failures: dict[str, str] = {}  # endpoint -> why its exec failed
        self._futures: list[concurrent.futures.Future] = []
        self._pending = 0  # tasks not yet done; the last one to finish merges the evidence
        self._timed_out = False

    # --- scheduling ---------------------------------------------------------------------------------

    def tasks(self, log_since_seconds: int | None, request_timeout: float) -> list[tuple[str, Callable[[], None]]]:
        """(what, task) for each of this pod's requests, in the order they should start: server_info
        before the config parts, which may need its version."""
        return [("readiness", self._read_readiness),
                *((step.endpoint, functools.partial(self._read_step, step)) for step in STEPS),
                *(("config_dump", functools.partial(self._read_config, index)) for index in range(len(CONFIG_STEPS))),
                ("access log", functools.partial(self._read_log, log_since_seconds, request_timeout))]

    def _prepare(self, log_since_seconds: int | None, request_timeout: float) -> list[tuple[str, Callable[[], None]]]:
        tasks = self.tasks(log_since_seconds, request_timeout)
        self._pending = len(tasks)
        self._futures = []
        return tasks

    def _submit_task(self, pool: concurrent.futures.Executor, what: str, task: Callable[[], None]) -> None:
        self._futures.append(pool.submit(self._guarded, what, task))

    def futures(self) -> list[concurrent.futures.Future]:
        return self._futures

    def result(self) -> ProxyReading:
        """The reading, once every task of the pod is done (a task's bug is raised here)."""
        for future in self._futures:
            future.result()
        return self.reading

    def _finish(self) -> None:
        """Merge the config parts and turn exec failures into gaps; run by the pod's last task, so the
        parts are dropped as soon as the pod is done."""
        reading = self.reading
        if self._full is not None:
            reading.fields["config"] = _shared(self._full.config())
        elif self._config_mode == "parts" and len(self._parts) == len(CONFIG_STEPS):
            merged = PartialConfig()
            for index in sorted(self._parts):
                merged.add(self._parts[index])
            reading.fields["config"] = _shared.config(merged)
        elif not reading.exec_refused and "config_dump" not in self._exec_failures:
            for what, reason in self._part_failures[:1]:
                reading.gap(what, reason)
        if self._exec_failures and not reading.exec_refused:
            first = next(iter(self._exec_failures.values()))
            unread = [name for name in ("readiness", *(s.endpoint for s in STEPS), "config_dump")
                      if name in self._exec_failures]
            reason = f"{first}; not read: {', '.join(unread)}" if self._timed_out else first
            # First: the reason the rest (a late log read, say) went wrong too.
            reading.gaps.insert(0, Gap(what="proxy evidence", reason=reason, pod=reading.pod))
        self._parts.clear()

    def _guarded(self, what: str, task: Callable[[], None]) -> None:
        try:
            task()
        except ExecError as exc:
            self._exec_failed(what, exc)
        finally:
            with self._lock:
                self._pending -= 1
                last = self._pending == 0
            if last:
                self._finish()

    def _exec_failed(self, what: str, exc: ExecError) -> None:
        if exc.forbidden:
            self.reading.exec_refused = True
            self.on_exec_refused()
            return
        with self._lock:
            self._exec_failures.setdefault(what, str(exc))
            self._timed_out = self._timed_out or exc.timed_out
        if what == "server_info":
            self._server_info_read.set()

    # --- exec ---------------------------------------------------------------------------------------

    def _remaining(self) -> float:
        """Seconds left of the pod's budget: the time while at least one of its execs is in flight.

        Time its requests spend waiting for a slot of the shared pool, behind other pods' (a hung
        one, say), is not charged to it.
        """
        with self._lock:
            spent = self._busy_seconds + (time.monotonic() - self._busy_since if self._in_flight else 0.0)
        return self.timeout - spent

    @contextlib.contextmanager
    def _busy(self) -> Iterator[None]:
        with self._lock:
            if not self._in_flight:
                self._busy_since = time.monotonic()
            self._in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
                if not self._in_flight:
                    self._busy_seconds += time.monotonic() - self._busy_since

    # --- follow-ups: evidence about the upstreams the access log shows failing ----------------------

    def _read_failing_upstreams(self) -> None:
        """Evidence about the upstream clusters the access log shows failing; nothing when none fails.

        Asked after the log, and only then, so a healthy proxy costs no extra exec and the evidence holds
        only the clusters a diagnosis will look at: /clusters for every failing cluster, the routes for
        the clusters that timed out (UT) and the Hosts that found no route (NR).
        """
        log = self.reading.fields.get("access_log")
        counts = log.failure_counts if log else ()
        failing = {cluster for flags, cluster, _ in counts if cluster and flags}
        timed_out = {cluster for flags, cluster, _ in counts if cluster and "UT" in flags.split(",")}
        no_route = lookups_wanted(log)
        if failing:
            self._follow_up("clusters", CLUSTERS, lambda raw: {"upstream_clusters": parse_clusters(raw, failing)})
        if timed_out or no_route:  # one read of the routes serves both
            self._follow_up("routes", ROUTES, lambda raw: {"route_timeouts": parse_route_timeouts(raw, timed_out),
                                                           "route_lookups": parse_route_lookups(raw, no_route)})

    def _follow_up(self, endpoint: str, command: Argv, parse: Callable[[bytes], dict[str, Any]]) -> None:
        """Run ``command`` and store the fields ``parse`` makes of its output; any failure is a gap."""
        if self.reading.exec_refused or self.cancellation.cancelled:
            return
        # An admin API that failed server_info fails this too: ask nothing more. server_info's task was
        # queued before the log's, so this waits at most for an exec already under way.
        self._server_info_read.wait(max(0.0, self._remaining()))
        if "server_info" not in self.reading.fields:
            return
        try:
            output = self._run(command)
        except ExecError as exc:
            if exc.forbidden:
                self.reading.exec_refused = True
                self.on_exec_refused()
            else:
                self.reading.gap(endpoint, str(exc))
            return
        if output.exit_code != 0:
            self.reading.gap(endpoint, _failure(self._shown(command), output))
            return
        try:
            self.reading.fields.update(reduce_inline(parse, output.stdout))
        except ParseError as exc:
            self.reading.gap(endpoint, str(exc))

    def _run(self, argv: Argv, before_output: Callable[[], None] | None = None) -> ExecOutput:
        with self.in_flight:  # a slot of the sweep's --concurrency, for the exec only
            return self._run_in_slot(argv, before_output)

    def _run_in_slot(self, argv: Argv, before_output: Callable[[], None] | None = None) -> ExecOutput:
        remaining = self._remaining()
        if self.cancellation.cancelled:
            raise ExecError("cancelled")
        if not self.exec_allowed():
            raise ExecError("exec refused earlier in this sweep", forbidden=True)
        if remaining <= 0:
            raise ExecError("pod time budget spent", timed_out=True)
        command = CURL_FALLBACK.get(argv, argv) if self.use_curl else argv
        try:
            with self._busy():
                output = exec_command(self._client(), self.namespace, self.name, command, remaining,
                                      cancellation=self.cancellation, before_output=before_output)
            self.on_exec_answered()
        except ExecError as exc:
            if exc.timed_out:
                raise ExecError(f"{' '.join(command[:4])}: {exc}", timed_out=True) from None
            raise
        if output.exit_code in MISSING_EXIT_CODES and command == argv and argv in CURL_FALLBACK:
            self.use_curl = True  # no pilot-agent in this image: the same requests through curl
            return self._run_in_slot(argv, before_output)
        return output

    def _reduce(self, step: Step, output: ExecOutput) -> Any:
        """The step's reducer on the output; a failure is a gap (None)."""
        if output.exit_code != 0:
            self.reading.gap(step.endpoint, _failure(self._shown(step.command), output))
            return None
        try:
            return self.reduce(step.parse, output.stdout)
        except ParseError as exc:
            message = str(exc)
            self.reading.gap(step.endpoint, message if message.startswith(step.endpoint) else
                             f"{step.endpoint}: {message}")
            return None

    def _read_step(self, step: Step) -> None:
        try:
            if step.fallback is not None and self._asks_whole_answers():
                step = step.fallback
            with self._large_answer() as admit:  # /certs is ~1 MB at 1500 services
                output = self._run(step.command, admit)
                refused = step.fallback is not None and self._refuses_parameters(output)
                value = None if refused else self._reduce(step, output)  # the raw output is dropped here
            if step.fallback is not None and (refused or value == ()):
                self._read_step(step.fallback)  # the short answer does not show it: the long way
                return
            if value is not None:
                self.reading.fields[step.field] = _shared(value)
        finally:
            if step.field == "server_info":
                self._server_info_read.set()

    def _asks_whole_answers(self) -> bool:
        """Whole-dump mode, or a proxy version already known to refuse config_dump's parameters."""
        return self._whole_dump_asked or self._version_refuses_parameters()

    def _version_refuses_parameters(self) -> bool:
        """Whether this proxy's version is known to refuse them; waits for its version only if some does."""
        return self.support.any() and self.support.refuses(self._version())

    # --- config_dump: the masked parts, or the whole dump ----------------------------------------------

    def _read_config(self, index: int) -> None:
        step = CONFIG_STEPS[index]
        with self._large_answer() as admit:
            asked = self._ask_config(index, admit)
            if asked is None:
                return  # another config task of this pod reads the whole dump
            mode, output, refused = asked
            if mode == "full":
                self._full = self._reduce(FULL_CONFIG_STEP, output)
                return
            part = None if refused else self._config_part(step, output)  # the raw answer is dropped here
        if refused:
            self._fall_back_to_full_dump()
            return
        if part is None:
            return
        if part.whole:  # the proxy ignored ?resource=: this answer is all of it, and later pods of its
            self.support.remember(self._version())  # version ask for the whole dump once
            with self._lock:
                self._full = self._full or part
            return
        with self._lock:
            self._parts[index] = _shared.part(part)  # shared at once: the pod's other parts may be far off

    def _ask_config(self, index: int, admit: Callable[[], None]) -> tuple[str, ExecOutput, bool] | None:
        """Send config task ``index``'s request: (mode, output, whether the proxy refused the parameters).

        The mode is chosen in the request's slot, when it can go out: a refusal met by a request that
        went out before (this pod's or another pod's of the same version) is known by then. The proxy's
        version is waited for outside any slot, so no slot waits for another request.
        """
        while True:
            if self.support.any():
                self._version()  # waits for this pod's server_info, holding no slot
            with self.in_flight:
                if self.support.any() and not self._server_info_read.is_set():
                    continue  # a refusal became known meanwhile: learn this proxy's version first
                mode = self._choose_config_mode()
                if mode == "full" and not self._claim_full_dump():
                    return None  # another config task of this pod reads the whole dump
                output = self._run_in_slot(FULL_CONFIG_STEP.command if mode == "full" else CONFIG_STEPS[index].command,
                                           admit)
                refused = mode == "parts" and self._refuses_parameters(output)
                if refused or (mode == "parts" and _WHOLE_DUMP.search(output.stdout[:4096])):
                    self.support.remember(self._version())  # refused, or ignored: the whole dump came
                return mode, output, refused

    def _choose_config_mode(self) -> str:
        with self._lock:
            mode = self._config_mode
        if mode:
            return mode
        # Some Envoy version refused the parameters: learn this one's version before asking.
        refused = self._version_refuses_parameters()
        with self._lock:
            if not self._config_mode:
                self._config_mode = "full" if refused else "parts"
            return self._config_mode

    def _version(self) -> str:
        """This proxy's Envoy version; waits for its server_info task (queued before the config parts)."""
        if not self._server_info_read.wait(max(0.0, self._remaining())):
            return UNKNOWN_VERSION
        info = self.reading.fields.get("server_info")
        return getattr(info, "version", "") or UNKNOWN_VERSION

    def _refuses_parameters(self, output: ExecOutput) -> bool:
        """The proxy answered a config_dump part with an HTTP error or a non-JSON body."""
        if output.exit_code != 0:
            text = (output.stderr + output.stdout).decode("utf-8", "replace")
            return bool(_PARAMETERS_REFUSED.search(text)) or (self.use_curl and output.exit_code == CURL_HTTP_ERROR)
        # A slice: the answer can be megabytes. pilot-agent passes a 404 body on with exit 0.
        return not output.stdout[:256].lstrip().startswith(b"{")

    def _config_part(self, step: Step, output: ExecOutput) -> PartialConfig | None:
        if output.exit_code != 0:
            failure = _failure(self._shown(step.command), output)
            self._part_failures.append(("config_dump", f"{failure} ({step.endpoint.split(' ', 1)[-1]})"))
            return None
        try:
            return self.reduce(step.parse, output.stdout)
        except ParseError as exc:
            self._part_failures.append(("config_dump", f"{exc} ({step.endpoint.split(' ', 1)[-1]})"))
            return None

    def _fall_back_to_full_dump(self) -> None:
        with self._lock:
            self._config_mode = "full"
        if self._claim_full_dump():  # else another config task of this pod reads it
            self._read_full_config()

    def _claim_full_dump(self) -> bool:
        """True for the one config task of this pod that reads the whole dump."""
        with self._lock:
            claimed, self._full_claimed = self._full_claimed, True
            return not claimed

    def _read_full_config(self) -> None:
        with self._large_answer() as admit:
            self._full = self._reduce(FULL_CONFIG_STEP, self._run(FULL_CONFIG_STEP.command, admit))

    @contextlib.contextmanager
    def _large_answer(self) -> Iterator[Callable[[], None]]:
        """Room for one large answer, from its first byte until it is reduced.

        Yields ``admit``, which the exec calls when the answer starts to arrive: the request itself goes
        out at once (most of its time is the round trip and Envoy building the answer, which cost no
        memory here), and only receiving it waits for room.
        """
        held = []

        def admit() -> None:
            if held:
                return
            if not self.large_answers.acquire(timeout=max(0.0, self._remaining())):
                raise ExecError("pod time budget spent waiting for room for a config_dump answer", timed_out=True)
            held.append(True)

        try:
            yield admit
        finally:
            if held:
                self.large_answers.release()

    def _shown(self, argv: Argv) -> str:
        command = CURL_FALLBACK.get(argv, argv) if self.use_curl else argv
        return command[0]

    # --- readiness ----------------------------------------------------------------------------------

    def _read_readiness(self) -> None:
        verdict = self._readiness(READY, HEALTH_PORT)
        if verdict is not None and verdict.status is None:
            behind = self._readiness(READY_AGENT, AGENT_PORT)
            if behind is not None and behind.status is not None:
                verdict = behind
            elif behind is not None:
                verdict = Readiness(ready=False, port=HEALTH_PORT, status=None,
                                    detail=f"connection refused on {HEALTH_PORT} and {AGENT_PORT}")
        if verdict is not None:
            self.reading.fields["readiness"] = verdict

    def _readiness(self, argv: Argv, port: int) -> Readiness | None:
        output = self._run(argv)
        curl = self.use_curl
        if curl:
            if output.exit_code == CURL_CONNECTION_REFUSED:
                return Readiness(ready=False, port=port, status=None, detail="connection refused")
            if output.exit_code != 0:
                self.reading.gap("readiness", _failure("curl", output))
                return None
            body, _, code = output.stdout.decode("utf-8", "replace").rpartition("\n")
            if not code.strip().isdigit():
                self.reading.gap("readiness", f"curl printed no status code: {code[:80]!r}")
                return None
            status = int(code)
            return Readiness(ready=200 <= status < 300, port=port, status=status, detail=_trim(body))
        text = (output.stderr + b"\n" + output.stdout).decode("utf-8", "replace")
        if output.exit_code == 0:
            return Readiness(ready=True, port=port, status=200, detail=_trim(output.stdout.decode("utf-8", "replace")))
        if match := _UNSUCCESSFUL.search(text):
            return Readiness(ready=False, port=port, status=int(match.group(1)), detail=_trim(match.group(2)))
        if _REFUSED.search(text):
            return Readiness(ready=False, port=port, status=None, detail="connection refused")
        self.reading.gap("readiness", _failure("pilot-agent", output))
        return None

    def _read_log(self, since_seconds: int | None, request_timeout: float) -> None:
        with self.in_flight:  # checked in the slot: a refusal another pod's read met is known by then
            raw = self._fetch_log(since_seconds, request_timeout)
        if raw is None:
            return
        try:
            self.reading.fields["access_log"] = summarize_access_log(raw)
        except ParseError as exc:
            self.reading.gap("access log", str(exc))
        self.reading.fields["xds_log"] = summarize_xds_log(raw)  # lenient decoding: never fails
        self._read_failing_upstreams()

    def _fetch_log(self, since_seconds: int | None, request_timeout: float) -> bytes | None:
        """The istio-proxy log's newest window, or None (refused, failed: said in the reading)."""
        remaining = self._remaining()
        if self.cancellation.cancelled:
            return None
        if not self.log_allowed():
            self.reading.log_refused = True
            return None
        if remaining <= 0:
            self.reading.gap("access log", "pod time budget spent before the istio-proxy log was read")
            return None
        query: list[tuple[str, object]] = [("container", SIDECAR)]
        if since_seconds:
            query.append(("sinceSeconds", since_seconds))
        query.append(("limitBytes", LOG_LIMIT_BYTES))
        path = f"/api/v1/namespaces/{quote(self.namespace, safe='')}/pods/{quote(self.name, safe='')}/log"
        try:
            response = get_raw(self._client(), path, query, min(remaining, request_timeout))
            raw = response.data
            response.release_conn()
        except ApiException as exc:
            if exc.status in (401, 403):
                self.reading.log_refused = True  # said once for the whole sweep, not once per pod
                self.on_log_refused()
                return None
            self.reading.gap("access log", f"API server answered {exc.status}: {one_line(exc.reason)}")
            return None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            self.reading.gap("access log", f"cannot read the istio-proxy log: {one_line(exc)}")
            return None
        return raw


def submit_interleaved(pool: concurrent.futures.Executor, readers: list[PodReader], log_since_seconds: int | None,
                       request_timeout: float, group: int = 1) -> None:
    """Submit the tasks of ``readers``, ``group`` pods at a time, one request of each pod per round.

    Why: a pod's Envoy answers admin requests on its one main thread, so its requests sent all at once
    wait behind each other there (a config_dump part of 1500 clusters takes it ~0.25 s), each holding a
    slot of the pool meanwhile. Within a group of pods every round holds one request of each pod, so a
    pod's requests reach its Envoy spread out. The config parts alternate with light requests and each
    pod starts at a different one (rotated), so every round mixes light and heavy answers and the
    decoding is spread over the sweep.
    server_info stays first and the log last: config parts and follow-ups may wait for server_info.
    Groups keep each pod's requests close in time, so its time budget is not spent waiting for others.
    """
    for start in range(0, len(readers), max(1, group)):
        members = readers[start:start + max(1, group)]
        prepared = []
        for offset, reader in enumerate(members):
            tasks = reader._prepare(log_since_seconds, request_timeout)
            first = [t for t in tasks if t[0] == "server_info"]
            last = tasks[-1:]
            heavy = [t for t in tasks[:-1] if t[0] == "config_dump"]
            light = [t for t in tasks[:-1] if t[0] not in ("server_info", "config_dump")]
            middle = [t for pair in itertools.zip_longest(heavy, light) for t in pair if t is not None]
            turn = offset % max(1, len(middle))
            prepared.append(first + middle[turn:] + middle[:turn] + last)
        for requests in itertools.zip_longest(*prepared):
            for reader, request in zip(members, requests):
                if request is not None:
                    reader._submit_task(pool, *request)


class _SharedValues:
    """Keeps one copy of equal reduced evidence, however many pods hold it.

    The pods of a namespace mostly see the same mesh, so their reduced config_dumps repeat the same
    thousand clusters and routes; stored once, a sweep's memory stays flat as the pod count grows.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Keyed by plain tuples, which hash in C: a part holds ~1500 clusters, a pod as many targets.
        self._clusters: dict[tuple[str, str, str], ClusterSummary] = {}
        self._target_keys: dict[tuple[str, str, str], tuple[str, str, str]] = {}  # a part's targets
        self._targets: dict[tuple[str, str, str], RouteTarget] = {}

    def _cluster(self, cluster: ClusterSummary) -> ClusterSummary:  # under self._lock
        return self._clusters.setdefault((cluster.name, cluster.discovery, cluster.tls), cluster)

    def part(self, part: PartialConfig) -> PartialConfig:
        """One config_dump part's clusters and route targets, shared with the pods that hold them too.

        A sweep asks a group of pods one request each per round, so each pod's parts wait for its
        others far longer than when a pod's requests went out together: unshared, 32 pods' parts of
        1500 clusters each held the plugin ~40 MB above its peak (bench, 60 pods).
        """
        with self._lock:
            keys = self._target_keys
            part.clusters = {name: self._cluster(c) for name, c in part.clusters.items()}
            part.targets = dict.fromkeys(keys.setdefault(t, t) for t in part.targets)
        return part

    def config(self, merged: PartialConfig) -> ProxyConfig:
        """The ProxyConfig of parts already shared (``part``): its route targets are shared as made."""
        targets, lock = self._targets, self._lock

        def target(t: tuple[str, str, str]) -> RouteTarget:
            found = targets.get(t)
            if found is None:
                with lock:
                    found = targets.setdefault(t, RouteTarget(route_config=t[0], virtual_host=t[1], cluster=t[2]))
            return found

        return merged.config(target)

    def __call__(self, value: Any) -> Any:
        """A whole dump's ProxyConfig, its clusters and route targets shared like the parts'."""
        if not isinstance(value, ProxyConfig):
            return value
        with self._lock:
            clusters = tuple(self._cluster(c) for c in value.clusters)
            targets = tuple(self._targets.setdefault((t.route_config, t.virtual_host, t.cluster), t)
                            for t in value.route_targets)
        return replace(value, clusters=clusters, route_targets=targets)


_shared = _SharedValues()


def _failure(tool: str, output: ExecOutput) -> str:
    detail = (output.stderr or output.stdout).decode("utf-8", "replace")
    lines = [line for line in detail.splitlines() if line.strip()]
    first = next((line for line in lines if line.startswith("Error:")), lines[-1] if lines else "")
    if output.exit_code in MISSING_EXIT_CODES:
        return f"{tool} is not in the istio-proxy image (exit {output.exit_code})"
    return f"{tool} failed (exit {output.exit_code})" + (f": {_trim(first)}" if first else "")


def _trim(text: str, limit: int = 300) -> str:
    text = one_line(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"

