"""Our checkpoints and cosignatures, opened by Go's golang.org/x/mod/sumdb/note."""

from __future__ import annotations

import subprocess
from pathlib import Path

from clearline.log import merkle
from clearline.log.note import COSIGNATURE_V1, Note, NoteKey, TreeHead, cosign, signed_checkpoint
from clearline.protocol.signing import Ed25519Signer

LOG = Ed25519Signer.from_label("US")
WITNESS = Ed25519Signer.from_label("witness")


def _open(notecheck: Path, note: Note, vkey: str, *cosigners: str, tmp: Path) -> tuple[int, str]:
    path = tmp / "note"
    path.write_text(str(note))
    done = subprocess.run(
        [str(notecheck), str(path), vkey, *cosigners], capture_output=True, text=True
    )
    return done.returncode, done.stdout + done.stderr


def test_go_opens_our_checkpoint_and_the_witness_cosignature(
    notecheck: Path, tmp_path: Path
) -> None:
    root = merkle.root_hash([merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")])
    checkpoint = signed_checkpoint("US", LOG, 2, root)
    origin = TreeHead.parse(checkpoint.text).origin
    vkey = NoteKey(origin, LOG.public_key).vkey()
    cosigned = Note(
        checkpoint.text,
        (*checkpoint.signatures, cosign(checkpoint.text, "witness.example/w", WITNESS, 1)),
    )
    witness = NoteKey("witness.example/w", WITNESS.public_key, COSIGNATURE_V1).vkey()
    code, out = _open(notecheck, cosigned, vkey, witness, tmp=tmp_path)
    assert code == 0, out
    assert out.split() == [origin, "witness.example/w"]


def test_go_refuses_our_checkpoint_once_changed(notecheck: Path, tmp_path: Path) -> None:
    checkpoint = signed_checkpoint("US", LOG, 2, bytes(32))
    vkey = NoteKey(TreeHead.parse(checkpoint.text).origin, LOG.public_key).vkey()
    forged = Note(checkpoint.text.replace("\n2\n", "\n3\n"), checkpoint.signatures)
    code, out = _open(notecheck, forged, vkey, tmp=tmp_path)
    assert code == 1 and "invalid signature" in out, out


def test_go_refuses_a_cosignature_over_another_tree_head(notecheck: Path, tmp_path: Path) -> None:
    checkpoint = signed_checkpoint("US", LOG, 2, bytes(32))
    other = signed_checkpoint("US", LOG, 3, bytes(32))
    vkey = NoteKey(TreeHead.parse(checkpoint.text).origin, LOG.public_key).vkey()
    moved = cosign(other.text, "witness.example/w", WITNESS, 1)
    witness = NoteKey("witness.example/w", WITNESS.public_key, COSIGNATURE_V1).vkey()
    forged = Note(checkpoint.text, (*checkpoint.signatures, moved))
    code, out = _open(notecheck, forged, vkey, witness, tmp=tmp_path)
    assert code == 1 and "invalid signature" in out, out
