"""A pod outside the mesh, said as such: why it has no sidecar, and what it is as a server.

"healthy" with nothing said would hide that a pod bypasses the mesh entirely; and the question an
on-call engineer asks about such a pod (redis-0, a database) is how meshed clients reach it. So the
report says why it is not meshed (opted out, namespace without injection, never injected) and, as a
server, which Services select it, which DestinationRules tell clients how to reach it, and which
PeerAuthentication mode would apply to it (none is enforced without a sidecar).
"""

from __future__ import annotations

from kubectl_meshdoctor.checks.context import NEVER_INJECTED_NAMESPACES, AnalysisContext, key_of, service_fqdn
from kubectl_meshdoctor.workloads import dig
from kubectl_meshdoctor.checks.sidecar_missing import (
    FINISHED_PHASES, INJECT_LABEL, NAMESPACE_INJECTION_LABEL, REVISION_LABEL, missing_sidecar_reason,
)

MAX_LINES = 6


def why_unmeshed(pod: dict, namespace_labels: dict[str, str] | None) -> str:
    """Why this pod (which has no istio-proxy) is not in the mesh, in words."""
    meta = dig(pod, "metadata")
    namespace = str(meta.get("namespace") or "")
    for where, values in (("label", dig(meta, "labels")), ("annotation", dig(meta, "annotations"))):
        if str(values.get(INJECT_LABEL, "")).lower() == "false":
            return f"opted out: {where} {INJECT_LABEL}=false"
    if namespace in NEVER_INJECTED_NAMESPACES:
        return f"namespace {namespace} is never injected"
    if dig(pod, "spec").get("hostNetwork") is True:
        return "hostNetwork pod: never injected"
    phase = dig(pod, "status").get("phase")
    if isinstance(phase, str) and phase in FINISHED_PHASES:
        return f"finished ({phase})"
    expected = missing_sidecar_reason(pod, namespace_labels)
    if expected:
        return f"never injected although {expected}"
    if namespace_labels is None:
        return f"no injection label on the pod; namespace {namespace}'s labels were not read"
    if namespace_labels.get(NAMESPACE_INJECTION_LABEL) == "disabled":
        return f"namespace {namespace}: {NAMESPACE_INJECTION_LABEL}=disabled"
    return (f"namespace {namespace} has no injection label ({NAMESPACE_INJECTION_LABEL}=enabled or "
            f"{REVISION_LABEL}=<revision>)")


def server_view(ctx: AnalysisContext, pod: dict) -> list[str]:
    """The pod as a server: Services selecting it, clients' DestinationRules toward them, PeerAuthentication."""
    meta = dig(pod, "metadata")
    namespace = str(meta.get("namespace") or "")
    services = ctx.services_selecting(pod)
    if not services:
        return ["selected by no Service in its namespace"]
    lines = []
    for service in services[:MAX_LINES]:
        name = str(dig(service, "metadata").get("name"))
        headless = " (headless)" if dig(service, "spec").get("clusterIP") == "None" else ""
        rules = ctx.destination_rules_for(service_fqdn(name, namespace))
        told = ", ".join(f"DestinationRule {key_of(r)} tls {_tls_mode(r)}" for r in rules) \
            or "no DestinationRule: clients use auto mTLS (plain text to pods without sidecar)"
        lines.append(f"Service {namespace}/{name}{headless}: {told}")
    mode, policy = ctx.peer_authentication_mode(namespace, {str(k): str(v) for k, v in dig(meta, "labels").items()})
    source = f"PeerAuthentication {key_of(policy)}" if policy else "no PeerAuthentication"
    lines.append(f"{source}: {mode}, not enforced (no sidecar)")
    return lines


def _tls_mode(rule: dict) -> str:
    return str(dig(rule, "spec", "trafficPolicy", "tls").get("mode") or "unset")
