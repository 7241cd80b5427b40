"""Bytes on the wire: deterministic CBOR payloads, COSE_Sign1 envelopes, length-prefixed frames.

A frame is ``uint32_be(len) || COSE_Sign1``. The COSE_Sign1 (RFC 9052 §4.2) is
tag 18 around ``[protected, unprotected, payload, signature]`` where
``protected`` is the deterministic encoding of ``{1: -8, 4: kid}`` (EdDSA and
the signer's key id), ``unprotected`` is the empty map, and the signature is
Ed25519 over ``Sig_structure = ["Signature1", protected, h'', payload]``
(RFC 9052 §4.4). Decoding is strict: anything that is not exactly this shape,
or whose payload is not in deterministic encoding, is a `MessageError`.

Deterministic encoding leaves a valid COSE_Sign1 exactly one byte layout, so
`parse_envelope` checks that layout in place; only bytes outside it are decoded
with cbor2, to say what is wrong with them. A payload is decoded with cbor2 and
re-encoded to compare bytes; for the values a payload is made of (integers,
booleans, text, byte strings, arrays, text-keyed maps) the cheaper plain
encoding gives the deterministic bytes once the map keys are known to be in
order, so the canonical encoder only runs for anything else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import cbor2

from clearline.errors import FrameError, MessageError, SignatureError, UnknownKeyError
from clearline.protocol import telemetry
from clearline.protocol.constants import (
    COSE_ALG_EDDSA,
    COSE_HEADER_ALG,
    COSE_HEADER_KID,
    COSE_SIGN1_TAG,
    KID_SIZE,
    LENGTH_PREFIX_SIZE,
    MAX_CBOR_DEPTH,
    MAX_FRAME_SIZE,
    SIGNATURE_SIZE,
)
from clearline.protocol.messages import (
    Bulk,
    Message,
    Telemetry,
    message_from_wire,
    message_to_wire,
)
from clearline.protocol.signing import KeyRing, Signer


def canonical_cbor(obj: object) -> bytes:
    """Deterministic CBOR (RFC 8949 §4.2.1): shortest forms, definite lengths, sorted keys."""
    return cbor2.dumps(obj, canonical=True)


def strict_cbor_loads(data: bytes, field: str) -> object:
    """Decode one CBOR item, refusing indefinite lengths, duplicate keys and deep nesting."""
    try:
        return cbor2.loads(
            data, allow_indefinite=False, allow_duplicate_keys=False, max_depth=MAX_CBOR_DEPTH
        )
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise MessageError(f"not valid CBOR: {exc}", field=field) from None


def _head(major: int, argument: int) -> bytes:
    """The shortest initial bytes of a data item (RFC 8949 §3, §4.2.1): type and length or value."""
    if argument < 24:
        return bytes((major << 5 | argument,))
    if argument < 0x100:
        return bytes((major << 5 | 24, argument))
    if argument < 0x10000:
        return bytes((major << 5 | 25,)) + argument.to_bytes(2, "big")
    if argument < 0x100000000:
        return bytes((major << 5 | 26,)) + argument.to_bytes(4, "big")
    return bytes((major << 5 | 27,)) + argument.to_bytes(8, "big")


_LONG_ARGUMENTS = {24: (1, 24), 25: (2, 0x100), 26: (4, 0x10000), 27: (8, 0x100000000)}
"""Additional information 24-27: how many bytes the argument takes, and its least shortest value."""


_BYTES, _ARRAY, _TAG = 2, 4, 6
"""CBOR major types (RFC 8949 §3.1)."""


def _protected_header(kid: bytes) -> bytes:
    return canonical_cbor({COSE_HEADER_ALG: COSE_ALG_EDDSA, COSE_HEADER_KID: kid})


_SIG_STRUCTURE_HEAD = _head(_ARRAY, 4) + canonical_cbor("Signature1")
_EMPTY_AAD = canonical_cbor(b"")


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    """The bytes Ed25519 signs (RFC 9052 §4.4), with empty external AAD.

    Written out rather than encoded: ``["Signature1", protected, h'', payload]``
    in deterministic encoding is these heads and strings one after the other.
    """
    return b"".join(
        (
            _SIG_STRUCTURE_HEAD,
            _head(_BYTES, len(protected)),
            protected,
            _EMPTY_AAD,
            _head(_BYTES, len(payload)),
            payload,
        )
    )


def encode_payload(message: Message) -> bytes:
    """The payload's deterministic encoding. `message_to_wire` builds every map with its
    keys in deterministic order, of integers, booleans, text, byte strings, arrays and
    maps only, so cbor2's plain encoder writes the same bytes as its canonical one
    (which sorts each map again) at about half the cost; the tests hold the two equal."""
    # Hundreds of records: written out directly (the same bytes), unless one is invalid.
    kind = type(message.body)
    if kind is Bulk:
        payload = telemetry.encode_bulk(message)
        if payload is not None:
            return payload
    elif kind is Telemetry:
        payload = telemetry.encode(message, telemetry.encode_record)
        if payload is not None:
            return payload
    return cbor2.dumps(message_to_wire(message))


def sign(message: Message, signer: Signer) -> bytes:
    """Encode and sign a message: the exact COSE_Sign1 bytes that are sent and logged.

    The COSE_Sign1 is written out in its one valid layout (see `_ENVELOPE_PREFIX`);
    anything outside that layout (a kid or signature of another size) is encoded."""
    payload = encode_payload(message)
    kid = signer.kid
    if type(kid) is not bytes or len(kid) != KID_SIZE:
        protected = _protected_header(kid)
        signature = signer.sign(sig_structure(protected, payload))
        return canonical_cbor(cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, payload, signature]))
    protected = _PROTECTED_TEMPLATE_HEAD + kid
    payload_head = _head(_BYTES, len(payload))
    signature = signer.sign(
        b"".join(
            (_SIG_STRUCTURE_HEAD, _PROTECTED_HEAD, protected, _EMPTY_AAD, payload_head, payload)
        )
    )
    if type(signature) is not bytes or len(signature) != SIGNATURE_SIZE:
        return canonical_cbor(cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, payload, signature]))
    return b"".join(
        (_ENVELOPE_PREFIX, kid, _UNPROTECTED, payload_head, payload, _SIGNATURE_HEAD, signature)
    )


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed but not yet verified COSE_Sign1."""

    kid: bytes
    protected: bytes
    payload: bytes
    signature: bytes

    def signed_bytes(self) -> bytes:
        return sig_structure(self.protected, self.payload)


