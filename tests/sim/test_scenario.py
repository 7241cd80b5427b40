"""Scenario files: every shipped one loads; bad ones fail with file:line and the expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

from clearline.errors import ScenarioError
from clearline.sim import ARMS, run
from clearline.sim.scenario import json_schema, load_scenario, parse_scenario, shipped_scenarios
from clearline.sim.sweep import cell_scenario
from tests.doctrine.ladders import ladder_policy_text

DOCS = Path(__file__).resolve().parents[2] / "docs"

MINIMAL = """\
version: 2
name: tiny
title: Tiny
sides:
  US: {}
  PRC: {}
assets:
  - id: A1
    owner: PRC
    kind: recon_swarm
    mission: reconnaissance
    position: [24.0, 122.0, 1000]
"""


REQUIRED = {
    "recon-swarm",
    "swarm",
    "early-warning-1983",
    "link-loss",
    "deceptive-cover",
    "third-party-spoofing",
    "mq9-collision",
}
EXERCISED = {
    "early-warning-1983": ("excluded_attempts", {"gate", "hotline+gate"}),
    "third-party-spoofing": ("forged_injected", {"hotline", "hotline+gate"}),
}
"""Where the promises below are put to the test: what happens, and in which arms."""


@pytest.mark.parametrize("name", sorted(REQUIRED | set(shipped_scenarios())))
def test_no_scenario_lets_autonomy_into_an_excluded_domain_or_a_forgery_through(
    name: str, tmp_path: Path
) -> None:
    """Each required scenario ships and runs in every arm; in none of them, episode by
    episode, does the gate allow an excluded domain or a node accept a forged message."""
    assert name in shipped_scenarios(), f"the required scenario {name} is not shipped"
    loaded = load_scenario(name)
    assert loaded.scenario.name == name
    episodes = run(loaded, episodes=12, seed=20261127, executor="serial", out=tmp_path).episodes()
    assert sorted(set(episodes["arm"])) == sorted(arm.value for arm in ARMS)
    assert len(episodes) == 12 * len(ARMS)
    allowed = episodes[episodes["excluded_allowed"] > 0]
    assert allowed.empty, f"excluded domain allowed in {allowed[['arm', 'episode']].values}"
    forged = episodes[episodes["forged_accepted"] > 0]
    assert forged.empty, f"forged message accepted in {forged[['arm', 'episode']].values}"
    if name in EXERCISED:
        column, arms = EXERCISED[name]
        for arm in arms:
            assert episodes[episodes["arm"] == arm][column].sum() > 0, f"no {column} in {arm}"


def test_minimal_scenario_takes_documented_defaults() -> None:
    loaded = parse_scenario(MINIMAL, "tiny.yaml")
    scenario = loaded.scenario
    assert scenario.network.one_way_ms == 55.0
    assert scenario.sides["US"].doctrine.query_ttl_s == 2.0
    assert scenario.horizon_s == 1800.0


@pytest.mark.parametrize(
    ("change", "line", "expected"),
    [
        (("kind: recon_swarm", "kind: balloon"), 10, "assets[0].kind"),
        (("owner: PRC", "owner: ROK"), 9, "not one of the sides"),
        (("  PRC: {}", "  PRC: {colour: red}"), 6, "Extra inputs are not permitted"),
        (("position: [24.0, 122.0, 1000]", "position: [24.0, 122.0]"), 12, "position"),
        (("title: Tiny", "title: Tiny\nhorizon_s: -5"), 4, "greater than 0"),
    ],
)
def test_errors_name_file_line_and_expectation(
    change: tuple[str, str], line: int, expected: str
) -> None:
    text = MINIMAL.replace(*change)
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "bad.yaml")
    assert info.value.source == "bad.yaml"
    assert info.value.line == line, str(info.value)
    assert expected in str(info.value)


SWARM_AT = "position: [24.0, 122.0, 1000]"


@pytest.mark.parametrize(
    ("swarm", "line", "expected"),
    [
        ("    swarm: {elements: 300}", 0, None),
        ("    swarm: {elements: 0}", 13, "assets[0].swarm.elements: Input should be greater than"),
        ("    swarm:\n      elements: 8193", 14, "assets[0].swarm.elements: Input should be less"),
        (
            "    swarm:\n      spread_m: 500",
            13,
            "assets[0].swarm.elements: Field required; expected a whole number at least 1 and "
            "at most 8192",
        ),
        ("    swarm: {elements: many}", 13, "assets[0].swarm.elements: Input should be a valid"),
        ("    swarm: {elements: 2.5}", 13, "assets[0].swarm.elements"),
    ],
)
def test_a_swarm_states_its_element_count_and_a_bad_one_is_located(
    swarm: str, line: int, expected: str | None
) -> None:
    text = MINIMAL.replace(SWARM_AT, f"{SWARM_AT}\n{swarm}")
    if expected is None:
        asset = parse_scenario(text, "swarm.yaml").scenario.assets[0]
        assert asset.swarm is not None and asset.swarm.elements == 300
        assert asset.element_ids()[0] == "A1.001" and asset.element_ids()[-1] == "A1.300"
        return
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "swarm.yaml")
    assert (info.value.source, info.value.line) == ("swarm.yaml", line), str(info.value)
    assert expected in str(info.value)


def test_a_swarm_element_may_not_share_an_id_and_its_track_id_must_fit() -> None:
    twice = MINIMAL.replace(SWARM_AT, f"{SWARM_AT}\n    swarm: {{elements: 12}}") + (
        "  - id: A1.07\n    owner: PRC\n    kind: recon_swarm\n    mission: reconnaissance\n"
        "    position: [24.0, 122.0, 1000]\n"
    )
    with pytest.raises(ScenarioError, match=r"'A1\.07' is an element of swarm 'A1'") as info:
        parse_scenario(twice, "swarm.yaml")
    assert info.value.line == 14
    long_id = "S" * 60
    too_long = MINIMAL.replace("id: A1", f"id: {long_id}").replace(
        SWARM_AT, f"{SWARM_AT}\n    swarm: {{elements: 1000}}"
    )
    with pytest.raises(ScenarioError, match="would exceed 64 characters") as info:
        parse_scenario(too_long, "swarm.yaml")
    assert info.value.line == 8


def test_confusion_rows_may_not_sum_above_one() -> None:
    text = MINIMAL.replace(
        "  US: {}",
        "  US:\n    model:\n      confusion:\n"
        "        recon_swarm: {strike_package: 0.7, unknown: 0.5}",
    )
    with pytest.raises(ScenarioError, match="sums to more than 1"):
        parse_scenario(text, "bad.yaml")


def test_unknown_scenario_name_lists_the_shipped_ones() -> None:
    with pytest.raises(ScenarioError, match="recon-swarm"):
        load_scenario("no-such-scenario")


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "absent.yaml")


def test_published_json_schema_is_current() -> None:
    assert (DOCS / "scenario.schema.json").read_text() == json_schema(), (
        "docs/scenario.schema.json is stale: clearline sim schema > docs/scenario.schema.json"
    )


def test_an_unknown_yaml_tag_is_a_located_error_not_a_crash() -> None:
    # Found by fuzzing: PyYAML raises its own ConstructorError while building the value.
    with pytest.raises(ScenarioError, match="not valid YAML") as info:
        parse_scenario(MINIMAL.replace("title: Tiny", "title: !0 Tiny"), "bad.yaml")
    assert info.value.line == 3


def _with_us_doctrine(doctrine: str) -> str:
    return MINIMAL.replace("  US: {}", "  US:\n    doctrine:\n" + doctrine)


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_a_threshold_naming_no_rung_is_refused_at_its_line() -> None:
    text = _with_us_doctrine("      thresholds:\n        posture: 0.3\n        intercep: 0.7\n")
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "scenario.yaml")
    assert info.value.source == "scenario.yaml"
    assert info.value.line == _line_of(text, "intercep:")
    assert info.value.detail == (
        "sides.US.doctrine.thresholds.intercep: 'intercep' is not a rung of policy "
        "clearline-default (rungs: stand-down, monitor, posture, disrupt, intercept-uncrewed, "
        "strike, nuclear)"
    )


def test_the_old_threshold_keys_keep_their_meaning() -> None:
    text = _with_us_doctrine("      thresholds: {posture: 0.2, intercept: 0.6}\n")
    loaded = parse_scenario(text, "scenario.yaml")
    minimums = loaded.scenario.sides["US"].doctrine.minimums(loaded.policy)
    assert minimums == {"posture": 0.2, "disrupt": 0.5, "intercept-uncrewed": 0.6, "nuclear": 0.9}
    assert loaded.scenario.sides["PRC"].doctrine.minimums(loaded.policy) == {
        "posture": 0.3,
        "disrupt": 0.5,
        "intercept-uncrewed": 0.7,
        "nuclear": 0.9,
    }
    both = _with_us_doctrine("      thresholds: {intercept: 0.6, intercept-uncrewed: 0.6}\n")
    with pytest.raises(ScenarioError, match="'intercept' and 'intercept-uncrewed' name the same"):
        parse_scenario(both, "scenario.yaml")


def test_thresholds_out_of_ladder_order_are_refused_with_the_defaults_they_meet() -> None:
    text = _with_us_doctrine("      thresholds:\n        posture: 0.6\n")
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "scenario.yaml")
    assert info.value.line == _line_of(text, "thresholds:")
    assert "'disrupt' from 0.5 is below 'posture' from 0.6" in info.value.detail
    assert "keeps its default threshold" in info.value.detail


def test_a_renamed_ladder_needs_its_rungs_named_in_the_scenario(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(ladder_policy_text("renamed"))
    renamed = MINIMAL.replace("title: Tiny", "title: Tiny\npolicy: policy.yaml")
    with pytest.raises(ScenarioError, match="counter_ceiling: expected a rung"):
        parse_scenario(renamed, "scenario.yaml", tmp_path)
    doctrine = "    doctrine: {counter_ceiling: destroy, hostile_from: jam%s}"
    text = renamed.replace("  US: {}", "  US:\n" + doctrine % "").replace(
        "  PRC: {}", "  PRC:\n" + doctrine % ""
    )
    with pytest.raises(ScenarioError, match="expected a threshold for 'last-resort'"):
        parse_scenario(text, "scenario.yaml", tmp_path)
    thresholds = ", thresholds: {shadow: 0.3, last-resort: 0.9}"
    text = renamed.replace("  US: {}", "  US:\n" + doctrine % thresholds).replace(
        "  PRC: {}", "  PRC:\n" + doctrine % thresholds
    )
    loaded = parse_scenario(text, "scenario.yaml", tmp_path)
    minimums = loaded.scenario.sides["US"].doctrine.minimums(loaded.policy)
    assert minimums == {"shadow": 0.3, "last-resort": 0.9}


def test_a_sweep_cell_is_checked_against_the_policy_as_a_file_is() -> None:
    base = parse_scenario(MINIMAL, "tiny.yaml")
    with pytest.raises(ScenarioError, match=r"sweep cell .*'intercep' is not a rung of policy"):
        cell_scenario(base, {"sides.US.doctrine.thresholds.intercep": 0.6})
    with pytest.raises(ScenarioError, match=r"sweep cell .*'disrupt' from 0\.5 is below"):
        cell_scenario(base, {"sides.US.doctrine.thresholds.posture": 0.6})
    cell = cell_scenario(base, {"sides.US.doctrine.thresholds.intercept": 0.6})
    assert cell.scenario.sides["US"].doctrine.minimums(cell.policy)["intercept-uncrewed"] == 0.6


def test_a_sweep_into_a_default_changes_that_setting_and_keeps_the_defaults_others() -> None:
    """The analog call's default connect delay has sigma 1; sweeping its median keeps it."""
    base = parse_scenario(MINIMAL, "tiny.yaml")
    cell = cell_scenario(base, {"sides.US.analog.connect.median_s": 600})
    connect = cell.scenario.sides["US"].analog.connect
    assert (connect.median_s, connect.sigma) == (600.0, 1.0)
    assert cell.scenario.sides["PRC"].analog.connect == base.scenario.sides["PRC"].analog.connect


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "version: 2\nname: t\ntitle: T\nhorizon: 5\nsides: {US: {}, PRC: {}}\n",
            "t.yaml:4: horizon: Extra inputs are not permitted (got 5); did you mean 'horizon_s'? "
            "Expected one of: accidents, assets,",
        ),
        (
            "version: 2\nname: t\ntitle: T\nsides:\n  US:\n    analog: {answer_probabilty: 0.5}\n"
            "  PRC: {}\n",
            "t.yaml:6: sides.US.analog.answer_probabilty: Extra inputs are not permitted "
            "(got 0.5); did you mean 'answer_probability'? Expected one of: answer_probability, "
            "connect",
        ),
        (
            "version: 2\nname: t\ntitle: T\nsides:\n  US:\n    human:\n"
            "      decision: {type: fixed, value: 3}\n  PRC: {}\n",
            "t.yaml:7: sides.US.human.decision.value: Extra inputs are not permitted (got 3); "
            "did you mean 'value_s'? Expected one of: type, value_s",
        ),
        (
            "version: 2\nname: t\ntitle: T\nsides: {US: {}, PRC: {}}\nzzz: 1\n",
            "t.yaml:5: zzz: Extra inputs are not permitted (got 1); expected one of: accidents,",
        ),
    ],
)
def test_an_unknown_setting_names_the_closest_known_one(text: str, expected: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "t.yaml")
    assert expected in str(caught.value)
