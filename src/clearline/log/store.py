"""The durable log: every message sent and received and every gate decision, as exact COSE bytes.

SQLite in WAL mode with ``synchronous=FULL``: `append` returns only after the
transaction has committed, so nothing is reported as logged before it is on
disk. Each row keeps the tree root after it, so `verify_log` can name the first
entry that was altered, removed, inserted or moved; signed checkpoints (the
owner's Checkpoint records) make a deliberate rewrite detectable too, because
they cannot be re-signed without the owner's key; keys pinned from outside the
file (`clearline.log.evidence`) keep whoever rewrites it from bringing keys of
their own. `verify_log` and `export_log` open the file as evidence: nothing
beside it is created or changed.

The tree's hashes are kept too, as C2SP tiles (`clearline.log.tiles`: each full tile's
256 hashes and the inner levels of its subtree), written in the transaction of the
entries that fill them: a proof reads O(log n) of them instead of rehashing the leaves,
opening the log reads the right edge instead of every entry, and the node serves them as
they are. They are derived data: a log without them gets them on open, and `verify_log`
checks each against the entries.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from clearline.errors import (
    KeyMaterialError,
    LogIntegrityError,
    LogStoreError,
    MessageError,
    SignatureError,
)
from clearline.gate.authority import Roster, approval_digest, open_approval, recheck_decision
from clearline.gate.policy import Policy
from clearline.log import merkle, tiles
from clearline.log.evidence import TrustedKeys, open_evidence
from clearline.log.tree import CompactTree
from clearline.protocol import codec
from clearline.protocol.messages import (
    Actor,
    Approval,
    Body,
    Checkpoint,
    Decision,
    Hello,
    Message,
    Micros,
    Verdict,
)
from clearline.protocol.signing import Ed25519Verifier, KeyRing, Signer

FORMAT_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS keys (
    kid BLOB PRIMARY KEY, side TEXT NOT NULL, public_key BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    idx INTEGER PRIMARY KEY, data BLOB NOT NULL, root BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tiles (
    level INTEGER NOT NULL, idx INTEGER NOT NULL, hashes BLOB NOT NULL, inner BLOB NOT NULL,
    PRIMARY KEY (level, idx));
"""
TILE_CACHE = 256
"""Full tiles kept decoded in memory (16 KiB each), most recently read first: the few upper
tiles every proof reads stay here."""
MIGRATION_CHUNK = 4096
"""Entries read at a time while building the tiles of a log that has none."""

log = logging.getLogger("clearline.log")