# The one layout of a valid COSE_Sign1 in deterministic encoding, which only the
# kid, the payload (and its length's head) and the signature vary:
#   d2 84 | 55 a2 01 27 04 50 <kid> | a0 | <bstr head> <payload> | 58 40 <signature>
_PROTECTED_TEMPLATE = _protected_header(bytes(KID_SIZE))
_ENVELOPE_PREFIX = (
    _head(_TAG, COSE_SIGN1_TAG)
    + _head(_ARRAY, 4)
    + _head(_BYTES, len(_PROTECTED_TEMPLATE))
    + _PROTECTED_TEMPLATE[:-KID_SIZE]
)
_KID_AT = len(_ENVELOPE_PREFIX)
_PROTECTED_END = _KID_AT + KID_SIZE
_PROTECTED_AT = _PROTECTED_END - len(_PROTECTED_TEMPLATE)
_UNPROTECTED = canonical_cbor({})
_PAYLOAD_AT = _PROTECTED_END + len(_UNPROTECTED)
_SIGNATURE_HEAD = _head(_BYTES, SIGNATURE_SIZE)
_SIGNATURE_PART = len(_SIGNATURE_HEAD) + SIGNATURE_SIZE
_PROTECTED_TEMPLATE_HEAD = _PROTECTED_TEMPLATE[:-KID_SIZE]
_PROTECTED_HEAD = _head(_BYTES, len(_PROTECTED_TEMPLATE))
assert len(_UNPROTECTED) == 1 and len(_SIGNATURE_HEAD) == 2
assert _ENVELOPE_PREFIX.endswith(_PROTECTED_HEAD + _PROTECTED_TEMPLATE_HEAD)


def _parse_canonical_envelope(cose: bytes) -> Envelope | None:
    """The parts of a COSE_Sign1 in the one valid layout, checked in place; None if not in it."""
    at = _PAYLOAD_AT
    if (
        type(cose) is not bytes
        or len(cose) <= at
        or not cose.startswith(_ENVELOPE_PREFIX)
        or cose[at - 1] != _UNPROTECTED[0]
    ):
        return None
    initial = cose[at]
    if initial >> 5 != _BYTES:
        return None
    info = initial & 0x1F
    if info < 24:
        size, start = info, at + 1
    elif info in _LONG_ARGUMENTS:
        width, least = _LONG_ARGUMENTS[info]
        start = at + 1 + width
        size = int.from_bytes(cose[at + 1 : start], "big")
        if size < least:  # the length could have been written shorter
            return None
    else:
        return None
    end = start + size
    if len(cose) != end + _SIGNATURE_PART or cose[end : end + 2] != _SIGNATURE_HEAD:
        return None
    return Envelope(
        kid=cose[_KID_AT:_PROTECTED_END],
        protected=cose[_PROTECTED_AT:_PROTECTED_END],
        payload=cose[start:end],
        signature=cose[end + 2 :],
    )


