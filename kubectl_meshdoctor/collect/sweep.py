"""``collect(options) -> EvidenceBundle``: from a scope to evidence, one bounded pass over the cluster.

Order matters for the user: the scope is checked first (an unknown pod or namespace is a usage error
before anything slow happens), then the API evidence is listed once per kind and namespace, then the
meshed pods are read in a bounded worker pool, each within its own time budget. Whatever cannot be
read becomes a gap and the sweep goes on; a refused exec degrades the whole sweep to API-level checks
once, instead of failing pod after pod.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timezone
from typing import Callable, Iterator

from kubernetes import client as k8s

from kubectl_meshdoctor.bundle import EvidenceBundle
from kubectl_meshdoctor.collect import CollectOptions
from kubectl_meshdoctor.collect.api import (
    DNS_NAMESPACE,
    DNS_SELECTOR,
    ISTIO_NAMESPACE,
    ISTIO_NETWORKING,
    ISTIO_SECURITY,
    ISTIOD_SELECTOR,
    ApiReader,
)
from kubectl_meshdoctor.collect.egress import read_egress_config
from kubectl_meshdoctor.collect.fair_slots import FairSlots
from kubectl_meshdoctor.collect.kube import AccessRefused, Kube, connect
from kubectl_meshdoctor.collect.malloc_arenas import limit_malloc_arenas
from kubectl_meshdoctor.collect.istiod import WHAT as ISTIOD_SYNC_WHAT, IstiodView, read_istiod_views
from kubectl_meshdoctor.collect.proxy import (
    LARGE_ANSWERS_IN_FLIGHT, Cancellation, ParameterSupport, PodReader, ProxyReading, submit_interleaved,
)
from kubectl_meshdoctor.collect.reducers import ReducerProcesses, helper_count
from kubectl_meshdoctor.pods import (
    DEFAULT_REVISION, REVISION_KEY, istiod_service_names, pod_key, pod_revision, sidecar_container,
)
from kubectl_meshdoctor.errors import UsageError
from kubectl_meshdoctor.evidence import Evidence, evidence_in

REDUCING_WORKERS = 8  # workers beyond --concurrency: their answers are being reduced, their slot is free
WORKER_PREFIX = "meshdoctor-pod"
ROOT_CERT_CONFIGMAP = "istio-ca-root-cert"  # the root istiod publishes in every namespace (key root-cert.pem)
FULL_DUMP_VARIABLE = "MESHDOCTOR_CONFIG_DUMP"
CANCEL_GRACE_SECONDS = 3.0
EXEC_REFUSED = "exec refused (RBAC: create pods/exec): only API-level checks ran"
LOG_REFUSED = "istio-proxy log refused (RBAC: get pods/log): access-log checks did not run"
# Pods a controller could not create (a failing injector webhook among the reasons): one narrow list.
FAILED_CREATE_SELECTOR = "reason=FailedCreate"
# Istio kinds: (group, plural, kind); PeerAuthentication is the only security one the checks read.
ISTIO_KINDS = (
    (ISTIO_NETWORKING, "destinationrules", "DestinationRule"),
    (ISTIO_NETWORKING, "virtualservices", "VirtualService"),
    (ISTIO_SECURITY, "peerauthentications", "PeerAuthentication"),
)


def collect(options: CollectOptions) -> EvidenceBundle:
    """Collect the evidence for ``options``' scope. Raises UsageError (2) or ClusterError (3)."""
    kube = connect(options.cluster)
    try:
        return Sweep(kube, options).run()
    finally:
        kube.close()


