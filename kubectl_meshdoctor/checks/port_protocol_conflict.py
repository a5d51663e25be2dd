"""MD0511 PortProtocolConflict: Services selecting one workload disagree on a port's protocol.

Anti-pattern: a second Service added for the same pods (a metrics or "TCP" Service, a copy for another
team) that names the pod's port ``tcp-...`` where the first names it ``http-...``.

Best practice: one protocol per container port across every Service that selects the workload.

Why: a sidecar has one inbound listener per pod port. istiod builds it from the Services selecting the
pod and, on a conflict, keeps the oldest Service (``listener_inbound.go``: "If there is a conflict, we
will use the oldest Service. This impacts the protocol used as well.") and reports
``Conflicting inbound listener``. Traffic meant for the other Service is then handled as the wrong
protocol: HTTP loses its routing, retries and metrics, or TCP is parsed as HTTP and fails.

Decisions:
- Ports are compared by the container port they reach (``targetPort``, a named one resolved against the
  containers), as istiod keys its inbound chains; protocols as Istio reads them (``appProtocol``, else
  the port name; an unrecognised name is sniffed, which is a protocol of its own). UDP and SCTP ports
  are not proxied and are skipped.
- Only workloads in (or headed for) the mesh, Services of their own namespace with a selector, and only
  conflicts between different Services: this reproduces istioctl's IST0116 outcomes on its own test
  cases (a Deployment behind two Services with tcp and http on one port; the same port in another
  namespace, a selector-less Service or an opted-out Deployment do not count). Two Services reaching one
  targetPort through different Service ports with different protocols (istioctl's IST0137 case) is
  the same listener conflict and is reported too; the same protocol twice is not.
- As info: a Deployment known to be meshed whose pods carry no ``app`` (or ``app.kubernetes.io/name``) or no
  ``version`` (or ``app.kubernetes.io/version``) label: Istio's telemetry and Kiali name workloads by them.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

from kubectl_meshdoctor.checks.base import Check, finding, moment
from kubectl_meshdoctor.checks.context import AnalysisContext, selector_matches
from kubectl_meshdoctor.checks.port_protocol_unknown import WELL_KNOWN_TCP_PORTS, declared_protocol
from kubectl_meshdoctor.findings import Finding, Severity
from kubectl_meshdoctor.workloads import Workload, dig, listed

SNIFFED = "unrecognised (sniffed)"
APP_LABELS = ("app", "app.kubernetes.io/name")
VERSION_LABELS = ("version", "app.kubernetes.io/version")


def istio_protocol(port: dict) -> str:
    """The protocol Istio reads from a Service port: appProtocol, else the name; sniffed when neither says.

    Unrecognised on a well-known TCP port (DNS, MySQL, ...) is TCP, as in Istio's ConvertProtocol.
    """
    declared = port.get("appProtocol") or port.get("name")  # appProtocol wins, even one Istio ignores
    protocol = declared_protocol(str(declared)) if declared else None
    number = port.get("port")
    if protocol is None and isinstance(number, int) and number in WELL_KNOWN_TCP_PORTS:
        return "tcp"
    return protocol or SNIFFED


def target_port(port: dict, containers: list[dict]) -> str:
    """The container port a Service port reaches, as text: a named targetPort resolved when possible."""
    target = port.get("targetPort")
    if target in (None, "", 0):
        return str(port.get("port"))
    if isinstance(target, str) and not target.isdigit():
        for container in containers:
            for declared in listed(dig(container).get("ports")):
                if dig(declared).get("name") == target and declared.get("containerPort"):
                    return str(declared["containerPort"])
    return str(target)


class PortProtocolConflict(Check):
    name = "PortProtocolConflict"
    codes = ("MD0511",)
    needs: frozenset[str] = frozenset()  # reads whatever workloads and Services the evidence holds

    def run(self, ctx: AnalysisContext) -> Iterable[Finding]:
        index = ServiceIndex(ctx)
        for workload, meshed in ctx.mesh_workloads():
            yield from self._conflicts(index, workload)
            if meshed:  # the label advice only where the mesh is known to apply
                yield from self._missing_labels(workload)

    @staticmethod
    def _conflicts(index: "ServiceIndex", workload: Workload) -> Iterable[Finding]:
        containers = listed(workload.spec.get("containers"))
        # container port -> protocol -> [(service name, service port, creationTimestamp)]
        by_target: dict[str, dict[str, list[tuple[str, str, str]]]] = defaultdict(lambda: defaultdict(list))
        for service in index.selecting(workload.namespace, workload.labels):
            spec, meta = dig(service, "spec"), dig(service, "metadata")
            for port in listed(spec.get("ports")):
                port = dig(port)
                if str(port.get("protocol") or "TCP").upper() in ("UDP", "SCTP"):
                    continue
                entry = (str(meta.get("name")), str(port.get("port")), str(meta.get("creationTimestamp") or ""))
                by_target[target_port(port, containers)][istio_protocol(port)].append(entry)
        for target, protocols in sorted(by_target.items()):
            services = {name for entries in protocols.values() for name, _, _ in entries}
            if len(protocols) < 2 or len(services) < 2:
                continue
            declared = sorted((name, port, protocol, created) for protocol, entries in protocols.items()
                              for name, port, created in entries)
            listing = ", ".join(f"{name}:{port} as {protocol}" for name, port, protocol, _ in declared)
            evidence = [f"Service {workload.namespace}/{name} port {port} -> container port {target}: {protocol}"
                        for name, port, protocol, _ in declared]
            since = [moment(at, f"Service {workload.namespace}/{name} created ({protocol} on port {target})")
                     for name, _, protocol, at in declared]
            if all(at for *_, at in declared):
                name, _, protocol, at = min(declared, key=lambda d: (d[3], d[0]))
                evidence.append(f"istiod keeps the oldest Service's protocol: {name} ({protocol}, created {at})")
            message = (f"{workload.describe()}: Services declare different protocols for its port {target} "
                       f"({listing}); istiod builds one inbound listener per port and keeps one protocol")
            for pod in workload.pods or [None]:
                yield finding("MD0511", workload.subject, message, evidence, pod=pod, since=since)

    @staticmethod
    def _missing_labels(workload: Workload) -> Iterable[Finding]:
        if workload.subject.kind != "Deployment":
            return
        labels = workload.labels
        missing = [names[0] for names in (APP_LABELS, VERSION_LABELS) if not any(labels.get(n) for n in names)]
        if not missing:
            return
        message = (f"{workload.describe()}: its pods have no {' and no '.join(missing)} label; Istio's "
                   "telemetry and Kiali name workloads by app and version")
        yield finding("MD0511", workload.subject, message,
                      [f"pod template labels: {', '.join(f'{k}={v}' for k, v in sorted(labels.items())) or '(none)'}"],
                      severity=Severity.INFO,
                      remediation="Label the pod template with app and version (or app.kubernetes.io/name "
                      "and app.kubernetes.io/version).")


class ServiceIndex:
    """Services by namespace and by one of their selector's pairs, so that finding the Services that
    select a workload costs a few lookups, not a scan of its namespace (thousands of Services)."""

    def __init__(self, ctx: AnalysisContext):
        self._ctx = ctx
        self._by_namespace: dict[str, dict[tuple[str, str], list[dict]]] = {}

    def selecting(self, namespace: str, labels: dict[str, str]) -> list[dict]:
        index = self._by_namespace.get(namespace)
        if index is None:
            index = self._by_namespace[namespace] = defaultdict(list)
            for service in self._ctx.services_in(namespace):
                selector = dig(service, "spec", "selector")
                if selector:  # an empty selector selects nothing here (selector_matches' rule)
                    key, value = min((str(k), str(v)) for k, v in selector.items())
                    index[(key, value)].append(service)
        candidates = [s for pair in labels.items() for s in index.get(pair, ())]
        return [s for s in candidates if selector_matches(dig(s, "spec", "selector"), labels)]


CHECK = PortProtocolConflict()
