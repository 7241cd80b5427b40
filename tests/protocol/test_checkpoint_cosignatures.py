"""A Checkpoint with its note signature and witnesses' cosignatures: on the wire and back,
within its bounds, and each line checked against the witness keys a receiver configured."""

from __future__ import annotations

import dataclasses

import pytest

from clearline.errors import MessageError
from clearline.log.note import (
    Note,
    NoteKey,
    NoteSignature,
    TreeHead,
    cosign,
    log_origin,
    verify_note,
)
from clearline.node.config import Witnessing, WitnessServer
from clearline.node.witnessing import Witnesses
from clearline.protocol import codec
from clearline.protocol.messages import Checkpoint, Message
from clearline.protocol.signing import Ed25519Signer, KeyRing
from clearline.protocol.vectors import WITNESS_LABEL, WITNESS_NAME, build

US = Ed25519Signer.from_label("US")
WITNESS = Ed25519Signer.from_label(WITNESS_LABEL)


def _witnessed() -> Message:
    return next(v.message for v in build() if v.name == "checkpoint-witnessed-us")


def _witnesses(*signers: tuple[str, Ed25519Signer], quorum: int = 1) -> Witnesses:
    servers = tuple(
        WitnessServer(name=name, url="http://127.0.0.1:9", public_key=s.public_key.hex())
        for name, s in signers
    )
    return Witnesses(Witnessing(quorum=quorum, servers=servers))


def test_a_witnessed_checkpoint_round_trips_and_its_lines_verify() -> None:
    message = _witnessed()
    ring = KeyRing()
    ring.add("US", US.verifier())
    back = codec.verify(codec.sign(message, US), ring).message.body
    assert back == message.body
    assert isinstance(back, Checkpoint) and back.cosigs is not None and back.note_sig is not None
    origin = log_origin("US", US.kid)
    text = TreeHead(origin, back.size, back.root).text()
    owner = NoteKey(origin, US.public_key)
    signed = Note(text, (NoteSignature(origin, owner.key_id, back.note_sig),))
    assert verify_note(signed, [owner]), "the note signature is the sender's over the rebuilt text"
    cosigners, problems = _witnesses((WITNESS_NAME, WITNESS)).check(text, back.cosigs)
    assert (cosigners, problems) == ([WITNESS_NAME], [])


def test_a_bad_cosignature_is_reported_and_a_strangers_is_ignored() -> None:
    body = _witnessed().body
    assert isinstance(body, Checkpoint) and body.cosigs is not None
    text = TreeHead(log_origin("US", US.kid), body.size, body.root).text()
    line = body.cosigs[0]
    tampered = line[:-6] + (b"A" if line[-6:-5] != b"A" else b"B") + line[-5:]
    stranger = cosign(text, "other.example/w", Ed25519Signer.from_label("other"), 1)
    witnesses = _witnesses((WITNESS_NAME, WITNESS), ("other.example/w2", US))
    cosigners, problems = witnesses.check(text, (tampered, stranger.line().encode(), b"\xff"))
    assert cosigners == []
    assert len(problems) == 2
    assert "does not verify" in problems[0] and "malformed" in problems[1]
    # The same line over another tree head does not verify either.
    moved = TreeHead(log_origin("US", US.kid), body.size + 1, body.root).text()
    assert witnesses.check(moved, body.cosigs)[0] == []


@pytest.mark.parametrize(
    "cosigs",
    [(), tuple(b"x" for _ in range(17)), (b"x" * 513,)],
    ids=["empty list", "17 lines", "a line of 513 bytes"],
)
def test_cosignatures_are_bounded_on_the_wire(cosigs: tuple[bytes, ...]) -> None:
    body = _witnessed().body
    assert isinstance(body, Checkpoint)
    message = dataclasses.replace(_witnessed(), body=dataclasses.replace(body, cosigs=cosigs))
    with pytest.raises(MessageError, match="cosigs"):
        codec.sign(message, US)


def test_a_note_signature_is_exactly_64_bytes() -> None:
    body = _witnessed().body
    assert isinstance(body, Checkpoint)
    message = dataclasses.replace(_witnessed(), body=dataclasses.replace(body, note_sig=b"x"))
    with pytest.raises(MessageError, match="nsig"):
        codec.sign(message, US)
