"""Telemetry's fast path is held to the generic field tables, byte for byte and value for value.

`protocol.telemetry` writes a Telemetry payload directly and reads one by matching its
one valid layout. Whatever it writes, the generic encoder writes; whatever it reads,
the generic decoder reads as the same message; and anything it does not take (None)
goes to the generic path, so it may decline valid bytes but never accept invalid ones.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clearline.errors import MessageError
from clearline.protocol import codec, telemetry
from clearline.protocol.constants import MAX_ASSETS_PER_TELEMETRY
from clearline.protocol.messages import (
    Area,
    AssetKind,
    AssetRecord,
    AutonomyMode,
    Message,
    Mission,
    Position,
    Telemetry,
    message_from_wire,
    message_to_wire,
)

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Where the shortest integer form changes, on both sides of zero.
EDGES = [0, 1, 23, 24, 255, 256, 65_535, 65_536, (1 << 32) - 1, 1 << 32]
EDGES += [-1 - e for e in EDGES]


def ints(low: int, high: int) -> st.SearchStrategy[int]:
    inside = [e for e in EDGES if low <= e <= high] + [low, high]
    return st.one_of(st.sampled_from(inside), st.integers(low, high))


IDS = st.text("abcXYZ019._:/-", min_size=1, max_size=64)
POSITIONS = st.builds(
    Position,
    ints(-90_000_000, 90_000_000),
    ints(-180_000_000, 180_000_000),
    ints(-20_000, 100_000_000),
)


@st.composite
def records(draw: st.DrawFn) -> AssetRecord:
    where = draw(POSITIONS)
    area = draw(st.one_of(st.none(), ints(1, 40_000_000)))
    return AssetRecord(
        draw(IDS),
        draw(st.sampled_from(AssetKind)),
        draw(st.sampled_from(Mission)),
        draw(st.booleans()),
        draw(st.sampled_from(AutonomyMode)),
        draw(ints(0, (1 << 63) - 1)),
        position=where if area is None else None,
        area=None if area is None else Area(where, area),
    )


@st.composite
def messages(draw: st.DrawFn, max_records: int = 30) -> Message:
    return Message(
        draw(st.text("ABCZ09_-", min_size=0, max_size=15).map(lambda s: "P" + s)),
        draw(st.sampled_from([b"", bytes(range(16)), b"\x00" * 16])),
        draw(ints(0, (1 << 64) - 1)),
        draw(ints(0, (1 << 63) - 1)),
        Telemetry(tuple(draw(st.lists(records(), min_size=1, max_size=max_records)))),
    )


def generic_payload(message: Message) -> bytes:
    return codec.canonical_cbor(message_to_wire(message))


def generic_message(payload: bytes) -> Message | None:
    try:
        return message_from_wire(codec._payload_object(payload))
    except MessageError:
        return None


@PROPERTY
@given(messages())
def test_writes_what_the_generic_encoder_writes_and_reads_it_back(message: Message) -> None:
    payload = telemetry.encode(message, telemetry.encode_record)
    assert payload == generic_payload(message)
    assert telemetry.decode(payload) == message == generic_message(payload)


def test_the_largest_batch_and_every_count_head() -> None:
    record = AssetRecord(
        "X", AssetKind.UNKNOWN, Mission.UNKNOWN, False, AutonomyMode.AUTONOMOUS, 0, Position(0, 0)
    )
    for count in (1, 23, 24, 255, 256, MAX_ASSETS_PER_TELEMETRY):
        message = Message("US", b"", 1, 2, Telemetry((record,) * count))
        payload = telemetry.encode(message, telemetry.encode_record)
        assert payload == generic_payload(message)
        assert telemetry.decode(payload) == message
    too_many = Message("US", b"", 1, 2, Telemetry((record,) * (MAX_ASSETS_PER_TELEMETRY + 1)))
    assert telemetry.encode(too_many, telemetry.encode_record) is None
    with pytest.raises(MessageError, match=r"body\.assets"):
        codec.encode_payload(too_many)


@PROPERTY
@given(messages(max_records=4), st.data())
def test_never_accepts_what_the_generic_decoder_refuses(
    message: Message, data: st.DataObject
) -> None:
    payload = bytearray(generic_payload(message))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(payload) - 1))
        edit = data.draw(st.sampled_from(["flip", "insert", "delete", "set"]))
        if edit == "flip":
            payload[at] ^= 1 << data.draw(st.integers(0, 7))
        elif edit == "insert":
            payload[at:at] = bytes([data.draw(st.integers(0, 255))])
        elif edit == "delete" and len(payload) > 1:
            del payload[at]
        else:
            payload[at] = data.draw(st.sampled_from([0x00, 0x17, 0x18, 0x19, 0x1B, 0x38, 0xF4]))
    mutated = bytes(payload)
    fast = telemetry.decode(mutated)
    if fast is not None:
        assert fast == generic_message(mutated)


@pytest.mark.parametrize(
    "change",
    [
        {"asset_id": "has space"},
        {"asset_id": "x" * 65},
        {"at": -1},
        {"at": 1 << 63},
        {"position": Position(90_000_001, 0, 0)},
        {"position": Position(0, -180_000_001, 0)},
        {"position": Position(0, 0, -20_001)},
        {"position": None},
        {"area": Area(Position(0, 0), 1)},
        {"position": None, "area": Area(Position(0, 0), 0)},
        {"armed": 1},
        {"kind": "uncrewed_aircraft"},
    ],
)
def test_an_invalid_record_takes_the_generic_path_and_its_error(change: dict[str, object]) -> None:
    good = AssetRecord(
        "UAS-1", AssetKind.UNCREWED_AIRCRAFT, Mission.PATROL, False, AutonomyMode.AUTONOMOUS, 5,
        Position(1, 2, 3),
    )  # fmt: skip
    bad = dataclasses.replace(good, **change)  # type: ignore[arg-type]
    message = Message("US", b"", 1, 2, Telemetry((good, bad)))
    assert telemetry.encode(message, telemetry.encode_record) is None
    with pytest.raises(MessageError, match=r"body\.assets\[1\]"):
        codec.encode_payload(message)


def test_longer_integer_forms_are_left_to_the_generic_path_which_refuses_them() -> None:
    record = AssetRecord(
        "UAS-1", AssetKind.UNKNOWN, Mission.UNKNOWN, True, AutonomyMode.AUTONOMOUS, 5,
        Position(1, 2, 3),
    )  # fmt: skip
    message = Message("US", b"", 1, 2, Telemetry((record,)))
    payload = telemetry.encode(message, telemetry.encode_record)
    assert payload is not None
    at = payload.index(b"\x62at\x05") + 3
    for longer in (b"\x18\x05", b"\x19\x00\x05", b"\x1a\x00\x00\x00\x05"):
        wrong = payload[:at] + longer + payload[at + 1 :]
        assert telemetry.decode(wrong) is None
        with pytest.raises(MessageError, match="deterministic"):
            codec.decode_payload(wrong)


def test_other_message_types_are_not_taken() -> None:
    from clearline.protocol import vectors

    for vector in vectors.build():
        payload = codec.encode_payload(vector.message)
        if type(vector.message.body) is Telemetry:
            assert telemetry.decode(payload) == vector.message
        else:
            assert telemetry.decode(payload) is None


def test_the_longest_records_are_as_long_as_the_spec_says() -> None:
    longest = Position(-90_000_000, -180_000_000, 100_000_000)
    for area in (None, Area(longest, 40_000_000)):
        sizes = [
            len(telemetry.encode_record(r) or b"")
            for r in (
                AssetRecord(
                    "x" * 64,
                    kind,
                    mission,
                    True,
                    autonomy,
                    (1 << 63) - 1,
                    position=None if area else longest,
                    area=area,
                )
                for kind in AssetKind
                for mission in Mission
                for autonomy in AutonomyMode
            )
        ]
        most = telemetry.RECORD_MAX_POINT if area is None else telemetry.RECORD_MAX_AREA
        assert max(sizes) == most + 64
