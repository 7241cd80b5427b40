"""What a side makes of the tracks it sees, and the rung its doctrine proposes from that.

The side's predictive model reads each new track once: a confusion draw for what
it is taken to be, then a threat score (the base threat of that kind times the
side's weight for what it threatens, plus bias, drift and noise). A hotline
answer is fused in by the side's trust in the counterpart; once the side's own
sensors show what the track is, the truth replaces both, and the answer is judged
against it, which is what trust learns from. The doctrine's thresholds turn the
belief into a rung of the policy's ladder, the same function the demo uses
(`doctrine.responses.propose_rung`).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from clearline.doctrine.responses import Thresholds, fuse, nuclear_rung, propose_rung
from clearline.doctrine.threat import CATEGORY_OF_KIND, Category, default_weights, weighted_threat
from clearline.doctrine.trust import TrustModel
from clearline.gate.policy import NUCLEAR_C2, Policy
from clearline.protocol.messages import AssetKind, Claim, Micros
from clearline.sim.scenario import DoctrineSpec, ModelSpec, SideSpec
from clearline.sim.world import S, Track

HARMLESS_THREAT = 0.25
"""The most an unarmed asset on no real attack threatens, once one's own sensors see it."""


@dataclass(frozen=True, slots=True)
class Proposals:
    """A side's thresholds on the policy's ladder, as its autonomy and its commander read
    them; the same in every episode."""

    ordinary: Thresholds
    """Outside nuclear C2: every rung the side has a threshold for, short of nuclear use."""
    nuclear_c2: Thresholds
    """In nuclear C2: the alert (the lowest rung proposed anywhere) and, if the doctrine
    launches on warning, nuclear use."""
    flag_from: float
    """From this score a track calls for something: it is asked about, the commander alerted."""
    kinetic_from: float
    """From this score the doctrine proposes a kinetic rung."""
    nuclear_from: float
    """From this belief a track in nuclear C2 is taken for a nuclear attack."""

    @classmethod
    def build(cls, policy: Policy, doctrine: DoctrineSpec) -> Proposals:
        thresholds = doctrine.rung_thresholds(policy)
        nuclear = nuclear_rung(policy)
        nuclear_use = {r.name for r in policy.ladder if r.domain == NUCLEAR_C2}
        ordinary = thresholds.only(
            [rung for rung, _ in thresholds.steps if rung not in nuclear_use]
        )
        in_c2 = {ordinary.steps[0][0]} if ordinary.steps else set()
        if doctrine.nuclear_autonomy == "launch-on-warning":
            in_c2.add(nuclear)
        return cls(
            ordinary,
            thresholds.only(in_c2),
            thresholds.lowest,
            thresholds.only([r.name for r in policy.ladder if r.kinetic]).lowest,
            thresholds.only([nuclear]).lowest,
        )


@dataclass(eq=False)
class Belief:
    """One side's reading of its tracks, and its trust in the counterpart's answers."""

    weights: dict[Category, float]
    trust: TrustModel
    model: ModelSpec
    proposals: Proposals

    @classmethod
    def initial(cls, side: str, spec: SideSpec, proposals: Proposals) -> Belief:
        """As an episode begins: the side's threat weights (its default profile, unless its
        doctrine sets them) and its prior trust in the counterpart."""
        doctrine = spec.doctrine
        weights = (
            dict(doctrine.threat_weights)
            if doctrine.threat_weights is not None
            else default_weights(side)
        )
        trust = TrustModel(*doctrine.trust_prior, lie_weight=doctrine.lie_weight)
        return cls(weights, trust, spec.model, proposals)

    def read(
        self, kind: AssetKind, category: Category, now: Micros, rng: random.Random
    ) -> tuple[AssetKind, Category, float]:
        """The model's reading of a new track: the kind it is taken for, the category that
        kind threatens (unless the track's own says otherwise), and its threat score."""
        model = self.model
        perceived = kind
        row = model.confusion.get(kind)
        if row:
            u = rng.random()
            for candidate, probability in row.items():
                if u < probability:
                    perceived = candidate
                    break
                u -= probability
        if perceived is not kind and category is CATEGORY_OF_KIND[kind]:
            category = CATEGORY_OF_KIND[perceived]
        minutes = now / (60 * S)
        score = weighted_threat(perceived, category, self.weights)
        score += model.bias + model.drift_per_min * minutes + rng.gauss(0.0, model.noise)
        return perceived, category, min(1.0, max(0.0, score))

    def truth(self, kind: AssetKind, category: Category, dangerous: bool) -> float:
        """The threat score of what is really there, as this side weighs it."""
        threat = weighted_threat(kind, category, self.weights)
        return threat if dangerous else min(HARMLESS_THREAT, threat)

    def of(self, track: Track) -> float:
        """The threat the side believes `track` poses now."""
        if track.confirmed:
            return track.true_score
        if track.answer is None:
            return track.model_score
        return fuse(track.model_score, track.answer, self.trust.trust)

    def flags(self, score: float) -> bool:
        """Whether a track read at `score` calls for anything: asked about, commander alerted."""
        return score >= self.proposals.flag_from

    def proposal(self, track: Track) -> str:
        """The rung the side's doctrine proposes against `track` on its current belief."""
        proposals = self.proposals
        thresholds = proposals.nuclear_c2 if track.domain == NUCLEAR_C2 else proposals.ordinary
        return propose_rung(self.of(track), thresholds)

    def inert(self, track: Track) -> bool:
        """Whether nothing about `track` can ever move this side: it is not flagged (so never
        asked about, and no answer can change the belief), and both the model's reading and
        the truth the sensors will confirm propose the rest rung. Its reaction and its
        confirmation would act on the rest rung, which is no act. Most of a swarm's elements
        are inert, and the simulator schedules nothing for them."""
        proposals = self.proposals
        if self.flags(track.model_score):
            return False
        thresholds = proposals.nuclear_c2 if track.domain == NUCLEAR_C2 else proposals.ordinary
        return (
            propose_rung(track.model_score, thresholds) == thresholds.rest
            and propose_rung(track.true_score, thresholds) == thresholds.rest
        )

    def harmless(self, track: Track) -> bool:
        """Whether what is really there would call for no kinetic act."""
        return track.true_score < self.proposals.kinetic_from

    def fears_nuclear_attack(self, tracks: Iterable[Track]) -> bool:
        nuclear_from = self.proposals.nuclear_from
        return any(t.category is Category.NUCLEAR_C2 and self.of(t) >= nuclear_from for t in tracks)

    def confirm(self, track: Track, accurate: bool) -> bool:
        """One's own sensors now show what `track` is (`accurate`: and read it right); the
        answer about it, if any, is judged and trust learns. True if the answer is found false."""
        found_false = False
        if track.answer is not None:
            if answer_was_true(track) == accurate:
                self.trust.confirmed()
            else:
                self.trust.refuted()
                found_false = True
        track.confirmed = True
        return found_false


def answer_was_true(track: Track) -> bool:
    """Whether the answer about `track` told the truth about what is there."""
    answer = track.answer
    assert answer is not None
    asset = track.asset
    if asset is None:
        return answer.claim is not Claim.OURS
    return (
        answer.claim is Claim.OURS
        and answer.mission is asset.mission
        and answer.armed == asset.armed
    )
