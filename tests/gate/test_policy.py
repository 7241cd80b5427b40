"""Policy files: the default loads, and each kind of mistake names its line and expectation."""

from __future__ import annotations

import pytest

from clearline.config import default_policy, default_policy_text, load_policy
from clearline.errors import PolicyError
from clearline.gate.policy import DEFAULT_POLICY_NAME, parse_policy


def _edit(old: str, new: str) -> str:
    text = default_policy_text()
    assert old in text, old
    return text.replace(old, new, 1)


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_default_policy_scores_follow_rivera_scale() -> None:
    policy = default_policy()
    scores = {r.name: r.score for r in policy.ladder}
    assert scores["stand-down"] == -2 and scores["monitor"] == 0 and scores["posture"] == 4
    assert scores["disrupt"] == 12 and scores["strike"] == 28 and scores["nuclear"] == 60
    assert policy.exclusions == {"nuclear-c2": 2}


def test_hash_ignores_formatting_but_not_content() -> None:
    base = default_policy()
    reformatted = parse_policy(
        "# a comment\n"
        + _edit(
            "domains: [air, maritime, land, space, cyber, nuclear-c2]",
            "domains:\n  - air\n  - maritime\n  - land\n  - space\n  - cyber\n  - nuclear-c2",
        )
    )
    assert reformatted.hash == base.hash
    changed = parse_policy(_edit("max_escalations: 3", "max_escalations: 4"))
    assert changed.hash != base.hash
    assert len(base.hash) == 32


@pytest.mark.parametrize(
    ("old", "new", "needle", "expected"),
    [
        ("score: 12", "score: high", "score: high", "ladder[3].score"),
        (
            "autonomy_cap: intercept-uncrewed",
            "autonomy_cap: fire-at-will",
            "autonomy_cap",
            "'fire-at-will' is not a rung",
        ),
        (
            "  - domain: nuclear-c2\n",
            "  - domain: space\n",
            "excluded_domains:",
            "'nuclear-c2' must be an excluded domain",
        ),
        (
            "human_authorizations: 2",
            "human_authorizations: 0",
            "human_authorizations",
            "greater than or equal to 1",
        ),
        ("down_cap: posture", "down_cap: strike", "down_cap", "no higher than degraded_cap"),
        (
            "  degraded_cap: disrupt",
            "  degraded_cap: strike",
            "degraded_cap",
            "no higher than autonomy_cap",
        ),
        (
            "window_ms: 60000",
            "window_ms: 60000\n  extra_knob: 1",
            "extra_knob",
            "Extra inputs are not permitted",
        ),
        (
            "  - name: strike\n",
            "  - name: posture\n",
            "- name: posture\n    score: 28",
            "'posture' appears twice",
        ),
    ],
)
def test_errors_name_line_and_expectation(old: str, new: str, needle: str, expected: str) -> None:
    text = _edit(old, new)
    with pytest.raises(PolicyError) as info:
        parse_policy(text, "policy.yaml")
    err = info.value
    assert expected in str(err)
    first = needle.split("\n")[0]
    line = _line_of(text, first)
    if "\n" in needle:  # the duplicate rung: the error points at the second occurrence
        line = [i for i, s in enumerate(text.splitlines(), 1) if first in s][-1]
    assert err.line == line, (err.line, line, str(err))
    assert str(err).startswith(f"policy.yaml:{line}:")


def test_yaml_syntax_error_has_line() -> None:
    with pytest.raises(PolicyError, match=r"p.yaml:3: not valid YAML") as info:
        parse_policy("version: 1\nname: x\n\tladder: []\n", "p.yaml")
    assert info.value.line == 3


def test_missing_file_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PolicyError, match="cannot read the policy file"):
        load_policy(tmp_path / "absent.yaml")


def test_empty_file() -> None:
    with pytest.raises(PolicyError, match="empty"):
        parse_policy("", "p.yaml")


# Finding: "nuclear is only a domain label". Each of these policies loaded before, and the
# first one let the gate allow an autonomous nuclear act in `air` with the link down.
NUCLEAR_CAPS = [
    ("autonomy_cap: intercept-uncrewed", "autonomy_cap: nuclear", "autonomy_cap"),
    ("  degraded_cap: disrupt", "  degraded_cap: nuclear", "degraded_cap"),
    ("  down_cap: posture", "  down_cap: nuclear", "down_cap"),
]


@pytest.mark.parametrize(("old", "new", "key"), NUCLEAR_CAPS)
def test_no_cap_may_reach_an_excluded_rung(old: str, new: str, key: str) -> None:
    text = _edit(old, new)
    with pytest.raises(PolicyError, match="no cap may reach an excluded rung") as info:
        parse_policy(text, "p.yaml")
    assert info.value.line == _line_of(text, key)


def test_all_caps_nuclear_is_refused() -> None:
    text = default_policy_text()
    for old, new, _ in NUCLEAR_CAPS:
        text = text.replace(old, new, 1)
    with pytest.raises(PolicyError, match="no cap may reach an excluded rung"):
        parse_policy(text, "p.yaml")


def test_nuclear_c2_needs_two_officers() -> None:
    text = _edit("human_authorizations: 2", "human_authorizations: 1")
    with pytest.raises(PolicyError, match="two distinct officers") as info:
        parse_policy(text, "p.yaml")
    assert info.value.line == _line_of(text, "human_authorizations")


