"""Strict decoding: exactly one byte form of every COSE_Sign1 and payload is accepted.

The codec checks deterministic encoding without re-encoding where it can (the
COSE_Sign1 layout in place; payloads through cbor2's plain encoder). These
tests hold it to the definition: bytes are accepted exactly when
``cbor2.dumps(cbor2.loads(x), canonical=True) == x``, and what is accepted
decodes to the same values. Encodings are generated with and without the
faults deterministic encoding rules out: longer-than-needed integers and
lengths, indefinite lengths, unsorted and repeated map keys, trailing bytes,
floats, tags and other simple values.
"""

from __future__ import annotations

import contextlib
import itertools
import struct
from pathlib import Path

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clearline.errors import MessageError
from clearline.protocol import codec, vectors
from clearline.protocol.constants import KID_SIZE, SIGNATURE_SIZE
from clearline.protocol.messages import message_from_wire, message_to_wire
from clearline.protocol.signing import Ed25519Signer

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CORPUS = Path(__file__).resolve().parents[2] / "fuzz" / "corpus" / "decoders"
VECTORS = vectors.build()
COSES = [codec.sign(v.message, Ed25519Signer.from_label(v.signer_label)) for v in VECTORS]
PAYLOADS = [codec.encode_payload(v.message) for v in VECTORS]

REJECTED = object()


def reference(data: bytes) -> object:
    """The definition: the decoded value if re-encoding reproduces the bytes, else REJECTED."""
    try:
        value = cbor2.loads(data)
        return value if cbor2.dumps(value, canonical=True) == data else REJECTED
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError):
        return REJECTED


def payload_object(data: bytes) -> object:
    try:
        return codec._payload_object(data)
    except MessageError:
        return REJECTED


