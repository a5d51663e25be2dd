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

Decisions, following Istio's ``kube.ConvertProtocol`` and ``protocol.Parse``, and agreeing with
``istioctl analyze`` (IST0118, IST0150) where the two overlap:
- An unnamed port (no name, no appProtocol) is reported at *info*: nothing was declared, so Istio
  applies protocol detection, which is what istioctl says (IST0118, level Info). It stays MD0502, not
  a new code: the cause (Istio cannot read a protocol from the port) and the fix (name it) are the
  same; only the intent differs, and severity carries that. A *present but unrecognised* name or
  appProtocol is a warning: it shows an intent Istio ignores. (istioctl reports both at Info.)
- An ExternalName Service's unnamed port is a warning, as istioctl's IST0150: such a Service has no
  cluster IP, so sidecars listen on 0.0.0.0:<port> for it and may send unmatched TCP traffic on that
  port to the external host.
- An ``appProtocol`` wins over the name even when the name is valid, exactly as in Istio: ``name: http``
  with ``appProtocol: HTTP/1.1`` is unsupported.
- UDP and SCTP ports are skipped (Istio maps UDP itself; the sidecar does not proxy SCTP), and so are
  the well-known ports Istio forces to TCP when the name is unrecognised (25, 53, 3306, 27017).
- Services in kube-system and kube-public are skipped (never meshed), and so are ports 15000-15099,
  Istio's own range (an ingress gateway's ``status-port`` 15021 is named by Istio, not by the user).
- Istio's own Services are skipped, as istioctl does: labelled ``istio`` (``istio: ingressgateway``)
  or ``release: istio``, or managed by Istio's gateway controllers (``gateway.istio.io/managed``).
- Services without a selector are *checked*: sidecars still pick the outbound protocol from them.
"""

from __future__ import annotations

from typing import Iterable

from kubectl_meshdoctor.checks.base import Check, created, finding
from kubectl_meshdoctor.checks.context import (
    NEVER_INJECTED_NAMESPACES, AnalysisContext, is_istio_control_plane, labels_of,
)
from kubectl_meshdoctor.evidence import Evidence
from kubectl_meshdoctor.findings import Finding, Severity, Subject

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
# Services Istio's gateway controllers create (Gateway API gateways, waypoints, east-west gateways).
GATEWAY_MANAGED_LABEL = "gateway.istio.io/managed"
ISTIO_GATEWAY_CONTROLLERS = frozenset(
    {"istio.io-gateway-controller", "istio.io-mesh-controller", "istio.io-eastwest-controller"}
)


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
            if namespace in NEVER_INJECTED_NAMESPACES or self._made_by_istio(service):
                continue
            spec = service.get("spec") or {}
            ports = [port for port in spec.get("ports") or [] if self._checked(port)]
            subject = Subject("Service", meta.get("name") or "", namespace)
            key = f"{namespace}/{meta.get('name')}"
            external = spec.get("type") == "ExternalName"
            since = [created(service, f"Service {key} created")]
            bad = [port for port in ports if self._declared(port) and self._unrecognised(port)]
            unnamed = [port for port in ports if not self._declared(port)]
            if external:
                bad, unnamed = bad + unnamed, []
            if bad:
                described = ", ".join(self._label(port) for port in bad)
                consequence = ("sidecars listen on 0.0.0.0 for this ExternalName Service and may send other "
                               "TCP traffic on that port to it" if external else
                               "traffic there is sniffed or treated as plain TCP, without HTTP routing")
                yield finding(
                    "MD0502", subject,
                    f"Service {key}: Istio does not recognise the protocol of port {described}; {consequence}",
                    [self._evidence(port) for port in bad], since=since,
                )
            if unnamed:
                numbers = ", ".join(str(port.get("port")) for port in unnamed)
                which = f"ports {numbers} have" if len(unnamed) > 1 else f"port {numbers} has"
                yield finding(
                    "MD0502", subject,
                    f"Service {key}: {which} no name or appProtocol; protocol detection is applied",
                    [self._evidence(port) for port in unnamed],
                    severity=Severity.INFO, since=since,
                    remediation="Name the port `<protocol>-<suffix>` (for example http-web) or set appProtocol "
                    "if you want Istio to know the protocol rather than detect it.",
                )

    @staticmethod
    def _made_by_istio(service: dict) -> bool:
        return (is_istio_control_plane(service)
                or labels_of(service).get(GATEWAY_MANAGED_LABEL) in ISTIO_GATEWAY_CONTROLLERS)

    @staticmethod
    def _checked(port: dict) -> bool:
        """A TCP port outside Istio's range whose protocol Istio would derive from name/appProtocol."""
        if str(port.get("protocol") or "TCP").upper() != "TCP":
            return False
        number = _port_number(port)
        return number not in WELL_KNOWN_TCP_PORTS and number not in ISTIO_PORT_RANGE

    @staticmethod
    def _declared(port: dict) -> bool:
        return bool(port.get("appProtocol") or port.get("name"))

    @staticmethod
    def _unrecognised(port: dict) -> bool:
        value = port.get("appProtocol") or port.get("name")
        return declared_protocol(str(value)) is None

    @staticmethod
    def _label(port: dict) -> str:
        return f"{port.get('port')} ({port.get('appProtocol') or port.get('name') or 'unnamed'})"

    @staticmethod
    def _evidence(port: dict) -> str:
        name = f'"{port["name"]}"' if port.get("name") else "unset"
        app = f'"{port["appProtocol"]}"' if port.get("appProtocol") else "unset"
        line = f"port {port.get('port')} name {name} appProtocol {app}"
        if port.get("appProtocol") and port.get("name") and declared_protocol(str(port["name"])):
            line += " (appProtocol overrides the name)"
        return line


CHECK = PortProtocolUnknown()
