"""MD0403 CertificateExpiring: a proxy's workload or CA certificate is expired, early, stale or wrong.

Anti-pattern: trusting ``days_until_expiration`` from Envoy's /certs (it is never negative: an expired
certificate shows "0"), or checking certificates against the wall clock of the machine that reads a
saved bundle days later.

Best practice: compare ``valid_from``/``expiration_time`` with the analysis time. Istio renews a
workload certificate at about half its lifetime, so one with less than a quarter left means rotation
is stuck. Check that the SPIFFE identity (``spiffe://<trust domain>/ns/<ns>/sa/<sa>``) is the pod's
own. Warn about the CA well before it ends (``--ca-warn-days``).

Why: an expired or not-yet-valid certificate breaks every mTLS handshake of the pod
(``CERTIFICATE_VERIFY_FAILED``); an identity naming another service account makes authorization
policies deny or allow the wrong traffic; an expiring root CA takes the whole mesh down at once.

Decisions: severity is error when a certificate is already expired or not yet valid, warning
otherwise (stale rotation, wrong identity, CA expiring soon). A CA finding's subject is the CA
certificate (by serial) and its message names no pod, so all pods sharing that CA group together.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Iterable

from kubectl_meshdoctor.checks.base import Check, finding, moment, parse_time, pod_subject
from kubectl_meshdoctor.checks.context import AnalysisContext
from kubectl_meshdoctor.evidence import Certificate, Evidence
from kubectl_meshdoctor.findings import Finding, Severity, Subject

SPIFFE_PREFIX = "spiffe://"
RENEWAL_FRACTION_LEFT = 0.25  # Istio renews near half life; a quarter left means renewal is stuck


def spiffe_identity(cert: Certificate) -> tuple[str, str, str] | None:
    """(trust domain, namespace, service account) from the certificate's SPIFFE URI SAN."""
    for san in cert.subject_alt_names:
        if not san.startswith(SPIFFE_PREFIX):
            continue
        domain, _, path = san[len(SPIFFE_PREFIX):].partition("/")
        parts = path.split("/")
        if len(parts) == 4 and parts[0] == "ns" and parts[2] == "sa":
            return domain, parts[1], parts[3]
    return None


def span(delta: timedelta) -> str:
    """A duration as people read it: '3d 4h', '5h 12m', '40m'."""
    seconds = int(abs(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m"


def _describe(cert: Certificate) -> str:
    sans = ", ".join(cert.subject_alt_names) or "no SAN"
    return f"{cert.role} certificate serial {cert.serial}: valid {cert.valid_from} to {cert.expiration_time} ({sans})"


def _validity(cert: Certificate, key: str) -> list:
    """The certificate's validity as moments: a workload certificate's are its pod's; a CA's are its own."""
    pod = key if cert.role != "ca" else None
    name = "workload certificate" if pod else f"CA certificate {cert.serial[:12]}"
    return [moment(cert.valid_from, f"{name} issued (valid from)", pod),
            moment(cert.expiration_time, f"{name} expires", pod)]


class CertificateExpiring(Check):
    name = "CertificateExpiring"
    codes = ("MD0403",)
    needs = frozenset({Evidence.PROXY_CERTS})

    def run(self, ctx: AnalysisContext) -> Iterable[Finding]:
        now = parse_time(ctx.now_iso or "") or datetime.now(timezone.utc)
        for key, proxy in sorted(ctx.proxies.items()):
            if not proxy.certs:
                continue
            # /certs lists the same certificate once per secret consumer: judge each serial once.
            unique = {(c.role, c.serial, c.expiration_time): c for c in proxy.certs}
            for cert in unique.values():
                if cert.role == "ca":
                    yield from self._ca(key, cert, now, ctx.ca_warn_days)
                else:
                    yield from self._workload(ctx, key, cert, now)

    @staticmethod
    def _workload(ctx: AnalysisContext, key: str, cert: Certificate, now: datetime) -> Iterable[Finding]:
        start, end = parse_time(cert.valid_from), parse_time(cert.expiration_time)
        evidence = [_describe(cert), f"analysis time: {now.isoformat().replace('+00:00', 'Z')}"]
        subject = pod_subject(key)
        if end is not None and end <= now:
            yield finding("MD0403", subject, f"workload certificate of {key} expired {span(now - end)} ago",
                          evidence, pod=key, since=_validity(cert, key), severity=Severity.ERROR)
        elif start is not None and start > now:
            yield finding("MD0403", subject, f"workload certificate of {key} is not valid for another {span(start - now)}",
                          evidence + ["a certificate from the future usually means clock skew between istiod and the node"],
                          pod=key, since=_validity(cert, key), severity=Severity.ERROR)
        elif start is not None and end is not None and end - now < (end - start) * RENEWAL_FRACTION_LEFT:
            yield finding("MD0403", subject,
                          f"workload certificate of {key} expires in {span(end - now)} and was not renewed",
                          evidence + [f"lifetime {span(end - start)}; Istio renews at about half of it"],
                          pod=key, since=_validity(cert, key), severity=Severity.WARNING)
        identity = spiffe_identity(cert)
        pod = ctx.pod(key)
        if identity is None or pod is None:
            return
        _, cert_ns, cert_sa = identity
        pod_ns = key.partition("/")[0]
        spec = pod.get("spec") or {}
        pod_sa = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
        if (cert_ns, cert_sa) != (pod_ns, pod_sa):
            wrong = []
            if cert_ns != pod_ns:
                wrong.append(f"namespace {cert_ns} instead of {pod_ns}")
            if cert_sa != pod_sa:
                wrong.append(f"service account {cert_sa} instead of {pod_sa}")
            yield finding("MD0403", subject,
                          f"workload certificate of {key} names {' and '.join(wrong)}",
                          [_describe(cert), f"pod spec.serviceAccountName: {pod_sa}"],
                          pod=key, since=_validity(cert, key), severity=Severity.WARNING)

    @staticmethod
    def _ca(key: str, cert: Certificate, now: datetime, warn_days: int) -> Iterable[Finding]:
        start, end = parse_time(cert.valid_from), parse_time(cert.expiration_time)
        subject = Subject("Certificate", f"ca-{cert.serial}")
        evidence = [_describe(cert)]
        if end is not None and end <= now:
            yield finding("MD0403", subject, f"CA certificate {cert.serial} expired at {cert.expiration_time}",
                          evidence, pod=key, since=_validity(cert, key), severity=Severity.ERROR)
        elif start is not None and start > now:
            yield finding("MD0403", subject, f"CA certificate {cert.serial} is not valid before {cert.valid_from}",
                          evidence, pod=key, since=_validity(cert, key), severity=Severity.ERROR)
        elif end is not None and end - now <= timedelta(days=warn_days):
            yield finding("MD0403", subject,
                          f"CA certificate {cert.serial} expires at {cert.expiration_time} (within {warn_days} days)",
                          evidence + [f"time left: {span(end - now)}"], pod=key, since=_validity(cert, key), severity=Severity.WARNING)


CHECK = CertificateExpiring()
