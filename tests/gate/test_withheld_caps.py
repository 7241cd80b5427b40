"""Fail-closed witnessing: an up link whose caps are withheld gets the degraded cap, and only
that; the rules before the fail-safe one decide as they always do."""

from __future__ import annotations

from clearline.config import default_policy
from clearline.gate import Gate, GateContext, ProposedAction, Rule, decide
from clearline.protocol.events import LinkState
from clearline.protocol.messages import Actor, Verdict

POLICY = default_policy()
WHY = "US's checkpoint at 12 lacks a witness quorum"


def auto(rung: str, action_id: str = "a1") -> ProposedAction:
    return ProposedAction(action_id, Actor.AUTONOMOUS, rung, "air", "T-1")


def test_withheld_up_caps_are_the_degraded_cap_and_say_why() -> None:
    withheld = GateContext(LinkState.UP, up_withheld=WHY)
    above = decide(POLICY, auto("intercept-uncrewed"), withheld, 1)
    assert (above.verdict, above.rule) == (Verdict.DENY, Rule.FAIL_SAFE)
    assert above.reason == f"hotline up, but {WHY}: autonomy is capped at disrupt"
    assert decide(POLICY, auto("disrupt"), withheld, 1).allowed
    assert decide(POLICY, auto("stand-down"), withheld, 1).rule is Rule.DE_ESCALATION
    assert decide(POLICY, auto("intercept-uncrewed"), GateContext(LinkState.UP), 1).allowed


def test_a_down_link_keeps_its_own_cap_whatever_is_withheld() -> None:
    down = decide(POLICY, auto("disrupt"), GateContext(LinkState.DOWN, up_withheld=WHY), 1)
    assert (down.rule, down.reason) == (
        Rule.FAIL_SAFE,
        "hotline down: autonomy is capped at posture",
    )


def test_the_gate_withholds_and_grants_again() -> None:
    gate = Gate(POLICY)
    gate.set_link(LinkState.UP)
    gate.withhold_up(WHY)
    assert gate.propose(auto("intercept-uncrewed", "a1"), 1).rule is Rule.FAIL_SAFE
    gate.set_link(LinkState.UP)  # a link change does not clear what the witnesses withheld
    assert gate.propose(auto("intercept-uncrewed", "a2"), 2).rule is Rule.FAIL_SAFE
    gate.withhold_up(None)
    assert gate.propose(auto("intercept-uncrewed", "a3"), 3).allowed
