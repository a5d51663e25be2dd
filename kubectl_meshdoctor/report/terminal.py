"""The terminal view, written for the on-call engineer at 3 a.m.: the root causes first, then how each
one shows up (symptom -> cause) with its evidence and fix, then the pods, gaps and skipped checks.

A healthy mesh prints one line. Colour only marks severity, and disappears with --no-color, NO_COLOR
or when stdout is not a terminal.
"""

from __future__ import annotations

import os
from typing import IO, Iterable

from rich.console import Console
from rich.table import Table
from rich.text import Text

from kubectl_meshdoctor.analysis import HEALTHY, UNMESHED, PodResult, Report
from kubectl_meshdoctor.catalogue import CatalogueEntry, entry
from kubectl_meshdoctor.errors import UsageError
from kubectl_meshdoctor.findings import Finding, Severity

SEVERITY_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
STATUS_STYLE = {"failing": "bold red", "degraded": "yellow", "incomplete": "magenta", HEALTHY: "green",
                UNMESHED: "cyan"}
MAX_EVIDENCE_LINES = 6
MAX_POD_NAMES = 5


def make_console(stream: IO[str], *, color: bool = True) -> Console:
    """A console on ``stream``; without colour it emits no ANSI escape at all (not even bold)."""
    plain = not color or bool(os.environ.get("NO_COLOR"))
    terminal = stream.isatty()
    return Console(
        file=stream,
        color_system=None if plain else "auto",
        no_color=plain,
        highlight=False,
        emoji=False,
        markup=False,  # messages quote user data such as "[v1]"; never interpret it
        soft_wrap=not terminal,  # a pipe or file gets whole lines, grep-able
        width=None if terminal else _pipe_width(),
    )


def _pipe_width() -> int:
    try:
        return max(80, int(os.environ.get("COLUMNS", "")))
    except ValueError:
        return 160


def _name(code: str) -> str:
    try:
        return entry(code).name
    except UsageError:  # a code a check emits before its catalogue entry exists still renders
        return code


def _tag(item: Finding) -> Text:
    return Text(f"[{item.severity.value.upper()}]", style=SEVERITY_STYLE[item.severity])


def _pod_list(pods: Iterable[str]) -> str:
    pods = list(pods)
    shown = ", ".join(pods[:MAX_POD_NAMES])
    return shown + (f" and {len(pods) - MAX_POD_NAMES} more" if len(pods) > MAX_POD_NAMES else "")


def chain_to(cause: Finding, findings: list[Finding], pod: str | None) -> list[Finding]:
    """The findings from the outermost symptom in ``pod`` down to ``cause``, following ``caused_by``."""
    candidates = [f for f in findings if f.pod == pod or f.pod is None]
    by_code: dict[str, list[Finding]] = {}
    for item in candidates:
        by_code.setdefault(item.code, []).append(item)
    explained = {code for item in candidates if item.pod == pod for code in item.caused_by}
    tops = [f for f in candidates if f.pod == pod and f.code not in explained]

    def walk(item: Finding, seen: frozenset[str]) -> list[Finding] | None:
        if item == cause:
            return [item]
        for code in item.caused_by:
            if code in seen:
                continue
            for below in by_code.get(code, []):
                path = walk(below, seen | {code})
                if path:
                    return [item, *path]
        return None

    for top in tops:
        path = walk(top, frozenset({top.code}))
        if path:
            return path
    return [cause]


def _print_finding(console: Console, item: Finding, depth: int, *, with_fix: bool) -> None:
    indent = "  " + "   " * depth
    line = Text(indent + ("└─ " if depth else ""))
    line.append_text(_tag(item))
    line.append(f" {item.code} {_name(item.code)}: ", style="bold")
    line.append(item.message)
    if depth == 0 and item.pod:
        line.append(f"  (pod {item.pod})", style="dim")
    console.print(line)
    pad = indent + ("   " if depth else "") + "   "
    if item.subject and depth:
        console.print(Text(f"{pad}subject: {item.subject}", style="dim"))
    for evidence in item.evidence[:MAX_EVIDENCE_LINES]:
        console.print(Text(f"{pad}| {evidence}"))
    if len(item.evidence) > MAX_EVIDENCE_LINES:
        console.print(Text(f"{pad}| ... {len(item.evidence) - MAX_EVIDENCE_LINES} more lines (see -o yaml)", style="dim"))
    if with_fix:
        console.print(Text(f"{pad}fix: ", style="bold green").append(item.remediation, style="default"))


def _root_causes(report: Report) -> list[tuple[Finding, tuple[str, ...]]]:
    """Every root-cause finding once, with the in-scope pods it explains (groups first)."""
    seen: dict[tuple, tuple[Finding, tuple[str, ...]]] = {}
    for group in report.groups:
        seen.setdefault(group.cause.cause_key, (group.cause, group.pods))
    for item in report.findings:
        if item.root_cause:
            seen.setdefault(item.cause_key, (item, (item.pod,) if item.pod else ()))
    return list(seen.values())


