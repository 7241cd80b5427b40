"""atheris harness: frames, COSE_Sign1 and payloads, as a node meets them from the network.

    .venv/bin/python fuzz/fuzz_decoders.py -atheris_runs=200000 fuzz/corpus/decoders

Any exception other than clearline's own errors is a finding (atheris stops and
writes the input as crash-*). docs/reliability.md records the latest run.
"""

from __future__ import annotations

import contextlib
import sys

import atheris

with atheris.instrument_imports():
    from clearline.errors import ClearlineError
    from clearline.protocol import codec, vectors
    from clearline.protocol.constants import MAX_FRAME_SIZE
    from clearline.protocol.signing import Ed25519Signer, KeyRing

KEYS = KeyRing()
for label in {v.signer_label for v in vectors.build()}:
    KEYS.add(label, Ed25519Signer.from_label(label).verifier())


def test_one_input(data: bytes) -> None:
    reader = codec.FrameReader()
    try:
        for frame in reader.feed(data):
            codec.verify(frame, KEYS)
    except ClearlineError:
        pass
    if reader.buffered > MAX_FRAME_SIZE + 4:
        raise AssertionError(f"buffered {reader.buffered} bytes")
    for stage in (codec.parse_envelope, codec.decode_payload):
        with contextlib.suppress(ClearlineError):
            stage(data)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
