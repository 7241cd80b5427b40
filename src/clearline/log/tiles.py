"""The tree's hashes cut into C2SP tlog-tiles, and proofs read from them.

A log keeps every hash of its tree, so that a proof costs O(log n) reads instead
of rehashing the leaves. The hashes are grouped as https://c2sp.org/tlog-tiles
serves them: a tile at level L holds 256 consecutive hashes, each the root of a
perfect subtree of 256**L leaves (level 0: the leaf hashes); the hashes at the
seven levels between two tile levels are the interior of each tile's own
256-leaf subtree ("inner levels" here). Only full tiles are ever stored; the
rightmost, partial tile of each level is the `Edge`, which grows as leaves are
appended and hands over each tile as it fills.

Any perfect subtree of the tree (a `Node`) is then one stored hash: in a full
tile, or on the edge. A proof holds at most one hash that is not a perfect
subtree (where its path meets the right edge of a tree whose size is not a power
of two); it is folded from the at most log n perfect subtrees that cover it, and
the caller may keep it (`Folded`), since every proof in a tree of that size
needs one of the same few.

Pure: no I/O, no clock. The store (`clearline.log.store`) supplies the tiles;
the functions here say which it needs and what to do with them. `height` is a
parameter so that the tests can use small tiles; logs use `HEIGHT`, as C2SP says.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from clearline.errors import ProofError
from clearline.log.merkle import HASH_SIZE, node_hash

__all__ = [
    "HEIGHT",
    "MAX_ENTRY_BYTES",
    "MAX_LEVEL",
    "Edge",
    "Folded",
    "FullTile",
    "Node",
    "NodeReader",
    "TilePath",
    "compact_range",
    "consistency_proof",
    "entry_bundle",
    "full_tiles",
    "inclusion_proof",
    "locate",
    "pack_inner",
    "parse_entry_bundle",
    "parse_tile_path",
    "partial_width",
    "range_nodes",
    "read_nodes",
    "root",
    "subtree_levels",
    "tile_exists",
    "tile_path",
    "tile_root",
    "unpack_levels",
]

HEIGHT = 8
"""C2SP's tile height: 2**8 = 256 hashes a tile."""
MAX_LEVEL = 63
MAX_ENTRY_BYTES = 0xFFFF
"""An entry bundle prefixes each entry with a big-endian uint16 length."""


Node = tuple[int, int]
"""(height, number): the perfect subtree over leaves [number << height, (number + 1) <<
height), the `number`-th subtree of 2**height leaves from the left. A plain tuple: proofs
make some twenty of them each."""


@dataclass(frozen=True, slots=True)
class FullTile:
    """A tile that has just filled: its level, its index in the level, and the hashes of its
    subtree by inner level (`subtree_levels`)."""

    level: int
    index: int
    levels: tuple[bytes, ...]

    @property
    def hashes(self) -> bytes:
        """The tile as C2SP serves it."""
        return self.levels[0]


# -- proofs as perfect subtrees ------------------------------------------------------------


def range_nodes(lo: int, hi: int) -> list[Node]:
    """The perfect subtrees, largest first, whose right-to-left fold is MTH(D[lo:hi]).

    Only for the ranges RFC 9162's recursion visits, whose start is a multiple of the
    smallest power of two not below their length: other ranges are not subtrees of the
    log's tree and have no stored hashes.
    """
    if not 0 <= lo < hi:
        raise ValueError(f"empty or negative range [{lo}, {hi})")
    nodes = []
    while lo < hi:
        height = (hi - lo).bit_length() - 1
        if lo & ((1 << height) - 1):
            raise ValueError(f"range [{lo}, {hi}) is not a subtree of the log's tree")
        nodes.append((height, lo >> height))
        lo += 1 << height
    return nodes


def compact_range(size: int) -> list[Node]:
    """The perfect subtrees whose fold is the root of the tree of `size` leaves."""
    return range_nodes(0, size) if size else []


NodeReader = Callable[[Sequence[Node]], Sequence[bytes]]
"""Given perfect subtrees, their hashes, in the same order."""

Folded = dict[tuple[int, int], bytes]
"""Roots of ranges that are not perfect subtrees, by (lo, hi), kept by the caller between
proofs: they never change (the log only grows), and every proof in a tree of one size
needs one of the same few along its right edge, each a fold of up to log n stored hashes."""

FOLDED_KEPT = 1024