class Sweep:
    def __init__(self, kube: Kube, options: CollectOptions):
        self.kube = kube
        self.options = options
        self.api = ApiReader(kube)
        self.namespace = None if options.all_namespaces else (options.namespace or kube.target.namespace)
        self.bundle = EvidenceBundle(scope={})
        self._collected: dict[tuple[str, str, str, str], dict] = {}  # (group, kind, namespace, name) -> object
        self._exec_refused = threading.Event()  # some exec into a pod was refused (RBAC): exec no more
        # MESHDOCTOR_CONFIG_DUMP=full: ask for the whole config_dump instead of its masked parts (to
        # compare the two, or for a proxy whose masked answers are in doubt).
        self.full_config_dump = os.environ.get(FULL_DUMP_VARIABLE, "").lower() == "full"

    def run(self) -> EvidenceBundle:
        scope_pods = self._resolve_scope()
        self._collect_workloads()
        revisions = _revisions(scope_pods, self.bundle.objects)
        self._collect_dns()
        istio_system = self._collect_control_plane(revisions)
        self._collect_injection()
        self._collect_control_plane_redundancy(istio_system)
        self._collect_istio_config(istio_system)
        self._collect_root_certs(scope_pods)
        self._collect_egress_config()
        self._collect_proxies(scope_pods)
        self.bundle.collected_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return self.bundle

    # --- scope ----------------------------------------------------------------------------------------

    def _resolve_scope(self) -> list[dict]:
        """The pods the user asked about; unknown pod or namespace is a UsageError, raised first."""
        options, namespace = self.options, self.namespace
        if options.all_namespaces:
            self.bundle.scope = {"kind": "all-namespaces", "namespace": None, "pod": None}
            return []  # every pod, known once the pods are listed
        if options.pod:
            pod = self.api.get_pod(namespace, options.pod)
            if pod is None:
                if self._namespace_missing(namespace):
                    raise UsageError(f"namespace {namespace} not found")
                raise UsageError(f"pod {options.pod} not found in namespace {namespace}")
            self._add([pod])
            self._namespace_missing(namespace)  # its labels say whether the pod should have a sidecar
            self.bundle.scope = {"kind": "pod", "namespace": namespace, "pod": options.pod}
            return [pod]
        if self._namespace_missing(namespace):
            raise UsageError(f"namespace {namespace} not found")
        self.bundle.scope = {"kind": "namespace", "namespace": namespace, "pod": None}
        return []

    def _namespace_missing(self, name: str) -> bool:
        try:
            found = self.api.get_namespace(name)
        except AccessRefused as exc:
            # Users confined to one namespace often may not read Namespace objects: carry on without it.
            self.bundle.add_gap("namespace object", str(exc))
            return False
        if found is not None:
            self._add([found])
        return found is None

    # --- API evidence ---------------------------------------------------------------------------------

    def _collect_workloads(self) -> None:
        namespace = self.namespace
        for kind in ("Pod", "Service", "Endpoints", "EndpointSlice"):
            self._add(self.api.list(kind, namespace))
        self.bundle.available |= {Evidence.PODS, Evidence.SERVICES, Evidence.ENDPOINTS}
        if namespace is None:
            self._add(self.api.list_namespaces())
            self.bundle.available.add(Evidence.NAMESPACES)
        elif any(o.get("kind") == "Namespace" for o in self.bundle.objects):
            self.bundle.available.add(Evidence.NAMESPACES)

    @contextmanager
    def _auxiliary(self, what: str) -> Iterator[list[bool]]:
        """Evidence outside the user's scope: refused access becomes a gap, not an error."""
        ok = [True]
        try:
            yield ok
        except AccessRefused as exc:
            ok[0] = False
            self.bundle.add_gap(what, str(exc))

    def _collect_dns(self) -> None:
        with self._auxiliary("cluster DNS Service") as ok:
            self._add(self.api.list("Service", DNS_NAMESPACE, label_selector=DNS_SELECTOR))
        if ok[0]:
            self.bundle.available.add(Evidence.DNS_SERVICE)

    def _collect_control_plane(self, revisions: set[str]) -> bool:
        """istiod's Service(s) and endpoints; answers whether istio-system exists."""
        with self._auxiliary("control plane (istio-system)") as ok:
            if self.namespace is None:
                exists = any(o.get("kind") == "Namespace" and o["metadata"].get("name") == ISTIO_NAMESPACE
                             for o in self.bundle.objects)
            else:
                exists = self.api.get_namespace(ISTIO_NAMESPACE) is not None
            if not exists:
                self.bundle.add_gap("control plane", f"namespace {ISTIO_NAMESPACE} not found "
                                                     "(Istio control plane not installed here?)")
                self.bundle.available.add(Evidence.CONTROL_PLANE)
                return False
            services = self.api.list("Service", ISTIO_NAMESPACE, label_selector=ISTIOD_SELECTOR)
            self._add(services)
            self._add(self.api.list("Endpoints", ISTIO_NAMESPACE, label_selector=ISTIOD_SELECTOR))
            names = {name for revision in revisions | {DEFAULT_REVISION} for name in istiod_service_names(revision)}
            for name in sorted(names):
                service = self._find("Service", ISTIO_NAMESPACE, name) or self.api.get_service(ISTIO_NAMESPACE, name)
                if service is None:
                    continue
                self._add([service])
                if self._find("Endpoints", ISTIO_NAMESPACE, name) is None:
                    endpoints = self.api.get_endpoints(ISTIO_NAMESPACE, name)
                    if endpoints is not None:
                        self._add([endpoints])
        if ok[0]:
            self.bundle.available.add(Evidence.CONTROL_PLANE)
        self._collect_istiod_pods()
        return True  # present, or refused (which says nothing about its absence)

    def _collect_istiod_pods(self) -> None:
        """istiod's pods: their image gives each revision's version (MD0205), their names the syncz exec."""
        with self._auxiliary("istiod pods (istio-system)") as ok:
            if self.namespace is not None:  # all-namespaces scope: every pod is listed already
                self._add(self.api.list("Pod", ISTIO_NAMESPACE, label_selector=ISTIOD_SELECTOR))
        if ok[0]:
            self.bundle.available.add(Evidence.ISTIOD_PODS)

    def _collect_injection(self) -> None:
        """Why pods lack a sidecar: the injector webhooks, and the pods that could not be created."""
        with self._auxiliary("injector webhooks (mutatingwebhookconfigurations)") as ok:
            self._add(self.api.list("MutatingWebhookConfiguration", None))
        if ok[0]:
            self.bundle.available.add(Evidence.INJECTION_WEBHOOKS)
        with self._auxiliary("FailedCreate events") as ok:
            self._add(self.api.list("Event", self.namespace, field_selector=FAILED_CREATE_SELECTOR))
        if ok[0]:
            self.bundle.available.add(Evidence.FAILED_CREATE_EVENTS)

    def _collect_control_plane_redundancy(self, istio_system: bool) -> None:
        """istiod's Deployments and the PodDisruptionBudgets and autoscalers that keep it available."""
        if not istio_system:
            return
        with self._auxiliary(f"istiod redundancy ({ISTIO_NAMESPACE})") as ok:
            self._add(self.api.list("Deployment", ISTIO_NAMESPACE, label_selector=ISTIOD_SELECTOR))
            self._add(self.api.list("PodDisruptionBudget", ISTIO_NAMESPACE))
            self._add(self.api.list("HorizontalPodAutoscaler", ISTIO_NAMESPACE))
        if ok[0]:
            self.bundle.available.add(Evidence.CONTROL_PLANE_REDUNDANCY)

    def _collect_istio_config(self, istio_system: bool) -> None:
        versions: dict[str, str | None] = {}
        for group in (ISTIO_NETWORKING, ISTIO_SECURITY):
            versions[group] = self.api.served_version(group)
            if versions[group] is None:
                self.bundle.add_gap("Istio configuration", f"Istio CRDs not installed ({group} not served)")
        if not all(versions.values()):
            return
        complete = True
        for group, plural, kind in ISTIO_KINDS:
            version = versions[group]
            assert version is not None
            self._add(self.api.list_istio(group, version, plural, kind, self.namespace))
            if self.namespace is not None and self.namespace != ISTIO_NAMESPACE and istio_system:
                # Mesh-wide DestinationRules, VirtualServices and PeerAuthentication live in the root namespace.
                with self._auxiliary(f"mesh-wide {kind}s ({ISTIO_NAMESPACE})") as ok:
                    self._add(self.api.list_istio(group, version, plural, kind, ISTIO_NAMESPACE))
                complete = complete and ok[0]
        if complete:
            self.bundle.available.add(Evidence.ISTIO_CONFIG)

    def _collect_root_certs(self, scope_pods: list[dict]) -> None:
        """istiod's istio-ca-root-cert ConfigMap of each namespace with meshed pods in scope (MD0404)."""
        pods = scope_pods or [o for o in self.bundle.objects if o.get("kind") == "Pod"
                              and (self.namespace is None or o["metadata"].get("namespace") == self.namespace)]
        namespaces = sorted({p["metadata"].get("namespace") or "" for p in pods if sidecar_container(p) is not None})
        with self._auxiliary(f"{ROOT_CERT_CONFIGMAP} ConfigMaps") as ok:
            for namespace in namespaces:
                found = self.api.get_config_map(namespace, ROOT_CERT_CONFIGMAP)
                if found is not None:
                    self._add([found])
        if ok[0]:
            self.bundle.available.add(Evidence.ROOT_CERT_CONFIGMAPS)

    def _collect_egress_config(self) -> None:
        with self._auxiliary("egress configuration (mesh config, Sidecars, ServiceEntries)") as ok:
            self._add(read_egress_config(self.api, self.namespace))
        if ok[0]:
            self.bundle.available.add(Evidence.EGRESS_CONFIG)

    # --- proxy evidence -------------------------------------------------------------------------------

    def _collect_proxies(self, scope_pods: list[dict]) -> None:
        if not scope_pods:  # namespace and all-namespaces scopes: every pod listed
            scope_pods = [o for o in self.bundle.objects if o.get("kind") == "Pod"
                          and (self.namespace is None or o["metadata"].get("namespace") == self.namespace)]
        scope_pods.sort(key=pod_key)
        self.bundle.scope["pods"] = [pod_key(p) for p in scope_pods]
        meshed = [p for p in scope_pods if sidecar_container(p) is not None]
        if not meshed:
            return
        exec_settled = threading.Event()  # the first exec came back, or exec was refused
        istiod_view = self._start_istiod_view(exec_settled)  # side by side with the pods' reads
        readings = self._read_pods(meshed, exec_settled)
        exec_settled.set()  # no exec came back at all (every one timed out): istiod is asked anyway
        refused = [r for r in readings if r.exec_refused]
        if refused:
            pod = refused[0].pod if self.bundle.scope["kind"] == "pod" else None
            count = "" if pod else f" ({len(refused)} of {len(meshed)} meshed pods not examined)"
            self.bundle.add_gap("proxy evidence", EXEC_REFUSED + count, pod=pod,
                                affects=[] if pod else [r.pod for r in refused])
        log_refused = [r.pod for r in readings if r.log_refused]
        if log_refused:
            single = readings[0].pod if self.bundle.scope["kind"] == "pod" else None
            self.bundle.add_gap("access log", LOG_REFUSED, pod=single, affects=[] if single else log_refused)
        syncs = self._istiod_syncs(istiod_view, [r.pod for r in readings]) if not refused else {}
        for reading in readings:
            evidence = reading.evidence()
            if syncs.get(reading.pod) is not None:
                evidence = replace(evidence, istiod_sync=syncs[reading.pod])
            self.bundle.proxies[reading.pod] = evidence
            self.bundle.available |= evidence_in(evidence)
            self.bundle.gaps.extend(reading.gaps)

    def _start_istiod_view(self, exec_settled: threading.Event) -> Callable[[], IstiodView] | None:
        """Start reading every running istiod's /debug/syncz in a thread; returns what waits for it.

        It runs beside the pods' reads, so its round trip adds nothing to the sweep, but only after the
        first exec into a pod came back: a user who may not exec is not asked twice.
        """
        if Evidence.ISTIOD_PODS not in self.bundle.available:
            return None
        istiods = [o for o in self.bundle.objects if o.get("kind") == "Pod"
                   and o["metadata"].get("namespace") == ISTIO_NAMESPACE
                   and (o["metadata"].get("labels") or {}).get("app") == "istiod"]
        result: list[IstiodView] = []

        def read() -> None:
            exec_settled.wait(self.options.pod_timeout)
            if self._exec_refused.is_set():
                result.append(IstiodView(refused=True))  # not used: the sweep reports the refusal
                return
            client = self.kube.new_api_client()
            try:
                result.append(read_istiod_views(client, istiods, self.options.pod_timeout, self.options.cancellation))
            finally:
                client.close()

        # A daemon: a Ctrl-C during the pods' reads does not wait for it.
        thread = threading.Thread(target=read, name="meshdoctor-istiod", daemon=True)
        thread.start()

        def wait() -> IstiodView:
            thread.join()
            if not result:
                raise RuntimeError("reading istiod's /debug/syncz failed")  # a bug: the thread raised
            return result[0]

        return wait

    def _istiod_syncs(self, istiod_view: Callable[[], IstiodView] | None, pods: list[str]) -> dict:
        """Each pod's entry in istiod's /debug/syncz (None: unknown); a failed or refused read is a gap."""
        if not pods or istiod_view is None:
            return {}
        view = istiod_view()
        syncs = {pod: view.sync_of(pod) for pod in pods}
        if view.failures:
            reasons = "; ".join(f"{istiod}: {reason}" for istiod, reason in view.failures)
            # Not tied to the pods: istiod's view adds to their own evidence, which is complete without it.
            self.bundle.add_gap(ISTIOD_SYNC_WHAT, reasons)
        return syncs

    def _read_pods(self, pods: list[dict], exec_settled: threading.Event) -> list[ProxyReading]:
        options = self.options
        cancellation = options.cancellation or Cancellation()
        exec_refused = self._exec_refused

        def refused() -> None:
            exec_refused.set()
            exec_settled.set()

        log_refused = threading.Event()
        local = threading.local()
        clients: list[k8s.ApiClient] = []
        clients_lock = threading.Lock()

        def own_client() -> k8s.ApiClient:
            # One client (urllib3 pool) per worker thread: log reads never wait on another worker's pool.
            client = getattr(local, "client", None)
            if client is None:
                client = local.client = self.kube.new_api_client()
                with clients_lock:
                    clients.append(client)
            return client

        parameter_support = ParameterSupport()  # Envoy versions found refusing config_dump's parameters
        large_answers = threading.BoundedSemaphore(LARGE_ANSWERS_IN_FLIGHT)  # memory: bounded, not per pod
        # One pool for every request of every pod: at most `concurrency` requests in flight, and a pod's
        # requests run side by side instead of one after the other. Tasks start in submission order.
        limit_malloc_arenas()  # before the workers exist: see collect/malloc_arenas.py
        in_flight = FairSlots(options.concurrency)  # served in arrival order: see collect/fair_slots.py
        # Large answers are reduced on other cores; in the sweep's tail (a quarter of the slots or fewer
        # in use) also here, rather than queued for a busy helper.
        reducers = ReducerProcesses(helper_count(len(pods)),
                                    spare_here=lambda: in_flight.in_use() <= in_flight.slots // 4)
        readers = [PodReader(own_client, pod["metadata"]["namespace"], pod["metadata"]["name"], options.pod_timeout,
                             exec_allowed=lambda: not exec_refused.is_set(), on_exec_refused=refused,
                             on_exec_answered=exec_settled.set,
                             log_allowed=lambda: not log_refused.is_set(), on_log_refused=log_refused.set,
                             cancellation=cancellation, full_config_dump=self.full_config_dump,
                             parameter_support=parameter_support, large_answers=large_answers,
                             reduce=reducers.reduce, in_flight=in_flight)
                   for pod in pods]
        readings: list[ProxyReading] = []
        futures: list[concurrent.futures.Future] = []
        # More workers than requests in flight: a worker whose answer is being reduced holds no slot,
        # so the next request goes out meanwhile. The extra ones wait for a slot, or for a reduction.
        executor = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, options.concurrency) + REDUCING_WORKERS,
                                                         thread_name_prefix=WORKER_PREFIX)
        try:
            with _progress(options.progress, len(pods), options.progress_sink) as advance:
                submit_interleaved(executor, readers, options.log_since_seconds, self.kube.request_timeout,
                                   group=max(1, options.concurrency))
                for reader in readers:
                    futures += reader.futures()
                for reader in readers:
                    pending = set(reader.futures())
                    while pending:
                        # Short waits keep the main thread responsive to Ctrl-C on every platform.
                        _, pending = concurrent.futures.wait(pending, timeout=0.2)
                    readings.append(reader.result())
                    advance()
            executor.shutdown(wait=True)
        except BaseException:
            # Ctrl-C (or a bug): drop queued requests, wake the workers blocked on exec streams, and give
            # the running ones a short grace to finish, so the interrupt is prompt and leaves no threads.
            cancellation.cancel()
            executor.shutdown(wait=False, cancel_futures=True)
            _, still_running = concurrent.futures.wait(futures, timeout=CANCEL_GRACE_SECONDS)
            if not still_running:
                # Every worker is free: join them now (instant), or they linger until they see the
                # executor's stop sentinel, which a busy machine may not schedule before we return.
                executor.shutdown(wait=True)
            raise
        finally:
            reducers.close()
            for client in clients:
                client.close()
        readings.sort(key=lambda r: r.pod)
        return readings

    # --- objects --------------------------------------------------------------------------------------

    def _add(self, objects: list[dict]) -> None:
        for obj in objects:
            meta = obj.get("metadata") or {}
            group = str(obj.get("apiVersion") or "").rpartition("/")[0]
            key = (group, str(obj.get("kind") or ""), str(meta.get("namespace") or ""), str(meta.get("name") or ""))
            if key not in self._collected:
                self._collected[key] = obj
                self.bundle.objects.append(obj)

    def _find(self, kind: str, namespace: str, name: str) -> dict | None:
        """A core-group object already collected."""
        return self._collected.get(("", kind, namespace, name))


def _revisions(scope_pods: list[dict], objects: list[dict]) -> set[str]:
    """Istio revisions the pods (and their namespaces) point at, to find istiod-<rev> Services."""
    found: set[str] = set()
    for obj in list(scope_pods) + objects:
        if obj.get("kind") == "Pod":
            found.add(pod_revision(obj))
        elif obj.get("kind") == "Namespace":
            revision = ((obj.get("metadata") or {}).get("labels") or {}).get(REVISION_KEY)
            if revision:
                found.add(str(revision))
    return found


@contextmanager
def _progress(enabled: bool, total: int, sink=None) -> Iterator:
    """A transient progress bar on stderr; a no-op when disabled (machine-readable output). A multi-cluster
    run's display (``sink``) draws the bars of all clusters instead."""
    if sink is not None:
        yield sink(total)
        return
    if not enabled or total <= 1:
        yield lambda: None
        return
    # Imported here: only interactive runs pay for rich, and the bar is the collector's one piece of UI.
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("examining istio-proxy"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("pods", total=total)
        yield lambda: progress.advance(task)
