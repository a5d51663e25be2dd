"""The terminal view, written for the on-call engineer at 3 a.m.: the root causes first, then how each
one shows up (symptom -> cause) with its evidence and fix, then the pods, gaps and skipped checks.

A healthy mesh prints one line. Colour only marks severity, and disappears with --no-color, NO_COLOR
or when stdout is not a terminal.

The ROOT CAUSES list says each cause once: causes of one code whose messages differ only by the pod
they name ("istio-proxy in pod X is not ready") are one line with the pod count, and causes of one code
and subject whose messages differ in one word (the subsets of one VirtualService) are one line listing
those words. Skipped checks are one line unless --verbose; JSON and YAML keep every item.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
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
MAX_TIMELINE = 5


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
    elif depth == 0 and item.cluster:
        line.append(f"  (cluster {item.cluster})", style="dim")
    console.print(line)
    pad = indent + ("   " if depth else "") + "   "
    if item.subject and depth:
        console.print(Text(f"{pad}subject: {item.subject}", style="dim"))
    for evidence in item.evidence[:MAX_EVIDENCE_LINES]:
        console.print(Text(f"{pad}| {evidence}"))
    if len(item.evidence) > MAX_EVIDENCE_LINES:
        console.print(Text(f"{pad}| ... {len(item.evidence) - MAX_EVIDENCE_LINES} more lines (see -o yaml)", style="dim"))
    if item.unchecked:
        unchecked = ", ".join(f"{code} {_name(code)}" for code in item.unchecked)
        below = "probable cause below, " if item.caused_by else ""
        console.print(Text(f"{pad}{below}not checked for this pod: {unchecked}", style="magenta"))
    if with_fix:
        console.print(Text(f"{pad}fix: ", style="bold green").append(item.remediation, style="default"))


def _root_causes(report: Report) -> list[tuple[Finding, tuple[str, ...], tuple[str, ...]]]:
    """Every root-cause finding once, with the in-scope pods it explains and those it explains only
    probably (groups first)."""
    seen: dict[tuple, tuple[Finding, tuple[str, ...], tuple[str, ...]]] = {}
    for group in report.groups:
        seen.setdefault(group.cause.cause_key, (group.cause, group.pods, group.probable_pods))
    for item in report.findings:
        if item.root_cause:
            seen.setdefault(item.cause_key, (item, (item.pod,) if item.pod else (), ()))
    return list(seen.values())


@dataclass
class CauseLine:
    """One line of ROOT CAUSES: one or more root-cause findings said together."""

    text: str
    members: list[Finding]
    pods: list[str] = field(default_factory=list)
    probable_pods: list[str] = field(default_factory=list)
    # The one word in which the folded messages differ (its index) and each member's word there.
    varying_index: int | None = None
    variants: list[str] = field(default_factory=list)

    @property
    def cause(self) -> Finding:
        return self.members[0]

    def add(self, member: Finding, pods: Iterable[str], probable: Iterable[str]) -> None:
        if member not in self.members:
            self.members.append(member)
        self.pods.extend(p for p in pods if p not in self.pods)
        self.probable_pods.extend(p for p in probable if p not in self.probable_pods)


def _without_pod(message: str, pod: str) -> str:
    """``message`` without the pod it names ("istio-proxy in pod a/b is not ready" -> "istio-proxy is not
    ready"), or "" when it names no pod."""
    pattern = r"\s*\b(?:(?:in|of|for) )?(?:[Pp]od )?" + re.escape(pod) + r"\b"
    if not re.search(pattern, message):
        return ""
    return re.sub(pattern, "", message, count=1).strip()


def _one_word_apart(a: list[str], b: list[str]) -> int | None:
    """The index of the one word in which ``a`` and ``b`` differ, or None."""
    if len(a) != len(b):
        return None
    diff = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
    return diff[0] if len(diff) == 1 else None


def _plural(word: str) -> str:
    return word if word.endswith("s") else word + "s"


def merge_causes(causes: list[tuple[Finding, tuple[str, ...], tuple[str, ...]]]) -> list[CauseLine]:
    """The ROOT CAUSES lines: pod-named causes of one code folded into one line; causes of one code and
    subject that differ in one word folded into one line listing the words."""
    lines: list[CauseLine] = []
    by_pod_free: dict[tuple, CauseLine] = {}
    for cause, pods, probable in causes:
        generic = _without_pod(cause.message, cause.pod) if cause.pod and tuple(pods) == (cause.pod,) else ""
        key = (cause.code, cause.severity, cause.subject.kind, generic)
        if generic and key in by_pod_free:
            by_pod_free[key].add(cause, pods, probable)
            continue
        line = CauseLine(cause.message, [cause], list(pods), list(probable))
        if generic:
            by_pod_free[key] = line
            line.text = generic
        lines.append(line)
    for line in lines:
        if len(line.pods) <= 1:
            line.text = line.cause.message
    return _merge_one_word_apart(lines)


def _merge_one_word_apart(lines: list[CauseLine]) -> list[CauseLine]:
    merged: list[CauseLine] = []
    for line in lines:
        words = line.text.split()
        target = next((t for t in merged if _foldable(t, line, words)), None)
        if target is None:
            merged.append(line)
            continue
        target.varying_index = _one_word_apart(target.text.split(), words)
        target.variants.append(words[target.varying_index])
        for member in line.members:
            target.add(member, line.pods, line.probable_pods)
    for line in merged:
        if line.variants:
            words = line.text.split()
            index = line.varying_index
            words[index] = ", ".join(sorted(dict.fromkeys([words[index], *line.variants])))
            if index > 0:
                words[index - 1] = _plural(words[index - 1])
            line.text = " ".join(words)
    return merged


def _foldable(target: CauseLine, line: CauseLine, words: list[str]) -> bool:
    head, other = target.cause, line.cause
    if (head.code, head.severity, head.subject) != (other.code, other.severity, other.subject):
        return False
    index = _one_word_apart(target.text.split(), words)
    return index is not None and target.varying_index in (None, index)


def _probable_note(line: CauseLine, findings: list[Finding]) -> str:
    """What would have confirmed the probable links of ``line`` (the symptoms' ``would_confirm``)."""
    codes = {m.code for m in line.members}
    pods = set(line.probable_pods)
    notes = dict.fromkeys(f.would_confirm for f in findings
                          if f.pod in pods and f.would_confirm and codes & set(f.caused_by))
    return "; ".join(notes)


def timeline(entry: CauseLine, findings: list[Finding]) -> list[tuple[str, str]]:
    """(time, what) oldest first, from the ``since`` of the cause and of the symptoms above it in its
    pods: a pod's moment is said once for all of them ("first pod 1/2 READY; 8 pods since")."""
    keys = {m.cause_key for m in entry.members}
    pods = set(entry.pods)
    involved = [f for f in findings if f.cause_key in keys and (f.pod is None or f.pod in pods or not pods)]
    for pod in entry.pods:
        own = next((f for f in findings if f.pod == pod and f.cause_key in keys), entry.cause)
        involved += chain_to(own, findings, pod)[:-1]
    shared: dict[tuple[str, str], None] = {}
    per_pod: dict[str, dict[str, str]] = defaultdict(dict)  # what -> pod -> its earliest time
    for item in involved:
        for moment in item.since:
            if moment.pod is None:
                shared[(moment.at, moment.what)] = None
            else:
                known = per_pod[moment.what].get(moment.pod)
                per_pod[moment.what][moment.pod] = min(known, moment.at) if known else moment.at
    # per-pod moments that began together in the same pods are one event ("started ..., 1/2 READY")
    together: dict[tuple[str, int], list[str]] = defaultdict(list)
    for what, times in per_pod.items():
        together[(min(times.values()), len(times))].append(what)
    # at the same time, what happened to the cause comes before what the pods showed
    events = [(at, 0, what) for at, what in shared]
    for (first, count), whats in together.items():
        what = ", ".join(whats)
        events.append((first, 1, f"first pod {what}; {count} pods since" if count > 1 else what))
    return [(at, what) for at, _, what in sorted(events)]


def _timeline_text(events: list[tuple[str, str]]) -> str:
    """"14:02 kube-dns Service created ...; 14:05 first pod 1/2 READY; 8 pods since" (UTC; the date is
    shown once when every moment is on the same day, else with each)."""
    shown = events[:MAX_TIMELINE]
    days = {at[:10] for at, _ in shown}
    same_day = len(days) == 1

    def when(at: str) -> str:
        return at[11:16] if same_day else f"{at[:10]} {at[11:16]}"

    head = f"when (UTC, {next(iter(days))}): " if same_day else "when (UTC): "
    more = f"; ... {len(events) - MAX_TIMELINE} more" if len(events) > MAX_TIMELINE else ""
    return head + "; ".join(f"{when(at)} {what}" for at, what in shown) + more


def print_report(report: Report, console: Console, *, verbose: bool = False) -> None:
    pod_count = len(report.pods)
    if report.clusters is not None:
        _print_clusters(report, console)
    if not report.findings:
        scope = f"{pod_count} pod{'s' if pod_count != 1 else ''}" if pod_count else _scope_text(report)
        console.print(Text(f"no problems found in {scope}", style="bold green"))
        _print_unmeshed(report, console)
    else:
        lines = merge_causes(_root_causes(report))
        console.print(Text("ROOT CAUSES", style="bold underline"))
        for entry in lines:
            cause, pods = entry.cause, entry.pods
            line = Text("  ")
            line.append_text(_tag(cause))
            who = f"{len(pods)} pod{'s' if len(pods) != 1 else ''}: " if pods else ""
            spanned = _clusters_of(report, pods)
            if len(spanned) > 1:
                who = f"{len(spanned)} clusters, {who}"
            line.append(f" {who}{entry.text} ({cause.code} {_name(cause.code)}, {_subjects(entry)})")
            console.print(line)
            if entry.probable_pods:
                how_many = "all" if len(entry.probable_pods) == len(pods) else str(len(entry.probable_pods))
                note = _probable_note(entry, report.findings)
                console.print(Text(f"      probable for {how_many} of these pods, not confirmed: "
                                   + (note or "a link of the chain could not be checked"), style="magenta"))
            elif cause.would_confirm:
                console.print(Text(f"      its causes were not checked: {cause.would_confirm}", style="magenta"))
            events = timeline(entry, report.findings)
            if events:
                console.print(Text(f"      {_timeline_text(events)}", style="cyan"))
            console.print(Text("      fix: ", style="bold green").append(cause.remediation, style="default"))
        console.print()
        console.print(Text("DIAGNOSIS (symptom -> cause)", style="bold underline"))
        for entry in lines:
            cause, pods = entry.cause, entry.pods
            representative = pods[0] if pods else cause.pod
            chain = chain_to(cause, report.findings, representative)
            for depth, item in enumerate(chain):
                _print_finding(console, item, depth, with_fix=item is chain[-1])
            for other in entry.members[1:]:
                if _without_pod(other.message, other.pod or "") != _without_pod(cause.message, cause.pod or "") or not other.pod:
                    console.print(Text(f"     also: {other.message}", style="dim"))
            if len(pods) > 1:
                console.print(Text(f"     same cause in {len(pods)} pods: {_pod_list(pods)}", style="dim"))
            console.print()
        _print_pods(report, console)
    _print_gaps_and_skips(report, console, verbose=verbose)
    _print_summary(report, console)


def _print_clusters(report: Report, console: Console) -> None:
    """A multi-cluster run: which clusters were read (pods are then named context/namespace/name)."""
    read = [c for c in report.clusters or [] if c["read"]]
    names = ", ".join(c["context"] + (f" (cluster ID {c['clusterId']})" if c["clusterId"] and c["clusterId"] != c["context"]
                                      else "") for c in read)
    missed = [c["context"] for c in report.clusters or [] if not c["read"]]
    line = Text(f"clusters: {names}", style="bold")
    if missed:
        line.append(f"; not read: {', '.join(missed)}", style="magenta")
    console.print(line)


def _clusters_of(report: Report, pods: Iterable[str]) -> list[str]:
    contexts = [c["context"] for c in report.clusters or []]
    return [c for c in contexts if any(p.startswith(f"{c}/") for p in pods)]


def _subjects(entry: CauseLine) -> str:
    subjects = list(dict.fromkeys(str(m.subject) for m in entry.members))
    if len(subjects) == 1:
        return subjects[0]
    return f"{len(subjects)} {entry.cause.subject.kind}s"


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
            codes = (f"{code} (probable)" if code in result.probable else code for code in result.root_causes)
            line.append("  " + ", ".join(codes), style="dim")
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


def _print_gaps_and_skips(report: Report, console: Console, *, verbose: bool = False) -> None:
    for gap in report.gaps:
        where = f"{gap.pod}: " if gap.pod else ""
        console.print(Text(f"gap: {where}{gap.what}: {gap.reason}", style="magenta"))
    if verbose or len(report.skipped) <= 1:
        for skipped in report.skipped:
            console.print(Text(f"skipped: {skipped.check} ({', '.join(skipped.codes)}): {skipped.reason}", style="dim"))
        return
    count = len(report.skipped)
    if report.scope.get("kind") == "manifests":
        what = f"{count} live checks need a cluster or a bundle"
    else:
        codes = ", ".join(code for skipped in report.skipped for code in skipped.codes)
        what = f"{count} checks skipped, their evidence is missing ({codes})"
    console.print(Text(f"{what}: --verbose lists them", style="dim"))


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
