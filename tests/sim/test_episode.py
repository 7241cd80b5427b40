"""Episodes: the same seed gives the same trace, bit for bit; arms share their worlds."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import pytest

from clearline.sim.episode import Prepared, run_episode
from clearline.sim.outcomes import ARMS, Arm
from clearline.sim.scenario import load_scenario, parse_scenario, shipped_scenarios
from tests.doctrine.ladders import RENAMED, ladder_policy_text


def trace_hash(prepared: Prepared, arm: Arm, episode: int, seed: int) -> str:
    lines: list[str] = []
    outcome = run_episode(prepared, arm, episode, seed, trace=lines.append)
    lines.append(repr(outcome.row()))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


@pytest.mark.parametrize("name", shipped_scenarios())
def test_same_seed_same_trace_and_other_seeds_differ(name: str) -> None:
    prepared = Prepared.build(load_scenario(name))
    for arm in ARMS:
        first = [trace_hash(prepared, arm, e, seed=11) for e in range(6)]
        again = [trace_hash(prepared, arm, e, seed=11) for e in range(6)]
        other = [trace_hash(prepared, arm, e, seed=12) for e in range(6)]
        assert first == again, f"{name}/{arm}: same seed, different trace"
        assert first != other, f"{name}/{arm}: the seed changes nothing"


def test_a_fresh_preparation_gives_the_same_trace() -> None:
    loaded = load_scenario("recon-swarm")
    a = trace_hash(Prepared.build(loaded), Arm.HOTLINE_GATE, 3, seed=5)
    b = trace_hash(Prepared.build(load_scenario("recon-swarm")), Arm.HOTLINE_GATE, 3, seed=5)
    assert a == b


def test_arms_share_the_world_of_an_episode() -> None:
    """Common random numbers: without the hotline, an arm's first kinetic act happens at the
    same instant as in the no-hotline baseline whenever both have one."""
    prepared = Prepared.build(load_scenario("recon-swarm"))
    shared = 0
    for episode in range(300):
        base = run_episode(prepared, Arm.NONE, episode, seed=3)
        for arm in (Arm.ANALOG, Arm.GATE):
            other = run_episode(prepared, arm, episode, seed=3)
            assert other.first_kinetic_s == base.first_kinetic_s or (
                base.first_kinetic_s != base.first_kinetic_s
                and other.first_kinetic_s != other.first_kinetic_s
            ), f"episode {episode}, arm {arm}"
            shared += base.first_kinetic_s == base.first_kinetic_s
    assert shared > 50


def test_the_canonical_misreading_is_held_and_cleared_with_hotline_and_gate() -> None:
    prepared = Prepared.build(load_scenario("recon-swarm"))
    cleared = 0
    for episode in range(400):
        base = run_episode(prepared, Arm.NONE, episode, seed=9)
        both = run_episode(prepared, Arm.HOTLINE_GATE, episode, seed=9)
        assert both.kinetic_actions == 0, f"seed 9 episode {episode}"
        if base.kinetic_actions:
            cleared += both.cleared_by_hotline
    assert cleared > 50


def test_real_ed25519_gives_the_same_outcomes_as_the_stand_in() -> None:
    loaded = load_scenario("recon-swarm")
    fast, real = Prepared.build(loaded, "keyed-hash"), Prepared.build(loaded, "ed25519")
    for episode in range(30):
        a = run_episode(fast, Arm.HOTLINE_GATE, episode, seed=4).row()
        b = run_episode(real, Arm.HOTLINE_GATE, episode, seed=4).row()
        assert a == b, f"seed 4 episode {episode}"


def test_gate_blocks_autonomy_in_nuclear_c2_and_nothing_else_does() -> None:
    prepared = Prepared.build(load_scenario("early-warning-1983"))
    for episode in range(100):
        for arm in ARMS:
            outcome = run_episode(prepared, arm, episode, seed=1)
            assert outcome.excluded_allowed == 0
            if arm.gate:
                assert outcome.excluded_unguarded == 0
                assert outcome.excluded_attempts >= 1
            if arm is Arm.NONE:
                assert outcome.excluded_unguarded >= 1


MIN_NUCLEAR = """
version: 2
name: min-nuclear-default
title: blanket authorization reaches the nuclear rung
sides:
  US:
    model: {confusion: {recon_swarm: {strike_package: 1.0}}}
    doctrine: {counter_ceiling: nuclear}
    human: {halt_probability: 0.0, authorize_nuclear_probability: %s}
  PRC:
    human: {halt_probability: 0.0}
assets:
  - {id: RS, owner: PRC, kind: recon_swarm, mission: reconnaissance,
     position: [24.0, 122.0, 1000], appears_s: 1.0}
"""


def test_a_blanket_authorization_never_reaches_the_nuclear_rung() -> None:
    """Finding: one commander's "authorize responses" used to turn a later automatic nuclear
    counter (filed under `air`) into a human act: nuclear_use 1.0 in the gate arm. Now the
    commander's authorization is a standing approval, which never covers an excluded rung."""
    prepared = Prepared.build(parse_scenario(MIN_NUCLEAR % "0.0", "min.yaml"))
    gated = [arm for arm in ARMS if arm.gate]
    assert gated
    for arm in gated:
        lines: list[str] = []
        outcomes = [run_episode(prepared, arm, e, seed=3, trace=lines.append) for e in range(40)]
        assert not any(o.nuclear_use for o in outcomes), arm
        assert any("standing approvals" in line for line in lines), arm
    ungated = [run_episode(prepared, Arm.NONE, e, seed=3) for e in range(40)]
    assert all(o.nuclear_use for o in ungated)  # the same world without a gate does reach it


