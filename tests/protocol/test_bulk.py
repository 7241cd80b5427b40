"""Bulk: Telemetry's records column by column, held to the same records and the same rules.

A Bulk body carries each field of all its records as one byte string of fixed-width
integers. Whatever records it is made from it gives back; it refuses columns of the wrong
length or with a value out of range, naming the column and the record; and the buffer
the node queues records in cuts them into bodies that each fit one frame.
"""

from __future__ import annotations

import dataclasses
import re
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clearline.errors import MessageError
from clearline.protocol import codec, telemetry
from clearline.protocol.constants import MAX_ASSETS_PER_BULK, MAX_FRAME_SIZE
from clearline.protocol.messages import (
    BULK_COLUMNS,
    Area,
    AssetKind,
    AssetRecord,
    AutonomyMode,
    Bulk,
    Message,
    Mission,
    Position,
    Telemetry,
    message_from_wire,
    message_to_wire,
)
from clearline.protocol.signing import Ed25519Signer, KeyRing
from clearline.protocol.telemetry import BulkBuffer
from tests.fuzz.test_decoders_fuzz import mutate
from tests.protocol.test_telemetry_codec import (
    PROPERTY,
    generic_message,
    generic_payload,
    records,
)

SIGNER = Ed25519Signer.from_label("bulk")
SID = bytes(range(16))
DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def message(body: Bulk | Telemetry, seq: int = 7) -> Message:
    return Message("PRC", SID, seq, 1_800_000_000_000_000, body)


def decoded(payload: bytes) -> Message:
    return codec.decode_payload(payload)


def record(asset_id: str = "PRC-1", **changes: object) -> AssetRecord:
    base = AssetRecord(
        asset_id,
        AssetKind.RECON_SWARM,
        Mission.RECONNAISSANCE,
        False,
        AutonomyMode.AUTONOMOUS,
        1_800_000_000_000_000,
        Position(24_100_000, 122_400_000, 1_500),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@PROPERTY
@given(st.lists(records(), min_size=1, max_size=40))
def test_columns_give_back_the_records_and_sign_and_verify_as_telemetry_would(
    assets: list[AssetRecord],
) -> None:
    body = Bulk.of(assets)
    assert body.records() == tuple(assets) and len(body) == len(assets)
    assert body.ats().tolist() == [r.at for r in assets]
    sent = message(body)
    payload = codec.encode_payload(sent)
    assert payload == codec.canonical_cbor(message_to_wire(sent))
    assert decoded(payload) == sent
    keys = KeyRing()
    keys.add("PRC", SIGNER.verifier())
    verified = codec.verify(codec.sign(sent, SIGNER), keys).message
    assert isinstance(verified.body, Bulk) and verified.body.records() == tuple(assets)


def wire_body(body: Bulk) -> dict[str, object]:
    wire = message_to_wire(message(body))
    assert isinstance(wire["body"], dict)
    return wire["body"]


def refused(body: dict[str, object]) -> MessageError:
    wire = message_to_wire(message(Bulk.of([record()])))
    wire["body"] = body
    with pytest.raises(MessageError) as caught:
        message_from_wire(wire)
    return caught.value


def test_a_column_of_the_wrong_length_is_refused_by_name() -> None:
    good = wire_body(Bulk.of([record("A"), record("B")]))
    for column in BULK_COLUMNS:
        data = good[column.key]
        assert isinstance(data, bytes)
        for wrong in (data[:-1], data + b"\x00", b""):
            error = refused({**good, column.key: wrong})
            assert error.field == f"body.{column.key}"
            assert f"expected {2 * column.width} bytes" in str(error)


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [
        ("at", struct.pack(">Q", 1 << 63), str(1 << 63)),
        ("lat", struct.pack(">i", 90_000_001), "90000001"),
        ("lat", struct.pack(">i", -90_000_001), "-90000001"),
        ("lon", struct.pack(">i", 180_000_001), "180000001"),
        ("alt", struct.pack(">i", -20_001), "-20001"),
        ("r", struct.pack(">I", 40_000_001), "40000001"),
        ("kind", bytes([len(AssetKind)]), str(len(AssetKind))),
        ("mission", bytes([len(Mission)]), str(len(Mission))),
        ("autonomy", bytes([len(AutonomyMode)]), str(len(AutonomyMode))),
        ("armed", b"\x02", "2"),
    ],
)
def test_a_value_out_of_range_is_refused_naming_its_record(
    key: str, value: bytes, shown: str
) -> None:
    good = wire_body(Bulk.of([record("A"), record("B"), record("C")]))
    data = good[key]
    assert isinstance(data, bytes)
    width = len(value)
    error = refused({**good, key: data[:width] + value + data[2 * width :]})
    assert error.field == f"body.{key}[1]"
    assert f"got {shown}" in str(error)


