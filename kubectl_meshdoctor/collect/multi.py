"""Several clusters in one run: the single-cluster collection once per kubeconfig context, concurrently.

Each cluster is swept exactly as ``--context X`` alone would sweep it (its own connection, its own pool
of ``--concurrency`` pod workers), so the politeness limits hold per API server and nothing of the
single-cluster path changes. The clusters run side by side because each mostly waits on its own API
server. A cluster that cannot be read (unreachable, refused, its namespace or pod absent) becomes the
reason on that cluster, not the end of the run; only when no cluster could be read does the run fail,
with the error of the first cluster (exit 3 when unreachable, 2 for a usage error).
"""

from __future__ import annotations

import concurrent.futures
from dataclasses import replace

from kubectl_meshdoctor.collect import CollectOptions
from kubectl_meshdoctor.collect.cluster_progress import ClusterProgress
from kubectl_meshdoctor.collect.eastwest import read_east_west
from kubectl_meshdoctor.collect.clusterz import read_clusterz
from kubectl_meshdoctor.collect.proxy import Cancellation
from kubectl_meshdoctor.collect.remote_endpoints import read_shared_endpoints
from kubectl_meshdoctor.collect.trust_anchor import read_trust_anchor
from kubectl_meshdoctor.collect.kube import _named, _read_kubeconfig, kubeconfig_paths, resolve_target
from kubectl_meshdoctor.errors import ClusterError, MeshDoctorError, UsageError
from kubectl_meshdoctor.multibundle import ClusterEvidence, MultiClusterBundle, mesh_identity

WORKER_PREFIX = "meshdoctor-cluster"
CANCEL_GRACE_SECONDS = 10.0  # each sweep's own workers get a few seconds; the cluster threads wait for them


def kubeconfig_contexts(kubeconfig: str | None) -> list[str]:
    """Every context of the kubeconfig (files merged in kubectl's order, first definition wins)."""
    names: list[str] = []
    for path in kubeconfig_paths(kubeconfig):
        for entry in _named(_read_kubeconfig(path), "contexts", path):
            if entry["name"] not in names:
                names.append(str(entry["name"]))
    return names


def requested_contexts(kubeconfig: str | None, context: str | None, all_contexts: bool) -> list[str] | None:
    """The contexts of a multi-cluster run, or None for an ordinary single-cluster run.

    ``--context a,b`` names several; a context whose own name holds a comma still works alone.
    """
    if all_contexts:
        if context:
            raise UsageError("--all-contexts and --context both choose the clusters: give one of them")
        names = kubeconfig_contexts(kubeconfig)
        if not names:
            raise UsageError("--all-contexts: the kubeconfig has no context")
        return names
    if not context or "," not in context:
        return None
    known = kubeconfig_contexts(kubeconfig)
    if context in known:
        return None
    names = list(dict.fromkeys(part.strip() for part in context.split(",")))
    if not all(names):
        raise UsageError(f"--context {context!r}: empty context name in the list")
    unknown = [name for name in names if name not in known]
    if unknown:
        # A typo is the user's to fix now, not a cluster to report as unreachable after the sweep.
        raise UsageError(f"context {', '.join(map(repr, unknown))} not found in the kubeconfig "
                         f"(contexts: {', '.join(known) or 'none'})")
    return names


def collect_clusters(options: CollectOptions, contexts: list[str]) -> MultiClusterBundle:
    """One collection per context, concurrently; raises only when no cluster could be read."""
    from kubectl_meshdoctor.collect.sweep import collect

    cancellation = Cancellation()
    display = ClusterProgress(contexts) if options.progress else None  # one bar per cluster, on a terminal

    def one(context: str) -> tuple[ClusterEvidence, MeshDoctorError | None]:
        cluster = replace(options.cluster, context=context)
        try:
            server = resolve_target(kubeconfig_paths(cluster.kubeconfig), context).server
            bundle = collect(replace(options, cluster=cluster, progress=False, cancellation=cancellation,
                                     progress_sink=display.sink(context) if display is not None else None))
            read_east_west(cluster, bundle)  # only a mesh of several clusters needs the gateway between them
            clusterz = read_clusterz(cluster, bundle, options.pod_timeout, cancellation)
            return ClusterEvidence(context, bundle, identity=mesh_identity(bundle), server=server,
                                   clusterz=clusterz, trust_anchor=read_trust_anchor(cluster, bundle)), None
        except MeshDoctorError as exc:
            return ClusterEvidence(context, None, str(exc)), exc

    executor = concurrent.futures.ThreadPoolExecutor(max_workers=len(contexts), thread_name_prefix=WORKER_PREFIX)
    futures = [executor.submit(one, context) for context in contexts]
    if display is not None:
        display.start()
        for future, context in zip(futures, contexts):
            future.add_done_callback(display.when_done(context))
    try:
        # Short waits keep the main thread responsive to Ctrl-C, which only the main thread receives.
        while not all(f.done() for f in futures):
            concurrent.futures.wait(futures, timeout=0.2)
        results = [f.result() for f in futures]
    except BaseException:
        # Ctrl-C: every cluster's pod workers stop at their next exec (blocked streams are shut down),
        # so each sweep ends within moments and its threads are gone before the interrupt is reported.
        cancellation.cancel()
        executor.shutdown(wait=False, cancel_futures=True)
        concurrent.futures.wait(futures, timeout=CANCEL_GRACE_SECONDS)
        raise
    finally:
        if display is not None:
            display.stop()
    executor.shutdown(wait=True)
    # Once every cluster is read: which Services run in several, and what one sidecar of each holds for them.
    read_shared_endpoints(options, [cluster for cluster, _ in results], cancellation)
    bundle = MultiClusterBundle([cluster for cluster, _ in results])
    if not bundle.readable:
        errors = [error for _, error in results if error is not None]
        reasons = "; ".join(f"{cluster.context}: {cluster.unreachable}" for cluster, _ in results)
        if all(isinstance(error, UsageError) for error in errors):
            raise UsageError(f"no cluster could be read: {reasons}")
        raise ClusterError(f"no cluster could be read: {reasons}")
    return bundle
