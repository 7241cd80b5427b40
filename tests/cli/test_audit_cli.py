"""`clearline log verify | export | cross-check` as an auditor runs them: what each says it
checked, what fails, and that the evidence is left exactly as it was found."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from clearline.cli import main
from clearline.protocol.signing import Ed25519Signer
from tests.log.exchange import (
    FORGER_PRC,
    FORGER_US,
    claims,
    decline,
    entries,
    exchange,
    find,
    rewrite,
    snapshot,
)


def run(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line(result: Result) -> str:
    lines = result.output.splitlines()
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    """A folder holding both sides' sealed logs, and keys.json (the real keys) beside it."""
    folder = tmp_path / "evidence"
    folder.mkdir()
    ex = exchange(folder, sessions=2)
    ex.trust(tmp_path / "keys.json")
    ex.close()
    return folder


def test_verify_says_plainly_what_the_signatures_were_checked_against(
    logs: Path, tmp_path: Path
) -> None:
    alone = run("log", "verify", logs / "us.db")
    assert alone.exit_code == 0 and alone.output.startswith("OK ")
    assert (
        "keys: signatures checked only against the 2 keys the file itself carries: this shows "
        "the file is intact, not who signed it (pin the keys with --trust KEYS)"
    ) in alone.output
    pinned = run("log", "verify", logs / "us.db", "--trust", tmp_path / "keys.json")
    assert pinned.exit_code == 0, pinned.output
    assert (
        f"keys: every signature checked against the keys pinned in {tmp_path / 'keys.json'}"
    ) in pinned.output
    assert "only against" not in pinned.output


def test_a_forged_log_with_its_own_keys_fails_against_pinned_keys(
    logs: Path, tmp_path: Path
) -> None:
    """Every entry re-signed with fresh keys, put in the file's own key table and owner kid,
    and PRC's `not_ours` answers turned into `decline`."""
    path = logs / "us.db"
    us, prc = Ed25519Signer.from_label("US"), Ed25519Signer.from_label("PRC")
    rewrite(
        path,
        FORGER_US,
        edit=decline,
        resign={us.kid: FORGER_US, prc.kid: FORGER_PRC},
        sides={"US": FORGER_US, "PRC": FORGER_PRC},
    )
    assert claims(path) and all(c.value == "decline" for c in claims(path))
    alone = run("log", "verify", path)
    assert alone.exit_code == 0
    assert "checked only against the 2 keys the file itself carries" in alone.output
    keys = tmp_path / "keys.json"
    pinned = run("log", "verify", path, "--trust", keys)
    assert pinned.exit_code == 1
    assert one_line(pinned) == (
        f"FAIL {path}: the owner kid {FORGER_US.kid.hex()} (side US) is not in trust file {keys}"
    )
    json_out = run("log", "verify", path, "--trust", keys, "--json")
    assert json_out.exit_code == 1 and json_out.stdout == ""


def test_a_log_missing_its_last_30_entries_is_reported_and_fails_strict(logs: Path) -> None:
    path = logs / "us.db"
    db = sqlite3.connect(path)
    (size,) = db.execute("SELECT COUNT(*) FROM entries").fetchone()
    db.execute("DELETE FROM entries WHERE idx >= ?", (size - 30,))
    db.commit()
    db.close()
    # The checkpoint before the cut is at entry 13 (it covers 0..12); 14..19 are covered by none.
    lenient = run("log", "verify", path)
    assert lenient.exit_code == 0
    assert (
        "checkpoints: 6 entries (from entry 14) are covered by no signed checkpoint of the "
        "owner: nothing signed commits to them, so the log could have been cut or changed "
        "there without trace"
    ) in lenient.output
    strict = run("log", "verify", path, "--strict")
    assert strict.exit_code == 1
    assert strict.stdout.startswith(f"FAIL {path}: side US, 20 entries")
    assert strict.stderr == (
        f"FAIL {path}: 6 entries (from entry 14) are covered by no signed checkpoint of the "
        "owner (--strict)\n"
    )
    report = json.loads(run("log", "verify", path, "--json").stdout)
    assert (report["uncovered"], report["first_uncovered"]) == (6, 14)
    assert (report["entries"], report["last_checkpoint_size"]) == (20, 13)
    assert report["authenticated"] is False and report["trust"] is None
    whole = run("log", "verify", logs / "prc.db", "--strict")
    assert whole.exit_code == 0
    assert "checkpoints: every entry is covered by a signed checkpoint of the owner" in (
        whole.output
    )


