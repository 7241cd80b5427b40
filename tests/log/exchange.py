"""Both sides' logs of a real exchange, and the tools to tamper with them as an insider would.

`exchange` drives two Sessions back to back and logs each side's events the way a node
does (every message sent or received, in order, local checkpoints in between); `rewrite`
replaces a log's entries and re-seals the owner's records so that the file verifies on
its own again: what someone holding the owner's signing key can do to their own log.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from clearline.log import merkle
from clearline.log.store import LogStore
from clearline.log.tree import CompactTree
from clearline.protocol import codec
from clearline.protocol.events import MessageReceived, MessageSent
from clearline.protocol.messages import (
    Answer,
    AssetKind,
    Checkpoint,
    Claim,
    Heartbeat,
    Message,
    Position,
    Query,
    TrackReport,
)
from clearline.protocol.session import Session
from clearline.protocol.signing import Ed25519Signer, Signer
from tests.protocol.harness import T0, config

POLICY = bytes(32)
FORGER_US = Ed25519Signer.from_label("forger US")
FORGER_PRC = Ed25519Signer.from_label("forger PRC")


def track(n: int) -> TrackReport:
    return TrackReport(f"T-{n}", Position(21_500_000, 119_000_000, 300), T0, AssetKind.UNKNOWN)


@dataclass
class Side:
    name: str
    key: Ed25519Signer
    store: LogStore
    session: Session | None = None
    logged: int = 0  # events of the current session already appended


@dataclass
class Exchange:
    """Two logs of the same sessions: US asks, PRC answers `not_ours`."""

    folder: Path
    us: Side
    prc: Side
    now: int = T0
    sessions: list[bytes] = field(default_factory=list)
    _events: dict[str, list[MessageSent | MessageReceived]] = field(default_factory=dict)

    def sides(self) -> tuple[Side, Side]:
        return self.us, self.prc

    def tick(self) -> int:
        self.now += 1_000
        return self.now

    def connect(self, nonce: int) -> None:
        """A new session (fresh nonces, sequence numbers from 0)."""
        us_s = Session(config("US", "PRC"), self.us.key, self.prc.key.verifier())
        prc_s = Session(config("PRC", "US"), self.prc.key, self.us.key.verifier())
        self.us.session, self.prc.session = us_s, prc_s
        self._events = {"US": [], "PRC": []}
        self.us.logged = self.prc.logged = 0
        us_s.start(self.tick(), bytes([nonce]) * 16)
        prc_s.start(self.tick(), bytes([nonce + 1]) * 16)
        self.deliver()
        assert us_s.session_id is not None and us_s.session_id == prc_s.session_id
        self.sessions.append(us_s.session_id)

    def deliver(self) -> None:
        """Carry everything queued both ways, then log what each side sent and received."""
        us_s, prc_s = self.us.session, self.prc.session
        assert us_s is not None and prc_s is not None
        while True:
            a, b = us_s.data_to_send(), prc_s.data_to_send()
            if not a and not b:
                break
            if a:
                prc_s.receive_data(a, self.tick())
            if b:
                us_s.receive_data(b, self.tick())
        self.log()

    def log(self) -> None:
        for side in self.sides():
            assert side.session is not None
            while (event := side.session.next_event()) is not None:
                if isinstance(event, MessageSent | MessageReceived):
                    self._events[side.name].append(event)
            pending = self._events[side.name][side.logged :]
            if pending:
                side.store.append([e.cose for e in pending])
                side.logged += len(pending)

    def ask(self, n: int) -> None:
        """US queries n tracks; PRC answers each `not_ours`; delivered and logged."""
        us_s, prc_s = self.us.session, self.prc.session
        assert us_s is not None and prc_s is not None
        for i in range(n):
            seq = us_s.send(Query(track(i), self.now + 2_000_000), self.tick()).message.seq
            self.deliver()
            prc_s.send(Answer(seq, Claim.NOT_OURS), self.tick())
            prc_s.send(Heartbeat(), self.tick())
            self.deliver()

    def undelivered(self, n: int) -> None:
        """US sends n heartbeats that never reach PRC (the link breaks): logged by US only."""
        us_s = self.us.session
        assert us_s is not None
        for _ in range(n):
            us_s.send(Heartbeat(), self.tick())
        us_s.data_to_send()  # lost on the way
        self.log()

    def checkpoint(self) -> None:
        for side in self.sides():
            side.store.checkpoint(self.tick(), POLICY)

    def close(self) -> None:
        for side in self.sides():
            side.store.close()

    def trust(self, path: Path, *signers: Signer, sides: tuple[str, ...] = ()) -> Path:
        """A keys.json naming the given keys (default: both real keys)."""
        keys = {self.us.key: "US", self.prc.key: "PRC"}
        chosen = dict(zip(signers, sides, strict=True)) if signers else keys
        path.write_text(json.dumps(trust_entries(chosen), indent=2))
        return path


def trust_entries(keys: dict[Signer, str]) -> dict[str, dict[str, str]]:
    return {
        k.kid.hex(): {
            "side": side,
            "alg": "EdDSA",
            "crv": "Ed25519",
            "public_key": k.public_key.hex(),
        }
        for k, side in keys.items()
    }


def exchange(folder: Path, queries: int = 6, sessions: int = 1, tail: int = 3) -> Exchange:
    """Sessions of `queries` clarifications each, a checkpoint on both sides after the first
    half of every session, `tail` undelivered US heartbeats at the end, then both logs sealed."""
    us_key, prc_key = Ed25519Signer.from_label("US"), Ed25519Signer.from_label("PRC")
    us = LogStore(folder / "us.db", us_key, "US")
    us.add_key("PRC", prc_key.public_key)
    prc = LogStore(folder / "prc.db", prc_key, "PRC")
    prc.add_key("US", us_key.public_key)
    ex = Exchange(folder, Side("US", us_key, us), Side("PRC", prc_key, prc))
    for s in range(sessions):
        ex.connect(2 * s + 1)
        ex.ask(queries // 2)
        ex.checkpoint()
        ex.ask(queries - queries // 2)
    ex.undelivered(tail)
    ex.checkpoint()
    return ex


# -- tampering -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    index: int
    cose: bytes
    kid: bytes
    message: Message


def entries(path: Path) -> list[Entry]:
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT idx, data FROM entries ORDER BY idx").fetchall()
    finally:
        db.close()
    out = []
    for idx, data in rows:
        envelope = codec.parse_envelope(data)
        out.append(Entry(idx, data, envelope.kid, codec.decode_payload(envelope.payload)))
    return out


def owner_kid(path: Path) -> bytes:
    db = sqlite3.connect(path)
    try:
        return bytes.fromhex(
            db.execute("SELECT value FROM meta WHERE key='owner_kid'").fetchone()[0]
        )
    finally:
        db.close()


def rewrite(
    path: Path,
    owner: Signer,
    *,
    keep: Callable[[Entry], bool] = lambda e: True,
    edit: Callable[[Entry], Message | None] = lambda e: None,
    resign: dict[bytes | int, Signer] | None = None,
    sides: dict[str, Signer] | None = None,
) -> None:
    """Rewrite a log as its owner could: drop entries (`keep`), change messages (`edit`
    returns the new message, re-signed by whoever signed the old one, via `resign`), and
    re-seal the owner's local records at their new positions with recomputed checkpoints.

    `resign` maps an old kid, or one entry's index, to the key that signs in its place
    (needed for edited entries and for every entry whose key is replaced); `sides`
    replaces the key table and the owner kid as well (a forger making the file
    self-consistent with new keys).
    """
    signers: dict[bytes | int, Signer] = dict(resign or {})
    old_owner = owner_kid(path)
    signers.setdefault(old_owner, owner)
    kept = [e for e in entries(path) if keep(e)]
    tree = CompactTree()
    rows: list[tuple[int, bytes, bytes]] = []
    for j, entry in enumerate(kept):
        message = edit(entry)
        local = entry.kid == old_owner and entry.message.session_id == b""
        if local:
            message = message or entry.message
            body = message.body
            if isinstance(body, Checkpoint):
                body = dataclasses.replace(body, size=j, root=tree.root())
            message = dataclasses.replace(message, seq=j, body=body)
        signer = signers.get(entry.index) or signers.get(entry.kid)
        if message is not None or entry.index in signers or entry.kid in signers:
            assert signer is not None, f"entry {entry.index}: no key to re-sign with"
            data = codec.sign(message or entry.message, signer)
        else:
            data = entry.cose
        tree.append(merkle.leaf_hash(data))
        rows.append((j, data, tree.root()))
    db = sqlite3.connect(path)
    try:
        db.execute("DELETE FROM entries")
        db.executemany("INSERT INTO entries VALUES (?, ?, ?)", rows)
        if sides is not None:
            db.execute("DELETE FROM keys")
            db.executemany(
                "INSERT INTO keys VALUES (?, ?, ?)",
                [(k.kid, side, k.public_key) for side, k in sides.items()],
            )
            db.execute("UPDATE meta SET value=? WHERE key='owner_kid'", (owner.kid.hex(),))
        db.commit()
    finally:
        db.close()


def find(path: Path, side: str, session: bytes, seq: int) -> Entry:
    """The one entry holding `side`'s message `seq` of `session`."""
    (entry,) = [
        e
        for e in entries(path)
        if e.message.side == side and e.message.session_id == session and e.message.seq == seq
    ]
    return entry


def decline(entry: Entry) -> Message | None:
    """An edit: every answer becomes `decline`."""
    body = entry.message.body
    if isinstance(body, Answer):
        return dataclasses.replace(
            entry.message, body=dataclasses.replace(body, claim=Claim.DECLINE)
        )
    return None


def claims(path: Path) -> list[Claim]:
    return [e.message.body.claim for e in entries(path) if isinstance(e.message.body, Answer)]


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file in a folder: name -> (SHA-256 of its bytes, mtime in ns)."""
    out = {}
    for p in sorted(folder.iterdir()):
        if p.is_file():
            out[p.name] = (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
    return out
