"""A side's register of its own assets, and matching a counterpart's observed track against it."""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Iterator
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


def place_of(record: AssetRecord) -> tuple[Position, float]:
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
        where, radius = place_of(asset.record)
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
        return Nearest(((*place_of(asset.record), asset) for asset in assets), tolerance_m)

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


K = TypeVar("K")

CELL_E6 = 250_000
"""A grid cell's side in micro-degrees (0.25 degree: about 28 km of latitude)."""
_CELLS_ROUND = 360_000_000 // CELL_E6
_EARTH_ARC_M = math.pi * EARTH_RADIUS_M
_CELL_SLACK = 0
"""Cells looked at beyond the bound on each side (the bound's own metre of slack covers
rounding; the tests hold the grid to the linear search)."""


class PlaceGrid(Generic[K, T]):
    """Places in cells of 0.25 by 0.25 degree, put and removed one at a time: the nearest
    to a track within a tolerance, chosen as `match` chooses (the smallest gap, then the
    one put longest ago), looking only at the cells within reach.

    `Nearest` sorts every place once and answers many tracks; a node's registry changes
    with every record its systems publish, tens of thousands a second, while the peer may
    ask at any moment, so an index sorted per question would cost each question the whole
    registry. Here a put costs a few dictionary operations and a question the cells around
    the track. The bound is the haversine's: sin^2(d/2R) >= cos(lat1) cos(lat2) sin^2(dlon/2)
    and d >= R |dlat|, so no place outside the cells looked at can be within reach; near a
    pole, where the longitudes in reach are all of them, every place is looked at."""

    __slots__ = ("_cells", "_put", "_where", "_widest")

    def __init__(self) -> None:
        self._cells: dict[tuple[int, int], dict[K, tuple[int, Position, float, T]]] = {}
        self._where: dict[K, tuple[int, int]] = {}
        self._widest = 0.0
        """The widest radius ever put: never lowered, which keeps the bound safe."""
        self._put = 0

    def __len__(self) -> int:
        return len(self._where)

    def __iter__(self) -> Iterator[K]:
        return iter(self._where)

    @staticmethod
    def _cell(where: Position) -> tuple[int, int]:
        lon = where.lon_e6 // CELL_E6
        return where.lat_e6 // CELL_E6, (lon + _CELLS_ROUND // 2) % _CELLS_ROUND

    def item(self, key: K) -> T | None:
        """What was last put as `key`, if it is here."""
        cell = self._where.get(key)
        return None if cell is None else self._cells[cell][key][3]

    def put(self, key: K, where: Position, radius_m: float, item: T) -> None:
        """Place `item` (the latest for `key`) at `where`, within `radius_m` of it."""
        cell = self._cell(where)
        old = self._where.get(key)
        if old is not None and old != cell:
            self._drop(key, old)
        self._cells.setdefault(cell, {})[key] = (self._put, where, radius_m, item)
        self._where[key] = cell
        self._put += 1
        self._widest = max(self._widest, radius_m)

    def remove(self, key: K) -> None:
        cell = self._where.pop(key, None)
        if cell is not None:
            self._drop(key, cell)

    def remove_many(self, keys: Iterable[K]) -> None:
        where = self._where
        for key in filter(where.__contains__, keys):
            self._drop(key, where.pop(key))

    def _drop(self, key: K, cell: tuple[int, int]) -> None:
        bucket = self._cells[cell]
        del bucket[key]
        if not bucket:
            del self._cells[cell]

    def matcher(
        self, tolerance_m: float, keep: Callable[[T], bool] | None = None
    ) -> Callable[[TrackReport], T | None]:
        """Matches tracks as `match` would against the items `keep` accepts. The places in
        reach of a track are indexed (`Nearest`, in the order they were put) once for all
        the tracks whose reach covers the same cells: a swarm's elements share a few."""
        reach = tolerance_m + self._widest + Nearest.SLACK_M
        cells = self._cells
        indexes: dict[tuple[tuple[int, int], ...], Nearest[T]] = {}
        # The last index built and the cells it covers: a track whose cells it covers is
        # answered from it (places beyond a track's reach are never chosen), and one whose
        # cells overlap it gets an index of both, so a swarm that straddles a cell's edge
        # is indexed once or twice, not once for each way its tracks fall on the edges.
        last: list[tuple[frozenset[tuple[int, int]], Nearest[T]]] = []

        def build(covered: frozenset[tuple[int, int]]) -> Nearest[T]:
            entries = sorted((e for cell in covered for e in cells[cell].values()), key=_first)
            return Nearest(
                (
                    (where, radius, item)
                    for _, where, radius, item in entries
                    if keep is None or keep(item)
                ),
                tolerance_m,
            )

        def find(track: TrackReport) -> T | None:
            key = self._in_reach(track.position, reach)
            index = indexes.get(key)
            if index is None:
                needed = frozenset(key)
                if last and needed <= last[0][0]:
                    index = last[0][1]
                else:
                    covered = needed | last[0][0] if last and needed & last[0][0] else needed
                    index = build(covered)
                    last[:] = [(covered, index)]
                indexes[key] = index
            return index(track)

        return find

    def nearest(
        self, track: TrackReport, tolerance_m: float, keep: Callable[[T], bool] | None = None
    ) -> T | None:
        """The item `match` would choose among those `keep` accepts, if any is in reach."""
        return self.matcher(tolerance_m, keep)(track)

    def _in_reach(self, track: Position, reach: float) -> tuple[tuple[int, int], ...]:
        """The cells holding places that may lie within `reach` of `track`."""
        cells = self._cells
        if reach >= _EARTH_ARC_M / 2:
            return tuple(cells)
        span_e6 = math.degrees(reach / EARTH_RADIUS_M) * 1e6
        low = max(-90_000_000, track.lat_e6 - span_e6)
        high = min(90_000_000, track.lat_e6 + span_e6)
        rows = range(int(low // CELL_E6) - _CELL_SLACK, int(high // CELL_E6) + _CELL_SLACK + 1)
        widest_lat = math.radians(max(abs(low), abs(high)) / 1e6)
        cosines = math.cos(math.radians(track.lat_e6 / 1e6)) * math.cos(widest_lat)
        bound = math.sin(reach / (2 * EARTH_RADIUS_M)) / math.sqrt(max(cosines, 0.0) or 1e-300)
        if bound >= 1:
            return tuple(cell for cell in cells if cell[0] in rows)
        lon_span = math.degrees(2 * math.asin(bound)) * 1e6
        _, centre = self._cell(track)
        width = int(lon_span // CELL_E6) + 1 + _CELL_SLACK
        if 2 * width + 1 >= _CELLS_ROUND:
            return tuple(cell for cell in cells if cell[0] in rows)
        columns = sorted({(centre + k) % _CELLS_ROUND for k in range(-width, width + 1)})
        if len(rows) * len(columns) > len(cells):  # fewer cells held than in reach
            wanted = set(columns)
            return tuple(sorted(c for c in cells if c[0] in rows and c[1] in wanted))
        return tuple((r, c) for r in rows for c in columns if (r, c) in cells)


def _first(entry: tuple[int, Position, float, object]) -> int:
    return entry[0]


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
