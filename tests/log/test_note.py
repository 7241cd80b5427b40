"""C2SP signed notes, checkpoints and cosignatures."""

from __future__ import annotations

import pytest

from clearline.errors import NoteError
from clearline.log import merkle
from clearline.log.note import (
    COSIGNATURE_V1,
    Note,
    NoteKey,
    TreeHead,
    cosign,
    log_origin,
    parse_note,
    sign_note,
    signed_checkpoint,
    verify_note,
)
from clearline.protocol.signing import Ed25519Signer

# The signed-note specification's own example (also Go's sumdb/note documentation).
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n"
    "\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERY"
    "NZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)
LOG = Ed25519Signer.from_label("US")
WITNESS = Ed25519Signer.from_label("witness")


def test_the_specifications_example_note_verifies() -> None:
    key = NoteKey.parse(SPEC_VKEY)
    note = parse_note(SPEC_NOTE)
    assert [v.key.name for v in verify_note(note, [key])] == ["example.com/foo"]
    assert note.text == "This is an example message.\n"
    assert key.vkey() == SPEC_VKEY
    forged = parse_note(SPEC_NOTE.replace("example message", "exemplary message"))
    with pytest.raises(NoteError, match="does not verify"):
        verify_note(forged, [key])


def test_a_checkpoint_round_trips_and_names_the_side_and_key() -> None:
    leaves = [merkle.leaf_hash(bytes([i])) for i in range(7)]
    note = signed_checkpoint("US", LOG, 7, merkle.root_hash(leaves))
    again = parse_note(str(note))
    assert again == note
    head = TreeHead.parse(again.text)
    assert head.origin == log_origin("US", LOG.kid) and head.origin.startswith("clearline/US/")
    assert (head.size, head.root) == (7, merkle.root_hash(leaves))
    key = NoteKey(head.origin, LOG.public_key)
    assert len(verify_note(again, [key])) == 1


def test_a_cosignature_verifies_and_binds_its_time_and_the_checkpoint() -> None:
    note = signed_checkpoint("US", LOG, 3, bytes(32))
    cosignature = cosign(note.text, "witness.example/w1", WITNESS, 1_700_000_000)
    both = Note(note.text, (*note.signatures, cosignature))
    witness = NoteKey("witness.example/w1", WITNESS.public_key, COSIGNATURE_V1)
    log = NoteKey(TreeHead.parse(note.text).origin, LOG.public_key)
    verified = verify_note(parse_note(str(both)), [log, witness])
    assert [(v.key.name, v.timestamp) for v in verified] == [
        (log.name, None),
        ("witness.example/w1", 1_700_000_000),
    ]
    # The same signature over another time, or another tree, fails.
    later = cosignature.signature[:7] + b"\x01" + cosignature.signature[8:]
    moved = type(cosignature)(cosignature.name, cosignature.key_id, later)
    with pytest.raises(NoteError, match="does not verify"):
        verify_note(Note(note.text, (moved,)), [witness])
    other = signed_checkpoint("US", LOG, 4, bytes(32))
    with pytest.raises(NoteError, match="does not verify"):
        verify_note(Note(other.text, (cosignature,)), [witness])


def test_unknown_keys_are_ignored_and_a_note_without_known_keys_verifies_nothing() -> None:
    note = sign_note("hello\n", "someone.example", Ed25519Signer.from_label("x"))
    assert verify_note(note, [NoteKey("other.example", LOG.public_key)]) == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("no blank line\n\u2014 a AAAA\n", "blank line"),
        ("text\n\n", "signature lines"),
        ("text\n\n- a AAAAAAAA\n", "em dash"),
        ("text\n\n\u2014 a !!!!\n", "not base64"),
        ("text\n\n\u2014 a AAAA\n", "too short"),
        ("text\n\n\u2014 a+b AAAAAAAA\n", "without spaces or"),
        ("text\n\n\u2014 a AAAAAAAA", "end with a newline"),
        ("te\x07xt\n\n\u2014 a AAAAAAAA\n", "control character"),
    ],
)
def test_malformed_notes_are_refused_saying_why(text: str, problem: str) -> None:
    with pytest.raises(NoteError, match=problem):
        parse_note(text)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("origin\n07\nAAAA\n", "leading 0"),
        ("origin\n7\n", "needs an origin"),
        ("origin\n7\nAAAA\n", "32"),
        ("\n7\n" + "A" * 43 + "=\n", "empty origin"),
    ],
)
def test_malformed_checkpoints_are_refused_saying_why(text: str, problem: str) -> None:
    with pytest.raises(NoteError, match=problem):
        TreeHead.parse(text)
