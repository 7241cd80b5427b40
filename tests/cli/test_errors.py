"""Whatever a user gets wrong on the command line, the answer is one line and an exit code,
never a Python traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from clearline.cli import main


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        yield taken.getsockname()[1]


def bad_commands(tmp: Path, busy_port: int) -> list[tuple[list[str], int, str]]:
    """(arguments, exit code, how the last line of stderr starts)."""
    afile = tmp / "afile"
    afile.write_text("x")
    adir = tmp / "adir"
    adir.mkdir()
    bad_json = tmp / "bad.json"
    bad_json.write_text("{")
    bad_toml = tmp / "bad.toml"
    bad_toml.write_text("side = 1\n")
    missing = str(tmp / "missing")
    under_file = str(afile / "sub")
    roster = ["--roster", str(tmp / "r.yaml")]
    approve = ["--action", "a1", "--side", "US", "--rung", "monitor", "--domain", "air"]
    return [
        (["policy", "check", missing], 1, "error: "),
        (["policy", "check", str(adir)], 1, "error: "),
        (["policy", "check", str(bad_json)], 1, f"error: {bad_json}:"),
        (["keys", "init", under_file, "--side", "US"], 1, "error: "),
        (["keys", "token", under_file, "--side", "US", "--role", "observer"], 1, "error: "),
        (["keys", "tls", missing, "--side", "US"], 1, "error: "),
        (["keys", "tls", str(adir), "--side", "us"], 1, "error: side 'us'"),
        (["node", "serve", "--config", missing], 2, "error: "),
        (["node", "serve", "--config", str(bad_toml)], 2, f"error: {bad_toml}:1: side"),
        (["log", "verify", missing], 1, f"FAIL {missing}: "),
        (["log", "verify", missing, "--trust", str(bad_json)], 2, "error: trust file "),
        (["log", "verify", missing, "--roster", str(afile)], 2, f"error: {afile}:1"),
        (["log", "verify", missing, "--policy", str(afile)], 2, "error: --policy goes with"),
        (["log", "export", missing, str(tmp / "out")], 1, "error: no log file"),
        (["log", "cross-check", missing, missing], 1, "FAIL no log file"),
        (["officer", "enrol", "o1", "--side", "US", *roster, "--keys", under_file], 1, "error: "),
        (["officer", "approve", "--key", missing, *approve], 1, "error: "),
        (["officer", "approve", "--key", str(afile), "--pending", str(bad_json)], 1, "error: "),
        (["sim", "validate", str(afile)], 1, f"FAIL {afile}:1"),
        (["sim", "run", "no-such"], 2, "error: no-such: "),
        (["sim", "run", "recon-swarm", "--episodes", "1", "--out", under_file], 1, "error: "),
        (["sim", "report", str(adir)], 2, f"error: {adir} holds neither"),
        (["demo", "--virtual", "--episodes", "0", "--out", under_file], 1, "error: "),
        (["console", "--port", str(busy_port)], 1, "error: "),
    ]


def test_bad_arguments_give_one_line_and_an_exit_code_never_a_traceback(
    tmp_path: Path, busy_port: int
) -> None:
    for args, code, start in bad_commands(tmp_path, busy_port):
        result = CliRunner().invoke(main, args)
        # An exception click did not turn into an exit would be a traceback outside the runner.
        assert isinstance(result.exception, SystemExit), (args, result.exception)
        assert "Traceback" not in result.output, args
        assert result.exit_code == code, (args, result.output)
        assert result.stderr.splitlines()[-1].startswith(start), (args, result.stderr)
        assert len(result.stderr.splitlines()) == 1, (args, result.stderr)


@pytest.mark.parametrize("kind", ["ClearlineError", "OSError"])
def test_nor_from_the_real_entry_point(tmp_path: Path, kind: str) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    args = {
        "ClearlineError": ["policy", "check", str(afile)],
        "OSError": ["keys", "init", str(afile / "sub"), "--side", "US"],
    }[kind]
    result = subprocess.run(
        [sys.executable, "-m", "clearline", *args], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and str(afile) in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