def test_two_officers_approving_is_what_a_nuclear_act_takes() -> None:
    """The gate does not forbid a human nuclear decision: it demands two officers' signatures.
    A commander who believes the (false) warning and decides to answer it gets them, through
    the same gate and the same approvals a live node checks."""
    text = (resources.files("clearline.sim") / "scenarios" / "early-warning-1983.yaml").read_text()
    assert "authorize_nuclear_probability: 0.05" in text
    text = text.replace("authorize_nuclear_probability: 0.05", "authorize_nuclear_probability: 1")
    prepared = Prepared.build(parse_scenario(text, "ew.yaml"))
    lines: list[str] = []
    outcomes = [run_episode(prepared, Arm.GATE, e, seed=3, trace=lines.append) for e in range(20)]
    authorized = [line for line in lines if "commander authorizes nuclear use" in line]
    assert authorized
    assert sum(o.nuclear_use for o in outcomes) == len(authorized)


RUNGS = """
version: 2
name: rungs-by-policy
title: rung names come from the policy
horizon_s: 900
{policy}
sides:
  US:
    model: {{confusion: {{recon_swarm: {{strike_package: 0.6}}}}, noise: 0.15}}
    doctrine:
      thresholds: {{{posture}: 0.3, {disrupt}: 0.5, {intercept}: 0.65, {nuclear}: 0.9}}
      nuclear_autonomy: launch-on-warning
      counter_ceiling: {nuclear}
      hostile_from: {disrupt}
    human: {{halt_probability: 0.3, authorize_nuclear_probability: 0.5}}
  PRC:
    doctrine:
      thresholds: {{{posture}: 0.3, {disrupt}: 0.45, {intercept}: 0.7, {nuclear}: 0.9}}
      counter_ceiling: {strike}
      hostile_from: {posture}
    human: {{halt_probability: 0.3}}
assets:
  - {{id: RS, owner: PRC, kind: recon_swarm, mission: reconnaissance,
     position: [24.0, 122.0, 1000], appears_s: 1.0}}
  - {{id: BM, owner: PRC, kind: ballistic_missile, mission: strike, armed: true,
     real_attack: true, impact_s: 300, position: [30.0, 120.0, 1000], appears_s: 5.0}}
  - {{id: UA, owner: US, kind: uncrewed_aircraft, mission: reconnaissance,
     position: [24.0, 121.0, 1000], appears_s: 3.0}}
false_alarms:
  - {{seen_by: US, attributed_to: PRC, looks_like: ballistic_missile,
     position: [40.0, 120.0, 0], at_s: 20}}
accidents:
  - {{by: PRC, victim: US, victim_asset: UA, at_s: 30, perceived_as: {intercept}}}
"""
"""Launch on warning, a commander's nuclear use, a real attack's impact, counters up to a
ceiling, an accident and what each side takes as hostile: every place a rung is named."""


def test_the_same_ladder_under_other_names_gives_the_same_episodes(tmp_path: Path) -> None:
    """Rungs are found by their place on the policy's ladder, never by their names."""
    (tmp_path / "renamed.yaml").write_text(ladder_policy_text("renamed"))
    default = {rung: rung for rung in ("posture", "disrupt", "strike", "nuclear")}
    default["intercept"] = "intercept-uncrewed"
    renamed = {key: RENAMED[rung] for key, rung in default.items()}
    scenarios = {
        "default": RUNGS.format(policy="", **default),
        "renamed": RUNGS.format(policy="policy: renamed.yaml", **renamed),
    }
    prepared = {
        k: Prepared.build(parse_scenario(v, f"{k}.yaml", tmp_path)) for k, v in scenarios.items()
    }
    assert prepared["renamed"].rest == "watch"
    traces: dict[str, list[str]] = {"default": [], "renamed": []}
    for arm in ARMS:
        for episode in range(12):
            rows = {
                name: run_episode(p, arm, episode, seed=5, trace=traces[name].append).row()
                for name, p in prepared.items()
            }
            assert rows["renamed"] == rows["default"], f"{arm} episode {episode}"
    for rung in renamed.values():
        assert any(f" {rung} on " in line for line in traces["renamed"]), f"no {rung} taken"


def test_a_ladder_without_a_withdrawal_rests_on_its_renamed_bottom_rung(tmp_path: Path) -> None:
    policy = ladder_policy_text("no-withdrawal", {"monitor": "watch"}, drop={"stand-down"})
    (tmp_path / "policy.yaml").write_text(policy)
    text = MIN_NUCLEAR.replace("title:", "policy: policy.yaml\ntitle:") % "0.0"
    prepared = Prepared.build(parse_scenario(text, "min.yaml", tmp_path))
    assert prepared.rest == prepared.ladder[0] == "watch"
    for arm in ARMS:
        for episode in range(5):
            outcome = run_episode(prepared, arm, episode, seed=3)
            assert min(outcome.peak_rung_a, outcome.peak_rung_b) >= 0
