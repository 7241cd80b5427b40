"""RFC 9162 Merkle tree hashing, proofs and their verification.

Pure functions over leaf hashes. Proof *generation* (which nodes a proof
needs, hashed from the whole leaf sequence) is kept apart from *verification*
(recompute a root from a proof, then compare once), as in transparency-dev's
merkle package. Every verification failure, malformed input included, raises
`clearline.errors.ProofError` with a message that says what was wrong.

Hashes are SHA-256 with the RFC 9162 domain separation: a leaf is
``SHA-256(0x00 || data)``, an interior node ``SHA-256(0x01 || left || right)``,
and the empty tree's root is ``SHA-256("")``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from clearline.errors import ProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """Hash of one leaf: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash of an interior node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly less than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _subtree_root(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    """MTH(D[lo:hi]) for hi > lo, without copying the leaves.

    Perfect subtrees are merged left to right on a stack (as a compact range
    does), then folded right to left; this is the RFC's recursive definition
    computed in O(n) time and O(log n) space.
    """
    stack: list[tuple[int, bytes]] = []
    for i in range(lo, hi):
        size, node = 1, leaves[i]
        while stack and stack[-1][0] == size:
            left_size, left = stack.pop()
            size, node = left_size + size, node_hash(left, node)
        stack.append((size, node))
    root = stack[-1][1]
    for _, left in reversed(stack[:-1]):
        root = node_hash(left, root)
    return root


def root_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """Root of the tree over `leaf_hashes` (the empty tree's root if empty)."""
    if len(leaf_hashes) == 0:
        return EMPTY_ROOT
    return _subtree_root(leaf_hashes, 0, len(leaf_hashes))


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """Audit path (RFC 9162 §2.1.3.1) for leaf `index` in the whole sequence."""
    size = len(leaf_hashes)
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    path: list[bytes] = []
    lo, hi, m = 0, size, index
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < k:
            path.append(_subtree_root(leaf_hashes, lo + k, hi))
            hi = lo + k
        else:
            path.append(_subtree_root(leaf_hashes, lo, lo + k))
            lo, m = lo + k, m - k
    path.reverse()
    return path


def consistency_proof(leaf_hashes: Sequence[bytes], size1: int) -> list[bytes]:
    """Consistency proof (RFC 9162 §2.1.4.1) from the first `size1` leaves to all."""
    size2 = len(leaf_hashes)
    if not 0 <= size1 <= size2:
        raise ProofError(f"size1 {size1} must be between 0 and the tree size {size2}")
    if size1 in (0, size2):
        return []
    proof: list[bytes] = []
    lo, hi, m, complete = 0, size2, size1, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            proof.append(_subtree_root(leaf_hashes, lo + k, hi))
            hi = lo + k
        else:
            proof.append(_subtree_root(leaf_hashes, lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        proof.append(_subtree_root(leaf_hashes, lo, hi))
    proof.reverse()
    return proof


def _check_hash(name: str, value: bytes) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        got = len(value) if isinstance(value, bytes | bytearray) else type(value).__name__
        raise ProofError(f"{name} must be a {HASH_SIZE}-byte hash, got {got}")


def _check_proof(proof: Sequence[bytes]) -> None:
    for i, node in enumerate(proof):
        _check_hash(f"proof[{i}]", node)


def root_from_inclusion_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root implied by an inclusion proof (RFC 9162 §2.1.3.2)."""
    _check_hash("leaf hash", leaf)
    _check_proof(proof)
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    fn, sn, node = index, size - 1, leaf
    for i, sibling in enumerate(proof):
        if sn == 0:
            raise ProofError(
                f"inclusion proof too long: {len(proof)} nodes, only {i} needed "
                f"for index {index} in a tree of size {size}"
            )
        if fn & 1 or fn == sn:
            node = node_hash(sibling, node)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            node = node_hash(node, sibling)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError(
            f"inclusion proof too short: {len(proof)} nodes for index {index} "
            f"in a tree of size {size}"
        )
    return node


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise ProofError unless `proof` shows leaf `index` in the tree `root` of `size`."""
    _check_hash("root", root)
    computed = root_from_inclusion_proof(leaf_hash, index, size, proof)
    if computed != root:
        raise ProofError(
            f"inclusion proof for index {index} in size {size} gives root "
            f"{computed.hex()}, expected {bytes(root).hex()}"
        )


def roots_from_consistency_proof(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes
) -> tuple[bytes, bytes]:
    """The (old root, new root) implied by a consistency proof (RFC 9162 §2.1.4.2)."""
    _check_proof(proof)
    if size1 < 0 or size2 < 0:
        raise ProofError(f"tree sizes must not be negative, got {size1} and {size2}")
    if size1 > size2:
        raise ProofError(f"size1 {size1} is greater than size2 {size2}")
    if size1 == 0:
        raise ProofError(
            "a consistency proof from the empty tree proves nothing; size1 must be > 0"
        )
    if size1 == size2:
        if proof:
            raise ProofError(f"proof between equal sizes must be empty, got {len(proof)} nodes")
        return root1, root1
    if not proof:
        raise ProofError(f"empty consistency proof from size {size1} to {size2}")
    nodes = list(proof)
    if size1 & (size1 - 1) == 0:  # size1 is a power of two: the old root is the first node
        nodes.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    old = new = nodes[0]
    for i, node in enumerate(nodes[1:], start=1):
        if sn == 0:
            raise ProofError(f"consistency proof too long: {len(proof)} nodes, {i} used")
        if fn & 1 or fn == sn:
            old, new = node_hash(node, old), node_hash(node, new)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            new = node_hash(new, node)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError(f"consistency proof too short: {len(proof)} nodes for {size1} -> {size2}")
    return old, new


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Raise ProofError unless `proof` shows tree (size1, root1) is a prefix of (size2, root2).

    Between equal non-zero sizes the proof must be empty and the roots equal
    byte for byte (no hashing happens, so their length is not examined, as in
    transparency-dev). A proof from size 0 is refused: it would prove nothing.
    """
    if size1 == size2 and size1 > 0 and not proof:
        if bytes(root1) != bytes(root2):
            raise ProofError(f"trees of equal size {size1} have different roots")
        return
    _check_hash("root1", root1)
    _check_hash("root2", root2)
    old, new = roots_from_consistency_proof(size1, size2, proof, root1)
    if old != root1:
        raise ProofError(
            f"consistency proof gives old root {old.hex()}, expected {bytes(root1).hex()}"
        )
    if new != root2:
        raise ProofError(
            f"consistency proof gives new root {new.hex()}, expected {bytes(root2).hex()}"
        )
