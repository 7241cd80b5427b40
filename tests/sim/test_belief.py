"""A side's belief about a track, and the rung its doctrine proposes from it."""

from __future__ import annotations

import pytest

from clearline.config import default_policy
from clearline.doctrine.threat import Category
from clearline.doctrine.trust import TrustModel
from clearline.protocol.messages import AssetKind, Position, TrackReport
from clearline.sim.belief import Belief, Proposals
from clearline.sim.scenario import DoctrineSpec, ModelSpec
from clearline.sim.world import Track
from tests.doctrine.ladders import ladder_policy

LAUNCH = DoctrineSpec(nuclear_autonomy="launch-on-warning")


def _track(domain: str, score: float) -> Track:
    report = TrackReport("T-1", Position(0, 0, 0), 0, AssetKind.BALLISTIC_MISSILE)
    return Track("T-1", report, None, None, Category.NUCLEAR_C2, domain, score, 0.0)


def _proposal(doctrine: DoctrineSpec, domain: str, score: float) -> str:
    proposals = Proposals.build(default_policy(), doctrine)
    belief = Belief({}, TrustModel(), ModelSpec(), proposals)
    return belief.proposal(_track(domain, score))


def test_the_default_doctrine_on_the_default_ladder() -> None:
    proposals = Proposals.build(default_policy(), DoctrineSpec())
    assert proposals.ordinary.steps == (
        ("posture", 0.3),
        ("disrupt", 0.5),
        ("intercept-uncrewed", 0.7),
    )
    assert proposals.nuclear_c2.steps == (("posture", 0.3),)
    assert (proposals.flag_from, proposals.kinetic_from, proposals.nuclear_from) == (0.3, 0.7, 0.9)
    assert Proposals.build(default_policy(), LAUNCH).nuclear_c2.steps == (
        ("posture", 0.3),
        ("nuclear", 0.9),
    )


@pytest.mark.parametrize(
    ("doctrine", "domain", "score", "expected"),
    [
        (DoctrineSpec(), "air", 0.95, "intercept-uncrewed"),
        (LAUNCH, "air", 0.95, "intercept-uncrewed"),
        (DoctrineSpec(), "nuclear-c2", 0.95, "posture"),
        (LAUNCH, "nuclear-c2", 0.95, "nuclear"),
        (LAUNCH, "nuclear-c2", 0.89, "posture"),
        (LAUNCH, "nuclear-c2", 0.29, "monitor"),
    ],
)
def test_nuclear_use_is_proposed_only_in_nuclear_c2_and_only_on_launch_on_warning(
    doctrine: DoctrineSpec, domain: str, score: float, expected: str
) -> None:
    assert _proposal(doctrine, domain, score) == expected


def test_the_nuclear_rung_is_the_one_the_ladder_binds_to_nuclear_c2() -> None:
    policy = ladder_policy("renamed")
    doctrine = DoctrineSpec(
        nuclear_autonomy="launch-on-warning",
        thresholds={"shadow": 0.3, "jam": 0.5, "down-drones": 0.7, "last-resort": 0.9},
    )
    proposals = Proposals.build(policy, doctrine)
    assert proposals.nuclear_c2.steps == (("shadow", 0.3), ("last-resort", 0.9))
    assert proposals.ordinary.rest == "watch"
    assert (proposals.kinetic_from, proposals.nuclear_from) == (0.7, 0.9)
