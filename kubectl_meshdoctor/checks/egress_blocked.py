"""MD0505 EgressBlocked: REGISTRY_ONLY and no ServiceEntry for the destination: the sidecar blocks the call.

Anti-pattern: debugging the external API, its DNS or a firewall, when the request never left the pod.

Best practice: recognise Istio's two ways of blocking, name the setting that chose REGISTRY_ONLY (a
Sidecar's ``outboundTrafficPolicy``, else the mesh config in ConfigMap istio-system/istio) and the
destination, and print the ServiceEntry that lets it through.

What real Envoy does (checked on the lab's Envoy, built as istiod builds it):
- HTTP on a port for which the sidecar has a route config: the ``block_all`` virtual host answers
  **502 itself** (``502 - direct_response ... block_all``): no response flag, no upstream cluster, so it
  is not an MD0601 line and no request reaches BlackHoleCluster.
- Anything else (TLS, TCP, HTTP on a port without route config) falls to virtualOutbound's catch-all
  chain, a tcp_proxy to ``BlackHoleCluster``, which has no endpoint: ``UH`` toward BlackHoleCluster,
  the connection is closed at once, and ``%DOWNSTREAM_LOCAL_ADDRESS%`` is the original destination.
  MD0601 reports those lines; this finding is linked to it by the cluster name.
"""

from __future__ import annotations

from typing import Iterable

from kubectl_meshdoctor.checks._failed_upstreams import access_logs, failed_upstreams
from kubectl_meshdoctor.checks.base import Check, finding, shorten
from kubectl_meshdoctor.checks.context import ROOT_NAMESPACE, AnalysisContext, labels_of, selector_matches
from kubectl_meshdoctor.envoy.access_log import BLOCKED_ROUTE
from kubectl_meshdoctor.evidence import AccessLogEntry, Evidence
from kubectl_meshdoctor.findings import Finding, Subject

BLACK_HOLE = "BlackHoleCluster"
MESH_CONFIG = Subject("ConfigMap", "istio", ROOT_NAMESPACE)
MAX_SHOWN = 3


def outbound_policy(ctx: AnalysisContext, pod: dict | None, namespace: str) -> tuple[str | None, Subject, str]:
    """(mode, the object that decided it, how it was found), as istiod's SidecarScope decides.

    The Sidecar that applies to the pod (a workloadSelector match in its namespace, else its namespace's
    default, else the root namespace's) wins when it sets outboundTrafficPolicy; else the mesh config.
    ``mode`` is None when neither was read.
    """
    labels = labels_of(pod) if pod else {}
    sidecars = ctx.objects("Sidecar")

    def in_namespace(ns: str, selected: bool) -> dict | None:
        for item in sidecars:
            if (item.get("metadata") or {}).get("namespace") != ns:
                continue
            selector = ((item.get("spec") or {}).get("workloadSelector") or {}).get("labels")
            if (selected and selector and selector_matches(selector, labels)) or (not selected and not selector):
                return item
        return None

    sidecar = in_namespace(namespace, True) or in_namespace(namespace, False) or in_namespace(ROOT_NAMESPACE, False)
    if sidecar is not None:
        mode = (((sidecar.get("spec") or {}).get("outboundTrafficPolicy")) or {}).get("mode")
        if mode:
            meta = sidecar["metadata"]
            return (mode, Subject("Sidecar", meta["name"], meta.get("namespace")),
                    f"Sidecar {meta.get('namespace')}/{meta['name']}: outboundTrafficPolicy.mode: {mode}")
    config_map = next((c for c in ctx.objects("ConfigMap") if (c.get("metadata") or {}).get("name") == "istio"
                       and (c.get("metadata") or {}).get("namespace") == ROOT_NAMESPACE), None)
    if config_map is None:
        return None, MESH_CONFIG, "mesh config (ConfigMap istio-system/istio) not read"
    mode = _mesh_mode((config_map.get("data") or {}).get("mesh") or "")
    return mode, MESH_CONFIG, f"ConfigMap istio-system/istio mesh: outboundTrafficPolicy.mode: {mode}" + (
        " (unset: ALLOW_ANY)" if mode == "ALLOW_ANY" else "")


def _mesh_mode(mesh_text: str) -> str:
    import yaml

    try:
        mesh = yaml.safe_load(mesh_text) or {}
    except yaml.YAMLError:
        return "unknown (mesh config is not valid YAML)"
    policy = mesh.get("outboundTrafficPolicy") if isinstance(mesh, dict) else None
    return str((policy or {}).get("mode") or "ALLOW_ANY") if isinstance(policy, (dict, type(None))) else "unknown"


def _destination(entry: AccessLogEntry) -> str:
    """host:port the app asked for: the Host of an HTTP request, else the original destination address."""
    return entry.authority or entry.downstream_local_address or "(destination not in the log line)"


