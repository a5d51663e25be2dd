"""The JSON decoder: orjson when installed, the stdlib otherwise, same objects and same errors."""

from __future__ import annotations

import json

import pytest

from kubectl_meshdoctor.envoy import _decode
from kubectl_meshdoctor.errors import ParseError

DOCUMENTS = [
    b'{"configs": [{"@type": "x", "dynamic_active_clusters": [{"cluster": {"name": "outbound|80||a.b"}}]}]}',
    '{"text": "caf\u00e9 \u2603", "n": [1, -2, 3.5, 18446744073709551615, true, false, null]}'.encode(),
    b'  {"nested": {"deep": [[[{}]]]}}  \n',
    b'"\\ud800"',  # a lone surrogate escape: orjson refuses it, the stdlib accepts it
    b'[NaN, Infinity]',  # not JSON, but the stdlib accepts it; orjson refuses, so the stdlib decides
]
BROKEN = [
    (b"", "empty output"),
    (b" \n ", "empty output"),
    (b"\xff\xfe{}", "not UTF-8 text"),
    (b'{"a": 1', "not valid JSON"),
    (b"upstream connect error", "not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "JSON nested too deeply"),
]


def without_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_decode, "_orjson", None)


@pytest.mark.skipif(_decode._orjson is None, reason="orjson is not installed")
@pytest.mark.parametrize("raw", DOCUMENTS)
def test_orjson_and_the_stdlib_give_equal_objects(raw: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = _decode.load_json(raw, "x")
    without_orjson(monkeypatch)
    slow = _decode.load_json(raw, "x")
    assert json.dumps(fast, sort_keys=True) == json.dumps(slow, sort_keys=True)


@pytest.mark.parametrize("use_orjson", [True, False])
@pytest.mark.parametrize("raw, message", BROKEN)
def test_errors_are_worded_the_same_with_or_without_orjson(raw: bytes, message: str, use_orjson: bool,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    if use_orjson and _decode._orjson is None:
        pytest.skip("orjson is not installed")
    if not use_orjson:
        without_orjson(monkeypatch)
    with pytest.raises(ParseError, match=f"^config_dump: {message}"):
        _decode.load_json(raw, "config_dump")


def test_the_gc_is_enabled_again_after_a_failed_decode() -> None:
    import gc

    assert gc.isenabled()
    with pytest.raises(ParseError):
        _decode.load_json(b"{", "x")
    assert gc.isenabled()
