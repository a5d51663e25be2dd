"""What the user asked to trace: ``HOST[:PORT][/PATH]``, a method and headers, and where HOST points.

HOST may be a Service short name (``reviews``), ``name.namespace``, an FQDN, a Service IP, or a host
outside the mesh (``api.example.com``). Short names resolve in the traced pod's namespace, as the pod's
DNS search path would. PORT defaults to the Service's only port (or 80 outside the mesh); PATH to ``/``.
Bad input is a UsageError (exit 2) that says what was wrong.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from kubectl_meshdoctor.checks.context import AnalysisContext, resolve_host
from kubectl_meshdoctor.checks.port_protocol_unknown import declared_protocol
from kubectl_meshdoctor.errors import UsageError

DEFAULT_PORT = 80
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE")
# Protocols Istio proxies as opaque TCP (no HTTP routing); anything HTTP-like or unknown (sniffed) is HTTP here.
OPAQUE_PROTOCOLS = frozenset({"https", "tls", "tcp", "mongo", "mysql", "redis", "udp"})
_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"^{_LABEL}(\.{_LABEL})*\.?$")
_TARGET = re.compile(r"^(?:[a-z][a-z0-9+.-]*://)?(?P<host>\[[^\]]*\]|[^:/?]+)(?::(?P<port>[^/?]*))?(?P<path>[/?].*)?$",
                     re.I)


@dataclass(frozen=True)
class Target:
    host: str
    port: int | None  # None: the default, decided once the Service is known
    path: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()


def parse_target(text: str, method: str = "GET", headers: list[str] | tuple[str, ...] = ()) -> Target:
    """``HOST[:PORT][/PATH]`` (an ``http://`` prefix is tolerated), validated; raises UsageError."""
    raw = text.strip()
    matched = _TARGET.match(raw)
    if not raw or matched is None:
        raise UsageError(f"invalid --trace {text!r}: expected HOST[:PORT][/PATH], e.g. reviews:9080/reviews/0")
    host = matched.group("host").strip("[]").rstrip(".").lower()
    if not _valid_host(host):
        raise UsageError(f"invalid --trace {text!r}: {host!r} is not a host name or an IP address")
    port = None
    if matched.group("port") is not None:
        digits = matched.group("port")
        if not digits.isdigit() or not 1 <= int(digits) <= 65535:
            raise UsageError(f"invalid --trace {text!r}: port {digits!r} is not a number from 1 to 65535")
        port = int(digits)
    path = matched.group("path") or "/"
    if path.startswith("?"):
        path = "/" + path
    if any(c.isspace() for c in path):
        raise UsageError(f"invalid --trace {text!r}: the path may not contain spaces")
    verb = method.strip().upper()
    if verb not in HTTP_METHODS:
        raise UsageError(f"invalid --method {method!r}: use one of {', '.join(HTTP_METHODS)}")
    return Target(host=host, port=port, path=path, method=verb, headers=tuple(_header(h) for h in headers))


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOSTNAME.match(host))


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or not name or any(c.isspace() for c in name):
        raise UsageError(f"invalid --header {text!r}: expected 'Name: value'")
    return name.lower(), value.strip()


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def destination_namespace(host: str, client_namespace: str) -> str | None:
    """The namespace a Kubernetes-style host names (``reviews`` -> the client's), None for other hosts."""
    if is_ip(host):
        return None
    fqdn = resolve_host(host, client_namespace)
    parts = fqdn.split(".")
    if len(parts) == 5 and fqdn.endswith(".svc.cluster.local"):
        return parts[1]
    return None


def port_protocol(port: dict) -> str:
    """Istio's protocol for a Service port (appProtocol wins over the name); "" when unsupported (sniffed)."""
    declared = port.get("appProtocol") or port.get("name")
    return (declared_protocol(str(declared)) or "") if declared else ""


@dataclass(frozen=True)
class Destination:
    """Where the request goes, as far as the API objects tell."""

    host: str  # as the client names it
    port: int
    fqdn: str | None  # the Service's FQDN, None outside the mesh's registry
    service: dict | None
    service_port: dict | None
    addresses: tuple[str, ...]  # the IPs the client connects to: ClusterIP, pod IPs (headless), none known
    http: bool  # the request is HTTP (the port's protocol is HTTP, or unknown and the client speaks HTTP)
    headless: bool = False

    @property
    def authority(self) -> str:
        return self.host if self.port == DEFAULT_PORT else f"{self.host}:{self.port}"


def resolve_destination(target: Target, ctx: AnalysisContext, client_namespace: str) -> Destination:
    """The Service (if any) HOST names in the collected objects, the port, and the addresses to dial."""
    service = _find_service(target.host, ctx, client_namespace)
    if service is None:
        port = target.port or DEFAULT_PORT
        secure = port == 443
        return Destination(target.host, port, None, None, None,
                           (target.host,) if is_ip(target.host) else (), http=not secure)
    meta, spec = service.get("metadata") or {}, service.get("spec") or {}
    name, namespace = meta.get("name") or "", meta.get("namespace") or "default"
    ports = [p for p in spec.get("ports") or [] if str(p.get("protocol") or "TCP").upper() != "UDP"]
    if target.port is None:
        if len(ports) != 1:
            listed = ", ".join(str(p.get("port")) for p in ports) or "none"
            raise UsageError(f"Service {namespace}/{name} has ports {listed}: say which, as {target.host}:PORT")
        service_port = ports[0]
    else:
        service_port = next((p for p in ports if p.get("port") == target.port), None)
    port = target.port or int(service_port["port"])  # type: ignore[index]
    protocol = port_protocol(service_port or {})
    cluster_ip = spec.get("clusterIP")
    headless = cluster_ip in (None, "", "None")
    if headless:
        addresses = tuple(ip for pod in ctx.pods_behind(service) if (ip := (pod.get("status") or {}).get("podIP")))
    else:
        addresses = (str(cluster_ip),)
    if is_ip(target.host):
        addresses = (target.host,)
    return Destination(target.host, port, f"{name}.{namespace}.svc.cluster.local", service, service_port,
                       addresses, http=protocol not in OPAQUE_PROTOCOLS, headless=headless)


def _find_service(host: str, ctx: AnalysisContext, client_namespace: str) -> dict | None:
    if is_ip(host):
        for service in ctx.objects("Service"):
            spec = service.get("spec") or {}
            if host == spec.get("clusterIP") or host in (spec.get("clusterIPs") or []):
                return service
        return None
    return ctx.service_by_host(host, client_namespace)
