"""History as a check: the historical scenarios' analog arm against the timings on record.

docs/scenarios.md ("History as a check") gives, for each incident, the observed timing
with its source and the simulator's distribution of the same quantity under the
analog arm. Those figures come from `measure()` below (run this file as a script to
print them: `python tests/sim/test_history.py [EPISODES]`); the tests recompute some of
them with fewer episodes and check them against the documented numbers, so that the
page cannot drift from the simulator without a test failing.
"""

from __future__ import annotations

import math
import statistics
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from clearline.sim.episode import Prepared, run_episode
from clearline.sim.outcomes import Arm, Outcome
from clearline.sim.scenario import load_scenario, parse_scenario

SEED = 1983
"""The run seed of every figure in the doc's table."""
DOC_EPISODES = 2000
"""Episodes behind each of the doc's figures."""

S = 1_000_000

ANALOG_CALL = """\
version: 2
name: analog-call
title: One side's humans call the other's
description: >
  The check behind the doc's EP-3 (2001) and balloon (2023) rows: a PRC aircraft the
  US flags, so the US commander is alerted and (analog arm) calls the PRC, whose
  humans answer or not by the analog channel's defaults. Only the US is alerted, so
  there is one call, and the horizon (two weeks) outlasts both incidents.
horizon_s: 1209600
sides:
  US:
    model: {noise: 0.0, bias: 0.1}   # flagged (posture), never kinetic
    sensor: {detect_probability: 1.0}
  PRC: {}
assets:
  - id: PRC-BALLOON-1
    owner: PRC
    kind: uncrewed_aircraft
    mission: reconnaissance
    intent: transiting
    position: [45.0, -110.0, 18000]
    appears_s: 1.0
"""
"""A check scenario, not a shipped one: nothing in it but the analog call."""


def _variant(name: str, change: Callable[[dict[str, Any]], None]) -> Prepared:
    """A shipped scenario with its YAML changed by `change`."""
    text = resources.files("clearline.sim").joinpath("scenarios", f"{name}.yaml")
    data = yaml.safe_load(text.read_text("utf-8"))
    change(data)
    return Prepared.build(
        parse_scenario(yaml.safe_dump(data, sort_keys=False), f"{name} (variant)")
    )


def _episodes(
    prepared: Prepared, episodes: int, arm: Arm = Arm.ANALOG
) -> list[tuple[Outcome, list[tuple[float, str]]]]:
    """Each episode's outcome and its trace as (seconds, text)."""
    runs = []
    for i in range(episodes):
        lines: list[tuple[float, str]] = []

        def keep(line: str, lines: list[tuple[float, str]] = lines) -> None:
            at, _, text = line.partition(" ")
            lines.append((int(at) / S, text))

        runs.append((run_episode(prepared, arm, i, SEED, trace=keep), lines))
    return runs


def _first(lines: list[tuple[float, str]], test: Callable[[str], bool]) -> float | None:
    return next((t for t, text in lines if test(text)), None)


def _connects(lines: list[tuple[float, str]]) -> float | None:
    return _first(lines, lambda text: text == "analog call connects")


def _quantiles(values: list[float]) -> dict[str, float]:
    """Median and the 2.5th and 97.5th percentiles (the middle 95%)."""
    if not values:
        return {"median": math.nan, "low": math.nan, "high": math.nan}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"median": statistics.median(ordered), "low": at(0.025), "high": at(0.975)}


def early_warning(episodes: int) -> dict[str, Any]:
    """1983: the commander's decision (alerted by the warning at 1 s) and what autonomy
    did first, in the analog arm."""
    runs = _episodes(Prepared.build(load_scenario("early-warning-1983")), episodes)
    alarm = 1.0
    decisions = [o.first_human_s - alarm for o, _ in runs if not math.isnan(o.first_human_s)]
    launches = [o.first_kinetic_s - alarm for o, _ in runs if not math.isnan(o.first_kinetic_s)]
    return {
        "episodes": episodes,
        "decision_min": {k: v / 60 for k, v in _quantiles(decisions).items()},
        "p_decision_within_10_min": sum(d <= 600 for d in decisions) / episodes,
        "p_nuclear_use": sum(o.nuclear_use for o, _ in runs) / episodes,
        "p_nuclear_before_decision": sum(o.kinetic_before_any_human for o, _ in runs) / episodes,
        "launch_s": _quantiles(launches),
        "p_connects": sum(_connects(lines) is not None for _, lines in runs) / episodes,
    }


def mq9(episodes: int, prepared: Prepared | None = None) -> dict[str, Any]:
    """MQ-9: how long the fighter shadows the drone before the collision, how soon the US
    answers it, and the analog call, in the analog arm."""
    prepared = prepared or Prepared.build(load_scenario("mq9-collision"))
    runs = _episodes(prepared, episodes)
    shadowing, answer, connect, connect_before, kinetic_before = [], [], [], 0, 0
    for o, lines in runs:
        crash = _first(lines, lambda text: text.startswith("accident:"))
        posture = _first(lines, lambda text: text.startswith("PRC autonomous posture"))
        assert crash is not None
        if posture is not None:
            shadowing.append(crash - posture)
        if not math.isnan(o.first_kinetic_s):
            if o.first_kinetic_s < crash:
                kinetic_before += 1
            else:
                answer.append(o.first_kinetic_s - crash)
        when = _connects(lines)
        if when is not None:
            connect.append(when)
            connect_before += when < crash
    return {
        "episodes": episodes,
        "shadowing_s": _quantiles(shadowing),
        "p_kinetic_before_collision": kinetic_before / episodes,
        "us_answer_after_collision_s": _quantiles(answer),
        "p_connects": len(connect) / episodes,
        "p_connects_before_collision": connect_before / episodes,
        "connect_h": {k: v / 3600 for k, v in _quantiles(connect).items()},
        "p_connects_15_to_36_h": sum(15 * 3600 <= c <= 36 * 3600 for c in connect) / episodes,
        "p_kinetic_before_any_human": sum(o.kinetic_before_any_human for o, _ in runs) / episodes,
        "p_us_kinetic_before_own_human": sum(o.kinetic_before_own_human_a for o, _ in runs)
        / episodes,
        "mean_kinetic_acts": statistics.fmean(o.kinetic_actions for o, _ in runs),
    }


