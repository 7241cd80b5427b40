"""Shared test helpers: where the third-party conformance data lives; no node process
outlives the test that started it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SHARED_TESTDATA = Path(__file__).resolve().parents[2] / "shared" / "testdata"


def shared_testdata(subdir: str) -> Path:
    """Path to ../shared/testdata/SUBDIR, or skip the test saying what is missing."""
    path = SHARED_TESTDATA / subdir
    if not path.is_dir():
        pytest.skip(f"conformance data not found at {path} (expected beside the project checkout)")
    return path


@pytest.fixture(autouse=True)
def _no_node_left_running() -> Iterator[None]:
    """End, by process id, any node process a test started and left running (a body that
    failed before stopping it, a forgotten stop); nodes of wider-scoped fixtures are kept."""
    nodes = sys.modules.get("clearline.lab.nodes")
    before = nodes.started_pids() if nodes is not None else set()
    yield
    nodes = sys.modules.get("clearline.lab.nodes")  # imported by the test, perhaps
    if nodes is not None:
        nodes.end_started(keep=before)
