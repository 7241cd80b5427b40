"""A test that starts node processes leaves none behind, by process id, however it ends: its
body fails, it forgets to stop a node, or the test runner itself is killed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.node.harness import wait_until

ROOT = Path(__file__).resolve().parents[2]


def alive(pid: int) -> bool:
    """Whether a node process with this id is running (not gone, not a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state != "Z" and b"clearline" in command


HEADER = """
import os
from pathlib import Path

from tests.node.harness import make_keys, running, start_node, write_config
from tests.node.test_cleanup import alive

PIDS = Path(os.environ["PIDS"])
"""

NEXT_TEST = """

def test_the_next_test_finds_them_gone():
    left = [pid for pid in map(int, PIDS.read_text().split()) if alive(pid)]
    assert not left, f"nodes {left} outlived the test that started them"
"""

FAILING_BODY = (
    HEADER
    + """

def test_a_body_that_fails(tmp_path):
    make_keys(tmp_path, "US", "PRC")
    prc = start_node(write_config(tmp_path, "PRC", "US", listen=True))
    with running(prc):
        us = start_node(write_config(tmp_path, "US", "PRC", address=f"127.0.0.1:{prc.listen}"))
        with running(us):
            us.wait_link("up")
            PIDS.write_text(f"{prc.process.pid} {us.process.pid}")
            raise RuntimeError("the body fails with both nodes up")
"""
    + NEXT_TEST
)

FORGOTTEN_NODE = (
    HEADER
    + """

def test_a_test_that_forgets_its_node(tmp_path):
    make_keys(tmp_path, "US", "PRC")
    prc = start_node(write_config(tmp_path, "PRC", "US", listen=True))
    PIDS.write_text(str(prc.process.pid))
    raise AssertionError("fails without stopping its node")
"""
    + NEXT_TEST
)

KILLED_RUNNER = """
import os
import signal
import sys
from pathlib import Path

from tests.node.harness import make_keys, start_node, write_config

folder = Path(sys.argv[1])
make_keys(folder, "US", "PRC")
prc = start_node(write_config(folder, "PRC", "US", listen=True))
(folder / "pids").write_text(str(prc.process.pid))
os.kill(os.getpid(), signal.SIGKILL)  # no finally, no atexit: only the kernel is left
"""


def _run(args: list[str], folder: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")]),
        "PIDS": str(folder / "pids"),
    }
    return subprocess.run(
        [sys.executable, *args], cwd=folder, env=env, capture_output=True, text=True, timeout=120
    )


def _pids(folder: Path) -> list[int]:
    text = (folder / "pids").read_text() if (folder / "pids").exists() else ""
    assert text, "the run never started its nodes: the test proves nothing"
    return [int(pid) for pid in text.split()]


@pytest.mark.parametrize(
    ("test_file", "plugins"),
    [(FAILING_BODY, []), (FORGOTTEN_NODE, ["-p", "tests.conftest"])],
    ids=["body-fails", "node-forgotten"],
)
def test_no_node_outlives_a_failing_test(
    tmp_path: Path, test_file: str, plugins: list[str]
) -> None:
    """A body that fails inside `running`; a test that never stops its node, caught by the
    suite's autouse fixture (loaded as a plugin: the file is outside tests/). The next test
    in the same run, before any exit handler could help, finds the nodes gone."""
    (tmp_path / "test_inner.py").write_text(test_file)
    result = _run(
        ["-m", "pytest", "-q", *plugins, "-p", "no:cacheprovider", "test_inner.py"], tmp_path
    )
    assert "1 failed, 1 passed" in result.stdout, result.stdout + result.stderr
    left = [pid for pid in _pids(tmp_path) if alive(pid)]
    assert not left, f"node processes {left} outlived the failing test"


def test_no_node_outlives_a_killed_test_runner(tmp_path: Path) -> None:
    (tmp_path / "runner.py").write_text(KILLED_RUNNER)
    result = _run(["runner.py", str(tmp_path)], tmp_path)
    assert result.returncode == -9, result.stderr
    pids = _pids(tmp_path)
    # The kernel sends the orphan SIGTERM; it seals its log and exits.
    wait_until(
        lambda: not any(alive(pid) for pid in pids),
        20,
        lambda: f"node processes {[p for p in pids if alive(p)]} outlived their killed runner",
    )


def test_a_tracked_process_group_is_ended_whole_even_after_its_leader_exits() -> None:
    """A TAK server runs a dozen processes under one leader: tracked as a group, all of them
    are ended, also when the leader has already gone and left its children running."""
    from clearline.lab import nodes

    leader = subprocess.Popen(
        ["sh", "-c", "sleep 60 & echo $!; exit 0"],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    nodes.track(leader, group=True)
    assert leader.stdout is not None
    child = int(leader.stdout.readline())
    leader.wait()  # the leader is gone; its child is still in the group
    assert leader.pid in nodes.started_pids()
    assert nodes.end_started(keep=nodes.started_pids() - {leader.pid}) == [leader.pid]
    wait_until(lambda: not Path(f"/proc/{child}").exists(), 5, "the group's child survived")
    assert leader.pid not in nodes.started_pids()
