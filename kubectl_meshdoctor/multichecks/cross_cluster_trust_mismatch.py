"""MD0406 CrossClusterTrustMismatch: the clusters' sidecars trust different root CAs.

Why: mTLS between clusters works only when each side's ROOTCA validates the other side's workload
certificate chain, which the multi-cluster install guides arrange by plugging one root (the ``cacerts``
Secret) into every cluster. A cluster installed with istiod's own self-signed root looks healthy alone;
calls to it from another cluster fail the TLS handshake (CERTIFICATE_VERIFY_FAILED).

Evidence: the ROOTCA each examined sidecar holds, from its Envoy's /certs. Real Envoy prints no
fingerprint there, only the serial number and validity, so a root is known by (serial, expires), as
MD0404 knows it. A cluster without examined sidecars (exec refused, none in scope) is known by the root
its istiod publishes in istio-system's ``istio-ca-root-cert`` ConfigMap (read in multi-cluster runs,
collect/trust_anchor.py: serial, validity and fingerprint only). Two clusters trust differently when no
root of one appears in the other; a cluster with neither is not compared. Whether istiod has a plugged-in
CA (the ``cacerts`` Secret, its presence read metadata-only, never its data) is evidence: without it
istiod signs with a self-signed root no other cluster can share.

The failing calls it explains: an MD0601 finding of a pod in one of the clusters named, whose access log
shows the verify failure on the upstreams of that finding. Real Envoy 1.40, calling across the lab's
clusters over Istio mTLS a pod of a cluster on another root, logs ``503 UF`` with
``upstream_reset_before_response_started{remote_connection_failure|TLS_error:|...BAD_SIGNATURE|...|
CERTIFICATE_VERIFY_FAILED:verify_cert_failed:..._certificate_signature_failure:TLS_error_end}`` and the
failing endpoint, the callee's pod IP and port, as %UPSTREAM_HOST%. When that address is the pod IP of
exactly one pod of the clusters read, the link holds only if that pod's cluster is one the caller's
cluster shares no root with (a pod of its own cluster, or of a cluster of the same root, fails for another
reason: MD0404 inside a cluster); an address no cluster read shows (pods out of scope) leaves the link
to the log lines and the pod's cluster.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Iterable

from kubectl_meshdoctor.checks.base import finding
from kubectl_meshdoctor.checks.root_ca_mismatch import ROOT_CERT_CONFIGMAP, VERIFY_FAILED
from kubectl_meshdoctor.findings import Finding, Subject
from kubectl_meshdoctor.multichecks import MultiCheck

# Where the fix goes: the plugged-in root of each cluster (named, never read).
CACERTS = Subject("Secret", "cacerts", "istio-system")


def roots_of(bundle) -> Counter:
    """(serial, valid from, expires) of each ROOTCA the cluster's sidecars hold -> how many sidecars."""
    roots: Counter = Counter()
    for proxy in bundle.proxies.values():
        held = {(c.serial, c.valid_from, c.expiration_time) for c in proxy.certs or () if c.role == "ca"}
        roots.update(held)
    return roots


def trusted(cluster) -> tuple[frozenset, list[str]]:
    """The roots a cluster trusts, as (serial number, expires), and the evidence lines that say so: its
    sidecars' ROOTCA, else the root its istiod publishes (istio-ca-root-cert of istio-system)."""
    held = roots_of(cluster.bundle)
    if held:
        return frozenset(_key(serial, end) for serial, _, end in held) - {None}, [
            f"cluster {cluster.context}: ROOTCA serial {serial} (valid {start} to {end}) in {count} sidecar"
            f"{'s' if count != 1 else ''}" for (serial, start, end), count in held.most_common()]
    published = (cluster.trust_anchor or {}).get("rootCerts") or []
    return frozenset(_key(c["serial"], c["notAfter"]) for c in published) - {None}, [
        f"cluster {cluster.context}: no sidecar examined; {ROOT_CERT_CONFIGMAP} in istio-system publishes root "
        f"serial {c['serial']} (valid {c['notBefore']} to {c['notAfter']}, SHA-256 {c['sha256'][:16]}…)"
        for c in published]


def _key(serial: str, expires: str) -> tuple[int, str] | None:
    try:
        return int(serial, 16), expires
    except ValueError:
        return None


def plugged_in(cluster) -> list[str]:
    """Evidence: whether istiod of the cluster was given a CA (the cacerts Secret, by its metadata)."""
    cacerts = (cluster.trust_anchor or {}).get("cacerts")
    if cacerts is None:
        return []
    if cacerts["present"]:
        return [f"cluster {cluster.context}: Secret istio-system/cacerts present (created {cacerts['created']})"]
    return [f"cluster {cluster.context}: no Secret istio-system/cacerts: istiod signs with a self-signed root of "
            "its own"]


