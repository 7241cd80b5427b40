"""A swarm tracked element by element: the elements one scan shows are asked about in as few
queries as the peer takes, and the gate holds each element until its own answer."""

from __future__ import annotations

import math
import re

import pytest

from clearline.protocol.constants import MAX_TRACKS_PER_QUERY
from clearline.sim.episode import Episode, Prepared, run_episode
from clearline.sim.kernel import Kernel
from clearline.sim.outcomes import ARMS, OUTCOME_COLUMNS, Arm, Outcome
from clearline.sim.scenario import load_scenario, parse_scenario, shipped_scenarios

SWARM = """\
version: 2
name: swarm-holds
title: Swarm holds
horizon_s: 60
sides:
  US:
    model:
      confusion:
        recon_swarm: {{strike_package: {p}}}
      noise: 0.0
    sensor:
      detect_probability: {detect}
      confirm: {{median_s: 50, sigma: 0}}
    doctrine:
      reaction: {{median_s: 0.02, sigma: 0}}
    human:
      decision: {{median_s: 40, sigma: 0}}
  PRC:
    human:
      decision: {{median_s: 40, sigma: 0}}
network:
  one_way_ms: 55
  jitter_ms: 0
  loss: 0.0
assets:
  - id: SW
    owner: PRC
    kind: recon_swarm
    mission: reconnaissance
    intent: withdrawing
    position: [24.0, 122.0, 1000]
    appears_s: 1.0
    swarm: {{elements: {n}, spread_m: 1500}}
"""

QUERY = re.compile(r"^(\d+) US queries (\S+) \(q(\d+)\)$")
SEEN = re.compile(r"^(\d+) US sees (\S+) as (\S+) ")
ANSWER = re.compile(r"^(\d+) US answer for (\S+): ours$")


def _trace(text: str, arm: Arm, episode: int, seed: int) -> tuple[list[str], Outcome]:
    prepared = Prepared.build(parse_scenario(text, "swarm-holds.yaml"))
    lines: list[str] = []
    outcome = run_episode(prepared, arm, episode, seed, trace=lines.append)
    return lines, outcome


@pytest.mark.parametrize(("n", "p"), [(300, 1.0), (300, 0.5), (600, 0.9)])
def test_flagged_elements_go_out_in_ceil_flagged_over_256_queries_and_are_held_till_answered(
    n: int, p: float
) -> None:
    """Every element is seen at once (detection certain); the misread ones (score 0.85) are
    flagged and the others (0.225) are not. Autonomy reacts after 20 ms, long before any
    answer can come back (110 ms), so only the gate's holds stand between a misread element
    and a shot: with zero loss, the flagged elements go out in ceil(flagged / 256) queries,
    every one is answered ("ours", reconnaissance), and nothing kinetic happens at all."""
    seed = 31
    for episode in range(3):
        lines, outcome = _trace(SWARM.format(p=p, n=n, detect=1.0), Arm.HOTLINE_GATE, episode, seed)
        where = f"seed {seed} episode {episode}"
        seen = [m for m in map(SEEN.match, lines) if m]
        assert len(seen) == n, where
        flagged = {m.group(2) for m in seen if m.group(3) == "strike_package"}
        queries = [m for m in map(QUERY.match, lines) if m]
        assert {m.group(2) for m in queries} == flagged, where
        assert len({m.group(3) for m in queries}) == math.ceil(
            len(flagged) / MAX_TRACKS_PER_QUERY
        ), where
        assert len({m.group(1) for m in queries}) == 1, f"{where}: asked at different times"
        answered = {m.group(2) for m in map(ANSWER.match, lines) if m}
        assert answered == flagged, where
        held = [line for line in lines if "gate intercept-uncrewed air: hotline-hold" in line]
        assert len(held) == len(flagged), f"{where}: each misread element held once"
        assert outcome.kinetic_actions == 0 and outcome.tracks_engaged == 0, where
        assert outcome.tracks_cleared == len(flagged), where


