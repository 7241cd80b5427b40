"""Properties: our proofs always verify; any single-bit change is rejected."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearline.errors import ProofError
from clearline.log import merkle


def _leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def _naive_root(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return merkle.node_hash(_naive_root(leaves[:k]), _naive_root(leaves[k:]))


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@given(st.integers(0, 300))
def test_root_matches_recursive_definition(n: int) -> None:
    leaves = _leaves(n)
    assert merkle.root_hash(leaves) == _naive_root(leaves)


@settings(max_examples=300)
@given(st.data())
def test_inclusion_proofs_verify_and_bit_flips_fail(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, 200), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    leaves = _leaves(size)
    root = merkle.root_hash(leaves)
    proof = merkle.inclusion_proof(leaves, index)
    merkle.verify_inclusion(leaves[index], index, size, proof, root)

    target = data.draw(st.sampled_from(["leaf", "root", "proof"]), label="target")
    if target == "proof" and not proof:
        target = "leaf"
    bit = data.draw(st.integers(0, 255), label="bit")
    leaf, bad_root, bad_proof = leaves[index], root, list(proof)
    if target == "leaf":
        leaf = _flip(leaf, bit)
    elif target == "root":
        bad_root = _flip(root, bit)
    else:
        i = data.draw(st.integers(0, len(proof) - 1), label="node")
        bad_proof[i] = _flip(bad_proof[i], bit)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(leaf, index, size, bad_proof, bad_root)


@settings(max_examples=300)
@given(st.data())
def test_consistency_proofs_verify_and_bit_flips_fail(data: st.DataObject) -> None:
    size2 = data.draw(st.integers(1, 200), label="size2")
    size1 = data.draw(st.integers(1, size2), label="size1")
    leaves = _leaves(size2)
    root1, root2 = merkle.root_hash(leaves[:size1]), merkle.root_hash(leaves)
    proof = merkle.consistency_proof(leaves, size1)
    merkle.verify_consistency(size1, size2, proof, root1, root2)

    choices = ["root1", "root2"] + (["proof"] if proof else [])
    target = data.draw(st.sampled_from(choices), label="target")
    bit = data.draw(st.integers(0, 255), label="bit")
    r1, r2, bad = root1, root2, list(proof)
    if target == "root1":
        r1 = _flip(r1, bit)
    elif target == "root2":
        r2 = _flip(r2, bit)
    else:
        i = data.draw(st.integers(0, len(proof) - 1), label="node")
        bad[i] = _flip(bad[i], bit)
    with pytest.raises(ProofError):
        merkle.verify_consistency(size1, size2, bad, r1, r2)


@pytest.mark.parametrize(
    ("size1", "size2", "extra"),
    [(3, 7, "truncate"), (3, 7, "append"), (4, 9, "append"), (5, 5, "append")],
)
def test_wrong_length_proofs_name_the_problem(size1: int, size2: int, extra: str) -> None:
    leaves = _leaves(size2)
    proof = merkle.consistency_proof(leaves, size1)
    proof = proof[:-1] if extra == "truncate" else [*proof, bytes(32)]
    with pytest.raises(ProofError, match="proof"):
        merkle.verify_consistency(
            size1, size2, proof, merkle.root_hash(leaves[:size1]), merkle.root_hash(leaves)
        )


def test_malformed_hash_lengths_are_proof_errors() -> None:
    leaves = _leaves(4)
    root = merkle.root_hash(leaves)
    with pytest.raises(ProofError, match="32-byte"):
        merkle.verify_inclusion(leaves[0][:31], 0, 4, merkle.inclusion_proof(leaves, 0), root)
    with pytest.raises(ProofError, match="32-byte"):
        merkle.verify_consistency(2, 4, [b"x"], merkle.root_hash(leaves[:2]), root)
    assert issubclass(ProofError, ValueError)
