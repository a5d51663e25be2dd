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
from kubectl_meshdoctor.evidence import AccessLogEntry, ProxyEvidence, UpstreamClusterStatus


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

    def evidence_head(self, flag: str) -> list[str]:
        lines = [f"access log of {self.pod}: {self.count} request(s) with {flag} → {self.cluster}"]
        lines += [f"sample: {entry.line[:300]}" for entry in self.samples[:2]]
        return lines


def failed_upstreams(ctx: AnalysisContext, flag: str) -> Iterator[FailedUpstream]:
    """Per proxy and upstream cluster, the failing lines whose flags include ``flag``."""
    for key, proxy in sorted(ctx.proxies.items()):
        log = proxy.access_log
        if log is None:
            continue
        per_cluster: dict[str, int] = {}
        for (flags, cluster), count in failure_counts(log).items():
            if flag in flags:
                per_cluster[cluster] = per_cluster.get(cluster, 0) + count
        for cluster, count in sorted(per_cluster.items()):
            samples = tuple(e for e in log.failures if flag in e.flags and e.upstream_cluster == cluster)
            yield FailedUpstream(key, proxy, cluster, count, samples)
