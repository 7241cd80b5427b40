"""The store's tiles: kept with the entries, proofs read from them equal those recomputed from
the leaves at every size (256 and 65,536 crossed), logs from before tiles are migrated on
open, and a tile that does not match its entries is caught."""

from __future__ import annotations

import logging
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from clearline.errors import LogIntegrityError, LogStoreError
from clearline.log import merkle, tiles
from clearline.log.store import LogStore, verify_log
from clearline.protocol.messages import Actor, Decision, Verdict
from clearline.protocol.signing import Ed25519Signer
from tests.protocol.harness import T0

OWNER = Ed25519Signer.from_label("US")
BIG = 65_536 + 700
"""Past the first full level-1 tile, with a level-1 partial tile of width 2."""


@dataclass
class Big:
    path: Path
    leaves: list[bytes]
    store: LogStore


def _entry(i: int) -> bytes:
    return b"entry %d " % i + bytes(i % 97)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Big]:
    path = tmp_path_factory.mktemp("tiles") / "us.db"
    store = LogStore(path, OWNER, "US")
    entries = [_entry(i) for i in range(BIG)]
    for start in range(0, BIG, 5000):
        store.append(entries[start : start + 5000])
    yield Big(path, [merkle.leaf_hash(e) for e in entries], store)
    store.close()


BOUNDARIES = [
    b + d for b in (256, 512, 65_536, 65_536 + 256, 131_072) for d in (-1, 0, 1) if b + d <= BIG
]
SIZES = st.one_of(st.integers(1, BIG), st.sampled_from(BOUNDARIES), st.integers(1, 600))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
@example(data=None)
def test_proofs_from_stored_tiles_equal_merkle(big: Big, data: st.DataObject | None) -> None:
    if data is None:  # the very ends of the largest tree, once
        cases = [(BIG, 0, 0), (BIG, BIG - 1, BIG - 1), (65_536, 65_535, 256)]
    else:
        size = data.draw(SIZES, label="size")
        cases = [
            (
                size,
                data.draw(st.integers(0, size - 1), label="index"),
                data.draw(st.one_of(st.integers(0, size), st.sampled_from([256, 65_536])))
                if size >= 65_536
                else data.draw(st.integers(0, size), label="size1"),
            )
        ]
    for size, index, size1 in cases:
        prefix = big.leaves[:size]
        assert big.store.inclusion_proof(index, size) == merkle.inclusion_proof(prefix, index)
        assert big.store.consistency_proof(size1, size) == merkle.consistency_proof(prefix, size1)


def test_tiles_served_are_the_c2sp_tiles(big: Big) -> None:
    store, leaves = big.store, big.leaves

    def hashes(level: int, index: int, width: int) -> bytes:
        span = 256**level
        return b"".join(
            merkle.root_hash(leaves[lo : lo + span])
            for lo in range((index * 256) * span, (index * 256 + width) * span, span)
        )

    assert store.tile(0, 0) == b"".join(leaves[:256])
    assert store.tile(0, 255) == b"".join(leaves[255 * 256 : 256 * 256])
    assert store.tile(0, 258, 188) == b"".join(leaves[258 * 256 :])
    assert store.tile(0, 258, 189) is None
    assert store.tile(0, 258) is None
    assert store.tile(0, 3, 5) == b"".join(leaves[768:773])  # a full tile's prefix
    assert store.tile(1, 0) == hashes(1, 0, 256)
    assert store.tile(1, 1, 2) == hashes(1, 1, 2)
    assert store.tile(1, 1, 3) is None
    assert store.tile(2, 0, 1) == merkle.root_hash(leaves[:65_536])
    assert store.tile(3, 0, 1) is None
    assert store.tile(64, 0, 1) is None
    bundle = store.entry_bundle(1)
    assert bundle is not None
    assert tiles.parse_entry_bundle(bundle) == [_entry(i) for i in range(256, 512)]
    partial = store.entry_bundle(258, 188)
    assert partial is not None
    assert tiles.parse_entry_bundle(partial) == [_entry(i) for i in range(258 * 256, BIG)]
    assert store.entry_bundle(258) is None
    assert store.leaf_hash(BIG - 1) == leaves[-1]
    with pytest.raises(IndexError):
        store.leaf_hash(BIG)


def test_a_reopened_store_has_the_same_tree(big: Big, tmp_path: Path) -> None:
    copy = _copy(big, tmp_path)
    again = LogStore(copy, OWNER, "US")
    assert (again.size, again.root()) == (BIG, big.store.root())
    assert again.inclusion_proof(66_000) == big.store.inclusion_proof(66_000)
    again.close()


def _copy(big: Big, folder: Path) -> Path:
    big.store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy(big.path, folder / "us.db")
    return folder / "us.db"


def _tile_rows(path: Path) -> list[tuple[int, int, bytes, bytes]]:
    db = sqlite3.connect(path)
    rows = db.execute("SELECT level, idx, hashes, inner FROM tiles ORDER BY level, idx").fetchall()
    db.close()
    return rows