def test_verify_json_carries_the_new_fields(logs: Path, tmp_path: Path) -> None:
    result = run("log", "verify", logs / "prc.db", "--json", "--trust", tmp_path / "keys.json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["authenticated"] is True and report["trust"] == str(tmp_path / "keys.json")
    assert report["uncovered"] == 0 and report["first_uncovered"] is None
    assert sorted(report["keys"].values()) == ["PRC", "US"]


def _every_audit(folder: Path, tmp_path: Path) -> list[list[object]]:
    keys = tmp_path / "keys.json"
    commands: list[list[object]] = []
    for name in ("us.db", "prc.db"):
        commands.append(["log", "verify", folder / name])
        commands.append(["log", "verify", folder / name, "--trust", keys, "--strict", "--json"])
        commands.append(["log", "export", folder / name, tmp_path / "out" / name])
    commands.append(["log", "cross-check", folder / "us.db", folder / "prc.db"])
    commands.append(["log", "cross-check", folder / "prc.db", folder / "us.db", "--trust", keys])
    return commands


@pytest.mark.parametrize("live", [False, True], ids=["closed", "open-with-wal"])
def test_audit_commands_leave_every_file_beside_the_evidence_as_found(
    tmp_path: Path, live: bool
) -> None:
    folder = tmp_path / "evidence"
    folder.mkdir()
    ex = exchange(folder, sessions=2)
    ex.trust(tmp_path / "keys.json")
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


@pytest.mark.parametrize("command", ["verify", "export", "cross-check"])
@pytest.mark.parametrize("bad", ["missing", "directory", "junk", "empty-sqlite", "no-meta"])
def test_a_bad_log_path_is_one_line_without_a_traceback(
    logs: Path, tmp_path: Path, command: str, bad: str
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
        "cross-check": ["cross-check", logs / "us.db", path],
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


@pytest.mark.parametrize("command", ["verify", "cross-check"])
def test_a_malformed_trust_file_is_one_line_naming_file_and_key(
    logs: Path, tmp_path: Path, command: str
) -> None:
    keys = tmp_path / "keys.json"
    pinned = json.loads(keys.read_text())
    kid = next(iter(pinned))
    pinned[kid]["public_key"] = pinned[kid]["public_key"][:-2]
    keys.write_text(json.dumps(pinned))
    logs_args = [logs / "us.db"] + ([logs / "prc.db"] if command == "cross-check" else [])
    result = run("log", command, *logs_args, "--trust", keys)
    assert result.exit_code == 2
    assert one_line(result) == (
        f"error: trust file {keys}: key '{kid}': public_key must be 64 lowercase hex digits "
        "(32 bytes)"
    )
    keys.write_text("{not json")
    assert one_line(run("log", command, *logs_args, "--trust", keys)).startswith(
        f"error: trust file {keys}:1: not JSON: "
    )
    missing = run("log", command, *logs_args, "--trust", tmp_path / "none.json")
    assert one_line(missing) == f"error: trust file {tmp_path / 'none.json'}: no such trust file"


def test_cross_check_of_honest_logs(logs: Path, tmp_path: Path) -> None:
    us, prc = logs / "us.db", logs / "prc.db"
    result = run("log", "cross-check", us, prc, "--trust", tmp_path / "keys.json")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:3] == [
        f"OK {us} (US) and {prc} (PRC): no conflicts, insertions or omissions",
        "US -> PRC: 17 sent in sessions, 14 held by both byte for byte, 3 not delivered, "
        "0 omitted, 0 inserted, 0 conflicting",
        "PRC -> US: 26 sent in sessions, 26 held by both byte for byte, 0 not delivered, "
        "0 omitted, 0 inserted, 0 conflicting",
    ]
    unpinned = run("log", "cross-check", us, prc)
    assert "nothing pinned from outside (pass --trust KEYS)" in unpinned.output


def test_cross_check_names_an_omission_with_its_indices(logs: Path) -> None:
    us, prc = logs / "us.db", logs / "prc.db"
    prc_key = Ed25519Signer.from_label("PRC")
    session = next(e.message.session_id for e in entries(us) if e.message.session_id)
    removed = find(prc, "US", session, 3)
    sent = find(us, "US", session, 3)
    rewrite(prc, prc_key, keep=lambda e: e.cose != removed.cose)
    assert run("log", "verify", prc, "--strict").exit_code == 0  # alone, it looks whole
    result = run("log", "cross-check", us, prc)
    assert result.exit_code == 1
    assert result.stdout.startswith(f"FAIL {us} (US) and {prc} (PRC): 1 discrepancies\n")
    assert "US -> PRC: 17 sent in sessions, 13 held by both byte for byte, 3 not delivered, " in (
        result.stdout
    )
    assert result.stderr.startswith(f"omission: US query seq 3 of session {session.hex()} ")
    assert f"({us} entry {sent.index}) is missing from {prc}" in result.stderr
    report = json.loads(run("log", "cross-check", us, prc, "--json").stdout)
    assert report["ok"] is False
    (finding,) = report["findings"]
    assert finding["kind"] == "omission" and finding["a_index"] == sent.index
    assert finding["b_index"] is None and finding["session"] == session.hex()
    assert report["directions"][0]["omissions"] == 1
    assert report["a"]["path"] == str(us) and report["b"]["side"] == "PRC"


def test_cross_check_help_states_the_rule(logs: Path) -> None:
    result = run("log", "cross-check", "--help")
    assert result.exit_code == 0
    flat = " ".join(result.output.split())
    assert "sessions are in-order streams, so it was received and then removed (error)" in flat
    assert "not delivered: above the last message of that session the receiver logged" in flat
