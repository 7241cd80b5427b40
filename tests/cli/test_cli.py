"""The command line, end to end: demo, log verify (good and tampered), export, policy check."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from clearline.cli import main


@pytest.mark.slow
def test_live_demo_runs_two_nodes_and_verifies_logs(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["demo", "--out", str(tmp_path), "--headless", "--duration", "0.5"]
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "mutual TLS 1.3 with pinned certificates" in out
    assert "gate: HOLD intercept-uncrewed (hotline-hold" in out
    assert "Answer: ours, reconnaissance, withdrawing, armed=False (PRC-RS-7)" in out
    assert "intercept-uncrewed CANCELLED" in out
    assert "with no officer's signature: gate DENY (authorizations)" in out
    assert "gate ALLOW (approved by 1 officer(s): us-duty-1)" in out
    assert "1 human decision(s), approvals re-checked against the roster" in out
    assert "after 0.5 s: link up, heartbeat round trip" in out
    assert out.count("exit code 0; log flushed and checkpointed") == 2
    measured = float(out.split("verified in ")[1].split(" ms")[0])
    assert 110.0 <= measured < 1000.0, "the path adds 55 ms each way"
    assert out.count("... verified") == 2
    assert "Monte Carlo - the canonical scenario (recon-swarm), 400 episodes per arm" in out
    for arm in ("none", "analog", "hotline", "hotline+gate", "gate"):
        assert f"\n  {arm} " in out
    for side in ("us", "prc"):
        ok = CliRunner().invoke(
            main,
            [
                "log",
                "verify",
                str(tmp_path / f"{side}-data" / f"{side}.db"),
                "--roster",
                str(tmp_path / f"{side}-roster.yaml"),
            ],
        )
        assert ok.exit_code == 0, ok.output
        assert ok.output.startswith("OK ")
        assert "each approval re-checked" in ok.output


@pytest.mark.parametrize(("delay", "round_trip"), [(None, "110.0"), ("37", "74.0")])
def test_virtual_demo_walks_the_scene_exactly(
    tmp_path: Path, delay: str | None, round_trip: str
) -> None:
    """The scene on the virtual clock: the answer clears the hold; the round trip is twice
    the one-way delay (55 ms unless --delay-ms says otherwise)."""
    delay_args = ["--delay-ms", delay] if delay else []
    result = CliRunner().invoke(
        main, ["demo", "--virtual", *delay_args, "--out", str(tmp_path), "--episodes", "0"]
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Answer q2: ours, reconnaissance, withdrawing, unarmed" in out
    assert f"round trip {round_trip} ms" in out
    assert "intercept-uncrewed CANCELLED" in out
    assert "first human decision" in out


def test_log_verify_names_the_first_bad_entry(tmp_path: Path) -> None:
    CliRunner().invoke(main, ["demo", "--virtual", "--out", str(tmp_path), "--episodes", "0"])
    db = sqlite3.connect(tmp_path / "us.db")
    data = bytearray(db.execute("SELECT data FROM entries WHERE idx=4").fetchone()[0])
    data[40] ^= 0x01
    db.execute("UPDATE entries SET data=? WHERE idx=4", (bytes(data),))
    db.commit()
    db.close()
    result = CliRunner().invoke(main, ["log", "verify", str(tmp_path / "us.db")])
    assert result.exit_code == 1
    assert "entry 4:" in result.output


def test_log_export_and_policy_check(tmp_path: Path) -> None:
    CliRunner().invoke(main, ["demo", "--virtual", "--out", str(tmp_path), "--episodes", "0"])
    result = CliRunner().invoke(
        main, ["log", "export", str(tmp_path / "prc.db"), str(tmp_path / "x")]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "x" / "keys.json").is_file()
    assert len(list((tmp_path / "x").glob("*.cose"))) > 5
    check = CliRunner().invoke(main, ["policy", "check"])
    assert check.exit_code == 0 and "hash " in check.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 2\n")
    failed = CliRunner().invoke(main, ["policy", "check", str(bad)])
    assert failed.exit_code == 1
    assert f"{bad}:1: version" in failed.output


def test_the_demo_opens_its_console_sign_in_page(monkeypatch: pytest.MonkeyPatch) -> None:
    import webbrowser

    from clearline.cli import _opening_console

    opened: list[str] = []
    printed: list[str] = []
    monkeypatch.setattr(webbrowser, "open", opened.append)
    say = _opening_console(printed.append)
    say("  US API http://127.0.0.1:1   PRC API http://127.0.0.1:2   path 55 ms each way")
    say("  console: open file:///tmp/run/console.html (signs this browser in to both nodes)")
    assert opened == ["file:///tmp/run/console.html"]
    assert len(printed) == 2
    # demo --tak: the TAK map's page too, and no other line.
    say("  TAK map: open http://127.0.0.1:3/ (clearline's own TAK map client on the US TAK")
    say("  map: point ATAK, WinTAK or iTAK at the US TAK server: host 127.0.0.1, port 4")
    assert opened == ["file:///tmp/run/console.html", "http://127.0.0.1:3/"]
