"""``pod NAME --trace HOST[:PORT][/PATH]``: one request walked through a sidecar's configuration.

``target`` parses what the user typed and finds the Service it names; ``envoy_match`` holds Envoy's
selection rules; ``walk`` goes hop by hop and gives each a verdict. Pure functions of the evidence: the
collector fetches it (collect/trace.py), the report layer prints it (report/trace.py).
"""

from kubectl_meshdoctor.trace.target import Target, parse_target
from kubectl_meshdoctor.trace.walk import FAIL, OK, STEPS, WARN, Hop, Trace, trace_request

__all__ = ["FAIL", "OK", "STEPS", "WARN", "Hop", "Target", "Trace", "parse_target", "trace_request"]
