"""MD0404 RootCaMismatch: pods trust different root CAs, so mutual TLS between them fails.

Anti-pattern: rotating Istio's root by swapping ``cacerts`` (or letting a self-signed root be
regenerated) without a transition period. istiod then signs new certificates with the new root and
publishes only it in each namespace's ``istio-ca-root-cert`` ConfigMap; restarted pods trust the new
root, the others still the old one, and each side rejects the other's certificate
(``CERTIFICATE_VERIFY_FAILED`` in the client's access log). Everything looks healthy: READY pods,
valid, unexpired certificates.

Best practice: the ``verify`` step of Istio's root transition, across the whole sweep: group the
pods by the root their Envoy trusts (the ``ROOTCA`` secret, named as /certs names it) and compare
with the root istiod publishes (``istio-ca-root-cert``, key ``root-cert.pem``).

Decisions:
- A root is named by its serial number and expiry (what /certs reports; it prints no fingerprint);
  the ConfigMap's PEM is read down to the same fields. A pod trusting several roots (a combined bundle,
  the right way to rotate) matches any peer sharing one of them.
- With the ConfigMap of the pod's namespace known, a pod whose roots do not include its root is
  reported: new pods and istiod's certificates follow the ConfigMap. Without it, a pod is reported
  when some pods of the sweep share no root with it and it is not in the larger of the two groups
  (both, on a tie).
- A pod whose access log shows CERTIFICATE_VERIFY_FAILED is reported too when the sweep holds pods
  sharing no root with it: its failing calls (MD0601) are explained by the mismatch.
- The evidence names no issuer (as /certs), so "a workload certificate not issued by the root its peers trust" shows
  through the handshake failures it causes, not by inspecting the chain. Root expiry stays MD0403.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable

from kubectl_meshdoctor.checks.base import Check, created, finding, moment, pod_subject, shorten
from kubectl_meshdoctor.checks.context import AnalysisContext
from kubectl_meshdoctor.evidence import Evidence, ProxyEvidence
from kubectl_meshdoctor.findings import Finding
from kubectl_meshdoctor.x509 import CertificateId, certificates_in_pem

ROOT_CERT_CONFIGMAP = "istio-ca-root-cert"
ROOT_CERT_KEY = "root-cert.pem"
VERIFY_FAILED = "CERTIFICATE_VERIFY_FAILED"
MAX_PODS_NAMED = 4

Root = tuple[int, str]  # (serial number, expiration time)
Trust = frozenset[Root]


def root_name(root: Root) -> str:
    serial = format(root[0], "x")
    return f"{serial[:12]}… (expires {root[1]})" if len(serial) > 12 else f"{serial} (expires {root[1]})"


def trusted_roots(proxy: ProxyEvidence) -> Trust | None:
    """The roots this Envoy trusts, from /certs; None when /certs listed no CA certificate."""
    roots = set()
    for cert in proxy.certs or ():
        if cert.role != "ca":
            continue
        try:
            roots.add((int(cert.serial, 16), cert.expiration_time))
        except ValueError:
            continue
    return frozenset(roots) or None


def published_certificates(ctx: AnalysisContext) -> dict[str, list[CertificateId]]:
    """namespace -> the root certificates of its istio-ca-root-cert ConfigMap (those with a readable PEM)."""
    found = {}
    for config_map in ctx.objects("ConfigMap"):
        meta = config_map.get("metadata") or {}
        if meta.get("name") != ROOT_CERT_CONFIGMAP:
            continue
        certs = certificates_in_pem(str((config_map.get("data") or {}).get(ROOT_CERT_KEY) or ""))
        if certs:
            found[str(meta.get("namespace") or "")] = certs
    return found


def verify_failures(proxy: ProxyEvidence) -> list[str]:
    log = proxy.access_log
    return [entry.line for entry in (log.failures if log else ()) if VERIFY_FAILED in entry.transport_failure_reason
            or VERIFY_FAILED in entry.line]


class RootCaMismatch(Check):
    name = "RootCaMismatch"
    codes = ("MD0404",)
    needs = frozenset({Evidence.PROXY_CERTS})

    def run(self, ctx: AnalysisContext) -> Iterable[Finding]:
        trust = {key: roots for key, proxy in sorted(ctx.proxies.items())
                 if (roots := trusted_roots(proxy)) is not None}
        if not trust:
            return
        config_map_certs = published_certificates(ctx)
        published = {ns: frozenset((c.serial, c.not_after) for c in certs) for ns, certs in config_map_certs.items()}
        group_sizes = Counter(trust.values())
        census = self._census(trust)
        for key, roots in trust.items():
            namespace = key.partition("/")[0]
            strangers = [other for other, theirs in trust.items() if not roots & theirs]
            config_map = published.get(namespace)
            failures = verify_failures(ctx.proxies[key])
            if config_map is not None:
                reported = not roots & config_map
            else:
                largest_against = max((group_sizes[trust[s]] for s in strangers), default=0)
                reported = bool(strangers) and group_sizes[roots] <= largest_against
            if not reported and not (failures and strangers):
                continue
            evidence = [f"/certs ROOTCA: {', '.join(root_name(r) for r in sorted(roots))}"]
            if config_map is not None:
                evidence.append(f"{ROOT_CERT_CONFIGMAP} in {namespace}: "
                                f"{', '.join(root_name(r) for r in sorted(config_map))}")
            evidence.append(f"pods by trusted root across the sweep: {census}")
            evidence += [f"access log: {shorten(line, 400)}" for line in failures[:2]]
            if config_map is not None and not roots & config_map:
                against = f"the root istiod publishes in {ROOT_CERT_CONFIGMAP}, {root_name(min(config_map))}"
            elif strangers:
                against = f"the root {len(strangers)} other pod(s) trust, {self._roots_of(trust, strangers)}"
            else:
                against = "the root of the peers it calls"
            since = [created(ctx.pod(key), f"pod created (trusts {root_name(min(roots))})", key)]
            since += [moment(pem.not_before, f"root {root_name((pem.serial, pem.not_after))} valid from (published "
                             f"in {ROOT_CERT_CONFIGMAP} of {namespace})") for pem in config_map_certs.get(namespace, ())]
            yield finding(
                "MD0404", pod_subject(key),
                f"{key} trusts root {root_name(min(roots))}, not {against}: mutual TLS between them fails",
                evidence, pod=key, since=since,
            )

    @staticmethod
    def _census(trust: dict[str, Trust]) -> str:
        by_root: dict[Trust, list[str]] = {}
        for key, roots in trust.items():
            by_root.setdefault(roots, []).append(key)
        parts = []
        for roots, pods in sorted(by_root.items(), key=lambda item: (-len(item[1]), sorted(item[0]))):
            named = ", ".join(pods[:MAX_PODS_NAMED]) + (f", +{len(pods) - MAX_PODS_NAMED}" if len(pods) > MAX_PODS_NAMED else "")
            parts.append(f"{' + '.join(root_name(r) for r in sorted(roots))}: {len(pods)} pod(s) ({named})")
        return "; ".join(parts)

    @staticmethod
    def _roots_of(trust: dict[str, Trust], pods: list[str]) -> str:
        roots = sorted({root for pod in pods for root in trust[pod]})
        return ", ".join(root_name(r) for r in roots)


CHECK = RootCaMismatch()
