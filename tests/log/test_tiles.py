"""Tiles (log/tiles.py): proofs read from stored subtrees equal those recomputed from the
leaves, tiles equal the C2SP definition, paths and bundles are C2SP's.

Small tile heights make the level boundaries cheap to cross: with tiles of 4 hashes, a tree
of a few hundred leaves has five tile levels; the store's tests (test_store_tiles.py) do
the same at height 8 around 256 and 65,536.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearline.errors import ProofError
from clearline.log import merkle, tiles


def _leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


class _Tiled:
    """What a store keeps, in memory: the full tiles as they filled, and the edge."""

    def __init__(self, leaves: Sequence[bytes], height: int) -> None:
        self.height = height
        self.edge = tiles.Edge(height)
        self.full: dict[tuple[int, int], tuple[bytes, ...]] = {}
        for leaf in leaves:
            for tile in self.edge.append(leaf):
                assert (tile.level, tile.index) not in self.full
                self.full[tile.level, tile.index] = tile.levels

    def tile(self, level: int, index: int) -> tuple[bytes, ...]:
        if (level, index) in self.full:
            return self.full[level, index]
        assert index == tiles.full_tiles(self.edge.size, level, self.height)
        return self.edge.levels(level)

    def reader(self, size: int) -> tiles.NodeReader:
        return lambda nodes: tiles.read_nodes(nodes, size, self.tile, self.height)


HEIGHTS = st.sampled_from([1, 2, 3, 8])


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_proofs_from_tiles_equal_those_from_the_leaves(data: st.DataObject) -> None:
    height = data.draw(HEIGHTS, label="height")
    width = 1 << height
    boundaries = [width**k + d for k in range(1, 5) for d in (-1, 0, 1) if width**k + d <= 700]
    size = data.draw(
        st.one_of(st.integers(1, 700), st.sampled_from(boundaries or [width])), label="size"
    )
    grown = data.draw(st.integers(size, size + 300), label="log size")
    leaves = _leaves(grown)
    tiled = _Tiled(leaves, height)
    read = tiled.reader(grown)
    index = data.draw(st.integers(0, size - 1), label="index")
    assert tiles.inclusion_proof(index, size, read) == merkle.inclusion_proof(leaves[:size], index)
    size1 = data.draw(st.integers(0, size), label="size1")
    assert tiles.consistency_proof(size1, size, read) == merkle.consistency_proof(
        leaves[:size], size1
    )
    assert tiles.root(size, read) == merkle.root_hash(leaves[:size])


@settings(max_examples=200, deadline=None)
@given(height=st.sampled_from([1, 2, 3]), size=st.integers(0, 600))
def test_tiles_are_the_c2sp_definition(height: int, size: int) -> None:
    """Tile n at level l holds MTH(D[(n * W + i) * W**l : (n * W + i + 1) * W**l]), i < W;
    the partial tile of level l has floor(size / W**l) mod W of them."""
    width = 1 << height
    leaves = _leaves(size)
    tiled = _Tiled(leaves, height)
    level = 0
    while size >> (height * level):
        span = width**level
        for index in range(tiles.full_tiles(size, level, height) + 1):
            levels = tiled.tile(level, index)
            starts = [(index * width + i) * span for i in range(width)]
            expected = b"".join(
                merkle.root_hash(leaves[lo : lo + span]) for lo in starts if lo + span <= size
            )
            assert levels[0] == expected, (level, index)
            assert levels == tiles.subtree_levels(expected, height)
        assert len(tiled.edge.partial(level)) == 32 * tiles.partial_width(size, level, height)
        level += 1
    assert sorted(tiled.full) == [
        (lv, i) for lv in range(level) for i in range(tiles.full_tiles(size, lv, height))
    ]


@settings(max_examples=100, deadline=None)
@given(height=st.sampled_from([1, 2, 3]), size=st.integers(0, 600), more=st.integers(0, 70))
def test_an_edge_restored_from_its_partial_tiles_grows_as_the_original(
    height: int, size: int, more: int
) -> None:
    leaves = _leaves(size + more)
    grown = tiles.Edge(height)
    for leaf in leaves[:size]:
        grown.append(leaf)
    level, partials = 0, []
    while size >> (height * level):
        partials.append(grown.partial(level))
        level += 1
    restored = tiles.Edge.restore(size, partials, height)
    for leaf in leaves[size:]:
        assert restored.append(leaf) == grown.append(leaf)
    assert [restored.levels(lv) for lv in range(5)] == [grown.levels(lv) for lv in range(5)]


def test_a_full_tile_is_stored_as_its_hashes_and_inner_levels() -> None:
    hashes = b"".join(_leaves(256))
    levels = tiles.subtree_levels(hashes)
    assert [len(lv) // 32 for lv in levels] == [256, 128, 64, 32, 16, 8, 4, 2]
    inner = tiles.pack_inner(levels)
    assert len(inner) == 254 * 32
    assert tiles.unpack_levels(hashes, inner) == levels
    assert tiles.tile_root(levels) == merkle.root_hash(_leaves(256))
    with pytest.raises(ValueError, match="not full"):
        tiles.unpack_levels(hashes[:-32], inner)


def test_where_each_subtree_is_kept() -> None:
    assert tiles.locate((0, 0)) == (0, 0, 0, 0)
    assert tiles.locate((0, 257)) == (0, 1, 0, 1)
    assert tiles.locate((7, 3)) == (0, 1, 7, 1)  # leaves 384..511: tile 0/1's right half
    assert tiles.locate((8, 5)) == (1, 0, 0, 5)  # a level-1 hash: tile 5 at level 0's root
    assert tiles.locate((9, 200)) == (1, 1, 1, 72)
    assert tiles.locate((16, 0)) == (2, 0, 0, 0)


def test_proof_arguments_outside_the_tree_are_refused() -> None:
    tiled = _Tiled(_leaves(10), 2)
    read = tiled.reader(10)
    with pytest.raises(ProofError, match="outside a tree of size 10"):
        tiles.inclusion_proof(10, 10, read)
    with pytest.raises(ProofError, match="between 0 and the tree size 10"):
        tiles.consistency_proof(11, 10, read)
    with pytest.raises(ValueError, match=r"no subtree \(2, 2\) in a tree of size 10"):
        read([(2, 2)])  # leaves 8..11
    with pytest.raises(ValueError, match="not a subtree"):
        tiles.range_nodes(3, 7)


def test_sizes_and_widths_follow_the_specification_example() -> None:
    """C2SP: a tree of 70,000 has 273 full level-0 tiles and a partial one of 112, one full
    level-1 tile and a partial one of 17, and a partial level-2 tile of 1."""
    assert [tiles.full_tiles(70_000, lv) for lv in range(3)] == [273, 1, 0]
    assert [tiles.partial_width(70_000, lv) for lv in range(3)] == [112, 17, 1]
    assert tiles.tile_exists(70_000, 0, 273, 112) and not tiles.tile_exists(70_000, 0, 273, 113)
    assert tiles.tile_exists(70_000, 0, 272, 256) and tiles.tile_exists(70_000, 0, 272, 5)
    assert tiles.tile_exists(70_000, 2, 0, 1) and not tiles.tile_exists(70_000, 3, 0, 1)
    assert [tiles.full_tiles(256, lv) for lv in range(2)] == [1, 0]
    assert tiles.partial_width(256, 1) == 1


@pytest.mark.parametrize(
    ("path", "level", "index", "width"),
    [
        ("0/000", 0, 0, 256),
        ("1/x001/x234/067", 1, 1_234_067, 256),
        ("0/x001/x234/067.p/8", 0, 1_234_067, 8),
        ("63/999.p/255", 63, 999, 255),
        ("entries/x002/000", None, 2000, 256),
        ("entries/001.p/1", None, 1, 1),
    ],
)
def test_tile_paths_are_c2sp_paths(path: str, level: int | None, index: int, width: int) -> None:
    assert tiles.parse_tile_path(path) == tiles.TilePath(level, index, width)
    assert tiles.tile_path(level, index, width) == path


@pytest.mark.parametrize(
    "path",
    [
        "",
        "0",
        "0/0",
        "0/1234",
        "00/000",
        "01/000",
        "64/000",
        "-1/000",
        "data/000",
        "0/x000/001",  # leading zeros: not the path tile 1 has
        "0/001/002",
        "0/x1/234",
        "0/000.p/0",
        "0/000.p/256",
        "0/000.p/01",
        "0/000.p/",
        "0/000/",
        "/0/000",
        "0/000.p/2/3",
        "entries/000.p/300",
        "0/+01",
        "0/\u0661\u0662\u0663",  # Arabic-Indic digits: not ASCII decimal
    ],
)
def test_other_paths_are_refused(path: str) -> None:
    with pytest.raises(ValueError, match=r"tile path|above 63|width is 1 to 255|canonical"):
        tiles.parse_tile_path(path)


def test_entry_bundles_are_uint16_length_prefixed() -> None:
    entries = [b"", b"a", bytes(300), bytes(range(256)) * 255 + bytes(255)]
    bundle = tiles.entry_bundle(entries)
    assert bundle[:5] == b"\x00\x00\x00\x01a"
    assert tiles.parse_entry_bundle(bundle) == entries
    assert len(entries[-1]) == tiles.MAX_ENTRY_BYTES
    with pytest.raises(ValueError, match="65536 bytes"):
        tiles.entry_bundle([b"x", bytes(65_536)])
    with pytest.raises(ValueError, match="past the end"):
        tiles.parse_entry_bundle(bundle[:-1])
    with pytest.raises(ValueError, match="inside the length"):
        tiles.parse_entry_bundle(b"\x00")
