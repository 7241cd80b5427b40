"""Each side's commander, and the analog call between the two sides' humans.

A commander is alerted by the side's first flag or the first hostile act against
it, and decides once, after a delay drawn from `human.decision`: halt autonomous responses, or
authorize them (what the gate referred to a human then goes ahead), or, while
still believing a nuclear attack, authorize nuclear use. The delay, whether the
analog call is answered and how long it takes to connect are drawn when the
episode starts, so every arm of an episode has the same humans. A commander's
authority is officers' signatures (`officers.py`), which the real gate checks.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from clearline.gate import Policy, ProposedAction
from clearline.protocol.messages import Actor, Micros
from clearline.sim.officers import officers_of
from clearline.sim.rng import Streams
from clearline.sim.scenario import HumanSpec, SideSpec


@dataclass(frozen=True, slots=True)
class Referral:
    """An action the gate referred to a human: taken if the commander authorizes responses."""

    rung: str
    domain: str
    target: str
    """The track it was against."""


class Choice(Enum):
    NUCLEAR = "authorize nuclear use"
    HALT = "halt autonomous responses"
    AUTHORIZE = "authorize responses"


@dataclass(eq=False)
class Commander:
    side: str
    spec: HumanSpec
    delay: Micros
    """From alert to decision."""
    analog_answers: bool
    """Whether this side's humans answer the other side's analog call, in this episode."""
    analog_delay: Micros
    """From the other side's call to this side's humans answering it."""
    alerted_at: Micros | None = None
    decides_at: Micros | None = None
    """When the commander decides (once alerted), or decided."""
    decided: bool = False
    halted: bool = False
    authorized: bool = False
    referred: Referral | None = None
    standing: dict[str, bytes | None] = field(default_factory=dict)
    """Standing approvals by domain, signed once responses are authorized."""

    @classmethod
    def draw(cls, side: str, spec: SideSpec, streams: Streams) -> Commander:
        human = streams(f"{side}.human")
        delay = spec.human.decision.draw(human)
        analog = streams(f"{side}.analog")
        answers = analog.random() < spec.analog.answer_probability
        return cls(side, spec.human, delay, answers, spec.analog.connect.draw(analog))

    def alert(self, now: Micros) -> bool:
        """The first alert starts the clock to the decision; False for any later one."""
        if self.alerted_at is not None:
            return False
        self.alerted_at = now
        self.decides_at = now + self.delay
        return True

    def decide(self, now: Micros, fears_nuclear_attack: bool, rng: random.Random) -> Choice:
        self.decided = True
        self.decides_at = now
        if fears_nuclear_attack and rng.random() < self.spec.authorize_nuclear_probability:
            self.authorized = True
            return Choice.NUCLEAR
        if rng.random() < self.spec.halt_probability:
            return Choice.HALT
        self.authorized = True
        return Choice.AUTHORIZE

    def reached(self, now: Micros) -> None:
        """The analog call connects: a commander who has not yet decided is deciding now."""
        if not self.decided:
            self.decided = True
            self.decides_at = now

    def halt(self) -> bool:
        """Halt autonomous responses; False if they already were."""
        if self.halted:
            return False
        self.halted = True
        return True

    def take_referral(self) -> Referral | None:
        referral, self.referred = self.referred, None
        return referral

    def approvals(
        self, policy: Policy, domain: str, now: Micros, horizon: Micros
    ) -> tuple[bytes, ...]:
        """What an authorized act in `domain` carries: the commander's standing approval,
        signed the first time it is needed (none where nothing may be approved in advance)."""
        if domain not in self.standing:
            self.standing[domain] = officers_of(self.side).standing(policy, domain, now, horizon)
        standing = self.standing[domain]
        return (standing,) if standing is not None else ()

    def nuclear_act(
        self, policy: Policy, rung: str, domain: str, target: str, now: Micros
    ) -> ProposedAction:
        """The one act of nuclear use, approved by the commander and a second officer."""
        action_id = f"{self.side}-nuclear"
        approvals = officers_of(self.side).approve(policy, action_id, rung, domain, target, now)
        return ProposedAction(action_id, Actor.HUMAN, rung, domain, target, approvals)


def decision_time(commander: Commander, horizon: Micros) -> Micros | None:
    """When `commander` decided. In an episode that settled while the commander was still
    to decide, when they would have (the delay is drawn in advance), if within the
    horizon; None if never alerted."""
    if commander.decided and commander.decides_at is not None:
        return commander.decides_at
    if commander.alerted_at is not None and commander.alerted_at + commander.delay <= horizon:
        return commander.alerted_at + commander.delay
    return None


def first_decision(commanders: Iterable[Commander], horizon: Micros) -> Micros | None:
    """When the first commander decided (`decision_time`), if any did."""
    times = [t for c in commanders if (t := decision_time(c, horizon)) is not None]
    return min(times) if times else None