def test_the_ladder_must_say_which_rungs_are_nuclear() -> None:
    unbound = _edit("    domain: nuclear-c2   #", "    #")
    with pytest.raises(PolicyError, match=r"domain: nuclear-c2 on rung .nuclear."):
        parse_policy(unbound, "p.yaml")
    renamed = unbound.replace("  - name: nuclear\n", "  - name: big-boom\n", 1)
    with pytest.raises(PolicyError, match="the ladder must say which rungs are nuclear"):
        parse_policy(renamed, "p.yaml")


def test_nothing_above_an_excluded_rung_is_open() -> None:
    text = default_policy_text().replace(
        "domains: [air",
        "  - name: beyond\n    score: 90\n    kinetic: true\n\ndomains: [air",
        1,
    )
    with pytest.raises(PolicyError, match="'beyond' is above the excluded rung 'nuclear'"):
        parse_policy(text, "p.yaml")


def test_the_default_marks_nuclear_as_a_nuclear_c2_rung() -> None:
    policy = default_policy()
    assert policy.excluded_rungs == {"nuclear"}
    assert policy.domain_of("nuclear", "air") == "nuclear-c2"
    assert policy.domain_of("strike", "air") == "air"


def test_a_changed_policy_cannot_keep_the_default_name(tmp_path) -> None:  # type: ignore[no-untyped-def]
    changed = tmp_path / "p.yaml"
    changed.write_text(_edit("max_escalations: 3", "max_escalations: 30"))
    with pytest.raises(PolicyError, match=f"keeps its name '{DEFAULT_POLICY_NAME}'") as info:
        load_policy(changed)
    assert info.value.line == _line_of(changed.read_text(), "name:")
    same = tmp_path / "same.yaml"
    same.write_text("# reformatted\n" + default_policy_text())
    assert load_policy(same).hash == default_policy().hash
    renamed = tmp_path / "renamed.yaml"
    renamed.write_text(
        _edit("max_escalations: 3", "max_escalations: 30").replace(
            f"name: {DEFAULT_POLICY_NAME}", "name: theatre-east", 1
        )
    )
    assert load_policy(renamed).name == "theatre-east"


def _with_rung(rung_yaml: str, before: str = "  - name: nuclear\n") -> str:
    text = default_policy_text()
    assert before in text
    return text.replace(before, rung_yaml + before, 1)


def test_a_rung_scoring_like_nuclear_is_nuclear() -> None:
    """A 'tactical' nuclear rung below `nuclear`, unbound, with the cap on it, used to load."""
    text = _with_rung(
        "  - name: nuclear-strike\n    score: 60\n    kinetic: true\n",
    ).replace("autonomy_cap: intercept-uncrewed", "autonomy_cap: nuclear-strike")
    with pytest.raises(PolicyError, match="a rung whose name says nuclear is a nuclear act"):
        parse_policy(text, "p.yaml")
    renamed = _with_rung("  - name: big-one\n    score: 60\n    kinetic: true\n")
    with pytest.raises(PolicyError, match="as much as the excluded rung 'nuclear'"):
        parse_policy(renamed, "p.yaml")


def test_a_nuclear_rung_renamed_and_bound_elsewhere_is_refused() -> None:
    text = default_policy_text().replace("  - name: nuclear\n", "  - name: nuke\n", 1)
    text = text.replace("domain: nuclear-c2   #", "domain: air   #")
    with pytest.raises(PolicyError, match="rung 'nuke'"):
        parse_policy(text, "p.yaml")


def test_a_kinetic_rung_cannot_pass_for_standing_down() -> None:
    zero = _edit(
        "    score: 28\n    kinetic: true\n    description: destroy crewed",
        "    score: 0\n    kinetic: true\n    description: destroy crewed",
    )
    with pytest.raises(PolicyError, match="is kinetic, so it escalates"):
        parse_policy(zero, "p.yaml")
    unordered = _edit("score: 12", "score: 2")
    with pytest.raises(PolicyError, match="the ladder is ordered"):
        parse_policy(unordered, "p.yaml")


def test_a_hidden_second_value_is_refused_not_taken() -> None:
    text = _edit("autonomy_cap: intercept-uncrewed", "autonomy_cap: posture")
    text += "autonomy_cap: strike\n"
    with pytest.raises(PolicyError, match="'autonomy_cap' appears twice") as info:
        parse_policy(text, "p.yaml")
    assert info.value.line == len(text.splitlines())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "version: 1\na: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a]\n"
            "c: [*b, *b, *b, *b, *b, *b, *b, *b]\n",
            "anchors and aliases",
        ),
        ("version: 1\nname: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than"),
        ("version: 1\nladder: " + "[" * 40 + "]" * 40 + "\n", "nested more than"),
        ("base: &b {version: 1}\n<<: *b\n", "merge keys"),
    ],
)
def test_yaml_that_only_an_attacker_writes_is_refused_quickly(text: str, expected: str) -> None:
    with pytest.raises(PolicyError, match=expected):
        parse_policy(text, "p.yaml")


def test_a_file_that_is_not_utf8_is_a_located_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "p.yaml"
    path.write_bytes(default_policy_text().encode() + b"# caf\xe9\n")
    with pytest.raises(PolicyError, match=r"not UTF-8 text \(byte \d+") as info:
        load_policy(path)
    assert info.value.line == len(default_policy_text().splitlines()) + 1