def parse_envelope(cose: bytes) -> Envelope:
    """Check the COSE_Sign1 shape and headers; signatures and payload come later."""
    envelope = _parse_canonical_envelope(cose)
    if envelope is not None:
        return envelope
    return _parse_envelope_by_decoding(cose)


def _parse_envelope_by_decoding(cose: bytes) -> Envelope:
    """Decode a COSE_Sign1 that is not in the valid layout, to say what is wrong with it.

    Everything this accepts is in the layout `_parse_canonical_envelope` checks
    (the tests hold the two to that), so in practice it always raises.
    """
    item = strict_cbor_loads(cose, "cose")
    if not isinstance(item, cbor2.CBORTag) or item.tag != COSE_SIGN1_TAG:
        raise MessageError("expected a COSE_Sign1 (CBOR tag 18)", field="cose")
    parts = item.value
    # cbor2 decodes the content of a tag as immutable (tuple, frozendict).
    if not isinstance(parts, list | tuple) or len(parts) != 4:
        raise MessageError("expected an array of 4 items in COSE_Sign1", field="cose")
    protected, unprotected, payload, signature = parts
    if type(protected) is not bytes:
        raise MessageError("expected a byte string", field="cose.protected")
    if not isinstance(unprotected, Mapping) or len(unprotected) != 0:
        raise MessageError("expected an empty map", field="cose.unprotected")
    if type(payload) is not bytes:
        raise MessageError("expected an attached payload byte string", field="cose.payload")
    if type(signature) is not bytes or len(signature) != SIGNATURE_SIZE:
        raise MessageError(f"expected {SIGNATURE_SIZE} signature bytes", field="cose.signature")
    headers = strict_cbor_loads(protected, "cose.protected")
    if not isinstance(headers, dict) or set(headers) != {COSE_HEADER_ALG, COSE_HEADER_KID}:
        raise MessageError("expected exactly {1: alg, 4: kid}", field="cose.protected")
    if headers[COSE_HEADER_ALG] != COSE_ALG_EDDSA or type(headers[COSE_HEADER_ALG]) is not int:
        raise MessageError(f"expected alg {COSE_ALG_EDDSA} (EdDSA)", field="cose.protected.alg")
    kid = headers[COSE_HEADER_KID]
    if type(kid) is not bytes or len(kid) != KID_SIZE:
        raise MessageError(f"expected a {KID_SIZE}-byte kid", field="cose.protected.kid")
    expected = _protected_header(kid)
    if protected != expected:
        raise _not_deterministic(protected, expected, "cose.protected")
    expected = canonical_cbor(item)
    if expected != cose:
        raise _not_deterministic(cose, expected, "cose")
    return Envelope(kid, protected, payload, signature)


def _not_deterministic(data: bytes, expected: bytes, field: str) -> MessageError:
    at = next(
        (i for i, (a, b) in enumerate(zip(data, expected, strict=False)) if a != b),
        min(len(data), len(expected)),
    )
    return MessageError(
        f"not in deterministic encoding (differs from it at byte {at} of {len(data)})", field
    )


_PLAIN_SCALARS = frozenset({int, bool, str, bytes})
_KEYS_IN_ORDER: dict[tuple[object, ...], bool] = {}
"""Whether a map's keys, as decoded in wire order, are text in deterministic order; per key set."""
_KEYS_IN_ORDER_MAX = 1024


def _text_keys_in_order(keys: tuple[object, ...]) -> bool:
    """True if every key is text and each sorts after the one before it.

    cbor2's deterministic encoder orders keys by the length of their encoding,
    then bytewise; for text keys that is (UTF-8 length, UTF-8 bytes), the same
    as RFC 8949's bytewise order of the encoded keys.
    """
    previous = (-1, b"")
    for key in keys:
        if type(key) is not str:
            return False
        encoded = key.encode()
        current = (len(encoded), encoded)
        if current <= previous:
            return False
        previous = current
    return True