def same(a: object, b: object) -> bool:
    """Equal values of the same types all the way down (1 == True == 1.0 is not enough)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, cbor2.CBORTag) and isinstance(b, cbor2.CBORTag):
        return a.tag == b.tag and same(a.value, b.value)
    return a is b or a == b or (a != a and b != b)  # NaN is itself


# --- an encoder that can break each rule of deterministic encoding --------------------


class Encoder:
    """Encodes a value, letting hypothesis break the rules now and then (about 1 in `rarity`)."""

    def __init__(self, data: st.DataObject, rarity: int) -> None:
        self.data = data
        self.rarity = rarity

    def fault(self) -> bool:
        return self.data.draw(st.integers(0, self.rarity - 1)) == 0

    def head(self, major: int, argument: int) -> bytes:
        shortest = codec._head(major, argument)
        if not self.fault():
            return shortest
        longer = [
            (info, width)
            for info, width in ((24, 1), (25, 2), (26, 4), (27, 8))
            if argument < 1 << (8 * width) and 1 + width > len(shortest)
        ]
        if not longer:
            return shortest
        info, width = self.data.draw(st.sampled_from(longer))
        return bytes((major << 5 | info,)) + argument.to_bytes(width, "big")

    def encode(self, value: object) -> bytes:
        if isinstance(value, bool) or value is None:
            return cbor2.dumps(value)
        if isinstance(value, float):
            return self.data.draw(
                st.sampled_from(
                    [cbor2.dumps(value), cbor2.dumps(value, canonical=True)]
                    + ([b"\xf9" + _half(value)] if _half(value) else [])
                )
            )
        if isinstance(value, int):
            if value >= 1 << 64 or value < -(1 << 64) or self.fault():
                negative = value < 0
                magnitude = -1 - value if negative else value
                digits = magnitude.to_bytes(max(1, (magnitude.bit_length() + 7) // 8), "big")
                if self.fault():
                    digits = b"\x00" + digits
                return self.head(6, 3 if negative else 2) + self.encode(digits)
            return self.head(1, -1 - value) if value < 0 else self.head(0, value)
        if isinstance(value, bytes | str):
            major, raw = (2, value) if isinstance(value, bytes) else (3, value.encode())
            if self.fault():  # indefinite length, in one to three chunks
                cuts = sorted(self.data.draw(st.lists(st.integers(0, len(raw)), max_size=2)))
                bounds = [0, *cuts, len(raw)]
                chunks = [raw[i:j] for i, j in itertools.pairwise(bounds)]
                return (
                    bytes((major << 5 | 31,))
                    + b"".join(self.head(major, len(c)) + c for c in chunks)
                    + b"\xff"
                )
            return self.head(major, len(raw)) + raw
        if isinstance(value, list):
            items = b"".join(self.encode(v) for v in value)
            if self.fault():
                return b"\x9f" + items + b"\xff"
            return self.head(4, len(value)) + items
        if isinstance(value, dict):
            pairs = [(self.encode(k), self.encode(v)) for k, v in value.items()]
            if self.fault():
                pairs = self.data.draw(st.permutations(pairs))
            else:
                pairs.sort(key=lambda kv: (len(kv[0]), kv[0]))
            if pairs and self.fault():
                pairs.insert(
                    self.data.draw(st.integers(0, len(pairs))),
                    self.data.draw(st.sampled_from(pairs)),
                )
            body = b"".join(k + v for k, v in pairs)
            if self.fault():
                return b"\xbf" + body + b"\xff"
            return self.head(5, len(pairs)) + body
        if isinstance(value, cbor2.CBORTag):
            return self.head(6, value.tag) + self.encode(value.value)
        raise TypeError(type(value))

    def top(self, value: object) -> bytes:
        out = self.encode(value)
        if self.fault():
            out = b"\xd9\xd9\xf7" + out  # self-described CBOR: a tag re-encoding drops
        if self.fault():
            out += self.data.draw(st.binary(min_size=1, max_size=3))
        return out


def _half(value: float) -> bytes | None:
    """`value` as a half-precision float, if it is exactly one."""
    try:
        packed = struct.pack(">e", value)
    except OverflowError:
        return None
    return packed if struct.unpack(">e", packed)[0] == value else None


text_keys = st.text(max_size=6) | st.sampled_from(["v", "t", "id", "pos", "seq", "sid", "body"])
scalars = (
    st.integers(-(2**64) - 2, 2**64 + 1)
    | st.sampled_from([0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, -1, -24, -25, -257])
    | st.booleans()
    | st.text(max_size=30)
    | st.binary(max_size=40)
)
exotic = (
    st.none()
    | st.floats(allow_nan=False, width=64)
    | st.sampled_from([0.0, -0.0, 1.5, 65504.0, 1e300])
    | st.builds(cbor2.CBORTag, st.sampled_from([6, 18, 100, 1234]), scalars)
)
protocol_values = st.recursive(
    scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(text_keys, kids, max_size=5),
    max_leaves=20,
)
any_values = st.recursive(
    scalars | exotic,
    lambda kids: (
        st.lists(kids, max_size=4)
        | st.dictionaries(
            text_keys | st.integers(-30, 30) | st.booleans() | st.sampled_from([1.5, -0.0, 1e300]),
            kids,
            max_size=5,
        )
    ),
    max_leaves=20,
)


# --- payloads ----------------------------------------------------------------------------


def check_payload(data: bytes) -> None:
    expected = reference(data)
    got = payload_object(data)
    if expected is REJECTED:
        assert got is REJECTED, f"accepted non-canonical {data.hex()}"
    else:
        assert got is not REJECTED, f"rejected canonical {data.hex()}"
        assert same(got, expected)


@PROPERTY
@given(protocol_values, st.data())
def test_protocol_values_accepted_exactly_when_canonical(
    value: object, data: st.DataObject
) -> None:
    check_payload(Encoder(data, rarity=8).top(value))


@PROPERTY
@given(any_values, st.data())
def test_any_values_accepted_exactly_when_canonical(value: object, data: st.DataObject) -> None:
    check_payload(Encoder(data, rarity=8).top(value))


@PROPERTY
@given(protocol_values)
def test_canonical_protocol_values_take_the_plain_path(value: object) -> None:
    encoded = codec.canonical_cbor(value)
    decoded = codec._payload_object(encoded)
    assert same(decoded, cbor2.loads(encoded))
    if isinstance(decoded, dict | list):
        assert codec._plain(decoded)


@PROPERTY
@given(any_values)
def test_plain_values_encode_the_same_with_and_without_canonical(value: object) -> None:
    """What the shortcut rests on, for any value cbor2 can decode to."""
    with contextlib.suppress(cbor2.CBORError, ValueError, TypeError):
        value = cbor2.loads(cbor2.dumps(value))
    if codec._plain(value):
        assert cbor2.dumps(value) == cbor2.dumps(value, canonical=True)


@PROPERTY
@given(st.sampled_from(PAYLOADS), st.data())
def test_mutated_message_payloads(payload: bytes, data: st.DataObject) -> None:
    check_payload(mutate(payload, data))


@PROPERTY
@given(st.sampled_from(VECTORS), st.data())
def test_reencoded_message_payloads(vector: vectors.Vector, data: st.DataObject) -> None:
    def plain(value: object) -> object:  # tuples and enums as cbor2 decodes them
        return cbor2.loads(cbor2.dumps(value))

    encoded = Encoder(data, rarity=30).top(plain(message_to_wire(vector.message)))
    check_payload(encoded)
    if reference(encoded) is not REJECTED:
        assert codec.decode_payload(encoded) == vector.message


def test_message_payloads_decode_to_the_same_messages() -> None:
    for vector, payload in zip(VECTORS, PAYLOADS, strict=True):
        assert codec.decode_payload(payload) == vector.message
        assert codec._plain(cbor2.loads(payload)), "a message payload takes the slow path"
        assert message_from_wire(reference(payload)) == vector.message


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (bytes.fromhex("a2617601617400"), "key order"),  # {"v": 1, "t": 0}
        (bytes.fromhex("a2617400617400"), "repeated key"),
        (bytes.fromhex("a1617418ff"), None),  # {"t": 255}: canonical
        (bytes.fromhex("a161741817"), "long int"),  # 23 in two bytes
        (bytes.fromhex("a178017400"), "long length"),  # key "t" with its length in two bytes
        (bytes.fromhex("bf617400ff"), "indefinite map"),
        (bytes.fromhex("a1617400" + "00"), "trailing byte"),
        (bytes.fromhex("a16174fb3ff8000000000000"), "float too wide"),
        (bytes.fromhex("a16174c24105"), "bignum for a small int"),
    ],
)
def test_payload_examples(payload: bytes, why: str | None) -> None:
    assert (reference(payload) is REJECTED) == (why is not None)
    if why is None:
        assert codec._payload_object(payload) == {"t": 255}
    else:
        with pytest.raises(MessageError) as caught:
            codec._payload_object(payload)
        assert caught.value.field == "payload"


def test_the_error_says_where_the_bytes_differ() -> None:
    with pytest.raises(MessageError, match=r"differs from it at byte 2 of 7"):
        codec.decode_payload(bytes.fromhex("a2617601617400"))


@pytest.mark.parametrize(
    "payload",
    [
        bytes.fromhex("d81c81d81d00"),  # 28([29(0)]): a list that contains itself
        bytes.fromhex("d81ca16161d81d00"),  # 28({"a": 29(0)}): a map that contains itself
    ],
    ids=["list", "map"],
)
def test_a_self_referencing_payload_is_a_message_error(payload: bytes) -> None:
    with pytest.raises(MessageError, match="not in deterministic encoding"):
        codec.decode_payload(payload)


# --- COSE_Sign1 --------------------------------------------------------------------------


def envelope_outcomes(cose: bytes) -> tuple[object, object]:
    """What the in-place check and the decoding check make of the same bytes."""
    in_place = codec._parse_canonical_envelope(cose)
    try:
        decoded: object = codec._parse_envelope_by_decoding(cose)
    except MessageError:
        decoded = None
    return in_place, decoded


def check_envelope(cose: bytes) -> None:
    in_place, decoded = envelope_outcomes(cose)
    assert in_place == decoded, cose.hex()
    if decoded is not None:
        assert codec.parse_envelope(cose) == decoded
    else:
        with pytest.raises(MessageError):
            codec.parse_envelope(cose)


payload_sizes = st.sampled_from([0, 1, 23, 24, 25, 255, 256, 257, 65535, 65536]) | st.integers(
    0, 600
)


@PROPERTY
@given(
    st.binary(min_size=KID_SIZE, max_size=KID_SIZE),
    payload_sizes,
    st.binary(min_size=SIGNATURE_SIZE, max_size=SIGNATURE_SIZE),
    st.data(),
)
def test_envelopes_accepted_exactly_when_canonical(
    kid: bytes, size: int, signature: bytes, data: st.DataObject
) -> None:
    encoder = Encoder(data, rarity=60)
    if encoder.fault():
        kid = data.draw(st.binary(max_size=KID_SIZE + 2))
    if encoder.fault():
        signature = data.draw(st.binary(max_size=SIGNATURE_SIZE + 2))
    headers: dict[object, object] = {1: -8, 4: kid}
    if encoder.fault():
        headers = data.draw(st.dictionaries(st.integers(-2, 6), st.integers(-9, 9) | st.binary()))
    protected = encoder.encode(headers)
    unprotected: dict[object, object] = {}
    if encoder.fault():
        unprotected = {data.draw(st.integers(0, 5)): b""}
    payload = bytes([size % 251]) * size
    tag = 18 if not encoder.fault() else data.draw(st.sampled_from([17, 98, 55799]))
    parts: list[object] = [protected, unprotected, payload, signature]
    if encoder.fault():
        parts = parts[: data.draw(st.integers(0, 3))] + ([] if encoder.fault() else [b"", b""])
    check_envelope(encoder.top(cbor2.CBORTag(tag, parts)))


@PROPERTY
@given(st.sampled_from(COSES), st.data())
def test_mutated_envelopes(cose: bytes, data: st.DataObject) -> None:
    check_envelope(mutate(cose, data))


def layout(
    tag: str = "d2",
    array: str = "84",
    protected_head: str = "55",
    protected: str = "a2 0127 0450",
    unprotected: str = "a0",
    payload_head: str = "",
    signature_head: str = "5840",
    trailer: str = "",
) -> bytes:
    """The vector Query's COSE_Sign1 with some of its heads written differently."""
    envelope = codec.parse_envelope(COSES[2])
    payload = envelope.payload
    return b"".join(
        [
            bytes.fromhex(tag + array + protected_head + protected),
            envelope.kid,
            bytes.fromhex(unprotected),
            bytes.fromhex(payload_head) if payload_head else codec._head(2, len(payload)),
            payload,
            bytes.fromhex(signature_head),
            envelope.signature,
            bytes.fromhex(trailer),
        ]
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"tag": "d812"},
        {"array": "9804"},
        {"protected_head": "5815"},
        {"protected": "a2 0127 0450".replace("0127", "013807")},  # alg -8 in two bytes
        {"protected": "a2 0127 045810"},  # kid length in two bytes
        {"protected": "a2 0450", "protected_head": "53"},  # no alg
        {"unprotected": "b800"},
        {"unprotected": "80"},  # an empty array
        {"unprotected": "f6"},  # null
        {"payload_head": "5900ac"},  # 172 in two bytes
        {"payload_head": "5a000000ac"},
        {"payload_head": "78ac"},  # a text string
        {"signature_head": "590040"},
        {"trailer": "00"},
    ],
)
def test_envelope_examples(changes: dict[str, str]) -> None:
    assert codec.parse_envelope(layout()) == codec.parse_envelope(COSES[2])
    cose = layout(**changes)
    assert codec._parse_canonical_envelope(cose) is None
    with pytest.raises(MessageError) as caught:
        codec.parse_envelope(cose)
    assert str(caught.value.field).startswith("cose")


