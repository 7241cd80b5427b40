"""Shared test helpers: where the third-party conformance data lives."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_TESTDATA = Path(__file__).resolve().parents[2] / "shared" / "testdata"


def shared_testdata(subdir: str) -> Path:
    """Path to ../shared/testdata/SUBDIR, or skip the test saying what is missing."""
    path = SHARED_TESTDATA / subdir
    if not path.is_dir():
        pytest.skip(f"conformance data not found at {path} (expected beside the project checkout)")
    return path
