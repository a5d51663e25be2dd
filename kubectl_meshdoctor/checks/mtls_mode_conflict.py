"""MD0402 MtlsModeConflict: a DestinationRule sends plain text (or non-Istio TLS) to a STRICT server.

Anti-pattern: a DestinationRule with ``trafficPolicy.tls.mode: DISABLE`` (or ``SIMPLE``), at the top,
per port (``portLevelSettings``) or per subset, for a host whose workloads' PeerAuthentication is
``STRICT``, often left over from debugging or copied from an egress example.

Best practice: leave ``tls`` out for in-mesh hosts (auto mTLS picks Istio mTLS) or set
``ISTIO_MUTUAL``; if plain text is really needed, relax the server's PeerAuthentication to
``PERMISSIVE`` for that workload or port instead.

Why: the client's sidecar obeys the DestinationRule and opens a plain-text (or one-way TLS) connection,
and the STRICT server's sidecar resets it. Clients see 503 with ``UC``/``UR``/``URX``; both objects
were accepted and ``istioctl analyze`` no longer reports the combination.

How the server's mode is found (as Istio resolves it): for each workload behind the host's Service,
the PeerAuthentication selecting it, else its namespace's, else the mesh-wide one in istio-system;
``portLevelMtls`` of a selecting policy decides for that target port. Workloads are the Service's pods
(endpoints, else selector) that run a sidecar, or, offline, the pod templates of Deployments etc. that
the selector matches. When neither is in the evidence, only a namespace or mesh-wide policy decides,
and only if no workload-level policy exists in that namespace that could say otherwise.

Live (with proxy config): a client whose cluster for that host carries no TLS at all is reported
with its pod, so a failing client links to this cause.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Iterator

from kubectl_meshdoctor.checks.base import Check, created, finding
from kubectl_meshdoctor.checks.context import (
    ROOT_NAMESPACE, AnalysisContext, IstioClusterName, key_of, labels_of, resolve_host, selector_matches,
    sidecar_container,
)
from kubectl_meshdoctor.evidence import TLS_NONE, Evidence
from kubectl_meshdoctor.findings import Finding, Subject

CONFLICTING_MODES = frozenset({"DISABLE", "SIMPLE"})
INHERITING_MODES = frozenset({"", "UNSET", "INHERIT"})


@dataclass(frozen=True)
class TlsSetting:
    """One tls block of a DestinationRule that sends something other than Istio mTLS."""

    where: str  # e.g. trafficPolicy.tls, subsets[v1].trafficPolicy.portLevelSettings[9080].tls
    mode: str
    port: int | None  # the Service port it is limited to
    subset: str | None
    subset_labels: tuple[tuple[str, str], ...] = ()  # the subset's labels: only its workloads count


@dataclass(frozen=True)
class StrictWorkload:
    workload: str  # e.g. "Pod shop/cart-1" or "Deployment shop/cart"
    port: int | None  # target port, when a port decided
    policy: str  # e.g. "PeerAuthentication istio-system/default (mesh-wide)"


def tls_settings(rule: dict) -> Iterator[TlsSetting]:
    spec = rule.get("spec") or {}
    policies = [("trafficPolicy", spec.get("trafficPolicy"), None, ())]
    for subset in spec.get("subsets") or []:
        if isinstance(subset, dict):
            labels = tuple(sorted((str(k), str(v)) for k, v in (subset.get("labels") or {}).items()))
            where = f"subsets[{subset.get('name')}].trafficPolicy"
            policies.append((where, subset.get("trafficPolicy"), subset.get("name"), labels))
    for prefix, policy, subset, labels in policies:
        if not isinstance(policy, dict):
            continue
        mode = str(((policy.get("tls") or {}).get("mode")) or "").upper()
        if mode in CONFLICTING_MODES:
            yield TlsSetting(f"{prefix}.tls", mode, None, subset, labels)
        for setting in policy.get("portLevelSettings") or []:
            if not isinstance(setting, dict):
                continue
            port = (setting.get("port") or {}).get("number")
            mode = str(((setting.get("tls") or {}).get("mode")) or "").upper()
            if mode in CONFLICTING_MODES:
                number = port if isinstance(port, int) else None
                yield TlsSetting(f"{prefix}.portLevelSettings[{port}].tls", mode, number, subset, labels)


def _cluster_local_namespace(fqdn: str) -> str | None:
    parts = fqdn.split(".")
    return parts[1] if len(parts) >= 3 and parts[2] == "svc" else None


def _level(policy: dict) -> str:
    if (policy.get("spec") or {}).get("selector"):
        return "workload"
    return "mesh-wide" if policy["metadata"].get("namespace") == ROOT_NAMESPACE else "namespace"


def _describe(policy: dict, port: int | None = None) -> str:
    level = f"workload, port {port}" if port is not None else _level(policy)
    return f"PeerAuthentication {key_of(policy)} ({level})"


class MtlsModeConflict(Check):
    name = "MtlsModeConflict"
    codes = ("MD0402",)
    needs = frozenset({Evidence.ISTIO_CONFIG})

    def run(self, ctx: AnalysisContext) -> Iterable[Finding]:
        policies_by_namespace: dict[str, list[dict]] = defaultdict(list)
        for policy in ctx.objects("PeerAuthentication"):
            policies_by_namespace[policy["metadata"].get("namespace") or ""].append(policy)
        templates_by_namespace: dict[str, list[tuple[dict, dict[str, str]]]] = {}
        plaintext_clients = self._plaintext_clients(ctx)

        for rule in ctx.objects("DestinationRule"):
            settings = list(tls_settings(rule))
            if not settings:
                continue
            host = str((rule.get("spec") or {}).get("host") or "")
            rule_namespace = rule["metadata"].get("namespace") or "default"
            fqdn = resolve_host(host, rule_namespace)
            service = ctx.service_by_host(host, rule_namespace)
            workloads = self._workloads(ctx, service, templates_by_namespace)
            for setting in settings:
                strict = self._strict_workloads(ctx, fqdn, service, workloads, setting, policies_by_namespace)
                if not strict:
                    continue
                clients = [
                    (pod, cluster) for pod, cluster in plaintext_clients.get(fqdn, [])
                    if self._cluster_matches(cluster, setting)
                ]
                yield from self._findings(rule, fqdn, setting, strict, clients)

    # --- the server side ------------------------------------------------------------------------------

    def _workloads(self, ctx, service, templates_by_namespace) -> list[tuple[str, dict, dict[str, str]]]:
        """(description, object, labels) of the meshed workloads behind ``service``."""
        if service is None:
            return []
        namespace = service["metadata"].get("namespace") or ""
        pods = [p for p in ctx.pods_behind(service) if sidecar_container(p) is not None]
        if pods:
            return [(f"Pod {key_of(p)}", p, labels_of(p)) for p in pods]
        if namespace not in templates_by_namespace:
            templates_by_namespace[namespace] = [
                (obj, labels) for obj, labels in ctx.workload_label_sets(namespace) if obj.get("kind") != "Pod"
            ]
        selector = (service.get("spec") or {}).get("selector")
        return [
            (f"{obj['kind']} {key_of(obj)}", obj, labels)
            for obj, labels in templates_by_namespace[namespace]
            if selector_matches(selector, labels)
        ]

    def _strict_workloads(self, ctx, fqdn, service, workloads, setting, policies_by_namespace) -> list[StrictWorkload]:
        namespace = service["metadata"].get("namespace") if service else _cluster_local_namespace(fqdn)
        if namespace is None:
            return []
        if not workloads:
            # Labels unknown: only a namespace or mesh-wide policy can decide, and only if no
            # workload-level policy in the namespace might override it.
            if any((p.get("spec") or {}).get("selector") for p in policies_by_namespace.get(namespace, [])):
                return []
            mode, policy = ctx.peer_authentication_mode(namespace, {})
            if mode == "STRICT" and policy is not None:
                where = f"Service {namespace}/{service['metadata']['name']}" if service else f"host {fqdn}"
                return [StrictWorkload(f"{where} (its workloads are not in the evidence)", None, _describe(policy))]
            return []
        target_ports = self._target_ports(service, setting.port)
        subset_selector = dict(setting.subset_labels)
        strict: list[StrictWorkload] = []
        for description, obj, labels in workloads:
            if subset_selector and not selector_matches(subset_selector, labels):
                continue
            for port in target_ports or [None]:
                resolved = self._mode(ctx, namespace, labels, port, obj, policies_by_namespace)
                if resolved is not None:
                    strict.append(StrictWorkload(description, resolved[1], resolved[0]))
                    break
        return strict

    @staticmethod
    def _target_ports(service, port: int | None) -> list[int | str]:
        """Target ports of the Service ports a setting covers (all of them when it has no port)."""
        result: list[int | str] = []
        for item in (service.get("spec") or {}).get("ports") or []:
            if port is not None and item.get("port") != port:
                continue
            result.append(item.get("targetPort") or item.get("port"))
        return result

    @staticmethod
    def _container_port(obj: dict, target: int | str | None) -> int | None:
        if target is None or isinstance(target, int):
            return target
        spec = obj.get("spec") or {}
        if obj.get("kind") != "Pod":
            spec = ((spec.get("template") or {}).get("spec")) or {}
        for container in spec.get("containers") or []:
            for port in container.get("ports") or []:
                if port.get("name") == target:
                    return port.get("containerPort")
        return None

    def _mode(self, ctx, namespace, labels, target, obj, policies_by_namespace) -> tuple[str, int | None] | None:
        """(policy description, port) when the workload is STRICT on ``target``, else None."""
        port = self._container_port(obj, target)
        if port is not None:
            for policy in policies_by_namespace.get(namespace, []):
                spec = policy.get("spec") or {}
                if not selector_matches((spec.get("selector") or {}).get("matchLabels"), labels):
                    continue
                level = (spec.get("portLevelMtls") or {}).get(str(port)) or (spec.get("portLevelMtls") or {}).get(port)
                mode = str(((level or {}).get("mode")) or "").upper()
                if mode not in INHERITING_MODES:
                    return (_describe(policy, port), port) if mode == "STRICT" else None
        mode, policy = ctx.peer_authentication_mode(namespace, labels)
        if mode == "STRICT" and policy is not None:
            return _describe(policy), port
        return None

    # --- the client side (live) -----------------------------------------------------------------------

    @staticmethod
    def _plaintext_clients(ctx: AnalysisContext) -> dict[str, list[tuple[str, str]]]:
        """host FQDN -> (client pod, cluster name) of outbound clusters that carry no TLS."""
        index: dict[str, list[tuple[str, str]]] = defaultdict(list)
        if Evidence.PROXY_CONFIG not in ctx.available:
            return index
        for pod_key, proxy in sorted(ctx.proxies.items()):
            for cluster in proxy.config.clusters if proxy.config else ():
                if cluster.tls != TLS_NONE:
                    continue  # first: most clusters carry TLS, and this runs for every cluster of every pod
                parsed = IstioClusterName.parse(cluster.name)
                if parsed and parsed.direction == "outbound":
                    index[parsed.host].append((pod_key, cluster.name))
        return index

    @staticmethod
    def _cluster_matches(cluster: str, setting: TlsSetting) -> bool:
        parsed = IstioClusterName.parse(cluster)
        if parsed is None:
            return False
        if setting.port is not None and parsed.port != setting.port:
            return False
        return setting.subset is None or parsed.subset == setting.subset

    # --- findings -------------------------------------------------------------------------------------

    @staticmethod
    def _findings(rule, fqdn, setting, strict, clients) -> Iterator[Finding]:
        meta = rule["metadata"]
        subject = Subject("DestinationRule", meta.get("name") or "", meta.get("namespace"))
        scope = f" for subset {setting.subset}" if setting.subset else ""
        scope += f" on port {setting.port}" if setting.port is not None else ""
        message = (
            f"DestinationRule {key_of(rule)} sets tls.mode {setting.mode}{scope} toward {fqdn}, whose "
            f"workloads require STRICT mTLS: the server resets these connections (503 UC/URX)"
        )
        evidence = [f"{setting.where}.mode: {setting.mode}"]
        evidence += [f"{w.workload} is STRICT by {w.policy}" for w in strict[:5]]
        if len(strict) > 5:
            evidence.append(f"... and {len(strict) - 5} more STRICT workloads")
        since = [created(rule, f"DestinationRule {key_of(rule)} created")]
        if not clients:
            yield finding("MD0402", subject, message, evidence, since=since)
        # Each client proxy that really sends plain text shows the same cause (one message, so a sweep
        # groups them), with its own cluster as evidence.
        for pod, cluster in clients:
            yield finding(
                "MD0402", subject, message,
                [f"this client's cluster {cluster} carries no TLS (plain text to a STRICT server)", *evidence[:3]],
                pod=pod, since=since,
            )


CHECK = MtlsModeConflict()
