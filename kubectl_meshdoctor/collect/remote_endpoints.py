"""Which endpoints a sidecar holds for the Services shared by clusters: read only in multi-cluster runs.

An istiod that does not read another cluster (MD0701) leaves its sidecars with only the local endpoints
of a Service that also runs there. To show that, once every cluster of the run is swept, the plugin
asks ONE sidecar per cluster (one it already examined, so one that answers) for the EDS of the outbound
clusters of those Services' namespaces, with the one parameterised command of ``collect/endpoint_query.py``
(one extra exec per cluster), and keeps the endpoints of those Services only. Nothing is asked in a single-cluster run, nor when no
Service runs, ready, in two clusters. A failed or refused exec is a gap of that cluster (not of the pod: its own examination is complete).

The clusters are asked one after the other: one short exec each, after the concurrent sweeps (measured
on the lab: 8.5 kB and about 5 ms for bookinfo's namespace). There is no curl fallback for an image
without pilot-agent: that would be a second exec; its exit 127 is a gap like any other failure.
"""

from __future__ import annotations

from dataclasses import replace

from kubectl_meshdoctor.bundle import EvidenceBundle
from kubectl_meshdoctor.collect import ClusterOptions, CollectOptions
from kubectl_meshdoctor.collect.endpoint_query import endpoint_query, outbound_cluster
from kubectl_meshdoctor.collect.kube import connect
from kubectl_meshdoctor.collect.proxy import Cancellation, exec_command
from kubectl_meshdoctor.envoy.eds import parse_endpoint_configs
from kubectl_meshdoctor.errors import ClusterError, ExecError, ParseError
from kubectl_meshdoctor.shared_services import SharedPort, shared_ports

WHAT = "endpoints of services shared with other clusters (EDS)"


def read_shared_endpoints(options: CollectOptions, clusters: list, cancellation: Cancellation | None = None) -> None:
    """Fill ``endpoints`` of each readable ClusterEvidence that shares a Service with another cluster."""
    readable = [c for c in clusters if c.bundle is not None]
    if len(readable) < 2:
        return
    wanted = shared_ports({c.context: c.bundle.objects for c in readable})
    for cluster in readable:
        if wanted.get(cluster.context) and not (cancellation and cancellation.cancelled):
            cluster.endpoints = read_endpoints(replace(options.cluster, context=cluster.context), cluster.bundle,
                                               wanted[cluster.context], options.pod_timeout, cancellation)


def read_endpoints(cluster: ClusterOptions, bundle: EvidenceBundle, ports: list[SharedPort], timeout: float,
                   cancellation: Cancellation | None = None) -> dict | None:
    """``{"pod", "asked": [cluster names], "clusters": {name: [endpoint]}}`` from one sidecar; None: a gap."""
    pod = examined_sidecar(bundle, ports)
    if pod is None:
        bundle.add_gap(WHAT, "no sidecar of this cluster was examined, so none was asked")
        return None
    asked = list(dict.fromkeys(outbound_cluster(p.port, p.host) for p in ports))
    namespace, name = pod.split("/", 1)
    try:
        kube = connect(cluster)
        try:
            output = exec_command(kube.api_client, namespace, name, endpoint_query([p.namespace for p in ports]), timeout,
                                  cancellation=cancellation)
        finally:
            kube.close()
    except (ClusterError, ExecError) as exc:
        bundle.add_gap(WHAT, f"sidecar {pod}: {exc}")
        return None
    if output.exit_code != 0:
        reason = output.stderr.decode(errors="replace").strip()[:200]
        bundle.add_gap(WHAT, f"sidecar {pod}: exit {output.exit_code}: {reason}")
        return None
    try:
        held = parse_endpoint_configs(output.stdout)
    except ParseError as exc:
        bundle.add_gap(WHAT, f"sidecar {pod}: {exc}")
        return None
    return {"pod": pod, "asked": asked, "clusters": {n: held[n] for n in asked if n in held}}


def examined_sidecar(bundle: EvidenceBundle, ports: list[SharedPort]) -> str | None:
    """A sidecar whose configuration was read (so it answers): in the first shared Service's namespace
    if one is there, else any; the same one on every run over the same cluster."""
    examined = sorted(key for key, proxy in bundle.proxies.items() if proxy.config is not None)
    near = [key for key in examined if key.split("/", 1)[0] == ports[0].namespace]
    return (near or examined or [None])[0]
