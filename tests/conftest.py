"""Shared fixtures. Data under ../shared is read in place, never copied; tests needing it skip without it."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is not present (reference data is read from there, never committed)")
    return SHARED
