"""MD0401 MtlsToPlaintextEndpoint: a client always speaks Istio mTLS to server pods without a sidecar.

Anti-pattern: a headless Service (``clusterIP: None``, typical of Redis, Kafka, databases) whose pods
run without istio-proxy, called from meshed clients whose cluster for it still originates mTLS; or a
DestinationRule forcing ``ISTIO_MUTUAL`` toward such pods. The server receives a TLS ClientHello on a
plain-text port and the connection dies (``UF,URX``, ``WRONG_VERSION_NUMBER``).

Best practice: look at the client's Envoy cluster, not only at the YAML: a cluster whose single,
cluster-wide transport socket is Istio mTLS (no ``tlsMode`` match per endpoint) sends TLS to every
endpoint, so every pod behind the host must have a sidecar. Clusters that pick TLS per endpoint
label (``transport_socket_matches``) are safe and not reported.

Why: nothing in the pods' status shows the problem, and the error seen by the application ("connection
reset") hides the TLS mismatch. The message names the server Service and not the client, so all
affected clients group under one cause; each client's evidence says which of its clusters does it,
and its access log, when it has failures for that cluster with a TLS transport failure, confirms it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

from kubectl_meshdoctor.checks.base import Check, finding
from kubectl_meshdoctor.checks.context import (
    TLS_MODE_LABEL, AnalysisContext, IstioClusterName, key_of, labels_of, sidecar_container,
)
from kubectl_meshdoctor.evidence import TLS_ISTIO_ALWAYS, AccessLog, Evidence
from kubectl_meshdoctor.findings import Finding, Subject

MAX_PODS_SHOWN = 5
MAX_CONFIRMATIONS = 3


def plaintext_reason(pod: dict) -> str | None:
    """Why a server pod cannot terminate Istio mTLS, or None when it can."""
    if sidecar_container(pod) is None:
        return "no istio-proxy"
    if labels_of(pod).get(TLS_MODE_LABEL) != "istio":
        return f"no {TLS_MODE_LABEL}=istio label"
    return None


def tls_failure_reason(reason: str) -> str | None:
    """The short TLS error inside Envoy's %UPSTREAM_TRANSPORT_FAILURE_REASON%, or None if not a TLS one.

    Envoy prints e.g. ``TLS_error:|268435703:SSL_routines:OPENSSL_internal:WRONG_VERSION_NUMBER:TLS_error_end``;
    the token after ``OPENSSL_internal`` is the one people search for.
    """
    if "TLS_error" not in reason:
        return None
    parts = [p for p in reason.replace("|", ":").split(":") if p]
    for index, part in enumerate(parts):
        if part == "OPENSSL_internal" and index + 1 < len(parts) and parts[index + 1] != "TLS_error_end":
            return parts[index + 1]
    return reason


def confirmations(access_log: AccessLog | None, cluster: str) -> list[str]:
    """Access-log failures for ``cluster``: an upstream connection failure caused by TLS."""
    if access_log is None:
        return []
    lines = []
    seen = set()
    for entry in access_log.failures:
        if entry.upstream_cluster != cluster or not {"UF", "URX"} & set(entry.flags):
            continue
        tls = tls_failure_reason(entry.transport_failure_reason or "")
        if tls is None or tls in seen:
            continue
        seen.add(tls)
        count = sum(n for flags, name, n in access_log.failure_counts
                    if name == cluster and {"UF", "URX"} & set(flags.split(",")))
        counted = f" ({count} failed connections logged)" if count else ""
        lines.append(f"access log confirms: {','.join(entry.flags)} to {cluster} with TLS failure {tls}{counted}")
        if len(lines) >= MAX_CONFIRMATIONS:
            break
    return lines


class MtlsToPlaintextEndpoint(Check):
    name = "MtlsToPlaintextEndpoint"
    codes = ("MD0401",)
    needs = frozenset({Evidence.PROXY_CONFIG, Evidence.PODS, Evidence.SERVICES})

    def run(self, ctx: AnalysisContext) -> Iterable[Finding]:
        # Server verdicts are per Service, shared by every client: computed once each.
        servers: dict[str, tuple[list[tuple[str, str]], int]] = {}
        for key, proxy in sorted(ctx.proxies.items()):
            if proxy.config is None:
                continue
            clusters_by_service: dict[str, list] = defaultdict(list)
            services: dict[str, dict] = {}
            for cluster in proxy.config.clusters:
                if cluster.tls != TLS_ISTIO_ALWAYS:
                    continue
                parsed = IstioClusterName.parse(cluster.name)
                if parsed is None or parsed.direction != "outbound":
                    continue
                service = ctx.service_by_host(parsed.host)
                if service is None:
                    continue
                service_key = key_of(service)
                if service_key not in servers:
                    behind = ctx.pods_behind(service)
                    servers[service_key] = ([(key_of(p), r) for p in behind if (r := plaintext_reason(p))], len(behind))
                if servers[service_key][0]:
                    clusters_by_service[service_key].append(cluster)
                    services[service_key] = service
            for service_key, clusters in sorted(clusters_by_service.items()):
                bad, total = servers[service_key]
                yield self._finding(key, proxy, services[service_key], clusters, bad, total)

    @staticmethod
    def _finding(client: str, proxy, service: dict, clusters: list, bad: list[tuple[str, str]], total: int) -> Finding:
        meta = service["metadata"]
        service_key = key_of(service)
        evidence = [
            f"cluster {c.name} ({c.discovery}) always originates Istio mTLS (one transport socket for every endpoint)"
            for c in clusters
        ]
        shown = ", ".join(f"{pod} ({reason})" for pod, reason in bad[:MAX_PODS_SHOWN])
        more = f" and {len(bad) - MAX_PODS_SHOWN} more" if len(bad) > MAX_PODS_SHOWN else ""
        evidence.append(f"server pods without a sidecar: {shown}{more}")
        for cluster in clusters:
            evidence.extend(confirmations(proxy.access_log, cluster.name))
        return finding(
            "MD0401", Subject("Service", meta["name"], meta.get("namespace")),
            reached_with_mtls(service_key, len(bad), total), evidence, pod=client,
        )


def reached_with_mtls(service_key: str, bad: int, total: int) -> str:
    """The message of MD0401, one per Service: clients and server pods report the same cause."""
    who = "its pods have" if bad == total else f"{bad} of its {total} pods have"
    return f"Service {service_key} is reached with Istio mTLS but {who} no sidecar"


CHECK = MtlsToPlaintextEndpoint()
