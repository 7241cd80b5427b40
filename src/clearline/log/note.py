"""C2SP signed notes, transparency-log checkpoints and Ed25519 cosignatures.

The formats transparency logs and their witnesses already speak (Go's checksum
database, Sigstore, static CT), so that a tool nobody here wrote can check a
clearline log's tree heads:

- signed-note (https://c2sp.org/signed-note): a text ending in a newline, a
  blank line, then one line per signature, ``— <key name> base64(key ID ||
  signature)``; an Ed25519 key's ID is ``SHA-256(name || "\\n" || 0x01 ||
  public key)[:4]``.
- tlog-checkpoint (https://c2sp.org/tlog-checkpoint): the text is the origin
  line, the tree size in decimal and the base64 root hash, each on its line.
- tlog-cosignature (https://c2sp.org/tlog-cosignature): a witness's note
  signature with type 0x04, whose signature is ``timestamp (u64, big-endian) ||
  Ed25519 signature`` over ``cosignature/v1\\ntime <timestamp>\\n`` followed by
  the checkpoint text.

Pure: no clock (the caller passes the timestamp), no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from clearline.errors import NoteError
from clearline.protocol.signing import Ed25519Verifier, Signer

ED25519 = 0x01
"""Signature type of a signed-note Ed25519 key."""
COSIGNATURE_V1 = 0x04
"""Signature type of an Ed25519 tlog-cosignature key."""
MAX_SIGNATURES = 100
"""More signature lines than this and a note is refused (as Go's sumdb/note does)."""
MAX_NOTE_BYTES = 1 << 20
DASH = "\u2014 "
_NAME = re.compile(r"[^\s+]+")
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")


def key_id(name: str, signature_type: int, public_key: bytes) -> bytes:
    """The 4-byte ID that binds a note signature to (name, type, key)."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([signature_type]) + public_key).digest()[:4]


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise NoteError(f"key name {name!r}: must be non-empty, without spaces or '+'")


@dataclass(frozen=True, slots=True)
class NoteKey:
    """A verifier key: who signs, with which key, of which type."""

    name: str
    public_key: bytes
    signature_type: int = ED25519

    def __post_init__(self) -> None:
        _check_name(self.name)
        if self.signature_type not in (ED25519, COSIGNATURE_V1) or len(self.public_key) != 32:
            raise NoteError(
                f"key {self.name}: expected an Ed25519 key (type 0x01 or 0x04) of 32 bytes"
            )

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.signature_type, self.public_key)

    def vkey(self) -> str:
        """The key as text (``<name>+<hex key ID>+<base64(type || key)>``)."""
        material = base64.b64encode(bytes([self.signature_type]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{material}"

    @classmethod
    def parse(cls, text: str) -> NoteKey:
        parts = text.strip().split("+")
        if len(parts) != 3:
            raise NoteError(f"verifier key {text!r}: expected <name>+<hex key id>+<base64 key>")
        name, hex_id, material_b64 = parts
        try:
            material = base64.b64decode(material_b64, validate=True)
            expected_id = bytes.fromhex(hex_id)
        except (binascii.Error, ValueError) as exc:
            raise NoteError(f"verifier key {text!r}: {exc}") from exc
        if len(material) != 33:
            raise NoteError(f"verifier key {text!r}: expected a type byte and 32 key bytes")
        key = cls(name, material[1:], material[0])
        if key.key_id != expected_id:
            raise NoteError(f"verifier key {text!r}: its key ID does not match the key")
        return key


@dataclass(frozen=True, slots=True)
class NoteSignature:
    name: str
    key_id: bytes
    signature: bytes
    """For a cosignature: the 8-byte timestamp, then the Ed25519 signature."""

    def line(self) -> str:
        payload = base64.b64encode(self.key_id + self.signature).decode()
        return f"{DASH}{self.name} {payload}\n"


@dataclass(frozen=True, slots=True)
class Note:
    text: str
    signatures: tuple[NoteSignature, ...]

    def __str__(self) -> str:
        return self.text + "\n" + "".join(s.line() for s in self.signatures)


def _check_text(text: str) -> None:
    if not text.endswith("\n") or "\n\n" in text:
        raise NoteError("a note's text must end with a newline and hold no blank line")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise NoteError("a note's text holds a control character")


def parse_note(note: str) -> Note:
    """Split a signed note into text and signature lines, checking their syntax only."""
    if len(note.encode()) > MAX_NOTE_BYTES:
        raise NoteError(f"note longer than {MAX_NOTE_BYTES} bytes")
    if not note.endswith("\n"):
        raise NoteError("a note must end with a newline")
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("a note needs a blank line between its text and its signatures")
    text, lines = note[: split + 1], note[split + 2 :].splitlines(keepends=True)
    _check_text(text)
    if not lines or len(lines) > MAX_SIGNATURES:
        raise NoteError(f"a note needs 1 to {MAX_SIGNATURES} signature lines")
    signatures = []
    for number, line in enumerate(lines, 1):
        if not line.startswith(DASH) or not line.endswith("\n"):
            raise NoteError(f"signature line {number}: must start with an em dash and a space")
        fields = line[len(DASH) : -1].split(" ")
        if len(fields) != 2:
            raise NoteError(f"signature line {number}: expected '<name> <base64>'")
        name, payload_b64 = fields
        _check_name(name)
        try:
            payload = base64.b64decode(payload_b64, validate=True)
        except binascii.Error as exc:
            raise NoteError(f"signature line {number}: not base64: {exc}") from exc
        if len(payload) < 5:
            raise NoteError(f"signature line {number}: too short for a key ID and a signature")
        signatures.append(NoteSignature(name, payload[:4], payload[4:]))
    return Note(text, tuple(signatures))


def sign_note(text: str, name: str, signer: Signer) -> Note:
    """`text` signed by `signer` under the key name `name` (an Ed25519 note signature)."""
    _check_text(text)
    key = NoteKey(name, signer.public_key)
    return Note(text, (NoteSignature(name, key.key_id, signer.sign(text.encode())),))


def _cosigned_message(text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


def cosign(text: str, name: str, signer: Signer, timestamp: int) -> NoteSignature:
    """A witness's tlog-cosignature/v1 over a checkpoint's text, at POSIX `timestamp`."""
    _check_text(text)
    if not 0 <= timestamp < 1 << 63:
        raise NoteError(f"timestamp {timestamp} out of range")
    key = NoteKey(name, signer.public_key, COSIGNATURE_V1)
    signature = signer.sign(_cosigned_message(text, timestamp))
    return NoteSignature(name, key.key_id, timestamp.to_bytes(8, "big") + signature)


@dataclass(frozen=True, slots=True)
class Verified:
    key: NoteKey
    timestamp: int | None = None
    """A cosignature's time (None for a plain note signature)."""


def verify_note(note: Note, keys: Sequence[NoteKey]) -> list[Verified]:
    """The signatures of `keys` on `note`, each verified. Lines from keys not given are
    ignored; a line from a given key that does not verify rejects the note (NoteError)."""
    by_id = {(k.name, k.key_id): k for k in keys}
    verified: list[Verified] = []
    seen: set[tuple[str, bytes]] = set()
    for signature in note.signatures:
        ident = (signature.name, signature.key_id)
        key = by_id.get(ident)
        if key is None or ident in seen:
            continue
        seen.add(ident)
        checker = Ed25519Verifier(key.public_key)
        if key.signature_type == COSIGNATURE_V1:
            if len(signature.signature) != 72:
                raise NoteError(f"cosignature by {key.name}: expected 8 + 64 bytes")
            timestamp = int.from_bytes(signature.signature[:8], "big")
            message = _cosigned_message(note.text, timestamp)
            good = timestamp < 1 << 63 and checker.verify(message, signature.signature[8:])
            result = Verified(key, timestamp)
        else:
            good = len(signature.signature) == 64 and checker.verify(
                note.text.encode(), signature.signature
            )
            result = Verified(key)
        if not good:
            raise NoteError(f"the signature by {key.name} ({key.key_id.hex()}) does not verify")
        verified.append(result)
    return verified


@dataclass(frozen=True, slots=True)
class TreeHead:
    """A tlog-checkpoint's text: which log, how many entries, which root."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode()]
        return "".join(f"{line}\n" for line in (*lines, *self.extensions))

    @classmethod
    def parse(cls, text: str) -> TreeHead:
        _check_text(text)
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError("a checkpoint needs an origin, a size and a root hash line")
        origin, size_text, root_b64, *extensions = lines
        if not origin:
            raise NoteError("checkpoint: empty origin line")
        if not _DECIMAL.fullmatch(size_text) or int(size_text) >= 1 << 64:
            raise NoteError(f"checkpoint: size {size_text!r} is not a decimal without leading 0")
        try:
            root = base64.b64decode(root_b64, validate=True)
        except binascii.Error as exc:
            raise NoteError(f"checkpoint: root hash is not base64: {exc}") from exc
        if len(root) != 32:
            raise NoteError(f"checkpoint: root hash is {len(root)} bytes, expected 32")
        return cls(origin, int(size_text), root, tuple(extensions))


def log_origin(side: str, kid: bytes) -> str:
    """The origin (and note key name) of a side's log: names the side and its signing key,
    so two logs never share one."""
    return f"clearline/{side}/{kid.hex()}"


def signed_checkpoint(side: str, signer: Signer, size: int, root: bytes) -> Note:
    """The C2SP checkpoint of a side's log at `size`, signed with the side's log key."""
    origin = log_origin(side, signer.kid)
    return sign_note(TreeHead(origin, size, root).text(), origin, signer)
