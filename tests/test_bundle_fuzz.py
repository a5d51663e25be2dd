"""Fuzz the bundle loader: damaged bundles (dir or .tgz) raise only BundleError, never anything else."""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubectl_meshdoctor.bundle import EvidenceBundle
from kubectl_meshdoctor.errors import BundleError
from kubectl_meshdoctor.evidence import (
    AccessLog, AccessLogEntry, Certificate, ClusterSummary, ProxyConfig, ProxyEvidence, Readiness,
    ResolvConf, RouteTarget, ServerInfo, TLS_BY_ENDPOINT_LABEL, to_plain,
)

EXAMPLES = int(os.environ.get("MESHDOCTOR_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SEED_PROXY = ProxyEvidence(
    pod="shop/cart-7d9f",
    readiness=Readiness(ready=True, port=15021, status=200, detail=""),
    stats={"cluster_manager.cds.update_success": 3, "server.state": 0},
    server_info=ServerInfo(state="LIVE", version="1.40.0", uptime_seconds=12),
    config=ProxyConfig(
        clusters=(ClusterSummary("outbound|80||web.shop.svc.cluster.local", "EDS", TLS_BY_ENDPOINT_LABEL),),
        route_targets=(RouteTarget("80", "web:80", "outbound|80||web.shop.svc.cluster.local"),),
        listener_count=4,
        access_log_configured=True,
    ),
    certs=(Certificate("workload", "0a", ("spiffe://cluster.local/ns/shop/sa/cart",), "2026-11-23T00:00:00Z", "2026-11-24T00:00:00Z"),),
    resolv_conf=ResolvConf(nameservers=("10.96.0.10",), search=("shop.svc.cluster.local",)),
    access_log=AccessLog(lines_read=2, access_lines=1, failures=(AccessLogEntry(("UF",), 503, "c", "h", "r", "l"),),
                         failure_counts=(("UF", "c", 1),)),
)
SEED_FILES = {
    "bundle.json": json.dumps({"format": "meshdoctor.bundle/v1", "scope": {"kind": "namespace"},
                               "available": ["pods"], "gaps": [{"pod": None, "what": "w", "reason": "r"}]}).encode(),
    "objects.json": json.dumps([{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "cart-7d9f", "namespace": "shop"}}]).encode(),
    "proxies/shop/cart-7d9f.json": json.dumps(to_plain(SEED_PROXY)).encode(),
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)


def _replace_random_value(data, path_choices, new_value):
    """Replace one value somewhere inside ``data`` (chosen by ``path_choices``) with ``new_value``."""
    node = data
    for choice in path_choices:
        children = list(node.items()) if isinstance(node, dict) else list(enumerate(node)) if isinstance(node, list) else []
        if not children:
            break
        key, child = children[choice % len(children)]
        if not isinstance(child, (dict, list)) or choice % 3 == 0:
            node[key] = new_value
            return data
        node = child
    return new_value if not isinstance(data, (dict, list)) else data


def _load(files: dict[str, bytes], as_tgz: bool):
    with tempfile.TemporaryDirectory() as tmp:
        if as_tgz:
            path = Path(tmp) / "b.tgz"
            with tarfile.open(path, "w:gz") as tar:
                for name, content in files.items():
                    info = tarfile.TarInfo(f"meshdoctor-bundle/{name}")
                    info.size = len(content)
                    tar.addfile(info, io.BytesIO(content))
        else:
            path = Path(tmp) / "b"
            for name, content in files.items():
                (path / name).parent.mkdir(parents=True, exist_ok=True)
                (path / name).write_bytes(content)
        try:
            return EvidenceBundle.load(path)
        except BundleError:
            return None


def test_seed_bundle_loads():
    for as_tgz in (False, True):
        bundle = _load(SEED_FILES, as_tgz)
        assert bundle is not None and bundle.proxies["shop/cart-7d9f"] == SEED_PROXY


@FUZZ
@given(name=st.sampled_from(sorted(SEED_FILES)), cut=st.integers(min_value=0), flip=st.integers(min_value=0),
       as_tgz=st.booleans())
def test_truncated_or_flipped_files_raise_only_bundle_error(name, cut, flip, as_tgz):
    content = bytearray(SEED_FILES[name])
    content = content[: cut % (len(content) + 1)]
    if content:
        content[flip % len(content)] ^= 0xFF
    _load({**SEED_FILES, name: bytes(content)}, as_tgz)


@FUZZ
@given(name=st.sampled_from(sorted(SEED_FILES)), path=st.lists(st.integers(min_value=0, max_value=50), max_size=6),
       value=json_values)
def test_wrongly_typed_json_raises_only_bundle_error(name, path, value):
    data = _replace_random_value(json.loads(SEED_FILES[name]), path, value)
    _load({**SEED_FILES, name: json.dumps(data).encode()}, as_tgz=False)


@FUZZ
@given(raw=st.binary(max_size=2048))
def test_arbitrary_bytes_as_tgz_raise_only_bundle_error(raw):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "b.tgz"
        path.write_bytes(raw)
        try:
            EvidenceBundle.load(path)
        except BundleError:
            pass
