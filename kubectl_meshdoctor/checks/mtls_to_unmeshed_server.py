"""MD0401 from the server's side: a pod without sidecar that mesh clients are told to reach with mTLS.

Anti-pattern: as in MtlsToPlaintextEndpoint (a headless Redis without sidecar behind a DestinationRule
forcing ``ISTIO_MUTUAL``), seen from the pod the on-call engineer names: ``pod redis-0``. That pod
has no istio-proxy to read, and the clients' Envoys are not examined in a one-pod run.

Best practice: look at such a pod as a server: the Services that select it, and what the mesh's
configuration tells clients to do toward them.

Why: clients originate Istio mTLS toward every endpoint of a host when a DestinationRule for it sets
``tls.mode: ISTIO_MUTUAL`` (top level or for one of its ports), or, for a headless Service, when its
pods are labelled ``security.istio.io/tlsMode=istio`` (Istio then keeps mTLS on the ORIGINAL_DST
cluster). A pod without sidecar cannot terminate it: every such call fails.

Decisions: live evidence only (in manifests no pod is injected yet). The finding carries the server
pod and the same subject and message as the clients' MD0401, so a sweep shows one cause for both
sides; its evidence names the DestinationRule or label that forces mTLS.
"""

from __future__ import annotations

from typing import Iterable

from kubectl_meshdoctor.checks.base import Check, finding
from kubectl_meshdoctor.checks.context import TLS_MODE_LABEL, AnalysisContext, key_of, labels_of, service_fqdn
from kubectl_meshdoctor.checks.mtls_to_plaintext_endpoint import plaintext_reason, reached_with_mtls
from kubectl_meshdoctor.evidence import Evidence
from kubectl_meshdoctor.findings import Finding, Subject
from kubectl_meshdoctor.workloads import dig, listed

FORCING_MODE = "ISTIO_MUTUAL"


def forced_mtls(rule: dict) -> list[str]:
    """Where a DestinationRule forces Istio mTLS for its whole host (subsets aside)."""
    policy = dig(rule, "spec", "trafficPolicy")
    places = []
    if str(dig(policy, "tls").get("mode") or "").upper() == FORCING_MODE:
        places.append("trafficPolicy.tls.mode")
    for setting in listed(policy.get("portLevelSettings")):
        if str(dig(setting, "tls").get("mode") or "").upper() == FORCING_MODE:
            number = dig(setting, "port").get("number")
            places.append(f"trafficPolicy.portLevelSettings[{number}].tls.mode")
    return places


class MtlsToUnmeshedServer(Check):
    name = "MtlsToUnmeshedServer"
    codes = ("MD0401",)
    # DestinationRules are read when collected (ISTIO_CONFIG); the tlsMode-label reason needs none.
    needs = frozenset({Evidence.PODS, Evidence.SERVICES})

    def run(self, ctx: AnalysisContext) -> Iterable[Finding]:
        if not ctx.live:
            return
        for pod in ctx.pods:
            reason = plaintext_reason(pod)
            if reason != "no istio-proxy":
                continue
            for service in ctx.services_selecting(pod):
                meta = dig(service, "metadata")
                fqdn = service_fqdn(str(meta.get("name")), str(meta.get("namespace") or "default"))
                evidence = [f"DestinationRule {key_of(rule)} {place}: {FORCING_MODE}"
                            for rule in ctx.destination_rules_for(fqdn) for place in forced_mtls(rule)]
                headless = dig(service, "spec").get("clusterIP") == "None"
                if headless and labels_of(pod).get(TLS_MODE_LABEL) == "istio":
                    evidence.append(f"headless Service and the pod is labelled {TLS_MODE_LABEL}=istio: clients keep "
                                    "mTLS on its ORIGINAL_DST cluster")
                if not evidence:
                    continue
                behind = ctx.pods_behind(service)
                behind += [pod] if key_of(pod) not in {key_of(p) for p in behind} else []
                bad = [p for p in behind if plaintext_reason(p)]
                evidence.insert(0, f"pod {key_of(pod)} has no istio-proxy: it cannot terminate Istio mTLS")
                evidence.append(f"mesh clients of {fqdn} therefore originate Istio mTLS to it; each call fails "
                                "(client access log: UF,URX with a TLS failure)")
                yield finding("MD0401", Subject("Service", str(meta.get("name")), meta.get("namespace")),
                              reached_with_mtls(key_of(service), len(bad), len(behind)), evidence,
                              pod=key_of(pod))


CHECK = MtlsToUnmeshedServer()
