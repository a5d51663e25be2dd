"""MD0502 PortProtocolUnknown: a Service port declares a protocol Istio does not recognise.

Anti-pattern: a Service port named ``http2foo``, ``web`` or ``api``, or with an ``appProtocol`` such
as ``HTTP/1.1``, in the belief that it declares HTTP.

Best practice: name the port ``<protocol>`` or ``<protocol>-<suffix>`` (``http``, ``http-web``,
``grpc-api``) with protocol one of http, http2, https, grpc, grpc-web, mongo, mysql, redis, tcp, tls,
udp, or set ``appProtocol`` to one of those (or to ``kubernetes.io/h2c``, ``kubernetes.io/ws``,
``kubernetes.io/wss``).

Why: Istio reads the protocol from ``appProtocol`` when it is set, and only then from the name. It
takes the part of the name before the first ``-`` (a name starting with ``grpc-web`` is gRPC-Web) and
matches it case-insensitively. Anything else is "unsupported": the sidecar falls back to protocol
sniffing or plain TCP, so VirtualService HTTP routes, retries and HTTP metrics silently do not apply,
and server-first protocols can stall while the proxy waits for the client to speak first.

Decisions, following Istio's ``kube.ConvertProtocol`` and ``protocol.Parse``:
- An unnamed port is not reported: Kubernetes allows a single unnamed port, and the author declared
  nothing, so auto-detection is what they asked for. A *present but unrecognised* name or appProtocol
  shows an intent Istio ignores, which is what this check is for.
- An ``appProtocol`` wins over the name even when the name is valid, exactly as in Istio: ``name: http``
  with ``appProtocol: HTTP/1.1`` is unsupported.
- UDP and SCTP ports are skipped (Istio maps UDP itself; the sidecar does not proxy SCTP), and so are
  the well-known ports Istio forces to TCP when the name is unrecognised (25, 53, 3306, 27017).
- Services in kube-system and kube-public are skipped (never meshed), and so are ports 15000-15099,
  Istio's own range (an ingress gateway's ``status-port`` 15021 is named by Istio, not by the user).
- Services without a selector are *checked*: sidecars still pick the outbound protocol from them.
"""

from __future__ import annotations

from typing import Iterable

from kubectl_meshdoctor.checks.base import Check, finding
from kubectl_meshdoctor.checks.context import NEVER_INJECTED_NAMESPACES, AnalysisContext
from kubectl_meshdoctor.evidence import Evidence
from kubectl_meshdoctor.findings import Finding, Subject

# protocol.Parse's vocabulary (lower-cased); http_proxy is accepted by Istio although a port name
# cannot contain "_", an appProtocol can.
KNOWN_PROTOCOLS = frozenset(
    {"tcp", "udp", "grpc", "grpc-web", "http", "http_proxy", "http2", "https", "tls", "mongo", "redis", "mysql"}
)
# Kubernetes' standard appProtocol values, understood by Istio only in appProtocol.
KUBERNETES_APP_PROTOCOLS = frozenset({"kubernetes.io/h2c", "kubernetes.io/ws", "kubernetes.io/wss"})
# Ports Istio treats as TCP when their protocol is unrecognised (SMTP, DNS, MySQL, MongoDB).
WELL_KNOWN_TCP_PORTS = frozenset({25, 53, 3306, 27017})
ISTIO_PORT_RANGE = range(15000, 15100)


def declared_protocol(value: str) -> str | None:
    """The protocol Istio reads from a port name or appProtocol, or None when it is unsupported."""
    if value in KUBERNETES_APP_PROTOCOLS:
        return value
    lowered = value.lower()
    if lowered.startswith("grpc-web"):
        return "grpc-web"
    prefix = lowered.split("-", 1)[0]
    return prefix if prefix in KNOWN_PROTOCOLS else None


def _port_number(port: dict) -> int | None:
    number = port.get("port")
    return number if isinstance(number, int) else None


class PortProtocolUnknown(Check):
    name = "PortProtocolUnknown"
    codes = ("MD0502",)
    needs = frozenset({Evidence.SERVICES})

    def run(self, ctx: AnalysisContext) -> Iterable[Finding]:
        for service in ctx.objects("Service"):
            meta = service.get("metadata") or {}
            namespace = meta.get("namespace") or ""
            if namespace in NEVER_INJECTED_NAMESPACES:
                continue
            bad = [port for port in (service.get("spec") or {}).get("ports") or [] if self._unrecognised(port)]
            if not bad:
                continue
            described = ", ".join(self._label(port) for port in bad)
            yield finding(
                "MD0502",
                Subject("Service", meta.get("name") or "", namespace),
                f"Service {namespace}/{meta.get('name')}: Istio does not recognise the protocol of port "
                f"{described}; traffic there is sniffed or treated as plain TCP, without HTTP routing",
                [self._evidence(port) for port in bad],
            )

    @staticmethod
    def _unrecognised(port: dict) -> bool:
        if str(port.get("protocol") or "TCP").upper() != "TCP":
            return False
        number = _port_number(port)
        if number in WELL_KNOWN_TCP_PORTS or number in ISTIO_PORT_RANGE:
            return False
        app_protocol = port.get("appProtocol")
        if app_protocol:
            return declared_protocol(str(app_protocol)) is None
        name = port.get("name")
        return bool(name) and declared_protocol(str(name)) is None

    @staticmethod
    def _label(port: dict) -> str:
        return f"{port.get('port')} ({port.get('appProtocol') or port.get('name')})"

    @staticmethod
    def _evidence(port: dict) -> str:
        name = f'"{port["name"]}"' if port.get("name") else "unset"
        app = f'"{port["appProtocol"]}"' if port.get("appProtocol") else "unset"
        line = f"port {port.get('port')} name {name} appProtocol {app}"
        if port.get("appProtocol") and port.get("name") and declared_protocol(str(port["name"])):
            line += " (appProtocol overrides the name)"
        return line


CHECK = PortProtocolUnknown()
