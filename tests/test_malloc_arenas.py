"""collect/malloc_arenas.py: the arena limit is set on glibc and is a harmless no-op elsewhere."""

from __future__ import annotations

import platform
import sys

import pytest

from kubectl_meshdoctor.collect import malloc_arenas


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="mallopt(M_ARENA_MAX) is glibc's")
def test_glibc_accepts_the_limit() -> None:
    assert malloc_arenas.limit_malloc_arenas() is True


def test_no_op_off_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(malloc_arenas.sys, "platform", "darwin")
    assert malloc_arenas.limit_malloc_arenas() is False


def test_no_op_without_mallopt(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoMallopt:  # musl's libc: no mallopt symbol
        def __init__(self, name: object) -> None:
            pass

    monkeypatch.setattr(malloc_arenas.sys, "platform", "linux")
    monkeypatch.setattr(malloc_arenas.ctypes, "CDLL", NoMallopt)
    assert malloc_arenas.limit_malloc_arenas() is False
