"""Shared fixtures.  Tests that need the real data in ``../shared/data`` skip when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real ECG data beside the checkout (``../shared/data``), or skip."""
    if not (SHARED_DATA / "pairs.csv").is_file():
        pytest.skip(f"real ECG data not found at {SHARED_DATA} (only present in the development checkout)")
    return SHARED_DATA
