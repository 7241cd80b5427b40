"""A witness's state on disk (SQLite): per log, the checkpoint it last cosigned.

`add` reads the state, decides (`check_add`) and commits the new checkpoint in one
immediate transaction with `synchronous=FULL`, so the check and the update cannot
interleave with another request (the rollback race the specification warns of), and a
checkpoint is on disk before its cosignature is made: after kill -9, every cosignature the
witness ever returned names a checkpoint it still holds.

Besides the latest checkpoint per log, the witness keeps every (size, root) it cosigned,
keyed by (origin, size), so that a second root for one size cannot even be stored; and the
first few refused checkpoints that claimed another root for a size it cosigned, which are
evidence: two tree heads for one size, both signed by the log's key.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from clearline.errors import LogStoreError, WitnessRefusalError
from clearline.witness.protocol import AddCheckpoint, Latest, check_add

MAX_EVIDENCE = 10_000
"""Refused conflicting checkpoints kept; more are refused without being kept."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS latest (
    origin TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    root BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS cosigned (
    origin TEXT NOT NULL,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    PRIMARY KEY (origin, size)
);
CREATE TABLE IF NOT EXISTS evidence (
    id INTEGER PRIMARY KEY,
    origin TEXT NOT NULL,
    size INTEGER NOT NULL,
    note TEXT NOT NULL,
    UNIQUE (origin, size, note)
);
"""


class WitnessState:
    """The witness's SQLite file. Not thread-safe: one thread calls it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk (the WAL fsynced) before it returns.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise LogStoreError(f"cannot open the witness state {path}: {exc}") from None

    def latest(self, origin: str) -> Latest | None:
        row = self._db.execute(
            "SELECT size, root FROM latest WHERE origin = ?", (origin,)
        ).fetchone()
        return None if row is None else Latest(int(row[0]), bytes(row[1]))

    def add(self, request: AddCheckpoint) -> bool:
        """Check `request` against the state and commit it if it is new (True); False if it
        is the checkpoint already held; WitnessRefusalError otherwise."""
        head = request.head
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                latest = self.latest(head.origin)
                try:
                    new = check_add(request, latest)
                except WitnessRefusalError as refusal:
                    cosigned = self._db.execute(
                        "SELECT root FROM cosigned WHERE origin = ? AND size = ?",
                        (head.origin, head.size),
                    ).fetchone()
                    if cosigned is not None and bytes(cosigned[0]) != head.root:
                        # Two roots for one size, both signed by the log's key: a fork.
                        refusal.fork = True
                        self._keep_evidence(request)
                        self._db.execute("COMMIT")
                    else:
                        self._db.execute("ROLLBACK")
                    raise
                if new:
                    self._db.execute(
                        "INSERT INTO latest VALUES (?, ?, ?) ON CONFLICT (origin) "
                        "DO UPDATE SET size = excluded.size, root = excluded.root",
                        (head.origin, head.size, head.root),
                    )
                    # Plain INSERT: a second root for a size would break the primary key.
                    self._db.execute(
                        "INSERT INTO cosigned VALUES (?, ?, ?)", (head.origin, head.size, head.root)
                    )
                self._db.execute("COMMIT")
                return new
            except sqlite3.Error:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise LogStoreError(f"the witness state {self.path}: {exc}") from None

    def _keep_evidence(self, request: AddCheckpoint) -> None:
        (count,) = self._db.execute("SELECT count(*) FROM evidence").fetchone()
        if count < MAX_EVIDENCE:
            self._db.execute(
                "INSERT OR IGNORE INTO evidence (origin, size, note) VALUES (?, ?, ?)",
                (request.head.origin, request.head.size, str(request.note)),
            )

    def cosigned(self, origin: str) -> dict[int, bytes]:
        """Every size cosigned for `origin`, with its root."""
        rows = self._db.execute("SELECT size, root FROM cosigned WHERE origin = ?", (origin,))
        return {int(size): bytes(root) for size, root in rows}

    def evidence(self, origin: str) -> list[str]:
        """The refused checkpoints that claimed another root for a size cosigned (notes)."""
        rows = self._db.execute("SELECT note FROM evidence WHERE origin = ? ORDER BY id", (origin,))
        return [str(note) for (note,) in rows]

    def close(self) -> None:
        self._db.close()
