"""The rung a doctrine proposes: thresholds named by rung, on the policy's own ladder."""

from __future__ import annotations

import math

import pytest

from clearline.config import default_policy
from clearline.doctrine.responses import (
    DEFAULT_THRESHOLDS,
    Thresholds,
    at_rest,
    heaviest_open_kinetic,
    nuclear_rung,
    propose_rung,
)
from tests.doctrine.ladders import RENAMED, ladder_policy

EPS = 1e-9
DEFAULT = Thresholds.on_ladder(default_policy())
LADDER = ", ".join(r.name for r in default_policy().ladder)


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (0.0, "monitor"),
        (0.3 - EPS, "monitor"),
        (0.3, "posture"),
        (0.3 + EPS, "posture"),
        (0.5 - EPS, "posture"),
        (0.5, "disrupt"),
        (0.5 + EPS, "disrupt"),
        (0.7 - EPS, "disrupt"),
        (0.7, "intercept-uncrewed"),
        (0.7 + EPS, "intercept-uncrewed"),
        (1.0, "intercept-uncrewed"),
        (math.nan, "monitor"),
    ],
)
def test_each_rung_is_proposed_from_its_threshold(score: float, expected: str) -> None:
    assert propose_rung(score, DEFAULT) == expected


def test_the_default_thresholds_are_the_documented_ones() -> None:
    assert DEFAULT.steps == (("posture", 0.3), ("disrupt", 0.5), ("intercept-uncrewed", 0.7))
    assert dict(DEFAULT.steps) == DEFAULT_THRESHOLDS


def test_below_every_threshold_the_status_quo_is_proposed_not_the_withdrawal() -> None:
    policy = default_policy()
    assert policy.ladder[0].name == "stand-down"
    assert at_rest(policy) == DEFAULT.rest == "monitor"


def test_a_renamed_bottom_rung_is_what_is_proposed_below_every_threshold() -> None:
    policy = ladder_policy("no-withdrawal", {"monitor": "watch"}, drop={"stand-down"})
    thresholds = Thresholds.on_ladder(policy)
    assert policy.ladder[0].name == "watch"
    assert propose_rung(0.0, thresholds) == propose_rung(0.3 - EPS, thresholds) == "watch"
    assert propose_rung(0.3, thresholds) == "posture"


def test_a_ladder_that_only_escalates_rests_on_its_bottom_rung() -> None:
    policy = ladder_policy(
        "all-escalate", {"monitor": "watch"}, drop={"stand-down"}, scores={"watch": 1}
    )
    assert at_rest(policy) == "watch"
    assert propose_rung(0.1, Thresholds.on_ladder(policy)) == "watch"


def test_rungs_are_found_by_their_place_on_the_ladder_not_by_their_names() -> None:
    policy = ladder_policy("renamed")
    renamed = Thresholds.on_ladder(policy, {RENAMED[r]: s for r, s in DEFAULT_THRESHOLDS.items()})
    for i in range(101):
        assert propose_rung(i / 100, renamed) == RENAMED[propose_rung(i / 100, DEFAULT)]
    assert (nuclear_rung(policy), heaviest_open_kinetic(policy)) == ("last-resort", "destroy")
    assert (nuclear_rung(default_policy()), heaviest_open_kinetic(default_policy())) == (
        "nuclear",
        "strike",
    )


def test_a_threshold_must_name_a_rung_of_the_ladder() -> None:
    with pytest.raises(ValueError, match="'intercep' is not a rung") as info:
        Thresholds.on_ladder(default_policy(), {"posture": 0.3, "intercep": 0.7})
    assert str(info.value).endswith(f"of policy clearline-default (rungs: {LADDER})")
    with pytest.raises(ValueError, match="'posture' is not a rung of policy renamed"):
        Thresholds.on_ladder(ladder_policy("renamed"))


def test_thresholds_rise_with_the_ladder_and_start_above_the_rest_rung() -> None:
    policy = default_policy()
    with pytest.raises(ValueError, match=r"'disrupt' from 0\.5 is below 'posture' from 0\.6"):
        Thresholds.on_ladder(policy, {"disrupt": 0.5, "posture": 0.6})
    with pytest.raises(ValueError, match="'monitor' is not above 'monitor'"):
        Thresholds.on_ladder(policy, {"monitor": 0.1, "posture": 0.3})
    tied = Thresholds.on_ladder(policy, {"disrupt": 0.5, "posture": 0.5})
    assert propose_rung(0.5, tied) == "disrupt"
    assert propose_rung(0.5 - EPS, tied) == "monitor"


def test_only_proposes_the_rungs_kept_at_their_own_minimums() -> None:
    alert = DEFAULT.only({"posture"})
    assert propose_rung(1.0, alert) == "posture"
    assert propose_rung(0.3 - EPS, alert) == "monitor"
    assert DEFAULT.only({"intercept-uncrewed", "strike"}).lowest == 0.7
    assert DEFAULT.only(()).lowest == math.inf