def test_ids_are_checked_and_the_one_at_fault_named() -> None:
    good = wire_body(Bulk.of([record("A"), record("B")]))
    for ids, where in (
        (["A", "B C"], "body.ids[1]"),
        (["A", ""], "body.ids[1]"),
        (["A" * 65, "B"], "body.ids[0]"),
        (["A", 7], "body.ids[1]"),
        ([], "body.ids"),
        ("A B", "body.ids"),
    ):
        assert refused({**good, "ids": ids}).field == where
    many = Bulk.of([record()] * (MAX_ASSETS_PER_BULK + 1))
    with pytest.raises(MessageError) as caught:
        codec.encode_payload(message(many))
    assert caught.value.field == "body.ids"


def test_records_that_no_column_can_hold_are_a_message_error_naming_the_record() -> None:
    for bad, where in (
        (record("B", at=-1), "body.assets[1].at"),
        (record("B", at=1 << 64), "body.assets[1].at"),
        (record("B", position=Position(95_000_000, 0, 0)), "body.assets[1].pos"),
        (record("B", kind="balloon"), "body.assets[1].kind"),
    ):
        with pytest.raises(MessageError) as caught:
            Bulk.of([record("A"), bad])
        assert caught.value.field is not None and caught.value.field.startswith(where)


def test_a_bulk_and_a_telemetry_of_the_same_records_say_the_same() -> None:
    assets = (record("A"), record("B", area=Area(Position(-1, -2, -3), 9), position=None))
    assert Bulk.of(assets).records() == Telemetry(assets).assets


