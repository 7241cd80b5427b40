"""Human decisions in the log: their approvals re-checked offline, and each used only once."""

from __future__ import annotations

from pathlib import Path

import pytest

from clearline.config import default_policy
from clearline.errors import LogIntegrityError
from clearline.gate import Gate, GateContext, ProposedAction
from clearline.gate.authority import Officer, Roster, sign_approval
from clearline.log.store import LogStore, verify_log
from clearline.protocol.events import LinkState
from clearline.protocol.messages import Actor, Approval, ApprovalScope, Decision, Verdict
from clearline.protocol.signing import Ed25519Signer

POLICY = default_policy()
T0 = 1_800_000_000_000_000
OFFICERS = [Ed25519Signer.from_label(f"US officer {i}") for i in range(2)]
ROSTER = Roster(
    version=1,
    side="US",
    officers=[Officer(id=f"o{i}", public_key=s.public_key.hex()) for i, s in enumerate(OFFICERS)],
)
OWNER = Ed25519Signer.from_label("US")


def _approvals(action_id: str, signers: list[Ed25519Signer]) -> tuple[bytes, ...]:
    body = Approval(ApprovalScope.ACTION, "nuclear", "nuclear-c2", T0, T0 + 600_000_000, action_id)
    return tuple(sign_approval(s, "US", body, T0) for s in signers)


def _record(store: LogStore, action_id: str, approvals: tuple[bytes, ...], at: int) -> None:
    store.record(
        Decision(
            action_id,
            Actor.HUMAN,
            "nuclear",
            "nuclear-c2",
            Verdict.ALLOW,
            "human-authority",
            "approved",
            POLICY.hash,
            approvals=approvals,
            roster_hash=ROSTER.hash,
        ),
        at,
    )


def _honest_log(path: Path) -> tuple[LogStore, tuple[bytes, ...]]:
    store = LogStore(path, OWNER, "US")
    gate = Gate(POLICY, GateContext(LinkState.UP), roster=ROSTER)
    approvals = _approvals("N-1", OFFICERS)
    decision = gate.propose(
        ProposedAction("N-1", Actor.HUMAN, "nuclear", "nuclear-c2", None, approvals), T0 + 1
    )
    assert decision.allowed
    _record(store, "N-1", tuple(a.cose for a in decision.approvals), T0 + 1)
    return store, approvals


def test_an_honest_log_rechecks_clean(tmp_path: Path) -> None:
    store, _ = _honest_log(tmp_path / "us.db")
    store.checkpoint(T0 + 2, POLICY.hash, ROSTER.hash)
    store.close()
    report = verify_log(tmp_path / "us.db", authority=(ROSTER, POLICY))
    assert report.approvals_checked and report.human_decisions == 1
    unchecked = verify_log(tmp_path / "us.db")
    assert not unchecked.approvals_checked and unchecked.human_decisions == 1


def test_one_approval_for_two_acts_fails_the_audit(tmp_path: Path) -> None:
    store, approvals = _honest_log(tmp_path / "us.db")
    _record(store, "N-1", approvals, T0 + 5)  # the owner replays the same approvals
    store.close()
    verify_log(tmp_path / "us.db")  # signatures and tree are fine...
    with pytest.raises(LogIntegrityError, match="already authorized the decision at entry 0"):
        verify_log(tmp_path / "us.db", authority=(ROSTER, POLICY))


def test_an_owner_cannot_log_approvals_no_officer_signed(tmp_path: Path) -> None:
    store = LogStore(tmp_path / "us.db", OWNER, "US")
    forged = _approvals("N-2", [OFFICERS[0], Ed25519Signer.from_label("US impostor")])
    _record(store, "N-2", forged, T0 + 1)
    _record(store, "N-3", (), T0 + 2)
    store.close()
    with pytest.raises(LogIntegrityError, match=r"N-2 \(nuclear\): .*not a valid approval"):
        verify_log(tmp_path / "us.db", authority=(ROSTER, POLICY))
    other = Roster(version=1, side="US", officers=ROSTER.officers[:1])
    with pytest.raises(LogIntegrityError, match="not the given one"):
        verify_log(tmp_path / "us.db", authority=(other, None))


def test_a_restarted_gate_remembers_spent_approvals(tmp_path: Path) -> None:
    store, approvals = _honest_log(tmp_path / "us.db")
    spent = store.spent_approvals(T0)
    assert len(spent) == 2
    assert store.spent_approvals(T0 + 10) == {}  # older decisions are not read back
    gate = Gate(POLICY, GateContext(LinkState.UP), roster=ROSTER)
    gate.remember_spent(spent)
    again = gate.propose(
        ProposedAction("N-1", Actor.HUMAN, "nuclear", "nuclear-c2", None, approvals), T0 + 20
    )
    assert not again.allowed and "already used" in again.reason


def _autonomous(
    store: LogStore, action_id: str, rung: str, domain: str, policy_hash: bytes
) -> None:
    store.record(
        Decision(
            action_id,
            Actor.AUTONOMOUS,
            rung,
            domain,
            Verdict.ALLOW,
            "within-policy",
            "forged",
            policy_hash,
            roster_hash=ROSTER.hash,
        ),
        T0 + 3,
    )


def test_an_autonomous_nuclear_act_in_the_log_fails_the_audit(tmp_path: Path) -> None:
    store, _ = _honest_log(tmp_path / "us.db")
    _autonomous(store, "A-9", "nuclear", "air", POLICY.hash)
    store.close()
    verify_log(tmp_path / "us.db")
    with pytest.raises(LogIntegrityError, match="autonomous nuclear allowed in excluded domain"):
        verify_log(tmp_path / "us.db", authority=(ROSTER, POLICY))


def test_decisions_under_another_policy_are_counted_and_fail_strict(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from clearline.cli import main

    store, _ = _honest_log(tmp_path / "us.db")
    _autonomous(store, "A-9", "nuclear", "air", bytes(32))
    store.checkpoint(T0 + 4, POLICY.hash, ROSTER.hash)
    store.close()
    report = verify_log(tmp_path / "us.db", authority=(ROSTER, POLICY))
    assert report.other_policy_decisions == 1
    roster = tmp_path / "roster.yaml"
    from clearline.gate.authority import roster_text

    roster.write_text(roster_text(ROSTER))
    args = ["log", "verify", str(tmp_path / "us.db"), "--roster", str(roster)]
    lenient = CliRunner().invoke(main, args)
    assert lenient.exit_code == 0 and "name another policy" in lenient.output
    strict = CliRunner().invoke(main, [*args, "--strict"])
    assert strict.exit_code == 1 and "name another policy" in strict.output