def test_without_the_gate_the_same_elements_are_engaged_before_their_answers() -> None:
    """The same swarm with the hotline alone: autonomy (20 ms) beats every answer (110 ms), so
    every misread element is engaged, which is what the holds above prevent."""
    seed, n = 32, 300
    lines, outcome = _trace(SWARM.format(p=0.5, n=n, detect=1.0), Arm.HOTLINE, 0, seed)
    flagged = {m.group(2) for m in map(SEEN.match, lines) if m and m.group(3) == "strike_package"}
    assert flagged, f"seed {seed}"
    assert outcome.tracks_engaged == len(flagged), f"seed {seed}"


def test_each_scan_asks_about_what_it_found_in_one_query() -> None:
    """Detection is its own draw per element (half the elements a scan, scans a second
    apart): the elements come in over several scans, and each scan's flagged elements are
    asked about together, in one query of their own."""
    seed, n = 33, 300
    lines, _ = _trace(SWARM.format(p=0.3, n=n, detect=0.5), Arm.HOTLINE_GATE, 0, seed)
    seen = [m for m in map(SEEN.match, lines) if m]
    assert len(seen) == n
    times = sorted({int(m.group(1)) for m in seen})
    assert len(times) >= 4, f"seed {seed}: all {n} elements seen in {len(times)} scans"
    first = sum(1 for m in seen if int(m.group(1)) == times[0])
    assert 0.35 * n < first < 0.65 * n, f"seed {seed}: {first} of {n} in the first scan"
    flagged_at = {int(m.group(1)) for m in seen if m.group(3) == "strike_package"}
    queries = [m for m in map(QUERY.match, lines) if m]
    by_query = {int(m.group(3)): int(m.group(1)) for m in queries}
    assert sorted(by_query.values()) == sorted(flagged_at), f"seed {seed}"


def test_the_shipped_swarm_is_hundreds_of_elements_each_the_peer_knows() -> None:
    loaded = load_scenario("swarm")
    (swarm,) = loaded.scenario.assets
    assert swarm.swarm is not None and swarm.swarm.elements >= 200
    elements = Prepared.build(loaded).swarms[swarm.id]
    assert len({e.id for e in elements}) == swarm.swarm.elements
    assert all(e.swarm is None and e.owner == swarm.owner for e in elements)
    # Each element's own track gets an answer naming one of the owner's own elements.
    lines: list[str] = []
    run_episode(Prepared.build(loaded), Arm.HOTLINE_GATE, 0, 5, trace=lines.append)
    answers = [m for m in map(ANSWER.match, lines) if m]
    assert answers and len(answers) == sum(1 for line in lines if " US queries " in line)


STRIKE_SWARM = """\
version: 2
name: strike-swarm
title: Strike swarm
horizon_s: 30
sides:
  US:
    model: {{noise: 0.0}}
    sensor: {{detect_probability: 1.0}}
    doctrine:
      reaction: {{median_s: 1.0, sigma: 0}}
    human:
      decision: {{median_s: 20, sigma: 0}}
  PRC:
    human:
      decision: {{median_s: 20, sigma: 0}}
assets:
  - id: SP
    owner: PRC
    kind: strike_package
    mission: strike
    armed: true
    intent: continuing
    position: [24.0, 122.0, 9000]
    appears_s: 1.0
    real_attack: true
    impact_s: {impact}
    swarm: {{elements: 5, spread_m: 500}}
"""


@pytest.mark.parametrize(("impact", "strikes"), [(0.5, 1), (5.0, 0)])
def test_a_real_attack_swarm_strikes_once_unless_every_element_was_stopped(
    impact: float, strikes: int
) -> None:
    """Each element read as what it is (0.85) is intercepted 1 s after it is seen, which
    stops it. Striking before that, the swarm strikes once, as one attack, and its elements
    are spent; striking after it, every element has been stopped and nothing strikes."""
    lines, outcome = _trace(STRIKE_SWARM.format(impact=impact), Arm.NONE, 0, 34)
    assert sum(1 for line in lines if line.endswith("SP strikes US")) == strikes
    assert outcome.tracks_engaged == (0 if strikes else 5)


