"""The map view's picture, with no I/O: affiliation from the CoT type, the latest event of a
uid wins, stale events leave the map, the hotline's state from a node's `<clearline>`
element, the view fitted to the markers, and memory bounded whatever the server sends."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clearline.tak import cot, mapview
from clearline.tak.mapview import Picture, affiliation, dimension, fit_view

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
S = 1_000_000
TRACK = (24.13, 122.38, 1400.0, 500.0, 500.0)
ANSWERED = {
    "asker": "US",
    "track": "T-0417",
    "state": "answered",
    "query_seq": "1",
    "elapsed_ms": "113.2",
    "claim": "ours",
    "side": "PRC",
    "mission": "reconnaissance",
    "intent": "withdrawing",
    "armed": "false",
    "asset": "PRC-RS-7",
}


def xml(
    uid: str,
    type_: str = "a-h-A-M-F",
    at: int = T0,
    stale_s: int = 120,
    point: tuple[float, float, float, float, float] = TRACK,
    callsign: str | None = None,
    clearline: Mapping[str, object] | None = None,
    course: float | None = None,
) -> bytes:
    detail: list[tuple[str, Mapping[str, object]]] = []
    if clearline is not None:
        detail.append(("clearline", clearline))
    detail.append(("contact", {"callsign": callsign or uid}))
    if course is not None:
        detail.append(("track", {"course": course, "speed": 60}))
    return cot.to_xml(uid, type_, at, at + stale_s * S, point, detail)


def event(*args: object, **kwargs: object) -> cot.CotEvent:
    parsed = cot.parse(xml(*args, **kwargs))  # type: ignore[arg-type]
    assert isinstance(parsed, cot.CotEvent), parsed
    return parsed


def picture_of(*events: bytes, now: int = T0 + S, **kwargs: int) -> Picture:
    picture = Picture(**kwargs)
    picture.feed(events, now)
    return picture


@pytest.mark.parametrize(
    ("type_", "expected"),
    [
        ("a-f-A", "f"),  # friendly air
        ("a-f-A-M-F-Q", "f"),
        ("a-h-A", "h"),  # hostile air
        ("a-h-A-M-F", "h"),
        ("a-n-S", "n"),
        ("a-u-G", "u"),
        ("a-a-G", "f"),  # assumed friend
        ("a-s-A", "h"),  # suspect
        ("a-j-A", "h"),  # joker
        ("a-k-A", "h"),  # faker
        ("a-p-G", "u"),  # pending
        ("a-o-G", "u"),  # none specified
        ("a-x-G", "u"),  # an atom of no known affiliation
        ("a-H-A", "h"),
        ("b-x-clearline-link", None),  # not a unit
        ("t-x-d-d", None),
        ("a", None),
    ],
)
def test_affiliation_comes_from_the_types_second_atom(type_: str, expected: str | None) -> None:
    assert affiliation(type_) == expected


def test_dimension_comes_from_the_third() -> None:
    assert dimension("a-h-A-M-F") == "air"
    assert dimension("a-f-G-U-C") == "ground"
    assert dimension("a-n-S") == "sea surface"
    assert dimension("a-h") is None
    assert dimension("b-m-p-s-p-i") is None


def test_the_latest_event_of_a_uid_wins() -> None:
    picture = Picture()
    assert picture.add(event("T-0417", at=T0, point=(24.0, 122.0, 0, 5, 5)), T0)
    assert picture.add(event("T-0417", at=T0 + S, point=(24.1, 122.1, 0, 5, 5)), T0 + S)
    # One that is older than what is kept, arriving late, changes nothing.
    assert not picture.add(event("T-0417", at=T0 + S // 2, point=(9, 9, 0, 5, 5)), T0 + 2 * S)
    kept = picture.get("T-0417")
    assert kept is not None and (kept.lat, kept.lon) == (24.1, 122.1)
    assert len(picture) == 1
    assert picture.counts["older"] == 1
    # The same time again, arriving later, is taken (a server's correction).
    assert picture.add(event("T-0417", at=T0 + S, point=(24.2, 122.2, 0, 5, 5)), T0 + 2 * S)
    markers = picture.snapshot(T0 + 2 * S)["markers"]
    assert [(m["uid"], m["lat"]) for m in markers] == [("T-0417", 24.2)]


def test_an_event_leaves_the_map_at_its_stale_time() -> None:
    picture = picture_of(xml("T-0417", stale_s=10), xml("T-0418", stale_s=100))
    assert {m["uid"] for m in picture.snapshot(T0 + 5 * S)["markers"]} == {"T-0417", "T-0418"}
    assert {m["uid"] for m in picture.snapshot(T0 + 10 * S)["markers"]} == {"T-0418"}
    assert "T-0417" not in picture
    assert picture.counts["expired"] == 1


def test_an_event_already_stale_is_not_kept_and_takes_its_uid_off_the_map() -> None:
    picture = picture_of(xml("T-0417"))
    # As a TAK client deletes a marker: the same uid, its stale time already past.
    assert not picture.add(event("T-0417", at=T0 + S, stale_s=0), T0 + 2 * S)
    assert "T-0417" not in picture
    assert not picture.add(event("T-0999", at=T0 - 200 * S, stale_s=100), T0)
    assert len(picture) == 0
    assert picture.counts["stale"] == 2


def test_a_delete_takes_its_linked_uid_off_the_map_and_neither_it_nor_a_chat_is_kept() -> None:
    radar = xml("ANDROID-US-RADAR", "a-f-G-U-C", point=cot.NO_POINT)
    picture = picture_of(xml("T-0417"), radar)
    # As FreeTAKServer sends when a client disconnects: a uid of its own, a link to the client.
    delete = cot.to_xml(
        "d85d033c", mapview.DELETE, T0 + S, T0 + 20 * S, cot.NO_POINT,
        [("link", {"uid": "ANDROID-US-RADAR", "type": "a-f-G-U-C", "relation": "p-p"})],
    )  # fmt: skip
    picture.feed([delete], T0 + S)
    assert "ANDROID-US-RADAR" not in picture
    assert "d85d033c" not in picture
    assert picture.counts["deleted"] == 1
    # One older than what is kept deletes nothing; a ping is not kept either.
    link = [("link", {"uid": "T-0417"})]
    older = cot.to_xml("d2", mapview.DELETE, T0 - S, T0 + 20 * S, cot.NO_POINT, link)
    ping = cot.to_xml("takPing", "t-x-c-t", T0, T0 + 20 * S, cot.NO_POINT)
    chat = cot.to_xml("GeoChat.SERVER-UID.x", "b-t-f", T0, T0 + 20 * S, cot.NO_POINT)
    picture.feed([older, ping, chat], T0 + S)
    assert (
        "T-0417" in picture and "takPing" not in picture and "GeoChat.SERVER-UID.x" not in picture
    )
    assert picture.counts["not_on_the_map"] == 3


def test_the_clearline_detail_makes_the_tracks_badge() -> None:
    picture = picture_of(
        xml("T-0417", course=95),
        xml("T-0417.clearline", at=T0 + S // 2, stale_s=300, clearline=ANSWERED, callsign="x"),
    )
    (marker,) = picture.snapshot(T0 + S)["markers"]
    assert marker["uid"] == "T-0417"
    assert marker["callsign"] == "T-0417"
    assert marker["affiliation"] == "h"
    assert marker["dimension"] == "air"
    assert marker["course"] == 95
    hotline = marker["hotline"]
    assert hotline["state"] == "answered"
    assert hotline["headline"] == "answered: PRC, ours, reconnaissance, withdrawing"
    assert hotline["line"] == "113.2 ms after the query, unarmed, PRC-RS-7"
    assert hotline["detail"] == ANSWERED


@pytest.mark.parametrize(
    ("detail", "headline", "line"),
    [
        (
            {"state": "open", "query_seq": "3", "asker": "US"},
            "asked: query 3 on the wire",
            "no answer yet (asked by US)",
        ),
        ({"state": "expired", "reason": "late"}, "expired: no answer by the deadline", "late"),
        ({"state": "not_sent", "reason": "link down"}, "not sent", "link down"),
        (
            {"state": "answered", "claim": "not_ours", "side": "PRC", "elapsed_ms": "98"},
            "answered: PRC, not ours",
            "98.0 ms after the query",
        ),
        ({"state": "answered", "claim": "decline"}, "answered: declined to say", "query"),
        ({"state": "weird"}, "hotline: weird", "query"),
    ],
)  # fmt: skip
def test_each_state_has_its_badge(detail: dict[str, str], headline: str, line: str) -> None:
    assert mapview.badge({"track": "T-0417", **detail}) == (headline, line)


def test_only_known_clearline_attributes_are_kept_and_cleaned() -> None:
    sent = {**ANSWERED, "mission": "recon\tnaiss\x00ance", "asset": "x" * 500, "onclick": "f()"}
    parsed = dataclasses.replace(event("T-0417.clearline"), clearline=tuple(sent.items()))
    detail = mapview.clearline_detail(parsed)
    assert "onclick" not in detail
    assert detail["mission"] == "reconnaissance"
    assert detail["asset"] == "x" * mapview.MAX_VALUE_CHARS


def test_a_clarification_with_no_track_on_the_map_is_drawn_at_its_own_point() -> None:
    shown = picture_of(xml("T-0417.clearline", clearline=ANSWERED)).snapshot(T0 + S)
    (marker,) = shown["markers"]
    assert marker["uid"] == "T-0417.clearline"
    assert marker["callsign"] == "T-0417"
    assert marker["hotline"]["headline"].startswith("answered: PRC")
    # One asked about through the node's API has no point: listed, not drawn.
    nowhere = {**ANSWERED, "track": "T-9"}
    shown = picture_of(xml("T-9.clearline", point=cot.NO_POINT, clearline=nowhere)).snapshot(T0 + S)
    assert shown["markers"] == []
    assert [u["uid"] for u in shown["unplaced"]] == ["T-9.clearline"]


def test_holds_links_and_presences() -> None:
    hold = {"hold": "held", "action": "US-A1", "target": "T-0417", "reason": "hotline-hold"}
    link = {"link": "up", "side": "US", "peer": "PRC"}
    shown = picture_of(
        xml("T-0417"),
        xml("clearline.hold.US.US-A1", "b-x-clearline-hold", clearline=hold),
        xml("clearline.link.US", "b-x-clearline-link", point=cot.NO_POINT, clearline=link),
        xml("ANDROID-US-RADAR", "a-f-G-U-C", point=cot.NO_POINT, callsign="US radar"),
    ).snapshot(T0 + S)
    (marker,) = shown["markers"]
    assert marker["holds"] == ["gate held: US-A1 (hotline-hold)"]
    assert [link["text"] for link in shown["links"]] == ["hotline US-PRC: up"]
    assert [(u["uid"], u["callsign"]) for u in shown["unplaced"]] == [
        ("ANDROID-US-RADAR", "US radar")
    ]


def test_the_clearline_events_are_listed_in_order_once_each() -> None:
    opened = {**ANSWERED, "state": "open"}
    picture = picture_of(
        xml("T-0417"),
        xml("T-0417.clearline", at=T0 + 1, clearline=opened),
        xml("T-0417.clearline", at=T0 + 2, clearline=opened),  # sent again: not listed again
        xml("T-0417.clearline", at=T0 + 3, clearline=ANSWERED),
        xml("T-0417.clearline", at=T0 + 4, clearline=ANSWERED),
    )
    log = picture.snapshot(T0 + S)["log"]
    assert [line["text"].split(":")[0] for line in log] == ["T-0417 asked", "T-0417 answered"]
    assert all(line["kind"] == "clarification" for line in log)


def test_markers_are_bounded_the_least_recently_updated_going_first() -> None:
    picture = Picture(max_markers=100, max_log=10)
    link = {"link": "up", "side": "US", "peer": "PRC"}
    for i in range(5000):
        picture.add(event(f"T-{i}", at=T0 + i), T0)
        picture.add(event(f"L-{i}", at=T0 + i, clearline={**link, "link": str(i)}), T0)
    assert len(picture) == 100
    assert picture.counts["evicted"] == 9900
    assert len(picture.log) == 10
    assert "L-4999" in picture and "T-4999" in picture and "T-0" not in picture
    shown = picture.snapshot(T0)
    assert len(shown["markers"]) + len(shown["links"]) == 100


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=300) | st.sampled_from([xml("T-1"), xml("T-2")]), max_size=20))
def test_whatever_the_server_sends_the_picture_never_raises(chunks: list[bytes]) -> None:
    picture = Picture(max_markers=5)
    splitter = cot.StreamSplitter()
    for chunk in chunks:
        picture.feed(splitter.feed(chunk), T0)
    shown = picture.snapshot(T0)
    assert len(picture) <= 5
    assert set(shown) >= {"markers", "unplaced", "links", "log", "view", "counts", "skipped"}


def test_the_view_fits_the_markers_with_a_margin() -> None:
    points = [(24.0, 122.0), (24.5, 123.0), (23.8, 122.4)]
    view = fit_view(points)
    for lat, lon in points:
        x, y = view.project(lat, lon)
        assert 0.1 * view.width < x < 0.9 * view.width
        assert 0.1 * view.height < y < 0.9 * view.height
    # True to scale along the middle: a km is as long across as up.
    middle = math.radians((view.south + view.north) / 2)
    across = (view.east - view.west) * math.cos(middle) / view.width
    up = (view.north - view.south) / view.height
    assert across == pytest.approx(up)


def test_one_marker_is_shown_with_room_around_it() -> None:
    view = fit_view([(24.13, 122.38)])
    assert view.project(24.13, 122.38) == pytest.approx((view.width / 2, view.height / 2))
    assert view.km_across >= mapview.MIN_SPAN_KM
    grid = view.graticule()
    assert 3 <= len(grid["lat"]) <= mapview.MAX_LINES
    assert 3 <= len(grid["lon"]) <= mapview.MAX_LINES
    assert {g["label"] for g in grid["lat"]} >= {"24.1°N", "24.2°N"}
    assert "122.4°E" in {g["label"] for g in grid["lon"]}
    scale = view.scale_bar()
    assert scale["label"] == "10 km"
    assert scale["length"] == pytest.approx(10 / view.km_across * view.width, abs=0.1)


def test_labels_name_their_hemisphere() -> None:
    view = fit_view([(-33.9, 151.2), (-34.1, -179.9)])  # across the antimeridian: long way round
    labels = {g["label"] for g in view.graticule()["lon"]}
    assert any(label.endswith("°E") for label in labels)
    assert any(label.endswith("°W") for label in labels)
    south = fit_view([(-33.9, 151.2), (-34.1, 151.3)]).graticule()["lat"]
    assert all(g["label"].endswith("°S") for g in south)
    assert mapview._label(0.0, 0.1, "NS") == "0.0°"


def test_no_marker_shows_the_world() -> None:
    shown = Picture().snapshot(T0)
    assert shown["markers"] == []
    view = shown["view"]
    assert (view["west"], view["east"], view["south"], view["north"]) == (-180, 180, -90, 90)