@pytest.mark.parametrize("before", ["no tiles table", "some tiles missing"])
def test_a_log_from_before_tiles_gets_them_on_open(
    big: Big, tmp_path: Path, caplog: pytest.LogCaptureFixture, before: str
) -> None:
    copy = _copy(big, tmp_path)
    expected = _tile_rows(copy)
    assert len(expected) == 258 + 1
    db = sqlite3.connect(copy)
    if before == "no tiles table":  # as a log written before this version is
        db.execute("DROP TABLE tiles")
    else:  # as an older version leaves a log it appended to
        db.execute("DELETE FROM tiles WHERE level = 0 AND idx >= 200")
    db.commit()
    db.close()
    with caplog.at_level(logging.INFO, logger="clearline.log"):
        store = LogStore(copy, OWNER, "US")
    assert f"built 259 tiles from its {BIG} entries" in caplog.text
    assert (store.size, store.root()) == (BIG, big.store.root())
    assert store.consistency_proof(65_535) == big.store.consistency_proof(65_535)
    store.close()
    assert _tile_rows(copy) == expected
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="clearline.log"):
        LogStore(copy, OWNER, "US").close()
    assert "built" not in caplog.text


def _decision(i: int) -> Decision:
    return Decision(
        f"a{i}",
        Actor.AUTONOMOUS,
        "intercept-uncrewed",
        "air",
        Verdict.HOLD,
        "hotline-hold",
        "clarification open",
        bytes(32),
        "T-1",
        T0 + 2_000_000,
    )


@pytest.fixture
def signed(tmp_path: Path) -> Path:
    """A log of 300 signed records: one full tile at level 0."""
    store = LogStore(tmp_path / "us.db", OWNER, "US")
    store.append([store.seal_local(_decision(i), T0 + i, i) for i in range(299)])
    store.checkpoint(T0 + 300, bytes(32))
    store.close()
    return tmp_path / "us.db"


def _sql(path: Path, sql: str, *args: object) -> None:
    db = sqlite3.connect(path)
    db.execute(sql, args)
    db.commit()
    db.close()


def test_verify_checks_every_tile_against_the_entries(signed: Path) -> None:
    assert verify_log(signed).tiles == 1
    (hashes,) = sqlite3.connect(signed).execute("SELECT hashes FROM tiles").fetchone()
    changed = bytearray(hashes)
    changed[100] ^= 1
    _sql(signed, "UPDATE tiles SET hashes = ?", bytes(changed))
    # What is served changed, not what proofs are built from: the store still opens.
    LogStore(signed, OWNER, "US").close()
    with pytest.raises(LogIntegrityError, match=r"stored tile 0/0 \(entries 0 to 255\) does not"):
        verify_log(signed)
    _sql(signed, "UPDATE tiles SET hashes = ?", hashes)
    _sql(signed, "INSERT INTO tiles VALUES (0, 1, ?, ?)", hashes, b"")
    with pytest.raises(LogIntegrityError, match="1 stored tiles lie past the last entry"):
        verify_log(signed)
    _sql(signed, "DELETE FROM tiles WHERE idx = 0")
    with pytest.raises(LogIntegrityError, match=r"tile 0/0 .* is missing, though other tiles"):
        verify_log(signed)
    _sql(signed, "DROP TABLE tiles")  # a log from before tiles: nothing to check
    assert verify_log(signed).tiles == 0


def test_a_store_whose_tiles_give_another_root_does_not_open(signed: Path) -> None:
    (inner,) = sqlite3.connect(signed).execute("SELECT inner FROM tiles").fetchone()
    _sql(signed, "UPDATE tiles SET inner = ?", inner[:-32] + bytes(32))  # its root's right half
    with pytest.raises(LogStoreError, match="does not end at the root its last entry"):
        LogStore(signed, OWNER, "US")


def test_a_failed_append_leaves_entries_and_tiles_as_they_were(tmp_path: Path) -> None:
    store = LogStore(tmp_path / "us.db", OWNER, "US")
    store.append([_entry(i) for i in range(250)])
    root = store.root()
    store._db.execute(
        "CREATE TRIGGER full BEFORE INSERT ON tiles BEGIN SELECT RAISE(ABORT, 'disk full'); END"
    )
    with pytest.raises(LogStoreError, match="disk full"):
        store.append([_entry(i) for i in range(250, 260)])  # fills tile 0/0
    assert (store.size, store.root()) == (250, root)
    assert store.inclusion_proof(249) == merkle.inclusion_proof(
        [merkle.leaf_hash(_entry(i)) for i in range(250)], 249
    )
    store._db.execute("DROP TRIGGER full")
    store.append([_entry(i) for i in range(250, 600)])
    leaves = [merkle.leaf_hash(_entry(i)) for i in range(600)]
    assert store.root() == merkle.root_hash(leaves)
    assert store.consistency_proof(255) == merkle.consistency_proof(leaves, 255)
    store.close()
    assert [(lv, i) for lv, i, _, _ in _tile_rows(tmp_path / "us.db")] == [(0, 0), (0, 1)]


def test_the_latest_checkpoint_is_found_and_followed(signed: Path) -> None:
    store = LogStore(signed, OWNER, "US")
    assert store.latest_checkpoint() == (299, store.root_at(299))
    store.record(_decision(1000), T0 + 1000)
    assert store.latest_checkpoint() == (299, store.root_at(299))
    store.checkpoint(T0 + 1001, bytes(32))
    assert store.latest_checkpoint() == (301, store.root_at(301))
    store.close()
    fresh = LogStore(signed.with_name("empty.db"), OWNER, "US")
    assert fresh.latest_checkpoint() is None
    fresh.close()
