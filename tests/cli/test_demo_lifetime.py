"""The live demo says how long its nodes (and so the console it prints) stay up, and counts
down while they do."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from clearline.cli import main
from clearline.lab.scene import count_down, lifetime

LIVE_FOR_1_S = ("--out", "run", "--duration", "1")


def test_the_lifetime_line_says_when_the_nodes_stop_and_how_to_keep_them() -> None:
    assert "stop as soon as the scene ends" in lifetime(0)
    assert "--duration SECONDS" in lifetime(0)
    assert lifetime(90).startswith("the nodes stay up 90 s after the scene")


def test_on_a_terminal_the_countdown_is_one_line_rewritten(
    capsys: pytest.CaptureFixture[str],
) -> None:
    said: list[str] = []
    assert asyncio.run(count_down(0.25, said.append, terminal=True, step_s=0.1))
    out = capsys.readouterr().out
    assert said == []
    assert "\n" not in out
    assert out.count("\r  nodes up for the console: 1 s left") >= 2
    assert out.endswith("\r\033[K"), "the line is cleared for what follows"


def test_elsewhere_it_is_plain_lines() -> None:
    said: list[str] = []
    assert asyncio.run(count_down(0.2, said.append, terminal=False))
    assert said == ["  nodes up for the console: 1 s left (Ctrl-C stops them now)"]


def test_delay_help_describes_the_live_link() -> None:
    text = " ".join(CliRunner().invoke(main, ["demo", "--help"]).output.split())
    assert "in-memory" not in text
    assert "proxy on loopback" in text


def test_a_headless_demo_in_a_relative_folder_keeps_its_nodes_up_as_asked(
    tmp_path: Path,
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "clearline", "demo", "--headless", "--episodes", "0", *LIVE_FOR_1_S],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    console = next(i for i, line in enumerate(lines) if "console: open file://" in line)
    assert lines[console + 1].strip() == lifetime(1)
    assert "  nodes up for the console: 1 s left (Ctrl-C stops them now)" in lines
    assert any("after 1 s: link up" in line for line in lines)
    assert (tmp_path / "run" / "us-data" / "us.db").exists()