class CrossClusterTrustMismatch(MultiCheck):
    name = "cross-cluster-trust-mismatch"
    codes = ("MD0406",)

    def run(self, clusters: list) -> Iterable[Finding]:
        found = {c.context: trusted(c) for c in clusters}
        roots = {context: keys for context, (keys, _) in found.items() if keys}
        contexts = list(roots)
        apart = [(a, b) for i, a in enumerate(contexts) for b in contexts[i + 1:] if not roots[a] & roots[b]]
        if not apart:
            return
        involved = list(dict.fromkeys(context for pair in apart for context in pair))
        pairs = ", ".join(f"{a} and {b}" for a, b in apart)
        evidence = [line for context in involved for line in found[context][1]]
        evidence += [line for c in clusters if c.context in involved for line in plugged_in(c)]
        evidence += _failing_calls([c for c in clusters if c.context in involved], apart)
        item = finding("MD0406", CACERTS, f"clusters {pairs} trust different root CAs: cross-cluster mTLS "
                       "fails certificate verification", evidence)
        yield replace(item.with_links(root_cause=True, caused_by=()), cluster=",".join(involved))

    def explains(self, cause: Finding, symptom: Finding, proxy, clusters: list = ()) -> bool:
        named = set((cause.cluster or "").split(","))
        for entry in _verify_failures(proxy, symptom.upstreams):
            owner = pod_at(clusters, entry.upstream_host)
            if owner is None:
                return True  # the endpoint is no pod of the clusters read: the log lines and the cluster say it
            context, _ = owner
            if context in named and context != symptom.cluster and _apart(clusters, context, symptom.cluster):
                return True
        return False


def _verify_failures(proxy, upstreams=()) -> list:
    """The access-log failures of ``proxy`` that show the certificate verification failure."""
    log = proxy.access_log if proxy is not None else None
    return [entry for entry in (log.failures if log else ())
            if (VERIFY_FAILED in entry.transport_failure_reason or VERIFY_FAILED in entry.line)
            and (not upstreams or entry.upstream_cluster in upstreams)]


def pod_at(clusters: list, address: str) -> tuple[str, str] | None:
    """(context, namespace/name) of the one pod of the clusters read whose IP is the endpoint's address
    (``ip:port``); None when no pod has it, or pods of several clusters do (overlapping pod CIDRs)."""
    ip = address.rpartition(":")[0].strip("[]") if ":" in address else address
    if not ip:
        return None
    owners = []
    for cluster in clusters:
        for obj in cluster.bundle.objects if cluster.bundle is not None else ():
            status = obj.get("status") or {}
            addresses = {status.get("podIP")} | {a.get("ip") for a in status.get("podIPs") or () if isinstance(a, dict)}
            if obj.get("kind") == "Pod" and ip in addresses:
                meta = obj.get("metadata") or {}
                owners.append((cluster.context, f"{meta.get('namespace')}/{meta.get('name')}"))
    return owners[0] if len({context for context, _ in owners}) == 1 else None


def _apart(clusters: list, first: str, second: str | None) -> bool:
    """Whether the sidecars of two clusters hold no ROOTCA in common (both must show one)."""
    known = {c.context: trusted(c)[0] for c in clusters if c.bundle is not None}
    a, b = known.get(first), known.get(second)
    return bool(a and b) and not a & b


def _failing_calls(clusters: list, apart: list[tuple[str, str]], limit: int = 4) -> list[str]:
    """Evidence lines: calls that failed verification toward a pod of a cluster on another root."""
    lines = []
    for cluster in clusters:
        for key, proxy in sorted(cluster.bundle.proxies.items()):
            seen: dict[tuple[str, str], int] = {}
            for entry in _verify_failures(proxy):
                seen[(entry.upstream_cluster, entry.upstream_host)] = seen.get((entry.upstream_cluster, entry.upstream_host), 0) + 1
            for (upstream, host), count in seen.items():
                owner = pod_at(clusters, host)
                if owner is None or (cluster.context, owner[0]) not in apart and (owner[0], cluster.context) not in apart:
                    continue
                lines.append(f"cluster {cluster.context}: {key} -> {upstream} at {host}, pod {owner[1]} of cluster "
                             f"{owner[0]}: {count} call{'s' if count != 1 else ''} failed CERTIFICATE_VERIFY_FAILED")
    return lines[:limit]


CHECK = CrossClusterTrustMismatch()
