"""An append-only Merkle tree kept as a compact range: O(log n) per append and per root."""

from __future__ import annotations

from clearline.log.merkle import EMPTY_ROOT, node_hash


class CompactTree:
    """The perfect subtrees covering the leaves so far, largest first (RFC 9162 shape)."""

    __slots__ = ("_stack", "size")

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []
        self.size = 0

    @classmethod
    def from_roots(cls, size: int, roots: list[bytes]) -> CompactTree:
        """The tree of `size` leaves from the roots of its perfect subtrees, largest first."""
        tree = cls()
        heights = [h for h in range(size.bit_length() - 1, -1, -1) if size >> h & 1]
        if len(roots) != len(heights):
            raise ValueError(f"a tree of size {size} has {len(heights)} perfect subtrees")
        tree._stack = [(1 << h, root) for h, root in zip(heights, roots, strict=True)]
        tree.size = size
        return tree

    def copy(self) -> CompactTree:
        twin = CompactTree()
        twin._stack = list(self._stack)
        twin.size = self.size
        return twin

    def append(self, leaf_hash: bytes) -> None:
        size, node = 1, leaf_hash
        while self._stack and self._stack[-1][0] == size:
            left_size, left = self._stack.pop()
            size, node = left_size + size, node_hash(left, node)
        self._stack.append((size, node))
        self.size += 1

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        root = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            root = node_hash(left, root)
        return root
