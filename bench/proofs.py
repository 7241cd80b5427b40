"""Proof benchmark: inclusion and consistency proofs from stored tiles at 1,000,000 entries,
against the same run's figure for recomputing them from the leaves (the method before
tiles), and the append rate with and without tile maintenance.

In one run:
- a log of `--entries` entries (260 bytes each, a Query message's size) is built with
  `LogStore.append` in batches of 10,000, tiles kept;
- the first 200,000 of them are appended again, in the same batches, to a log kept the
  way `append` kept it before tiles (leaf hash, compact-range root, one row per entry, in
  the same schema and transaction, no tiles), and both rates are reported; then 200
  single-entry appends to each at that size (one fsync each: what a quiet node does);
- proofs at random indices and sizes, from the tiles, timed for a few seconds (and
  inclusion proofs of the last 10,000 entries, what receipts ask for); the same
  from the leaves (`merkle.inclusion_proof`, `merkle.consistency_proof`) over the whole
  leaf list in memory, a few of them, at the full size and at 100,000 entries; each
  baseline proof is checked equal to the tiled one;
- the log is opened again, and opened once more after dropping its tiles (the migration a
  log from before tiles goes through).

Rates are per second of CPU time of this process (the machine is shared; wall-clock
rates are given beside them).

Run by hand:  .venv/bin/python bench/proofs.py [--entries 1000000] [--json]
Figures go to docs/performance.md with the machine and the date.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from clearline.log import merkle
from clearline.log.store import LogStore
from clearline.log.tree import CompactTree
from clearline.protocol.signing import Ed25519Signer

BATCH = 10_000
ENTRY_BYTES = 260
COMPARED_APPENDS = 200_000
SINGLE_APPENDS = 200
RECENT = 10_000
SEED = 20261127

_OLD_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE keys (kid BLOB PRIMARY KEY, side TEXT NOT NULL, public_key BLOB NOT NULL);
CREATE TABLE entries (idx INTEGER PRIMARY KEY, data BLOB NOT NULL, root BLOB NOT NULL);
"""


