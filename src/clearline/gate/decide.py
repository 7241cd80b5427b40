"""`decide(action, context, now)`: the gate's pure verdict on one proposed action.

Rules are tried in a fixed order and the first that applies decides; the order
is the safety argument, so it is written out once here and in
docs/architecture.md:

1. unknown rung or domain -> deny
2. excluded domain (the rung's own domain if the ladder binds one, else the one
   the caller names): autonomous -> deny, always; human -> allow only with the
   required number of valid approvals by distinct enrolled officers, each for
   exactly this act (standing approvals never count here)
3. human (outside excluded domains) -> allow with at least one valid approval
   (for this act, or standing and covering it); without one it is no human act
4. autonomous de-escalation or status quo (score <= 0, never a kinetic rung) ->
   allow: standing down is never blocked
5. circuit breaker paused -> deny
6. above the autonomy cap -> deny (refer to a human)
7. link degraded or down (or up with its caps withheld: the node's witnesses lack a
   quorum under fail-closed): above the fail-safe cap -> deny
8. kinetic against a track under clarification (or naming no target while any is
   open) -> hold until the deadline
9. one escalation too many in the breaker's window -> deny, and trip the breaker
10. otherwise -> allow
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from clearline.gate.authority import (
    ApprovalCheck,
    CheckedApproval,
    Roster,
    check_approvals,
)
from clearline.gate.policy import Policy
from clearline.protocol.events import LinkState
from clearline.protocol.messages import Actor, Micros, Verdict


class Rule(StrEnum):
    UNKNOWN_RUNG = "unknown-rung"
    UNKNOWN_DOMAIN = "unknown-domain"
    EXCLUDED_DOMAIN = "excluded-domain"
    AUTHORIZATIONS = "authorizations"
    HUMAN_AUTHORITY = "human-authority"
    DE_ESCALATION = "de-escalation"
    CIRCUIT_BREAKER = "circuit-breaker"
    AUTONOMY_CAP = "autonomy-cap"
    FAIL_SAFE = "fail-safe-cap"
    HOTLINE_HOLD = "hotline-hold"
    WITHIN_POLICY = "within-policy"


@dataclass(frozen=True, slots=True)
class ProposedAction:
    action_id: str
    actor: Actor
    rung: str
    domain: str
    target: str | None = None
    approvals: tuple[bytes, ...] = ()
    """Officers' signed approvals (COSE_Sign1 bytes): what makes an act human."""


@dataclass(frozen=True, slots=True)
class GateContext:
    """What the gate knows besides the action: all of it passed in, none of it looked up."""

    link: LinkState
    open_clarifications: Mapping[str, Micros] = field(default_factory=dict)
    """Target (track id) -> deadline of the open clarification about it."""
    recent_escalations: tuple[Micros, ...] = ()
    """Times of autonomous escalations the gate allowed (only those inside the window matter)."""
    breaker_tripped_at: Micros | None = None
    spent_approvals: Mapping[bytes, Micros] = field(default_factory=dict)
    """Digest -> end of validity of each single-use approval that already authorized an act."""
    up_withheld: str | None = None
    """Why an up link's caps are not granted (then the degraded cap applies); None: they are."""


@dataclass(frozen=True, slots=True)
class GateDecision:
    verdict: Verdict
    rule: Rule
    reason: str
    until: Micros | None = None
    trips_breaker: bool = False
    approvals: tuple[CheckedApproval, ...] = ()
    """The approvals that made this a human act (empty for autonomous ones)."""

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOW


def _deny(rule: Rule, reason: str, trips: bool = False) -> GateDecision:
    return GateDecision(Verdict.DENY, rule, reason, trips_breaker=trips)


