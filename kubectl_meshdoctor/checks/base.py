"""What a check is: metadata (name, codes, evidence needed) plus one pure ``run`` method.

A check never does I/O and keeps no state between runs; everything it reads comes from the
``AnalysisContext`` it is given. A check whose evidence is absent is skipped with a reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Iterable

from kubectl_meshdoctor.catalogue import entry
from kubectl_meshdoctor.findings import Finding, Severity, Subject

if TYPE_CHECKING:
    from kubectl_meshdoctor.checks.context import AnalysisContext


class Check:
    """Base class: subclasses set the class attributes and implement ``run``."""

    name: ClassVar[str]
    codes: ClassVar[tuple[str, ...]]
    # Evidence kinds (``Evidence.*``) that must all be available for the check to run.
    needs: ClassVar[frozenset[str]]

    def run(self, ctx: "AnalysisContext") -> Iterable[Finding]:
        raise NotImplementedError


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis: evidence lines stay readable."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pod_subject(key: str) -> Subject:
    """The Pod named by a "namespace/name" evidence key."""
    namespace, _, name = key.partition("/")
    return Subject("Pod", name, namespace)


def finding(
    code: str,
    subject: Subject,
    message: str,
    evidence: Iterable[str] = (),
    *,
    pod: str | None = None,
    remediation: str | None = None,
    severity: Severity | None = None,
    affects: Iterable[str] = (),
    upstreams: Iterable[str] = (),
) -> Finding:
    """A finding with the catalogue's severity and fix unless the check knows better."""
    item = entry(code)
    return Finding(
        code=item.code,
        severity=severity or item.severity,
        subject=subject,
        message=message,
        remediation=remediation or item.fix,
        evidence=tuple(evidence),
        pod=pod,
        affects=tuple(affects),
        upstreams=tuple(upstreams),
    )
