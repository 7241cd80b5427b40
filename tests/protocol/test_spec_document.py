"""docs/protocol.md matches the code: the state diagram and every vector, byte for byte."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import cbor2
import nacl.signing

from clearline.protocol import codec
from clearline.protocol.signing import Ed25519Signer, KeyRing
from clearline.protocol.vectors import OFFICER_LABEL, build

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "protocol.md"


def _render() -> str:
    spec = importlib.util.spec_from_file_location("update", ROOT / "scripts/update_protocol_doc.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.render())


def test_protocol_doc_is_current() -> None:
    assert DOC.read_text() == _render(), "run: python scripts/update_protocol_doc.py"


def _doc_frames() -> dict[str, bytes]:
    text = DOC.read_text()
    frames = {}
    for name, body in re.findall(
        r"#### ([a-z-]+)\n.*?Frame \(length prefix, then COSE_Sign1\), hex:\n\n```\n(.*?)```",
        text,
        re.S,
    ):
        frames[name] = bytes.fromhex(body.replace("\n", ""))
    return frames


def test_vectors_in_doc_equal_fresh_signatures() -> None:
    frames = _doc_frames()
    vectors = build()
    assert set(frames) == {v.name for v in vectors}
    for v in vectors:
        assert frames[v.name] == v.frame(), v.name


def test_vectors_verify_by_hand_without_our_codec() -> None:
    """What another implementation would do: parse with plain CBOR, rebuild Sig_structure."""
    labels = ("US", "PRC", OFFICER_LABEL)
    keys = {k.kid: k.public_key for k in (Ed25519Signer.from_label(x) for x in labels)}
    for name, frame in _doc_frames().items():
        length = int.from_bytes(frame[:4], "big")
        assert length == len(frame) - 4, name
        tag = cbor2.loads(frame[4:])
        assert tag.tag == 18
        protected, unprotected, payload, signature = tag.value
        header = cbor2.loads(protected)
        assert header[1] == -8 and len(unprotected) == 0
        to_sign = cbor2.dumps(["Signature1", protected, b"", payload])
        nacl.signing.VerifyKey(keys[header[4]]).verify(to_sign, signature)
        assert cbor2.loads(payload)["v"] == 1


def test_vectors_decode_with_our_codec() -> None:
    ring = KeyRing()
    for label in ("US", "PRC"):
        ring.add(label, Ed25519Signer.from_label(label).verifier())
    ring.add("US", Ed25519Signer.from_label(OFFICER_LABEL).verifier())
    for v in build():
        frames = codec.FrameReader().feed(v.frame())
        assert codec.verify(frames[0], ring).message == v.message
