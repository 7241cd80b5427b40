"""`clearline demo --tak`: the live scene with a FreeTAKServer for each side, the swarm and
the sighting sent as CoT, the answer read back as CoT from the US server; and where it
cannot run, one line saying why, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from clearline.cli import main
from clearline.errors import TakServerError
from clearline.lab import takserver


def _one_line_error(args: list[str]) -> str:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_tak_needs_the_live_nodes() -> None:
    assert "--virtual" in _one_line_error(["demo", "--tak", "--virtual", "--episodes", "0"])
    assert "--tak-venv" in _one_line_error(["demo", "--tak-venv", "venv", "--episodes", "0"])


def test_where_a_tak_server_cannot_run_the_demo_says_why_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(takserver, "cannot_run_here", lambda: "/opt is not writable")
    line = _one_line_error(["demo", "--tak", "--headless", "--episodes", "0"])
    assert line == "error: demo --tak cannot run here: /opt is not writable"


def test_a_failed_install_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def install(venv: Path, say: object) -> Path:
        raise TakServerError("cannot install FreeTAKServer==2.2.1 (pip exited 1):\nmore\nlines")

    monkeypatch.setattr(takserver, "cannot_run_here", lambda: None)
    monkeypatch.setattr(takserver, "installed", lambda venv: False)
    monkeypatch.setattr(takserver, "install", install)
    args = ["demo", "--tak", "--tak-venv", str(tmp_path / "v"), "--headless", "--episodes", "0"]
    line = _one_line_error([*args, "--out", str(tmp_path / "out")])
    assert line == "error: demo --tak: cannot install FreeTAKServer==2.2.1 (pip exited 1):"


@pytest.mark.slow
def test_the_demo_with_tak_servers_puts_the_answer_on_the_us_servers_map(
    tmp_path: Path, takserver_venv: Path
) -> None:
    result = subprocess.run(
        [
            sys.executable, "-m", "clearline", "demo", "--tak", "--tak-venv", str(takserver_venv),
            "--headless", "--episodes", "0", "--duration", "1", "--out", str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        timeout=300,
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, result.stdout + result.stderr
    assert "own systems publish PRC-RS-7 as CoT" in out
    assert "node took it from its TAK server into the registry" in out
    assert "gate: HOLD intercept-uncrewed (hotline-hold" in out
    assert "map: point ATAK, WinTAK or iTAK at the US TAK server: host 127.0.0.1, port" in out
    assert "TAK map: open http://127.0.0.1:" in out  # clearline's own map view, beside the console
    # The answered clarification as a map on the US server received it, relayed by the server.
    seen = out.split("What a map on the US TAK server shows")[1]
    assert "uid T-0417.clearline, type a-h-A-M-F" in seen
    assert "at 24.13, 122.38, 1400" in seen
    for attribute in (
        'state="answered"', 'claim="ours"', 'side="PRC"', 'mission="reconnaissance"',
        'intent="withdrawing"', 'armed="false"', 'asset="PRC-RS-7"',
    ):  # fmt: skip
        assert attribute in seen
    assert "gate: ALLOW monitor (de-escalation)" in out
    assert "kinetic actions: 0" in out
    assert "US node stopped on SIGTERM, exit code 0" in out
    assert "PRC node stopped on SIGTERM, exit code 0" in out