def _plain(value: object, depth: int = 0) -> bool:
    """True if `value` is an array or map holding only integers, booleans, text,
    byte strings, arrays and text-keyed maps, every map's keys in deterministic order.

    cbor2 encodes such a value to the same bytes with and without
    ``canonical=True`` (the canonical encoder differs only in how it sorts maps
    and sets and sizes floats), so the plain encoder can stand in for it.
    """
    items: Iterable[object]
    if type(value) is dict:
        keys = tuple(value)
        # Only all-text key tuples are cached as True, and a tuple equal to one
        # of those holds the same text keys (nothing else compares equal to a str).
        in_order = _KEYS_IN_ORDER.get(keys)
        if in_order is None:
            in_order = _text_keys_in_order(keys)
            if len(_KEYS_IN_ORDER) < _KEYS_IN_ORDER_MAX:
                _KEYS_IN_ORDER[keys] = in_order
        if not in_order:
            return False
        items = value.values()
    elif type(value) is list:
        items = value
    else:
        return False
    for item in items:
        if type(item) in _PLAIN_SCALARS or (depth < MAX_CBOR_DEPTH and _plain(item, depth + 1)):
            continue
        return False
    return True


def _payload_object(payload: bytes) -> object:
    """Decode a payload to cbor2's data model; refuse it unless in deterministic encoding."""
    obj = strict_cbor_loads(payload, "payload")
    try:
        expected = cbor2.dumps(obj) if _plain(obj) else canonical_cbor(obj)
    except (cbor2.CBOREncodeError, ValueError, TypeError, RecursionError):
        # A shared reference (tags 28/29) can make the decoded value cyclic.
        raise MessageError("not in deterministic encoding (cyclic)", field="payload") from None
    if expected != payload:
        raise _not_deterministic(payload, expected, "payload")
    return obj


def decode_payload(payload: bytes) -> Message:
    # A Telemetry or Bulk message in its one valid layout is read without the generic
    # tables; what that does not take (every other type, every invalid payload) takes the
    # generic path, which names what is wrong.
    message = telemetry.decode_bulk(payload) or telemetry.decode(payload)
    if message is not None:
        return message
    return message_from_wire(_payload_object(payload))


@dataclass(frozen=True, slots=True)
class Verified:
    """A message whose signature checked out under a pinned key."""

    message: Message
    kid: bytes
    cose: bytes


def verify(cose: bytes, keys: KeyRing) -> Verified:
    """Parse, authenticate and decode one COSE_Sign1.

    The signature is checked before the payload is decoded, so unauthenticated
    bytes never reach the payload parser; the signer's pinned side must match
    the side the payload claims.
    """
    envelope = parse_envelope(cose)
    pinned = keys.lookup(envelope.kid)
    if pinned is None:
        raise UnknownKeyError(f"unknown key id {envelope.kid.hex()}")
    side, verifier = pinned
    if not verifier.verify(envelope.signed_bytes(), envelope.signature):
        raise SignatureError(f"bad signature for key id {envelope.kid.hex()}")
    message = decode_payload(envelope.payload)
    if message.side != side:
        raise SignatureError(
            f"key {envelope.kid.hex()} is pinned for side {side!r}, "
            f"but the message claims side {message.side!r}"
        )
    return Verified(message, envelope.kid, cose)


def frame(cose: bytes) -> bytes:
    """Length-prefix one COSE_Sign1 for the stream."""
    if len(cose) > MAX_FRAME_SIZE:
        raise FrameError(f"frame of {len(cose)} bytes exceeds the maximum {MAX_FRAME_SIZE}")
    return len(cose).to_bytes(LENGTH_PREFIX_SIZE, "big") + cose


class FrameReader:
    """Splits a byte stream into frames, holding at most one partial frame.

    A zero or over-maximum length cannot be resynchronised from, so it raises
    FrameError and the reader refuses further input.
    """

    __slots__ = ("_broken", "_buffer")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._broken = False

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        if self._broken:
            raise FrameError("the stream is already broken; no further frames are read")
        self._buffer += data
        frames: list[bytes] = []
        buf = self._buffer
        start = 0
        while len(buf) - start >= LENGTH_PREFIX_SIZE:
            length = int.from_bytes(buf[start : start + LENGTH_PREFIX_SIZE], "big")
            if length == 0 or length > MAX_FRAME_SIZE:
                self._broken = True
                self._buffer = bytearray()
                raise FrameError(
                    f"frame length {length} is outside 1..{MAX_FRAME_SIZE}; stream closed"
                )
            end = start + LENGTH_PREFIX_SIZE + length
            if len(buf) < end:
                break
            frames.append(bytes(buf[start + LENGTH_PREFIX_SIZE : end]))
            start = end
        if start:
            del buf[:start]
        return frames
