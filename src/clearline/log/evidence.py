"""Opening a log as evidence: read it without changing it.

An audit must leave what it audits exactly as it found it. `open_evidence` gives
a read-only connection that creates, writes and locks nothing beside the log.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from clearline.errors import LogStoreError

COMPANIONS = ("-wal", "-journal")
"""Files beside a SQLite database that hold committed state the database file may lack."""

_COPY_ATTEMPTS = 5


def _state(paths: list[Path]) -> list[tuple[str, int, int, int] | None]:
    """What tells whether a file changed: inode, size and mtime (None if it is gone)."""
    out: list[tuple[str, int, int, int] | None] = []
    for p in paths:
        try:
            st = p.stat()
        except FileNotFoundError:
            out.append(None)
            continue
        out.append((p.name, st.st_ino, st.st_size, st.st_mtime_ns))
    return out


@contextmanager
def open_evidence(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to the log at `path` that leaves every file beside it as it was.

    SQLite opened with ``mode=ro`` on a WAL-mode database still creates ``-wal`` and
    ``-shm`` files next to it (and may leave them there). So:

    - With no ``-wal`` (or ``-journal``) beside it, the database file is the whole
      state: a node holding the log open always has a ``-wal``, so this is a closed
      log. It is opened in place with ``immutable=1``, which tells SQLite the file
      cannot change: no locks, no ``-shm``, no journal, nothing written. Whether it
      did change meanwhile is checked afterwards (inode, size, mtime), and is an error.
    - With a ``-wal`` beside it (a live node, or one killed before it could
      checkpoint), the un-checkpointed commits live in that file, and reading them
      in place would need the shared-memory index, i.e. a ``-shm`` file and locks
      on the evidence. Instead the database and its ``-wal`` are copied into a private
      temporary directory and the copy is opened; the copy is retaken if either file
      changed while it was made, and refused if they keep changing (a node busy
      writing it).

    Either way the evidence keeps its bytes, its mtime and its neighbours.
    """
    if not path.is_file():
        raise LogStoreError(f"no log file at {path}")
    companions = [Path(f"{path}{suffix}") for suffix in COMPANIONS]
    present = [c for c in companions if c.exists()]
    watched = [path, *companions]
    if not present:
        before = _state(watched)
        db = _connect(path, path.resolve().as_uri() + "?mode=ro&immutable=1", uri=True)
        try:
            yield db
        finally:
            db.close()
        if _state(watched) != before:
            raise LogStoreError(
                f"{path} changed while it was being read; audit it when no node has it open"
            )
        return
    with tempfile.TemporaryDirectory(prefix="clearline-audit-") as tmp:
        copy = Path(tmp) / path.name
        for _ in range(_COPY_ATTEMPTS):
            before = _state(watched)
            if before[0] is None:
                raise LogStoreError(f"no log file at {path}")
            for stale in Path(tmp).iterdir():  # a -wal copied before must not outlive its file
                stale.unlink()
            try:
                for source, state in zip(watched, before, strict=True):
                    if state is not None:
                        shutil.copyfile(source, Path(tmp) / source.name)
            except FileNotFoundError:
                continue  # one of them went away while it was copied: take them again
            except OSError as exc:
                raise LogStoreError(f"cannot read {path}: {exc.strerror or exc}") from None
            if _state(watched) == before:
                break
        else:
            raise LogStoreError(
                f"{path} changed each of {_COPY_ATTEMPTS} times it was copied (a node is "
                "writing it); audit it when the node is stopped, or audit a copy"
            )
        db = _connect(path, str(copy))
        try:
            db.execute("PRAGMA query_only = ON")
            yield db
        finally:
            db.close()


def _connect(path: Path, target: str, uri: bool = False) -> sqlite3.Connection:
    try:
        db = sqlite3.connect(target, uri=uri)
    except sqlite3.Error as exc:
        raise LogStoreError(f"{path} is not a readable clearline log: {exc}") from None
    try:
        db.execute("SELECT 1 FROM entries LIMIT 1")
    except sqlite3.Error as exc:
        db.close()
        raise LogStoreError(f"{path} is not a readable clearline log: {exc}") from None
    return db
