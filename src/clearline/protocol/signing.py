"""Signing keys, key identifiers, and the pinned set of keys a Session trusts.

A key is named on the wire by its `kid`: the first 16 bytes of SHA-256 of the
32-byte raw Ed25519 public key. `Signer` and `Verifier` are Protocols so the
simulator can plug in a faster stand-in behind the same interface.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Protocol

import nacl.exceptions
import nacl.signing

from clearline.errors import KeyMaterialError
from clearline.protocol.constants import KID_SIZE


def key_id(public_key: bytes) -> bytes:
    """The wire name of a public key."""
    return hashlib.sha256(public_key).digest()[:KID_SIZE]


class Signer(Protocol):
    """Something that signs on behalf of one key."""

    @property
    def kid(self) -> bytes: ...

    @property
    def public_key(self) -> bytes: ...

    def sign(self, data: bytes) -> bytes: ...


class Verifier(Protocol):
    """Something that checks signatures of one key."""

    @property
    def kid(self) -> bytes: ...

    def verify(self, data: bytes, signature: bytes) -> bool: ...


class Ed25519Signer:
    """An Ed25519 private key (RFC 8032), deterministic signatures."""

    __slots__ = ("_key", "kid", "public_key")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise KeyMaterialError(f"an Ed25519 seed is 32 bytes, got {len(seed)}")
        self._key = nacl.signing.SigningKey(seed)
        self.public_key: bytes = bytes(self._key.verify_key)
        self.kid: bytes = key_id(self.public_key)

    @classmethod
    def from_label(cls, label: str) -> Ed25519Signer:
        """A *test* key derived from a public label. Never use outside tests and demos."""
        return cls(hashlib.sha256(b"clearline test key " + label.encode()).digest())

    @property
    def seed(self) -> bytes:
        return bytes(self._key)

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data).signature

    def verifier(self) -> Ed25519Verifier:
        return Ed25519Verifier(self.public_key)


class Ed25519Verifier:
    """An Ed25519 public key."""

    __slots__ = ("_key", "kid", "public_key")

    def __init__(self, public_key: bytes) -> None:
        if len(public_key) != 32:
            raise KeyMaterialError(f"an Ed25519 public key is 32 bytes, got {len(public_key)}")
        self._key = nacl.signing.VerifyKey(public_key)
        self.public_key = public_key
        self.kid = key_id(public_key)

    def verify(self, data: bytes, signature: bytes) -> bool:
        try:
            self._key.verify(data, signature)
        except nacl.exceptions.BadSignatureError:
            return False
        return True


@dataclass
class KeyRing:
    """The keys a party trusts, by kid, each bound to a side. Pinned: nothing else is accepted."""

    _keys: dict[bytes, tuple[str, Verifier]] = field(default_factory=dict)

    def add(self, side: str, verifier: Verifier) -> None:
        known = self._keys.get(verifier.kid)
        if known is not None and known[0] != side:
            raise KeyMaterialError(
                f"key {verifier.kid.hex()} is already pinned for side {known[0]!r}, not {side!r}"
            )
        self._keys[verifier.kid] = (side, verifier)

    def lookup(self, kid: bytes) -> tuple[str, Verifier] | None:
        return self._keys.get(kid)
