"""SARIF 2.1.0: the report as code-scanning results, so CI can annotate the manifests of a pull request.

One rule per catalogue code (its texts are the rule's help), one result per finding, placed at the
document that defines the finding's subject. A finding no file defines (a bundle, an object from
elsewhere) keeps a logical location naming the object, which SARIF allows; code scanning shows only
results with a file, so the README says so. Gaps and skipped checks become the invocation's
notifications: they say what was not analysed, which is not a finding about the files.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Protocol
from urllib.parse import quote

from kubectl_meshdoctor import __version__
from kubectl_meshdoctor.analysis import Report
from kubectl_meshdoctor.catalogue import CATALOGUE, CatalogueEntry
from kubectl_meshdoctor.evidence import Gap
from kubectl_meshdoctor.findings import Finding, Severity
from kubectl_meshdoctor.manifests import SourceLocation

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
TOOL_NAME = "kubectl-meshdoctor"
# Relative artifact URIs are relative to this base (the working directory, i.e. the repository root in CI).
SOURCE_ROOT = "SRCROOT"
LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


class Locator(Protocol):
    """Where findings and gaps point: the manifests read (``ManifestSet``), or a bundle as one file."""

    def locate(self, item: Finding) -> list[SourceLocation]: ...

    def file_of_gap(self, gap: Gap) -> Path | None: ...


class WholeFile:
    """Every finding at the file level of one artifact: a saved bundle has no line per object."""

    def __init__(self, path: Path):
        self.path = path

    def locate(self, item: Finding) -> list[SourceLocation]:
        return [SourceLocation(self.path, None)]

    def file_of_gap(self, gap: Gap) -> Path | None:
        return None


def sarif_log(report: Report, locator: Locator, base: Path) -> dict:
    """The SARIF log (one run) of ``report``; file URIs relative to ``base`` where the file lies under it."""
    rules = [entry for entry in CATALOGUE if not entry.retired]
    index = {entry.code: position for position, entry in enumerate(rules)}
    base = Path(os.path.abspath(base))
    results = [_result(item, index, locator, base) for item in report.findings]
    notifications = [_gap_notification(gap, locator, base) for gap in report.gaps]
    notifications += [
        {"level": "note", "message": {"text": f"check {s.check} ({', '.join(s.codes)}) did not run: {s.reason}"}}
        for s in report.skipped
    ]
    run = {
        "tool": {"driver": {
            "name": TOOL_NAME,
            "version": __version__,
            "semanticVersion": __version__,
            "rules": [_rule(entry) for entry in rules],
        }},
        "originalUriBaseIds": {SOURCE_ROOT: {"uri": base.as_uri().rstrip("/") + "/"}},
        "invocations": [{
            # A check that raised is a tool failure; gaps (what could not be read) are not.
            "executionSuccessful": not report.check_errors,
            "toolExecutionNotifications": notifications,
        }],
        "results": results,
        "properties": {"scope": report.scope},
    }
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}


def _rule(entry: CatalogueEntry) -> dict:
    sections = (("Symptom", entry.symptom), ("Cause", entry.cause), ("Detection", entry.detection), ("Fix", entry.fix))
    return {
        "id": entry.code,
        "name": entry.name,
        "shortDescription": {"text": entry.title},
        "fullDescription": {"text": entry.symptom},
        "help": {
            "text": "\n\n".join(f"{title}: {text}" for title, text in sections),
            "markdown": "\n\n".join(f"**{title}.** {text}" for title, text in sections),
        },
        "defaultConfiguration": {"level": LEVELS[entry.severity]},
    }


def _result(item: Finding, index: dict[str, int], locator: Locator, base: Path) -> dict:
    logical = {
        "name": item.subject.name,
        "fullyQualifiedName": "/".join(p for p in (item.subject.kind, item.subject.namespace, item.subject.name) if p),
        "kind": "resource",
    }
    places = locator.locate(item)
    primary: dict = {"logicalLocations": [logical]}
    if places:
        primary["physicalLocation"] = _physical(places[0], base)
    result = {
        "ruleId": item.code,
        "level": LEVELS[item.severity],
        "message": {"text": f"{item.message.rstrip('.')}. Fix: {item.remediation}"},
        "locations": [primary],
        "properties": {
            "subject": item.subject.to_dict(),
            "pod": item.pod,
            "rootCause": item.root_cause,
            "causedBy": list(item.caused_by),
            "evidence": list(item.evidence),
        },
    }
    if item.code in index:
        result["ruleIndex"] = index[item.code]
    if len(places) > 1:  # the same object defined in several files: the others, for the reader to compare
        result["relatedLocations"] = [
            {"id": number, "physicalLocation": _physical(place, base), "message": {"text": f"also defines {item.subject}"}}
            for number, place in enumerate(places[1:], start=1)
        ]
    return result


def _gap_notification(gap: Gap, locator: Locator, base: Path) -> dict:
    where = f"{gap.pod}: " if gap.pod else ""
    notification: dict = {"level": "warning", "message": {"text": f"{where}{gap.what}: {gap.reason}"}}
    path = locator.file_of_gap(gap)
    if path is not None:
        notification["locations"] = [{"physicalLocation": _physical(SourceLocation(path, None), base)}]
    return notification


def _physical(place: SourceLocation, base: Path) -> dict:
    physical: dict = {"artifactLocation": artifact_location(place.path, base)}
    if place.line is not None:
        physical["region"] = {"startLine": place.line}
    return physical


def artifact_location(path: Path, base: Path) -> dict:
    """A relative URI (from ``base``) for a file under it, else an absolute file: URI."""
    absolute = Path(os.path.abspath(path))
    try:
        relative = absolute.relative_to(base)
    except ValueError:
        return {"uri": absolute.as_uri()}
    return {"uri": quote(PurePosixPath(*relative.parts).as_posix()), "uriBaseId": SOURCE_ROOT}
