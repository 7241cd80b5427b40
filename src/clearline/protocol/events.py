"""What a Session tells its owner, as typed, immutable events (see `Session.next_event`)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from clearline.protocol.messages import Answer, Message, Micros


class LinkState(StrEnum):
    """How the gate sees the link: DOWN until the handshake completes and after long silence."""

    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"


class RejectReason(StrEnum):
    MALFORMED = "malformed"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    WRONG_SESSION = "wrong_session"
    REPLAYED = "replayed"
    REORDERED = "reordered"
    UNEXPECTED = "unexpected"
    LATE_ANSWER = "late_answer"
    DUPLICATE_ANSWER = "duplicate_answer"
    UNKNOWN_QUERY = "unknown_query"


class CloseReason(StrEnum):
    LOCAL = "local"
    CONNECTION_LOST = "connection_lost"
    FRAME_ERROR = "frame_error"
    HANDSHAKE_TIMEOUT = "handshake_timeout"
    HANDSHAKE_MISMATCH = "handshake_mismatch"
    TOO_MANY_REJECTIONS = "too_many_rejections"


@dataclass(frozen=True, slots=True)
class HandshakeComplete:
    session_id: bytes
    peer_side: str
    peer_kid: bytes
    peer_policy_hash: bytes
    at: Micros
    peer_roster_hash: bytes = bytes(32)


@dataclass(frozen=True, slots=True)
class MessageSent:
    """A message this side signed and queued; `cose` is what goes on the wire and in the log."""

    message: Message
    cose: bytes


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """An authenticated, in-order message from the peer; `cose` is exactly what arrived."""

    message: Message
    cose: bytes
    received_at: Micros


@dataclass(frozen=True, slots=True)
class LinkStateChanged:
    previous: LinkState
    current: LinkState
    at: Micros


@dataclass(frozen=True, slots=True)
class RoundTrip:
    """A round trip measured from a heartbeat echo, peer's holding time removed."""

    rtt_us: Micros
    at: Micros


@dataclass(frozen=True, slots=True)
class ClarificationAnswered:
    query_seq: int
    answer: Answer
    elapsed_us: Micros
    at: Micros
    item: int = 0
    """Which of the query's tracks this answers (0: its first, or only, track)."""


@dataclass(frozen=True, slots=True)
class ClarificationExpired:
    query_seq: int
    deadline: Micros
    at: Micros


@dataclass(frozen=True, slots=True)
class Rejected:
    """Input refused; the session goes on. `seq` is the message's, when it was readable."""

    reason: RejectReason
    detail: str
    at: Micros
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class Closed:
    reason: CloseReason
    detail: str
    at: Micros


Event = (
    HandshakeComplete
    | MessageSent
    | MessageReceived
    | LinkStateChanged
    | RoundTrip
    | ClarificationAnswered
    | ClarificationExpired
    | Rejected
    | Closed
)
