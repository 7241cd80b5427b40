"""Threat assessment, fusion with a hotline answer, and the rung a side proposes.

Deliberately simple and explicit, so an analyst can see why a node acted.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Threat score at or above which each rung is proposed (highest first wins)."""

    intercept: float = 0.7
    disrupt: float = 0.5
    posture: float = 0.3


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


def propose_rung(score: float, thresholds: Thresholds = Thresholds()) -> str:
    if score >= thresholds.intercept:
        return "intercept-uncrewed"
    if score >= thresholds.disrupt:
        return "disrupt"
    if score >= thresholds.posture:
        return "posture"
    return "monitor"


def counter_response(received: str, ladder: list[str], ceiling: str) -> str:
    """A "proportional" answer that matches what was received and then goes one step further,
    as automated deterrence doctrines do, never above `ceiling`."""
    index = min(ladder.index(received) + 1, ladder.index(ceiling))
    return ladder[index]
