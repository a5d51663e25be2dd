"""MD0406 CrossClusterTrustMismatch: the clusters' sidecars trust different root CAs.

Why: mTLS between clusters works only when each side's ROOTCA validates the other side's workload
certificate chain, which the multi-cluster install guides arrange by plugging one root (the ``cacerts``
Secret) into every cluster. A cluster installed with istiod's own self-signed root looks healthy alone;
calls to it from another cluster fail the TLS handshake (CERTIFICATE_VERIFY_FAILED).

Evidence: the ROOTCA each examined sidecar holds, from its Envoy's /certs. Real Envoy prints no
fingerprint there, only the serial number and validity, so a root is known by (serial, valid from,
expires). Two clusters trust differently when no root of one appears in the other; clusters whose
sidecars were not examined (exec refused, no sidecar) are not compared. Never reads a Secret.

The failing calls it explains: an MD0601 finding of a pod in one of the clusters named, whose access log
shows the verify failure (real Envoy logs ``CERTIFICATE_VERIFY_FAILED ... certificate_signature_failure``
for a peer chain of another root, as in the single-cluster MD0404 scenario) on the upstreams of that
finding. The lab's clusters do not call each other, so this link rests on that log evidence: which
cluster the failing upstream endpoint lives in is not checked.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Iterable

from kubectl_meshdoctor.checks.base import finding
from kubectl_meshdoctor.checks.root_ca_mismatch import VERIFY_FAILED
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


class CrossClusterTrustMismatch(MultiCheck):
    name = "cross-cluster-trust-mismatch"
    codes = ("MD0406",)

    def run(self, clusters: list) -> Iterable[Finding]:
        roots = {c.context: roots_of(c.bundle) for c in clusters}
        roots = {context: held for context, held in roots.items() if held}
        contexts = list(roots)
        apart = [(a, b) for i, a in enumerate(contexts) for b in contexts[i + 1:] if not set(roots[a]) & set(roots[b])]
        if not apart:
            return
        involved = list(dict.fromkeys(context for pair in apart for context in pair))
        pairs = ", ".join(f"{a} and {b}" for a, b in apart)
        evidence = [f"cluster {context}: ROOTCA serial {serial} (valid {start} to {end}) in {count} sidecar"
                    f"{'s' if count != 1 else ''}"
                    for context in involved for (serial, start, end), count in roots[context].most_common()]
        item = finding("MD0406", CACERTS, f"clusters {pairs} trust different root CAs: cross-cluster mTLS "
                       "fails certificate verification", evidence)
        yield replace(item.with_links(root_cause=True, caused_by=()), cluster=",".join(involved))

    def explains(self, cause: Finding, symptom: Finding, proxy) -> bool:
        log = proxy.access_log if proxy is not None else None
        return any(VERIFY_FAILED in entry.transport_failure_reason or VERIFY_FAILED in entry.line
                   for entry in (log.failures if log else ())
                   if not symptom.upstreams or entry.upstream_cluster in symptom.upstreams)


CHECK = CrossClusterTrustMismatch()
