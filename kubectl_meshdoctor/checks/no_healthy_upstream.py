"""MD0503 NoHealthyUpstream: requests fail with UH (503 no_healthy_upstream): the cluster has no usable endpoint.

Anti-pattern: restarting the client, or reading "503" as "the server is down" when the server was
never reachable through that Service at all.

Best practice: ask Envoy which endpoints it holds for that cluster and whether it will use them
(``/clusters``: EDS health, outlier ejection), then ask the API why: a selector that matches no pod
(show it next to the labels of the closest pods), selected pods that are not ready, a named
targetPort the pods do not declare (the endpoints controller then leaves the pod out), a
DestinationRule subset whose labels select no pod, or outlier detection that ejected every host.

Decisions: only outbound ``outbound|port|subset|host`` clusters are judged (BlackHoleCluster is
MD0505's). When Envoy shows healthy endpoints for the cluster *now*, the UH lines are history and no
cause is claimed. Without /clusters (not read), the API alone decides and the evidence says so.
"""

from __future__ import annotations

from typing import Iterable

from kubectl_meshdoctor.checks._failed_upstreams import FailedUpstream, failed_upstreams
from kubectl_meshdoctor.checks.base import Check, finding
from kubectl_meshdoctor.checks.context import AnalysisContext, IstioClusterName, labels_of, selector_matches
from kubectl_meshdoctor.evidence import Evidence
from kubectl_meshdoctor.findings import Finding, Subject

MAX_HOSTS_SHOWN = 5