def _covering_entries(ctx: AnalysisContext, destination: str) -> list[dict]:
    host = destination.rsplit(":", 1)[0] if destination.count(":") == 1 else destination
    found = []
    for entry in ctx.objects("ServiceEntry"):
        spec = entry.get("spec") or {}
        hosts = spec.get("hosts") or []
        addresses = [a.split("/")[0] for a in spec.get("addresses") or []]
        if host in hosts or host in addresses or any(h.startswith("*.") and host.endswith(h[1:]) for h in hosts):
            found.append(entry)
    return found


def service_entry_yaml(destination: str, namespace: str) -> str:
    """A ServiceEntry letting ``destination`` (host:port or ip:port) through, as one line of flow YAML
    (ready for ``kubectl apply -f -``; one line so every report format shows it whole)."""
    host, _, port = destination.rpartition(":") if ":" in destination else (destination, "", "")
    port = port if port.isdigit() else "443"
    is_ip = host.replace(".", "").isdigit()
    name = ("ip-" + host.replace(".", "-")) if is_ip else host.replace(".", "-").replace("*", "wildcard")
    protocol = "TLS" if port == "443" else "HTTP" if port in ("80", "8080") else "TCP"
    target = (f"hosts: [{name}.external], addresses: [{host}/32], resolution: NONE" if is_ip
              else f"hosts: [{host}], resolution: DNS")
    return (f"{{apiVersion: networking.istio.io/v1, kind: ServiceEntry, metadata: {{name: {name}, namespace: "
            f"{namespace}}}, spec: {{{target}, ports: [{{number: {port}, name: {protocol.lower()}, protocol: "
            f"{protocol}}}], location: MESH_EXTERNAL}}}}")


class EgressBlocked(Check):
    name = "EgressBlocked"
    codes = ("MD0505",)
    needs = frozenset({Evidence.ACCESS_LOG})

    def run(self, ctx: AnalysisContext) -> Iterable[Finding]:
        tcp = {f.pod: f for f in failed_upstreams(ctx, "UH") if f.cluster == BLACK_HOLE}
        for key, _, log in access_logs(ctx):
            http_count = sum(count for flags, cluster, count in log.failure_counts if not flags and cluster == BLOCKED_ROUTE)
            http = [e for e in log.failures if not e.flags and e.route_name == BLOCKED_ROUTE]
            blocked_tcp = tcp.get(key)
            if not http_count and not http and blocked_tcp is None:
                continue
            namespace = key.split("/", 1)[0]
            mode, subject, policy_line = outbound_policy(ctx, ctx.pod(key), namespace)
            samples = list(http) + list(blocked_tcp.samples if blocked_tcp else ())
            destinations = list(dict.fromkeys(_destination(e) for e in samples))
            evidence = []
            if http_count or http:
                evidence.append(f"access log of {key}: {http_count or len(http)} HTTP request(s) answered 502 by "
                                f"the {BLOCKED_ROUTE} route (REGISTRY_ONLY's answer to an unknown host)")
            if blocked_tcp is not None:
                evidence.append(f"access log of {key}: {blocked_tcp.count} connection(s) sent to {BLACK_HOLE} "
                                "(UH: it has no endpoint), closed at once")
            evidence += [f"sample: {shorten(e.line, 300)}" for e in samples[:MAX_SHOWN]]
            evidence.append(policy_line)
            if Evidence.EGRESS_CONFIG not in ctx.available:
                evidence.append("Sidecars and ServiceEntries were not read (see the gaps)")
            hidden = {d: _covering_entries(ctx, d) for d in destinations}
            for destination, entries in hidden.items():
                for entry in entries:
                    meta = entry["metadata"]
                    evidence.append(f"ServiceEntry {meta.get('namespace')}/{meta['name']} declares {destination}, "
                                    "but this proxy does not see it (exportTo, or the Sidecar's egress hosts)")
            shown = ", ".join(destinations[:MAX_SHOWN]) + (" ..." if len(destinations) > MAX_SHOWN else "")
            decided = f"{subject} sets REGISTRY_ONLY" if mode == "REGISTRY_ONLY" else (
                f"the sidecar blocks unknown destinations ({policy_line})")
            missing = [d for d, entries in hidden.items() if not entries]
            message = (f"egress to {shown} blocked: {decided} and "
                       + ("no ServiceEntry declares it" if missing else "the ServiceEntry is not visible here"))
            fix = ("Declare the destination with a ServiceEntry (or switch outboundTrafficPolicy to ALLOW_ANY): "
                   + " ; ".join(service_entry_yaml(d, namespace) for d in (missing or destinations)[:MAX_SHOWN]))
            yield finding("MD0505", subject, message, evidence, pod=key, remediation=fix,
                          upstreams=(BLACK_HOLE,) if blocked_tcp is not None else ())


CHECK = EgressBlocked()
