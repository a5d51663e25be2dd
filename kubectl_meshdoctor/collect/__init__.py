"""Collection: the only layer that talks to a cluster. It turns a scope into an evidence bundle.

The CLI calls ``collect_evidence(CollectOptions(...))``; everything below it (the Kubernetes client,
exec into istio-proxy, the bounded worker pool) lives in this package.
"""

from __future__ import annotations

from dataclasses import dataclass, field


# Requests to proxies in flight at once (execs into istio-proxy, log reads), over all pods of a sweep:
# each mostly waits on the API server and kubelet. Chosen by measurement (bench/RESULTS.md).
DEFAULT_CONCURRENCY = 32


@dataclass(frozen=True)
class ClusterOptions:
    kubeconfig: str | None = None  # None: $KUBECONFIG, else ~/.kube/config
    context: str | None = None
    request_timeout: float | None = None  # seconds, for each API call


@dataclass(frozen=True)
class CollectOptions:
    cluster: ClusterOptions
    namespace: str | None = None  # None: the context's namespace, else "default"
    all_namespaces: bool = False
    pod: str | None = None  # set for `pod NAME`; None for a sweep
    concurrency: int = DEFAULT_CONCURRENCY
    pod_timeout: float = 60.0  # seconds for all execs of one pod
    log_since_seconds: int = 900  # istio-proxy log window (--since)
    progress: bool = True  # rich progress bar on stderr (off for -o json/yaml)
    # Multi-cluster runs: one proxy.Cancellation shared by every cluster's sweep, which runs outside the
    # main thread and so never sees Ctrl-C itself. None: the sweep makes its own.
    cancellation: object | None = field(default=None, compare=False)
    # Multi-cluster runs with progress: the sweep reports its pods through this (cluster_progress.py) instead
    # of drawing a bar of its own. Called with the number of pods, it returns the callable to advance.
    progress_sink: object | None = field(default=None, compare=False)


def collect_evidence(options: CollectOptions):  # -> EvidenceBundle
    """Collect the evidence for ``options``' scope. Raises UsageError (2) or ClusterError (3)."""
    from kubectl_meshdoctor.collect.sweep import collect  # the implementation lands in sweep.py

    return collect(options)
