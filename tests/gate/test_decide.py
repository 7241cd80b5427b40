"""Each gate rule, in its order, and the stateful property that matters most."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, event, reject, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from clearline.config import default_policy, default_policy_text
from clearline.errors import PolicyError
from clearline.gate import Gate, GateContext, GateDecision, ProposedAction, Rule, decide
from clearline.gate.authority import Officer, Roster, approval_digest, sign_approval
from clearline.gate.policy import Policy, parse_policy
from clearline.protocol.events import LinkState
from clearline.protocol.messages import Actor, Approval, ApprovalScope, Verdict
from clearline.protocol.signing import Ed25519Signer

POLICY = default_policy()
S = 1_000_000


def auto(rung: str, domain: str = "air", target: str | None = "T-1") -> ProposedAction:
    return ProposedAction("a1", Actor.AUTONOMOUS, rung, domain, target)


OFFICERS = [Ed25519Signer.from_label(f"US officer {i}") for i in range(3)]
IMPOSTOR = Ed25519Signer.from_label("US impostor")
ROSTER = Roster(
    version=1,
    side="US",
    officers=[
        Officer(id=f"officer-{i}", public_key=s.public_key.hex()) for i, s in enumerate(OFFICERS)
    ],
)
HOUR = 3600 * S


def approval(
    signer: Ed25519Signer,
    rung: str,
    domain: str = "air",
    action_id: str | None = "h1",
    target: str | None = None,
    start: int = 0,
    until: int = HOUR,
    side: str = "US",
) -> bytes:
    scope = ApprovalScope.ACTION if action_id is not None else ApprovalScope.STANDING
    body = Approval(scope, rung, domain, start, until, action_id, target)
    return sign_approval(signer, side, body, start)


def human(rung: str, domain: str = "air", n: int = 1, target: str | None = None) -> ProposedAction:
    approvals = tuple(approval(OFFICERS[i], rung, domain, target=target) for i in range(n))
    return ProposedAction("h1", Actor.HUMAN, rung, domain, target, approvals)


def judge(action: ProposedAction, ctx: GateContext | None = None, now: int = S) -> GateDecision:
    return decide(POLICY, action, ctx or UP, now, ROSTER)


UP = GateContext(LinkState.UP)


def test_excluded_domain_denies_autonomy_even_for_standing_down() -> None:
    for rung in ("stand-down", "monitor", "nuclear"):
        d = decide(POLICY, auto(rung, "nuclear-c2"), UP, 0)
        assert (d.verdict, d.rule) == (Verdict.DENY, Rule.EXCLUDED_DOMAIN)


def test_excluded_domain_needs_two_distinct_enrolled_officers() -> None:
    assert judge(human("posture", "nuclear-c2", 1)).rule is Rule.AUTHORIZATIONS
    one = approval(OFFICERS[0], "posture", "nuclear-c2")
    twice = ProposedAction("h1", Actor.HUMAN, "posture", "nuclear-c2", None, (one, one))
    assert judge(twice).verdict is Verdict.DENY  # one officer counts once
    assert judge(human("posture", "nuclear-c2", 2)).verdict is Verdict.ALLOW


def test_named_officers_are_not_proven_officers() -> None:
    """Finding: two made-up names used to authorize a nuclear act."""
    names = ProposedAction("a2", Actor.HUMAN, "nuclear", "nuclear-c2", None, (b"nobody-1", b"x"))
    d = judge(names)
    assert (d.verdict, d.rule) == (Verdict.DENY, Rule.AUTHORIZATIONS)
    assert "not a valid approval" in d.reason
    bare = ProposedAction("a3", Actor.HUMAN, "strike", "air", "T-1")
    assert judge(bare).rule is Rule.AUTHORIZATIONS
    assert decide(POLICY, human("strike"), UP, S).rule is Rule.AUTHORIZATIONS  # no roster


def test_nuclear_is_a_property_of_the_rung_not_of_the_label() -> None:
    for domain in ("air", "space", "cyber"):
        for link in LinkState:
            d = judge(auto("nuclear", domain), GateContext(link))
            assert (d.verdict, d.rule) == (Verdict.DENY, Rule.EXCLUDED_DOMAIN), (domain, link)
            assert "nuclear-c2" in d.reason
    one = human("nuclear", "air", 1)
    assert judge(one).rule is Rule.AUTHORIZATIONS
    assert judge(human("nuclear", "air", 2)).verdict is Verdict.ALLOW


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda: approval(IMPOSTOR, "nuclear", "nuclear-c2"), "not a valid approval"),
        (lambda: approval(OFFICERS[2], "nuclear", "nuclear-c2", side="PRC"), "not a valid"),
        (lambda: approval(OFFICERS[2], "nuclear", "nuclear-c2", action_id="h0"), "action h0"),
        (lambda: approval(OFFICERS[2], "strike", "nuclear-c2"), "rung strike"),
        (lambda: approval(OFFICERS[2], "nuclear", "space"), "domain space"),
        (lambda: approval(OFFICERS[2], "nuclear", "nuclear-c2", target="T-9"), "target T-9"),
        (lambda: approval(OFFICERS[2], "nuclear", "nuclear-c2", until=S // 2), "window"),
        (lambda: approval(OFFICERS[2], "nuclear", "nuclear-c2", start=2 * S), "window"),
        (lambda: approval(OFFICERS[2], "nuclear", "nuclear-c2", until=2 * HOUR), "longer"),
        (lambda: approval(OFFICERS[2], "nuclear", "nuclear-c2", None), "standing approval"),
        (lambda: approval(OFFICERS[0], "nuclear", "nuclear-c2"), "already counted"),
    ],
)
def test_a_second_approval_that_does_not_count(make, why) -> None:  # type: ignore[no-untyped-def]
    first = approval(OFFICERS[0], "nuclear", "nuclear-c2")
    action = ProposedAction("h1", Actor.HUMAN, "nuclear", "nuclear-c2", None, (first, make()))
    d = judge(action)
    assert (d.verdict, d.rule) == (Verdict.DENY, Rule.AUTHORIZATIONS)
    assert why in d.reason, d.reason


def test_an_approval_authorizes_one_act_only() -> None:
    gate = Gate(POLICY, UP, roster=ROSTER)
    action = human("nuclear", "nuclear-c2", 2)
    first = gate.propose(action, S)
    assert first.verdict is Verdict.ALLOW
    assert {a.officer for a in first.approvals} == {"officer-0", "officer-1"}
    replayed = gate.propose(action, 2 * S)
    assert replayed.rule is Rule.AUTHORIZATIONS and "already used" in replayed.reason
    gate.propose(auto("monitor"), 2 * HOUR)  # spent approvals are forgotten once expired
    assert gate.context.spent_approvals == {}


def test_standing_approvals_cover_open_rungs_only() -> None:
    standing = approval(OFFICERS[0], "strike", "air", action_id=None)
    for rung in ("posture", "intercept-uncrewed", "strike"):
        act = ProposedAction("any", Actor.HUMAN, rung, "air", "T-1", (standing,))
        assert judge(act).verdict is Verdict.ALLOW, rung
    assert judge(ProposedAction("n", Actor.HUMAN, "nuclear", "air", "T-1", (standing,))).rule is (
        Rule.AUTHORIZATIONS
    )
    assert judge(ProposedAction("s", Actor.HUMAN, "strike", "land", None, (standing,))).rule is (
        Rule.AUTHORIZATIONS
    )
    low = approval(OFFICERS[0], "disrupt", "air", action_id=None)
    assert judge(ProposedAction("s", Actor.HUMAN, "strike", "air", None, (low,))).rule is (
        Rule.AUTHORIZATIONS
    )
    for rung, domain in (("nuclear", "air"), ("posture", "nuclear-c2")):
        bad = approval(OFFICERS[0], rung, domain, action_id=None)
        bad2 = approval(OFFICERS[1], rung, domain, action_id=None)
        act = ProposedAction("n", Actor.HUMAN, rung, domain, None, (bad, bad2))
        d = judge(act)
        assert d.rule is Rule.AUTHORIZATIONS and "never covers an excluded" in d.reason


def test_unknown_rung_and_domain_denied() -> None:
    assert decide(POLICY, auto("fire-at-will"), UP, 0).rule is Rule.UNKNOWN_RUNG
    assert decide(POLICY, auto("posture", "undersea-cables"), UP, 0).rule is Rule.UNKNOWN_DOMAIN


def test_autonomy_cap_refers_to_human() -> None:
    d = decide(POLICY, auto("strike"), UP, 0)
    assert (d.verdict, d.rule) == (Verdict.DENY, Rule.AUTONOMY_CAP)
    assert judge(human("strike")).verdict is Verdict.ALLOW
    assert judge(human("strike", n=0)).rule is Rule.AUTHORIZATIONS


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
    untargeted = decide(POLICY, auto("intercept-uncrewed", target=None), ctx, S)
    assert (untargeted.verdict, untargeted.until) == (Verdict.HOLD, 2 * S)
    assert decide(POLICY, auto("intercept-uncrewed", target=None), ctx, 2 * S).allowed


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
SIGNERS = [*OFFICERS, IMPOSTOR]


@st.composite
def loadable_policies(draw: st.DrawFn) -> Policy:
    """Variants of the default that an operator could write: any caps, any officer count,
    any binding of the nuclear rung, another name. Only those that load are kept."""
    names = [r.name for r in POLICY.ladder]
    down, degraded, cap = sorted(draw(st.lists(st.integers(0, 6), min_size=3, max_size=3)))
    text = default_policy_text()
    for old, new in (
        ("autonomy_cap: intercept-uncrewed", f"autonomy_cap: {names[cap]}"),
        ("  degraded_cap: disrupt", f"  degraded_cap: {names[degraded]}"),
        ("  down_cap: posture", f"  down_cap: {names[down]}"),
        ("human_authorizations: 2", f"human_authorizations: {draw(st.integers(1, 3))}"),
        ("domain: nuclear-c2   #", f"domain: {draw(st.sampled_from(['nuclear-c2', 'air']))} #"),
        ("name: clearline-default", "name: variant"),
    ):
        text = text.replace(old, new, 1)
    try:
        return parse_policy(text, "variant.yaml")
    except PolicyError:
        reject()


class GateMachine(RuleBasedStateMachine):
    """Any policy that loads, any labels, any link states and clock moves, and any approvals
    that can be made without the officers' keys (forged, replayed, altered, expired, for
    another act): autonomy never acts at an excluded rung or in an excluded domain, never
    past its caps or a hold, and no act at a nuclear rung passes without two valid approvals
    by distinct enrolled officers for exactly that act, each used once."""

    def __init__(self) -> None:
        super().__init__()
        self.policy = POLICY
        self.gate = Gate(POLICY, roster=ROSTER)
        self.now = 3 * HOUR
        self.count = 0
        self.minted: dict[bytes, tuple[int, Approval]] = {}
        self.seen: list[bytes] = []
        self.used: set[bytes] = set()

    @initialize(policy=loadable_policies())
    def load(self, policy: Policy) -> None:
        self.policy = policy
        self.gate = Gate(policy, roster=ROSTER)

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

    def _approval(
        self, data: st.DataObject, action_id: str, rung: str, domain: str, target: str | None
    ) -> bytes:
        who = data.draw(st.integers(0, len(SIGNERS) - 1))
        if data.draw(st.booleans()):  # exactly right, but signed by whom?
            body = Approval(
                ApprovalScope.ACTION, rung, domain, self.now, self.now + HOUR, action_id, target
            )
            return self._mint(who, body, "US")
        how = data.draw(st.sampled_from(["sign", "replay", "flip"]))
        if how != "sign" and self.seen:
            old = data.draw(st.sampled_from(self.seen))
            if how == "replay":
                return old
            i = data.draw(st.integers(0, len(old) - 1))
            return old[:i] + bytes([old[i] ^ 1]) + old[i + 1 :]
        scope = data.draw(st.sampled_from(list(ApprovalScope)))
        start = self.now - data.draw(st.integers(0, 2 * HOUR))
        body = Approval(
            scope,
            data.draw(st.sampled_from([rung, *RUNGS[:-1]])),
            data.draw(st.sampled_from([domain, *POLICY.domains])),
            start,
            start + data.draw(st.integers(0, 2 * HOUR)),
            data.draw(st.sampled_from([action_id, "other"]))
            if scope is ApprovalScope.ACTION
            else None,
            data.draw(st.sampled_from([target, None, "T-9"])),
        )
        return self._mint(who, body, data.draw(st.sampled_from(["US", "PRC"])))

    def _mint(self, who: int, body: Approval, side: str) -> bytes:
        cose = sign_approval(SIGNERS[who], side, body, 0)
        if who < len(OFFICERS):
            self.minted[approval_digest(cose)] = (who, body)
        self.seen.append(cose)
        return cose

    @rule(
        actor=st.sampled_from(list(Actor)),
        rung=st.sampled_from(RUNGS),
        domain=st.sampled_from(DOMAINS),
        track=st.sampled_from([None, "T-1", "T-2"]),
        approvals=st.integers(0, 3),
        data=st.data(),
    )
    def propose(
        self,
        actor: Actor,
        rung: str,
        domain: str,
        track: str | None,
        approvals: int,
        data: st.DataObject,
    ) -> None:
        policy = self.policy
        target = track
        self.count += 1
        action_id = f"x{self.count}"
        presented = tuple(
            self._approval(data, action_id, rung, domain, target) for _ in range(approvals)
        )
        action = ProposedAction(action_id, actor, rung, domain, target, presented)
        before = self.gate.context
        decision = self.gate.propose(action, self.now)
        if decision.verdict is not Verdict.ALLOW:
            return
        assert domain in policy.domains and rung in policy.rungs
        act_domain = policy.domain_of(rung, domain)
        needed = policy.officers_required(rung, domain)
        if rung in policy.excluded_rungs or act_domain == "nuclear-c2":
            assert needed >= 2
        if actor is Actor.HUMAN:
            event(f"human act allowed with {len(decision.approvals)} approvals")
            if rung in policy.excluded_rungs:
                event("human act at an excluded rung allowed")
            officers = set()
            for accepted in decision.approvals:
                who, body = self.minted[accepted.digest]  # only real officers' approvals count
                assert who not in officers
                officers.add(who)
                assert body.not_before <= self.now <= body.not_after
                assert body.domain == domain
                if body.action_id is not None:
                    assert (body.action_id, body.rung, body.target) == (action_id, rung, target)
                    assert accepted.digest not in self.used
                    self.used.add(accepted.digest)
                else:
                    assert not needed and rung not in policy.excluded_rungs
            assert len(officers) >= max(1, needed)
            return
        assert needed == 0
        index = policy.rung_index[rung]
        if policy.rungs[rung].score <= 0:
            assert not policy.rungs[rung].kinetic
            return  # standing down is never blocked
        assert index <= policy.rung_index[policy.autonomy_cap]
        caps = {
            LinkState.DEGRADED: policy.fail_safe.degraded_cap,
            LinkState.DOWN: policy.fail_safe.down_cap,
        }
        if before.link in caps:
            assert index <= policy.rung_index[caps[before.link]]
        if policy.rungs[rung].kinetic:
            if target is not None:
                deadline = before.open_clarifications.get(target)
            else:
                deadline = max(before.open_clarifications.values(), default=None)
            assert deadline is None or self.now >= deadline

    @rule(
        domain=st.sampled_from(DOMAINS),
        track=st.sampled_from([None, "T-1"]),
        approvals=st.integers(1, 3),
        data=st.data(),
    )
    def propose_nuclear(
        self, domain: str, track: str | None, approvals: int, data: st.DataObject
    ) -> None:
        """A human act at the nuclear rung under any label: the case that matters most."""
        self.propose(Actor.HUMAN, "nuclear", domain, track, approvals, data)

    @invariant()
    def breaker_window_is_respected(self) -> None:
        window = self.policy.circuit_breaker.window_ms * 1000
        recent = [t for t in self.gate.context.recent_escalations if t > self.now - window]
        assert len(recent) <= self.policy.circuit_breaker.max_escalations


GateMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)
TestGateMachine = pytest.mark.slow(GateMachine.TestCase)