def decide(
    policy: Policy,
    action: ProposedAction,
    context: GateContext,
    now: Micros,
    roster: Roster | None = None,
    opened: Mapping[bytes, CheckedApproval] | None = None,
) -> GateDecision:
    """The verdict on `action`. `roster` holds the officers whose approvals count (none:
    nothing is human); `opened` is an optional cache of approvals already verified."""
    rung = policy.rungs.get(action.rung)
    if rung is None:
        return _deny(Rule.UNKNOWN_RUNG, f"rung {action.rung!r} is not on the ladder")
    if action.domain not in policy.domains:
        return _deny(Rule.UNKNOWN_DOMAIN, f"domain {action.domain!r} is not in the policy")

    domain = policy.domain_of(rung.name, action.domain)
    required = policy.officers_required(rung.name, action.domain)
    excluded = required > 0
    if excluded and action.actor is Actor.AUTONOMOUS:
        where = domain if domain in policy.exclusions else action.domain
        why = f" (rung {rung.name} is a {where} act)" if where != action.domain else ""
        return _deny(
            Rule.EXCLUDED_DOMAIN,
            f"{where} is closed to autonomous action{why}; a human decision is required",
        )
    if action.actor is Actor.HUMAN:
        check = _approvals(policy, action, context, now, roster, opened)
        needed = required if excluded else 1
        if check.officers < needed:
            what = f"{needed} approvals by distinct officers" if needed > 1 else "an approval"
            detail = "; ".join(check.refused) or (
                "no other was presented" if check.officers else "none was presented"
            )
            return _deny(
                Rule.AUTHORIZATIONS,
                _clip(
                    f"a human {rung.name} act needs {what}, valid for it: "
                    f"{check.officers} counted; {detail}"
                ),
            )
        officers = ", ".join(sorted(a.officer for a in check.accepted))
        return GateDecision(
            Verdict.ALLOW,
            Rule.HUMAN_AUTHORITY,
            _clip(f"approved by {check.officers} officer(s): {officers}"),
            approvals=check.accepted,
        )

    if rung.score <= 0 and not rung.kinetic:
        return GateDecision(Verdict.ALLOW, Rule.DE_ESCALATION, f"{rung.name} does not escalate")

    breaker = policy.circuit_breaker
    if (
        context.breaker_tripped_at is not None
        and now < context.breaker_tripped_at + breaker.pause_ms * 1000
    ):
        resume = context.breaker_tripped_at + breaker.pause_ms * 1000
        return GateDecision(
            Verdict.DENY,
            Rule.CIRCUIT_BREAKER,
            "autonomous escalation is paused by the circuit breaker",
            until=resume,
        )

    index = policy.rung_index[rung.name]
    if index > policy.rung_index[policy.autonomy_cap]:
        return _deny(
            Rule.AUTONOMY_CAP,
            f"{rung.name} is above the autonomy cap {policy.autonomy_cap}; refer to a human",
        )
    link = context.link
    withheld = link is LinkState.UP and context.up_withheld is not None
    if withheld:
        link = LinkState.DEGRADED
    if link is not LinkState.UP:
        cap = (
            policy.fail_safe.degraded_cap
            if link is LinkState.DEGRADED
            else policy.fail_safe.down_cap
        )
        if index > policy.rung_index[cap]:
            state = f"up, but {context.up_withheld}" if withheld else link.value
            return _deny(Rule.FAIL_SAFE, _clip(f"hotline {state}: autonomy is capped at {cap}"))

    if policy.hotline_hold.enabled and rung.kinetic:
        open_now = context.open_clarifications
        if action.target is not None:
            deadline = open_now.get(action.target)
            about = f"clarification about {action.target} is open"
        else:
            # An act that names no target could be aimed at any track under clarification.
            deadline = max((d for d in open_now.values() if d > now), default=None)
            about = f"{len(open_now)} clarification(s) open and the act names no target"
        if deadline is not None and now < deadline:
            return GateDecision(
                Verdict.HOLD,
                Rule.HOTLINE_HOLD,
                f"{about}; held until answer or deadline",
                until=deadline,
            )

    window_start = now - breaker.window_ms * 1000
    recent = sum(1 for t in context.recent_escalations if window_start < t <= now)
    if recent >= breaker.max_escalations:
        return _deny(
            Rule.CIRCUIT_BREAKER,
            f"{recent} autonomous escalations in {breaker.window_ms} ms: breaker trips",
            trips=True,
        )
    return GateDecision(Verdict.ALLOW, Rule.WITHIN_POLICY, f"{rung.name} is within policy")


REASON_LIMIT = 512
"""A reason is logged as TEXT (at most 512 characters)."""


def _clip(text: str) -> str:
    return text if len(text) <= REASON_LIMIT else text[: REASON_LIMIT - 1] + "…"


