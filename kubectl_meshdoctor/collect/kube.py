"""The Kubernetes client: built from a kubeconfig, never from global state, and its errors made ours.

The official client reads ``$KUBECONFIG`` once at import and keeps a process-wide default
configuration; a tool run from tests, or against two clusters, must not depend on either. So the
kubeconfig is located and checked here (with one-line reasons a user can act on), and every caller
gets ``ApiClient`` objects built from one explicit ``Configuration``. Sweep workers each get a client
(a connection pool) of their own, hence ``new_api_client``. Reads go through ``get_raw``, not the
generated API classes (see there why).

Library exceptions stop here: ``api_call`` turns ApiException and urllib3 errors into UsageError or
ClusterError that say which server refused what.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import ssl
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import urllib3.exceptions
import yaml
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.config.kube_config import ENV_KUBECONFIG_PATH_SEPARATOR, load_kube_config

from kubectl_meshdoctor.collect import ClusterOptions
from kubectl_meshdoctor.errors import ClusterError, UsageError

DEFAULT_KUBECONFIG = "~/.kube/config"
DEFAULT_REQUEST_TIMEOUT = 30.0  # seconds, for each API call when the user gave none


class AccessRefused(ClusterError):
    """401/403 on one API call: fatal where the scope needs it, a gap where the evidence is auxiliary."""


@dataclass(frozen=True)
class KubeTarget:
    """What the kubeconfig resolved to: which files, which context, which server, which namespace."""

    paths: tuple[str, ...]
    context: str
    server: str
    namespace: str  # the context's namespace, else "default"


class Kube:
    """One cluster connection: an ApiClient for API calls and a factory for exec clients."""

    def __init__(self, target: KubeTarget, configuration: k8s.Configuration, request_timeout: float):
        self.target = target
        self.configuration = configuration
        self.request_timeout = request_timeout
        self.api_client = k8s.ApiClient(configuration)

    def get(self, path: str, query: list[tuple[str, object]] | None = None,
            accept: str = "application/json") -> urllib3.BaseHTTPResponse:
        return get_raw(self.api_client, path, query, self.request_timeout, accept)

    @property
    def server(self) -> str:
        return self.target.server

    def new_api_client(self) -> k8s.ApiClient:
        """A client (connection pool) of its own for a worker thread."""
        return k8s.ApiClient(self.configuration)

    def close(self) -> None:
        self.api_client.close()


def get_raw(api_client: k8s.ApiClient, path: str, query: list[tuple[str, object]] | None,
            timeout: float, accept: str = "application/json") -> urllib3.BaseHTTPResponse:
    """GET ``path`` (already quoted) as JSON; the raw response, or ApiException for a non-2xx answer.

    The tool only reads raw JSON, so it asks through the ApiClient's own request path (auth,
    exec-plugin token refresh, TLS, proxy) instead of the generated API classes: importing
    CoreV1Api and its siblings builds pydantic validators for hundreds of methods (~1.5 s of CPU per
    run, measured), and each call validated its arguments again.
    """
    request = api_client.param_serialize(method="GET", resource_path=path, query_params=query or [],
                                         header_params={"Accept": accept},
                                         auth_settings=["BearerToken"])
    response = api_client.call_api(*request, _request_timeout=timeout)
    if not 200 <= response.status <= 299:
        response.read()
        raise ApiException.from_response(http_resp=response, body=None, data=None)
    return response.response


def connect(options: ClusterOptions) -> Kube:
    """Build the client for ``options``; a broken kubeconfig raises UsageError (exit 2)."""
    paths = kubeconfig_paths(options.kubeconfig)
    target = resolve_target(paths, options.context)
    configuration = k8s.Configuration()
    plugin_errors = _LoggedErrors()
    root_logger = logging.getLogger()
    root_logger.addHandler(plugin_errors)
    try:
        # persist_config=False: the tool never writes to the user's kubeconfig (token refreshes included).
        load_kube_config(config_file=ENV_KUBECONFIG_PATH_SEPARATOR.join(paths), context=target.context,
                         client_configuration=configuration, persist_config=False)
    except ConfigException as exc:
        raise UsageError(f"kubeconfig: {one_line(exc)}") from None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        # Certificate files that do not exist, an exec credential plugin that fails, malformed fields.
        raise UsageError(f"kubeconfig: cannot load context {target.context!r}: {one_line(exc)}") from None
    finally:
        root_logger.removeHandler(plugin_errors)
    if plugin_errors.messages:
        raise UsageError(f"kubeconfig: the credential plugin of context {target.context!r} failed: "
                         f"{one_line(plugin_errors.messages[0])}")
    timeout = options.request_timeout if options.request_timeout and options.request_timeout > 0 \
        else DEFAULT_REQUEST_TIMEOUT
    server = configuration.host or target.server
    return Kube(KubeTarget(target.paths, target.context, server, target.namespace), configuration, timeout)


class _LoggedErrors(logging.Handler):
    """Collects what the client logs instead of raising while it loads a kubeconfig.

    A failing exec credential plugin is only logged (``logging.error``) and the client goes on without
    credentials, so the user would see a misleading 401. Worse, that module-level ``logging.error``
    installs a stderr handler on the root logger, after which every urllib3 retry warning is printed.
    Being a root handler during the load prevents both; the collected message becomes our error.
    """

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def kubeconfig_paths(explicit: str | None) -> tuple[str, ...]:
    """The kubeconfig files to merge, in kubectl's order: --kubeconfig, else $KUBECONFIG, else default.

    $KUBECONFIG is read now, not at import, so the environment at call time decides.
    """
    if explicit:
        path = os.path.expanduser(explicit)
        if not Path(path).is_file():
            raise UsageError(f"kubeconfig {explicit}: no such file")
        return (path,)
    env = os.environ.get("KUBECONFIG", "")
    if env.strip():
        listed = [os.path.expanduser(p) for p in env.split(ENV_KUBECONFIG_PATH_SEPARATOR) if p]
        # kubectl skips entries of the list that do not exist, and fails only when none does.
        existing = tuple(p for p in listed if Path(p).is_file())
        if not existing:
            raise UsageError(f"kubeconfig: no file of KUBECONFIG={env} exists")
        return existing
    default = os.path.expanduser(DEFAULT_KUBECONFIG)
    if not Path(default).is_file():
        raise UsageError(f"no kubeconfig: {DEFAULT_KUBECONFIG} does not exist and KUBECONFIG is not set "
                         "(pass --kubeconfig)")
    return (default,)


def resolve_target(paths: tuple[str, ...], context: str | None) -> KubeTarget:
    """Merge the files the way kubectl does (the first file to define a name wins) and pick the context."""
    current: str | None = None
    contexts: dict[str, dict] = {}
    clusters: dict[str, dict] = {}
    for path in paths:
        document = _read_kubeconfig(path)
        current = current or document.get("current-context") or None
        for entry in _named(document, "contexts", path):
            contexts.setdefault(entry["name"], entry.get("context") or {})
        for entry in _named(document, "clusters", path):
            clusters.setdefault(entry["name"], entry.get("cluster") or {})
    shown = ", ".join(paths)
    name = context or current
    if not name:
        raise UsageError(f"kubeconfig {shown} has no current-context (pass --context)")
    if name not in contexts:
        known = ", ".join(sorted(contexts)) or "none"
        raise UsageError(f"context {name!r} not found in kubeconfig {shown} (contexts: {known})")
    body = contexts[name] if isinstance(contexts[name], dict) else {}
    cluster = clusters.get(str(body.get("cluster") or ""))
    if not isinstance(cluster, dict) or not cluster.get("server"):
        raise UsageError(f"context {name!r} in kubeconfig {shown} names no cluster with a server")
    return KubeTarget(paths=paths, context=name, server=str(cluster["server"]),
                      namespace=str(body.get("namespace") or "default"))


def _read_kubeconfig(path: str) -> dict:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"kubeconfig {path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise UsageError(f"kubeconfig {path}: not UTF-8 text") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise UsageError(f"kubeconfig {path}: not valid YAML{where}") from None
    if document is None:
        raise UsageError(f"kubeconfig {path}: empty file")
    if not isinstance(document, dict):
        raise UsageError(f"kubeconfig {path}: not a kubeconfig (expected a mapping at the top)")
    return document


def _named(document: dict, section: str, path: str) -> list[dict]:
    entries = document.get(section) or []
    if not isinstance(entries, list) or not all(isinstance(e, dict) and e.get("name") for e in entries):
        raise UsageError(f"kubeconfig {path}: {section} must be a list of named entries")
    return entries


# --- errors --------------------------------------------------------------------------------------------


@contextmanager
def api_call(kube: Kube, verb: str, resource: str, namespace: str | None = None, *,
             all_namespaces: bool = False) -> Iterator[None]:
    """Map library errors of one API call to ClusterError naming the server, verb and resource.

    ``resource`` is written like kubectl's RBAC messages: ``pods``,
    ``destinationrules.networking.istio.io``. Callers that give 404 a meaning catch ApiException first.
    """
    where = " in all namespaces" if all_namespaces else (f" in namespace {namespace}" if namespace else "")
    try:
        yield
    except ApiException as exc:
        raise api_error(kube, exc, verb, resource, where) from None
    except urllib3.exceptions.HTTPError as exc:
        raise unreachable(kube, exc) from None
    except (OSError, ssl.SSLError) as exc:
        raise unreachable(kube, exc) from None


def api_error(kube: Kube, exc: ApiException, verb: str, resource: str, where: str) -> ClusterError:
    status = exc.status or 0
    detail = status_message(exc)
    if status == 401:
        return AccessRefused(f"unauthorized: the API server at {kube.server} rejected the credentials of "
                            f"context {kube.target.context} ({verb} {resource}{where})")
    if status == 403:
        return AccessRefused(f"forbidden: cannot {verb} {resource}{where}" + (f" ({detail})" if detail else ""))
    if status == 0:
        return ClusterError(f"cannot reach the API server at {kube.server}: {detail or 'no response'}")
    return ClusterError(f"API server at {kube.server} answered {status} to {verb} {resource}{where}"
                        + (f": {detail}" if detail else ""))


def status_message(exc: ApiException) -> str:
    """The Status message of an API error, else its reason, on one line."""
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body.strip():
        try:
            parsed = json.loads(body)
            if isinstance(parsed, dict) and parsed.get("message"):
                return one_line(parsed["message"])
        except ValueError:
            return one_line(body)[:300]
    return one_line(exc.reason or "")


def unreachable(kube: Kube, exc: BaseException) -> ClusterError:
    return ClusterError(f"cannot reach the API server at {kube.server}: {describe_network_error(exc)}")


def describe_network_error(exc: BaseException) -> str:
    """What went wrong under urllib3's wrappers, in words: refused, DNS, TLS, timeout."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = getattr(current, "reason", None) if isinstance(current, urllib3.exceptions.MaxRetryError) \
            else (current.__cause__ or current.__context__ or _wrapped(current))
    for item in seen:
        if isinstance(item, (ssl.SSLError, urllib3.exceptions.SSLError)):
            return f"TLS handshake failed ({one_line(item)})"
        if isinstance(item, socket.gaierror) or type(item).__name__ == "NameResolutionError":
            return "DNS lookup of the server name failed"
        if isinstance(item, ConnectionRefusedError) or "Connection refused" in str(item):
            return "connection refused"
        if isinstance(item, (TimeoutError, socket.timeout, urllib3.exceptions.TimeoutError)):
            return "timed out"
        if isinstance(item, (http.client.RemoteDisconnected, ConnectionResetError)):
            # What a TLS 1.3 server that rejects the client certificate looks like from here.
            return "the server closed the connection without answering (client certificate refused?)"
    return one_line(exc)


def _wrapped(exc: BaseException) -> BaseException | None:
    # urllib3's ProtocolError carries the real error as an argument, not as its cause.
    return next((arg for arg in exc.args if isinstance(arg, BaseException)), None)


def one_line(value: object) -> str:
    return " ".join(str(value).split())
