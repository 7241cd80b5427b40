"""A demo run's logs, checked by code nobody here wrote: each side's last checkpoint, as
the C2SP signed note it also is, opens in Go's golang.org/x/mod/sumdb/note with the
side's key, and carries the witness's cosignature, which transparency-dev/formats'
tlog-cosignature/v1 verifier accepts."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from clearline.log.note import (
    COSIGNATURE_V1,
    Note,
    NoteKey,
    NoteSignature,
    TreeHead,
    log_origin,
    parse_note,
)
from clearline.node.keys import load_verifier
from clearline.protocol.messages import Checkpoint
from tests.log.exchange import entries


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    done = subprocess.run(
        [sys.executable, "-m", "clearline", "demo", "--headless", "--episodes", "0", "--out", out],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out


@pytest.mark.slow
@pytest.mark.parametrize("side", ["US", "PRC"])
def test_a_demo_checkpoint_opens_in_go_with_the_witness_cosignature(
    demo: Path, side: str, notecheck: Path, tmp_path: Path
) -> None:
    log = demo / f"{side.lower()}-data" / f"{side.lower()}.db"
    sent = [
        e.message.body
        for e in entries(log)
        if e.message.side == side
        and e.message.session_id
        and isinstance(e.message.body, Checkpoint)
        and e.message.body.cosigs
    ]
    assert sent, f"{side} sent no cosigned checkpoint to the peer"
    checkpoint = sent[-1]
    assert checkpoint.note_sig is not None and checkpoint.cosigs
    signer = load_verifier(demo / "keys" / f"{side}.signing.pub")
    origin = log_origin(side, signer.kid)
    text = TreeHead(origin, checkpoint.size, checkpoint.root).text()
    key = NoteKey(origin, signer.public_key)
    own = NoteSignature(origin, key.key_id, checkpoint.note_sig)
    lines = "".join(line.decode() for line in checkpoint.cosigs)
    cosigned = parse_note(text + "\n" + own.line() + lines)
    witness_name = tomllib.loads((demo / "witness" / "witness.toml").read_text())["name"]
    witness_key = bytes.fromhex((demo / "witness" / "witness.pub").read_text().strip())
    witness = NoteKey(witness_name, witness_key, COSIGNATURE_V1)
    path = tmp_path / "note"
    path.write_text(str(Note(cosigned.text, cosigned.signatures)))
    done = subprocess.run(
        [str(notecheck), str(path), key.vkey(), witness.vkey()], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.split() == [origin, witness_name]
