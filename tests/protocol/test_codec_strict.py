"""Strict decoding: exactly one byte form of every COSE_Sign1 and payload is accepted."""

from __future__ import annotations

import pytest

from clearline.errors import MessageError
from clearline.protocol import codec


@pytest.mark.parametrize(
    "payload",
    [
        bytes.fromhex("d81c81d81d00"),  # 28([29(0)]): a list that contains itself
        bytes.fromhex("d81ca16161d81d00"),  # 28({"a": 29(0)}): a map that contains itself
    ],
    ids=["list", "map"],
)
def test_a_self_referencing_payload_is_a_message_error(payload: bytes) -> None:
    with pytest.raises(MessageError, match="not deterministically encoded"):
        codec.decode_payload(payload)
