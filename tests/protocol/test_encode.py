"""The sender's encoding: the plain encoder and the written-out COSE_Sign1 give the
deterministic bytes for every message the field tables allow.

`codec.encode_payload` writes a payload with cbor2's plain encoder, relying on
`message_to_wire` to build every map in deterministic key order, and `codec.sign`
writes the COSE_Sign1 out rather than encoding it. Messages are drawn from the
field tables themselves (every codec, every optional field present or not), and
each is checked against cbor2's canonical encoder, the definition.
"""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from clearline.errors import MessageError
from clearline.protocol import codec, vectors
from clearline.protocol.constants import COSE_SIGN1_TAG, SESSION_ID_SIZE
from clearline.protocol.fields import (
    BoolCodec,
    BytesCodec,
    EnumCodec,
    IntCodec,
    ListCodec,
    StructCodec,
    TextCodec,
)
from clearline.protocol.messages import (
    BODY_TYPES,
    POSITION,
    AssetRecord,
    Bulk,
    Hello,
    Message,
    Position,
    message_to_wire,
)
from clearline.sim.signers import make_signer

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def values(codec_: Any) -> st.SearchStrategy[Any]:
    """Values a codec accepts (a few items per list, so examples stay small)."""
    if isinstance(codec_, IntCodec):
        return st.integers(codec_.low, codec_.high)
    if isinstance(codec_, BoolCodec):
        return st.booleans()
    if isinstance(codec_, TextCodec):
        if codec_.pattern is None:
            return st.text(max_size=min(codec_.max_length, 40))
        return st.from_regex(codec_.pattern, fullmatch=True).filter(
            lambda s: len(s) <= codec_.max_length
        )
    if isinstance(codec_, BytesCodec):
        if codec_.size is not None:
            return st.binary(min_size=codec_.size, max_size=codec_.size)
        return st.binary(max_size=min(codec_.max_size or 64, 64))
    if isinstance(codec_, EnumCodec):
        return st.sampled_from(list(codec_.enum))
    if isinstance(codec_, ListCodec):
        items = values(codec_.item)
        high = min(codec_.max_items, codec_.min_items + 3)
        return st.lists(items, min_size=codec_.min_items, max_size=high).map(tuple)
    if isinstance(codec_, StructCodec):
        return structures(codec_.cls)
    if codec_ is POSITION:
        return st.builds(
            Position,
            values(Position.LAT),
            values(Position.LON),
            values(Position.ALT),
        )
    raise AssertionError(f"no strategy for {codec_!r}")


def structures(cls: type[Any]) -> st.SearchStrategy[Any]:
    if cls is Bulk:
        # Columns of random bytes are out of range almost always: drawn as records instead.
        records = structures(AssetRecord).filter(lambda r: (r.position is None) != (r.area is None))
        return st.lists(records, min_size=1, max_size=4).map(Bulk.of)
    fields = {}
    for f in cls.FIELDS:
        strategy = values(f.codec)
        fields[f.attr] = st.none() | strategy if f.optional else strategy
    return st.fixed_dictionaries(fields).map(lambda kwargs: cls(**kwargs))


messages = st.builds(
    Message,
    side=values(TextCodec(16, r"[A-Z][A-Z0-9_-]{0,15}")),
    session_id=st.sampled_from([b"", bytes(range(SESSION_ID_SIZE))]),
    seq=values(IntCodec()),
    sent_at=values(IntCodec(0, (1 << 63) - 1)),
    body=st.sampled_from(list(BODY_TYPES.values())).flatmap(structures),
)


def wire(message: Message) -> object:
    try:
        return message_to_wire(message)
    except MessageError:
        assume(False)  # a cross-field rule the draw broke
        raise


@PROPERTY
@given(messages)
def test_payload_is_the_canonical_encoding(message: Message) -> None:
    obj = wire(message)
    payload = codec.encode_payload(message)
    assert payload == cbor2.dumps(obj, canonical=True)
    assert codec.decode_payload(payload) == message


@PROPERTY
@given(messages, st.sampled_from(["ed25519", "keyed-hash"]))
def test_cose_sign1_is_the_canonical_encoding(message: Message, kind: str) -> None:
    wire(message)
    signer, _ = make_signer(kind, "US")  # type: ignore[arg-type]
    cose = codec.sign(message, signer)
    envelope = codec.parse_envelope(cose)
    expected = cbor2.dumps(
        cbor2.CBORTag(
            COSE_SIGN1_TAG,
            [envelope.protected, {}, envelope.payload, signer.sign(envelope.signed_bytes())],
        ),
        canonical=True,
    )
    assert cose == expected


def test_struct_encoding_reports_the_first_fault_in_table_order() -> None:
    """Fields are encoded in wire order; a fault is still the one the table finds first."""
    # "nonce" comes first in the table, "hb" first on the wire.
    bad = Hello(b"short", "PRC", bytes(16), bytes(32), heartbeat_us=0)
    with pytest.raises(MessageError) as caught:
        StructCodec(Hello).encode(bad, "body")
    assert caught.value.field == "body.nonce"


def test_a_list_item_fault_names_the_item() -> None:
    codec_ = ListCodec(IntCodec(0, 9), 4)
    with pytest.raises(MessageError) as caught:
        codec_.decode([1, 2, 30], "xs")
    assert caught.value.field == "xs[2]"
    with pytest.raises(MessageError) as caught:
        codec_.encode((1, 20), "xs")
    assert caught.value.field == "xs[1]"
    with pytest.raises(MessageError) as caught:
        POSITION.decode([0, 200_000_000, 0], "pos")
    assert caught.value.field == "pos[1]"


def test_vector_payloads_are_the_canonical_encoding() -> None:
    for vector in vectors.build():
        payload = cbor2.dumps(message_to_wire(vector.message), canonical=True)
        assert codec.encode_payload(vector.message) == payload
