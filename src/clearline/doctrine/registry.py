"""A side's register of its own assets, and matching a counterpart's observed track against it."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

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


T = TypeVar("T")


def _place(record: AssetRecord) -> tuple[Position, float]:
    """Where an asset is, and the radius around it that it may be anywhere in."""
    if record.area is not None:
        return record.area.center, float(record.area.radius_m)
    assert record.position is not None
    return record.position, 0.0


def match(
    track: TrackReport, assets: list[OwnAsset], tolerance_m: float = 25_000
) -> OwnAsset | None:
    """The nearest own asset that could be the observed track, if any is close enough."""
    best: tuple[float, OwnAsset] | None = None
    for asset in assets:
        where, radius = _place(asset.record)
        gap = distance_m(track.position, where) - radius
        if gap <= tolerance_m and (best is None or gap < best[0]):
            best = (gap, asset)
    return best[1] if best else None


class Nearest(Generic[T]):
    """`match` against one list of places for many tracks, choosing the same one: the
    nearest within the tolerance, the first listed among equals. A place is a position,
    the radius of the area around it (0 for a point) and what is found there (an
    `OwnAsset`, built by `of_assets`, or whatever the caller needs to build one only for
    what is found).

    A swarm's query names hundreds of tracks and its owner's registry holds every element,
    so measuring each track against each asset is quadratic. Here the places are sorted by
    latitude once, and each track walks outward from its own latitude until the latitude
    difference alone puts every further place out of reach: no great circle between two
    points is shorter than the arc of their latitude difference.
    """

    __slots__ = ("_lats", "_places", "_reach", "_tolerance")

    SLACK_M = 1.0
    """Kept in reach beyond the bound, for rounding: the bound then never skips a place
    that `match` would measure as the nearest."""

    def __init__(
        self, places: Iterable[tuple[Position, float, T]], tolerance_m: float = 25_000
    ) -> None:
        rows: list[tuple[float, int, float, float, float, float, T]] = []
        widest = 0.0
        for i, (where, radius, item) in enumerate(places):
            lat = math.radians(where.lat_e6 / 1e6)
            lon = math.radians(where.lon_e6 / 1e6)
            rows.append((lat, i, lon, math.cos(lat), radius, EARTH_RADIUS_M * lat, item))
            widest = max(widest, radius)
        rows.sort(key=lambda row: (row[0], row[1]))
        self._places = rows
        self._lats = [row[5] for row in rows]
        self._tolerance = tolerance_m
        self._reach = widest + self.SLACK_M
        """How far past the best gap so far a place may still lie, measured in latitude."""

    @staticmethod
    def of_assets(assets: Iterable[OwnAsset], tolerance_m: float = 25_000) -> Nearest[OwnAsset]:
        return Nearest(((*_place(asset.record), asset) for asset in assets), tolerance_m)

    def __call__(self, track: TrackReport) -> T | None:
        rows, tolerance = self._places, self._tolerance
        lat1 = math.radians(track.position.lat_e6 / 1e6)
        lon1 = math.radians(track.position.lon_e6 / 1e6)
        cos1 = math.cos(lat1)
        y = EARTH_RADIUS_M * lat1
        best: tuple[float, int, T] | None = None
        start = bisect.bisect_left(self._lats, y)
        for indices in (range(start, len(rows)), range(start - 1, -1, -1)):
            for k in indices:
                lat2, i, lon2, cos2, radius, y2, item = rows[k]
                limit = tolerance if best is None else min(tolerance, best[0])
                if abs(y2 - y) > limit + self._reach:
                    break
                h = (
                    math.sin((lat2 - lat1) / 2) ** 2
                    + cos1 * cos2 * math.sin((lon2 - lon1) / 2) ** 2
                )
                gap = 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h))) - radius
                if gap <= tolerance and (best is None or (gap, i) < best[:2]):
                    best = (gap, i, item)
        return best[2] if best is not None else None


def truthful_answer(query_seq: int, asset: OwnAsset | None) -> Answer:
    if asset is None:
        return Answer(query_seq, Claim.NOT_OURS)
    r = asset.record
    return Answer(query_seq, Claim.OURS, r.mission, r.armed, asset.intent, r.position, r.asset_id)


@dataclass(frozen=True, slots=True)
class Disclosure:
    """What a side reveals about its own assets when the peer asks, without a human."""

    reveal_mission: bool = True
    reveal_armed: bool = True
    reveal_intent: bool = True
    reveal_identity: bool = True
    position_precision_m: int = 1000
    match_tolerance_m: int = 25_000


MICRODEGREES_PER_METRE = 1 / 0.111
"""One micro-degree of latitude is about 0.111 m."""


def disclosed_answer(
    query_seq: int, track: TrackReport, assets: list[OwnAsset], disclosure: Disclosure
) -> tuple[Answer, OwnAsset | None]:
    """The answer to a query from one's own registry, revealing only what `disclosure`
    allows (and the asset it matched, for whoever needs to know the truth behind it)."""
    found = match(track, assets, disclosure.match_tolerance_m)
    return disclose(truthful_answer(query_seq, found), disclosure), found


def disclose(answer: Answer, disclosure: Disclosure) -> Answer:
    """`answer` with what `disclosure` withholds removed and its position coarsened."""
    position = answer.position
    if position is not None and disclosure.position_precision_m > 0:
        step = max(1, round(disclosure.position_precision_m * MICRODEGREES_PER_METRE))
        # Rounded onto the grid, then kept on the globe: near a pole or the antimeridian
        # the nearest grid line can lie past it, and the answer must still encode.
        lat, lon = Position.LAT, Position.LON
        position = Position(
            min(max(round(position.lat_e6 / step) * step, lat.low), lat.high),
            min(max(round(position.lon_e6 / step) * step, lon.low), lon.high),
            position.alt_m,
        )
    return Answer(
        answer.query_seq,
        answer.claim,
        answer.mission if disclosure.reveal_mission else None,
        answer.armed if disclosure.reveal_armed else None,
        answer.intent if disclosure.reveal_intent else None,
        position,
        answer.asset_id if disclosure.reveal_identity else None,
    )
