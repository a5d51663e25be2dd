"""The terminal view of ``pod NAME --trace``: one line per hop, then the answer (where the request stops,
the code that names it, its evidence and the fix). ``-o json|yaml`` prints ``Trace.to_dict()`` instead.
"""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from kubectl_meshdoctor.catalogue import entry
from kubectl_meshdoctor.errors import UsageError
from kubectl_meshdoctor.trace import Trace
from kubectl_meshdoctor.trace.walk import PASSTHROUGH_CLUSTERS

STEP_WIDTH, VERDICT_WIDTH = 9, 11
VERDICT_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red", "n/a": "dim", "not-reached": "dim"}


def _code_text(code: str) -> str:
    try:
        return f"{code} {entry(code).name}"
    except UsageError:  # a code whose catalogue entry lands in another branch still renders
        return code


def _fix(code: str | None) -> str | None:
    if not code:
        return None
    try:
        return entry(code).fix
    except UsageError:
        return None


def print_trace(trace: Trace, console: Console) -> None:
    dest = trace.destination
    where = f"Service {dest.fqdn}" if dest.fqdn else "outside the mesh's registry"
    addresses = f", {', '.join(dest.addresses[:3])}" if dest.addresses else ""
    if dest.http:
        request = f"{trace.target.method} {dest.authority}{trace.target.path}"
    else:
        request = f"TCP {dest.host}:{dest.port}"
    head = Text(f"TRACE {trace.pod} -> {request}", style="bold")
    head.append(f"  ({where}{addresses}, {'HTTP' if dest.http else 'TCP'})", style="dim")
    console.print(head)
    # Plain aligned lines rather than a table: one hop is one line, whatever its length (grep-able).
    console.print(Text(f"{'HOP':<{STEP_WIDTH}} {'VERDICT':<{VERDICT_WIDTH}} DETAIL", style="bold"))
    for hop in trace.hops:
        line = Text(f"{hop.step:<{STEP_WIDTH}} ")
        line.append(f"{hop.verdict:<{VERDICT_WIDTH}}", style=VERDICT_STYLE.get(hop.verdict, ""))
        line.append(f" {hop.summary}" + (f" [{hop.code}]" if hop.code else ""))
        console.print(line)
    console.print()
    answer = trace.answer
    if answer is None:
        warned = [h for h in trace.hops if h.verdict == "warn"]
        passthrough = any(h.step == "cluster" and h.data.get("cluster") in PASSTHROUGH_CLUSTERS for h in trace.hops)
        reached = "leaves the mesh to its original destination" if passthrough else "reaches a ready endpoint"
        text = f"every hop ok: the request {reached}" if not warned else \
            f"the request gets through, with warnings at {', '.join(h.step for h in warned)}"
        console.print(Text(f"ANSWER: {text}", style="bold green" if not warned else "bold yellow"))
        for hop in warned:
            _print_evidence(console, hop.evidence)
    else:
        line = Text("ANSWER: ", style="bold red")
        line.append(f"the request stops at the {answer.step} hop", style="bold")
        if answer.code:
            line.append(f" ({_code_text(answer.code)})", style="bold")
        line.append(f": {answer.summary}")
        console.print(line)
        _print_evidence(console, answer.evidence)
        if fix := _fix(answer.code):
            console.print(Text("  fix: ", style="bold green").append(fix, style="default"))
    for gap in trace.gaps:
        console.print(Text(f"gap: {gap}", style="magenta"))


def _print_evidence(console: Console, evidence: tuple[str, ...]) -> None:
    for line in evidence:
        console.print(Text(f"  | {line}"))
