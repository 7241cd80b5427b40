"""The CoT mapping file: where each event goes, and errors that name the file and line."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from clearline.protocol.messages import AssetKind, Intent, Mission, Position
from clearline.tak import cot
from clearline.tak.mapping import (
    Foreign,
    MappingError,
    Own,
    Withdraw,
    load_mapping,
    parse_mapping,
    route,
)

MAPPING = """\
ignore:
  - uid: "ANDROID-*"
own:
  - type: "a-f-A-*"
    kind: recon_swarm
    mission: reconnaissance
    armed: false
    intent: withdrawing
  - uid: "PRC-SUB-*"
    kind: submarine
    mission: patrol
    armed: true
    share: answers
foreign:
  - type: "a-h-*"
    looks_like: strike_package
    count: 24
  - type: "a-u-*"
"""
NOW = 1_767_225_600_000_000


def event(uid: str = "X-1", type_: str = "a-h-A-M-F", stale_in_s: int = 60) -> cot.CotEvent:
    return cot.CotEvent(
        uid, type_, "m-g", NOW - 1000, NOW - 1000, NOW + stale_in_s * 1_000_000, 24.13, 122.38,
        1400.0, course=95.4, speed=60.2,
    )  # fmt: skip


def test_own_assets_foreign_tracks_and_the_rest() -> None:
    mapping = parse_mapping(MAPPING, "m.yaml")
    own = route(mapping, event("PRC-RS-7", "a-f-A-M-F-Q"), NOW)
    assert isinstance(own, Own)
    assert own.record.asset_id == "PRC-RS-7"
    assert (own.record.kind, own.record.mission, own.record.armed) == (
        AssetKind.RECON_SWARM,
        Mission.RECONNAISSANCE,
        False,
    )
    assert own.record.position == Position(24_130_000, 122_380_000, 1400)
    assert (own.intent, own.share) == (Intent.WITHDRAWING, "telemetry")

    sub = route(mapping, event("PRC-SUB-2", "a-f-S"), NOW)
    assert isinstance(sub, Own)
    assert sub.share == "answers"

    foreign = route(mapping, event("T-0417"), NOW)
    assert isinstance(foreign, Foreign)
    track = foreign.track
    assert (track.track_id, track.looks_like, track.count) == ("T-0417", "strike_package", 24)
    assert (track.heading_deg, track.speed_mps, track.observed_at) == (95, 60, NOW - 1000)

    unknown = route(mapping, event("U-1", "a-u-G"), NOW)
    assert isinstance(unknown, Foreign)
    assert unknown.track.looks_like == AssetKind.UNKNOWN


def test_ignore_wins_and_nothing_unnamed_crosses() -> None:
    mapping = parse_mapping(MAPPING, "m.yaml")
    assert route(mapping, event("ANDROID-1", "a-f-A-M"), NOW) == cot.Skipped(
        "unmapped", "matched an ignore rule"
    )
    skipped = route(mapping, event("Y", "b-m-p-s-m"), NOW)
    assert isinstance(skipped, cot.Skipped)
    assert skipped.reason == "unmapped"


def test_stale_own_assets_are_withdrawn_and_stale_tracks_skipped() -> None:
    mapping = parse_mapping(MAPPING, "m.yaml")
    assert route(mapping, event("PRC-RS-7", "a-f-A-M", stale_in_s=0), NOW) == Withdraw("PRC-RS-7")
    stale = route(mapping, event("T-1", stale_in_s=-5), NOW)
    assert isinstance(stale, cot.Skipped)
    assert stale.reason == "stale"


def test_a_uid_the_hotline_cannot_carry_is_skipped() -> None:
    mapping = parse_mapping(MAPPING, "m.yaml")
    for uid in ("has space", "x" * 65, "é"):
        routed = route(mapping, replace(event(), uid=uid), NOW)
        assert isinstance(routed, cot.Skipped)
        assert routed.reason == "bad-uid"


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("own:\n  - type: a-f-*\n    kind: battleship\n", 3, "own[0].kind"),
        (
            "own:\n  - type: a-f-*\n    kind: submarine\n    mision: patrol\n",
            4,
            "did you mean 'mission'",
        ),
        ("foreign:\n  - looks_like: unknown\n", 2, "needs `type`, `uid` or both"),
        ("foreign:\n  - type: a-h-*\n  - type: 'a h'\n", 3, "foreign[1].type"),
        ("ignore:\n  - uid: a\n    uid: b\n", 3, "appears twice"),
        ("own: [\n", 2, "not valid YAML"),
        ("colour: blue\n", 1, "colour"),
        ("- a\n", 1, "expected a mapping"),
    ],
)
def test_errors_name_the_file_and_line(text: str, line: int, words: str) -> None:
    with pytest.raises(MappingError) as caught:
        parse_mapping(text, "tak.yaml")
    message = str(caught.value)
    assert message.startswith(f"tak.yaml:{line}:"), message
    assert words in message


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match=r"nowhere\.yaml: cannot read the CoT mapping"):
        load_mapping(tmp_path / "nowhere.yaml")
    (tmp_path / "m.yaml").write_text(MAPPING)
    assert len(load_mapping(tmp_path / "m.yaml").own) == 2