class LogStore:
    """One side's log. The owner's signer seals local records (decisions, checkpoints)."""

    def __init__(self, path: Path, owner: Signer, side: str) -> None:
        self.path = path
        self.owner = owner
        self.side = side
        try:
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise LogStoreError(f"cannot open log {path}: {exc}") from None
        meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        if not meta:
            with self._transaction():
                self._db.executemany(
                    "INSERT INTO meta VALUES (?, ?)",
                    [
                        ("format", str(FORMAT_VERSION)),
                        ("owner_kid", owner.kid.hex()),
                        ("side", side),
                    ],
                )
        elif meta.get("owner_kid") != owner.kid.hex():
            raise LogStoreError(
                f"log {path} belongs to key {meta.get('owner_kid')}, not {owner.kid.hex()}"
            )
        self.add_key(side, owner.public_key)
        self._cache: OrderedDict[tuple[int, int], tuple[bytes, ...]] = OrderedDict()
        self._edge_levels: dict[int, tuple[bytes, ...]] = {}
        self._folded: tiles.Folded = {}
        self._checkpoint: tuple[int, bytes] | None = None
        self._checkpoint_known = False
        try:
            (size,) = self._db.execute("SELECT COUNT(*) FROM entries").fetchone()
            if not self._tiles_complete(size):
                self._build_tiles(size)
            self._edge = self._restore_edge(size)
            nodes = tiles.compact_range(size)
            self._tree = CompactTree.from_roots(size, self._read(nodes))
        except sqlite3.Error as exc:
            raise LogStoreError(f"cannot read log {path}: {exc}") from None
        if self._tree.root() != self.root_at(size):
            self._db.close()
            raise LogStoreError(
                f"log {path}: the tree its stored tiles give does not end at the root its last "
                f"entry ({size - 1}) records; `clearline log verify` names what differs"
            )

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    # -- tiles: the tree's hashes, stored as entries are appended ------------------------

    def _tiles_complete(self, size: int) -> bool:
        """Whether the tiles table holds exactly the full tiles of the tree of `size`."""
        stored = {
            level: (count, low, high)
            for level, count, low, high in self._db.execute(
                "SELECT level, COUNT(*), MIN(idx), MAX(idx) FROM tiles GROUP BY level"
            )
        }
        expected = {}
        level = 0
        while count := tiles.full_tiles(size, level):
            expected[level] = (count, 0, count - 1)
            level += 1
        return stored == expected

    def _build_tiles(self, size: int) -> None:
        """Store the tiles of every entry: a log from before tiles were kept has none. One
        transaction, so that the log has all its tiles or none of them."""
        (before,) = self._db.execute("SELECT COUNT(*) FROM tiles").fetchone()
        edge, built = tiles.Edge(), 0
        with self._transaction():
            self._db.execute("DELETE FROM tiles")
            for start in range(0, size, MIGRATION_CHUNK):
                filled = []
                for (data,) in self._db.execute(
                    "SELECT data FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx",
                    (start, start + MIGRATION_CHUNK),
                ).fetchall():
                    filled += edge.append(merkle.leaf_hash(data))
                self._db.executemany("INSERT INTO tiles VALUES (?, ?, ?, ?)", _tile_rows(filled))
                built += len(filled)
        log.info(
            "log %s: built %d tiles from its %d entries (it held %d; a log written before "
            "tiles were stored holds none)",
            self.path,
            built,
            size,
            before,
        )

    def _restore_edge(self, size: int) -> tiles.Edge:
        """The partial tile of each level: level 0 hashed from the last entries, each level
        above from the roots of the full tiles below it."""
        partials = []
        level = 0
        while size >> (tiles.HEIGHT * level):
            width = tiles.partial_width(size, level)
            first = tiles.full_tiles(size, level) << tiles.HEIGHT
            if level == 0:
                rows = self._db.execute(
                    "SELECT data FROM entries WHERE idx >= ? ORDER BY idx LIMIT ?", (first, width)
                ).fetchall()
                hashes = [merkle.leaf_hash(data) for (data,) in rows]
            else:
                rows = self._db.execute(
                    "SELECT hashes, inner FROM tiles WHERE level = ? AND idx >= ? "
                    "ORDER BY idx LIMIT ?",
                    (level - 1, first, width),
                ).fetchall()
                hashes = [tiles.tile_root(_levels(row)) for row in rows]
            if len(hashes) != width:
                raise LogStoreError(f"log {self.path}: tile level {level} misses hashes")
            partials.append(b"".join(hashes))
            level += 1
        return tiles.Edge.restore(size, partials)

    def _tile(self, level: int, index: int) -> tuple[bytes, ...]:
        """The levels of tile (level, index): stored if full, else the edge's."""
        if index >= tiles.full_tiles(self._edge.size, level):
            levels = self._edge_levels.get(level)
            if levels is None:
                levels = self._edge_levels[level] = self._edge.levels(level)
            return levels
        key = (level, index)
        levels = self._cache.get(key)
        if levels is not None:
            self._cache.move_to_end(key)
            return levels
        try:
            row = self._db.execute(
                "SELECT hashes, inner FROM tiles WHERE level = ? AND idx = ?", key
            ).fetchone()
        except sqlite3.Error as exc:
            raise LogStoreError(f"cannot read tile {level}/{index} of {self.path}: {exc}") from None
        if row is None:
            raise LogStoreError(f"log {self.path}: tile {level}/{index} is missing")
        levels = self._cache[key] = _levels(row)
        if len(self._cache) > TILE_CACHE:
            self._cache.popitem(last=False)
        return levels

    def _read(self, nodes: Sequence[tiles.Node]) -> list[bytes]:
        return tiles.read_nodes(nodes, self._edge.size, self._tile)

    @property
    def size(self) -> int:
        return self._tree.size

    def root(self) -> bytes:
        return self._tree.root()

    def root_at(self, size: int) -> bytes:
        """The root of the first `size` entries (each row keeps the root after it)."""
        if not 0 <= size <= self.size:
            raise LogStoreError(f"no tree of size {size}; the log has {self.size} entries")
        if size == 0:
            return merkle.EMPTY_ROOT
        row = self._db.execute("SELECT root FROM entries WHERE idx = ?", (size - 1,)).fetchone()
        return bytes(row[0])

    def add_key(self, side: str, public_key: bytes) -> None:
        kid = Ed25519Verifier(public_key).kid
        with self._transaction():
            self._db.execute("INSERT OR IGNORE INTO keys VALUES (?, ?, ?)", (kid, side, public_key))

    def append(self, entries: Sequence[bytes]) -> list[int]:
        """Append COSE_Sign1 entries in one committed transaction, with the tiles they fill
        (so that the two never disagree, whenever it crashes); returns their indices."""
        first = self.size
        tree, edge = self._tree.copy(), self._edge.copy()
        self._edge_levels.clear()
        rows = []
        filled: list[tiles.FullTile] = []
        try:
            for data in entries:
                leaf = merkle.leaf_hash(data)
                self._tree.append(leaf)
                filled += self._edge.append(leaf)
                rows.append((self.size - 1, data, self._tree.root()))
            with self._transaction():
                self._db.executemany("INSERT INTO entries VALUES (?, ?, ?)", rows)
                if filled:
                    self._db.executemany(
                        "INSERT INTO tiles VALUES (?, ?, ?, ?)", _tile_rows(filled)
                    )
        except sqlite3.Error as exc:
            self._tree, self._edge = tree, edge
            raise LogStoreError(f"append to {self.path} failed: {exc}") from None
        return list(range(first, self.size))

    def seal_local(self, body: Body, now: Micros, index: int | None = None) -> bytes:
        """Sign a local record (never sent): empty session id, sequence = its log index
        (`index`, when it will be appended after others in the same batch)."""
        message = Message(self.side, b"", self.size if index is None else index, now, body)
        return codec.sign(message, self.owner)

    def record(self, body: Body, now: Micros) -> int:
        """Seal and append one local record."""
        index = self.append([self.seal_local(body, now)])[0]
        if isinstance(body, Checkpoint):
            self._checkpoint, self._checkpoint_known = (body.size, body.root), True
        return index

    def checkpoint(self, now: Micros, policy_hash: bytes, roster_hash: bytes = bytes(32)) -> int:
        """Append a signed checkpoint over everything logged so far, naming the gate policy
        and the authority roster in force."""
        body = Checkpoint(self.size, self.root(), policy_hash, roster_hash=roster_hash)
        return self.record(body, now)

    def latest_checkpoint(self) -> tuple[int, bytes] | None:
        """(size, root) of the owner's latest signed checkpoint record: the last one `record`
        appended, or else the last in the log, looked for once."""
        if not self._checkpoint_known:
            self._checkpoint, self._checkpoint_known = self._find_checkpoint(), True
        return self._checkpoint

    def _find_checkpoint(self) -> tuple[int, bytes] | None:
        for (data,) in self._db.execute("SELECT data FROM entries ORDER BY idx DESC"):
            try:
                envelope = codec.parse_envelope(data)
                if envelope.kid != self.owner.kid:
                    continue
                message = codec.decode_payload(envelope.payload)
            except MessageError:
                continue
            if message.session_id == b"" and isinstance(message.body, Checkpoint):
                return message.body.size, message.body.root
        return None

    def _tree_size(self, size: int | None) -> int:
        if size is None:
            return self.size
        if not 0 <= size <= self.size:
            raise LogStoreError(f"no tree of size {size}; the log has {self.size} entries")
        return size

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Audit path of entry `index` in the tree of the first `size` entries (default all):
        O(log n) hashes read from the tiles."""
        return tiles.inclusion_proof(index, self._tree_size(size), self._read, self._folded)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """Consistency proof from the first `size1` entries to the first `size2` (default all)."""
        return tiles.consistency_proof(size1, self._tree_size(size2), self._read, self._folded)

    def leaf_hash(self, index: int) -> bytes:
        if not 0 <= index < self.size:
            raise IndexError(index)
        return self._read([(0, index)])[0]

    def tile(self, level: int, index: int, width: int = 1 << tiles.HEIGHT) -> bytes | None:
        """Tile (level, index) as C2SP serves it, its first `width` hashes; None if the tree
        does not have them yet."""
        if not tiles.tile_exists(self.size, level, index, width):
            return None
        if index < tiles.full_tiles(self.size, level):
            hashes = self._tile(level, index)[0]
        else:
            hashes = self._edge.partial(level)
        return hashes[: width * merkle.HASH_SIZE]

    def entry_bundle(self, index: int, width: int = 1 << tiles.HEIGHT) -> bytes | None:
        """Entries [index * 256, index * 256 + width) as a C2SP entry bundle; None if the log
        does not have them yet."""
        if not tiles.tile_exists(self.size, 0, index, width):
            return None
        first = index << tiles.HEIGHT
        rows = self._db.execute(
            "SELECT data FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx",
            (first, first + width),
        ).fetchall()
        if len(rows) != width:
            raise LogStoreError(f"log {self.path}: entries {first} to {first + width} are missing")
        try:
            return tiles.entry_bundle(bytes(data) for (data,) in rows)
        except ValueError as exc:
            raise LogStoreError(f"entry bundle {index}: {exc}") from None

    def newest_first(self, limit: int) -> Iterator[tuple[int, bytes]]:
        """The latest `limit` entries, (index, exact bytes), newest first."""
        for index, data in self._db.execute(
            "SELECT idx, data FROM entries ORDER BY idx DESC LIMIT ?", (limit,)
        ):
            yield index, bytes(data)

    def last_peer_authority(self) -> tuple[bytes, bytes] | None:
        """The policy and roster hashes the peer last showed (its latest Hello or checkpoint
        in this log), so a node restarted after the peer changed them still notices."""
        for (data,) in self._db.execute("SELECT data FROM entries ORDER BY idx DESC"):
            try:
                envelope = codec.parse_envelope(data)
                message = codec.decode_payload(envelope.payload)
            except MessageError:
                continue
            if envelope.kid == self.owner.kid:
                continue
            body = message.body
            if isinstance(body, Hello | Checkpoint):
                return body.policy_hash, body.roster_hash
        return None

    def spent_approvals(self, since: Micros) -> dict[bytes, Micros]:
        """Single-use approvals that authorized a decision recorded at or after `since`
        (digest -> end of validity), newest entries first, so a restarted gate does not
        accept one twice."""
        spent: dict[bytes, Micros] = {}
        for (data,) in self._db.execute("SELECT data FROM entries ORDER BY idx DESC"):
            try:
                message = codec.decode_payload(codec.parse_envelope(data).payload)
            except MessageError:
                continue
            if message.session_id or not isinstance(message.body, Decision):
                continue
            if message.sent_at < since:
                break
            for cose in message.body.approvals:
                try:
                    approval = codec.decode_payload(codec.parse_envelope(cose).payload).body
                except MessageError:
                    continue
                if isinstance(approval, Approval) and approval.action_id is not None:
                    spent[approval_digest(cose)] = approval.not_after
        return spent

    def close(self) -> None:
        self._db.close()


def _levels(row: tuple[bytes, bytes]) -> tuple[bytes, ...]:
    return tiles.unpack_levels(row[0], row[1])


def _tile_rows(filled: Sequence[tiles.FullTile]) -> list[tuple[int, int, bytes, bytes]]:
    return [(t.level, t.index, t.hashes, tiles.pack_inner(t.levels)) for t in filled]


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")


@dataclass
class VerifyReport:
    path: str
    side: str
    owner_kid: str
    entries: int = 0
    checkpoints: int = 0
    last_checkpoint_size: int = 0
    """The most entries any signed checkpoint of the owner covers."""
    by_type: dict[str, int] = field(default_factory=dict)
    root: str = ""
    tiles: int = 0
    """Stored tiles checked against the entries (none in a log written before tiles were
    stored and not opened by a node since)."""
    trust: str | None = None
    """The trust file the keys were pinned from; None: only the keys the file carries."""
    authenticated: bool = False
    """Whether signatures were checked against keys pinned from outside the file (`trust`)."""
    uncovered: int = 0
    """Entries no signed checkpoint of the owner covers, not counting the owner's own
    checkpoint records (each is signed and bound to its position, and commits only to
    what precedes it)."""
    first_uncovered: int | None = None
    keys: dict[str, str] = field(default_factory=dict)
    """The key table: kid (hex) -> side."""
    human_decisions: int = 0
    """Decisions the gate allowed as human acts (each carries its officers' approvals)."""
    approvals_checked: bool = False
    """Whether those approvals were re-checked against an authority roster given from outside."""
    other_policy_decisions: int = 0
    """Allowed decisions made under a policy other than the one given: re-checked without its
    officer counts and caps (signatures, distinct officers and the act only)."""


class _StoredTiles:
    """Compares the tiles a log stores with those its entries give, as the entries are read.
    Proofs are served from the tiles, so a tile that lies would make them lie."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._edge = tiles.Edge()
        self._checked = 0
        table = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tiles'"
        self._stored = 0
        if db.execute(table).fetchone() is not None:
            (self._stored,) = db.execute("SELECT COUNT(*) FROM tiles").fetchone()

    def add(self, leaf: bytes) -> None:
        for full in self._edge.append(leaf):
            if not self._stored:
                continue  # written before tiles were stored, and not opened since
            span = 1 << (tiles.HEIGHT * (full.level + 1))
            where = (
                f"tile {full.level}/{full.index} (entries {full.index * span} to "
                f"{(full.index + 1) * span - 1})"
            )
            row = self._db.execute(
                "SELECT hashes, inner FROM tiles WHERE level = ? AND idx = ?",
                (full.level, full.index),
            ).fetchone()
            if row is None:
                raise LogIntegrityError(f"{where} is missing, though other tiles are stored")
            if (row[0], row[1]) != (full.hashes, tiles.pack_inner(full.levels)):
                raise LogIntegrityError(f"stored {where} does not match the entries")
            self._checked += 1

    def finish(self) -> int:
        """How many tiles were checked; raises if some lie past the entries."""
        if self._stored > self._checked:
            raise LogIntegrityError(
                f"{self._stored - self._checked} stored tiles lie past the last entry"
            )
        return self._checked


def _entries(db: sqlite3.Connection) -> Iterator[tuple[int, bytes, bytes]]:
    yield from db.execute("SELECT idx, data, root FROM entries ORDER BY idx")


EntryVisitor = Callable[[int, bytes, codec.Verified], None]
"""Called with (index, exact bytes, verified message) for each entry as it verifies."""


def _key_table(db: sqlite3.Connection) -> list[tuple[bytes, str, bytes]]:
    rows: list[tuple[bytes, str, bytes]] = []
    for kid, side, public_key in db.execute("SELECT kid, side, public_key FROM keys"):
        if not isinstance(kid, bytes) or not isinstance(public_key, bytes):
            raise LogIntegrityError(f"key table: row for {kid!r} does not hold a kid and key")
        if not isinstance(side, str):
            raise LogIntegrityError(f"key table: kid {kid.hex()} has no side name")
        rows.append((kid, side, public_key))
    return rows


def _pinned_keys(
    table: list[tuple[bytes, str, bytes]], owner_kid: bytes, side: str, trust: TrustedKeys | None
) -> KeyRing:
    """The keys to check signatures against: the file's own, or (with `trust`) the trusted
    keys, after checking that the file's key table says nothing the trusted keys do not."""
    keys = KeyRing()
    owner_side = None
    for kid, key_side, public_key in table:
        try:
            verifier = Ed25519Verifier(public_key)
        except KeyMaterialError as exc:
            raise LogIntegrityError(f"key table: kid {kid.hex()}: {exc}") from None
        if verifier.kid != kid:
            raise LogIntegrityError(f"key table: kid {kid.hex()} does not match its key")
        keys.add(key_side, verifier)
        if kid == owner_kid:
            owner_side = key_side
    if owner_side is None:
        raise LogIntegrityError(f"key table: no key for the owner kid {owner_kid.hex()}")
    if owner_side != side:
        raise LogIntegrityError(
            f"key table: the owner kid {owner_kid.hex()} is for side {owner_side!r}, "
            f"but the log says it is side {side!r}'s"
        )
    if trust is None:
        return keys
    where = f"trust file {trust.source}"
    owner = trust.keys.get(owner_kid)
    if owner is None:
        raise LogIntegrityError(f"the owner kid {owner_kid.hex()} (side {side}) is not in {where}")
    if owner.side != side:
        raise LogIntegrityError(
            f"the owner kid {owner_kid.hex()} is side {side!r}'s in the log, "
            f"{owner.side!r}'s in {where}"
        )
    trusted = KeyRing()
    for kid, key_side, public_key in table:
        pinned = trust.keys.get(kid)
        if pinned is None:
            raise LogIntegrityError(
                f"key table: kid {kid.hex()} (side {key_side}) is not in {where}"
            )
        if pinned.public_key != public_key:
            raise LogIntegrityError(
                f"key table: kid {kid.hex()} has another public key than in {where}"
            )
        if pinned.side != key_side:
            raise LogIntegrityError(
                f"key table: kid {kid.hex()} is side {key_side!r}'s in the log, "
                f"{pinned.side!r}'s in {where}"
            )
        trusted.add(pinned.side, Ed25519Verifier(pinned.public_key))
    return trusted


def verify_log(
    path: Path,
    trust: TrustedKeys | None = None,
    on_entry: EntryVisitor | None = None,
    authority: tuple[Roster, Policy | None] | None = None,
) -> VerifyReport:
    """Recompute every leaf, root, signature and checkpoint; raise at the first bad entry.

    Signatures are checked against the keys the file carries, or, with `trust`, against
    keys pinned from outside it (the file's key table must then agree with them). With
    `authority` (the owner's roster, and the policy if at hand), every human decision's
    approvals are re-checked as the gate checked them, and each single-use approval may
    authorize one act only. The log is opened as evidence: nothing beside it is changed.
    """
    with open_evidence(path) as db:
        try:
            return _verify(db, path, trust, on_entry, authority)
        except sqlite3.Error as exc:
            raise LogStoreError(f"{path} is not a readable clearline log: {exc}") from None


def _verify(
    db: sqlite3.Connection,
    path: Path,
    trust: TrustedKeys | None,
    on_entry: EntryVisitor | None,
    authority: tuple[Roster, Policy | None] | None,
) -> VerifyReport:
    status = db.execute("PRAGMA integrity_check").fetchone()[0]
    if status != "ok":
        raise LogIntegrityError(f"SQLite integrity check failed: {status}")
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    if meta.get("format") != str(FORMAT_VERSION):
        raise LogIntegrityError(f"unknown log format {meta.get('format')!r}")
    owner_hex = meta.get("owner_kid")
    if not isinstance(owner_hex, str) or not re.fullmatch(r"[0-9a-f]{32}", owner_hex):
        raise LogIntegrityError(f"meta: owner_kid {owner_hex!r} is not a key id")
    owner_kid = bytes.fromhex(owner_hex)
    side = meta.get("side")
    if not isinstance(side, str):
        raise LogIntegrityError(f"meta: side {side!r} is not a side name")
    table = _key_table(db)
    keys = _pinned_keys(table, owner_kid, side, trust)
    report = VerifyReport(str(path), side, owner_kid.hex())
    report.keys = {kid.hex(): key_side for kid, key_side, _ in table}
    if trust is not None:
        report.trust, report.authenticated = trust.source, True
    tree = CompactTree()
    stored_tiles = _StoredTiles(db)
    roots: list[bytes] = []
    last_seq: dict[tuple[bytes, bytes], int] = {}
    tail: deque[int] = deque()  # past the covered size, bar checkpoint records
    report.approvals_checked = authority is not None
    spent: dict[bytes, int] = {}  # single-use approval -> the decision it authorized
    for idx, data, stored_root in _entries(db):
        if idx != tree.size:
            missing = "missing" if idx > tree.size else "duplicated"
            raise LogIntegrityError(f"entry {tree.size} is {missing} (found {idx})", tree.size)
        if not isinstance(data, bytes):
            raise LogIntegrityError(f"stored as {type(data).__name__}, not bytes", idx)
        leaf = merkle.leaf_hash(data)
        tree.append(leaf)
        roots.append(tree.root())
        if stored_root != roots[-1]:
            raise LogIntegrityError(
                "content does not match the recorded tree: altered, removed or reordered", idx
            )
        try:
            verified = codec.verify(data, keys)
        except (MessageError, SignatureError) as exc:
            raise LogIntegrityError(f"not an authentic message: {exc}", idx) from None
        message = verified.message
        stream = (verified.kid, message.session_id)
        local = message.session_id == b"" and not isinstance(message.body, Hello)
        if isinstance(message.body, Hello):
            pass  # sequence 0 of each new session
        elif local:
            if verified.kid != owner_kid or message.seq != idx:
                raise LogIntegrityError(
                    f"local record claims position {message.seq} or another owner", idx
                )
        elif message.seq <= last_seq.get(stream, -1):
            raise LogIntegrityError(
                f"sequence {message.seq} after {last_seq[stream]} in the same session", idx
            )
        last_seq[stream] = message.seq
        body = message.body
        sealing = False  # the owner's checkpoint record: signed, bound to its position
        if isinstance(body, Checkpoint) and verified.kid == owner_kid:
            if body.size > idx:
                raise LogIntegrityError(f"checkpoint claims size {body.size} at entry {idx}", idx)
            expected = roots[body.size - 1] if body.size else merkle.EMPTY_ROOT
            if body.root != expected:
                raise LogIntegrityError(
                    f"signed checkpoint at size {body.size} does not match the log", idx
                )
            report.checkpoints += 1
            report.last_checkpoint_size = max(report.last_checkpoint_size, body.size)
            while tail and tail[0] < report.last_checkpoint_size:
                tail.popleft()
            sealing = local
        if isinstance(body, Decision) and local and body.verdict is Verdict.ALLOW:
            if body.actor is Actor.HUMAN:
                report.human_decisions += 1
            if authority is not None:
                policy = authority[1]
                if policy is not None and policy.hash != body.policy_hash:
                    report.other_policy_decisions += 1
                if body.actor is Actor.HUMAN:
                    _recheck_human(idx, body, message.sent_at, authority, spent)
                elif policy is not None and policy.hash == body.policy_hash:
                    _recheck_autonomous(idx, body, policy)
        if not sealing:
            tail.append(idx)
        kind = message.type.value
        report.by_type[kind] = report.by_type.get(kind, 0) + 1
        stored_tiles.add(leaf)
        if on_entry is not None:
            on_entry(idx, data, verified)
    report.tiles = stored_tiles.finish()
    report.entries = tree.size
    report.root = tree.root().hex()
    report.uncovered = len(tail)
    report.first_uncovered = tail[0] if tail else None
    return report


def _recheck_autonomous(idx: int, decision: Decision, policy: Policy) -> None:
    """What no context can excuse: autonomy in an excluded domain or above its cap."""
    if decision.rung not in policy.rungs:
        raise LogIntegrityError(f"autonomous decision {decision.action_id}: unknown rung", idx)
    domain = policy.domain_of(decision.rung, decision.domain)
    if domain in policy.exclusions or decision.domain in policy.exclusions:
        raise LogIntegrityError(
            f"autonomous {decision.rung} allowed in excluded domain {domain} "
            f"({decision.action_id})",
            idx,
        )
    rung = policy.rungs[decision.rung]
    if rung.score > 0 and policy.rung_index[decision.rung] > policy.rung_index[policy.autonomy_cap]:
        raise LogIntegrityError(
            f"autonomous {decision.rung} allowed above the autonomy cap {policy.autonomy_cap} "
            f"({decision.action_id})",
            idx,
        )


def _recheck_human(
    idx: int,
    decision: Decision,
    at: Micros,
    authority: tuple[Roster, Policy | None],
    spent: dict[bytes, int],
) -> None:
    roster, policy = authority
    problems = recheck_decision(roster, decision, at, policy)
    if problems:
        raise LogIntegrityError(
            f"human decision {decision.action_id} ({decision.rung}): " + "; ".join(problems), idx
        )
    for cose in decision.approvals:
        checked = open_approval(roster, cose)
        if checked.body.action_id is None:
            continue
        if checked.digest in spent:
            raise LogIntegrityError(
                f"human decision {decision.action_id}: approval by {checked.officer} already "
                f"authorized the decision at entry {spent[checked.digest]}",
                idx,
            )
        spent[checked.digest] = idx


def export_log(path: Path, out: Path) -> int:
    """Write each entry's exact COSE_Sign1 bytes to DIR/NNNNNN-TYPE-SIDE.cose and keys.json."""
    with open_evidence(path) as db:
        try:
            keys = {
                kid.hex(): {
                    "side": side,
                    "alg": "EdDSA",
                    "crv": "Ed25519",
                    "public_key": public_key.hex(),
                }
                for kid, side, public_key in _key_table(db)
            }
            rows = _entries(db)
            try:
                out.mkdir(parents=True, exist_ok=True)
                (out / "keys.json").write_text(json.dumps(keys, indent=2, sort_keys=True) + "\n")
                count = 0
                for idx, data, _ in rows:
                    if not isinstance(data, bytes):
                        raise LogIntegrityError(f"stored as {type(data).__name__}, not bytes", idx)
                    try:
                        message = codec.decode_payload(codec.parse_envelope(data).payload)
                        label = f"{message.type.value}-{message.side}"
                    except MessageError:
                        label = "unreadable"
                    (out / f"{idx:06d}-{label}.cose").write_bytes(data)
                    count += 1
            except OSError as exc:
                raise LogStoreError(f"cannot write to {out}: {exc.strerror or exc}") from None
            return count
        except sqlite3.Error as exc:
            raise LogStoreError(f"{path} is not a readable clearline log: {exc}") from None
