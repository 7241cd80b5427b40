"""The tlog-witness add-checkpoint exchange (https://c2sp.org/tlog-witness), as text.

A request body is an ``old <size>`` line, up to 63 base64 consistency-proof hashes one a
line, a blank line, then the signed checkpoint note. A witness answers 200 with its
cosignature lines, or 409 with ``<size>\\n`` (the size it last cosigned), or one of the other
statuses the specification names. `check_add` is the witness's whole decision about a
request against its state, so the server and the tests share one reading of the rules.

Pure: no clock, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass

from clearline.errors import NoteError, ProofError, WitnessRefusalError
from clearline.log import merkle
from clearline.log.note import DASH, Note, NoteSignature, TreeHead, parse_note

MAX_PROOF_LINES = 63
"""The most consistency-proof lines a client may send (the specification's limit)."""
MAX_COSIGNATURE_LINES = 16
"""The most cosignature lines a client reads from one answer (what a note must accept)."""
SIZE_CONTENT_TYPE = "text/x.tlog.size"
"""The Content-Type of a 409 answer, whose body is the witness's latest size."""
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")


@dataclass(frozen=True, slots=True)
class AddCheckpoint:
    """One add-checkpoint request: the size the client believes the witness holds, the
    consistency proof from it, and the checkpoint."""

    old_size: int
    proof: tuple[bytes, ...]
    note: Note
    head: TreeHead


@dataclass(frozen=True, slots=True)
class Latest:
    """What a witness holds for one log: the checkpoint it last cosigned."""

    size: int
    root: bytes


def _size(text: str, what: str) -> int:
    if not _DECIMAL.fullmatch(text) or int(text) >= 1 << 63:
        raise WitnessRefusalError(400, f"{what}: {text[:30]!r} is not a decimal without leading 0")
    return int(text)


def request_body(old_size: int, proof: Sequence[bytes], note: Note) -> bytes:
    """The body a client POSTs to <prefix>/add-checkpoint."""
    lines = [f"old {old_size}", *(base64.b64encode(h).decode() for h in proof)]
    return ("".join(f"{line}\n" for line in lines) + "\n" + str(note)).encode()


def parse_request(body: bytes) -> AddCheckpoint:
    """A request body read strictly; WitnessRefusalError(400) says what is malformed."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WitnessRefusalError(400, f"the body is not UTF-8 (byte {exc.start})") from None
    header, blank, note_text = text.partition("\n\n")
    if not blank:
        raise WitnessRefusalError(
            400, "expected the old size and proof lines, a blank line, a note"
        )
    lines = header.split("\n")
    first = lines[0]
    if not first.startswith("old "):
        raise WitnessRefusalError(400, "the first line must be 'old <size>'")
    old_size = _size(first[4:], "old size")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise WitnessRefusalError(400, f"more than {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for number, line in enumerate(lines[1:], 2):
        try:
            node = base64.b64decode(line, validate=True)
        except binascii.Error:
            node = b""
        if len(node) != merkle.HASH_SIZE:
            raise WitnessRefusalError(400, f"line {number}: expected a base64 SHA-256 hash")
        proof.append(node)
    try:
        note = parse_note(note_text)
        head = TreeHead.parse(note.text)
    except NoteError as exc:
        raise WitnessRefusalError(400, f"the checkpoint: {exc}") from None
    return AddCheckpoint(old_size, tuple(proof), note, head)


def check_add(request: AddCheckpoint, latest: Latest | None) -> bool:
    """Whether the witness may cosign `request`, given what it holds for the log: True if
    the checkpoint is new (the state must move to it before any cosignature leaves), False if
    it is the very checkpoint the witness holds. Otherwise WitnessRefusalError with the status the
    specification names: 400 (old size above the size, or a proof from nothing), 409 (old
    size is not the witness's, or another root for the size it holds), 422 (bad proof).

    Together these make the witness's promise: the sizes it cosigns for a log only grow,
    each is consistent with the one before, and no size ever gets a second root."""
    old, head = request.old_size, request.head
    if old > head.size:
        raise WitnessRefusalError(400, f"old size {old} is above the checkpoint's size {head.size}")
    known = latest.size if latest is not None else 0
    if old != known:
        raise WitnessRefusalError(409, f"the witness holds size {known}, not {old}", known)
    if latest is not None and old == head.size:
        if head.root != latest.root:
            raise WitnessRefusalError(
                409, f"the witness holds another root for size {old}: a split view", known
            )
        if request.proof:
            raise WitnessRefusalError(422, "a proof between equal sizes must be empty")
        return False
    if old == 0:
        if request.proof:
            raise WitnessRefusalError(400, "the proof must be empty when the old size is 0")
        return True
    assert latest is not None  # old == known > 0
    try:
        merkle.verify_consistency(old, head.size, request.proof, latest.root, head.root)
    except ProofError as exc:
        raise WitnessRefusalError(422, f"the consistency proof does not verify: {exc}") from None
    return True


def parse_size(body: bytes) -> int:
    """The size in a 409 answer (``<size>\\n``)."""
    text = body.decode("ascii", "replace")
    if not text.endswith("\n"):
        raise WitnessRefusalError(502, "a 409 answer's size must end with a newline")
    return _size(text[:-1], "the witness's size")


def parse_cosignatures(body: bytes) -> tuple[NoteSignature, ...]:
    """The signature lines of a 200 answer, by syntax only: verify them against the
    checkpoint with the witness's key before trusting any."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise NoteError("the witness's answer is not UTF-8") from None
    lines = text.splitlines(keepends=True)
    if not lines or len(lines) > MAX_COSIGNATURE_LINES:
        raise NoteError(f"expected 1 to {MAX_COSIGNATURE_LINES} cosignature lines")
    if any(not line.startswith(DASH) for line in lines):
        raise NoteError("each line of the answer must be a note signature line")
    # The signature lines of a note with a stand-in text: the note parser checks each.
    return parse_note("x\n\n" + text).signatures
