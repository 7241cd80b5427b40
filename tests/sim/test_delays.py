"""Delays: each type draws what it says, the lognormal exactly as before, and a bad one is
refused at its line with what was expected."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from clearline.errors import ScenarioError, StudyError
from clearline.sim.scenario import (
    Delay,
    EmpiricalDelay,
    ExponentialDelay,
    FixedDelay,
    GammaDelay,
    LognormalDelay,
    parse_scenario,
)
from clearline.sim.sensitivity import Param, resolve
from clearline.sim.sweep import cell_scenario

S = 1_000_000
N = 20_000
SEEDS = (1, 20261127, 777)


def draws(delay: Delay, seed: int, n: int = N) -> list[float]:
    rng = random.Random(seed)
    return [delay.draw(rng) / S for _ in range(n)]


@pytest.mark.parametrize("seed", SEEDS)
def test_the_lognormal_draws_exactly_as_before(seed: int) -> None:
    """The same stream gives the same microseconds as the formula every golden run used."""
    delay = LognormalDelay(median_s=180.0, sigma=0.6)
    ours, reference = random.Random(seed), random.Random(seed)
    for _ in range(1000):
        expected = int(180.0 * math.exp(0.6 * reference.gauss(0.0, 1.0)) * S)
        assert delay.draw(ours) == expected, f"seed {seed}"


@pytest.mark.parametrize("seed", SEEDS)
def test_each_type_has_the_centre_it_states(seed: int) -> None:
    """Over 20,000 draws: the lognormal's median, the exponential's and the gamma's means
    (and the gamma's spread, mean^2 / shape), each within a few standard errors."""
    lognormal = draws(LognormalDelay(median_s=30.0, sigma=0.8), seed)
    assert statistics.median(lognormal) == pytest.approx(30.0, rel=0.03), f"seed {seed}"
    exponential = draws(ExponentialDelay(type="exponential", mean_s=30.0), seed)
    assert statistics.fmean(exponential) == pytest.approx(30.0, rel=0.03), f"seed {seed}"
    assert statistics.median(exponential) == pytest.approx(30.0 * math.log(2), rel=0.04)
    gamma = draws(GammaDelay(type="gamma", mean_s=30.0, shape=4.0), seed)
    assert statistics.fmean(gamma) == pytest.approx(30.0, rel=0.02), f"seed {seed}"
    assert statistics.variance(gamma) == pytest.approx(30.0**2 / 4.0, rel=0.06), f"seed {seed}"
    assert min(lognormal + exponential + gamma) >= 0, f"seed {seed}"


def test_a_fixed_delay_is_exact_and_draws_nothing() -> None:
    rng = random.Random(5)
    state = rng.getstate()
    assert FixedDelay(type="fixed", value_s=2.5).draw(rng) == 2_500_000
    assert FixedDelay(type="fixed", value_s=0).draw(rng) == 0
    assert rng.getstate() == state


@pytest.mark.parametrize("seed", SEEDS)
def test_an_empirical_delay_returns_only_observed_values_each_as_often(seed: int) -> None:
    observed = [12.0, 40.0, 40.0, 95.5, 600.0]
    delay = EmpiricalDelay(type="empirical", values_s=observed, source="test")
    got = draws(delay, seed)
    assert set(got) == set(observed), f"seed {seed}"
    # 40 was observed twice, so it is drawn about twice as often as each other value.
    share = got.count(40.0) / N
    assert share == pytest.approx(0.4, abs=0.02), f"seed {seed}: {share}"
    assert got.count(600.0) / N == pytest.approx(0.2, abs=0.02), f"seed {seed}"


SCENARIO = """\
version: 2
name: tiny
title: Tiny
sides:
  US:
    human:
      decision: {delay}
  PRC:
    doctrine:
      reaction:
        type: gamma
        mean_s: 2
        shape: 3
"""


@pytest.mark.parametrize(
    ("delay", "expected"),
    [
        ("{median_s: 180, sigma: 0.6}", LognormalDelay(median_s=180, sigma=0.6)),
        ("{type: lognormal, median_s: 180}", LognormalDelay(median_s=180)),
        ("{type: fixed, value_s: 2}", FixedDelay(type="fixed", value_s=2)),
        ("{type: exponential, mean_s: 30}", ExponentialDelay(type="exponential", mean_s=30)),
        ("{type: gamma, mean_s: 30, shape: 2}", GammaDelay(type="gamma", mean_s=30, shape=2)),
        (
            "{type: empirical, values_s: [60, 120, 900], source: 'exercise log'}",
            EmpiricalDelay(type="empirical", values_s=[60, 120, 900], source="exercise log"),
        ),
    ],
)
def test_every_type_loads_from_yaml(delay: str, expected: object) -> None:
    loaded = parse_scenario(SCENARIO.format(delay=delay), "tiny.yaml")
    assert loaded.scenario.sides["US"].human.decision == expected
    assert loaded.scenario.sides["PRC"].doctrine.reaction == GammaDelay(
        type="gamma", mean_s=2, shape=3
    )


@pytest.mark.parametrize(
    ("delay", "line", "expected"),
    [
        ("{median_s: -1}", 7, "decision.median_s: Input should be greater than 0 (got -1)"),
        ("{type: fixed, value_s: -2}", 7, "decision.value_s: Input should be greater than or"),
        ("{type: exponential, mean_s: 0}", 7, "decision.mean_s: Input should be greater than 0"),
        (
            "{type: gamma, mean_s: 30}",
            7,
            "decision.shape: Field required; expected a number more than 0 and at most 10000",
        ),
        ("{type: gamma, mean_s: 30, shape: 0}", 7, "decision.shape: Input should be greater"),
        ("{type: empirical, values_s: [], source: x}", 7, "decision.values_s: List should have"),
        ("{type: empirical, values_s: [1, -2], source: x}", 7, "decision.values_s[1]: Input"),
        (
            "{type: empirical, values_s: [1, 2]}",
            7,
            "decision.source: Field required; expected non-empty text (Where the values were "
            "observed (a report, a data set, an exercise))",
        ),
        ("{type: empirical, values_s: [1], source: ' '}", 7, "decision.source: String should"),
        ("{type: weibull, k: 2}", 7, "decision: expected a delay: {median_s, sigma} (lognormal)"),
        ("90", 7, "decision: expected a delay"),
        (
            "{median_s: 180, mean_s: 30}",
            7,
            "decision: Value error, mean_s is a setting of exponential and gamma delays, not "
            "of lognormal ones (median_s, sigma)",
        ),
        (
            "{type: fixed, value_s: 2, sigma: 0.5}",
            7,
            "decision: Value error, sigma is a setting of lognormal delays, not of fixed ones "
            "(value_s)",
        ),
        (
            "{type: fixed, value_s: 2, colour: red}",
            7,
            "decision.colour: Extra inputs are not permitted",
        ),
    ],
)
def test_a_bad_delay_is_refused_at_its_line(delay: str, line: int, expected: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(SCENARIO.format(delay=delay), "bad.yaml")
    assert info.value.line == line, str(info.value)
    assert f"sides.US.human.{expected}" in str(info.value)
    assert "lognormal.decision" not in str(info.value) and ".fixed" not in str(info.value)


def test_a_bad_setting_in_a_block_delay_names_its_own_line() -> None:
    text = SCENARIO.format(delay="{median_s: 10}").replace("shape: 3", "shape: -3")
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "bad.yaml")
    assert info.value.line == 13, str(info.value)
    assert "sides.PRC.doctrine.reaction.shape: Input should be greater than 0" in str(info.value)


def test_a_sweep_changes_one_setting_of_a_delay_and_keeps_the_others() -> None:
    base = parse_scenario(SCENARIO.format(delay="{median_s: 180, sigma: 0.6}"), "tiny.yaml")
    cell = cell_scenario(base, {"sides.US.human.decision.median_s": 30})
    assert cell.scenario.sides["US"].human.decision == LognormalDelay(median_s=30, sigma=0.6)
    cell = cell_scenario(base, {"sides.PRC.doctrine.reaction.shape": 9})
    assert cell.scenario.sides["PRC"].doctrine.reaction == GammaDelay(
        type="gamma", mean_s=2, shape=9
    )


def test_a_sweep_naming_a_setting_of_another_type_is_a_clear_error() -> None:
    base = parse_scenario(SCENARIO.format(delay="{median_s: 180, sigma: 0.6}"), "tiny.yaml")
    with pytest.raises(ScenarioError) as info:
        cell_scenario(base, {"sides.PRC.doctrine.reaction.median_s": 1.0})
    message = str(info.value)
    assert "sides.PRC.doctrine.reaction: Value error, median_s is a setting of lognormal" in message
    assert "not of gamma ones (mean_s, shape)" in message
    with pytest.raises(
        StudyError, match=r"median_s is a setting of lognormal delays, not of gamma"
    ):
        resolve(base, [Param.parse("sides.PRC.doctrine.reaction.median_s=0.5:2")])
    resolved = resolve(base, [Param.parse("sides.US.human.decision.median_s=60:600")])
    assert resolved[0].path == "sides.US.human.decision.median_s"
