"""Reducers for tests/test_reducers.py, pickled by reference like the plugin's own: they show which
process ran them, and how a reducer's failures come back."""

from __future__ import annotations

import os

from kubectl_meshdoctor.errors import ParseError


def reducing_process(raw: bytes) -> tuple[int, int]:
    return os.getpid(), len(raw)


def refuses(raw: bytes) -> None:
    raise ParseError(f"config_dump: not valid JSON ({len(raw)} bytes)")


def has_a_bug(raw: bytes) -> None:
    raise KeyError("a reducer bug")
