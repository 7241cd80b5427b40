"""A side's register of its own assets, and matching a counterpart's observed track against it."""

from __future__ import annotations

import math
from dataclasses import dataclass

from clearline.protocol.messages import Answer, AssetRecord, Claim, Intent, Position, TrackReport

EARTH_RADIUS_M = 6_371_000.0


def distance_m(a: Position, b: Position) -> float:
    """Great-circle distance (haversine) between two positions."""
    lat1, lon1 = math.radians(a.lat_e6 / 1e6), math.radians(a.lon_e6 / 1e6)
    lat2, lon2 = math.radians(b.lat_e6 / 1e6), math.radians(b.lon_e6 / 1e6)
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True, slots=True)
class OwnAsset:
    record: AssetRecord
    intent: Intent


def match(
    track: TrackReport, assets: list[OwnAsset], tolerance_m: float = 25_000
) -> OwnAsset | None:
    """The nearest own asset that could be the observed track, if any is close enough."""
    best: tuple[float, OwnAsset] | None = None
    for asset in assets:
        record = asset.record
        if record.area is not None:
            gap = distance_m(track.position, record.area.center) - record.area.radius_m
        else:
            assert record.position is not None
            gap = distance_m(track.position, record.position)
        if gap <= tolerance_m and (best is None or gap < best[0]):
            best = (gap, asset)
    return best[1] if best else None


def truthful_answer(query_seq: int, asset: OwnAsset | None) -> Answer:
    if asset is None:
        return Answer(query_seq, Claim.NOT_OURS)
    r = asset.record
    return Answer(query_seq, Claim.OURS, r.mission, r.armed, asset.intent, r.position, r.asset_id)