class UntiledLog:
    """`LogStore.append` as it was before tiles: the same pragmas, rows and transaction."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_OLD_SCHEMA)
        self.tree = CompactTree()
        self.leaves = bytearray()

    def append(self, entries: Sequence[bytes]) -> None:
        rows = []
        for data in entries:
            leaf = merkle.leaf_hash(data)
            self.leaves += leaf
            self.tree.append(leaf)
            rows.append((self.tree.size - 1, data, self.tree.root()))
        self.db.execute("BEGIN IMMEDIATE")
        self.db.executemany("INSERT INTO entries VALUES (?, ?, ?)", rows)
        self.db.execute("COMMIT")


def entry(i: int) -> bytes:
    return i.to_bytes(8, "big") * (ENTRY_BYTES // 8) + bytes(ENTRY_BYTES % 8)


class Clock:
    def __init__(self) -> None:
        self.cpu, self.wall = time.process_time(), time.perf_counter()

    def elapsed(self) -> tuple[float, float]:
        return time.process_time() - self.cpu, time.perf_counter() - self.wall


def timed_rate(fn: Callable[[], object], seconds: float) -> tuple[float, float, int]:
    """(calls per CPU second, calls per wall second, calls) over at least `seconds` of CPU."""
    n, clock = 0, Clock()
    while clock.elapsed()[0] < seconds:
        for _ in range(100):
            fn()
        n += 100
    cpu, wall = clock.elapsed()
    return n / cpu, n / wall, n


def counted_rate(fn: Callable[[int], object], count: int) -> tuple[float, float]:
    clock = Clock()
    for i in range(count):
        fn(i)
    cpu, wall = clock.elapsed()
    return count / cpu, count / wall


def append_rates(folder: Path, store: LogStore, total: int) -> dict[str, float]:
    """Time the first COMPARED_APPENDS entries of the tiled log against an untiled log fed
    the same batches; then single-entry appends to both at that size, in alternating blocks
    (the disk's pace drifts); then build the tiled log on to `total` entries."""
    out: dict[str, float] = {}
    untiled = UntiledLog(folder / "untiled.db")
    compared = min(COMPARED_APPENDS, total)
    logs = {"tiled": store, "untiled": untiled}
    for name, log in logs.items():
        clock = Clock()
        for start in range(0, compared, BATCH):
            log.append([entry(i) for i in range(start, min(start + BATCH, compared))])
        cpu, wall = clock.elapsed()
        out[f"append_batch_{name}_per_cpu_s"] = compared / cpu
        out[f"append_batch_{name}_per_wall_s"] = compared / wall
    spent = {name: [0.0, 0.0] for name in logs}
    for block in range(0, SINGLE_APPENDS, 20):
        for name, log in logs.items():
            clock = Clock()
            for i in range(compared + block, compared + block + 20):
                log.append([entry(i)])
            cpu, wall = clock.elapsed()
            spent[name][0] += cpu
            spent[name][1] += wall
    for name, (cpu, wall) in spent.items():
        out[f"append_single_{name}_per_cpu_s"] = SINGLE_APPENDS / cpu
        out[f"append_single_{name}_per_wall_s"] = SINGLE_APPENDS / wall
    untiled.db.close()
    for start in range(store.size, total, BATCH):
        store.append([entry(i) for i in range(start, min(start + BATCH, total))])
    return out


def proof_rates(
    store: LogStore, leaves: list[bytes], label: str, n: int, count: int, rng: random.Random
) -> dict[str, float]:
    """Proofs in the tree of the first `n` entries: from the tiles, timed for 5 CPU seconds
    each; from the leaves, `count` of each (checked equal to the tiled ones)."""
    out: dict[str, float] = {}
    tiled = {
        "inclusion": lambda: store.inclusion_proof(rng.randrange(n), n),
        "consistency": lambda: store.consistency_proof(rng.randrange(1, n), n),
    }
    for name, prove in tiled.items():
        cpu, wall, _ = timed_rate(prove, 5.0)
        out[f"{name}_tiles_{label}_per_cpu_s"] = cpu
        out[f"{name}_tiles_{label}_per_wall_s"] = wall
    prefix = leaves[:n]
    picks = [(rng.randrange(n), rng.randrange(1, n)) for _ in range(count)]
    from_leaves = {
        "inclusion": lambda i: merkle.inclusion_proof(prefix, picks[i][0]),
        "consistency": lambda i: merkle.consistency_proof(prefix, picks[i][1]),
    }
    for name, prove_i in from_leaves.items():
        cpu, wall = counted_rate(prove_i, count)
        out[f"{name}_leaves_{label}_per_cpu_s"] = cpu
        out[f"{name}_leaves_{label}_per_wall_s"] = wall
    for index, size1 in picks:
        assert merkle.inclusion_proof(prefix, index) == store.inclusion_proof(index, n)
        assert merkle.consistency_proof(prefix, size1) == store.consistency_proof(size1, n)
    return out


def main(total: int) -> dict[str, Any]:
    rng = random.Random(SEED)
    out: dict[str, Any] = {"entries": total}
    with tempfile.TemporaryDirectory(prefix="clearline-bench-") as tmp:
        folder = Path(tmp)
        owner = Ed25519Signer.from_label("US")
        store = LogStore(folder / "us.db", owner, "US")
        clock = Clock()
        out.update(append_rates(folder, store, total))
        out["build_wall_s"] = clock.elapsed()[1]
        size = store.size  # the total and the single appends
        out["size"] = size
        root = store.root()

        leaves = [store.leaf_hash(i) for i in range(size)]
        out.update(proof_rates(store, leaves, "full", size, 3, rng))
        out.update(proof_rates(store, leaves, "100k", min(100_000, size), 10, rng))
        index = rng.randrange(size)
        merkle.verify_inclusion(leaves[index], index, size, store.inclusion_proof(index), root)
        del leaves
        # What a node is mostly asked for: receipts of what it logged lately.
        recent = min(RECENT, size)
        cpu, wall, _ = timed_rate(
            lambda: store.inclusion_proof(size - 1 - rng.randrange(recent)), 5.0
        )
        out["inclusion_tiles_recent_per_cpu_s"] = cpu
        out["inclusion_tiles_recent_per_wall_s"] = wall
        store.close()

        clock = Clock()
        store = LogStore(folder / "us.db", owner, "US")
        out["reopen_wall_s"] = clock.elapsed()[1]
        store.close()
        db = sqlite3.connect(folder / "us.db")
        db.execute("DROP TABLE tiles")
        db.close()
        clock = Clock()
        store = LogStore(folder / "us.db", owner, "US")
        out["migrate_wall_s"] = clock.elapsed()[1]
        assert store.root() == root
        store.close()
        out["db_bytes"] = (folder / "us.db").stat().st_size
    for name in ("inclusion", "consistency"):
        for label in ("full", "100k"):
            out[f"{name}_ratio_{label}"] = (
                out[f"{name}_tiles_{label}_per_cpu_s"] / out[f"{name}_leaves_{label}_per_cpu_s"]
            )
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = main(args.entries)
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
        for name, value in figures.items():
            print(f"{name:40} {value:16,.2f}")
        sys.stdout.flush()
