"""istiod's ``/debug/syncz``: the proxies connected to one istiod pod, with what it sent and they acked.

This is the data ``istioctl proxy-status`` reads. Each entry (pilot/pkg/xds/debug.go ``SyncStatus``)
names the proxy by its node id (``sidecar~<ip>~<pod>.<namespace>~<namespace>.svc.cluster.local``) and
carries, per xDS type, the nonce istiod last sent and the nonce the proxy last acknowledged; a field
left out means nothing of that type was sent (or acked). Read in istiod's ``discovery`` container with
``pilot-discovery request GET /debug/syncz``.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubectl_meshdoctor.envoy._decode import json_type, load_json
from kubectl_meshdoctor.errors import ParseError

_WHAT = "syncz"
# (short name, SyncStatus JSON prefix): the types proxy-status shows
SYNC_TYPES = (("cds", "cluster"), ("lds", "listener"), ("rds", "route"), ("eds", "endpoint"))


@dataclass(frozen=True)
class SyncEntry:
    pod: str  # "namespace/name" from the node id; "" for a node id of another shape
    proxy: str  # the node id as istiod shows it
    istio_version: str
    sent_acked: tuple[tuple[str, str, str], ...]  # (type, sent nonce, acked nonce)


def pod_of_node_id(node_id: str) -> str:
    """ "namespace/name" of a sidecar or gateway node id ``type~ip~name.namespace~domain``."""
    parts = node_id.split("~")
    if len(parts) != 4 or "." not in parts[2]:
        return ""
    name, _, namespace = parts[2].rpartition(".")
    return f"{namespace}/{name}"


def parse_syncz(raw: bytes | str) -> tuple[SyncEntry, ...]:
    document = load_json(raw, _WHAT)
    if document is None:
        return ()
    if not isinstance(document, list):
        raise ParseError(f"{_WHAT}: expected an array of proxies, got {json_type(document)}")
    entries = []
    for index, item in enumerate(document):
        if not isinstance(item, dict):
            raise ParseError(f"{_WHAT}: [{index}] should be an object, got {json_type(item)}")
        proxy = item.get("proxy")
        if not isinstance(proxy, str) or not proxy:
            raise ParseError(f"{_WHAT}: [{index}].proxy should be a non-empty string, got {json_type(proxy)}")
        entries.append(SyncEntry(
            pod=pod_of_node_id(proxy), proxy=proxy, istio_version=_text(item.get("istio_version")),
            sent_acked=tuple((short, _text(item.get(f"{prefix}_sent")), _text(item.get(f"{prefix}_acked")))
                             for short, prefix in SYNC_TYPES)))
    return tuple(entries)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
