"""Matching a peer's track against one's own registry: the indexed search a swarm's query
uses chooses what the plain nearest-asset search chooses, asset for asset."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from clearline.doctrine.registry import (
    Disclosure,
    Nearest,
    OwnAsset,
    PlaceGrid,
    disclose,
    match,
    place_of,
    truthful_answer,
)
from clearline.protocol.codec import encode_payload
from clearline.protocol.messages import (
    Area,
    AssetKind,
    AssetRecord,
    AutonomyMode,
    Intent,
    Message,
    Mission,
    Position,
    TrackReport,
)

TOLERANCE_M = 25_000


def _asset(i: int, where: Position, radius_m: int | None) -> OwnAsset:
    common = (f"A{i}", AssetKind.RECON_SWARM, Mission.RECONNAISSANCE, False)
    if radius_m is None:
        record = AssetRecord(*common, AutonomyMode.AUTONOMOUS, 0, position=where)
    else:
        record = AssetRecord(*common, AutonomyMode.AUTONOMOUS, 0, area=Area(where, radius_m))
    return OwnAsset(record, Intent.HOLDING)


@st.composite
def scenes(draw: st.DrawFn) -> tuple[list[OwnAsset], list[TrackReport]]:
    """Assets and tracks clustered around one place (anywhere, poles and the date line
    included), at a scale from metres to degrees, with repeated positions for ties."""
    lat0 = draw(st.integers(-90_000_000, 90_000_000))
    lon0 = draw(st.integers(-180_000_000, 180_000_000))
    scale = draw(st.sampled_from([10, 1_000, 50_000, 300_000, 2_000_000]))

    def near() -> Position:
        lat = lat0 + draw(st.integers(-scale, scale))
        lon = lon0 + draw(st.integers(-scale, scale))
        return Position(
            max(-90_000_000, min(90_000_000, lat)),
            ((lon + 180_000_000) % 360_000_000) - 180_000_000,
            0,
        )

    places = [near() for _ in range(draw(st.integers(1, 6)))]
    assets = []
    for i in range(draw(st.integers(0, 30))):
        where = draw(st.sampled_from(places)) if draw(st.booleans()) else near()
        radius = draw(st.none() | st.integers(0, 40_000))
        assets.append(_asset(i, where, radius))
    tracks = [
        TrackReport(
            f"T{k}",
            draw(st.sampled_from(places)) if draw(st.booleans()) else near(),
            0,
            AssetKind.UNKNOWN,
        )
        for k in range(draw(st.integers(1, 8)))
    ]
    return assets, tracks


@settings(max_examples=400, deadline=None)
@given(scenes())
def test_the_index_chooses_what_the_linear_search_chooses(
    scene: tuple[list[OwnAsset], list[TrackReport]],
) -> None:
    assets, tracks = scene
    nearest = Nearest.of_assets(assets, TOLERANCE_M)
    for track in tracks:
        assert nearest(track) is match(track, assets, TOLERANCE_M)


def test_a_swarm_of_elements_a_few_hundred_metres_apart() -> None:
    """The case the index is for: each element's track, seen 100 m off, finds that element."""
    elements = [
        _asset(i, Position(24_100_000 + 3_000 * (i // 20), 122_400_000 + 3_000 * (i % 20), 0), None)
        for i in range(300)
    ]
    nearest = Nearest.of_assets(elements, TOLERANCE_M)
    for i, element in enumerate(elements):
        assert element.record.position is not None
        seen = Position(element.record.position.lat_e6 + 900, element.record.position.lon_e6, 0)
        track = TrackReport(f"T{i}", seen, 0, AssetKind.RECON_SWARM)
        assert nearest(track) is element is match(track, elements, TOLERANCE_M)
    far = TrackReport("far", Position(26_000_000, 122_400_000, 0), 0, AssetKind.RECON_SWARM)
    assert nearest(far) is None


@settings(max_examples=300, deadline=None)
@given(
    lat=st.integers(Position.LAT.low, Position.LAT.high),
    lon=st.integers(Position.LON.low, Position.LON.high),
    precision_m=st.integers(0, 100_000),
)
def test_a_disclosed_position_stays_on_the_globe(lat: int, lon: int, precision_m: int) -> None:
    """Rounded to the disclosure's grid near a pole or the antimeridian, an answer's position
    must still be one the protocol can carry (one that was not, dropped the link)."""
    answer = truthful_answer(7, _asset(1, Position(lat, lon, 100), None))
    shown = disclose(answer, Disclosure(position_precision_m=precision_m))
    assert shown.position is not None
    assert Position.LAT.low <= shown.position.lat_e6 <= Position.LAT.high
    assert Position.LON.low <= shown.position.lon_e6 <= Position.LON.high
    assert encode_payload(Message("PRC", b"\x01" * 16, 3, 1, shown))


def test_the_antimeridian_case_that_was_found() -> None:
    answer = truthful_answer(7, _asset(1, Position(10_000_000, 179_999_990, 100), None))
    shown = disclose(answer, Disclosure(position_precision_m=500))
    assert shown.position is not None and shown.position.lon_e6 == Position.LON.high


def _grid_of(assets: list[OwnAsset]) -> PlaceGrid[str, OwnAsset]:
    grid: PlaceGrid[str, OwnAsset] = PlaceGrid()
    for asset in assets:
        where, radius = place_of(asset.record)
        grid.put(asset.record.asset_id, where, radius, asset)
    return grid


@settings(max_examples=400, deadline=None)
@given(scenes())
def test_the_grid_chooses_what_the_linear_search_chooses(
    scene: tuple[list[OwnAsset], list[TrackReport]],
) -> None:
    assets, tracks = scene
    grid = _grid_of(assets)
    one_for_all = grid.matcher(TOLERANCE_M)  # as a query's tracks are matched: indexes shared
    for track in tracks:
        assert grid.nearest(track, TOLERANCE_M) is match(track, assets, TOLERANCE_M)
        assert one_for_all(track) is match(track, assets, TOLERANCE_M)


@settings(max_examples=200, deadline=None)
@given(scenes(), scenes(), st.data())
def test_the_grid_follows_moves_and_removals(
    first: tuple[list[OwnAsset], list[TrackReport]],
    then: tuple[list[OwnAsset], list[TrackReport]],
    data: st.DataObject,
) -> None:
    """Assets put again somewhere else (the same ids, a later scene) and some removed: the
    grid answers as a search over what is left, the moved ones counted as put last."""
    grid = _grid_of(first[0])
    current = {a.record.asset_id: a for a in first[0]}
    for asset in then[0]:
        where, radius = place_of(asset.record)
        grid.put(asset.record.asset_id, where, radius, asset)
        current.pop(asset.record.asset_id, None)
        current[asset.record.asset_id] = asset
    gone = data.draw(st.sets(st.sampled_from(sorted(current)))) if current else set()
    for key in gone:
        grid.remove(key)
        del current[key]
    assert len(grid) == len(current)
    left = list(current.values())
    for track in first[1] + then[1]:
        assert grid.nearest(track, TOLERANCE_M) is match(track, left, TOLERANCE_M)


def test_the_grid_skips_what_its_caller_no_longer_holds() -> None:
    here = Position(24_000_000, 122_000_000, 0)
    near, nearer = _asset(1, here, None), _asset(2, here, None)
    grid = _grid_of([nearer, near])
    track = TrackReport("T", here, 0, AssetKind.UNKNOWN)
    assert grid.nearest(track, TOLERANCE_M) is nearer  # the first put among equals
    assert grid.nearest(track, TOLERANCE_M, keep=lambda a: a is not nearer) is near