def _approvals(
    policy: Policy,
    action: ProposedAction,
    context: GateContext,
    now: Micros,
    roster: Roster | None,
    opened: Mapping[bytes, CheckedApproval] | None,
) -> ApprovalCheck:
    if roster is None:
        return ApprovalCheck((), ("no officers are enrolled on this side",))
    return check_approvals(
        roster,
        action.approvals,
        policy=policy,
        action_id=action.action_id,
        rung=action.rung,
        stated_domain=action.domain,
        target=action.target,
        now=now,
        spent=context.spent_approvals,
        opened=opened,
    )


OPENED_CACHE = 1024
"""Verified approvals a Gate remembers, so a standing approval is not re-verified per act."""


class Holds(Mapping[str, Micros]):
    """Open clarifications as the gate reads them: target -> the latest deadline among the
    clarifications about it. Kept by target and clarification, so opening or closing one
    costs the same with thousands open (a swarm) as with one."""

    def __init__(self) -> None:
        self._by_target: dict[str, dict[Hashable, Micros]] = {}

    def open(self, target: str, key: Hashable, deadline: Micros) -> None:
        self._by_target.setdefault(target, {})[key] = deadline

    def close(self, target: str, key: Hashable) -> None:
        keys = self._by_target.get(target)
        if keys is not None:
            keys.pop(key, None)
            if not keys:
                del self._by_target[target]

    def __getitem__(self, target: str) -> Micros:
        return max(self._by_target[target].values())

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_target)

    def __len__(self) -> int:
        return len(self._by_target)


@dataclass
class Gate:
    """A policy plus the little history `decide` needs, kept bounded. Still no clock: pass `now`."""

    policy: Policy
    context: GateContext = field(default_factory=lambda: GateContext(LinkState.DOWN))
    roster: Roster | None = None
    _opened: OrderedDict[bytes, CheckedApproval] = field(default_factory=OrderedDict, repr=False)
    _holds: Holds = field(default_factory=Holds, repr=False)

    def __post_init__(self) -> None:
        for target, deadline in self.context.open_clarifications.items():
            self._holds.open(target, target, deadline)
        # The context reads the holds live: no copy of thousands of them per change.
        self.context = replace(self.context, open_clarifications=self._holds)

    def propose(self, action: ProposedAction, now: Micros) -> GateDecision:
        decision = decide(self.policy, action, self.context, now, self.roster, self._opened)
        self.record(action, decision, now)
        return decision

    def record(self, action: ProposedAction, decision: GateDecision, now: Micros) -> None:
        ctx = self.context
        window_start = now - self.policy.circuit_breaker.window_ms * 1000
        recent = tuple(t for t in ctx.recent_escalations if t > window_start)
        if decision.trips_breaker:
            ctx = replace(ctx, breaker_tripped_at=now)
        spent = {d: until for d, until in ctx.spent_approvals.items() if until >= now}
        for approval in decision.approvals:
            if approval.body.action_id is not None:
                spent[approval.digest] = approval.body.not_after
            self._opened[approval.digest] = approval
            self._opened.move_to_end(approval.digest)
        while len(self._opened) > OPENED_CACHE:
            self._opened.popitem(last=False)
        if decision.approvals or len(spent) != len(ctx.spent_approvals):
            ctx = replace(ctx, spent_approvals=spent)
        rung = self.policy.rungs.get(action.rung)
        if (
            decision.allowed
            and action.actor is Actor.AUTONOMOUS
            and rung is not None
            and rung.score > 0
        ):
            recent += (now,)
        self.context = replace(ctx, recent_escalations=recent)

    def remember_spent(self, spent: Mapping[bytes, Micros]) -> None:
        """Single-use approvals already used (read back from the log after a restart)."""
        merged = {**self.context.spent_approvals, **spent}
        self.context = replace(self.context, spent_approvals=merged)

    def set_link(self, link: LinkState) -> None:
        self.context = replace(self.context, link=link)

    def withhold_up(self, reason: str | None) -> None:
        """Grant an up link only the degraded cap, saying `reason`; None grants it again."""
        if reason != self.context.up_withheld:
            self.context = replace(self.context, up_withheld=reason)

    def open_clarification(self, target: str, deadline: Micros, key: Hashable = None) -> None:
        """Hold kinetic acts against `target` until `deadline`, for the clarification `key`
        (by default the target itself): each query holds on its own, so answering one of two
        queries about a track leaves the other's hold in force."""
        self._holds.open(target, target if key is None else key, deadline)

    def close_clarification(self, target: str, key: Hashable = None) -> None:
        self._holds.close(target, target if key is None else key)
