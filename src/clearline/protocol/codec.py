"""Bytes on the wire: deterministic CBOR payloads, COSE_Sign1 envelopes, length-prefixed frames.

A frame is ``uint32_be(len) || COSE_Sign1``. The COSE_Sign1 (RFC 9052 §4.2) is
tag 18 around ``[protected, unprotected, payload, signature]`` where
``protected`` is the deterministic encoding of ``{1: -8, 4: kid}`` (EdDSA and
the signer's key id), ``unprotected`` is the empty map, and the signature is
Ed25519 over ``Sig_structure = ["Signature1", protected, h'', payload]``
(RFC 9052 §4.4). Decoding is strict: anything that is not exactly this shape,
or whose payload is not in deterministic encoding, is a `MessageError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cbor2

from clearline.errors import FrameError, MessageError, SignatureError, UnknownKeyError
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
from clearline.protocol.messages import Message, message_from_wire, message_to_wire
from clearline.protocol.signing import KeyRing, Signer


def canonical_cbor(obj: object) -> bytes:
    """Deterministic CBOR (RFC 8949 §4.2.1): shortest forms, definite lengths, sorted keys."""
    return cbor2.dumps(obj, canonical=True)


def strict_cbor_loads(data: bytes, what: str) -> object:
    """Decode one CBOR item, refusing indefinite lengths, duplicate keys and deep nesting."""
    try:
        return cbor2.loads(
            data, allow_indefinite=False, allow_duplicate_keys=False, max_depth=MAX_CBOR_DEPTH
        )
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise MessageError(f"{what} is not valid CBOR: {exc}") from None


def _protected_header(kid: bytes) -> bytes:
    return canonical_cbor({COSE_HEADER_ALG: COSE_ALG_EDDSA, COSE_HEADER_KID: kid})


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    """The bytes Ed25519 signs (RFC 9052 §4.4), with empty external AAD."""
    return canonical_cbor(["Signature1", protected, b"", payload])


def encode_payload(message: Message) -> bytes:
    return canonical_cbor(message_to_wire(message))


def sign(message: Message, signer: Signer) -> bytes:
    """Encode and sign a message: the exact COSE_Sign1 bytes that are sent and logged."""
    payload = encode_payload(message)
    protected = _protected_header(signer.kid)
    signature = signer.sign(sig_structure(protected, payload))
    return canonical_cbor(cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, payload, signature]))


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed but not yet verified COSE_Sign1."""

    kid: bytes
    protected: bytes
    payload: bytes
    signature: bytes

    def signed_bytes(self) -> bytes:
        return sig_structure(self.protected, self.payload)


def parse_envelope(cose: bytes) -> Envelope:
    """Check the COSE_Sign1 shape and headers; signatures and payload come later."""
    item = strict_cbor_loads(cose, "COSE_Sign1")
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
    headers = strict_cbor_loads(protected, "protected header")
    if not isinstance(headers, dict) or set(headers) != {COSE_HEADER_ALG, COSE_HEADER_KID}:
        raise MessageError("expected exactly {1: alg, 4: kid}", field="cose.protected")
    if headers[COSE_HEADER_ALG] != COSE_ALG_EDDSA or type(headers[COSE_HEADER_ALG]) is not int:
        raise MessageError(f"expected alg {COSE_ALG_EDDSA} (EdDSA)", field="cose.protected.alg")
    kid = headers[COSE_HEADER_KID]
    if type(kid) is not bytes or len(kid) != KID_SIZE:
        raise MessageError(f"expected a {KID_SIZE}-byte kid", field="cose.protected.kid")
    if protected != _protected_header(kid):
        raise MessageError("protected header is not deterministically encoded")
    if canonical_cbor(item) != cose:
        raise MessageError("COSE_Sign1 is not deterministically encoded")
    return Envelope(kid, protected, payload, signature)


def decode_payload(payload: bytes) -> Message:
    obj = strict_cbor_loads(payload, "payload")
    try:
        canonical = canonical_cbor(obj)
    except (cbor2.CBOREncodeError, ValueError, TypeError, RecursionError):
        # A shared reference (tags 28/29) can make the decoded value cyclic.
        raise MessageError("payload is not deterministically encoded") from None
    if canonical != payload:
        raise MessageError("payload is not deterministically encoded")
    return message_from_wire(obj)


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
