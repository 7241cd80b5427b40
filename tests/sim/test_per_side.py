"""Per-side outcomes, the analog call answered by the side called, and who an act is by."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from clearline.errors import ScenarioError
from clearline.sim.episode import Prepared, run_episode
from clearline.sim.outcomes import Arm, Outcome
from clearline.sim.scenario import parse_scenario

WORLD = """
version: 2
name: per-side
title: per-side
horizon_s: 1200
{policy}
sides:
  US:
    model: {{confusion: {{recon_swarm: {{strike_package: 1.0}}}}, noise: 0.0}}
    sensor: {{detect_probability: 1.0, confirm: {{median_s: 1000, sigma: 0}}}}
    doctrine: {{reaction: {{median_s: 30, sigma: 0}}{thresholds}}}
    human: {{decision: {{median_s: 600, sigma: 0}}, halt_probability: 0.0}}
    analog: {{answer_probability: {us_answers}, connect: {{median_s: 10, sigma: 0}}}}
  PRC:
    model: {{confusion: {{uncrewed_aircraft: {{strike_package: 1.0}}}}, noise: 0.0}}
    sensor: {{detect_probability: 1.0, confirm: {{median_s: 1000, sigma: 0}}}}
    doctrine: {{reaction: {{median_s: 1000, sigma: 0}}}}
    human: {{decision: {{median_s: 5, sigma: 0}}, halt_probability: 1.0}}
    analog: {{answer_probability: {prc_answers}, connect: {{median_s: 10, sigma: 0}}}}
assets:
  - {{id: RS, owner: PRC, kind: recon_swarm, mission: reconnaissance,
     position: [24.0, 122.0, 1000], appears_s: 1.0}}
  - {{id: UA, owner: US, kind: uncrewed_aircraft, mission: reconnaissance,
     position: [24.0, 121.0, 1000], appears_s: 2.0}}
  - {{id: RS2, owner: PRC, kind: recon_swarm, mission: reconnaissance,
     position: [25.0, 122.0, 1000], appears_s: 700.0}}
"""
"""Every delay fixed. The US misreads PRC drones (seen at 1 s and 700 s) and acts on them
30 s later; its commander decides at 601 s and authorizes responses. The PRC misreads a
US drone at 2 s, and its commander halts at 7 s; its autonomy never acts."""


def _run(arm: Arm, tmp_path: Path | None = None, **settings: object) -> tuple[Outcome, list[str]]:
    values: dict[str, object] = {
        "policy": "",
        "thresholds": "",
        "us_answers": 1.0,
        "prc_answers": 1.0,
    }
    values.update(settings)
    text = WORLD.format(**values)
    prepared = Prepared.build(parse_scenario(text, "per-side.yaml", tmp_path))
    lines: list[str] = []
    return run_episode(prepared, arm, 0, 1, trace=lines.append), lines


def test_a_kinetic_act_before_its_own_sides_human_counts_for_that_side() -> None:
    """The US acts at 31 s, its commander decides at 601 s; a PRC commander decided at 7 s
    about something else. Before any human: no. Before the US's own human: yes."""
    outcome, _ = _run(Arm.NONE)
    assert outcome.first_kinetic_s == 31.0 and outcome.first_human_s == 7.0
    assert not outcome.kinetic_before_any_human
    assert outcome.kinetic_before_own_human_a and not outcome.kinetic_before_own_human_b
    assert outcome.fired_first_a and not outcome.fired_first_b
    assert outcome.escalation_score_a > 0 and outcome.escalation_score_b == 0
    assert outcome.escalation_score == outcome.escalation_score_a + outcome.escalation_score_b


@pytest.mark.parametrize(
    ("us_answers", "prc_answers", "connects_at"),
    [(1.0, 0.0, "12000000"), (0.0, 1.0, "11000000"), (0.0, 0.0, None)],
)
def test_the_analog_call_is_answered_by_the_side_called(
    us_answers: float, prc_answers: float, connects_at: str | None
) -> None:
    """The US is alerted at 1 s and calls the PRC; the PRC at 2 s and calls the US. A call
    connects 10 s later only if the side called answers: at 11 s the US's call, at 12 s the
    PRC's."""
    _, lines = _run(Arm.ANALOG, us_answers=us_answers, prc_answers=prc_answers)
    connected = [line.split()[0] for line in lines if line.endswith("analog call connects")]
    assert connected == ([connects_at] if connects_at else [])


def test_autonomys_acts_stay_autonomous_after_the_commander_authorizes() -> None:
    """The commander authorizes at 601 s; the drone seen at 700 s is engaged by autonomy at
    730 s within its cap, and that act is autonomous, in the trace and at the gate."""
    _, lines = _run(Arm.GATE)
    assert "601000000 US commander authorizes responses (standing approvals)" in lines
    assert "730000000 US autonomous intercept-uncrewed on T-RS2 (air)" in lines
    assert not any(" US human " in line for line in lines)


def test_a_capped_act_refers_the_rung_first_proposed(tmp_path: Path) -> None:
    """Under a cap at disrupt, autonomy proposes strike, the gate refers it, and the effector
    falls back through intercept-uncrewed (also capped) to disrupt. What waits for the
    commander is the strike first proposed, which goes ahead as the commander's act."""
    policy = (resources.files("clearline.gate") / "default_policy.yaml").read_text()
    assert "autonomy_cap: intercept-uncrewed" in policy
    (tmp_path / "policy.yaml").write_text(
        policy.replace("autonomy_cap: intercept-uncrewed", "autonomy_cap: disrupt").replace(
            "name: clearline-default", "name: capped-at-disrupt"
        )
    )
    _, lines = _run(
        Arm.GATE, tmp_path, policy="policy: policy.yaml", thresholds=", thresholds: {strike: 0.8}"
    )
    at_31 = [line for line in lines if line.startswith("31000000 US ")]
    assert at_31 == [
        "31000000 US gate strike air: autonomy-cap",
        "31000000 US gate intercept-uncrewed air: autonomy-cap",
        "31000000 US gate disrupt air: within-policy",
        "31000000 US autonomous disrupt on T-RS (air)",
    ]
    assert "601000000 US human strike on T-RS (air)" in lines


def test_a_version_1_scenario_is_refused_with_what_moved() -> None:
    text = WORLD.format(policy="", thresholds="", us_answers=1, prc_answers=0)
    old = text.replace("version: 2", "version: 1")
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(old, "old.yaml")
    message = str(caught.value)
    assert "old.yaml:2" in message
    assert "analog.answer_probability" in message and "version: 2" in message
