"""The hotline node: one side's endpoint over mutual TLS 1.3, driven by asyncio.

One node serves one side. It listens for its peer, dials it, or both
(`transport.py`); whichever connection is established first carries the session,
and a second is refused. The pure endpoint (`clearline.hotline`) does the
hotline's work; the link (`link.py`) moves its bytes and keeps its timer; this
module logs every signed message through the group-committing log writer, puts
proposed actions through the gate, publishes telemetry and checkpoints, and
tells the local API what happened.

What each side can rely on, and when (docs/node.md has the long form):

- An Answer is acted on as soon as it is verified; it is logged at the same
  time, without waiting for the disk, because the latency path must not carry
  an fsync. It is *reported as logged* (API `logged_index`) only after commit.
- A gate decision is returned by the API only after its signed record is
  committed.
- A Checkpoint sent to the peer names only entries already committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import itertools
import logging
import os
import socket
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from clearline import feed
from clearline.config import default_policy, load_policy, load_roster
from clearline.doctrine.registry import Disclosure, OwnAsset
from clearline.errors import ClearlineError, KeyMaterialError, LogStoreError
from clearline.gate import Gate, GateDecision, ProposedAction, Rule
from clearline.hotline import (
    AssetRegistry,
    Cleared,
    Endpoint,
    EndpointConfig,
    EndpointEvent,
    QuerySent,
    Unresolved,
)
from clearline.log.note import (
    ED25519,
    Note,
    NoteKey,
    NoteSignature,
    TreeHead,
    log_origin,
    signed_checkpoint,
    verify_note,
)
from clearline.node.config import NodeConfig, setting_error
from clearline.node.history import (
    CHECKPOINTS_KEPT,
    SCAN_ENTRIES,
    History,
    answer_view,
    checkpoint_view,
    peer_consistency,
    read_back,
)
from clearline.node.keys import Identity, load_identity
from clearline.node.link import Link, wall_us
from clearline.node.logwriter import LogWriter
from clearline.node.metrics import NodeMetrics
from clearline.node.tokens import TokenSet, load_tokens
from clearline.node.transport import Transport
from clearline.node.witnessing import Outcome as WitnessOutcome
from clearline.node.witnessing import ProofFrom, Witnesses, cosignature_lines
from clearline.protocol.constants import MAX_ASSETS_PER_BULK
from clearline.protocol.events import (
    Closed,
    CloseReason,
    Event,
    HandshakeComplete,
    LinkState,
    LinkStateChanged,
    MessageReceived,
    MessageSent,
    Rejected,
    RoundTrip,
)
from clearline.protocol.messages import (
    Actor,
    Answer,
    Bulk,
    Checkpoint,
    Decision,
    Micros,
    Telemetry,
    TrackReport,
    Verdict,
)
from clearline.protocol.session import SessionConfig
from clearline.protocol.telemetry import BulkBuffer

if TYPE_CHECKING:
    from numpy.typing import NDArray

log = logging.getLogger("clearline.node")
events_log = logging.getLogger("clearline.node.events")
OPERATOR_EVENTS = frozenset(
    {
        "link",
        "connected",
        "disconnected",
        "handshake",
        "dial-failed",
        "closed",
        "peer-authority-changed",
        "split-view",
        "bad-cosignature",
        "tls-reloaded",
        "tls-reload-failed",
    }
)
"""Events the node also writes as one log line each (refusals are logged where they happen)."""
OPERATOR_WARNINGS = frozenset({"tls-reload-failed"})
"""Of those, the ones that need someone to act: written at warning level."""

TELEMETRY_BATCH_MAX = MAX_ASSETS_PER_BULK
"""Records waiting that are sent at once; each Bulk message carries as many as surely fit
one frame (`protocol.telemetry.BulkBuffer.take`: about 690 to 2,048, by the ids' length)."""
TELEMETRY_BATCH_DELAY_S = 0.005
"""A record waits at most this long for others to share its signature."""
PENDING_APPROVALS = 256
REFUSALS_SAID_PER_S = 10
"""Refused connections logged and emitted one by one in a second; past it, only counted."""
"""Referred acts kept for officers to see; the oldest is forgotten first."""
REFERRED_TO_HUMAN = frozenset({Rule.AUTONOMY_CAP, Rule.EXCLUDED_DOMAIN, Rule.AUTHORIZATIONS})
DEAD_AFTER_DOWN = 3
"""A link that stays down this many times its down-after delay is closed (and redialled)."""
CHECKPOINT_HISTORY = 64
"""Checkpoints kept in memory per side for the API (all of them stay in the log)."""
SPLIT_VIEWS_KEPT = 20
"""Split views kept for the API and the console (each is also an event and a log line)."""


OutcomeKind = Literal["answered", "expired", "not_sent"]


@dataclass
class Outcome:
    """How a clarification ended, for the API."""

    query_seq: int | None
    outcome: OutcomeKind
    answer: Answer | None = None
    elapsed_us: Micros | None = None
    reason: str = ""
    logged_index: int | None = None


def _report(
    ended: asyncio.Queue[tuple[int, Outcome]], index: int, future: asyncio.Future[Outcome]
) -> None:
    ended.put_nowait((index, future.result()))


@dataclass
class _WitnessJob:
    """A checkpoint (ours, or the peer's as a monitor) on its way to the witnesses."""

    side: str
    note: Note
    view: dict[str, Any]
    proof_from: ProofFrom
    send: Checkpoint | None = None
    """Our Checkpoint, still to be sent to the peer once the witnesses have answered."""
    cosigned: dict[str, NoteSignature] = field(default_factory=dict)
    only: set[str] | None = None
    due: float = 0.0


def _ats(body: Telemetry | Bulk) -> Sequence[int] | NDArray[Any]:
    """Each record's own time."""
    return body.ats() if isinstance(body, Bulk) else [record.at for record in body.assets]


class Node:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.side = config.side
        self.peer_side = config.peer.side
        self.identity: Identity = load_identity(
            config.path(config.keys_dir),
            config.side,
            config.peer.side,
            config.path(config.peer.certificate),
            config.path(config.peer.signing_key),
        )
        self.tokens: TokenSet = load_tokens(config.tokens_path())
        self.policy = load_policy(config.path(config.policy)) if config.policy else default_policy()
        self.roster = load_roster(
            config.path(config.roster) if config.roster else None, config.side
        )
        self.gate = Gate(self.policy, roster=self.roster)
        self.peer_authority: dict[str, str | None] = {"policy": None, "roster": None}
        """The peer's policy and roster hashes as last seen (Hello or checkpoint)."""
        self.pending_approval: OrderedDict[str, dict[str, Any]] = OrderedDict()
        """Acts the gate referred to a human, awaiting officers' approvals (bounded)."""
        data_dir = config.path(config.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = data_dir / f"{config.side.lower()}.db"
        self.metrics = NodeMetrics(config.side)
        self.log = LogWriter(
            self.log_path,
            self.identity.signer,
            config.side,
            config.limits.max_pending_log,
            self.metrics.committed,
        )
        self.registry = AssetRegistry(max_assets=config.limits.max_assets, build=feed.asset_of)
        self.metrics.registry_assets.set_function(lambda: len(self.registry.assets))
        self.metrics.registry_evicted.set_function(lambda: self.registry.evicted)
        self._refusals_since, self._refusals_said, self._refusals_unsaid = 0.0, 0, 0
        self.checkpoints: dict[str, deque[dict[str, Any]]] = {
            config.side: deque(maxlen=CHECKPOINTS_KEPT),
            config.peer.side: deque(maxlen=CHECKPOINTS_KEPT),
        }
        self._sent_checkpoint: int | None = None
        """The size of the last checkpoint sent to the peer, where the next one's proof starts."""
        self.witnesses = Witnesses(config.witness)
        self._witness_jobs: asyncio.Queue[_WitnessJob] = asyncio.Queue()
        self.split_views: deque[dict[str, Any]] = deque(maxlen=SPLIT_VIEWS_KEPT)
        self._telemetry = BulkBuffer()
        self._telemetry_timer: asyncio.TimerHandle | None = None
        self.link: Link | None = None
        self.events: deque[dict[str, Any]] = deque(maxlen=config.limits.event_history)
        self.history = History()
        """Recent events kept per kind, read back from the log at start (GET /v1/history)."""
        # Counted from the clock at start, so that ids also increase across restarts: a console
        # that follows the stream through one takes the new process's events as new.
        self._event_ids = itertools.count(wall_us())
        self.subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        disclosure = config.disclosure
        self.endpoint = Endpoint(
            EndpointConfig(
                SessionConfig(
                    self.side,
                    self.peer_side,
                    self.policy.hash,
                    roster_hash=self.roster.hash,
                    heartbeat_interval_us=config.heartbeat_ms * 1000,
                    degraded_after_us=config.heartbeat_ms * 2500,
                    down_after_us=config.heartbeat_ms * 5000,
                ),
                query_ttl_us=config.query_ttl_ms * 1000,
                disclosure=Disclosure(**disclosure.model_dump()),
                hello_retry_us=None,  # TLS over TCP: a Hello is lost only with its connection
                max_asks=config.limits.max_open_clarifications,
            ),
            self.identity.signer,
            self.identity.peer_verifier,
            self.registry,
            self.gate,
        )
        self._waiters: dict[int, asyncio.Future[Outcome]] = {}
        """API calls waiting on an ask, by ask id."""
        self._answer_logged: dict[int, asyncio.Future[int]] = {}
        """The commit of a cleared ask's answer, for a caller who waits on it (durable)."""
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.started_at = wall_us()
        self.api_port: int | None = None
        self.listen_port: int | None = None
        self._listener: socket.socket | None = None
        self.transport = Transport(self, self.identity)

    def reload_tls(self) -> None:
        """SIGHUP: read the TLS certificate, key and pinned peer certificate again, for
        connections made from now on (the link that is up keeps its connection). One event
        either way; a file that is not usable keeps the contexts in use, and says which."""
        before = self.transport.tls
        try:
            after = self.transport.reload()
        except KeyMaterialError as exc:
            self.metrics.tls_reloads.labels(outcome="failed").inc()
            self.emit(
                {
                    "kind": "tls-reload-failed",
                    "reason": str(exc),
                    "kept": f"certificate {before.own_fingerprint[:16]}, "
                    f"peer certificate {before.peer_fingerprint[:16]}",
                }
            )
            return
        self.metrics.tls_reloads.labels(outcome="reloaded").inc()
        changed = [
            what
            for what, old, new in (
                ("certificate", before.own_fingerprint, after.own_fingerprint),
                ("peer-certificate", before.peer_fingerprint, after.peer_fingerprint),
            )
            if old != new
        ]
        self.emit(
            {
                "kind": "tls-reloaded",
                "certificate": after.own_fingerprint[:16],
                "peer_certificate": after.peer_fingerprint[:16],
                "changed": ",".join(changed) or "nothing",
            }
        )

    def refuse(self, peer: str, reason: str) -> None:
        """Count a refused connection and say so: one by one up to REFUSALS_SAID_PER_S a
        second, then as a count, so that a stranger's flood of connections neither fills the
        event history nor the node's own log."""
        self.metrics.refusals.labels(reason=reason.split(":")[0][:40]).inc()
        now = time.monotonic()
        if now - self._refusals_since >= 1.0:
            if self._refusals_unsaid:
                log.warning("refused %d more connections in the last second", self._refusals_unsaid)
                self.emit(
                    {
                        "kind": "refused",
                        "peer": "(many)",
                        "reason": f"{self._refusals_unsaid} more refusals in a second, "
                        "counted in clearline_refusals_total",
                    }
                )
            self._refusals_since, self._refusals_said, self._refusals_unsaid = now, 0, 0
        if self._refusals_said >= REFUSALS_SAID_PER_S:
            self._refusals_unsaid += 1
            return
        self._refusals_said += 1
        log.warning("refused %s: %s", peer, reason)
        self.emit({"kind": "refused", "peer": peer, "reason": reason})

    async def serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> bool:
        """Run the link over one authenticated connection (one session at a time); True if
        a session came up on it. A newer authenticated connection replaces a link that is
        not up (half-open, silent, or never handshaken); one that is up is kept."""
        current = self.link
        if current is not None:
            if current.session.link_state is LinkState.UP:
                self.refuse(peer, "a session with the peer is already up")
                writer.close()
                return False
            self.refuse(current.peer, f"replaced by a newer authenticated connection ({peer})")
            self.endpoint.close(wall_us(), "replaced by a newer connection")
            current.pump()
            current.writer.transport.abort()
            await current.closed.wait()
            if self.link is current:
                self.link = None
        link = Link(self, reader, writer, peer)
        self.link = link
        self.emit({"kind": "connected", "peer": peer})
        session = self.endpoint.connect(wall_us(), os.urandom(16))
        link.start(session)
        try:
            await link.run()
            return session.established_at is not None
        finally:
            if self.link is link:  # not replaced meanwhile: the link state is ours to set
                self.link = None
                self.gate.set_link(LinkState.DOWN)
                self.metrics.link_state.set(0)
            self.emit({"kind": "disconnected", "peer": peer})

    # -- events ---------------------------------------------------------------

    def emit(self, event: dict[str, Any]) -> None:
        event.setdefault("at", wall_us())
        event.setdefault("side", self.side)
        # Ids order events across the history and the stream, so that a reader who loads the
        # history and then follows the stream neither misses nor repeats one.
        event["id"] = next(self._event_ids)
        self.events.append(event)
        self.history.add(event)
        if event["kind"] in OPERATOR_EVENTS:
            # One line for the node's operator per change that matters, as text or JSON.
            details = {k: v for k, v in event.items() if k not in ("at", "side", "kind")}
            events_log.log(
                logging.WARNING if event["kind"] in OPERATOR_WARNINGS else logging.INFO,
                "%s %s",
                event["kind"],
                " ".join(f"{k}={v}" for k, v in details.items()),
                extra={"event": event},
            )
        for queue in list(self.subscribers):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                self.subscribers.discard(queue)  # a slow reader is dropped, not buffered forever

    def log_entries(self, link: Link) -> dict[bytes, asyncio.Future[int]]:
        """Send what the endpoint signed or verified to the log writer; the futures of their
        commits, by their exact bytes, for the events that follow."""
        futures: dict[bytes, asyncio.Future[int]] = {}
        for entry in self.endpoint.log_entries():
            direction = "sent" if entry.sent else "received"
            kind = type(entry.message.body).__name__.lower()
            self.metrics.messages.labels(direction=direction, kind=kind).inc()
            try:
                futures[entry.cose] = self.log.append(entry.cose)
            except LogStoreError as exc:
                # Nothing may pass unlogged: with the disk this far behind, the link stops.
                self.refuse(link.peer, f"log back-pressure: {exc}")
                self.endpoint.close(wall_us(), "log back-pressure")
                break
        return futures

    def handle(
        self,
        link: Link,
        event: Event | EndpointEvent,
        logged: dict[bytes, asyncio.Future[int]],
    ) -> None:
        if isinstance(event, MessageSent | MessageReceived):
            self._message(event)
            if isinstance(event, MessageReceived):
                self._received(event, logged.get(event.cose))
        elif isinstance(event, QuerySent):
            self.emit(
                {
                    "kind": "query",
                    "query_seq": event.query_seq,
                    "track": event.track_id,
                    "deadline_us": event.deadline,
                    "retry": event.retry,
                    "session": _session(link),
                }
            )
        elif isinstance(event, Cleared):
            outcome = Outcome(event.query_seq, "answered", event.answer, event.elapsed_us)
            future = logged.get(event.cose)
            if future is not None and event.ask in self._waiters:
                self._answer_logged[event.ask] = future
            self._finish(event.ask, event.track_id, outcome, _session(link))
            self.metrics.clarification.labels(outcome="answered").observe(event.elapsed_us / 1e6)
        elif isinstance(event, Unresolved):
            outcome = Outcome(
                event.query_seq,
                "not_sent" if event.query_seq is None else "expired",
                reason="deadline" if event.reason == "expired" else event.reason,
            )
            self._finish(event.ask, event.track_id, outcome, _session(link))
            if event.query_seq is not None:
                self.metrics.clarification.labels(outcome="expired").observe(0)
        elif isinstance(event, LinkStateChanged):
            self.metrics.link_state.set({"down": 0, "degraded": 1, "up": 2}[event.current.value])
            self.emit({"kind": "link", "state": event.current.value})
            if event.current is LinkState.DOWN and link.session.established_at is not None:
                delay = DEAD_AFTER_DOWN * self.config.heartbeat_ms * 5 / 1000
                asyncio.get_running_loop().call_later(delay, self._drop_if_silent, link)
        elif isinstance(event, RoundTrip):
            self.metrics.rtt.observe(event.rtt_us / 1e6)
            self.emit({"kind": "rtt", "rtt_us": event.rtt_us})
        elif isinstance(event, Rejected):
            self.metrics.rejections.labels(reason=event.reason.value).inc()
            self.emit({"kind": "rejected", "reason": event.reason.value, "detail": event.detail})
            if link.session.session_id is None and not link.session.closed:
                # Before the handshake completes, a bad Hello means the wrong peer, not noise.
                self.refuse(link.peer, f"hello refused ({event.reason.value}): {event.detail}")
                link.session.close(wall_us(), CloseReason.LOCAL, "peer failed the handshake")
        elif isinstance(event, HandshakeComplete):
            self.emit(
                {
                    "kind": "handshake",
                    "session": event.session_id.hex(),
                    "peer_policy": event.peer_policy_hash.hex(),
                    "peer_roster": event.peer_roster_hash.hex(),
                }
            )
            self._peer_authority(event.peer_policy_hash, event.peer_roster_hash, "hello")
        elif isinstance(event, Closed):
            self.emit({"kind": "closed", "reason": event.reason.value, "detail": event.detail})

    def _drop_if_silent(self, link: Link) -> None:
        """A link down this long is closed, so that a half-open connection (or one that a
        replayed Hello opened) does not hold the only session slot against the real peer."""
        if self.link is not link or link.session.closed:
            return
        if link.session.link_state is not LinkState.DOWN:
            return
        self.refuse(link.peer, "the peer fell silent: link down too long, connection closed")
        self.endpoint.close(wall_us(), "the peer fell silent")
        link.pump()
        # No TLS goodbye: a silent peer would not answer one, and the slot must free now.
        link.writer.transport.abort()

    def _message(self, event: MessageSent | MessageReceived) -> None:
        message = event.message
        self.emit(
            {
                "kind": "message",
                "direction": "sent" if isinstance(event, MessageSent) else "received",
                "type": type(message.body).__name__.lower(),
                "seq": message.seq,
                "sent_at": message.sent_at,
                "bytes": len(event.cose),
                "verified": True,
            }
        )

    def _received(self, event: MessageReceived, logged: asyncio.Future[int] | None) -> None:
        body = event.message.body
        if isinstance(body, Checkpoint):
            self._peer_authority(body.policy_hash, body.roster_hash, "checkpoint")
            status = self._check_peer_checkpoint(body)
            view = checkpoint_view(body, event.message.sent_at, None, status)
            self.checkpoints[self.peer_side].append(view)
            self.emit(
                {
                    "kind": "checkpoint",
                    "from": self.peer_side,
                    "size": body.size,
                    "root": body.root.hex(),
                    "consistency": status,
                }
            )
            if self.witnesses.configured:
                self._witness_peer_checkpoint(body, view)
        elif isinstance(body, Telemetry | Bulk):
            count = len(body.assets) if isinstance(body, Telemetry) else len(body)
            self.metrics.telemetry_records.labels(direction="received").inc(count)
            self.metrics.telemetry_verified_age.add(_ats(body), wall_us())
            if logged is not None:
                logged.add_done_callback(functools.partial(self._telemetry_logged, body))

    def _telemetry_logged(self, body: Telemetry | Bulk, committed: asyncio.Future[int]) -> None:
        """The records' ages as their message is committed: how far behind the feed we log."""
        if committed.cancelled() or committed.exception() is not None:
            return
        self.metrics.telemetry_age.add(_ats(body), wall_us())

    def _peer_authority(self, policy_hash: bytes, roster_hash: bytes, where: str) -> None:
        """Note the peer's policy and roster; a change from what it showed before is news."""
        for what, value in (("policy", policy_hash.hex()), ("roster", roster_hash.hex())):
            before = self.peer_authority[what]
            self.peer_authority[what] = value
            if before is not None and before != value:
                log.warning("the peer's %s changed: %s -> %s (%s)", what, before, value, where)
                self.metrics.peer_authority_changes.labels(what=what).inc()
                self.emit(
                    {
                        "kind": "peer-authority-changed",
                        "what": what,
                        "before": before,
                        "after": value,
                        "seen_in": where,
                    }
                )

    def _check_peer_checkpoint(self, body: Checkpoint) -> str:
        """How the peer's checkpoint stands against the ones we hold (`peer_consistency`)."""
        held = {c["size"]: c["root"] for c in self.checkpoints[self.peer_side]}
        status = peer_consistency(held, body)
        if status == "INCONSISTENT":
            log.error("the peer's checkpoint at %d is inconsistent with one we hold", body.size)
            self.metrics.inconsistent_checkpoints.inc()
        return status

    def _finish(self, ask: int, track: str, outcome: Outcome, session: str | None) -> None:
        future = self._waiters.pop(ask, None)
        if future is not None and not future.done():
            future.set_result(outcome)
        self.emit(
            {
                "kind": "clarification",
                "query_seq": outcome.query_seq,
                "outcome": outcome.outcome,
                "elapsed_us": outcome.elapsed_us,
                "track": track,
                "reason": outcome.reason,
                "session": session,
                "answer": None if outcome.answer is None else answer_view(outcome.answer),
            }
        )

    # -- what the local API calls ---------------------------------------------------

    async def clarify(
        self, track: TrackReport, ttl_ms: int | None = None, durable: bool = False
    ) -> Outcome:
        """Ask the peer about `track`. Returns when the answer is verified (it is logged at
        the same time, off the latency path); with `durable`, only once it is committed."""
        link = self.link
        if link is None or not self.endpoint.up:
            return Outcome(None, "not_sent", reason="the hotline is not up")
        if self.endpoint.open_asks >= self.config.limits.max_open_clarifications:
            return Outcome(None, "not_sent", reason="too many open clarifications")
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        ttl_us = (ttl_ms or self.config.query_ttl_ms) * 1000
        ask = self.endpoint.ask(track, wall_us(), ttl_us)
        if ask is None:
            return Outcome(None, "not_sent", reason="too many open clarifications")
        self._waiters[ask] = future
        link.pump()
        outcome = await future
        logged = self._answer_logged.pop(ask, None)
        if logged is not None:
            if durable:
                outcome.logged_index = await logged
            elif logged.done() and not logged.exception():
                outcome.logged_index = logged.result()
        return outcome

    async def clarify_many(
        self, tracks: Sequence[TrackReport], ttl_ms: int | None = None
    ) -> AsyncIterator[tuple[int, Outcome]]:
        """Ask the peer about every track at once (as few Queries as the peer takes); yields
        (index in `tracks`, outcome) as each clarification ends, in the order they end."""
        async for ended in self.clarify_many_together(tracks, ttl_ms):
            for item in ended:
                yield item

    async def clarify_many_together(
        self, tracks: Sequence[TrackReport], ttl_ms: int | None = None
    ) -> AsyncIterator[list[tuple[int, Outcome]]]:
        """`clarify_many`, yielding together the clarifications that ended together (one
        `answers` message ends up to 256): a caller writing each to a stream writes them in
        one piece."""
        link = self.link
        if link is None or not self.endpoint.up:
            yield [
                (index, Outcome(None, "not_sent", reason="the hotline is not up"))
                for index in range(len(tracks))
            ]
            return
        room = max(0, self.config.limits.max_open_clarifications - self.endpoint.open_asks)
        ttl_us = (ttl_ms or self.config.query_ttl_ms) * 1000
        asks = self.endpoint.ask_many(tracks[:room], wall_us(), ttl_us)
        ended: asyncio.Queue[tuple[int, Outcome]] = asyncio.Queue()
        waiting = 0
        loop = asyncio.get_running_loop()
        for index, ask in enumerate(asks):
            if ask is None:
                continue
            future: asyncio.Future[Outcome] = loop.create_future()
            future.add_done_callback(functools.partial(_report, ended, index))
            self._waiters[ask] = future
            waiting += 1
        link.pump()
        refused = [
            (index, Outcome(None, "not_sent", reason="too many open clarifications"))
            for index in range(len(tracks))
            if index >= len(asks) or asks[index] is None
        ]
        if refused:
            yield refused
        try:
            while waiting:
                together = [await ended.get()]
                while not ended.empty():
                    together.append(ended.get_nowait())
                waiting -= len(together)
                for index, outcome in together:
                    logged = self._answer_logged.pop(asks[index] or -1, None)
                    if logged is not None and logged.done() and not logged.exception():
                        outcome.logged_index = logged.result()
                yield together
        finally:  # the caller may stop listening early: forget what it no longer waits for
            for ask in asks:
                if ask is not None:
                    self._answer_logged.pop(ask, None)

    async def decide(self, action: ProposedAction) -> tuple[GateDecision, int]:
        now = wall_us()
        decision = self.gate.propose(action, now)
        record = Decision(
            action.action_id,
            action.actor,
            action.rung,
            action.domain,
            decision.verdict,
            decision.rule.value,
            decision.reason,
            self.policy.hash,
            action.target,
            decision.until,
            tuple(a.cose for a in decision.approvals),
            self.roster.hash,
        )
        index = await self.log.record(record, now)
        if action.actor is Actor.HUMAN:
            self.metrics.human_decisions.labels(verdict=decision.verdict.value).inc()
        self._note_pending(action, decision, now)
        rung = self.policy.rungs.get(action.rung)
        self.emit(
            {
                "kind": "decision",
                "action": action.action_id,
                "rung": action.rung,
                "domain": action.domain,
                "verdict": decision.verdict.value,
                "rule": decision.rule.value,
                "reason": decision.reason,
                "index": index,
                "actor": action.actor.value,
                "target": action.target,
                "until_us": decision.until,
                "kinetic": rung.kinetic if rung is not None else False,
                "rung_index": self.policy.rung_index.get(action.rung),
                "domain_of_act": self.policy.domain_of(action.rung, action.domain)
                if action.rung in self.policy.rungs
                else action.domain,
                "approved_by": [a.officer for a in decision.approvals],
            }
        )
        return decision, index

    def _note_pending(self, action: ProposedAction, decision: GateDecision, now: Micros) -> None:
        """Keep what the gate referred to a human, so officers can see what awaits them."""
        if decision.allowed or decision.verdict is Verdict.HOLD:
            self.pending_approval.pop(action.action_id, None)
            return
        if decision.rule not in REFERRED_TO_HUMAN or action.rung not in self.policy.rungs:
            return
        if decision.rule is Rule.AUTHORIZATIONS and action.action_id not in self.pending_approval:
            return  # only acts autonomy was refused await officers; a failed claim does not
        domain = self.policy.domain_of(action.rung, action.domain)
        self.pending_approval[action.action_id] = {
            "action_id": action.action_id,
            "side": self.side,
            "rung": action.rung,
            "domain": action.domain,
            "domain_of_act": domain,
            "target": action.target,
            "officers_needed": max(1, self.policy.officers_required(action.rung, action.domain)),
            "why": decision.reason,
            "at": now,
        }
        self.pending_approval.move_to_end(action.action_id)
        while len(self.pending_approval) > PENDING_APPROVALS:
            self.pending_approval.popitem(last=False)

    def publish(self, assets: Sequence[OwnAsset], now: bool = False) -> bool:
        """Update our registry and queue the records for the peer; True if the link is up.

        Records are batched: one signed Bulk carries hundreds of them, and none waits
        more than TELEMETRY_BATCH_DELAY_S for company; with `now`, none waits at all."""
        self.registry.publish_many(assets)
        if not self._link_up():
            return False
        self._telemetry.add_records(asset.record for asset in assets)
        self._queued(now)
        return True

    def publish_read(self, batch: feed.Batch) -> bool:
        """`publish` for what one read of a feed took, sent at once (a read is a batch
        already: the more records arrive while the node is busy, the more each holds).
        A run of records goes into the registry unbuilt, and to the peer as the columns
        the feed's reader wrote."""
        for piece in batch.pieces:
            if isinstance(piece, feed.Run):
                self.registry.publish_unbuilt(piece.ids, piece.fixed)
            else:
                self.registry.publish_many(piece)
        if not self._link_up():
            return False
        self._telemetry.extend(batch.columns())
        self._queued(True)
        return True

    def _link_up(self) -> bool:
        return self.link is not None and self.endpoint.up

    def _queued(self, now: bool) -> None:
        if now or len(self._telemetry) >= TELEMETRY_BATCH_MAX:
            self._flush_telemetry()
        elif self._telemetry_timer is None:
            self._telemetry_timer = asyncio.get_running_loop().call_later(
                TELEMETRY_BATCH_DELAY_S, self._flush_telemetry
            )

    @property
    def unsent_bytes(self) -> int:
        """Bytes signed for the peer and not yet taken by the connection (0 without a link)."""
        link = self.link
        return 0 if link is None else link.writer.transport.get_write_buffer_size()

    def _flush_telemetry(self) -> None:
        if self._telemetry_timer is not None:
            self._telemetry_timer.cancel()
            self._telemetry_timer = None
        pending = self._telemetry.take()
        link = self.link
        if link is None or not self.endpoint.up:
            return
        now = wall_us()
        for body in pending:
            self.endpoint.send(body, now)
            self.metrics.telemetry_records.labels(direction="sent").inc(len(body))
        link.pump()

    async def checkpoint(self) -> int:
        """Record a signed checkpoint and send the peer the same one, with a consistency proof
        from the previous checkpoint it was sent, so that it can tell we never forked."""
        now = wall_us()
        index = await self.log.checkpoint(now, self.policy.hash, self.roster.hash)
        # The checkpoint record covers everything before it: size `index`, root at `index`.
        # The proof starts at the last one the peer was sent: one it holds, even if ours were
        # made since with the link down, or sealed the log at a restart.
        previous = self._sent_checkpoint

        def read(store: Any) -> tuple[bytes, tuple[bytes, ...]]:
            proof = () if previous is None else store.consistency_proof(previous, index)
            return store.root_at(index), tuple(proof)

        root, proof = await self.log.call(read)
        # The same tree head as a C2SP checkpoint note: what witnesses take, and what lets
        # the peer show our checkpoint to a witness itself.
        note = signed_checkpoint(self.side, self.identity.signer, index, root)
        body = Checkpoint(
            index,
            root,
            self.policy.hash,
            previous,
            proof,
            self.roster.hash,
            note_sig=note.signatures[0].signature,
        )
        view = checkpoint_view(body, now, index, "own")
        self.checkpoints[self.side].append(view)
        self.emit({"kind": "checkpoint", "from": self.side, "size": index, "root": root.hex()})
        if self.witnesses.configured:
            # Sent to the peer once the witnesses have answered (or timed out), in order.
            view.update(cosigners=[], quorum="pending")

            async def proof_from(old: int) -> Sequence[bytes] | None:
                if old > index:
                    return None
                return await self.log.call(lambda store: store.consistency_proof(old, index))

            self._witness_jobs.put_nowait(_WitnessJob(self.side, note, view, proof_from, send=body))
            return index
        self._send_checkpoint(body)
        return index

    def _send_checkpoint(self, body: Checkpoint) -> None:
        link = self.link
        if link is not None and self.endpoint.send(body, wall_us()) is not None:
            self._sent_checkpoint = body.size
            link.pump()

    # -- witnesses ------------------------------------------------------------------

    def _witness_peer_checkpoint(self, body: Checkpoint, view: dict[str, Any]) -> None:
        """Count the cosignatures the peer attached; short of a quorum, show the peer's
        checkpoint to the witnesses ourselves (as a monitor would): they cosign it, or they
        say they hold another root, which is a split view of the peer's log."""
        peer = self.identity.peer_verifier
        origin = log_origin(self.peer_side, peer.kid)
        text = TreeHead(origin, body.size, body.root).text()
        cosigners, problems = self.witnesses.check(text, body.cosigs or ())
        note = None
        if body.note_sig is not None:
            key = NoteKey(origin, peer.public_key, ED25519)
            signed = Note(text, (NoteSignature(origin, key.key_id, body.note_sig),))
            try:
                note = signed if verify_note(signed, [key]) else None
            except ClearlineError:
                problems.append("the peer's own note signature does not verify")
        for problem in problems:
            log.error("the peer's checkpoint at %d: %s", body.size, problem)
            self.metrics.bad_cosignatures.inc()
            self.emit(
                {
                    "kind": "bad-cosignature",
                    "from": self.peer_side,
                    "size": body.size,
                    "detail": problem,
                }
            )
        view.update(cosigners=cosigners, problems=problems)
        verdict = self.witnesses.verdict(len(cosigners))
        if problems or verdict == "met" or note is None:
            view["quorum"] = "not-met" if problems else verdict
            self._quorum(self.peer_side, view)
            return
        view["quorum"] = "pending"

        async def proof_from(old: int) -> Sequence[bytes] | None:
            return body.consistency if old == body.prev_size else None

        job = _WitnessJob(self.peer_side, note, view, proof_from)
        job.only = {w.name for w in self.witnesses.witnesses if w.name not in cosigners}
        self._witness_jobs.put_nowait(job)

    async def _witness_worker(self) -> None:
        """One checkpoint at a time, in order; a checkpoint short of its quorum because a
        witness was unreachable is tried again after that witness's backoff, until a newer
        checkpoint of the same log takes its place."""
        retries: dict[str, _WitnessJob] = {}
        while True:
            job: _WitnessJob | None = None
            if retries:
                due = min(retries.values(), key=lambda j: j.due)
                try:
                    job = await asyncio.wait_for(
                        self._witness_jobs.get(), max(0.0, due.due - time.monotonic())
                    )
                except TimeoutError:
                    job = retries.pop(due.side)
            else:
                job = await self._witness_jobs.get()
            retries.pop(job.side, None)
            if await self._run_witness_job(job):
                retries[job.side] = job

    async def _run_witness_job(self, job: _WitnessJob) -> bool:
        """Submit, keep the cosignatures, send our checkpoint on; True to try again later."""
        own = job.side == self.side
        outcomes = await self.witnesses.submit(job.note, job.proof_from, own, job.only)
        size = TreeHead.parse(job.note.text).size
        for outcome in outcomes:
            self.metrics.witness_submissions.labels(
                witness=outcome.witness[:64], outcome=outcome.status
            ).inc()
            if outcome.cosignature is not None:
                job.cosigned[outcome.witness] = outcome.cosignature
            elif outcome.status == "split-view":
                self._split_view(job.side, size, outcome)
            elif outcome.status != "backing-off":
                log.warning(
                    "witness %s on %s's checkpoint at %d: %s %s",
                    outcome.witness,
                    job.side,
                    size,
                    outcome.status,
                    outcome.detail,
                )
        view = job.view
        before = view.get("quorum")
        cosigners = list(dict.fromkeys([*view.get("cosigners", []), *job.cosigned]))
        view["cosigners"] = cosigners
        view["quorum"] = self.witnesses.verdict(len(cosigners))
        if job.send is not None:
            lines = cosignature_lines(job.cosigned.values())
            self._send_checkpoint(dataclasses.replace(job.send, cosigs=lines or None))
            job.send = None
        if view["quorum"] != before:  # a retry that changes nothing says nothing
            self._quorum(job.side, view)
        waiting = {o.witness for o in outcomes if o.status in ("unreachable", "backing-off")}
        if view["quorum"] == "met" or not waiting:
            return False
        job.only = waiting
        job.due = min(w.retry_at for w in self.witnesses.witnesses if w.name in waiting)
        return True

    def witness_status(self) -> dict[str, Any]:
        """The witnesses, the quorum, the latest verdict on each side's checkpoint, whether
        the gate withholds the link's up caps, and the split views seen."""
        settings = self.witnesses.settings
        latest = {}
        for side, views in self.checkpoints.items():
            judged = [v for v in views if "quorum" in v]
            if judged:
                last = judged[-1]
                latest[side] = {
                    "size": last["size"],
                    "quorum": last["quorum"],
                    "cosigners": last.get("cosigners", []),
                }
        return {
            "witnesses": [w.name for w in self.witnesses.witnesses],
            "quorum": settings.quorum,
            "on_missing": settings.on_missing,
            "latest": latest,
            "up_withheld": self.gate.context.up_withheld,
            "split_views": list(self.split_views),
        }

    def _split_view(self, side: str, size: int, outcome: WitnessOutcome) -> None:
        """A witness holds another history of `side`'s log: what it exists to catch."""
        record = {
            "kind": "split-view",
            "log": side,
            "size": size,
            "witness": outcome.witness,
            "detail": outcome.detail,
        }
        log.error(
            "SPLIT VIEW of %s's log at %d: witness %s: %s",
            side,
            size,
            outcome.witness,
            outcome.detail,
        )
        self.metrics.split_views.labels(log="own" if side == self.side else "peer").inc()
        self.emit(record)
        self.split_views.append(dict(record, at=wall_us()))
        for view in self.checkpoints[side]:
            if view["size"] == size:
                view["split_view"] = True

    def _quorum(self, side: str, view: dict[str, Any]) -> None:
        """The verdict on one checkpoint: an event; short of a quorum, a metric and a log
        line; with fail-closed, the gate's up caps follow the latest verdicts."""
        verdict = view["quorum"]
        settings = self.witnesses.settings
        self.emit(
            {
                "kind": "quorum",
                "from": side,
                "size": view["size"],
                "verdict": verdict,
                "cosigners": view.get("cosigners", []),
                "needed": settings.quorum,
            }
        )
        if verdict == "not-met":
            self.metrics.quorum_missing.labels(log="own" if side == self.side else "peer").inc()
            log.warning(
                "%s's checkpoint at %d lacks a witness quorum: %d of %d cosignatures%s (%s)",
                side,
                view["size"],
                len(view.get("cosigners", [])),
                settings.quorum,
                ", and one attached does not verify" if view.get("problems") else "",
                settings.on_missing,
            )
        self._witness_gate()

    def _witness_gate(self) -> None:
        if self.witnesses.settings.on_missing != "fail-closed":
            return
        lacking = []
        for side, views in self.checkpoints.items():
            decided = [v for v in views if v.get("quorum") in ("met", "not-met")]
            if decided and decided[-1]["quorum"] == "not-met":
                lacking.append(f"{side}'s checkpoint at {decided[-1]['size']}")
        reason = f"{' and '.join(lacking)} lack a witness quorum" if lacking else None
        if reason != self.gate.context.up_withheld:
            log.warning(
                "gate: link-up caps %s", f"withheld: {reason}" if reason else "granted again"
            )
            self.emit({"kind": "witness-gate", "withheld": reason})
        self.gate.withhold_up(reason)

    # -- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        listener = None
        if self.config.listen is not None:
            # Bound before the log opens: a port in use leaves no log behind.
            where = (self.config.listen.host, self.config.listen.port)
            try:
                listener = socket.create_server(where, reuse_port=False)
            except OSError as exc:
                raise setting_error(
                    self.config,
                    ("listen", "port"),
                    f"cannot listen on {where[0]}:{where[1]}: {exc.strerror or exc}",
                ) from None
        await self.log.open(self.peer_side, self.identity.peer_verifier.public_key)
        since = wall_us() - self.policy.approvals.max_validity_ms * 1000
        self.gate.remember_spent(await self.log.call(lambda store: store.spent_approvals(since)))
        shown = await self.log.call(lambda store: store.last_peer_authority())
        if shown is not None:
            self.peer_authority = {"policy": shown[0].hex(), "roster": shown[1].hex()}
        await self._read_back()
        self.metrics.log_entries.set(self.log.size)
        if listener is not None:
            listener.setblocking(False)
            self._listener = listener
            self.listen_port = listener.getsockname()[1]
            self.spawn(self.transport.accept_forever(listener, self._stop))
        if self.config.peer.address is not None:
            host, port = self.config.peer.address.rsplit(":", 1)
            self.spawn(self.transport.dial_forever(host, int(port), self._stop))
        if self.witnesses.configured:
            self.spawn(self._witness_worker())
        self.emit({"kind": "started", "log_size": self.log.size})

    async def _read_back(self) -> None:
        """Both sides' checkpoints and the recent history, from the log: what a restart
        would otherwise forget although the log holds it."""
        kid = self.identity.signer.kid

        def read(store: Any) -> Any:
            entries = store.newest_first(SCAN_ENTRIES)
            return read_back(entries, kid, self.side, self.policy, self.roster)

        found = await self.log.call(read)
        self.checkpoints[self.side].extend(found.own_checkpoints)
        self.checkpoints[self.peer_side].extend(found.peer_checkpoints)
        self._sent_checkpoint = found.sent_checkpoint
        for event in found.events:
            event["id"] = next(self._event_ids)
            self.history.add(event)
        if any(c["consistency"] == "INCONSISTENT" for c in found.peer_checkpoints):
            log.error("the log holds a checkpoint of the peer inconsistent with an earlier one")

    def spawn(self, coroutine: Any) -> None:
        """Run `coroutine` as a task the node cancels when it shuts down."""
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def request_stop(self) -> None:
        self._stop.set()

    async def wait_stopped(self) -> None:
        await self._stop.wait()

    async def shutdown(self) -> None:
        """Stop dialing and listening, end the session, flush and checkpoint the log."""
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
        link = self.link
        if link is not None:
            link.abort()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, ClearlineError):
                await task
        await self.witnesses.close()
        await self.log.close(checkpoint=(wall_us(), self.policy.hash, self.roster.hash))
        self.emit({"kind": "stopped", "log_size": self.log.size})
        self.subscribers.clear()  # each event stream ends once it has sent "stopped"


def _session(link: Link) -> str | None:
    """The link's session id (hex): query sequence numbers start again in each session."""
    session_id = link.session.session_id
    return session_id.hex() if session_id else None
