"""MD0509 AppNotListening: the server's own sidecar cannot connect to its app (inbound UF, connection refused).

Anti-pattern: debugging mTLS or the client when the server pod's sidecar itself logs that the app
refused the connection.

Best practice: read the *server's* sidecar: a UF toward ``inbound|PORT||`` whose transport failure
reason is ``delayed_connect_error:_Connection_refused`` (older Envoys print ``_111``) means nothing
accepts connections on the pod IP at that port. Either the app does not listen on the Service's
targetPort (compare the containers' ports), or it listens on 127.0.0.1 only: since Istio 1.10 the
sidecar delivers inbound traffic to the pod IP (as without a mesh), no longer to localhost.

Real Envoy (1.40, checked in the lab with an app bound to 127.0.0.1): on an HTTP port ``503 UF
upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}``,
on a TCP port ``"- - -" 0 UF,URX``, both toward ``inbound|9100||``.
"""

from __future__ import annotations

from typing import Iterable

from kubectl_meshdoctor.checks._failed_upstreams import failed_upstreams
from kubectl_meshdoctor.checks.base import Check, finding, pod_subject
from kubectl_meshdoctor.checks.context import SIDECAR_CONTAINER, AnalysisContext
from kubectl_meshdoctor.evidence import Evidence
from kubectl_meshdoctor.findings import Finding

REFUSED = ("connection_refused", "_111")


def _app_ports(pod: dict) -> list[int]:
    return sorted({p.get("containerPort") for c in (pod.get("spec") or {}).get("containers") or []
                   if c.get("name") != SIDECAR_CONTAINER for p in c.get("ports") or [] if p.get("containerPort")})


def _restarts(pod: dict) -> list[str]:
    return [f"container {s.get('name')} restarted {s.get('restartCount')} time(s)"
            for s in (pod.get("status") or {}).get("containerStatuses") or []
            if s.get("name") != SIDECAR_CONTAINER and s.get("restartCount")]


class AppNotListening(Check):
    name = "AppNotListening"
    codes = ("MD0509",)
    needs = frozenset({Evidence.ACCESS_LOG, Evidence.PODS})

    def run(self, ctx: AnalysisContext) -> Iterable[Finding]:
        for failed in failed_upstreams(ctx, "UF"):
            name = failed.istio_name
            if name is None or name.direction != "inbound" or name.port is None:
                continue
            reasons = {e.transport_failure_reason for e in failed.samples}
            if not any(marker in reason.lower() for reason in reasons for marker in REFUSED):
                continue
            pod = ctx.pod(failed.pod)
            evidence = failed.evidence_head("UF")
            evidence.append(f"upstream transport failure: {', '.join(sorted(r for r in reasons if r))}")
            declared = _app_ports(pod) if pod else []
            services = [s for s in (ctx.services_selecting(pod) if pod else [])
                        if any(p.get("targetPort", p.get("port")) == name.port or p.get("port") == name.port
                               for p in (s.get("spec") or {}).get("ports") or [])]
            for service in services:
                evidence.append(f"Service {service['metadata'].get('namespace')}/{service['metadata']['name']} "
                                f"sends to port {name.port} of this pod")
            evidence.append(f"the app's containers declare port(s): {', '.join(map(str, declared)) or 'none'}")
            evidence += _restarts(pod) if pod else []
            if declared and name.port not in declared:
                message = (f"nothing accepts connections on port {name.port} in {failed.pod}: the app declares "
                           f"{', '.join(map(str, declared))}, not {name.port}")
                fix = (f"Make the Service's targetPort the port the app really listens on, or make the app listen "
                       f"on {name.port}.")
            else:
                message = (f"the app in {failed.pod} refuses the sidecar's connections on port {name.port}: it "
                           "listens on 127.0.0.1 only, or not at all (since Istio 1.10 inbound traffic goes to "
                           "the pod IP)")
                fix = (f"Make the app listen on 0.0.0.0 (all addresses) on port {name.port}, not on "
                       "localhost/127.0.0.1; if it is not listening at all, see why it did not start.")
            yield finding("MD0509", pod_subject(failed.pod), message, evidence, pod=failed.pod,
                          remediation=fix, upstreams=(failed.cluster,))


CHECK = AppNotListening()
