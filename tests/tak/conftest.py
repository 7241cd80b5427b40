"""A real TAK server for the tests: FreeTAKServer from PyPI, in a virtual environment of
its own under .cache/ (tests/conftest.py's `takserver_venv`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clearline.lab import takserver
from clearline.lab.takserver import TakServer


@pytest.fixture(scope="module")
def takservers(
    tmp_path_factory: pytest.TempPathFactory, takserver_venv: Path
) -> Iterator[dict[str, TakServer]]:
    """One TAK server for each side, US and PRC, started together; ended with their
    process groups."""
    folder = tmp_path_factory.mktemp("takservers")
    servers: dict[str, TakServer] = {}
    try:
        # Both boot at once (about 15 s each); then each is waited for.
        for side in ("US", "PRC"):
            servers[side] = takserver.launch_takserver(
                folder / side, takserver_venv, die_with_parent=True
            )
        for server in servers.values():
            server.wait_ready()
        yield servers
    finally:
        for server in servers.values():
            server.stop(grace=0)  # nothing of it is kept: SIGKILL to its group
