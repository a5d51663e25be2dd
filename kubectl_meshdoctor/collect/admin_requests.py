"""What the plugin asks each sidecar for: one table, one row per request, as data.

Why a table: a sweep's cost is the bytes Envoy sends and the plugin parses. A whole ``config_dump``
of a 1500-service mesh is 6.5 MB, of which the checks read the clusters' names, types and transport
sockets, the route tables and the listeners. So each request names exactly the part it needs (Envoy
admin ``config_dump?resource=<field>&mask=<FieldMask>``, ``stats?usedonly&filter=<regex>``) and the
reducer that turns the answer into evidence. Adding a field or a stat the checks need is one line
below; every command the plugin may run is derived from this table at import time, so the audited
command set (``collect.proxy.ALL_COMMANDS``) follows it.

How Envoy 1.40 answers (checked on a real Envoy, see ``bench/RESULTS.md``):
- ``resource=F`` returns the items of the repeated field F of one config type, each wrapped with an
  ``@type`` such as ``...ClustersConfigDump.DynamicCluster``; nothing in F: ``{}``; unknown F: 404.
- ``mask=`` applies to each item. A path may end at a repeated field (returned whole), not pass
  through one; it may go into the item's first ``Any`` (``cluster.name``) but not into a nested one
  (``active_state.listener.filter_chains`` is refused): 400 ``... could not be successfully used``.
- Without ``resource``, a mask is applied to each top-level config and must fit one config type, so one
  request cannot trim clusters, routes and listeners at once: the parts are separate requests, run
  concurrently.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Callable

from kubectl_meshdoctor.envoy.certs import parse_certs
from kubectl_meshdoctor.envoy.config_dump import reduce_config_part
from kubectl_meshdoctor.envoy.secrets import parse_sds_certificates
from kubectl_meshdoctor.envoy.server_info import parse_server_info
from kubectl_meshdoctor.envoy.stats import parse_stats

# --- stats the checks read ----------------------------------------------------------------------------

# Exact stat names (one per line): pilot-agent's readiness inputs and the xDS counters the checks quote.
STATS_READ: tuple[str, ...] = (
    "cluster_manager.cds.update_success",
    "cluster_manager.cds.update_rejected",
    "cluster_manager.cds.update_attempt",
    "listener_manager.lds.update_success",
    "listener_manager.lds.update_rejected",
    "listener_manager.workers_started",
    "server.state",
    "control_plane.connected_state",
    # The stream to istiod (MD0204 and proxy-status): failed updates, when the last one was accepted
    # (ms since the epoch), and the connections of cluster xds-grpc, the way Envoy reaches istiod.
    "cluster_manager.cds.update_failure",
    "cluster_manager.cds.update_time",
    "listener_manager.lds.update_failure",
    "listener_manager.lds.update_time",
    "cluster.xds-grpc.upstream_cx_active",
    "cluster.xds-grpc.upstream_cx_total",
    "cluster.xds-grpc.upstream_cx_connect_fail",
)
# Families of stats, as regular expressions over the full name, e.g. a per-cluster counter:
# r"cluster\.outbound\|.*\.upstream_rq_pending_overflow" (cluster names hold dots and pipes).
STAT_PATTERNS_READ: tuple[str, ...] = ()


def stats_filter(names: tuple[str, ...] = STATS_READ, patterns: tuple[str, ...] = STAT_PATTERNS_READ) -> str:
    """One anchored regular expression for Envoy's ``/stats?filter=`` (RE2 syntax)."""
    alternatives = [re.escape(name) for name in names] + list(patterns)
    return "^(" + "|".join(alternatives) + ")$"


# --- the config_dump parts the checks read --------------------------------------------------------------


def config_dump_path(resource: str, mask: tuple[str, ...], include_eds: bool = False) -> str:
    """``config_dump?resource=<repeated field>&mask=<FieldMask paths, comma-separated>``."""
    eds = "include_eds&" if include_eds else ""
    return f"config_dump?{eds}resource={resource}&mask={','.join(mask)}"