def _same(a: object, b: object) -> bool:
    return a == b or (
        isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    )


@pytest.mark.parametrize("name", shipped_scenarios())
def test_tracks_that_cannot_move_anything_are_not_scheduled_and_nothing_changes(name: str) -> None:
    """A track nobody flags, whose reading and truth both propose the rest rung, has its
    reaction and confirmation left out (`Belief.inert`): every outcome, the episode's end
    included, is what scheduling them gives."""
    prepared = Prepared.build(load_scenario(name))
    episodes = 4 if name == "swarm" else 25
    skipped = 0
    for episode in range(episodes):
        for arm in ARMS:
            lean, full = Kernel(), Kernel()
            a = Episode(prepared, arm, episode, 11, clock=lean).run().row()
            b = Episode(prepared, arm, episode, 11, clock=full, skip_inert=False).run().row()
            differ = [
                (c, x, y) for c, x, y in zip(OUTCOME_COLUMNS, a, b, strict=True) if not _same(x, y)
            ]
            assert not differ, f"{name} {arm.value} episode {episode} seed 11: {differ}"
            skipped += full.scheduled - lean.scheduled
    if name == "swarm":
        # Most of 300 elements are inert: about two events each left out, per arm.
        assert skipped > episodes * len(ARMS) * 400


ANSWERED_SWARM = """\
version: 2
name: answered-swarm
title: Answered swarm
horizon_s: 60
sides:
  US:
    model:
      confusion:
        recon_swarm: {strike_package: 1.0}
      noise: 0.0
    sensor:
      detect_probability: 1.0
      perceive_action: {median_s: 1.0, sigma: 0}
    doctrine:
      reaction: {median_s: 0.5, sigma: 0}
    human:
      decision: {median_s: 50, sigma: 0}
  PRC:
    sensor:
      perceive_action: {median_s: 1.0, sigma: 0}
    doctrine:
      reaction: {median_s: 2.0, sigma: 0}
    human:
      decision: {median_s: 50, sigma: 0}
network:
  one_way_ms: 55
  jitter_ms: 0
  loss: 0.0
assets:
  - id: SW
    owner: PRC
    kind: recon_swarm
    mission: reconnaissance
    intent: withdrawing
    position: [24.0, 122.0, 1000]
    appears_s: 1.0
    swarm: {elements: 6, spread_m: 500}
"""

COUNTER = re.compile(r"^(\d+) PRC autonomous (\S+) on forces-US ")


def test_acts_perceived_while_an_answer_is_pending_get_that_one_answer() -> None:
    """Six elements engaged together are one hostile act for the side that owns them:
    it perceives six, answers once, a step higher than what it received, and each answer
    after that answers the one act the other side made in return."""
    lines, outcome = _trace(ANSWERED_SWARM, Arm.NONE, 0, 3)
    engaged = [line for line in lines if re.match(r"^\d+ US autonomous \S+ on T-SW", line)]
    perceived = [line for line in lines if " PRC perceives " in line]
    counters = [m for m in map(COUNTER.match, lines) if m]
    assert outcome.tracks_engaged == 6
    first_engaged = min(int(line.split()[0]) for line in engaged)
    first_counter = int(counters[0].group(1))
    # Every element is engaged at the same instant: PRC perceives all of them at once,
    # and answers them with one act, 1 s (perception) + 2 s (reaction) later.
    assert sum(1 for line in perceived if int(line.split()[0]) == first_engaged + 1_000_000) == 6
    assert first_counter == first_engaged + 3_000_000
    assert sum(1 for m in counters if int(m.group(1)) == first_counter) == 1
