"""The telemetry feed's reader: records in, every bad frame skipped with a reason, bounded."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clearline import feed
from clearline.doctrine.registry import OwnAsset
from clearline.protocol.messages import (
    Area,
    AssetKind,
    AssetRecord,
    AutonomyMode,
    Intent,
    Mission,
    Position,
)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TOKEN = "sensor-token"
NOW = 1_800_000_000_000_000


def sent(batch: feed.Batch) -> list[AssetRecord]:
    """What the peer is sent of a read: the records its columns hold."""
    return [record for body in batch.columns().take() for record in body.records()]


def reader() -> feed.FeedReader:
    return feed.FeedReader(lambda token: token == TOKEN.encode())


def frame(body: bytes) -> bytes:
    return struct.pack(">H", len(body)) + body


def point(asset_id: str = "UAS-1", at: int = NOW - 5, **kw: object) -> bytes:
    return feed.point_frame(
        asset_id, AssetKind.UNCREWED_AIRCRAFT, Mission.PATROL, False, Position(1, -2, 3), at, **kw
    )  # type: ignore[arg-type]


def test_records_as_sent_and_time_zero_is_now() -> None:
    data = feed.token_frame(TOKEN) + point() + point("UAS-2", at=0, intent=Intent.HOLDING)
    data += feed.point_frame(
        "ZONE/1", AssetKind.RECON_SWARM, Mission.RECONNAISSANCE, True, Position(-5, 6, 0),
        NOW - 7, AutonomyMode.HUMAN_ON_LOOP, Intent.WITHDRAWING, radius_m=900,
    )  # fmt: skip
    batch = reader().feed(data, NOW)
    assert batch.skipped == [] and batch.refused is None
    assert all(type(a) is OwnAsset and type(a.record) is AssetRecord for a in batch.records)
    kind, mission, auto = AssetKind.UNCREWED_AIRCRAFT, Mission.PATROL, AutonomyMode.AUTONOMOUS
    at = Position(1, -2, 3)
    assert batch.records == [
        OwnAsset(AssetRecord("UAS-1", kind, mission, False, auto, NOW - 5, at), Intent.TRANSITING),
        OwnAsset(AssetRecord("UAS-2", kind, mission, False, auto, NOW, at), Intent.HOLDING),
        OwnAsset(
            AssetRecord(
                "ZONE/1", AssetKind.RECON_SWARM, Mission.RECONNAISSANCE, True,
                AutonomyMode.HUMAN_ON_LOOP, NOW - 7, area=Area(Position(-5, 6, 0), 900),
            ),
            Intent.WITHDRAWING,
        ),
    ]  # fmt: skip
    assert sent(batch) == [asset.record for asset in batch.records]


def test_a_stream_split_anywhere_gives_the_same_records() -> None:
    data = feed.token_frame(TOKEN) + b"".join(point(f"UAS-{i}") for i in range(50))
    whole = reader().feed(data, NOW).records
    for step in (1, 2, 3, 7, 29, 64):
        r = reader()
        reads = [r.feed(data[i : i + step], NOW) for i in range(0, len(data), step)]
        assert [x for read in reads for x in read.records] == whole
        assert [x for read in reads for x in sent(read)] == [a.record for a in whole]
        assert r.buffered == 0


def test_no_token_no_records() -> None:
    r = reader()
    batch = r.feed(point() + feed.token_frame(TOKEN), NOW)
    assert batch.records == [] and batch.refused == "the first frame must be a token frame"
    assert r.feed(point(), NOW).refused is not None  # nothing more is read
    wrong = reader().feed(feed.token_frame("guess") + point(), NOW)
    assert wrong.records == [] and wrong.refused == "the token is not valid for the feed"


def test_a_stream_that_does_not_begin_with_its_token_is_refused_at_once() -> None:
    """Not even empty or oversized frames are skipped before the token: a stranger's stream
    is refused on its first frame, whatever it is."""
    for first in (b"\x00\x00", frame(b"\x01" + b"t" * 300), frame(b"\x02" + b"x" * 70)):
        r = reader()
        batch = r.feed(first * 1000 + feed.token_frame(TOKEN) + point(), NOW)
        assert batch.records == [] and batch.skipped == [] and batch.refused is not None
        assert r.buffered == 0 and r.feed(point(), NOW).records == []


def test_a_read_lists_its_first_skips_and_counts_them_all() -> None:
    batch = reader().feed(feed.token_frame(TOKEN) + b"\x00\x00" * 10_000 + point("A"), NOW)
    assert [a.record.asset_id for a in batch.records] == ["A"]
    assert len(batch.skipped) == feed.LISTED_SKIPS and batch.skips == {"empty": 10_000}


def fixed(
    kind: int = 3, mission: int = 3, auto: int = 2, intent: int = 2, armed: int = 0,
    at: int = NOW - 5, lat: int = 1, alt: int = 3,
) -> bytes:  # fmt: skip
    return struct.pack(">BBBBBQiii", kind, mission, auto, intent, armed, at, lat, 2, alt)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\x02" + fixed(kind=13) + b"X", "bad-enum"),
        (b"\x02" + fixed(mission=9) + b"X", "bad-enum"),
        (b"\x02" + fixed(auto=3) + b"X", "bad-enum"),
        (b"\x02" + fixed(intent=5) + b"X", "bad-enum"),
        (b"\x02" + fixed(armed=2) + b"X", "bad-armed"),
        (b"\x02" + fixed(), "short"),
        (b"\x02" + fixed()[:10], "short"),
        (b"\x02" + fixed() + b"bad id", "bad-id"),
        (b"\x02" + fixed() + b"\xff", "bad-id"),
        (b"\x02" + fixed(at=1 << 63) + b"X", "bad-time"),
        (b"\x02" + fixed(at=(1 << 63) - 1) + b"X", "bad-time"),
        (b"\x02" + fixed(at=NOW + 61_000_000) + b"X", "bad-time"),
        (b"\x02" + fixed(at=NOW - 3_601_000_000) + b"X", "bad-time"),
        (b"\x02" + fixed(at=1) + b"X", "bad-time"),
        (b"\x02" + fixed(lat=90_000_001) + b"X", "bad-position"),
        (b"\x02" + fixed(alt=-20_001) + b"X", "bad-position"),
        (b"\x02" + fixed(alt=100_000_001) + b"X", "bad-position"),
        (b"\x03" + fixed() + struct.pack(">I", 0) + b"X", "bad-radius"),
        (b"\x03" + fixed() + struct.pack(">I", feed.MAX_AREA_RADIUS_M + 1) + b"X", "bad-radius"),
        (b"\x07" + fixed() + b"X", "unknown-type"),
        (b"\x01" + TOKEN.encode(), "token-again"),
        (b"\x02" + fixed() + b"X" * 65, "bad-id"),
        (b"\x02" + fixed() + b"X" * 70, "oversized"),
        (b"", "empty"),
    ],
)  # fmt: skip
def test_a_bad_frame_is_skipped_with_its_reason_and_the_next_is_read(
    body: bytes, reason: str
) -> None:
    data = feed.token_frame(TOKEN) + point("A") + frame(body) + point("B")
    batch = reader().feed(data, NOW)
    assert [a.record.asset_id for a in batch.records] == ["A", "B"]
    assert sent(batch) == [a.record for a in batch.records]
    assert [(s.frame, s.reason) for s in batch.skipped] == [(2, reason)]
    assert reason in feed.REASONS
    assert batch.skipped[0].line().startswith(f"frame 2 skipped: {reason}: ")


def test_an_oversized_frame_is_dropped_as_it_arrives_never_held() -> None:
    r = reader()
    r.feed(feed.token_frame(TOKEN), NOW)
    head = frame(b"\x02" + b"x" * 60_000)[:2]
    batch = r.feed(head + b"x" * 1000, NOW)
    assert [s.reason for s in batch.skipped] == ["oversized"] and r.buffered == 0
    for _ in range(58):
        assert r.feed(b"x" * 1000, NOW).records == [] and r.buffered == 0
    assert [a.record.asset_id for a in r.feed(b"x" * 1001 + point("C"), NOW).records] == ["C"]


@FUZZ
@given(st.lists(st.binary(max_size=300), max_size=20), st.booleans())
def test_any_bytes_never_raise_and_the_buffer_stays_bounded(
    chunks: list[bytes], authenticated: bool
) -> None:
    r = feed.FeedReader(lambda token: True)
    if authenticated:
        r.feed(feed.token_frame(TOKEN), NOW)
    for chunk in chunks:
        batch = r.feed(chunk, NOW)
        assert all(s.reason in feed.REASONS for s in batch.skipped)
        assert r.buffered < 2 + 1 + feed.MAX_TOKEN
    if r.refused is not None:
        assert r.feed(point(), NOW).records == []


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    data = bytearray(
        b"".join(point(f"U{i}", at=NOW - i - 1) for i in range(draw(st.integers(1, 8))))
    )
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip" and at < len(data):
            data[at] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del data[at : at + draw(st.integers(1, 8))]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


@FUZZ
@given(damaged(), st.integers(1, 64))
def test_damaged_streams_give_only_valid_records(data: bytes, step: int) -> None:
    r = reader()
    r.feed(feed.token_frame(TOKEN), NOW)
    for i in range(0, len(data), step):
        batch = r.feed(data[i : i + step], NOW)
        assert sent(batch) == [asset.record for asset in batch.records]
        for asset in batch.records:
            record = asset.record
            assert isinstance(record, AssetRecord) and isinstance(asset.intent, Intent)
            assert feed._ID.fullmatch(record.asset_id.encode())
            assert (record.position is None) != (record.area is None)
        assert r.buffered < 2 + 1 + feed.MAX_TOKEN


def test_the_example_in_the_docs_is_what_point_frame_writes() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "feed.md").read_text()
    block = doc.split("named `PRC-UAS-1`:\n\n```\n", 1)[1].split("```", 1)[0]
    written = bytes.fromhex(" ".join(line[:29] for line in block.splitlines()))
    at = 1_795_737_600_000_000  # 2026-11-27T00:00:00Z
    where = Position(20_500_000, 120_250_000, 900)
    kind, mission = AssetKind.UNCREWED_AIRCRAFT, Mission.PATROL
    assert written == feed.point_frame("PRC-UAS-1", kind, mission, False, where, at)
    (asset,) = reader().feed(feed.token_frame(TOKEN) + written, at + 1_000_000).records
    assert asset == OwnAsset(
        AssetRecord("PRC-UAS-1", kind, mission, False, AutonomyMode.AUTONOMOUS, at, where),
        Intent.TRANSITING,
    )


@st.composite
def long_runs(draw: st.DrawFn) -> bytes:
    """Runs of point frames long enough to be read as blocks (ids of one length, or not),
    some of them invalid, some areas between, and some bytes damaged."""
    width, uniform = draw(st.integers(1, 12)), draw(st.integers(0, 3)) > 0
    frames = []
    # Under LISTED_SKIPS frames in all, so that one read lists every frame it skips.
    for i in range(draw(st.integers(feed.MIN_RUN, feed.LISTED_SKIPS // 2))):
        asset_id = f"{i:0{width}d}"[-width:] if uniform else f"U{i}"
        at = draw(st.sampled_from([NOW - i - 1, 0, NOW + 61_000_000, NOW - 3_601_000_000]))
        data = bytearray(point(asset_id, at=at))
        if draw(st.integers(0, 29)) == 0:
            data[draw(st.integers(3, 7))] = 0xEE  # an enumeration out of range
        if draw(st.integers(0, 29)) == 0:
            data[-1] = ord(" ")  # not an id's character
        frames.append(bytes(data))
        if draw(st.integers(0, 39)) == 0:
            frames.append(point("A", radius_m=5))
    data = bytearray(b"".join(frames))
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] ^= draw(st.integers(1, 255))
    return bytes(data)


def read_in(data: bytes, step: int) -> tuple[list[OwnAsset], list[tuple[int, str, str]]]:
    r = reader()
    r.feed(feed.token_frame(TOKEN), NOW)
    records: list[OwnAsset] = []
    skipped: list[tuple[int, str, str]] = []
    for i in range(0, len(data), step):
        batch = r.feed(data[i : i + step], NOW)
        assert sent(batch) == [asset.record for asset in batch.records]
        assert batch.taken == len(batch.records)
        records += batch.records
        skipped += [(s.frame, s.reason, s.detail) for s in batch.skipped]
    return records, skipped


@FUZZ
@given(long_runs(), st.sampled_from([1 << 16, 4096, 333]))
def test_runs_read_as_blocks_give_what_reading_frame_by_frame_gives(data: bytes, step: int) -> None:
    # Read a byte at a time, every frame is read alone: the reference.
    assert read_in(data, step) == read_in(data, 1)


def test_ids_changing_length_every_few_frames_are_one_block_and_one_run_a_read() -> None:
    # Runs of MIN_RUN frames, ids of two lengths in turn: each a block of its own would pay
    # the column checks' fixed cost each time. One block, then the rest as one run.
    frames = b"".join(
        point(f"{'A' if (i // feed.MIN_RUN) % 2 else 'BB'}{i:04d}", at=NOW - 1)
        for i in range(feed.MIN_RUN * 20)
    )
    r = reader()
    r.feed(feed.token_frame(TOKEN), NOW)
    batch = r.feed(frames, NOW)
    assert batch.taken == feed.MIN_RUN * 20 and not batch.skips
    assert len(batch.pieces) == 2 and all(isinstance(p, feed.Run) for p in batch.pieces)
