"""The failing access-log lines of each proxy, grouped by upstream cluster, for the checks that explain them.

MD0601 reports the lines; the checks of the MD05xx causes (no healthy upstream, circuit breaker,
timeout, ...) each look at the lines carrying their flag, per upstream cluster, and say why. They share
this walk so that "the lines with flag X toward cluster C in pod P" means the same thing in every check,
and so that their findings carry the same ``upstreams`` key MD0601 does (the tree links them by it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from kubectl_meshdoctor.checks.context import AnalysisContext, IstioClusterName
from kubectl_meshdoctor.checks.upstream_failures_logged import failure_counts
from kubectl_meshdoctor.evidence import AccessLog, AccessLogEntry, ProxyEvidence, UpstreamClusterStatus
from kubectl_meshdoctor.findings import Subject


@dataclass(frozen=True)
class FailedUpstream:
    """Failing requests of one proxy toward one upstream cluster that carry a given flag."""

    pod: str
    proxy: ProxyEvidence
    cluster: str
    count: int
    samples: tuple[AccessLogEntry, ...]

    @property
    def istio_name(self) -> IstioClusterName | None:
        return IstioClusterName.parse(self.cluster)

    @property
    def status(self) -> UpstreamClusterStatus | None:
        """What the proxy's /clusters said about this cluster (None when it was not read)."""
        return self.proxy.upstream_cluster(self.cluster)

    def service_subject(self) -> Subject:
        """The Service the cluster is for (from its host name), when no Istio object is more to blame."""
        name = self.istio_name
        parts = name.host.split(".") if name else [self.cluster]
        return Subject("Service", parts[0], parts[1] if len(parts) > 1 else None)

    def evidence_head(self, flag: str) -> list[str]:
        lines = [f"access log of {self.pod}: {self.count} request(s) with {flag} → {self.cluster}"]
        lines += [f"sample: {entry.line[:300]}" for entry in self.samples[:2]]
        return lines


def access_logs(ctx: AnalysisContext) -> Iterator[tuple[str, ProxyEvidence, AccessLog]]:
    """(pod key, proxy evidence, access log) of every proxy whose log was read, in pod order."""
    for key, proxy in sorted(ctx.proxies.items()):
        if proxy.access_log is not None:
            yield key, proxy, proxy.access_log


def failed_upstreams(ctx: AnalysisContext, flag: str) -> Iterator[FailedUpstream]:
    """Per proxy and upstream cluster, the failing lines whose flags include ``flag``."""
    for key, proxy, log in access_logs(ctx):
        per_cluster: dict[str, int] = {}
        for (flags, cluster), count in failure_counts(log).items():
            if flag in flags:
                per_cluster[cluster] = per_cluster.get(cluster, 0) + count
        for cluster, count in sorted(per_cluster.items()):
            samples = tuple(e for e in log.failures if flag in e.flags and e.upstream_cluster == cluster)
            yield FailedUpstream(key, proxy, cluster, count, samples)