def _path(
    height: int,
    number: int,
    size: int,
    seed: bool,
    read: NodeReader,
    folded: Folded | None,
) -> list[bytes]:
    """The hashes that prove node (height, number) in the tree of `size` leaves, bottom up
    (the node itself first if `seed`): RFC 9162's audit path, found as transparency-dev's
    proof package finds it rather than by its recursion, which costs a range per level.

    Up to the `fork`, the node's ancestor whose right neighbour is the first not complete
    in this tree, each sibling is a perfect subtree. Right of the fork's leaves comes one
    hash for [end, size), the "ephemeral" node: a fold of the perfect subtrees covering
    it. Left of them, the perfect subtrees covering [0, begin), nearest first.
    """
    inner = (number ^ (size >> height)).bit_length() - 1
    fork = height + inner
    begin = (number >> inner) << fork
    end = begin + (1 << fork)
    nodes: list[Node] = [(height, number)] if seed else []
    for up in range(inner):
        nodes.append((height + up, (number >> up) ^ 1))
    cut = len(nodes)
    known = None
    if end < size:
        known = folded.get((end, size)) if folded is not None else None
        if known is None:
            nodes += range_nodes(end, size)
    ephemeral = len(nodes)
    if begin:
        nodes += reversed(range_nodes(0, begin))
    hashes = list(read(nodes))
    if end >= size:
        return hashes
    if known is None:
        known = hashes[ephemeral - 1]
        for at in range(ephemeral - 2, cut - 1, -1):
            known = node_hash(hashes[at], known)
        if folded is not None:
            if len(folded) >= FOLDED_KEPT:
                folded.clear()
            folded[end, size] = known
    return [*hashes[:cut], known, *hashes[ephemeral:]]


def inclusion_proof(
    index: int, size: int, read: NodeReader, folded: Folded | None = None
) -> list[bytes]:
    """The audit path of leaf `index` in the tree of `size` leaves (RFC 9162 2.1.3.1), from
    stored subtrees and the roots in `folded` (which it adds to)."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    return _path(0, index, size, False, read, folded)


def consistency_proof(
    size1: int, size2: int, read: NodeReader, folded: Folded | None = None
) -> list[bytes]:
    """The consistency proof (RFC 9162 2.1.4.1) from the tree of `size1` leaves to that of
    `size2`: the audit path of the largest perfect subtree that ends at `size1`, which
    leads it unless `size1` is a power of two (the old root, then, the verifier holds)."""
    if not 0 <= size1 <= size2:
        raise ProofError(f"size1 {size1} must be between 0 and the tree size {size2}")
    if size1 in (0, size2):
        return []
    height = (size1 & -size1).bit_length() - 1
    number = (size1 - 1) >> height
    return _path(height, number, size2, number != 0, read, folded)


def root(size: int, read: NodeReader) -> bytes | None:
    """The root of the tree of `size` leaves (None for the empty tree)."""
    if not size:
        return None
    hashes = read(compact_range(size))
    folded = hashes[-1]
    for left in reversed(hashes[:-1]):
        folded = node_hash(left, folded)
    return folded


# -- tile geometry ------------------------------------------------------------------------


def full_tiles(size: int, level: int, height: int = HEIGHT) -> int:
    """How many full tiles level `level` has in a tree of `size` leaves."""
    return size >> (height * (level + 1))


def partial_width(size: int, level: int, height: int = HEIGHT) -> int:
    """The width of level `level`'s partial tile (0: it has none)."""
    return (size >> (height * level)) & ((1 << height) - 1)


def tile_exists(size: int, level: int, index: int, width: int, height: int = HEIGHT) -> bool:
    """Whether the tree of `size` leaves has the hashes of tile (level, index) up to `width`:
    a partial tile of a full one, or of the edge, is a prefix of what it becomes."""
    if not (0 <= level <= MAX_LEVEL and index >= 0 and 1 <= width <= 1 << height):
        return False
    return ((index << height) + width) << (height * level) <= size


def locate(node: Node, height: int = HEIGHT) -> tuple[int, int, int, int]:
    """Where a perfect subtree's hash is kept: (tile level, tile index, inner level, position
    in that inner level)."""
    node_height, number = node
    level, inner = divmod(node_height, height)
    first = number << inner  # the first tile-level hash it covers
    return level, first >> height, inner, number & ((1 << (height - inner)) - 1)


def _push(levels: list[bytearray], node: bytes, height: int) -> None:
    """Add one hash at inner level 0, and each inner node it completes above it."""
    for level in range(height):
        column = levels[level]
        column += node
        if level == height - 1 or len(column) // HASH_SIZE % 2:
            return
        node = node_hash(bytes(column[-2 * HASH_SIZE : -HASH_SIZE]), bytes(column[-HASH_SIZE:]))


