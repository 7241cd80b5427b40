"""`clearline officer`: enrol, approve by hand, and the refusals a person meets."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

from click.testing import CliRunner

from clearline.cli import main
from clearline.config import load_roster
from clearline.gate.authority import open_approval
from clearline.protocol.messages import ApprovalScope


def test_enrol_then_approve_a_pending_act(tmp_path: Path) -> None:
    roster, keys = tmp_path / "roster.yaml", tmp_path / "officers"
    for officer in ("us-duty-1", "us-duty-2"):
        result = CliRunner().invoke(
            main,
            [
                "officer",
                "enrol",
                officer,
                "--side",
                "US",
                "--roster",
                str(roster),
                "--keys",
                str(keys),
            ],
        )
        assert result.exit_code == 0, result.output
    key = keys / "us-duty-1.officer.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    loaded = load_roster(roster, "US")
    assert [o.id for o in loaded.officers] == ["us-duty-1", "us-duty-2"]
    again = CliRunner().invoke(
        main,
        [
            "officer",
            "enrol",
            "us-duty-1",
            "--side",
            "US",
            "--roster",
            str(roster),
            "--keys",
            str(keys),
        ],
    )
    assert again.exit_code == 1 and "already enrolled" in again.output
    pending = {
        "pending": [
            {"action_id": "US-A7", "side": "US", "rung": "strike", "domain": "air", "target": "T-1"}
        ]
    }
    signed = CliRunner().invoke(
        main,
        ["officer", "approve", "--key", str(key), "--pending", "-", "--action", "US-A7"],
        input=json.dumps(pending),
    )
    assert signed.exit_code == 0, signed.output
    cose = base64.b64decode(signed.stdout.strip().splitlines()[-1])
    approval = open_approval(loaded, cose)
    assert approval.officer == "us-duty-1"
    body = approval.body
    assert (body.scope, body.action_id, body.rung, body.domain, body.target) == (
        ApprovalScope.ACTION,
        "US-A7",
        "strike",
        "air",
        "T-1",
    )
    assert body.not_after - body.not_before == 600_000_000


def test_the_refusals_are_one_line_each(tmp_path: Path) -> None:
    roster, keys = tmp_path / "roster.yaml", tmp_path / "officers"
    CliRunner().invoke(
        main,
        ["officer", "enrol", "o1", "--side", "US", "--roster", str(roster), "--keys", str(keys)],
    )
    key = str(keys / "o1.officer.key")
    cases = [
        (
            [
                "officer",
                "enrol",
                "bad id",
                "--side",
                "US",
                "--roster",
                str(roster),
                "--keys",
                str(keys),
            ],
            "officer id 'bad id'",
        ),
        (
            [
                "officer",
                "enrol",
                "x",
                "--side",
                "PRC",
                "--roster",
                str(roster),
                "--keys",
                str(keys),
            ],
            "not 'PRC'",
        ),
        (
            [
                "officer",
                "approve",
                "--key",
                key,
                "--side",
                "US",
                "--standing",
                "--rung",
                "nuclear",
                "--domain",
                "air",
            ],
            "never covers an excluded rung",
        ),
        (
            [
                "officer",
                "approve",
                "--key",
                key,
                "--side",
                "US",
                "--standing",
                "--rung",
                "strike",
                "--domain",
                "nuclear-c2",
            ],
            "never covers an excluded rung",
        ),
        (
            ["officer", "approve", "--key", key, "--side", "US", "--rung", "strike"],
            "missing --domain",
        ),
        (
            [
                "officer",
                "approve",
                "--key",
                str(tmp_path / "none.key"),
                "--side",
                "US",
                "--action",
                "a",
                "--rung",
                "strike",
                "--domain",
                "air",
            ],
            "is missing",
        ),
        (
            ["officer", "approve", "--key", key, "--pending", "-", "--action", "zz"],
            "no pending act 'zz'",
        ),
    ]
    for args, expected in cases:
        result = CliRunner().invoke(main, args, input='{"pending": []}')
        assert result.exit_code != 0, args
        assert expected in result.output, (args, result.output)
        assert "Traceback" not in result.output


def test_a_side_name_that_is_not_one_writes_nothing(tmp_path: Path) -> None:
    for args in (
        ["keys", "init", str(tmp_path / "k"), "--side", "us/../x"],
        ["keys", "init", str(tmp_path / "k"), "--side", "US PRC"],
        ["keys", "token", str(tmp_path / "k"), "--side", "a/b", "--role", "sensor"],
        [
            "officer",
            "enrol",
            "o1",
            "--side",
            "bad side",
            "--roster",
            str(tmp_path / "r.yaml"),
            "--keys",
            str(tmp_path / "o"),
        ],
    ):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1, (args, result.output)
        assert "expected an upper-case letter" in result.output
        assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []
