"""Shared test helpers: where the third-party conformance data lives; no node process
outlives the test that started it; a real TAK server's environment."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SHARED_TESTDATA = Path(__file__).resolve().parents[2] / "shared" / "testdata"
TAKSERVER_VENV = Path(__file__).resolve().parents[1] / ".cache" / "takserver-venv"


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


@pytest.fixture(scope="session")
def takserver_venv() -> Path:
    """A real TAK server's virtual environment: FreeTAKServer from PyPI under .cache/
    (installed on first use; scripts/test installs it up front). Skips, saying why, where it
    cannot run or cannot be installed."""
    from clearline.errors import TakServerError
    from clearline.lab import takserver

    why = takserver.cannot_run_here()
    if why is not None:
        pytest.skip(why)
    try:
        takserver.install(TAKSERVER_VENV)
    except TakServerError as exc:
        pytest.skip(f"{takserver.REQUIREMENT} could not be installed from PyPI: {exc}")
    return TAKSERVER_VENV