def subtree_levels(hashes: bytes, height: int = HEIGHT) -> tuple[bytes, ...]:
    """A tile's hashes (full or partial) and the complete nodes above them in its subtree:
    inner level r holds width >> r hashes, for r from 0 to height - 1."""
    if len(hashes) % HASH_SIZE or len(hashes) > HASH_SIZE << height:
        raise ValueError(f"{len(hashes)} bytes are not up to {1 << height} hashes")
    levels = [bytearray() for _ in range(height)]
    for at in range(0, len(hashes), HASH_SIZE):
        _push(levels, hashes[at : at + HASH_SIZE], height)
    return tuple(bytes(column) for column in levels)


def tile_root(levels: Sequence[bytes], height: int = HEIGHT) -> bytes:
    """The root of a full tile's subtree: its hash in the tile one level up."""
    top = levels[height - 1]
    if len(top) != 2 * HASH_SIZE:
        raise ValueError("only a full tile has a root")
    return node_hash(top[:HASH_SIZE], top[HASH_SIZE:])


def pack_inner(levels: Sequence[bytes]) -> bytes:
    """A full tile's inner levels 1 and up, as stored beside the tile."""
    return b"".join(levels[1:])


def unpack_levels(hashes: bytes, inner: bytes, height: int = HEIGHT) -> tuple[bytes, ...]:
    """A full tile's levels from its stored hashes and inner levels."""
    if len(hashes) != HASH_SIZE << height or len(inner) != HASH_SIZE * ((1 << height) - 2):
        raise ValueError(f"a stored tile of {len(hashes)} + {len(inner)} bytes is not full")
    levels = [hashes]
    at = 0
    for r in range(1, height):
        width = HASH_SIZE << (height - r)
        levels.append(inner[at : at + width])
        at += width
    return tuple(levels)


def read_nodes(
    nodes: Iterable[Node],
    size: int,
    tile: Callable[[int, int], Sequence[bytes]],
    height: int = HEIGHT,
) -> list[bytes]:
    """The hashes of perfect subtrees of the tree of `size` leaves, read from `tile(level,
    index)`: the levels of that tile (full, or the edge's partial one). Each tile is asked
    for once. (`locate`, inlined: this is every proof's inner loop.)"""
    out = []
    read: dict[tuple[int, int], Sequence[bytes]] = {}
    mask = (1 << height) - 1
    for node_height, number in nodes:
        if node_height < 0 or number < 0 or (number + 1) << node_height > size:
            raise ValueError(f"no subtree ({node_height}, {number}) in a tree of size {size}")
        level, inner = divmod(node_height, height)
        key = (level, (number << inner) >> height)
        levels = read.get(key)
        if levels is None:
            levels = read[key] = tile(*key)
        at = (number & (mask >> inner)) * HASH_SIZE
        hashed = levels[inner][at : at + HASH_SIZE]
        if len(hashed) != HASH_SIZE:
            raise ValueError(f"tile {key[0]}/{key[1]} has no hash for ({node_height}, {number})")
        out.append(hashed)
    return out


class Edge:
    """The partial tile of each level of a growing tree, with its complete inner nodes.

    Appending a leaf adds its hash to level 0; a tile that fills is handed back as a
    `FullTile` (to be stored) and its root is appended to the level above. Each hash
    costs one node hash or so, amortized: a filling tile's subtree is built as it fills.
    """

    __slots__ = ("_levels", "height", "size")

    def __init__(self, height: int = HEIGHT) -> None:
        self.height = height
        self.size = 0
        self._levels: list[list[bytearray]] = []

    @classmethod
    def restore(cls, size: int, partials: Sequence[bytes], height: int = HEIGHT) -> Edge:
        """The edge of a tree of `size` leaves, from each level's partial tile hashes."""
        edge = cls(height)
        edge.size = size
        level = 0
        while size >> (height * level):
            hashes = partials[level] if level < len(partials) else b""
            if len(hashes) != HASH_SIZE * partial_width(size, level, height):
                raise ValueError(
                    f"level {level} of a tree of size {size} has a partial tile of "
                    f"{partial_width(size, level, height)} hashes, not {len(hashes) / HASH_SIZE}"
                )
            columns = [bytearray() for _ in range(height)]
            for at in range(0, len(hashes), HASH_SIZE):
                _push(columns, hashes[at : at + HASH_SIZE], height)
            edge._levels.append(columns)
            level += 1
        if len(partials) > level:
            raise ValueError(f"a tree of size {size} has {level} tile levels, not {len(partials)}")
        return edge

    def copy(self) -> Edge:
        twin = Edge(self.height)
        twin.size = self.size
        twin._levels = [[bytearray(c) for c in columns] for columns in self._levels]
        return twin

    def append(self, leaf: bytes) -> list[FullTile]:
        """Add one leaf hash; the tiles it fills, lowest level first."""
        self.size += 1
        filled: list[FullTile] = []
        node, level, width = leaf, 0, HASH_SIZE << self.height
        while True:
            if level == len(self._levels):
                self._levels.append([bytearray() for _ in range(self.height)])
            columns = self._levels[level]
            _push(columns, node, self.height)
            if len(columns[0]) < width:
                return filled
            levels = tuple(bytes(c) for c in columns)
            filled.append(FullTile(level, full_tiles(self.size, level, self.height) - 1, levels))
            node = tile_root(levels, self.height)
            for column in columns:
                column.clear()
            level += 1

    def levels(self, level: int) -> tuple[bytes, ...]:
        """The partial tile at `level` and its complete inner nodes."""
        if level >= len(self._levels):
            return tuple(b"" for _ in range(self.height))
        return tuple(bytes(c) for c in self._levels[level])

    def partial(self, level: int) -> bytes:
        """The hashes of the partial tile at `level`, as C2SP serves it."""
        return bytes(self._levels[level][0]) if level < len(self._levels) else b""


