"""The SQLite log: appends survive reopening, and verify catches any alteration."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path

import pytest

from clearline.errors import LogIntegrityError, LogStoreError
from clearline.log import merkle
from clearline.log.store import LogStore, export_log, verify_log
from clearline.log.tree import CompactTree
from clearline.protocol import codec
from clearline.protocol.messages import Actor, Decision, Verdict
from clearline.protocol.signing import Ed25519Signer, Ed25519Verifier, KeyRing
from tests.protocol.harness import T0, make_pair

SEED = 20261127


def build_log(path: Path) -> LogStore:
    """A US log holding a real exchange: handshake, query, answer, a decision, checkpoints."""
    from clearline.protocol.messages import Query
    from tests.protocol.test_session import answer, track  # one scene, shared

    p = make_pair()
    q = p.us.send(Query(track(), T0 + 2_000_000), T0 + 10).message.seq
    p.pump(T0 + 20)
    p.prc.send(answer(q), T0 + 30)
    p.pump(T0 + 40)
    store = LogStore(path, p.us_key, "US")
    store.add_key("PRC", p.prc_key.public_key)
    frames = [e.cose for e in p.events["US"] if hasattr(e, "cose")]
    store.append(frames[:3])
    store.checkpoint(T0 + 50, bytes(32))
    store.append(frames[3:])
    store.record(
        Decision(
            "a1",
            Actor.AUTONOMOUS,
            "intercept-uncrewed",
            "air",
            Verdict.HOLD,
            "hotline-hold",
            "clarification open",
            bytes(32),
            "T-1",
            T0 + 2_000_000,
        ),
        T0 + 60,
    )
    store.checkpoint(T0 + 70, bytes(32))
    return store


def test_compact_tree_matches_root_hash() -> None:
    tree = CompactTree()
    leaves: list[bytes] = []
    for i in range(100):
        assert tree.root() == merkle.root_hash(leaves)
        leaves.append(merkle.leaf_hash(bytes([i])))
        tree.append(leaves[-1])


def test_untouched_log_verifies_and_reopens(tmp_path: Path) -> None:
    store = build_log(tmp_path / "us.db")
    size, root = store.size, store.root()
    store.close()
    report = verify_log(tmp_path / "us.db")
    assert report.entries == size and report.root == root.hex()
    assert report.checkpoints == 2 and report.last_checkpoint_size == size - 1
    assert report.by_type["decision"] == 1 and report.by_type["answer"] == 1
    again = LogStore(tmp_path / "us.db", Ed25519Signer.from_label("US"), "US")
    assert (again.size, again.root()) == (size, root)


def test_inclusion_and_consistency_proofs_from_store(tmp_path: Path) -> None:
    store = build_log(tmp_path / "us.db")
    root = store.root()
    for i in range(store.size):
        merkle.verify_inclusion(store.leaf_hash(i), i, store.size, store.inclusion_proof(i), root)
    merkle.verify_consistency(
        3,
        store.size,
        store.consistency_proof(3),
        merkle.root_hash([store.leaf_hash(i) for i in range(3)]),
        root,
    )


def _mutate(path: Path, sql: str, *args: object) -> None:
    db = sqlite3.connect(path)
    db.execute(sql, args)
    db.commit()
    db.close()


def test_every_flipped_byte_in_any_entry_is_caught(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    store = build_log(tmp_path / "us.db")
    store.close()
    pristine = (tmp_path / "us.db").read_bytes()
    db = sqlite3.connect(tmp_path / "us.db")
    rows = db.execute("SELECT idx, data FROM entries").fetchall()
    db.close()
    for idx, data in rows:
        for pos in rng.sample(range(len(data)), min(12, len(data))):
            (tmp_path / "us.db").write_bytes(pristine)
            for extra in ("-wal", "-shm"):
                (tmp_path / f"us.db{extra}").unlink(missing_ok=True)
            bad = bytearray(data)
            bad[pos] ^= 1 << rng.randrange(8)
            _mutate(tmp_path / "us.db", "UPDATE entries SET data=? WHERE idx=?", bytes(bad), idx)
            with pytest.raises(LogIntegrityError) as info:
                verify_log(tmp_path / "us.db")
            assert info.value.index == idx, f"seed {SEED}: entry {idx} byte {pos}"


def test_flipped_byte_in_the_file_itself_is_caught(tmp_path: Path) -> None:
    store = build_log(tmp_path / "us.db")
    db = store._db
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = db.execute("SELECT data FROM entries WHERE idx=5").fetchone()[0]
    store.close()
    raw = bytearray((tmp_path / "us.db").read_bytes())
    at = raw.find(data)
    assert at > 0
    raw[at + len(data) // 2] ^= 0x40
    (tmp_path / "us.db").write_bytes(bytes(raw))
    with pytest.raises(LogIntegrityError, match="entry 5"):
        verify_log(tmp_path / "us.db")


@pytest.mark.parametrize("change", ["remove", "remove-last", "swap", "insert", "root"])
def test_removal_reordering_and_insertion_are_caught(tmp_path: Path, change: str) -> None:
    path = tmp_path / "us.db"
    build_log(path).close()
    db = sqlite3.connect(path)
    rows = db.execute("SELECT idx, data, root FROM entries ORDER BY idx").fetchall()
    last = rows[-1][0]
    if change == "remove":
        db.execute("DELETE FROM entries WHERE idx=2")
    elif change == "remove-last":  # and fix up nothing: the checkpoint was the last entry
        db.execute("DELETE FROM entries WHERE idx=?", (last - 1,))
        db.execute("UPDATE entries SET idx=? WHERE idx=?", (last - 1, last))
    elif change == "swap":
        db.execute("UPDATE entries SET data=? WHERE idx=3", (rows[4][1],))
        db.execute("UPDATE entries SET data=? WHERE idx=4", (rows[3][1],))
    elif change == "insert":
        db.execute("UPDATE entries SET idx=idx+1000")
        for i, (_, data, root) in enumerate([rows[0], rows[0], *rows[1:]]):
            db.execute("INSERT INTO entries VALUES (?, ?, ?)", (i, data, root))
        db.execute("DELETE FROM entries WHERE idx>=1000")
    elif change == "root":
        db.execute("UPDATE entries SET root=? WHERE idx=1", (bytes(32),))
    db.commit()
    db.close()
    with pytest.raises(LogIntegrityError):
        verify_log(path)


def test_rewritten_log_with_recomputed_roots_fails_on_the_signed_checkpoint(tmp_path: Path) -> None:
    """An attacker who recomputes every root still cannot re-sign the owner's checkpoints."""
    path = tmp_path / "us.db"
    build_log(path).close()
    db = sqlite3.connect(path)
    rows = db.execute("SELECT idx, data FROM entries ORDER BY idx").fetchall()
    rows[1], rows[2] = rows[2], rows[1]  # swap two received messages of different sessions
    tree = CompactTree()
    for idx, (_, data) in enumerate(rows):
        tree.append(merkle.leaf_hash(data))
        db.execute("UPDATE entries SET data=?, root=? WHERE idx=?", (data, tree.root(), idx))
    db.commit()
    db.close()
    with pytest.raises(LogIntegrityError, match="entry 3: signed checkpoint"):
        verify_log(path)


def test_export_writes_cose_files_checkable_offline(tmp_path: Path) -> None:
    store = build_log(tmp_path / "us.db")
    size = store.size
    store.close()
    count = export_log(tmp_path / "us.db", tmp_path / "out")
    assert count == size
    keys = json.loads((tmp_path / "out" / "keys.json").read_text())
    ring = KeyRing()
    for kid, entry in keys.items():
        verifier = Ed25519Verifier(bytes.fromhex(entry["public_key"]))
        assert verifier.kid.hex() == kid
        ring.add(entry["side"], verifier)
    files = sorted((tmp_path / "out").glob("*.cose"))
    assert len(files) == size
    for f in files:
        codec.verify(f.read_bytes(), ring)


def test_wrong_owner_and_missing_file_are_clear(tmp_path: Path) -> None:
    build_log(tmp_path / "us.db").close()
    with pytest.raises(LogStoreError, match="belongs to key"):
        LogStore(tmp_path / "us.db", Ed25519Signer.from_label("PRC"), "PRC")
    with pytest.raises(LogStoreError, match="no log file"):
        verify_log(tmp_path / "nothing.db")
    (tmp_path / "junk.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(LogStoreError, match="not a readable clearline log"):
        verify_log(tmp_path / "junk.db")
