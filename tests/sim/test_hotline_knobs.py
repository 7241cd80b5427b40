"""The hotline's scenario knobs (`hotline:`): each moves what the link does the way it says,
and the defaults are the endpoint's and the Session's own."""

from __future__ import annotations

from typing import Any

import pytest

from clearline.errors import ScenarioError
from clearline.hotline.endpoint import HELLO_RETRY_FIRST_US
from clearline.protocol.session import SessionConfig
from clearline.sim.episode import Prepared, run_episode
from clearline.sim.outcomes import Arm
from clearline.sim.scenario import LoadedScenario, load_scenario, parse_scenario
from clearline.sim.sweep import cell_scenario

SEED = 17
MINIMAL = """\
version: 2
name: tiny
title: Tiny
sides:
  US: {}
  PRC: {}
network: {loss: 0.2}
assets:
  - id: A1
    owner: PRC
    kind: recon_swarm
    mission: reconnaissance
    position: [24.0, 122.0, 1000]
"""


def traces(loaded: LoadedScenario, episodes: int) -> list[list[str]]:
    prepared = Prepared.build(loaded)
    out = []
    for episode in range(episodes):
        lines: list[str] = []
        run_episode(prepared, Arm.HOTLINE_GATE, episode, SEED, trace=lines.append)
        out.append(lines)
    return out


def without_session(loaded: LoadedScenario, episodes: int = 150) -> int:
    """Episodes in which a side's link never came up."""
    return sum(
        not all(any(line.endswith(f"{side} link up") for line in lines) for side in ("US", "PRC"))
        for lines in traces(loaded, episodes)
    )


def first(lines: list[str], text: str, after_us: int = 0) -> float:
    """When `text` was first traced (after `after_us`), in seconds."""
    for line in lines:
        at, _, what = line.partition(" ")
        if what == text and int(at) >= after_us:
            return int(at) / 1e6
    raise AssertionError(f"no {text!r} in the trace (seed {SEED})")


def test_the_defaults_are_the_endpoints_and_the_sessions_own() -> None:
    hotline = parse_scenario(MINIMAL, "tiny.yaml").scenario.hotline
    assert hotline.hello_retry_us == HELLO_RETRY_FIRST_US
    config = SessionConfig("US", "PRC", bytes(32))
    assert hotline.session(config) == config


def test_without_hello_resends_a_lossy_path_leaves_more_episodes_without_a_session() -> None:
    # Not redialled, a session that never came up stays down for the episode.
    base = cell_scenario(parse_scenario(MINIMAL, "tiny.yaml"), {"hotline.reconnect": False})
    resent = without_session(base)
    never = without_session(cell_scenario(base, {"hotline.hello_retry_s": None}))
    # A Hello is lost with probability 0.2: without re-sends over a third of episodes
    # (1 - 0.8^2, and more for lost proofs) lose one side's for good; re-sent, losing all
    # of a side's copies is rare.
    assert never > resent + 20, f"seed {SEED}: {never} without re-sends, {resent} with"
    assert never > 30, f"seed {SEED}"


def test_a_shorter_handshake_timeout_leaves_more_episodes_without_a_session() -> None:
    base = cell_scenario(
        parse_scenario(MINIMAL, "tiny.yaml"), {"network.loss": 0.5, "hotline.reconnect": False}
    )
    patient = without_session(base)
    hasty = without_session(cell_scenario(base, {"hotline.handshake_timeout_s": 0.3}))
    assert hasty > patient + 20, f"seed {SEED}: {hasty} with 0.3 s, {patient} with 10 s"


def partitioned(**hotline: Any) -> LoadedScenario:
    """link-loss with its cut from 0.5 s for 20 s rather than ten minutes, and the swarm
    always misread, so that the US keeps asking about it (11 queries of 2 s) until the link
    is back."""
    settings: dict[str, Any] = {
        "network.partitions.0.duration_s": 20,
        "sides.US.model.confusion.recon_swarm.strike_package": 1.0,
        "sides.US.doctrine.query_retries": 10,
    }
    settings |= {f"hotline.{key}": value for key, value in hotline.items()}
    return cell_scenario(load_scenario("link-loss"), settings)


