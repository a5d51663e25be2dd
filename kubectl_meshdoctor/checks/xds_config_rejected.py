"""MD0202 XdsConfigRejected: Envoy refused configuration istiod pushed to it.

Anti-pattern: assuming that what ``kubectl get`` shows (an EnvoyFilter, a DestinationRule) is what the
proxy runs. A resource Envoy NACKs is simply not applied, and the proxy keeps stale or no config.

Best practice: read Envoy's own record: the ``update_rejected`` counters pilot-agent reads for
readiness, and the ``error_state`` Envoy keeps in config_dump for each refused resource with its
reason. Quote the reason; it usually names the offending field.

Why: rejected pushes are silent from the Kubernetes side. Before the first successful push they keep
the sidecar not ready (pilot-agent: "config received from XDS server, but was rejected"); later they
freeze the proxy on old routes and clusters.

Decision: the rejection counters are cumulative since Envoy started. When config_dump is available and
shows no resource in error, and CDS and LDS both succeeded, an old rejection was superseded by
accepted updates: no finding. Without config_dump the counters alone are reported as a warning,
because whether the rejection is still in effect cannot be told.
"""

from __future__ import annotations

from typing import Iterable

from kubectl_meshdoctor.checks.base import Check, finding, pod_subject, shorten
from kubectl_meshdoctor.checks.context import AnalysisContext
from kubectl_meshdoctor.checks.xds_config_not_received import (
    CDS_REJECTED, LDS_REJECTED, REJECTED, config_verdict, update_counts,
)
from kubectl_meshdoctor.evidence import Evidence
from kubectl_meshdoctor.findings import Finding, Severity

MAX_DETAILS = 400  # Envoy's rejection details can run to kilobytes (a whole proto dump)
MAX_REJECTED_SHOWN = 5


class XdsConfigRejected(Check):
    name = "XdsConfigRejected"
    codes = ("MD0202",)
    # PROXY_CONFIG is used when present; ``needs`` is all-of, so only the stats are required.
    needs = frozenset({Evidence.PROXY_STATS})

    def run(self, ctx: AnalysisContext) -> Iterable[Finding]:
        for key, proxy in sorted(ctx.proxies.items()):
            if proxy.stats is None:
                continue
            rejected_updates = proxy.stats.get(CDS_REJECTED, 0) + proxy.stats.get(LDS_REJECTED, 0)
            rejected_resources = proxy.config.rejected if proxy.config is not None else ()
            verdict = config_verdict(proxy.stats)
            blocks_readiness = verdict.startswith(REJECTED)
            if not rejected_resources and not blocks_readiness:
                if rejected_updates == 0 or proxy.config is not None:
                    continue
            evidence = [f"pilot-agent verdict: {verdict}" if blocks_readiness else f"counters: {update_counts(proxy.stats)}"]
            for item in rejected_resources[:MAX_REJECTED_SHOWN]:
                evidence.append(f"{item.resource} {item.name} rejected: {_trim(item.details)}")
            if len(rejected_resources) > MAX_REJECTED_SHOWN:
                evidence.append(f"... and {len(rejected_resources) - MAX_REJECTED_SHOWN} more rejected resources")
            if rejected_resources or blocks_readiness:
                names = ", ".join(f"{r.resource} {r.name}" for r in rejected_resources[:2])
                more = f" and {len(rejected_resources) - 2} more" if len(rejected_resources) > 2 else ""
                message = (f"Envoy in {key} rejected configuration from istiod ({names}{more})" if names
                           else f"Envoy in {key} rejected configuration from istiod")
                yield finding("MD0202", pod_subject(key), message, evidence, pod=key)
            else:
                evidence.append("config_dump not available: cannot tell whether the rejection is still in effect")
                yield finding(
                    "MD0202", pod_subject(key),
                    f"Envoy in {key} rejected {rejected_updates} configuration update(s) from istiod",
                    evidence, pod=key, severity=Severity.WARNING,
                )


def _trim(text: str) -> str:
    return shorten(" ".join(text.split()), MAX_DETAILS)


CHECK = XdsConfigRejected()