def print_report(report: Report, console: Console) -> None:
    pod_count = len(report.pods)
    if not report.findings:
        scope = f"{pod_count} pod{'s' if pod_count != 1 else ''}" if pod_count else _scope_text(report)
        console.print(Text(f"no problems found in {scope}", style="bold green"))
        _print_unmeshed(report, console)
    else:
        causes = _root_causes(report)
        console.print(Text("ROOT CAUSES", style="bold underline"))
        for cause, pods in causes:
            line = Text("  ")
            line.append_text(_tag(cause))
            who = f"{len(pods)} pod{'s' if len(pods) != 1 else ''}: " if pods else ""
            line.append(f" {who}{cause.message} ({cause.code} {_name(cause.code)}, {cause.subject})")
            console.print(line)
            console.print(Text("      fix: ", style="bold green").append(cause.remediation, style="default"))
        console.print()
        console.print(Text("DIAGNOSIS (symptom -> cause)", style="bold underline"))
        for cause, pods in causes:
            representative = pods[0] if pods else cause.pod
            chain = chain_to(cause, report.findings, representative)
            for depth, item in enumerate(chain):
                _print_finding(console, item, depth, with_fix=item is chain[-1])
            if len(pods) > 1:
                console.print(Text(f"     same cause in {len(pods)} pods: {_pod_list(pods)}", style="dim"))
            console.print()
        _print_pods(report, console)
    _print_gaps_and_skips(report, console)
    _print_summary(report, console)


def _scope_text(report: Report) -> str:
    kind = report.scope.get("kind") or "input"
    return f"the {kind}" if kind != "manifests" else "the manifests"


def _print_pods(report: Report, console: Console) -> None:
    unhealthy = [p for p in report.pods if p.status != HEALTHY]
    if not report.pods:
        return
    console.print(Text("PODS", style="bold underline"))
    for result in unhealthy:
        if result.status == UNMESHED:
            continue
        line = Text(f"  {result.pod}  ")
        line.append(result.status, style=STATUS_STYLE.get(result.status, ""))
        if result.root_causes:
            line.append("  " + ", ".join(result.root_causes), style="dim")
        console.print(line)
        _print_outside_the_mesh(report, result, console)
    _print_unmeshed(report, console)
    healthy = len(report.pods) - len(unhealthy)
    if healthy:
        console.print(Text(f"  {healthy} healthy pod{'s' if healthy != 1 else ''}", style="green"))
    console.print()


def _print_unmeshed(report: Report, console: Console) -> None:
    """Pods outside the mesh, with why; a one-pod report also shows the pod as a server."""
    for result in report.pods:
        if result.status != UNMESHED:
            continue
        line = Text(f"  {result.pod}  ")
        line.append(UNMESHED, style=STATUS_STYLE[UNMESHED])
        line.append(f"  {result.reason}", style="dim")
        console.print(line)
        _print_server_view(report, result, console)


def _print_outside_the_mesh(report: Report, result: PodResult, console: Console) -> None:
    """Why a failing or degraded pod has no sidecar; in a one-pod report, what it is as a server."""
    if result.reason is None:
        return
    console.print(Text(f"     | no istio-proxy: {result.reason}", style="dim"))
    _print_server_view(report, result, console)


def _print_server_view(report: Report, result: PodResult, console: Console) -> None:
    if report.scope.get("kind") == "pod":
        for item in result.server:
            console.print(Text(f"     | {item}", style="dim"))


def _print_gaps_and_skips(report: Report, console: Console) -> None:
    for gap in report.gaps:
        where = f"{gap.pod}: " if gap.pod else ""
        console.print(Text(f"gap: {where}{gap.what}: {gap.reason}", style="magenta"))
    for skipped in report.skipped:
        console.print(Text(f"skipped: {skipped.check} ({', '.join(skipped.codes)}): {skipped.reason}", style="dim"))


def _print_summary(report: Report, console: Console) -> None:
    if not report.findings:
        return
    counts = {s: sum(1 for f in report.findings if f.severity is s) for s in Severity}
    parts = [f"{n} {s.value}{'s' if n != 1 else ''}" for s, n in sorted(counts.items(), key=lambda kv: -kv[0].rank) if n]
    failing = sum(1 for p in report.pods if p.status == "failing")
    pods = f" in {len(report.pods)} pods ({failing} failing)" if report.pods else ""
    noun = "finding" if len(report.findings) == 1 else "findings"
    console.print(Text(f"{len(report.findings)} {noun}: {', '.join(parts)}{pods}", style="bold"))


def print_catalogue(entries: Iterable[CatalogueEntry], console: Console) -> None:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("CODE", "NAME", "SEVERITY", "TITLE"):
        table.add_column(column, overflow="fold")
    for item in entries:
        table.add_row(item.code, item.name, Text(item.severity.value, style=SEVERITY_STYLE[item.severity]), item.title)
    console.print(table)


def print_explanation(item: CatalogueEntry, console: Console) -> None:
    head = Text(f"{item.code} {item.name} ", style="bold")
    head.append(f"({item.severity.value})", style=SEVERITY_STYLE[item.severity])
    console.print(head)
    console.print(item.title)
    for heading, body in (("SYMPTOM", item.symptom), ("CAUSE", item.cause),
                          ("DETECTION", item.detection), ("FIX", item.fix)):
        console.print()
        console.print(Text(heading, style="bold underline"))
        console.print("  " + body)
    if item.retired:
        console.print(Text("\nThis code is retired and no longer reported.", style="dim"))
