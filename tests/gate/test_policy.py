"""Policy files: the default loads, and each kind of mistake names its line and expectation."""

from __future__ import annotations

import pytest

from clearline.config import default_policy, default_policy_text, load_policy
from clearline.errors import PolicyError
from clearline.gate.policy import parse_policy


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
            "  degraded_cap: nuclear",
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