# -- paths and entry bundles ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TilePath:
    """A tile's coordinates: level None for an entry bundle; width 256 for a full tile."""

    level: int | None
    index: int
    width: int


_PATH = re.compile(
    r"(?P<level>entries|0|[1-9][0-9]?)/(?P<index>(?:x[0-9]{3}/)*[0-9]{3})(?:\.p/(?P<width>[1-9][0-9]{0,2}))?"
)


def tile_path(level: int | None, index: int, width: int, height: int = HEIGHT) -> str:
    """The C2SP path of a tile below ``<prefix>/tile/``: ``<L>/<N>[.p/<W>]`` or
    ``entries/<N>[.p/<W>]``, N in three-digit groups, all but the last marked with x."""
    groups = [f"{index % 1000:03d}"]
    index //= 1000
    while index:
        groups.append(f"x{index % 1000:03d}")
        index //= 1000
    name = "/".join(reversed(groups))
    suffix = "" if width == 1 << height else f".p/{width}"
    return f"{'entries' if level is None else level}/{name}{suffix}"


def parse_tile_path(path: str, height: int = HEIGHT) -> TilePath:
    """A path below ``<prefix>/tile/``, in the one form `tile_path` writes (ValueError
    otherwise, naming what is wrong)."""
    match = _PATH.fullmatch(path)
    if match is None:
        raise ValueError(
            f"{path!r} is not a tile path: expected <L>/<N>[.p/<W>] or entries/<N>[.p/<W>], "
            "N in three-digit groups (x001/234), L from 0 to 63, W from 1 to 255"
        )
    level = None if match["level"] == "entries" else int(match["level"])
    index = int(match["index"].replace("x", "").replace("/", ""))
    width = int(match["width"]) if match["width"] else 1 << height
    if level is not None and level > MAX_LEVEL:
        raise ValueError(f"tile level {level} is above {MAX_LEVEL}")
    if width >= 1 << height and match["width"]:
        raise ValueError(f"a partial tile's width is 1 to {(1 << height) - 1}, not {width}")
    if tile_path(level, index, width, height) != path:
        raise ValueError(f"{path!r} is not the canonical path of tile {index} (leading zeros)")
    return TilePath(level, index, width)


def entry_bundle(entries: Iterable[bytes]) -> bytes:
    """Entries as C2SP bundles them: each a big-endian uint16 length, then its bytes."""
    out = bytearray()
    for i, entry in enumerate(entries):
        if len(entry) > MAX_ENTRY_BYTES:
            raise ValueError(
                f"entry {i} of the bundle is {len(entry)} bytes; a bundle holds at most "
                f"{MAX_ENTRY_BYTES} an entry"
            )
        out += len(entry).to_bytes(2, "big") + entry
    return bytes(out)


def parse_entry_bundle(data: bytes) -> list[bytes]:
    """The entries of a bundle (ValueError if it does not end where its last entry does)."""
    entries: list[bytes] = []
    at = 0
    while at < len(data):
        if at + 2 > len(data):
            raise ValueError(f"bundle ends inside the length of entry {len(entries)}")
        length = int.from_bytes(data[at : at + 2], "big")
        if at + 2 + length > len(data):
            raise ValueError(f"entry {len(entries)} runs past the end of the bundle")
        entries.append(data[at + 2 : at + 2 + length])
        at += 2 + length
    return entries