def test_signed_envelopes_take_the_in_place_path() -> None:
    for cose in COSES:
        envelope = codec._parse_canonical_envelope(cose)
        assert envelope is not None
        assert envelope == codec._parse_envelope_by_decoding(cose)


@PROPERTY
@given(st.binary(max_size=300), payload_sizes)
def test_sig_structure_is_the_deterministic_encoding(protected: bytes, size: int) -> None:
    payload = bytes(size)
    assert codec.sig_structure(protected, payload) == codec.canonical_cbor(
        ["Signature1", protected, b"", payload]
    )


def test_fuzz_corpus() -> None:
    """Every input the fuzzers kept: same outcome from every path, as frames and as payloads."""
    files = sorted(CORPUS.iterdir())
    assert files
    for path in files:
        data = path.read_bytes()
        for candidate in (data, data[4:]):
            check_envelope(candidate)
            check_payload(candidate)
            envelope = envelope_outcomes(candidate)[1]
            if isinstance(envelope, codec.Envelope):
                check_payload(envelope.payload)


# --- helpers -----------------------------------------------------------------------------


def mutate(original: bytes, data: st.DataObject) -> bytes:
    mutated = bytearray(original)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        at = data.draw(st.integers(0, max(0, len(mutated) - 1)))
        if op == "flip" and mutated:
            mutated[at] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "set" and mutated:
            mutated[at] = data.draw(st.integers(0, 255))
        elif op == "insert":
            mutated[at:at] = data.draw(st.binary(min_size=1, max_size=4))
        elif op == "delete" and mutated:
            del mutated[at]
        elif op == "truncate":
            del mutated[at:]
    return bytes(mutated)
