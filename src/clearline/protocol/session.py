"""The hotline Session: a sans-I/O state machine (in the manner of h11 and aioquic).

The owner feeds it bytes and the time, and drains events and bytes:

    session.start(now, nonce)                 # queue our Hello
    session.receive_data(data, now)           # bytes from the transport
    while (event := session.next_event()):    # what happened
        ...
    session.send(Query(...), now)             # queue a signed message
    transport.write(session.data_to_send())
    deadline = session.next_deadline()        # when to call handle_timer
    session.handle_timer(now)                 # heartbeats, link state, expiries

It never reads a clock, draws a random number or touches a socket. All state
changes go through one table, `TRANSITIONS`; `state_diagram()` draws it.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict, deque
from dataclasses import dataclass
from enum import StrEnum

from clearline.errors import (
    FrameError,
    LocalProtocolError,
    MessageError,
    SignatureError,
    UnknownKeyError,
)
from clearline.protocol import codec
from clearline.protocol.constants import (
    MAX_TRACKS_PER_QUERY,
    NONCE_SIZE,
    REPLAY_WINDOW,
    SESSION_ID_CONTEXT,
)
from clearline.protocol.events import (
    ClarificationAnswered,
    ClarificationExpired,
    Closed,
    CloseReason,
    Event,
    HandshakeComplete,
    LinkState,
    LinkStateChanged,
    MessageReceived,
    MessageSent,
    Rejected,
    RejectReason,
    RoundTrip,
)
from clearline.protocol.messages import (
    Answer,
    Answers,
    Approval,
    Body,
    Decision,
    Heartbeat,
    Hello,
    Message,
    Micros,
    Query,
    Ready,
)
from clearline.protocol.signing import KeyRing, Signer, Verifier


class SessionState(StrEnum):
    IDLE = "IDLE"
    HELLO_SENT = "HELLO_SENT"
    HELLO_RECEIVED = "HELLO_RECEIVED"
    PROVING = "PROVING"
    UP = "UP"
    DEGRADED = "DEGRADED"
    DOWN = "DOWN"
    CLOSED = "CLOSED"


class Trigger(StrEnum):
    SEND_HELLO = "send Hello"
    RECV_HELLO = "receive Hello"
    SEND = "send message"
    RECV = "receive valid message"
    PROOF = "receive in-session message (liveness proof)"
    QUIET_DEGRADED = "silence > degraded_after"
    QUIET_DOWN = "silence > down_after"
    HANDSHAKE_TIMEOUT = "handshake timeout"
    CLOSE = "close / connection lost / fatal error"


S, T = SessionState, Trigger
_ALWAYS_CLOSABLE = {T.CLOSE: S.CLOSED}

TRANSITIONS: dict[SessionState, dict[Trigger, SessionState]] = {
    S.IDLE: {
        T.SEND_HELLO: S.HELLO_SENT,
        T.RECV_HELLO: S.HELLO_RECEIVED,
        T.HANDSHAKE_TIMEOUT: S.CLOSED,
        **_ALWAYS_CLOSABLE,
    },
    S.HELLO_SENT: {T.RECV_HELLO: S.PROVING, T.HANDSHAKE_TIMEOUT: S.CLOSED, **_ALWAYS_CLOSABLE},
    S.HELLO_RECEIVED: {
        T.SEND_HELLO: S.PROVING,
        T.HANDSHAKE_TIMEOUT: S.CLOSED,
        **_ALWAYS_CLOSABLE,
    },
    S.PROVING: {T.PROOF: S.UP, T.HANDSHAKE_TIMEOUT: S.CLOSED, **_ALWAYS_CLOSABLE},
    S.UP: {T.SEND: S.UP, T.RECV: S.UP, T.QUIET_DEGRADED: S.DEGRADED, **_ALWAYS_CLOSABLE},
    S.DEGRADED: {T.SEND: S.DEGRADED, T.RECV: S.UP, T.QUIET_DOWN: S.DOWN, **_ALWAYS_CLOSABLE},
    S.DOWN: {T.SEND: S.DOWN, T.RECV: S.UP, **_ALWAYS_CLOSABLE},
    S.CLOSED: {},
}
"""Every state change a Session can make: state -> trigger -> next state."""

ESTABLISHED = frozenset({S.UP, S.DEGRADED, S.DOWN})
HANDSHAKING = frozenset({S.IDLE, S.HELLO_SENT, S.HELLO_RECEIVED, S.PROVING})
LINK_STATE = {S.UP: LinkState.UP, S.DEGRADED: LinkState.DEGRADED}


def state_diagram() -> str:
    """A Mermaid state diagram generated from `TRANSITIONS` (docs/protocol.md carries it)."""
    lines = ["stateDiagram-v2", f"    [*] --> {S.IDLE.value}"]
    for state, edges in TRANSITIONS.items():
        for trigger, target in edges.items():
            if target is state:
                continue
            lines.append(f"    {state.value} --> {target.value}: {trigger.value}")
    lines.append(f"    {S.CLOSED.value} --> [*]")
    return "\n".join(lines)


def derive_session_id(side_a: tuple[str, bytes, bytes], side_b: tuple[str, bytes, bytes]) -> bytes:
    """SHA-256 over both (side, kid, nonce) triples in side-name order, first 16 bytes."""
    first, second = sorted([side_a, side_b], key=lambda t: t[0].encode())
    material = codec.canonical_cbor([SESSION_ID_CONTEXT.decode(), list(first), list(second)])
    return hashlib.sha256(material).digest()[:16]


@dataclass(frozen=True, slots=True)
class SessionConfig:
    side: str
    peer_side: str
    policy_hash: bytes
    heartbeat_interval_us: Micros = 1_000_000
    degraded_after_us: Micros = 2_500_000
    down_after_us: Micros = 5_000_000
    handshake_timeout_us: Micros = 10_000_000
    max_consecutive_rejections: int = 64
    remembered_queries: int = 4096
    roster_hash: bytes = bytes(32)
    """Canonical hash of our authority roster (all zero: none), sent in Hello."""
    max_hello_age_us: Micros = 60_000_000
    """A Hello stamped further than this from our clock is refused: a Hello replayed from a
    log cannot open a session later (the two clocks must agree within this)."""
    batch: int = MAX_TRACKS_PER_QUERY
    """The most tracks we take in one Query from the peer (said in our Ready)."""

    def __post_init__(self) -> None:
        if not 0 < self.heartbeat_interval_us < self.degraded_after_us < self.down_after_us:
            raise LocalProtocolError(
                "expected 0 < heartbeat_interval_us < degraded_after_us < down_after_us"
            )
        if self.side == self.peer_side:
            raise LocalProtocolError(f"side and peer side are both {self.side!r}")
        if not 1 <= self.batch <= MAX_TRACKS_PER_QUERY:
            raise LocalProtocolError(f"batch must be 1 to {MAX_TRACKS_PER_QUERY}")


class _BoundedSet:
    """Insertion-ordered set of numbers, each with a count, that forgets its oldest members
    past `limit`."""

    def __init__(self, limit: int) -> None:
        self._items: OrderedDict[int, int] = OrderedDict()
        self._limit = limit

    def add(self, item: int, count: int = 1) -> None:
        self._items[item] = count
        if len(self._items) > self._limit:
            self._items.popitem(last=False)

    def discard(self, item: int) -> None:
        self._items.pop(item, None)

    def count(self, item: int) -> int | None:
        return self._items.get(item)

    def __contains__(self, item: int) -> bool:
        return item in self._items


class _ReplayWindow:
    """Strictly increasing sequence numbers, with exact memory of the last REPLAY_WINDOW."""

    def __init__(self) -> None:
        self.highest = -1
        self._seen = 0  # bit i set: highest - i was accepted

    def check(self, seq: int) -> RejectReason | None:
        if seq > self.highest:
            return None
        offset = self.highest - seq
        if offset < REPLAY_WINDOW and self._seen >> offset & 1:
            return RejectReason.REPLAYED
        return RejectReason.REORDERED

    def accept(self, seq: int) -> None:
        shift = seq - self.highest
        self._seen = ((self._seen << shift) | 1) & ((1 << REPLAY_WINDOW) - 1)
        self.highest = seq


class Session:
    """One side's end of a hotline session with one peer."""

    def __init__(self, config: SessionConfig, signer: Signer, peer_key: Verifier) -> None:
        self.config = config
        self._signer = signer
        self._peer_key = peer_key
        self._keys = KeyRing()
        self._keys.add(config.peer_side, peer_key)
        self.state = S.IDLE
        self.session_id: bytes | None = None
        self.established_at: Micros | None = None
        """When the peer proved liveness in this session (stays set after a close)."""
        self.peer_policy_hash: bytes | None = None
        self.peer_roster_hash: bytes | None = None
        self.peer_batch = 1
        """The most tracks the peer takes in one Query (1 until its Ready says more)."""
        self._nonce: bytes | None = None
        self._peer_nonce: bytes | None = None
        self._peer_hello: bytes | None = None
        self._reader = codec.FrameReader()
        self._out = bytearray()
        self._events: deque[Event] = deque()
        self._next_seq = 0
        self._window = _ReplayWindow()
        self._started_at: Micros | None = None
        self._last_sent_at: Micros = 0
        self._last_heard_at: Micros = 0
        self._consecutive_rejections = 0
        self.open_queries: dict[int, Micros] = {}  # our Query seq -> deadline
        self._query_sent: dict[int, tuple[Micros, int]] = {}  # seq -> (sent at, tracks)
        self._answered = _BoundedSet(config.remembered_queries)
        self._expired = _BoundedSet(config.remembered_queries)
        self._peer_queries = _BoundedSet(config.remembered_queries)
        self._heartbeats_sent: OrderedDict[int, Micros] = OrderedDict()
        self._last_peer_heartbeat: tuple[int, Micros] | None = None
        self.rtt_us: Micros | None = None

    # -- public surface -------------------------------------------------

    @property
    def link_state(self) -> LinkState:
        return LINK_STATE.get(self.state, LinkState.DOWN)

    @property
    def closed(self) -> bool:
        return self.state is S.CLOSED

    @property
    def established(self) -> bool:
        """Both sides have proved liveness in this session: messages may be sent."""
        return self.state in ESTABLISHED

    def start(self, now: Micros, nonce: bytes) -> None:
        """Queue our Hello. `nonce` must be 16 fresh random bytes from the caller."""
        if len(nonce) != NONCE_SIZE:
            raise LocalProtocolError(f"nonce must be {NONCE_SIZE} bytes, got {len(nonce)}")
        self._transition(T.SEND_HELLO)
        self._started_at = now if self._started_at is None else self._started_at
        self._nonce = nonce
        hello = Hello(
            nonce=nonce,
            peer_side=self.config.peer_side,
            peer_kid=self._peer_key.kid,
            policy_hash=self.config.policy_hash,
            heartbeat_us=self.config.heartbeat_interval_us,
            roster_hash=self.config.roster_hash,
        )
        self._emit_signed(Message(self.config.side, b"", self._take_seq(), now, hello), now)
        if self.state is S.PROVING:
            self._prove(now)

    def send(self, body: Body, now: Micros) -> MessageSent:
        """Sign and queue one message; returns what was queued (also emitted as an event)."""
        if self.state not in ESTABLISHED:
            raise LocalProtocolError(f"cannot send {type(body).__name__} in state {self.state}")
        if isinstance(body, Hello | Decision | Approval | Ready):
            raise LocalProtocolError(f"{type(body).__name__} is not sent with send()")
        if isinstance(body, Answer | Answers):
            tracks = self._peer_queries.count(body.query_seq)
            if tracks is None:
                raise LocalProtocolError(
                    f"answer to query {body.query_seq}, which the peer did not send "
                    "or which was already answered"
                )
            given = len(body.answers) if isinstance(body, Answers) else 1
            if given != tracks or (tracks > 1) != isinstance(body, Answers):
                raise LocalProtocolError(
                    f"query {body.query_seq} named {tracks} track(s): answer it with "
                    + ("one Answer" if tracks == 1 else f"Answers of {tracks}")
                )
            self._peer_queries.discard(body.query_seq)
        if isinstance(body, Query) and len(body.tracks) > self.peer_batch:
            raise LocalProtocolError(
                f"a query of {len(body.tracks)} tracks; the peer takes at most {self.peer_batch}"
            )
        self._transition(T.SEND)
        assert self.session_id is not None
        message = Message(self.config.side, self.session_id, self._take_seq(), now, body)
        sent = self._emit_signed(message, now)
        if isinstance(body, Query):
            self.open_queries[message.seq] = body.deadline
            self._query_sent[message.seq] = (now, len(body.tracks))
        return sent

    def receive_data(self, data: bytes, now: Micros) -> None:
        """Feed bytes from the transport. Events become available from `next_event`."""
        if self.state is S.CLOSED:
            return
        if self._started_at is None:
            self._started_at = now
        self._expire_queries(now)
        try:
            frames = self._reader.feed(data)
        except FrameError as exc:
            frames = []
            fatal: FrameError | None = exc
        else:
            fatal = None
        for frame in frames:
            if self.closed:
                return
            self._receive_frame(frame, now)
        if fatal is not None and not self.closed:
            self._close(CloseReason.FRAME_ERROR, str(fatal), now)

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def next_deadline(self) -> Micros | None:
        """The earliest time at which `handle_timer` has work, or None."""
        if self.state is S.CLOSED:
            return None
        deadlines: list[Micros] = []
        if self.state in HANDSHAKING:
            if self._started_at is not None:
                deadlines.append(self._started_at + self.config.handshake_timeout_us)
            if self.state is S.PROVING:
                deadlines.append(self._last_sent_at + self.config.heartbeat_interval_us)
        else:
            deadlines.append(self._last_sent_at + self.config.heartbeat_interval_us)
            if self.state is S.UP:
                deadlines.append(self._last_heard_at + self.config.degraded_after_us)
            elif self.state is S.DEGRADED:
                deadlines.append(self._last_heard_at + self.config.down_after_us)
        if self.open_queries:
            deadlines.append(min(self.open_queries.values()))
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: Micros) -> None:
        """Do whatever is due at `now`: expiries, link-state changes, heartbeats."""
        if self.state is S.CLOSED:
            return
        self._expire_queries(now)
        cfg = self.config
        if self.state in HANDSHAKING:
            started = self._started_at
            if started is not None and now >= started + cfg.handshake_timeout_us:
                self._close(
                    CloseReason.HANDSHAKE_TIMEOUT,
                    "the peer did not prove liveness in this session in time"
                    if self.state is S.PROVING
                    else "no Hello from the peer in time",
                    now,
                    T.HANDSHAKE_TIMEOUT,
                )
            elif self.state is S.PROVING and now >= self._last_sent_at + cfg.heartbeat_interval_us:
                self._send_proof(now)
            return
        quiet = now - self._last_heard_at
        if self.state is S.UP and quiet >= cfg.degraded_after_us:
            self._change_link(T.QUIET_DEGRADED, now)
        if self.state is S.DEGRADED and quiet >= cfg.down_after_us:
            self._change_link(T.QUIET_DOWN, now)
        if now >= self._last_sent_at + cfg.heartbeat_interval_us:
            self._send_heartbeat(now)

    def close(self, now: Micros, reason: CloseReason = CloseReason.LOCAL, detail: str = "") -> None:
        """Close locally (or report the transport gone with CONNECTION_LOST)."""
        if self.state is not S.CLOSED:
            self._close(reason, detail or "closed by this side", now)

    # -- internals ------------------------------------------------------

    def _transition(self, trigger: Trigger) -> SessionState:
        target = TRANSITIONS[self.state].get(trigger)
        if target is None:
            raise LocalProtocolError(f"{trigger.value!r} is not allowed in state {self.state}")
        self.state = target
        return target

    def _take_seq(self) -> int:
        seq = self._next_seq
        self._next_seq += 1
        return seq

    def _emit_signed(self, message: Message, now: Micros) -> MessageSent:
        try:
            cose = codec.sign(message, self._signer)
            self._out += codec.frame(cose)
        except (MessageError, FrameError) as exc:
            raise LocalProtocolError(f"cannot send {message.type.value}: {exc}") from exc
        self._last_sent_at = now
        sent = MessageSent(message, cose)
        self._events.append(sent)
        return sent

    def _close(
        self, reason: CloseReason, detail: str, now: Micros, trigger: Trigger = T.CLOSE
    ) -> None:
        before = self.link_state
        self._transition(trigger)
        # A closed session has no timers: its open clarifications end now, not never, and
        # whoever gates on the link must hear that it is down.
        for query in sorted(self.open_queries):
            deadline = self.open_queries.pop(query)
            del self._query_sent[query]
            self._expired.add(query)
            self._events.append(ClarificationExpired(query, deadline, now))
        if before is not LinkState.DOWN:
            self._events.append(LinkStateChanged(before, LinkState.DOWN, now))
        self._events.append(Closed(reason, detail, now))

    def _reject(self, reason: RejectReason, detail: str, now: Micros, seq: int | None) -> None:
        self._events.append(Rejected(reason, detail, now, seq))
        self._consecutive_rejections += 1
        if self._consecutive_rejections >= self.config.max_consecutive_rejections:
            self._close(
                CloseReason.TOO_MANY_REJECTIONS,
                f"{self._consecutive_rejections} consecutive frames rejected",
                now,
            )

    def _change_link(self, trigger: Trigger, now: Micros) -> None:
        before = self.link_state
        self._transition(trigger)
        if self.link_state is not before:
            self._events.append(LinkStateChanged(before, self.link_state, now))

    def _receive_frame(self, frame: bytes, now: Micros) -> None:
        try:
            verified = codec.verify(frame, self._keys)
        except UnknownKeyError as exc:
            self._reject(RejectReason.UNKNOWN_KEY, str(exc), now, None)
            return
        except SignatureError as exc:
            self._reject(RejectReason.BAD_SIGNATURE, str(exc), now, None)
            return
        except MessageError as exc:
            self._reject(RejectReason.MALFORMED, str(exc), now, None)
            return
        message = verified.message
        if isinstance(message.body, Hello):
            self._receive_hello(message, verified.cose, now)
            return
        if isinstance(message.body, Decision | Approval):
            self._reject(
                RejectReason.UNEXPECTED,
                "decision and approval records are never sent",
                now,
                message.seq,
            )
            return
        if self.state not in ESTABLISHED and self.state is not S.PROVING:
            self._reject(
                RejectReason.UNEXPECTED,
                f"{message.type.value} before the Hellos were exchanged",
                now,
                message.seq,
            )
            return
        if message.session_id != self.session_id:
            self._reject(
                RejectReason.WRONG_SESSION,
                f"session id {message.session_id.hex()} is not this session's",
                now,
                message.seq,
            )
            return
        body = message.body
        if isinstance(body, Query) and len(body.tracks) > self.config.batch:
            self._reject(
                RejectReason.UNEXPECTED,
                f"a query of {len(body.tracks)} tracks; we said we take at most "
                f"{self.config.batch}",
                now,
                message.seq,
            )
            return
        if not self._accept_seq(message.seq, now):
            return
        self._last_heard_at = now
        self._consecutive_rejections = 0
        if self.state is S.PROVING:
            self._complete_handshake(now)
        else:
            self._change_link(T.RECV, now)
        self._events.append(MessageReceived(message, verified.cose, now))
        if isinstance(body, Answer | Answers):
            self._receive_answer(body, now)
        elif isinstance(body, Query):
            self._peer_queries.add(message.seq, len(body.tracks))
        elif isinstance(body, Heartbeat):
            self._receive_heartbeat(message.seq, body, now)
        elif isinstance(body, Ready):
            self.peer_batch = body.batch

    def _accept_seq(self, seq: int, now: Micros) -> bool:
        problem = self._window.check(seq)
        if problem is not None:
            self._reject(problem, f"sequence {seq} is not above {self._window.highest}", now, seq)
            return False
        self._window.accept(seq)
        return True

    def _receive_hello(self, message: Message, cose: bytes, now: Micros) -> None:
        hello = message.body
        assert isinstance(hello, Hello)
        if self.state not in (S.IDLE, S.HELLO_SENT):
            if cose == self._peer_hello:
                # The peer re-sent its Hello over a lossy path: it has not yet heard from us
                # in this session, so our proof (or what followed it) was lost. Prove again.
                if self.state is S.PROVING or self.state in ESTABLISHED:
                    self._send_proof(now)
                return
            reason = (
                RejectReason.REPLAYED
                if message.seq <= self._window.highest
                else (RejectReason.UNEXPECTED)
            )
            self._reject(reason, "Hello after the handshake", now, message.seq)
            return
        problems = []
        if message.seq != 0 or message.session_id:
            problems.append("Hello must have sequence 0 and an empty session id")
        if hello.peer_side != self.config.side:
            problems.append(
                f"Hello names peer side {hello.peer_side!r}, we are {self.config.side!r}"
            )
        if hello.peer_kid != self._signer.kid:
            problems.append(
                f"Hello expects our key {hello.peer_kid.hex()}, ours is {self._signer.kid.hex()}"
            )
        if abs(now - message.sent_at) > self.config.max_hello_age_us:
            problems.append(
                f"Hello stamped {(now - message.sent_at) / 1e6:+.1f} s from our clock (at most "
                f"{self.config.max_hello_age_us / 1e6:g} s): replayed, or the clocks disagree"
            )
        if problems:
            self._close(CloseReason.HANDSHAKE_MISMATCH, "; ".join(problems), now)
            return
        self._window.accept(0)
        self._peer_nonce = hello.nonce
        self._peer_hello = cose
        self.peer_policy_hash = hello.policy_hash
        self.peer_roster_hash = hello.roster_hash
        self._last_heard_at = now
        state = self._transition(T.RECV_HELLO)
        self._events.append(MessageReceived(message, cose, now))
        if state is S.PROVING:
            self._prove(now)

    def _prove(self, now: Micros) -> None:
        """Both Hellos are in: derive the session id and prove we are live in it.

        A Hello alone proves nothing about now (it may be replayed from a log); a message
        signed over the session id, which both fresh nonces make, does."""
        assert self._nonce is not None and self._peer_nonce is not None
        self.session_id = derive_session_id(
            (self.config.side, self._signer.kid, self._nonce),
            (self.config.peer_side, self._peer_key.kid, self._peer_nonce),
        )
        self._send_proof(now)

    def _send_proof(self, now: Micros) -> None:
        assert self.session_id is not None
        ready = Ready(self.config.batch)
        self._emit_signed(
            Message(self.config.side, self.session_id, self._take_seq(), now, ready), now
        )

    def _complete_handshake(self, now: Micros) -> None:
        """The peer proved liveness in this session: the link is up."""
        assert self.session_id is not None and self.peer_policy_hash is not None
        previous = self.link_state
        self._transition(T.PROOF)
        self.established_at = now
        self._events.append(
            HandshakeComplete(
                self.session_id,
                self.config.peer_side,
                self._peer_key.kid,
                self.peer_policy_hash,
                now,
                self.peer_roster_hash or bytes(32),
            )
        )
        self._events.append(LinkStateChanged(previous, self.link_state, now))

    def _receive_answer(self, body: Answer | Answers, now: Micros) -> None:
        q = body.query_seq
        answers = body.answers if isinstance(body, Answers) else (body,)
        if q in self.open_queries:
            sent_at, tracks = self._query_sent[q]
            if len(answers) != tracks or (tracks > 1) != isinstance(body, Answers):
                self._events.append(
                    Rejected(
                        RejectReason.UNEXPECTED,
                        f"{len(answers)} answer(s) to query {q}, which named {tracks} track(s)",
                        now,
                        q,
                    )
                )
                return
            del self.open_queries[q], self._query_sent[q]
            self._answered.add(q)
            for item, answer in enumerate(answers):
                self._events.append(ClarificationAnswered(q, answer, now - sent_at, now, item))
        elif q in self._expired:
            self._events.append(
                Rejected(RejectReason.LATE_ANSWER, f"query {q} had already expired", now, q)
            )
        elif q in self._answered:
            self._events.append(
                Rejected(RejectReason.DUPLICATE_ANSWER, f"query {q} was already answered", now, q)
            )
        else:
            self._events.append(
                Rejected(RejectReason.UNKNOWN_QUERY, f"no query {q} was sent", now, q)
            )

    def _expire_queries(self, now: Micros) -> None:
        due = sorted((d, q) for q, d in self.open_queries.items() if d <= now)
        for deadline, q in due:
            del self.open_queries[q]
            del self._query_sent[q]
            self._expired.add(q)
            self._events.append(ClarificationExpired(q, deadline, now))

    def _receive_heartbeat(self, seq: int, heartbeat: Heartbeat, now: Micros) -> None:
        self._last_peer_heartbeat = (seq, now)
        if heartbeat.echo_seq is None or heartbeat.echo_hold_us is None:
            return
        sent_at = self._heartbeats_sent.pop(heartbeat.echo_seq, None)
        if sent_at is not None:
            rtt = now - sent_at - heartbeat.echo_hold_us
            if rtt >= 0:
                self.rtt_us = rtt
                self._events.append(RoundTrip(rtt, now))

    def _send_heartbeat(self, now: Micros) -> None:
        echo = self._last_peer_heartbeat
        body = Heartbeat() if echo is None else Heartbeat(echo[0], now - echo[1])
        self._last_peer_heartbeat = None
        sent = self.send(body, now)
        self._remember_heartbeat(sent.message.seq, now)

    def _remember_heartbeat(self, seq: int, now: Micros) -> None:
        """Kept to time the peer's echo; only the last few, so memory stays bounded."""
        self._heartbeats_sent[seq] = now
        while len(self._heartbeats_sent) > 8:
            self._heartbeats_sent.popitem(last=False)