def test_the_link_falls_to_degraded_and_down_after_the_silences_stated() -> None:
    """Heard last just before the cut (0.5 s), the link is degraded and down that long
    after: the gate's fail-safe caps follow."""
    for degraded, down in ((2.5, 5.0), (4.0, 12.0)):
        for lines in traces(partitioned(degraded_after_s=degraded, down_after_s=down), 5):
            last_heard = 0.5 - 1.0  # a heartbeat a second, the last before the cut
            for side in ("US", "PRC"):
                at = first(lines, f"{side} link degraded")
                assert last_heard + degraded <= at <= 0.5 + degraded, (degraded, at)
                at = first(lines, f"{side} link down")
                assert last_heard + down <= at <= 0.5 + down, (down, at)


def test_a_slower_heartbeat_brings_the_link_back_later_after_a_cut() -> None:
    """The link comes back up with the first frame after the cut (20.5 s): the next
    heartbeat, at most one interval later."""
    returns: dict[float, list[float]] = {}
    for beat in (0.5, 3.0):
        knobs = {"heartbeat_s": beat, "degraded_after_s": 4.0, "down_after_s": 8.0}
        returns[beat] = [
            first(lines, "US link up", after_us=20_500_000) - 20.5
            for lines in traces(partitioned(**knobs), 8)
        ]
        assert all(0 < back <= beat + 0.1 for back in returns[beat]), (beat, returns[beat])
    assert sum(returns[3.0]) > sum(returns[0.5]), returns


def test_a_link_down_too_long_is_closed_and_dialled_again_once_the_path_is_back() -> None:
    """link-loss cuts the path from 0.5 s for ten minutes. As a node does, a side closes the
    link 3 x 5 s after it went down, and the connection is dialled again, with a backoff
    doubling to 5 s (x 0.5-1.5 jitter) while the path is cut, so within 7.5 s of 600.5 s.
    Without `reconnect`, the session is kept through the cut, never closed."""
    for lines in traces(load_scenario("link-loss"), 4):
        down = min(first(lines, "US link down"), first(lines, "PRC link down"))
        ended = [line for line in lines if " connection ends: " in line]
        assert len(ended) == 1 and int(ended[0].split()[0]) / 1e6 == pytest.approx(down + 15)
        dialled = first(lines, "connection 2 dialled")
        assert 600.5 <= dialled <= 600.5 + 7.5, dialled
        assert dialled < first(lines, "US link up", after_us=600_500_000) < dialled + 0.5
    kept = cell_scenario(load_scenario("link-loss"), {"hotline.reconnect": False})
    for lines in traces(kept, 4):
        assert any(line.endswith("US link down") for line in lines)
        assert not any("connection" in line for line in lines)


def test_a_cut_through_the_handshake_ends_without_a_session_only_without_reconnect() -> None:
    """The path is cut for the first 30 s: every Hello is lost and each handshake times
    out after 10 s. Redialled, the session is up soon after 30 s; not, never."""
    cut = {"network.partitions.0.at_s": 0, "network.partitions.0.duration_s": 30}
    redialled = cell_scenario(load_scenario("link-loss"), cut)
    for lines in traces(redialled, 4):
        assert 30 < first(lines, "US link up") < 30 + 7.5
    stays = cell_scenario(load_scenario("link-loss"), {**cut, "hotline.reconnect": False})
    assert without_session(stays, 4) == 4


@pytest.mark.parametrize(
    ("hotline", "expected"),
    [
        ("{hello_retry_s: 0}", "hotline.hello_retry_s: Input should be greater than 0"),
        ("{heartbeat_s: 3}", "hotline: Value error, expected heartbeat_s < degraded_after_s"),
        ("{down_after_s: 2}", "(got 1, 2.5, 2)"),
        ("{handshake_timeout_s: -1}", "hotline.handshake_timeout_s: Input should be greater"),
        ("{reconnect: maybe}", "hotline.reconnect: Input should be a valid boolean"),
        ("{redial_first_s: 9}", "expected redial_first_s <= redial_max_s (got 9, 5)"),
        ("{reconect: true}", "hotline.reconect: Extra inputs are not permitted"),
    ],
)
def test_a_bad_knob_is_refused_at_its_line(hotline: str, expected: str) -> None:
    text = MINIMAL.replace("network: {loss: 0.2}", f"network: {{loss: 0.2}}\nhotline: {hotline}")
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "bad.yaml")
    assert info.value.line == 8, str(info.value)
    assert expected in str(info.value)
