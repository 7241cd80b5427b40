"""Threat assessment, fusion with a hotline answer, and the rung a side proposes.

Deliberately simple and explicit, so an analyst can see why a node acted. Rungs
are the policy's: a doctrine's thresholds name rungs of its ladder, and what is
proposed when none is met is read from the ladder too.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from itertools import pairwise
from types import MappingProxyType

from clearline.gate.policy import NUCLEAR_C2, Policy
from clearline.protocol.messages import Answer, AssetKind, Claim, Intent, Mission

BASE_THREAT: dict[AssetKind, float] = {
    AssetKind.RECON_SWARM: 0.25,
    AssetKind.STRIKE_PACKAGE: 0.85,
    AssetKind.INTERCEPTOR: 0.6,
    AssetKind.UNCREWED_AIRCRAFT: 0.3,
    AssetKind.CREWED_AIRCRAFT: 0.4,
    AssetKind.SURFACE_VESSEL: 0.3,
    AssetKind.SUBMARINE: 0.5,
    AssetKind.BALLISTIC_MISSILE: 0.95,
    AssetKind.CRUISE_MISSILE: 0.9,
    AssetKind.SATELLITE: 0.2,
    AssetKind.CYBER_ACTOR: 0.4,
    AssetKind.GROUND_UNIT: 0.3,
    AssetKind.UNKNOWN: 0.5,
}


DEFAULT_THRESHOLDS: Mapping[str, float] = MappingProxyType(
    {"posture": 0.3, "disrupt": 0.5, "intercept-uncrewed": 0.7}
)
"""The threat score from which each rung is proposed, by its name on the default ladder."""


def not_a_rung(name: str, policy: Policy) -> str:
    rungs = ", ".join(r.name for r in policy.ladder)
    return f"{name!r} is not a rung of policy {policy.name} (rungs: {rungs})"


def at_rest(policy: Policy) -> str:
    """The rung proposed when nothing calls for more: the status quo, the highest rung that
    does not escalate (0 or less, as the gate scores escalation), or the bottom of a ladder
    whose every rung escalates. On the default ladder `monitor`: `stand-down` below it
    withdraws, which no threat score calls for."""
    calm = [r.name for r in policy.ladder if r.score <= 0 and not r.kinetic]
    return calm[-1] if calm else policy.ladder[0].name


def nuclear_rung(policy: Policy) -> str:
    """The lowest rung the ladder binds to nuclear-c2: nuclear use (every policy has one)."""
    return next(r.name for r in policy.ladder if r.domain == NUCLEAR_C2)


def heaviest_open_kinetic(policy: Policy) -> str | None:
    """The highest kinetic rung bound to no excluded domain: the heaviest act autonomy may
    ever be allowed (`strike` on the default ladder); None if the ladder has none."""
    kinetic = [r.name for r in policy.ladder if r.kinetic and r.name not in policy.excluded_rungs]
    return kinetic[-1] if kinetic else None


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The rungs a doctrine proposes, each from a minimum threat score, on one policy's
    ladder; build with `on_ladder`, which checks them against it."""

    rest: str
    """Proposed when no minimum is met (`at_rest`)."""
    steps: tuple[tuple[str, float], ...]
    """(rung, minimum score), lowest rung first; the minimums never fall going up."""

    @classmethod
    def on_ladder(
        cls, policy: Policy, minimums: Mapping[str, float] = DEFAULT_THRESHOLDS
    ) -> Thresholds:
        """ValueError names the first rung not on the ladder, not above the rest rung, or
        needing less than a rung below it."""
        rest = at_rest(policy)
        index = policy.rung_index
        for name in minimums:
            if name not in index:
                raise ValueError(not_a_rung(name, policy))
            if index[name] <= index[rest]:
                raise ValueError(
                    f"{name!r} is not above {rest!r}, which is proposed when no threshold is met"
                )
        steps = tuple(sorted(minimums.items(), key=lambda step: index[step[0]]))
        for (lower, low), (higher, high) in pairwise(steps):
            if high < low:
                raise ValueError(
                    f"{higher!r} from {high} is below {lower!r} from {low}: a rung higher on "
                    "the ladder needs at least the score of one below it"
                )
        return cls(rest, steps)

    def only(self, rungs: Collection[str]) -> Thresholds:
        """The same minimums for `rungs` alone: the others are never proposed."""
        return Thresholds(self.rest, tuple(step for step in self.steps if step[0] in rungs))

    @property
    def lowest(self) -> float:
        """The score from which a rung other than `rest` is proposed (inf: never)."""
        return self.steps[0][1] if self.steps else math.inf


def answer_threat(answer: Answer) -> float:
    """What a signed answer, taken at its word, says the threat is."""
    if answer.claim is not Claim.OURS:
        return 0.5  # not theirs, or they will not say: the answer removes no doubt
    threat = 0.6 if answer.armed else 0.15
    if answer.mission in (Mission.STRIKE, Mission.ELECTRONIC_WARFARE):
        threat = max(threat, 0.8)
    if answer.intent in (Intent.WITHDRAWING, Intent.RETURNING, Intent.HOLDING):
        threat *= 0.5
    return threat


def fuse(model_score: float, answer: Answer, trust: float) -> float:
    """Blend our own model's score with the answer, weighted by how far we trust the peer."""
    return (1.0 - trust) * model_score + trust * answer_threat(answer)


def propose_rung(score: float, thresholds: Thresholds) -> str:
    """The highest rung whose minimum `score` meets; the rest rung if it meets none."""
    proposed = thresholds.rest
    for rung, minimum in thresholds.steps:
        if score >= minimum:
            proposed = rung
        else:
            break  # the minimums only rise from here
    return proposed


def counter_response(received: str, ladder: list[str], ceiling: str) -> str:
    """A "proportional" answer that matches what was received and then goes one step further,
    as automated deterrence doctrines do, never above `ceiling`."""
    index = min(ladder.index(received) + 1, ladder.index(ceiling))
    return ladder[index]
