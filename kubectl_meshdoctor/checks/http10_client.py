"""MD0508 Http10Client: a client speaks HTTP/1.0 and a sidecar (or gateway) answers 426 Upgrade Required.

Anti-pattern: debugging the server app: it never saw the request. The classic case is nginx in front of
a meshed service with ``proxy_pass`` and no ``proxy_http_version 1.1`` (nginx's default upstream protocol
is HTTP/1.0).

Best practice: recognise Envoy's refusal in the access log of the proxy that received the request and
name the client by its address.

What real Envoy does (1.40, checked in the lab; the listeners built as istiod builds them):
- An HTTP connection manager without ``accept_http_10`` (Istio sets it only with PILOT_HTTP10=1 or the
  proxy metadata HTTP10=1) answers ``426 Upgrade Required`` and logs ``"- - HTTP/1.1" 426 DPE
  low_version``: the downstream protocol error flag, no method, no path, no upstream cluster. That is
  where HTTP/1.0 lands on a gateway, and on a sidecar's inbound HTTP chain for a plain-text client (the
  permissive inbound HTTP chain has no ALPN condition).
- A meshed client's own sidecar does *not* answer 426: its outbound HTTP chain matches only ``http/1.1``
  and ``h2c`` (pilot listener.go plaintextHTTPALPNs), so HTTP/1.0 falls to the passthrough TCP chain
  without routing, and fails where the server is STRICT. That form has no failure flag in the client's
  log and is not diagnosed here.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

from kubectl_meshdoctor.checks._failed_upstreams import access_logs
from kubectl_meshdoctor.checks.base import Check, finding, pod_subject, shorten
from kubectl_meshdoctor.checks.context import AnalysisContext, key_of
from kubectl_meshdoctor.checks.upstream_failures_logged import NO_CLUSTER
from kubectl_meshdoctor.evidence import AccessLogEntry, Evidence
from kubectl_meshdoctor.findings import Finding

REJECTED_DETAILS = "low_version"  # Envoy's response code details for a refused HTTP/1.0 request
FIX = ("Make the client speak HTTP/1.1: for nginx, `proxy_http_version 1.1;` and `proxy_set_header Connection "
       '"";` in the location that proxies to the service. Or accept HTTP/1.0 in Istio (istiod env PILOT_HTTP10=1, '
       "or the proxy metadata ISTIO_META_HTTP10=1 on the receiving pods).")


def _rejected(entry: AccessLogEntry) -> bool:
    return entry.response_code == 426 and "DPE" in entry.flags and f" {REJECTED_DETAILS} " in entry.line


def _client_address(entry: AccessLogEntry) -> str:
    """%DOWNSTREAM_REMOTE_ADDRESS%: the token after the downstream local address in Istio's format."""
    tokens = entry.line.split()
    local = entry.downstream_local_address
    if local and local in tokens:
        index = tokens.index(local)
        if index + 1 < len(tokens):
            return tokens[index + 1].rpartition(":")[0]
    return ""


class Http10Client(Check):
    name = "Http10Client"
    codes = ("MD0508",)
    needs = frozenset({Evidence.ACCESS_LOG})

    def run(self, ctx: AnalysisContext) -> Iterable[Finding]:
        pods_by_ip = {(p.get("status") or {}).get("podIP"): p for p in ctx.pods if (p.get("status") or {}).get("podIP")}
        for key, _, log in access_logs(ctx):
            rejected = [e for e in log.failures if _rejected(e)]
            if not rejected:
                continue
            count = sum(n for flags, cluster, n in log.failure_counts if "DPE" in flags.split(",") and not cluster)
            by_client: dict[str, list[AccessLogEntry]] = defaultdict(list)
            for entry in rejected:
                by_client[_client_address(entry)].append(entry)
            for address, entries in sorted(by_client.items()):
                client = pods_by_ip.get(address)
                who = f"pod {key_of(client)} ({address})" if client else f"a client at {address or 'an unknown address'}"
                ports = sorted({e.downstream_local_address.rpartition(":")[2] for e in entries} - {""})
                evidence = [f"access log of {key}: {count or len(rejected)} request(s) refused with 426 Upgrade Required "
                            f"(DPE {REJECTED_DETAILS}: HTTP/1.0 not accepted)",
                            *(f"sample: {shorten(e.line, 300)}" for e in entries[:2]),
                            f"client: {who}"]
                if client is None:
                    evidence.append("no pod among the objects read has that address (outside the mesh or another "
                                    "namespace: sweep with -A to name it)")
                yield finding("MD0508", pod_subject(key_of(client)) if client else pod_subject(key),
                              f"{who} speaks HTTP/1.0 to {key}" + (f" port {', '.join(ports)}" if ports else "")
                              + ": its sidecar answers 426 Upgrade Required (HTTP/1.0 is off in Istio)",
                              evidence, pod=key, remediation=FIX, upstreams=(NO_CLUSTER,))


CHECK = Http10Client()
