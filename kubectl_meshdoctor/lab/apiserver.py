"""A local HTTPS server that speaks enough of the real Kubernetes API for kubectl and the Python client.

There is no kube-apiserver on the machines the lab runs on, and fakes that patch the client in-process
prove nothing about the wire: the plugin must be tested through the official client, its kubeconfig
handling, TLS, discovery, pagination, selectors, error Status objects and exec over WebSocket, exactly
as it meets a real cluster. This server is that cluster: a read-only snapshot held in an `ObjectStore`,
exec and logs delegated to handlers (the lab wires them to real Envoy sidecars), and an `AccessPolicy`
to play the degraded clusters users have (no exec rights, no access to Secrets, no Istio CRDs, slow
kubelets). Every request is recorded so a test can prove the plugin never mutates anything.

Decisions worth knowing:
- Mutating verbs (POST/PUT/PATCH/DELETE) answer 405 MethodNotAllowed, recorded as create/update/patch/
  delete. Discovery advertises only get/list/watch.
- `watch=true` answers 405: a finite watch stream would make the Python client's `Watch.stream`
  reconnect forever, and the plugin never watches.
- exec is served over WebSocket only (v5.channel.k8s.io, v4.channel.k8s.io). kubectl falls back to
  SPDY (POST with `Upgrade: SPDY/3.1`) when the WebSocket upgrade is refused; that POST gets the same
  404/403/400 Status as the refused upgrade, or a 400 Status naming the missing WebSocket otherwise, so
  kubectl prints `unable to upgrade connection: <message>`.
- Aggregated discovery (`Accept: ...;as=APIGroupDiscoveryList`) is answered in the legacy format with a
  plain `application/json` content type; kubectl then falls back to legacy discovery by itself.
- Lists are ordered by namespace then name, like etcd keys; `continue` tokens are opaque and
  `remainingItemCount` is set only when no selector is used (as kube-apiserver does).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import copy
import json
import logging
import secrets
import ssl
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable

import trustme
from aiohttp import WSCloseCode, WSMsgType, web

from .apiresources import (
    ISTIO_GROUPS,
    ResourceType,
    api_group,
    api_group_list,
    api_resource_list,
    served_types,
)
from .kubeconfig import LAB_USER, kubeconfig_document, write_kubeconfig
from .selectors import SelectorError, fields_match, labels_match, parse_field_selector, parse_label_selector
from .tables import table, wants_table

log = logging.getLogger(__name__)

KUBERNETES_VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0-meshdoctor-lab",
                      "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
                      "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23.0", "compiler": "gc",
                      "platform": "linux/amd64"}

EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
# Frame size for exec output: big enough to keep per-frame overhead small, small enough that one
# stream never holds the event loop for long while 60 others are waiting.
EXEC_CHUNK = 64 * 1024
STDOUT_CHANNEL, STDERR_CHANNEL, STATUS_CHANNEL = 1, 2, 3
_MUTATING_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: bytes = b""
    stderr: bytes = b""


ExecHandler = Callable[[str, str, str, list[str]], Awaitable[ExecResult]]
LogHandler = Callable[[str, str, str, "int | None", "int | None"], Awaitable[str]]


@dataclass
class AccessPolicy:
    """What the lab cluster refuses or slows down; the default allows every read at full speed."""

    forbid_exec: bool = False
    # Names as RBAC writes them: "secrets", "pods/exec", "pods/log", or "destinationrules.networking.istio.io".
    forbidden_resources: set[str] = field(default_factory=set)
    unauthorized: bool = False
    exec_latency: float = 0.0
    hang_exec: set[tuple[str, str]] = field(default_factory=set)
    forbid_exec_in: set[str] = field(default_factory=set)  # namespaces where pods/exec is refused


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    verb: str  # get/list/watch/exec/log/create/update/patch/delete/discovery
    accept: str = ""  # the Accept header: a metadata-only read says so (as=PartialObjectMetadata)


def wants_metadata_only(accept: str) -> bool:
    return any("as=PartialObjectMetadata" in part and "g=meta.k8s.io" in part for part in accept.split(","))


def _now_timestamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class ObjectStore:
    """The cluster's objects, as plain dicts exactly as the API returns them.

    Thread-safe: the lab adds objects from test threads while the server reads them on its own loop.
    A namespaced object whose Namespace was never added gets a bare Namespace, because a real cluster
    cannot hold one without the other.
    """

    def __init__(self, objects: Iterable[dict] = (), *, istio_installed: bool = True):
        self.istio_installed = istio_installed
        self.types = served_types(istio_installed)
        self._by_kind = {(t.group, t.kind): t for t in self.types}
        self._by_plural = {(t.group, t.plural): t for t in self.types}
        self._items: dict[ResourceType, dict[tuple[str, str], dict]] = {t: {} for t in self.types}
        self._lock = threading.Lock()
        self._revision = 1
        for obj in objects:
            self.add(obj)

    @property
    def resource_version(self) -> str:
        return str(self._revision)

    def _type_of(self, obj: dict) -> ResourceType:
        api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
        group, _, version = api_version.rpartition("/")
        resource = self._by_kind.get((group, kind))
        if resource is None:
            if group in ISTIO_GROUPS and not self.istio_installed:
                raise ValueError(f"cannot add {kind} {api_version}: this store has no Istio CRDs installed")
            raise ValueError(f"the lab does not serve kind {kind!r} in {api_version!r}")
        if version not in resource.versions:
            raise ValueError(f"{kind} is not served in version {version!r} (served: {resource.versions})")
        return resource

    def add(self, obj: dict) -> None:
        """Store a copy of `obj` (replacing one with the same name), filling server-set metadata."""
        resource = self._type_of(obj)
        stored = copy.deepcopy(obj)
        metadata = stored.setdefault("metadata", {})
        if not metadata.get("name"):
            raise ValueError(f"{resource.kind} without metadata.name")
        if resource.namespaced:
            metadata.setdefault("namespace", "default")
        else:
            metadata.pop("namespace", None)
        metadata.setdefault("uid", str(uuid.uuid4()))
        metadata.setdefault("creationTimestamp", _now_timestamp())
        with self._lock:
            self._revision += 1
            metadata.setdefault("resourceVersion", str(self._revision))
            self._items[resource][(metadata.get("namespace", ""), metadata["name"])] = stored
            if resource.namespaced:
                self._ensure_namespace(metadata["namespace"])

    def _ensure_namespace(self, name: str) -> None:
        namespaces = self._items[self._by_kind[("", "Namespace")]]
        if ("", name) not in namespaces:
            self._revision += 1
            namespaces[("", name)] = {
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": name, "uid": str(uuid.uuid4()), "resourceVersion": str(self._revision),
                             "creationTimestamp": _now_timestamp(),
                             "labels": {"kubernetes.io/metadata.name": name}},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            }

    def remove(self, kind: str, name: str, namespace: str | None = None, *, group: str = "") -> bool:
        resource = self._by_kind.get((group, kind))
        if resource is None:
            return False
        key = ((namespace or "default") if resource.namespaced else "", name)
        with self._lock:
            self._revision += 1
            return self._items[resource].pop(key, None) is not None

    def objects(self) -> list[dict]:
        with self._lock:
            return [obj for items in self._items.values() for obj in items.values()]

    def find(self, kind: str, name: str, namespace: str | None = None, *, group: str = "") -> dict | None:
        resource = self._by_kind.get((group, kind))
        if resource is None:
            return None
        return self.get(resource, namespace or "default", name)

    def resource_type(self, group: str, version: str, plural: str) -> ResourceType | None:
        resource = self._by_plural.get((group, plural))
        if resource is None or version not in resource.versions:
            return None
        return resource

    def get(self, resource: ResourceType, namespace: str | None, name: str) -> dict | None:
        key = ((namespace or "") if resource.namespaced else "", name)
        with self._lock:
            return self._items[resource].get(key)

    def list(self, resource: ResourceType, namespace: str | None) -> tuple[list[tuple[str, str]], list[dict], str]:
        """Keys and objects ordered by (namespace, name), and the revision they were read at."""
        with self._lock:
            entries = sorted(self._items[resource].items(), key=lambda entry: entry[0])
            revision = self.resource_version
        if namespace is not None:
            entries = [entry for entry in entries if entry[0][0] == namespace]
        return [key for key, _ in entries], [obj for _, obj in entries], revision


@dataclass(frozen=True)
class _Route:
    verb: str
    endpoint: str  # "discovery", "resource", "notfound"
    discovery: str = ""  # "version", "api", "apis", "group", "resources"
    group: str = ""
    version: str = ""
    resource: ResourceType | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None


def _status(code: int, reason: str, message: str, details: dict | None = None) -> web.Response:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": message, "reason": reason, "code": code}
    if details:
        body["details"] = details
    return web.json_response(body, status=code)


def _json(body: dict) -> web.Response:
    return web.Response(body=json.dumps(body, separators=(",", ":")).encode(), content_type="application/json")


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


def _with_api_version(obj: dict, api_version: str) -> dict:
    if obj.get("apiVersion") == api_version:
        return obj
    return {**obj, "apiVersion": api_version}


def _encode_continue(after: tuple[str, str], revision: str) -> str:
    raw = json.dumps({"v": 1, "rv": revision, "after": list(after)}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[str, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        namespace, name = data["after"]
        return str(namespace), str(name)
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise ValueError("continue key is not valid") from exc


class KubeApiServer:
    """The lab's Kubernetes API server; see the module docstring for what it serves and refuses."""

    def __init__(self, store: ObjectStore, exec_handler: ExecHandler | None = None,
                 log_handler: LogHandler | None = None, policy: AccessPolicy | None = None,
                 host: str = "127.0.0.1", port: int = 0):
        self.store = store
        self.exec_handler = exec_handler
        self.log_handler = log_handler
        self.policy = policy or AccessPolicy()
        self.host = host
        self.port = port
        self.token = secrets.token_urlsafe(32)
        self.user = LAB_USER
        self.requests: list[RecordedRequest] = []
        self._ca = trustme.CA()
        self._server_cert = self._ca.issue_cert("127.0.0.1", "localhost")
        # Client certificates signed by this CA authenticate like the token (kubeconfig
        # client-certificate-data), as kube-apiserver's --client-ca-file does.
        self._client_ca = trustme.CA()
        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def ca_pem(self) -> bytes:
        return self._ca.cert_pem.bytes()

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("the lab API server is already running")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server_cert.configure_cert(context)
        context.verify_mode = ssl.CERT_OPTIONAL  # a token alone still works: no certificate is required
        context.load_verify_locations(cadata=self._client_ca.cert_pem.bytes().decode("ascii"))
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, ssl_context=context, backlog=256)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        sockets = site._server.sockets if site._server is not None else []  # type: ignore[union-attr]
        self.port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        for ws in list(self._sockets):
            try:
                await asyncio.wait_for(ws.close(code=WSCloseCode.GOING_AWAY), timeout=1.0)
            except Exception:  # noqa: BLE001 - the peer may already be gone; we are shutting down anyway
                pass
        await runner.cleanup()

    def issue_client_certificate(self, user: str = LAB_USER) -> trustme.LeafCert:
        """A client certificate (and key) this server accepts instead of the bearer token."""
        return self._client_ca.issue_cert(f"{user}@meshdoctor.lab", common_name=user)

    def kubeconfig(self, namespace: str | None = None, context: str = "meshdoctor-lab") -> dict:
        return kubeconfig_document(self.url, self.ca_pem, self.token, context=context, namespace=namespace)

    def write_kubeconfig(self, path: str | Path, namespace: str | None = None,
                         context: str = "meshdoctor-lab") -> Path:
        return write_kubeconfig(path, self.kubeconfig(namespace=namespace, context=context))

    # -- routing ---------------------------------------------------------------------------------

    def _route(self, method: str, path: str, query: Any) -> _Route:
        default_verb = _MUTATING_VERBS.get(method, "get")
        parts = [part for part in path.split("/") if part]
        if parts == ["version"]:
            return _Route("discovery", "discovery", "version")
        if parts == ["api"]:
            return _Route("discovery", "discovery", "api")
        if parts == ["apis"]:
            return _Route("discovery", "discovery", "apis")
        if len(parts) >= 2 and parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif len(parts) == 2 and parts[0] == "apis":
            return _Route("discovery", "discovery", "group", group=parts[1])
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return _Route(default_verb, "notfound")
        if not rest:
            return _Route("discovery", "discovery", "resources", group=group, version=version)

        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            candidate = self.store.resource_type(group, version, rest[2])
            if candidate is not None and candidate.namespaced:
                namespace, rest = rest[1], rest[2:]
        resource = self.store.resource_type(group, version, rest[0])
        if resource is None or len(rest) > 3:
            return _Route(default_verb, "notfound")
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else None
        if name is not None and resource.namespaced and namespace is None:
            return _Route(default_verb, "notfound")
        if subresource is not None and subresource not in resource.subresources:
            return _Route(default_verb, "notfound")
        if subresource == "exec" and method in ("GET", "POST"):
            verb = "exec"
        elif method != "GET":
            verb = default_verb
        elif subresource == "log":
            verb = "log"
        elif name is None:
            verb = "watch" if _truthy(query.get("watch")) else "list"
        else:
            verb = "get"
        return _Route(verb, "resource", group=group, version=version, resource=resource,
                      namespace=namespace, name=name, subresource=subresource)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        route = self._route(request.method, request.path, request.query)
        self.requests.append(RecordedRequest(request.method, request.path, request.query_string, route.verb,
                                             request.headers.get("Accept", "")))
        if self.policy.unauthorized or not self._authenticated(request):
            return _status(401, "Unauthorized", "Unauthorized")
        if route.endpoint == "notfound":
            return _status(404, "NotFound", "the server could not find the requested resource")
        if route.endpoint == "discovery":
            if request.method != "GET":
                return self._method_not_allowed()
            return self._discovery(route)
        if route.verb in ("create", "update", "patch", "delete"):
            return self._method_not_allowed()
        if refusal := self._forbidden(route):
            return refusal
        if route.verb == "watch":
            return _status(405, "MethodNotAllowed",
                           "watch is not served by the meshdoctor lab: it serves a read-only snapshot")
        if route.verb == "list":
            return self._list(route, request)
        if route.verb == "log":
            return await self._log(route, request)
        if route.verb == "exec":
            return await self._exec(route, request)
        return self._get(route, request)

    def _authenticated(self, request: web.Request) -> bool:
        tls = request.transport.get_extra_info("ssl_object") if request.transport is not None else None
        if tls is not None and tls.getpeercert():  # non-empty only for a certificate the client CA verified
            return True
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and secrets.compare_digest(token.strip().encode(), self.token.encode())

    @staticmethod
    def _method_not_allowed() -> web.Response:
        return _status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    # -- discovery -------------------------------------------------------------------------------

    def _discovery(self, route: _Route) -> web.Response:
        types = self.store.types
        if route.discovery == "version":
            return _json(KUBERNETES_VERSION)
        if route.discovery == "api":
            return _json({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self.host}:{self.port}"}]})
        if route.discovery == "apis":
            return _json(api_group_list(types))
        if route.discovery == "group":
            body = api_group(types, route.group)
        else:
            body = api_resource_list(types, route.group, route.version)
        if body is None:
            return _status(404, "NotFound", "the server could not find the requested resource")
        return _json(body)

    # -- reads -----------------------------------------------------------------------------------

    def _forbidden(self, route: _Route) -> web.Response | None:
        resource = route.resource
        assert resource is not None
        rbac_resource = resource.plural + (f"/{route.subresource}" if route.subresource in ("exec", "log") else "")
        denied = self.policy.forbidden_resources
        names = {rbac_resource, resource.plural, resource.qualified_name}
        if route.subresource in ("exec", "log"):
            names = {rbac_resource, f"{resource.qualified_name}/{route.subresource}"}
        exec_refused = route.verb == "exec" and (self.policy.forbid_exec or route.namespace in self.policy.forbid_exec_in)
        if not (names & denied or exec_refused):
            return None
        rbac_verb = {"exec": "create", "log": "get"}.get(route.verb, route.verb)
        subject = resource.qualified_name + (f' "{route.name}"' if route.name else "")
        scope = f'in the namespace "{route.namespace}"' if route.namespace is not None else "at the cluster scope"
        message = (f'{subject} is forbidden: User "{self.user}" cannot {rbac_verb} resource "{rbac_resource}" '
                   f'in API group "{resource.group}" {scope}')
        details: dict[str, Any] = {"group": resource.group, "kind": resource.plural}
        if route.name:
            details["name"] = route.name
        return _status(403, "Forbidden", message, details)

    def _not_found(self, resource: ResourceType, name: str) -> web.Response:
        return _status(404, "NotFound", f'{resource.qualified_name} "{name}" not found',
                       {"name": name, "group": resource.group, "kind": resource.plural})

    def _get(self, route: _Route, request: web.Request) -> web.Response:
        resource = route.resource
        assert resource is not None and route.name is not None
        obj = self.store.get(resource, route.namespace, route.name)
        if obj is None:
            return self._not_found(resource, route.name)
        obj = _with_api_version(obj, resource.api_version(route.version))
        if wants_table(request.headers.get("Accept", "")):
            return _json(table(resource.kind, [obj]))
        if wants_metadata_only(request.headers.get("Accept", "")):
            # The real server's metadata-only answer: no data, no spec, no status (for Secrets too).
            return _json({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                          "metadata": obj.get("metadata") or {}})
        return _json(obj)

    def _list(self, route: _Route, request: web.Request) -> web.Response:
        resource = route.resource
        assert resource is not None
        query = request.query
        try:
            label_requirements = parse_label_selector(query.get("labelSelector", ""))
            field_requirements = parse_field_selector(query.get("fieldSelector", ""), resource.kind)
            limit = int(query.get("limit") or 0)
            if limit < 0:
                raise ValueError("limit must not be negative")
            after = _decode_continue(query["continue"]) if query.get("continue") else None
        except (SelectorError, ValueError) as exc:
            return _status(400, "BadRequest", str(exc))
        keys, objects, revision = self.store.list(resource, route.namespace)
        start = bisect.bisect_right(keys, after) if after is not None else 0
        selected = bool(label_requirements or field_requirements)
        api_version = resource.api_version(route.version)
        items: list[dict] = []
        position = start
        last_key: tuple[str, str] | None = None
        while position < len(objects) and (limit == 0 or len(items) < limit):
            obj = objects[position]
            if labels_match(label_requirements, obj.get("metadata", {}).get("labels")) and \
                    fields_match(field_requirements, obj):
                items.append(_with_api_version(obj, api_version))
                last_key = keys[position]
            position += 1
        metadata: dict[str, Any] = {"resourceVersion": revision}
        # A full page with objects left to scan gets a token, even if none of them will match: with a
        # selector the real server cannot know without reading them, so it gives no count either.
        if limit and len(items) == limit and position < len(objects) and last_key is not None:
            metadata["continue"] = _encode_continue(last_key, revision)
            if not selected:
                metadata["remainingItemCount"] = len(objects) - position
        if wants_table(request.headers.get("Accept", "")):
            return _json(table(resource.kind, items, metadata))
        return _json({"kind": f"{resource.kind}List", "apiVersion": api_version, "metadata": metadata,
                      "items": items})

    # -- pods/log and pods/exec ------------------------------------------------------------------

    def _pod_container(self, route: _Route, container: str | None) -> tuple[dict | None, str | web.Response]:
        """The pod and the container a log or exec addresses, or the Status the real API answers."""
        resource = route.resource
        assert resource is not None and route.name is not None
        pod = self.store.get(resource, route.namespace, route.name)
        if pod is None:
            return None, self._not_found(resource, route.name)
        spec = pod.get("spec", {})
        containers = [c.get("name") for c in spec.get("containers", [])]
        every_container = containers + [c.get("name") for key in ("initContainers", "ephemeralContainers")
                                         for c in spec.get(key, [])]
        if not container:
            if len(containers) != 1:
                return pod, _status(400, "BadRequest", f"a container name must be specified for pod "
                                                       f"{route.name}, choose one of: [{' '.join(containers)}]")
            container = containers[0]
        if container not in every_container:
            return pod, _status(400, "BadRequest", f"container {container} is not valid for pod {route.name}")
        return pod, container

    async def _log(self, route: _Route, request: web.Request) -> web.Response:
        pod, container = self._pod_container(route, request.query.get("container"))
        if isinstance(container, web.Response):
            return container
        try:
            since_seconds = int(request.query["sinceSeconds"]) if request.query.get("sinceSeconds") else None
            tail_lines = int(request.query["tailLines"]) if request.query.get("tailLines") else None
        except ValueError as exc:
            return _status(400, "BadRequest", f"invalid log options: {exc}")
        if self.log_handler is None:
            text = ""
        else:
            try:
                text = await self.log_handler(route.namespace or "", route.name or "", container,
                                              since_seconds, tail_lines)
            except Exception as exc:  # noqa: BLE001 - a broken handler is a server error, as in kubelet
                log.exception("lab log handler failed")
                return _status(500, "InternalError", f"log handler failed: {exc}")
        return web.Response(text=text, content_type="text/plain")

    async def _exec(self, route: _Route, request: web.Request) -> web.StreamResponse:
        query = request.query
        pod, container = self._pod_container(route, query.get("container"))
        if isinstance(container, web.Response):
            return container
        assert pod is not None
        command = query.getall("command", [])
        if not command:
            return _status(400, "BadRequest", "you must specify at least 1 command")
        want_stdout, want_stderr, tty = _truthy(query.get("stdout")), _truthy(query.get("stderr")), _truthy(
            query.get("tty"))
        if not (want_stdout or want_stderr or _truthy(query.get("stdin"))):
            return _status(400, "BadRequest", "you must specify at least one of stdin, stdout, stderr")
        phase = pod.get("status", {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            return _status(400, "BadRequest",
                           f"cannot exec into a container in a completed pod; current phase is {phase}")
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return _status(400, "BadRequest",
                           "the meshdoctor lab serves pods/exec over WebSocket only "
                           f"({', '.join(EXEC_PROTOCOLS)}); SPDY is not supported")

        ws = web.WebSocketResponse(protocols=EXEC_PROTOCOLS, compress=False, autoping=True, heartbeat=None,
                                   timeout=5.0)
        await ws.prepare(request)
        self._sockets.add(ws)
        client_reader = asyncio.create_task(self._drain_client(ws))
        try:
            if (route.namespace, route.name) in self.policy.hang_exec:
                await client_reader  # never answers; ends when the client gives up or the server stops
                return ws
            if self.policy.exec_latency > 0:
                await asyncio.sleep(self.policy.exec_latency)
            status = await self._run_exec(route, container, command, ws, want_stdout, want_stderr, tty)
            await ws.send_bytes(bytes([STATUS_CHANNEL]) + json.dumps(status).encode())
            await ws.close()
        except (ConnectionError, RuntimeError) as exc:
            log.debug("exec stream to %s/%s ended early: %s", route.namespace, route.name, exc)
        finally:
            client_reader.cancel()
            self._sockets.discard(ws)
        return ws

    async def _run_exec(self, route: _Route, container: str, command: list[str], ws: web.WebSocketResponse,
                        want_stdout: bool, want_stderr: bool, tty: bool) -> dict:
        if self.exec_handler is None:
            result = ExecResult(127, stderr=f'exec: "{command[0]}": executable file not found in $PATH\n'.encode())
        else:
            try:
                result = await self.exec_handler(route.namespace or "", route.name or "", container, list(command))
            except Exception as exc:  # noqa: BLE001 - reported to the client like a kubelet internal error
                log.exception("lab exec handler failed")
                return {"metadata": {}, "status": "Failure", "message": f"exec handler failed: {exc}",
                        "reason": "InternalError", "code": 500}
        if want_stdout:
            await self._send_channel(ws, STDOUT_CHANNEL, result.stdout)
        if want_stderr or (tty and want_stdout):
            # With a TTY there is no separate stderr: the terminal carries both.
            await self._send_channel(ws, STDOUT_CHANNEL if tty else STDERR_CHANNEL, result.stderr)
        if result.exit_code == 0:
            return {"metadata": {}, "status": "Success"}
        return {
            "metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command {command}, "
                       f"exit code {result.exit_code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(result.exit_code)}]},
        }

    @staticmethod
    async def _send_channel(ws: web.WebSocketResponse, channel: int, data: bytes) -> None:
        prefix = bytes([channel])
        view = memoryview(data)
        for offset in range(0, len(view), EXEC_CHUNK):
            await ws.send_bytes(prefix + view[offset:offset + EXEC_CHUNK])

    @staticmethod
    async def _drain_client(ws: web.WebSocketResponse) -> None:
        """Read (and drop) what the client sends: stdin, resize and v5 close signals; answers pings."""
        async for message in ws:
            if message.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                break


class KubeApiServerThread:
    """Runs a `KubeApiServer` on its own event loop in a daemon thread, for synchronous code and tests.

    The factory is called on the server's loop, so everything it creates (handlers, Envoy processes
    driven by asyncio) belongs to that loop; `call` runs more coroutines there.
    """

    def __init__(self, server_factory: Callable[[], KubeApiServer], *, start_timeout: float = 30.0):
        self._factory = server_factory
        self._start_timeout = start_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: KubeApiServer | None = None

    @property
    def server(self) -> KubeApiServer:
        if self._server is None:
            raise RuntimeError("the lab API server thread is not running")
        return self._server

    @property
    def url(self) -> str:
        return self.server.url

    def call(self, coro_fn: Callable[..., Awaitable[Any]], *args: Any, timeout: float | None = None) -> Any:
        if self._loop is None:
            raise RuntimeError("the lab API server thread is not running")
        return asyncio.run_coroutine_threadsafe(coro_fn(*args), self._loop).result(timeout)

    def start(self) -> KubeApiServerThread:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="meshdoctor-lab-apiserver", daemon=True)
        self._thread.start()

        async def create_and_start() -> KubeApiServer:
            server = self._factory()
            await server.start()
            return server

        try:
            self._server = self.call(create_and_start, timeout=self._start_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            if self._server is not None:
                asyncio.run_coroutine_threadsafe(self._server.stop(), loop).result(15)
        finally:
            self._server = None

            async def cancel_leftovers() -> None:
                tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

            try:
                asyncio.run_coroutine_threadsafe(cancel_leftovers(), loop).result(10)
            except Exception:  # noqa: BLE001 - best effort: the loop is being torn down
                pass
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            if not thread.is_alive():
                loop.close()
            self._loop = self._thread = None

    def __enter__(self) -> KubeApiServerThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