@PROPERTY
@given(
    st.lists(st.integers(1, 64), min_size=1, max_size=4_500),
    st.integers(3_000, MAX_FRAME_SIZE),
)
def test_the_buffer_keeps_the_order_and_each_body_fits_a_frame(
    id_lengths: list[int], frame_size: int
) -> None:
    # Every value at its longest encoding: the longest envelope, and all fields at their
    # widest (an area, the latest time).
    longest = AssetRecord(
        "x",
        AssetKind.UNKNOWN,
        Mission.ELECTRONIC_WARFARE,
        True,
        AutonomyMode.HUMAN_ON_LOOP,
        (1 << 63) - 1,
        area=Area(Position(-90_000_000, -180_000_000, 100_000_000), 40_000_000),
    )
    assets = [
        dataclasses.replace(longest, asset_id=f"{i:x}".rjust(n, "x")[-n:])
        for i, n in enumerate(id_lengths)
    ]
    pending = BulkBuffer()
    pending.add_records(assets[: len(assets) // 2])
    later = BulkBuffer()
    later.add_records(assets[len(assets) // 2 :])
    pending.extend(later)
    assert len(pending) == len(assets)
    bodies = pending.take(frame_size)
    assert len(pending) == 0 and pending.take() == []
    assert [r for body in bodies for r in body.records()] == assets
    for body in bodies:
        assert 1 <= len(body) <= MAX_ASSETS_PER_BULK
        most = Message("A" * 16, b"\xff" * 16, (1 << 64) - 1, (1 << 63) - 1, body)
        assert len(codec.sign(most, SIGNER)) <= frame_size


def test_the_shortest_ids_fill_a_message_to_its_count() -> None:
    pending = BulkBuffer()
    pending.add_records([record("x")] * (2 * MAX_ASSETS_PER_BULK + 1))
    assert [len(body) for body in pending.take()] == [MAX_ASSETS_PER_BULK] * 2 + [1]


def test_the_enumerations_in_the_spec_are_in_the_order_their_indices_follow() -> None:
    """A Bulk (and a feed) sends an enumeration as its index in the spec's list."""
    text = " ".join(DOC.read_text().split())
    listed = re.search(
        r"Enumerations: `kind` is one of `([^`]+)`; `mission` one of `([^`]+)`; "
        r"`autonomy` one of `([^`]+)`",
        text,
    )
    assert listed is not None
    for names, enum in zip(listed.groups(), (AssetKind, Mission, AutonomyMode), strict=True):
        assert names.split(", ") == [member.value for member in enum]


# -- the fast path: held to the generic field tables ---------------------------------------


@PROPERTY
@given(st.lists(records(), min_size=1, max_size=40), st.sampled_from([b"", SID]))
def test_the_fast_path_writes_what_the_generic_encoder_writes_and_reads_it_back(
    assets: list[AssetRecord], sid: bytes
) -> None:
    sent = Message("PRC", sid, 7, 1_800_000_000_000_000, Bulk.of(assets))
    payload = telemetry.encode_bulk(sent)
    assert payload == generic_payload(sent)
    assert telemetry.decode_bulk(payload) == sent == generic_message(payload)


def test_every_count_head_and_column_head() -> None:
    # 1, 23 and 24 records cross the array head's forms; 6 and 64 the byte strings'.
    for count in (1, 5, 6, 23, 24, 63, 64, 255, 256, MAX_ASSETS_PER_BULK):
        sent = message(Bulk.of([record(f"R{i}") for i in range(count)]))
        payload = telemetry.encode_bulk(sent)
        assert payload == generic_payload(sent)
        assert telemetry.decode_bulk(payload) == sent


@PROPERTY
@given(st.lists(records(), min_size=1, max_size=4), st.data())
def test_the_fast_path_never_accepts_what_the_generic_decoder_refuses(
    assets: list[AssetRecord], data: st.DataObject
) -> None:
    edits = ("flip", "insert", "delete", "truncate", "set")
    mutated = mutate(generic_payload(message(Bulk.of(assets))), data, 3, edits)
    fast = telemetry.decode_bulk(mutated)
    if fast is not None:
        assert fast == generic_message(mutated)


@pytest.mark.parametrize(
    "change",
    [
        {"ids": ("has space",)},
        {"ids": ("x" * 65,)},
        {"at": b"\x80" + bytes(7)},
        {"lat": bytes(3)},
        {"kind": b"\x63"},
        {"armed": bytearray(1)},
    ],
)
def test_an_invalid_body_takes_the_generic_path_and_its_error(change: dict[str, object]) -> None:
    bad = dataclasses.replace(Bulk.of([record()]), **change)  # type: ignore[arg-type]
    assert telemetry.encode_bulk(message(bad)) is None
    with pytest.raises(MessageError, match=r"body"):
        codec.encode_payload(message(bad))


def test_a_longer_head_than_needed_is_not_deterministic_and_refused() -> None:
    sent = message(Bulk.of([record()]))
    payload = generic_payload(sent)
    head = payload.index(b"\x64kind") + 5  # a 1-byte column: head 0x41
    assert payload[head] == 0x41
    wrong = payload[:head] + b"\x58\x01" + payload[head + 1 :]
    assert telemetry.decode_bulk(wrong) is None
    with pytest.raises(MessageError, match="deterministic"):
        codec.decode_payload(wrong)


def test_other_message_types_are_not_taken_as_bulk() -> None:
    from clearline.protocol import vectors

    for vector in vectors.build():
        payload = codec.encode_payload(vector.message)
        expected = vector.message if type(vector.message.body) is Bulk else None
        assert telemetry.decode_bulk(payload) == expected


@pytest.mark.parametrize("version", [True, 1.0])
def test_a_version_that_only_equals_one_is_not_written_by_the_fast_paths(version: object) -> None:
    for body in (Bulk.of([record()]), Telemetry((record(),))):
        sent = dataclasses.replace(message(body), version=version)  # type: ignore[arg-type]
        assert telemetry.encode_bulk(sent) is None
        assert telemetry.encode(sent, telemetry.encode_record) is None
        with pytest.raises(MessageError, match="v"):
            codec.encode_payload(sent)