def mq9_day(episodes: int) -> dict[str, Any]:
    """The MQ-9 scenario with a two-day horizon: when the analog call connects, if ever."""

    def longer(data: dict[str, Any]) -> None:
        data["horizon_s"] = 2 * 86400

    return mq9(episodes, _variant("mq9-collision", longer))


def mq9_shadowed(episodes: int) -> dict[str, Any]:
    """The MQ-9 scenario with the collision after 35 minutes of shadowing (the middle of
    the 30-40 minutes on record), and the horizon moved on by as much."""

    def later(data: dict[str, Any]) -> None:
        data["accidents"][0]["at_s"] = 35 * 60
        data["horizon_s"] = data["horizon_s"] + 35 * 60 - 30

    return mq9(episodes, _variant("mq9-collision", later))


def analog_call(episodes: int) -> dict[str, Any]:
    """EP-3 and balloon: one side calls, the other answers (or not) by the defaults."""
    runs = _episodes(Prepared.build(parse_scenario(ANALOG_CALL, "analog-call")), episodes)
    called = [
        _first(lines, lambda text: text.startswith("US commander alerted")) for _, lines in runs
    ]
    waits = []
    for (_, lines), at in zip(runs, called, strict=True):
        assert at is not None, "the US must be alerted in every episode"
        when = _connects(lines)
        if when is not None:
            waits.append(when - at)
    return {
        "episodes": episodes,
        "p_answered": len(waits) / episodes,
        "p_answered_within_32_h": sum(w <= 32 * 3600 for w in waits) / episodes,
        "p_answered_within_11_d": sum(w <= 11 * 86400 for w in waits) / episodes,
        "wait_h": {k: v / 3600 for k, v in _quantiles(waits).items()},
        "p_wait_over_24_h_if_answered": sum(w > 24 * 3600 for w in waits) / max(1, len(waits)),
    }


def measure(episodes: int = DOC_EPISODES) -> dict[str, Any]:
    return {
        "early-warning-1983": early_warning(episodes),
        "mq9-collision": mq9(episodes),
        "mq9-collision, collision at 35 min": mq9_shadowed(episodes),
        "mq9-collision, two-day horizon": mq9_day(episodes),
        "analog call (EP-3, balloon)": analog_call(episodes),
    }


# -- the tests: figures of the doc's table, recomputed on fewer episodes -------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "scenarios.md"
TEST_EPISODES = 400
"""Episodes 0-399 of the doc's run (same seed): a subset, so each estimate lies within
a few of its standard errors of the documented figure, unless the simulator moved."""

DOCUMENTED = {
    ("early-warning-1983", "p_decision_within_10_min"): 0.92,
    ("early-warning-1983", "p_nuclear_use"): 0.974,
    ("mq9-collision", "p_connects"): 0.226,
    ("mq9-collision", "p_kinetic_before_collision"): 0.054,
    ("analog call (EP-3, balloon)", "p_answered"): 0.514,
}
"""The proportions the doc states (docs/scenarios.md, "History as a check"), from
`measure(DOC_EPISODES)`."""


def _tolerance(p: float, n: int) -> float:
    """Four standard errors of a proportion near p over n episodes (at least 0.02): a
    subset estimate falls outside with probability about 6 in 100,000."""
    return max(0.02, 4 * math.sqrt(p * (1 - p) / n))


def _history_section() -> str:
    text = DOC.read_text("utf-8")
    start = text.index("## History as a check")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_the_doc_states_these_figures() -> None:
    section = _history_section()
    assert f"seed {SEED}" in section and f"{DOC_EPISODES:,} episodes" in section
    for (_, name), value in DOCUMENTED.items():
        assert f"{value:g}" in section, f"{name} {value:g} not in the doc's History section"


def test_analog_figures_match_the_doc() -> None:
    measured = {
        "early-warning-1983": early_warning(TEST_EPISODES),
        "mq9-collision": mq9(TEST_EPISODES),
        "analog call (EP-3, balloon)": analog_call(TEST_EPISODES),
    }
    for (scenario, name), documented in DOCUMENTED.items():
        got = measured[scenario][name]
        assert abs(got - documented) <= _tolerance(documented, TEST_EPISODES), (
            f"{scenario} {name}: {got} over {TEST_EPISODES} episodes, the doc says "
            f"{documented}; rerun python tests/sim/test_history.py and update the doc"
        )


def test_the_analog_call_never_takes_a_day() -> None:
    """The doc's finding about the analog defaults: an answered call connects within
    hours, never in the day or so the one answered call on record took."""
    result = analog_call(TEST_EPISODES)
    assert result["wait_h"]["high"] < 24
    assert result["p_wait_over_24_h_if_answered"] < 0.01


if __name__ == "__main__":
    import json

    n = int(sys.argv[1]) if len(sys.argv) > 1 else DOC_EPISODES
    print(json.dumps(measure(n), indent=2))