def _labels_text(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "(none)"


def _ready(pod: dict) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _declares_port(pod: dict, name: str) -> bool:
    return any(p.get("name") == name for c in (pod.get("spec") or {}).get("containers") or []
               for p in c.get("ports") or [])


def _nearest(pods: list[dict], selector: dict[str, str]) -> list[dict]:
    """The pods sharing the most key=value pairs (or keys) with the selector: where the typo usually is."""
    def score(pod: dict) -> tuple[int, int, int]:
        labels = labels_of(pod)
        exact = sum(labels.get(k) == v for k, v in selector.items())
        similar = sum(bool(labels.get(k)) and (v in labels[k] or labels[k] in v) for k, v in selector.items())
        return (exact, similar, sum(k in labels for k in selector))

    best = max((score(p) for p in pods), default=(0, 0, 0))
    return [p for p in pods if score(p) == best and best != (0, 0, 0)][:3]


def _envoy_view(failed: FailedUpstream) -> list[str]:
    status = failed.status
    if status is None:
        return [f"Envoy /clusters: not read for {failed.cluster}; judged from the API objects"]
    lines = [f"Envoy /clusters: {len(status.hosts)} endpoint(s), {len(status.healthy_hosts)} healthy"]
    lines += [f"  {h.address}: {', '.join(h.unhealthy)}" for h in status.hosts if h.unhealthy][:MAX_HOSTS_SHOWN]
    return lines


class NoHealthyUpstream(Check):
    name = "NoHealthyUpstream"
    codes = ("MD0503",)
    needs = frozenset({Evidence.ACCESS_LOG, Evidence.PODS, Evidence.SERVICES})

    def run(self, ctx: AnalysisContext) -> Iterable[Finding]:
        for failed in failed_upstreams(ctx, "UH"):
            name = failed.istio_name
            if name is None or name.direction != "outbound":
                continue
            status = failed.status
            if status is not None and status.healthy_hosts:
                continue  # Envoy can use endpoints now: the UH lines are from before
            diagnosis = self._why(ctx, failed, name)
            if diagnosis is None:
                continue
            subject, message, details, fix = diagnosis
            yield finding("MD0503", subject, message, failed.evidence_head("UH") + _envoy_view(failed) + details,
                          pod=failed.pod, remediation=fix, upstreams=(failed.cluster,))

    def _why(self, ctx: AnalysisContext, failed: FailedUpstream, name: IstioClusterName):
        status = failed.status
        host = name.host
        parts = host.split(".")
        service = ctx.service_by_host(host)
        rules = ctx.destination_rules_for(host)
        if status is not None and status.hosts and all("failed_outlier_check" in h.unhealthy for h in status.hosts):
            rule = next((r for r in rules if _outlier(r)), rules[0] if rules else None)
            subject = (Subject("DestinationRule", rule["metadata"]["name"], rule["metadata"].get("namespace"))
                       if rule else Subject("Service", parts[0], parts[1] if len(parts) > 1 else None))
            details = [f"DestinationRule {rule['metadata'].get('namespace')}/{rule['metadata']['name']} "
                       f"outlierDetection: {_outlier(rule)}"] if rule and _outlier(rule) else []
            return (subject, f"outlier detection ejected every endpoint of {failed.cluster}", details,
                    "The endpoints failed repeatedly: fix the failing server first (its own sidecar's log and "
                    "the app's). If the ejection is too eager, raise outlierDetection.consecutive5xxErrors "
                    "or lower maxEjectionPercent in the DestinationRule.")
        if service is None:
            if not host.endswith(".svc.cluster.local"):
                return None  # an external host (ServiceEntry): not a Kubernetes Service to explain
            return (Subject("Service", parts[0], parts[1]),
                    f"{failed.cluster} has no endpoint and its Service {parts[1]}/{parts[0]} was not among "
                    f"the objects read",
                    [], "Check that the Service exists (kubectl get svc -n NAMESPACE) and selects ready pods.")
        namespace = service["metadata"].get("namespace") or "default"
        subject = Subject("Service", service["metadata"]["name"], namespace)
        selector = dict((service.get("spec") or {}).get("selector") or {})
        shown = f"Service {namespace}/{service['metadata']['name']}"
        if not selector:
            return (subject, f"{shown} has no selector and no endpoint: {failed.cluster} has nothing to send to",
                    [f"{shown}: no spec.selector; its Endpoints are managed by hand and list no ready address"],
                    "Give the Service a selector matching the server's pod labels, or fill its Endpoints.")
        candidates = ctx.pods_in(namespace)
        selected = [p for p in candidates if selector_matches(selector, labels_of(p))]
        if not selected:
            nearest = _nearest(candidates, selector)
            details = [f"{shown} selector: {_labels_text(selector)}"]
            details += [f"nearest pod {p['metadata']['name']}: labels {_labels_text(_plain(labels_of(p)))}"
                        for p in nearest] or [f"no pod in namespace {namespace} shares a selector label"]
            return (subject, f"{shown} selects no pod (selector {_labels_text(selector)}): {failed.cluster} "
                    "has no endpoint", details,
                    "Make the Service's selector match the server pods' labels (kubectl get pods -n "
                    f"{namespace} --show-labels), or fix the labels in the Deployment's pod template.")
        if name.subset:
            subset_labels = _subset_labels(rules, name.subset)
            in_subset = [p for p in selected if selector_matches(subset_labels, labels_of(p))] if subset_labels else selected
            if subset_labels and not in_subset:
                rule = next(r for r in rules if _subset_labels([r], name.subset))
                return (Subject("DestinationRule", rule["metadata"]["name"], rule["metadata"].get("namespace")),
                        f"subset {name.subset} of {host} selects no pod (labels {_labels_text(subset_labels)})",
                        [f"{len(selected)} pod(s) behind {shown}, none labelled {_labels_text(subset_labels)}"],
                        "Fix the subset's labels in the DestinationRule or deploy pods carrying them.")
            selected = in_subset
        ready = [p for p in selected if _ready(p)]
        if not ready:
            details = [f"pod {p['metadata']['name']}: not Ready" for p in selected[:MAX_HOSTS_SHOWN]]
            return (subject, f"none of the {len(selected)} pod(s) selected by {shown} is ready: {failed.cluster} "
                    "has no endpoint", details,
                    "Find why the pods are not ready (kubectl describe pod: readiness probe, istio-proxy "
                    "1/2 READY, crash loop) and fix that.")
        port = next((p for p in (service.get("spec") or {}).get("ports") or [] if p.get("port") == name.port), None)
        target = (port or {}).get("targetPort")
        if isinstance(target, str) and not any(_declares_port(p, target) for p in ready):
            return (subject, f"{shown} port {name.port} targets the named port {target!r}, which its pods do not "
                    "declare: the endpoints controller lists no address", [f"{len(ready)} ready pod(s), none with "
                    f"a container port named {target!r}"],
                    "Name the container port as the Service's targetPort says, or use the port number.")
        return None


def _plain(labels: dict[str, str]) -> dict[str, str]:
    """Labels without the injector's and controller's own, which only clutter a comparison."""
    return {k: v for k, v in labels.items() if k != "pod-template-hash" and not k.startswith(
        ("service.istio.io/", "security.istio.io/"))}


def _outlier(rule: dict) -> dict | None:
    return ((rule.get("spec") or {}).get("trafficPolicy") or {}).get("outlierDetection")


def _subset_labels(rules: list[dict], subset: str) -> dict[str, str]:
    for rule in rules:
        for item in (rule.get("spec") or {}).get("subsets") or []:
            if item.get("name") == subset:
                return dict(item.get("labels") or {})
    return {}


CHECK = NoHealthyUpstream()
