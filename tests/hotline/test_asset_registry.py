"""The node's registry of its own assets keeps the most recently published, within a cap."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearline.doctrine.registry import OwnAsset
from clearline.hotline.endpoint import AssetRegistry
from clearline.protocol.messages import (
    AssetKind,
    AssetRecord,
    AutonomyMode,
    Intent,
    Mission,
    Position,
    TrackReport,
)


def asset(asset_id: str, lat_e6: int = 24_000_000) -> OwnAsset:
    record = AssetRecord(
        asset_id, AssetKind.UNCREWED_AIRCRAFT, Mission.PATROL, False,
        AutonomyMode.AUTONOMOUS, 1, Position(lat_e6, 122_000_000, 900),
    )  # fmt: skip
    return OwnAsset(record, Intent.TRANSITING)


def test_ever_new_ids_never_grow_it_past_its_cap() -> None:
    registry = AssetRegistry(max_assets=100)
    registry.publish_many(asset(f"UAS-{i}") for i in range(10_000))
    assert len(registry.assets) == 100 and registry.evicted == 9_900
    assert list(registry.assets)[:1] == ["UAS-9900"]  # the most recent hundred


def test_an_asset_published_again_is_kept_over_ones_not_heard_from() -> None:
    registry = AssetRegistry(max_assets=3)
    for name in ("A", "B", "C"):
        registry.publish(asset(name))
    registry.publish(asset("A", lat_e6=25_000_000))  # A moves, and is fresh again
    registry.publish(asset("D"))
    assert list(registry.assets) == ["C", "A", "D"] and registry.evicted == 1
    # answers come from where A is now
    track = TrackReport(
        "T-1", Position(25_000_000, 122_000_000, 900), 0, AssetKind.UNCREWED_AIRCRAFT
    )
    found = registry.matcher(0, 25_000)(track)
    assert found is not None and found.record.asset_id == "A"


def test_a_feed_s_records_are_built_only_when_needed_and_then_once() -> None:
    """A feed's run goes into the registry as its records' fixed fields; the grid builds
    the ones still current when the peer asks, and only those."""
    from clearline import feed

    built: list[str] = []

    def build(asset_id: str, fixed: bytes) -> OwnAsset:
        built.append(asset_id)
        return feed.asset_of(asset_id, fixed)

    def fixed(lat_e6: int) -> bytes:
        frame = feed.point_frame(
            "X", AssetKind.UNCREWED_AIRCRAFT, Mission.PATROL, False,
            Position(lat_e6, 122_000_000, 900), at=1, intent=Intent.HOLDING,
        )  # fmt: skip
        return frame[3:-1]  # past the length and type, up to the id

    registry = AssetRegistry(max_assets=3, build=build)
    registry.publish_unbuilt(["A", "B"], [fixed(24_000_000), fixed(30_000_000)])
    registry.publish_unbuilt(["A", "C", "D"], [fixed(25_000_000)] * 3)  # A again; B evicted
    assert list(registry.assets) == ["A", "C", "D"] and registry.evicted == 1
    assert built == []
    track = TrackReport(
        "T-1", Position(25_000_000, 122_000_000, 900), 0, AssetKind.UNCREWED_AIRCRAFT
    )
    found = registry.matcher(0, 25_000)(track)
    assert found is not None and found.record.asset_id in {"A", "C", "D"}
    assert found.intent is Intent.HOLDING and found.record.position == track.position
    assert sorted(built) == ["A", "C", "D"]  # once each; B and the first A never
    assert registry.get("A") is registry.get("A") and sorted(built) == ["A", "C", "D"]
    assert registry.get("B") is None


@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("publish"), st.lists(st.integers(0, 12), max_size=6)),
            st.tuples(st.just("unbuilt"), st.lists(st.integers(0, 12), max_size=6)),
            st.tuples(st.just("again"), st.integers(0, 12)),
            st.tuples(st.just("delete"), st.integers(0, 12)),
            st.tuples(st.just("ask"), st.integers(0, 12)),
        ),
        max_size=40,
    )
)
@settings(max_examples=300, deadline=None)
def test_after_any_publishing_a_question_sees_exactly_the_current_assets(
    steps: list[tuple[str, Any]],
) -> None:
    from clearline import feed

    def fixed(lat_e6: int) -> bytes:
        frame = feed.point_frame(
            "X", AssetKind.UNCREWED_AIRCRAFT, Mission.PATROL, False,
            Position(lat_e6, 122_000_000, 900), at=1,
        )  # fmt: skip
        return frame[3:-1]

    registry = AssetRegistry(max_assets=8, build=feed.asset_of)
    for version, (step, arg) in enumerate(steps):
        if step == "publish":
            registry.publish_many([asset(f"A{i}", 24_000_000 + version) for i in arg])
        elif step == "unbuilt":
            registry.publish_unbuilt(
                [f"A{i}" for i in arg], [fixed(24_000_000 + version)] * len(arg)
            )
        elif step == "again" and (held := registry.get(f"A{arg}")) is not None:
            registry.publish(held)  # the very object it holds
        elif step == "delete":
            registry.assets.pop(f"A{arg}", None)
        elif step == "ask":
            registry.matcher(0, 1_000)
            grid = registry._grid
            assert sorted(grid) == sorted(registry.assets)
            for key in registry.assets:
                assert grid.item(key) is registry.assets[key]
        assert len(registry.assets) <= 8


def test_ids_and_values_of_different_counts_are_refused_and_change_nothing() -> None:
    registry = AssetRegistry(max_assets=8)
    registry.publish(asset("A"))
    with pytest.raises(ValueError, match="one asset an id"):
        registry.publish_unbuilt(["A", "B"], [b"x"])
    assert list(registry.assets) == ["A"]


def test_an_asset_published_again_as_the_same_object_is_the_most_recent_among_equals() -> None:
    a, b = asset("A"), asset("B")  # at the same place: a tie, broken by the older
    track = TrackReport(
        "T-1", Position(24_000_000, 122_000_000, 900), 0, AssetKind.UNCREWED_AIRCRAFT
    )
    for ask_between in (False, True):
        registry = AssetRegistry()
        registry.publish_many([a, b])
        if ask_between:
            registry.matcher(0, 50)
        registry.publish(a)
        found = registry.matcher(0, 50)(track)
        assert found is not None and found.record.asset_id == "B", ask_between
