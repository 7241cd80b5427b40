"""Untrusted bytes and hand-written files: every decoder and loader fails only with its own
documented error, never with anything else, and never buffers more than one frame.

The same targets run under atheris (coverage-guided) from fuzz/; see docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clearline.errors import ClearlineError, InputFileError
from clearline.gate.policy import parse_policy
from clearline.node.config import parse_node_config
from clearline.node.tokens import parse_tokens
from clearline.protocol import codec, vectors
from clearline.protocol.constants import MAX_FRAME_SIZE
from clearline.protocol.fields import StructCodec
from clearline.protocol.messages import AssetRecord, Bulk
from clearline.protocol.signing import Ed25519Signer, KeyRing
from clearline.sim.scenario import parse_scenario

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VALID = [v.frame() for v in vectors.build()]
KEYS = KeyRing()
for label in {v.signer_label for v in vectors.build()}:
    signer = Ed25519Signer.from_label(label)
    KEYS.add(label, signer.verifier())

cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.text(max_size=20)
    | st.binary(max_size=40)
    | st.floats(allow_nan=True),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(max_size=8) | st.integers(-5, 5), children, max_size=5)
    ),
    max_leaves=25,
)


def _decode_all(data: bytes) -> None:
    """Every stage a node runs on bytes from the network."""
    reader = codec.FrameReader()
    try:
        for frame in reader.feed(data):
            codec.verify(frame, KEYS)
    except ClearlineError:
        pass
    assert reader.buffered <= MAX_FRAME_SIZE + 4
    for stage in (codec.parse_envelope, codec.decode_payload):
        with contextlib.suppress(ClearlineError):
            stage(data)


@FUZZ
@given(st.binary(max_size=2048))
def test_arbitrary_bytes(data: bytes) -> None:
    _decode_all(data)


@FUZZ
@given(st.sampled_from(VALID), st.data())
def test_mutated_valid_frames(frame: bytes, data: st.DataObject) -> None:
    _decode_all(mutate(frame, data, 8, ("flip", "insert", "delete", "truncate")))


def mutate(original: bytes, data: st.DataObject, most: int, edits: tuple[str, ...]) -> bytes:
    """`original` after 1 to `most` edits drawn from `edits`: a bit flipped, 1 to 8 bytes
    inserted or deleted, the rest cut off, or a byte set to a boundary value."""
    mutated = bytearray(original)
    for _ in range(data.draw(st.integers(1, most))):
        edit = data.draw(st.sampled_from(edits))
        at = data.draw(st.integers(0, max(0, len(mutated) - 1)))
        if edit == "flip" and mutated:
            mutated[at] ^= 1 << data.draw(st.integers(0, 7))
        elif edit == "insert":
            mutated[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        elif edit == "delete":
            del mutated[at : at + data.draw(st.integers(1, 8))]
        elif edit == "truncate":
            del mutated[at:]
        elif edit == "set" and mutated:
            mutated[at] = data.draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF]))
    return bytes(mutated)


BULK_PAYLOAD = codec.encode_payload(
    next(v.message for v in vectors.build() if v.name == "bulk-prc")
)


@FUZZ
@given(st.data())
def test_mutated_bulk_payloads_decode_to_valid_records_or_a_message_error(
    data: st.DataObject,
) -> None:
    """A bulk payload is checked a column at a time: whatever a mutation leaves, either it
    is refused with MessageError or every record it holds is valid."""
    mutated = mutate(BULK_PAYLOAD, data, 6, ("flip", "insert", "delete", "set"))
    try:
        message = codec.decode_payload(mutated)
    except ClearlineError:
        return
    if isinstance(message.body, Bulk):
        for record in message.body.records():
            StructCodec(AssetRecord).encode(record, "record")


@FUZZ
@given(cbor_values)
def test_arbitrary_cbor_structures(value: object) -> None:
    import cbor2

    try:
        payload = cbor2.dumps(value)
    except (ValueError, TypeError, OverflowError):
        return
    with pytest.raises(ClearlineError):
        codec.decode_payload(payload)
    with pytest.raises(ClearlineError):
        codec.parse_envelope(payload)


yaml_text = st.text(
    alphabet=st.sampled_from(list("abcdefghij:-[]{}#&*!|>'\"%@` \n\t0123456789.,_")),
    max_size=400,
)


@FUZZ
@given(yaml_text)
def test_policy_loader(text: str) -> None:
    with contextlib.suppress(InputFileError):
        parse_policy(text, "fuzz.yaml")


@FUZZ
@given(yaml_text)
def test_scenario_loader(text: str) -> None:
    with contextlib.suppress(InputFileError):
        parse_scenario(text, "fuzz.yaml")


@FUZZ
@given(st.text(alphabet=st.sampled_from(list('abcdefg[]="=.#\n 0123456789:_-')), max_size=300))
def test_node_config_loader(text: str) -> None:
    with contextlib.suppress(InputFileError):
        parse_node_config(text, "fuzz.toml", Path("."))


json_text = st.text(
    alphabet=st.sampled_from(list('{}[]":, \n\t0123456789abcdefnorstuvw\\')), max_size=300
) | st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=70),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["tokens", "name", "role", "sha256", "x"]), inner)
    ),
    max_leaves=12,
).map(json.dumps)


@FUZZ
@given(json_text)
def test_api_tokens_loader(text: str) -> None:
    with contextlib.suppress(InputFileError):
        parse_tokens(text, "fuzz.json")


@FUZZ
@given(
    st.sampled_from(
        sorted(Path(__file__).resolve().parents[2].glob("src/clearline/sim/scenarios/*.yaml"))
    ),
    st.data(),
)
def test_mutated_shipped_scenarios(path: Path, data: st.DataObject) -> None:
    text = path.read_text()
    lines = text.splitlines()
    i = data.draw(st.integers(0, len(lines) - 1))
    lines[i] = data.draw(yaml_text)
    with contextlib.suppress(InputFileError):
        parse_scenario("\n".join(lines), str(path))
