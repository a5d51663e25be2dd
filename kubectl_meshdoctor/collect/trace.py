"""Collection for ``pod NAME --trace``: what the walk of one request needs, and nothing more.

The sweep reduces every config_dump as it arrives; a trace needs one pod's *whole* configuration with its
endpoints, so it runs its own exec (``TRACE_CONFIG_DUMP``, ``config_dump?include_eds``, one of the audited
commands in proxy.py) in the traced pod only, plus the API objects of the namespaces the request touches:
the pod's, the destination's, and the mesh root (istio-system) for mesh-wide policies, plus what decides
egress (the mesh config's ``mesh`` key, Sidecars, ServiceEntries: the sweep's reads of collect/egress.py). An unknown pod or a
pod without a sidecar is a UsageError; a configuration that cannot be read stops the trace (ClusterError),
since there is nothing to walk without it. Objects outside the pod's namespace that cannot be listed
become gaps the trace reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kubectl_meshdoctor.collect import CollectOptions
from kubectl_meshdoctor.collect.api import ISTIO_NAMESPACE, ApiReader
from kubectl_meshdoctor.collect.egress import read_egress_config
from kubectl_meshdoctor.collect.kube import AccessRefused, Kube, connect, one_line
from kubectl_meshdoctor.collect.proxy import CURL_FALLBACK, MISSING_EXIT_CODES, TRACE_CONFIG_DUMP, exec_command
from kubectl_meshdoctor.collect.sweep import ISTIO_KINDS
from kubectl_meshdoctor.envoy.xds_index import XdsIndex
from kubectl_meshdoctor.errors import ClusterError, ExecError, ParseError, UsageError
from kubectl_meshdoctor.pods import sidecar_container
from kubectl_meshdoctor.trace.target import Target, destination_namespace

CORE_KINDS = ("Pod", "Service", "EndpointSlice")


@dataclass
class TraceEvidence:
    pod: dict
    index: XdsIndex
    objects: list[dict] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)


def collect_trace(options: CollectOptions, target: Target) -> TraceEvidence:
    """The traced pod, its full Envoy configuration and the API objects around the request."""
    kube = connect(options.cluster)
    try:
        return _TraceCollector(kube, options).run(target)
    finally:
        kube.close()


class _TraceCollector:
    def __init__(self, kube: Kube, options: CollectOptions):
        self.kube, self.options = kube, options
        self.api = ApiReader(kube)
        self.namespace = options.namespace or kube.target.namespace
        self.gaps: list[str] = []

    def run(self, target: Target) -> TraceEvidence:
        name = self.options.pod or ""
        pod = self.api.get_pod(self.namespace, name)
        if pod is None:
            if self.api.get_namespace(self.namespace) is None:
                raise UsageError(f"namespace {self.namespace} not found")
            raise UsageError(f"pod {name} not found in namespace {self.namespace}")
        if sidecar_container(pod) is None:
            raise UsageError(f"pod {self.namespace}/{name} has no istio-proxy container: it is not in the mesh, "
                             "so there is no sidecar to trace from")
        index = self._read_config(name)
        namespaces = [self.namespace]
        for extra in (destination_namespace(target.host, self.namespace), ISTIO_NAMESPACE):
            if extra and extra not in namespaces:
                namespaces.append(extra)
        objects: list[dict] = []
        for namespace in namespaces:
            objects.extend(self._list_namespace(namespace, required=namespace == self.namespace))
        try:  # the outbound traffic policy (mesh config, Sidecars) and ServiceEntries, for an egress verdict
            objects.extend(read_egress_config(self.api, self.namespace))
        except AccessRefused as exc:
            self.gaps.append(f"mesh config, Sidecars and ServiceEntries: {exc}")
        return TraceEvidence(pod=pod, index=index, objects=objects, gaps=self.gaps)

    def _list_namespace(self, namespace: str, *, required: bool) -> list[dict]:
        found: list[dict] = []
        try:
            for kind in CORE_KINDS:
                found.extend(self.api.list(kind, namespace))
            for group, plural, kind in ISTIO_KINDS:
                version = self.api.served_version(group)
                if version is None:
                    self.gaps.append(f"{kind}s: Istio CRDs not installed ({group} not served)")
                    continue
                found.extend(self.api.list_istio(group, version, plural, kind, namespace))
        except AccessRefused as exc:
            if required:
                raise
            self.gaps.append(f"objects in namespace {namespace}: {exc}")
        return found

    def _read_config(self, name: str) -> XdsIndex:
        pod = f"{self.namespace}/{name}"
        command = TRACE_CONFIG_DUMP
        try:
            output = exec_command(self.kube.api_client, self.namespace, name, command, self.options.pod_timeout)
            if output.exit_code in MISSING_EXIT_CODES:  # no pilot-agent in this image: the same request by curl
                command = CURL_FALLBACK[TRACE_CONFIG_DUMP]
                output = exec_command(self.kube.api_client, self.namespace, name, command, self.options.pod_timeout)
        except ExecError as exc:
            hint = " (--trace needs create on pods/exec)" if exc.forbidden else ""
            raise ClusterError(f"cannot read the Envoy configuration of {pod}: {exc}{hint}") from None
        if output.exit_code != 0:
            detail = one_line((output.stderr or output.stdout).decode("utf-8", "replace"))[:300]
            raise ClusterError(f"cannot read the Envoy configuration of {pod}: {command[0]} exited "
                               f"{output.exit_code}" + (f": {detail}" if detail else ""))
        try:
            return XdsIndex.from_raw(output.stdout)
        except ParseError as exc:
            raise ClusterError(f"the Envoy configuration of {pod} cannot be read: {exc}") from None
