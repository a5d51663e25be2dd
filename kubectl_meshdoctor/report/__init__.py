"""Rendering: the only layer that imports rich. Findings in, text out; no analysis happens here."""

from kubectl_meshdoctor.report.structured import structured
from kubectl_meshdoctor.report.terminal import make_console, print_catalogue, print_explanation, print_report

__all__ = ["make_console", "print_catalogue", "print_explanation", "print_report", "structured"]
