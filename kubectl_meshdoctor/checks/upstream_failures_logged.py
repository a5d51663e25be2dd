"""MD0601 UpstreamFailuresLogged: the sidecar's access log shows failing requests, flag by flag.

Anti-pattern: reading "503" and guessing; or concluding "no failures" from an empty access log when
access logging is simply off (it is off unless ``meshConfig.accessLogFile`` or a Telemetry resource
turns it on).

Best practice: count the failures per response flag and upstream cluster, explain each flag in plain
words (UF: could not connect; NR: no route; NC: no such cluster ...), and quote a few real lines,
including Envoy's upstream transport failure reason. Say plainly when access logging is off.

Why: Envoy's response flags are the shortest path from "requests fail" to "why": they tell connection
failures, missing routes and missing clusters apart. Deeper checks (mTLS mismatch, missing subset,
certificates) then explain the flags, and the failure tree links them to this finding.

Decisions: "access logging is off" is reported as an info finding of this code rather than a gap: the
evidence *was* collected, and its absence of access lines is a fact about the mesh's configuration with
its own remediation. Info never changes a pod's status or the exit code. It is reported when config_dump
says no listener logs, or, without that knowledge, when the log had lines but none was an access-log
line. Its message and subject (the mesh config) are pod-independent so a sweep shows it once.
Flags that report no failure (DI delay injected, RFCF served from cache) are not counted.
One finding per upstream cluster (``upstreams``): a deeper check that explains the failures toward one
cluster (no healthy endpoint, circuit breaker, timeout) is linked to that cluster's finding only, and the
failures toward other clusters stay root causes of their own.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Callable, Iterable

from kubectl_meshdoctor.checks.base import Check, finding, moment, pod_subject, shorten
from kubectl_meshdoctor.checks.context import ROOT_NAMESPACE, AnalysisContext
from kubectl_meshdoctor.evidence import AccessLog, Evidence, ProxyEvidence
from kubectl_meshdoctor.findings import Finding, Severity, Subject

describe: Callable[[str], str]
try:  # the flag table is owned by the envoy package; until it lands the flags are shown unexplained
    from kubectl_meshdoctor.envoy.response_flags import describe
except ImportError:  # pragma: no cover - only while the envoy package is being written
    def describe(flag: str) -> str:
        return f"{flag}: meaning not available"

NOT_FAILURES = frozenset({"DI", "RFCF"})
# The upstream key of lines that reached no cluster (NR): Envoy's own "-" for an empty %UPSTREAM_CLUSTER%.
NO_CLUSTER = "-"
MAX_SAMPLES = 3
MAX_LINE = 300
LOGGING_OFF = "access logging is off: no request outcome could be checked"
LOGGING_FIX = (
    "Turn access logs on to see request outcomes: set meshConfig.accessLogFile: /dev/stdout, or apply a "
    "Telemetry resource in istio-system with accessLogging: [{providers: [{name: envoy}]}]."
)


def failure_counts(log: AccessLog) -> Counter[tuple[tuple[str, ...], str]]:
    """(flags, cluster) -> failures; from the collector's counts, else from the sampled entries."""
    counts: Counter[tuple[tuple[str, ...], str]] = Counter()
    if log.failure_counts:
        for flags, cluster, count in log.failure_counts:
            counts[(_failing(flags.split(",")), cluster)] += count
    else:
        for entry in log.failures:
            counts[(_failing(entry.flags), entry.upstream_cluster)] += 1
    return Counter({k: v for k, v in counts.items() if k[0]})


def _failing(flags: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({f.strip() for f in flags if f.strip() and f.strip() not in NOT_FAILURES and f.strip() != "-"}))


def config_never_received(proxy: ProxyEvidence) -> bool:
    """True when the proxy is still waiting for its first configuration from istiod.

    Its listeners (and so their access-log settings) come from istiod: with none received, "logging is
    off" would be a false conclusion. That proxy's problem is MD0201, not its telemetry.
    """
    if proxy.server_info is not None and proxy.server_info.state in ("PRE_INITIALIZING", "INITIALIZING"):
        return True
    stats = proxy.stats or {}
    return proxy.stats is not None and not stats.get("listener_manager.lds.update_success", 0)


def logging_off(proxy: ProxyEvidence) -> bool:
    log = proxy.access_log
    if log is None or log.access_lines or config_never_received(proxy):
        return False
    configured = proxy.config.access_log_configured if proxy.config is not None else None
    return configured is False or (configured is None and log.lines_read > 0)


def _trim(line: str) -> str:
    return shorten(line.strip(), MAX_LINE)


_TEXT_START = re.compile(r"^\[([0-9T:.+\-Z]+)\]")  # Istio's text format begins [START_TIME]
_JSON_START = re.compile(r'"start_time"\s*:\s*"([^"]+)"')


def _logged_at(line: str) -> str | None:
    """The request's start time in an access-log line (text or JSON format), as logged."""
    found = _TEXT_START.search(line) or _JSON_START.search(line)
    return found.group(1) if found else None


class UpstreamFailuresLogged(Check):
    name = "UpstreamFailuresLogged"
    codes = ("MD0601",)
    needs = frozenset({Evidence.ACCESS_LOG})

    def run(self, ctx: AnalysisContext) -> Iterable[Finding]:
        for key, proxy in sorted(ctx.proxies.items()):
            log = proxy.access_log
            if log is None:
                continue
            if logging_off(proxy):
                evidence = [f"{log.lines_read} istio-proxy log lines read, none an access-log entry"]
                if proxy.config is not None and proxy.config.access_log_configured is False:
                    evidence.append("config_dump: no listener configures an access log")
                yield finding("MD0601", Subject("ConfigMap", "istio", ROOT_NAMESPACE), LOGGING_OFF, evidence,
                              pod=key, severity=Severity.INFO, remediation=LOGGING_FIX)
                continue
            counts = failure_counts(log)
            by_cluster: dict[str, Counter[tuple[str, ...]]] = {}
            for (flags, cluster), count in counts.items():
                by_cluster.setdefault(cluster, Counter())[flags] += count
            for cluster, flag_counts in sorted(by_cluster.items()):
                yield _failures_to(key, cluster, flag_counts, log)


def _failures_to(key: str, cluster: str, counts: Counter[tuple[str, ...]], log: AccessLog) -> Finding:
    """One finding per upstream cluster, so a cause found for that cluster can be linked to exactly it."""
    total = sum(counts.values())
    flags_seen = sorted({flag for flags in counts for flag in flags})
    by_count = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    evidence = [f"{','.join(flags)} ×{count} → {cluster or '(no cluster)'}" for flags, count in by_count]
    evidence += [describe(flag) for flag in flags_seen]
    samples = [entry for entry in log.failures if _failing(entry.flags) and entry.upstream_cluster == cluster]
    evidence += [f"sample: {_trim(entry.line)}" for entry in samples[:MAX_SAMPLES]]
    summary = ", ".join(f"{','.join(flags)} ×{count}" for flags, count in by_count[:3])
    where = f" to {cluster}" if cluster else " (no upstream cluster)"
    first = min((t for t in (_logged_at(e.line) for e in samples) if t), default=None)
    return finding(
        "MD0601", pod_subject(key),
        f"{total} failed request(s) in the access log of {key}{where}: {summary}",
        evidence, pod=key, upstreams=(cluster or NO_CLUSTER,),
        since=[moment(first, "first failed request logged", key)],
    )


CHECK = UpstreamFailuresLogged()
