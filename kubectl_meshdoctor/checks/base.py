"""What a check is: metadata (name, codes, evidence needed) plus one pure ``run`` method.

A check never does I/O and keeps no state between runs; everything it reads comes from the
``AnalysisContext`` it is given. A check whose evidence is absent is skipped with a reason.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, ClassVar, Iterable

from kubectl_meshdoctor.catalogue import entry
from kubectl_meshdoctor.findings import Finding, Moment, Severity, Subject

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


def parse_time(text: object) -> datetime | None:
    """An RFC 3339 time as the API and Envoy print it (``2026-11-24T12:30:16Z``), None when unreadable."""
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def moment(at: object, what: str, pod: str | None = None) -> Moment | None:
    """A ``Moment`` at ``at`` (a datetime, or RFC 3339 text as the evidence gives it), normalised to UTC;
    None when the evidence has no valid time: checks pass whatever they have, ``finding`` drops Nones."""
    when = at if isinstance(at, datetime) else parse_time(at)
    if when is None:
        return None
    when = when.astimezone(timezone.utc) if when.tzinfo else when.replace(tzinfo=timezone.utc)
    return Moment(when.isoformat(timespec="seconds").replace("+00:00", "Z"), what, pod)


def created(obj: dict | None, what: str, pod: str | None = None) -> Moment | None:
    """When an API object was created (``metadata.creationTimestamp``)."""
    return moment(((obj or {}).get("metadata") or {}).get("creationTimestamp"), what, pod)


def condition_since(obj: dict | None, kind: str, status: str, what: str, pod: str | None = None) -> Moment | None:
    """When the object's status condition ``kind`` last turned ``status`` (e.g. a pod's Ready False)."""
    for condition in ((obj or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == status:
            return moment(condition.get("lastTransitionTime"), what, pod)
    return None


def last_exit(status: dict | None, name: str, pod: str | None = None) -> Moment | None:
    """When a container last exited, with why and its restart count (a crash loop's latest crash)."""
    status = status or {}
    last = (status.get("lastState") or {}).get("terminated") or {}
    why = last.get("reason") or f"exit {last.get('exitCode', '?')}"
    return moment(last.get("finishedAt"), f"{name} exited ({why}; {status.get('restartCount') or 0} restarts)", pod)


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
    since: Iterable[Moment | None] = (),
    upstreams: Iterable[str] = (),
) -> Finding:
    """A finding with the catalogue's severity and fix unless the check knows better.

    ``since``: the times the evidence gives (see ``moment``); Nones are dropped, the rest sorted."""
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
        since=tuple(sorted((m for m in since if m is not None), key=lambda m: m.at)),
        upstreams=tuple(upstreams),
    )