@dataclass(frozen=True)
class ConfigPart:
    """One ``config_dump?resource=...&mask=...`` request: a repeated field of one config type."""

    section: str  # the config type, as in envoy.admin.v3.<section>ConfigDump
    resource: str  # the repeated field of that type
    mask: tuple[str, ...]  # FieldMask paths, relative to each item
    include_eds: bool = False  # needed for resource=dynamic_endpoint_configs (endpoint health)

    @property
    def path(self) -> str:
        return config_dump_path(self.resource, self.mask, self.include_eds)

    def reduce(self, raw: bytes) -> Any:
        """A PartialConfig; the parts of one pod are merged into its ProxyConfig."""
        return reduce_config_part(raw, section=self.section)


# Which reducer reads what: envoy.config_dump.summarize_cluster (name, type, cluster_type, transport
# sockets), _collect_route_targets (route_config.name, virtual_hosts), _walk_listener (the whole
# listener: Envoy cannot mask inside active_state.listener), ConfigDump.rejected (error_state, name).
# Static clusters, listeners and routes come from the bootstrap (Prometheus, health, xds-grpc) and no
# check reads them; warming clusters become active ones. The full dump (CONFIG_DUMP_FULL) still reads
# them all, and findings are the same either way (tests/test_masked_sweep.py, on every lab scenario).
# version_info and last_updated: which xDS version each resource came with and when (proxy-status).
CONFIG_PARTS: tuple[ConfigPart, ...] = (
    ConfigPart("Clusters", "dynamic_active_clusters",
               ("cluster.name", "cluster.type", "cluster.cluster_type", "cluster.transport_socket",
                "cluster.transport_socket_matches", "error_state", "version_info", "last_updated")),
    ConfigPart("Routes", "dynamic_route_configs",
               ("route_config.name", "route_config.virtual_hosts", "error_state", "version_info", "last_updated")),
    ConfigPart("Listeners", "dynamic_listeners",
               ("name", "active_state.listener", "active_state.version_info", "active_state.last_updated",
                "error_state")),
)

# The whole dump: the fallback for an Envoy that refuses the parameters, and MESHDOCTOR_CONFIG_DUMP=full.
CONFIG_DUMP_FULL = "config_dump"


# --- the other admin requests: evidence field <- admin path <- reducer ----------------------------------


@dataclass(frozen=True)
class AdminRequest:
    """One Envoy admin request whose answer fills one ProxyEvidence field."""

    field: str  # the ProxyEvidence field it fills
    endpoint: str  # how gaps name it
    path: str  # admin path and query, as `pilot-agent request GET <path>` and curl send it
    reduce: Callable[[bytes], Any]
    # Asked instead when the answer is empty (the reducer returned an empty value), when the proxy
    # refuses the parameters (400/404), and in whole-dump mode: the same evidence the long way.
    fallback: AdminRequest | None = None


# The certificates: the SDS secrets, a few KB, rather than /certs, 1 MB at 1500 services (the same
# two certificates once per TLS context); /certs when the secrets do not show them (envoy/secrets.py).
SDS_CERTIFICATES_MASK = ("name", "secret.tls_certificate.certificate_chain", "secret.validation_context.trusted_ca")
CERTS_REQUEST = AdminRequest("certs", "certs", "certs", parse_certs)

ADMIN_REQUESTS: tuple[AdminRequest, ...] = (
    AdminRequest("server_info", "server_info", "server_info", parse_server_info),
    AdminRequest("stats", "stats", f"stats?usedonly&filter={stats_filter()}", parse_stats),
    AdminRequest("certs", "certs", config_dump_path("dynamic_active_secrets", SDS_CERTIFICATES_MASK),
                 parse_sds_certificates, fallback=CERTS_REQUEST),
)
FULL_CONFIG_REDUCE: Callable[[bytes], Any] = functools.partial(reduce_config_part, section=None)
