"""The node's registry of its own assets keeps the most recently published, within a cap."""

from __future__ import annotations

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
