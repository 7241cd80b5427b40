"""Opening a log as evidence: read it without changing it, and pin keys from outside it.

An audit must leave what it audits exactly as it found it, and must not take the
audited file's word for whose keys signed it. `open_evidence` gives a read-only
connection that creates, writes and locks nothing beside the log; `load_trust`
reads the keys an auditor pins, in the `keys.json` format `clearline log export`
writes: ``{kid_hex: {"side", "alg": "EdDSA", "crv": "Ed25519", "public_key"}}``.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from clearline.errors import InputFileError, LogStoreError
from clearline.protocol.constants import KID_SIZE
from clearline.protocol.messages import SIDE_PATTERN
from clearline.protocol.signing import Ed25519Verifier, KeyRing, key_id

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


# -- trusted keys -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrustedKey:
    side: str
    public_key: bytes


@dataclass(frozen=True, slots=True)
class TrustedKeys:
    """Keys pinned from outside the log being audited, by kid."""

    source: str
    keys: dict[bytes, TrustedKey]

    def ring(self) -> KeyRing:
        ring = KeyRing()
        for key in self.keys.values():
            ring.add(key.side, Ed25519Verifier(key.public_key))
        return ring


_KID = re.compile(rf"[0-9a-f]{{{2 * KID_SIZE}}}")
_PUBLIC_KEY = re.compile(r"[0-9a-f]{64}")
_SIDE = re.compile(SIDE_PATTERN)
_FIELDS = {"side", "alg", "crv", "public_key"}


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    seen: dict[str, object] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"key {key!r} appears twice")
        seen[key] = value
    return seen


def load_trust(path: Path) -> TrustedKeys:
    """Read and check a keys.json; every problem names the file and the key."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputFileError("no such trust file", source) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot read the trust file: {exc}", source) from None
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise InputFileError(f"not JSON: {exc.msg}", source, exc.lineno) from None
    except ValueError as exc:
        raise InputFileError(str(exc), source) from None
    expected = '{kid_hex: {"side", "alg", "crv", "public_key"}} as `clearline log export` writes'
    if not isinstance(obj, dict):
        raise InputFileError(f"expected an object {expected}", source)
    if not obj:
        raise InputFileError(f"no keys; expected {expected}", source)
    keys: dict[bytes, TrustedKey] = {}
    for kid, entry in obj.items():
        where = f"key {kid!r}"
        if not _KID.fullmatch(kid):
            raise InputFileError(f"{where}: expected a kid of {2 * KID_SIZE} hex digits", source)
        if not isinstance(entry, dict):
            raise InputFileError(f"{where}: expected an object with {sorted(_FIELDS)}", source)
        missing, unknown = _FIELDS - set(entry), set(entry) - _FIELDS
        if missing or unknown:
            parts = [f"missing {sorted(missing)}" if missing else ""]
            parts.append(f"unknown {sorted(unknown)}" if unknown else "")
            detail = ", ".join(p for p in parts if p)
            raise InputFileError(f"{where}: {detail}; expected exactly {sorted(_FIELDS)}", source)
        side, alg, crv, public = (entry[f] for f in ("side", "alg", "crv", "public_key"))
        if not isinstance(side, str) or not _SIDE.fullmatch(side):
            raise InputFileError(f"{where}: side {side!r} is not a side name", source)
        if alg != "EdDSA":
            raise InputFileError(f"{where}: alg {alg!r}, expected 'EdDSA'", source)
        if crv != "Ed25519":
            raise InputFileError(f"{where}: crv {crv!r}, expected 'Ed25519'", source)
        if not isinstance(public, str) or not _PUBLIC_KEY.fullmatch(public):
            raise InputFileError(
                f"{where}: public_key must be 64 lowercase hex digits (32 bytes)", source
            )
        public_key = bytes.fromhex(public)
        if key_id(public_key).hex() != kid:
            raise InputFileError(
                f"{where}: kid does not match public_key (its kid is {key_id(public_key).hex()})",
                source,
            )
        keys[bytes.fromhex(kid)] = TrustedKey(side, public_key)
    return TrustedKeys(source, keys)
