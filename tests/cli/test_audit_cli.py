"""`clearline log verify | export` as an auditor runs them: what fails, in one line, and that
the evidence is left exactly as it was found."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from clearline.cli import main
from tests.log.exchange import exchange, snapshot


def run(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line(result: Result) -> str:
    lines = result.output.splitlines()
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    """A folder holding both sides' sealed logs."""
    folder = tmp_path / "evidence"
    folder.mkdir()
    exchange(folder, sessions=2).close()
    return folder


def _every_audit(folder: Path, tmp_path: Path) -> list[list[object]]:
    commands: list[list[object]] = []
    for name in ("us.db", "prc.db"):
        commands.append(["log", "verify", folder / name])
        commands.append(["log", "verify", folder / name, "--json"])
        commands.append(["log", "export", folder / name, tmp_path / "out" / name])
    return commands


@pytest.mark.parametrize("live", [False, True], ids=["closed", "open-with-wal"])
def test_audit_commands_leave_every_file_beside_the_evidence_as_found(
    tmp_path: Path, live: bool
) -> None:
    folder = tmp_path / "evidence"
    folder.mkdir()
    ex = exchange(folder, sessions=2)
    if not live:
        ex.close()
    names = {p.name for p in folder.iterdir()}
    assert names == (
        {"us.db", "us.db-wal", "us.db-shm", "prc.db", "prc.db-wal", "prc.db-shm"}
        if live
        else {"us.db", "prc.db"}
    )
    before = snapshot(folder)
    for command in _every_audit(folder, tmp_path):
        result = run(*command)
        assert result.exit_code == 0, (command, result.output)
        assert snapshot(folder) == before, f"{command} changed the folder"
    if live:
        ex.close()


@pytest.mark.parametrize("command", ["verify", "export"])
@pytest.mark.parametrize("bad", ["missing", "directory", "junk", "empty-sqlite", "no-meta"])
def test_a_bad_log_path_is_one_line_without_a_traceback(
    tmp_path: Path, command: str, bad: str
) -> None:
    path = tmp_path / f"bad-{bad}.db"
    if bad == "directory":
        path.mkdir()
    elif bad == "junk":
        path.write_bytes(b"not a database at all" * 100)
    elif bad in ("empty-sqlite", "no-meta"):
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE t (x)" if bad == "empty-sqlite" else "CREATE TABLE entries (x)")
        db.commit()
        db.close()
    args: list[object] = {
        "verify": ["verify", path],
        "export": ["export", path, tmp_path / "out"],
    }[command]
    result = run("log", *args)
    assert result.exit_code == 1
    line = one_line(result)
    assert str(path) in line
    expected = (
        "no log file at" if bad in ("missing", "directory") else "not a readable clearline log"
    )
    assert expected in line


def test_export_into_a_file_is_one_line(logs: Path, tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.write_text("x")
    result = run("log", "export", logs / "us.db", target / "sub")
    assert result.exit_code == 1
    assert one_line(result).startswith(f"error: cannot write to {target / 'sub'}: ")
