"""Signers the simulator can run with, behind the protocol's Signer/Verifier interface.

`ed25519` runs the real thing. `keyed-hash` is the fast stand-in for Monte Carlo:
a 64-byte keyed BLAKE2b tag. It is *not* a signature (whoever can check a tag
can make one), but inside the simulation only the two sides hold the key, so a
third party's forgeries fail exactly as they would against Ed25519, at about a
twentieth of the cost. Every result records which signer produced it.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

from clearline.protocol.signing import Ed25519Signer, Signer, Verifier, key_id

SignerName = Literal["ed25519", "keyed-hash"]
SIGNERS: tuple[SignerName, ...] = ("ed25519", "keyed-hash")


class KeyedHashSigner:
    """Stand-in signer: BLAKE2b keyed with a secret, 64-byte tags. Simulation only."""

    __slots__ = ("_secret", "kid", "public_key")

    def __init__(self, secret: bytes) -> None:
        if not 16 <= len(secret) <= 64:
            raise ValueError(f"a keyed-hash secret is 16 to 64 bytes, got {len(secret)}")
        self._secret = secret
        # The "public key" names the key; it is a hash of the secret, not a way to verify.
        self.public_key: bytes = hashlib.sha256(b"clearline keyed-hash " + secret).digest()
        self.kid: bytes = key_id(self.public_key)

    def sign(self, data: bytes) -> bytes:
        return hashlib.blake2b(data, key=self._secret, digest_size=64).digest()

    def verifier(self) -> KeyedHashVerifier:
        return KeyedHashVerifier(self)


class KeyedHashVerifier:
    __slots__ = ("_signer", "kid")

    def __init__(self, signer: KeyedHashSigner) -> None:
        self._signer = signer
        self.kid: bytes = signer.kid

    def verify(self, data: bytes, signature: bytes) -> bool:
        return hmac.compare_digest(self._signer.sign(data), signature)


def make_signer(kind: SignerName, label: str) -> tuple[Signer, Verifier]:
    """A simulated side's key pair, derived from a public label (simulation keys are not secret)."""
    seed = hashlib.sha256(b"clearline sim key " + label.encode()).digest()
    if kind == "ed25519":
        ed = Ed25519Signer(seed)
        return ed, ed.verifier()
    if kind == "keyed-hash":
        kh = KeyedHashSigner(seed)
        return kh, kh.verifier()
    raise ValueError(f"unknown signer {kind!r}; expected one of {', '.join(SIGNERS)}")
