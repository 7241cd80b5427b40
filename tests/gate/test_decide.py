"""Each gate rule, in its order, and the stateful property that matters most."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from clearline.config import default_policy
from clearline.gate import Gate, GateContext, ProposedAction, Rule, decide
from clearline.protocol.events import LinkState
from clearline.protocol.messages import Actor, Verdict

POLICY = default_policy()
S = 1_000_000


def auto(rung: str, domain: str = "air", target: str | None = "T-1") -> ProposedAction:
    return ProposedAction("a1", Actor.AUTONOMOUS, rung, domain, target)


def human(rung: str, domain: str = "air", n: int = 1) -> ProposedAction:
    return ProposedAction(
        "h1", Actor.HUMAN, rung, domain, None, frozenset(f"o{i}" for i in range(n))
    )


UP = GateContext(LinkState.UP)


def test_excluded_domain_denies_autonomy_even_for_standing_down() -> None:
    for rung in ("stand-down", "monitor", "nuclear"):
        d = decide(POLICY, auto(rung, "nuclear-c2"), UP, 0)
        assert (d.verdict, d.rule) == (Verdict.DENY, Rule.EXCLUDED_DOMAIN)


def test_excluded_domain_needs_distinct_human_authorizations() -> None:
    assert decide(POLICY, human("posture", "nuclear-c2", 1), UP, 0).rule is Rule.AUTHORIZATIONS
    two = ProposedAction("h", Actor.HUMAN, "posture", "nuclear-c2", None, frozenset({"a"}))
    assert decide(POLICY, two, UP, 0).verdict is Verdict.DENY  # a set: one officer counted once
    assert decide(POLICY, human("posture", "nuclear-c2", 2), UP, 0).verdict is Verdict.ALLOW


def test_unknown_rung_and_domain_denied() -> None:
    assert decide(POLICY, auto("fire-at-will"), UP, 0).rule is Rule.UNKNOWN_RUNG
    assert decide(POLICY, auto("posture", "undersea-cables"), UP, 0).rule is Rule.UNKNOWN_DOMAIN


def test_autonomy_cap_refers_to_human() -> None:
    d = decide(POLICY, auto("strike"), UP, 0)
    assert (d.verdict, d.rule) == (Verdict.DENY, Rule.AUTONOMY_CAP)
    assert decide(POLICY, human("strike"), UP, 0).verdict is Verdict.ALLOW
    assert decide(POLICY, human("strike", n=0), UP, 0).rule is Rule.AUTHORIZATIONS


def test_fail_safe_caps_when_link_not_up() -> None:
    degraded = GateContext(LinkState.DEGRADED)
    down = GateContext(LinkState.DOWN)
    assert decide(POLICY, auto("intercept-uncrewed"), degraded, 0).rule is Rule.FAIL_SAFE
    assert decide(POLICY, auto("disrupt"), degraded, 0).verdict is Verdict.ALLOW
    assert decide(POLICY, auto("disrupt"), down, 0).rule is Rule.FAIL_SAFE
    assert decide(POLICY, auto("posture"), down, 0).verdict is Verdict.ALLOW
    assert decide(POLICY, auto("stand-down"), down, 0).rule is Rule.DE_ESCALATION


def test_hotline_hold_until_deadline_for_kinetic_only() -> None:
    ctx = GateContext(LinkState.UP, {"T-1": 2 * S})
    held = decide(POLICY, auto("intercept-uncrewed"), ctx, 1 * S)
    assert (held.verdict, held.rule, held.until) == (Verdict.HOLD, Rule.HOTLINE_HOLD, 2 * S)
    assert decide(POLICY, auto("intercept-uncrewed"), ctx, 2 * S).verdict is Verdict.ALLOW
    assert decide(POLICY, auto("disrupt"), ctx, 1 * S).verdict is Verdict.ALLOW
    assert decide(POLICY, auto("intercept-uncrewed", target="T-2"), ctx, S).verdict is Verdict.ALLOW


def test_circuit_breaker_trips_then_pauses_then_resumes() -> None:
    gate = Gate(POLICY, UP)
    verdicts = [gate.propose(auto("posture", target=None), i * S).verdict for i in range(4)]
    assert verdicts == [Verdict.ALLOW] * 3 + [Verdict.DENY]
    paused = gate.propose(auto("posture", target=None), 10 * S)
    assert paused.rule is Rule.CIRCUIT_BREAKER and paused.until == 3 * S + 300 * S
    assert gate.propose(auto("monitor"), 10 * S).verdict is Verdict.ALLOW
    assert gate.propose(auto("posture", target=None), 303 * S).verdict is Verdict.ALLOW


def test_gate_history_stays_bounded() -> None:
    gate = Gate(POLICY, UP)
    for i in range(1_000):
        gate.propose(auto("posture", target=None), i * 100 * S)
    assert len(gate.context.recent_escalations) <= POLICY.circuit_breaker.max_escalations


RUNGS = [r.name for r in POLICY.ladder] + ["bogus"]
DOMAINS = [*POLICY.domains, "bogus"]


class GateMachine(RuleBasedStateMachine):
    """No sequence of actions, authorizations, link states and clock moves lets autonomy
    into an excluded domain, past its cap, past the fail-safe cap, or through a hold."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = Gate(POLICY)
        self.now = 0
        self.decisions: list[tuple[ProposedAction, GateContext, object]] = []

    @rule(link=st.sampled_from(list(LinkState)))
    def set_link(self, link: LinkState) -> None:
        self.gate.set_link(link)

    @rule(dt=st.integers(0, 400 * S))
    def advance(self, dt: int) -> None:
        self.now += dt

    @rule(track=st.sampled_from(["T-1", "T-2"]), ttl=st.integers(1, 10 * S))
    def open_clarification(self, track: str, ttl: int) -> None:
        self.gate.open_clarification(track, self.now + ttl)

    @rule(track=st.sampled_from(["T-1", "T-2"]))
    def close_clarification(self, track: str) -> None:
        self.gate.close_clarification(track)

    @rule(
        actor=st.sampled_from(list(Actor)),
        rung=st.sampled_from(RUNGS),
        domain=st.sampled_from(DOMAINS),
        track=st.sampled_from([None, "T-1", "T-2"]),
        officers=st.frozensets(st.sampled_from(["a", "b", "c"])),
    )
    def propose(
        self, actor: Actor, rung: str, domain: str, track: str | None, officers: frozenset[str]
    ) -> None:
        target = track
        action = ProposedAction("x", actor, rung, domain, target, officers)
        before = self.gate.context
        decision = self.gate.propose(action, self.now)
        if decision.verdict is not Verdict.ALLOW:
            return
        assert domain in POLICY.domains and rung in POLICY.rungs
        needed = POLICY.exclusions.get(domain)
        if needed is not None:
            assert actor is Actor.HUMAN and len(officers) >= needed
        if actor is Actor.AUTONOMOUS:
            index = POLICY.rung_index[rung]
            assert index <= POLICY.rung_index[POLICY.autonomy_cap]
            caps = {
                LinkState.DEGRADED: POLICY.fail_safe.degraded_cap,
                LinkState.DOWN: POLICY.fail_safe.down_cap,
            }
            if before.link in caps and POLICY.rungs[rung].score > 0:
                assert index <= POLICY.rung_index[caps[before.link]]
            if POLICY.rungs[rung].kinetic and target is not None:
                deadline = before.open_clarifications.get(target)
                assert deadline is None or self.now >= deadline

    @invariant()
    def breaker_window_is_respected(self) -> None:
        window = POLICY.circuit_breaker.window_ms * 1000
        recent = [t for t in self.gate.context.recent_escalations if t > self.now - window]
        assert len(recent) <= POLICY.circuit_breaker.max_escalations


GateMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=60, deadline=None)
TestGateMachine = GateMachine.TestCase
