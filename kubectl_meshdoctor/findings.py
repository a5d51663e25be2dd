"""Findings: what a check reports, as frozen values that serialise to the public JSON shape."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum


class Severity(str, Enum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return {"info": 0, "warning": 1, "error": 2}[self.value]


@dataclass(frozen=True)
class Subject:
    """The object at fault (not necessarily the pod whose evidence showed it)."""

    kind: str
    name: str
    namespace: str | None = None

    def to_dict(self) -> dict:
        return {"kind": self.kind, "namespace": self.namespace, "name": self.name}

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


@dataclass(frozen=True)
class Moment:
    """A time the evidence gives, and what happened then: answers "when did it start, what changed?"."""

    at: str  # RFC 3339 in UTC, e.g. 2026-11-20T14:02:00Z
    what: str  # e.g. "kube-dns Service created with ClusterIP 172.19.9.54", or for a pod "1/2 READY"
    pod: str | None = None  # the pod it happened to ("namespace/name"); None: the subject, the cluster

    def to_dict(self) -> dict:
        return {"at": self.at, "what": self.what, "pod": self.pod}


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    subject: Subject
    message: str
    remediation: str
    evidence: tuple[str, ...] = ()
    pod: str | None = None
    root_cause: bool = False
    # Codes of the findings (same pod, or pod-less) that explain this one: the chain symptom -> cause.
    caused_by: tuple[str, ...] = field(default=())
    # For a pod-less finding: the pods it concerns (e.g. the pods of one istiod revision); empty = all.
    affects: tuple[str, ...] = field(default=())
    # Possible causes that could not be looked for in this pod (exec refused): a cause found below them
    # (``caused_by``) is then only probable; ``would_confirm`` says in one line what was missing.
    unchecked: tuple[str, ...] = field(default=())
    would_confirm: str = ""
    # The times the evidence gives (object creation, first readiness failure, restarts, certificate
    # validity), oldest first. Optional: a finding without any says nothing about when.
    since: tuple[Moment, ...] = field(default=())
    # The upstream clusters (or hosts) the finding is about: for MD0601 the cluster its failed lines went
    # to; for a cause, the clusters whose failures it explains. The tree links such a cause only to the
    # symptoms that share a cluster with it, not to every symptom of the pod.
    upstreams: tuple[str, ...] = field(default=())

    @property
    def cause_key(self) -> tuple:
        """What makes two findings the same cause, whichever pod showed it: a sweep groups by it."""
        return (self.code, self.subject, self.message)

    @property
    def confidence(self) -> str | None:
        """How sure the ``caused_by`` link is: None without one, else "confirmed" or "probable"."""
        if not self.caused_by:
            return None
        return "probable" if self.unchecked else "confirmed"

    def with_links(self, *, root_cause: bool, caused_by: tuple[str, ...],
                   unchecked: tuple[str, ...] = (), would_confirm: str = "") -> "Finding":
        return replace(self, root_cause=root_cause, caused_by=caused_by, unchecked=unchecked,
                       would_confirm=would_confirm)

    def to_dict(self) -> dict:
        return {
            "code": self.code,
            "severity": self.severity.value,
            "pod": self.pod,
            "subject": self.subject.to_dict(),
            "rootCause": self.root_cause,
            "causedBy": list(self.caused_by),
            "confidence": self.confidence,
            "unchecked": list(self.unchecked),
            "wouldConfirm": self.would_confirm or None,
            "affects": list(self.affects),
            "upstreams": list(self.upstreams),
            "message": self.message,
            "remediation": self.remediation,
            "evidence": list(self.evidence),
            "since": [moment.to_dict() for moment in self.since],
        }
