"""What a node shows of its past: decisions, clarifications, checkpoints and messages.

The node's event stream says what happens; a console opened later, or after the node
restarted, needs what already happened. `History` keeps the recent events of each kind
apart, so that a night of heartbeats never pushes the last decision out, and
`read_back` rebuilds them, and both sides' checkpoints, from the log when the node
starts: the log holds every signed message and decision, so nothing a restart forgets
is lost, only the figures that were never logged (a clarification's measured time, a
heartbeat's round trip).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import cbor2

from clearline.errors import MessageError, ProofError
from clearline.gate.authority import Roster
from clearline.gate.policy import Policy
from clearline.log import merkle
from clearline.protocol import codec
from clearline.protocol.messages import (
    Answer,
    Answers,
    Approval,
    Checkpoint,
    Decision,
    Message,
    Micros,
    Query,
)

KEPT = {
    "message": 2000,
    "rtt": 120,
    "query": 200,
    "clarification": 200,
    "decision": 200,
    "checkpoint": 128,
    "peer-authority-changed": 20,
}
"""Events kept per kind for GET /v1/history (what the console shows, and a little more)."""
CHECKPOINTS_KEPT = 64
"""Checkpoints kept in memory per side for GET /v1/log/checkpoints (all stay in the log)."""
SCAN_ENTRIES = 20_000
"""Entries read back at start, newest first, at most: 0.3 to 0.5 s on a busy 2-core machine,
and about three hours of an idle link's heartbeats (one each way a second)."""


class History:
    """The most recent events of each kind in `KEPT`, oldest first by event id."""

    def __init__(self, kept: dict[str, int] | None = None) -> None:
        self._kept = {kind: deque[dict[str, Any]](maxlen=n) for kind, n in (kept or KEPT).items()}

    def add(self, event: dict[str, Any]) -> None:
        kept = self._kept.get(event["kind"])
        if kept is not None:
            kept.append(event)

    def events(self) -> list[dict[str, Any]]:
        return sorted(itertools.chain(*self._kept.values()), key=lambda e: int(e["id"]))


def answer_view(answer: Answer) -> dict[str, Any]:
    """The peer's signed answer as events and the API show it."""
    position = None
    if answer.position is not None:
        p = answer.position
        position = {"lat": p.lat_e6 / 1e6, "lon": p.lon_e6 / 1e6, "alt_m": p.alt_m}
    return {
        "claim": answer.claim.value,
        "mission": answer.mission.value if answer.mission else None,
        "armed": answer.armed,
        "intent": answer.intent.value if answer.intent else None,
        "asset_id": answer.asset_id,
        "position": position,
    }


def checkpoint_view(
    body: Checkpoint, at: Micros, index: int | None, consistency: str
) -> dict[str, Any]:
    """A checkpoint as GET /v1/log/checkpoints shows it."""
    return {
        "size": body.size,
        "root": body.root.hex(),
        "policy_hash": body.policy_hash.hex(),
        "prev_size": body.prev_size,
        "at": at,
        "log_index": index,
        "consistency": consistency,
    }


def peer_consistency(held: dict[int, str], body: Checkpoint) -> str:
    """'consistent' if the proof links the peer's checkpoint to a previous one we hold (size
    -> root hex); 'first' if we hold none; 'unproven' if the proof is missing or names a
    checkpoint we never saw; 'INCONSISTENT' if it fails: the peer showed us two histories."""
    if not held:
        return "first"
    if body.prev_size is None or body.prev_size not in held:
        return "unproven"
    try:
        merkle.verify_consistency(
            body.prev_size,
            body.size,
            body.consistency,
            bytes.fromhex(held[body.prev_size]),
            body.root,
        )
    except ProofError:
        return "INCONSISTENT"
    return "consistent"


@dataclass
class ReadBack:
    """What the log says about the node's past, for a node that has just started."""

    own_checkpoints: list[dict[str, Any]] = field(default_factory=list)
    peer_checkpoints: list[dict[str, Any]] = field(default_factory=list)
    sent_checkpoint: int | None = None
    """The size of the last checkpoint sent to the peer: the next one's proof starts there,
    at a checkpoint the peer holds."""
    events: list[dict[str, Any]] = field(default_factory=list)
    """Oldest first, without ids (the node numbers them)."""
    entries_read: int = 0


@dataclass
class _Found:
    own: list[tuple[int, Message]] = field(default_factory=list)
    peer: list[tuple[int, Message]] = field(default_factory=list)
    sent_prev: dict[int, int | None] = field(default_factory=dict)
    sent: int | None = None
    decisions: list[tuple[int, Message, Decision]] = field(default_factory=list)
    queries: list[tuple[Message, Query]] = field(default_factory=list)
    answers: dict[tuple[bytes, int], Message] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)

    def full(self) -> bool:
        return (
            len(self.own) >= CHECKPOINTS_KEPT
            and len(self.peer) > CHECKPOINTS_KEPT
            and self.sent is not None
            and len(self.decisions) >= KEPT["decision"]
            and len(self.queries) >= KEPT["query"]
            and len(self.messages) >= KEPT["message"]
        )


_DECODED = frozenset({"decision", "checkpoint", "query", "answer", "answers"})


def read_back(
    entries: Iterable[tuple[int, bytes]],
    owner_kid: bytes,
    side: str,
    policy: Policy,
    roster: Roster,
) -> ReadBack:
    """Rebuild checkpoints and history from log `entries`, newest first (index, bytes)."""
    found = _Found()
    read = 0
    for index, data in entries:
        read += 1
        try:
            envelope = codec.parse_envelope(data)
            # Only the type and header fields, for the many entries shown as a line each;
            # the log checked every entry's encoding when it was written.
            fields = cbor2.loads(envelope.payload)
            kind, session, seq, sent_at = fields["type"], fields["sid"], fields["seq"], fields["t"]
        except (MessageError, cbor2.CBORDecodeError, KeyError, TypeError, ValueError):
            continue
        mine = envelope.kid == owner_kid
        local = session == b""
        if not local and len(found.messages) < KEPT["message"]:
            found.messages.append(
                {
                    "kind": "message",
                    "direction": "sent" if mine else "received",
                    "type": kind,
                    "seq": seq,
                    "sent_at": sent_at,
                    "bytes": len(data),
                    "verified": True,
                    "at": sent_at,
                }
            )
        if kind in _DECODED:
            try:
                message = codec.decode_payload(envelope.payload)
            except MessageError:
                continue
            _note(found, index, message, mine, local)
        if found.full():
            break
    result = ReadBack(entries_read=read)
    _checkpoints(found, result)
    result.events = _events(found, side, policy, roster)
    return result


def _note(found: _Found, index: int, message: Message, mine: bool, local: bool) -> None:
    body = message.body
    if isinstance(body, Checkpoint):
        if mine and local and len(found.own) < CHECKPOINTS_KEPT:
            found.own.append((index, message))
        elif mine and not local:
            found.sent_prev.setdefault(body.size, body.prev_size)
            if found.sent is None:
                found.sent = body.size
        elif not mine and len(found.peer) <= CHECKPOINTS_KEPT:
            found.peer.append((index, message))
    elif isinstance(body, Decision) and mine and local:
        if len(found.decisions) < KEPT["decision"]:
            found.decisions.append((index, message, body))
    elif isinstance(body, Query) and mine:
        if len(found.queries) < KEPT["query"]:
            found.queries.append((message, body))
    elif isinstance(body, Answer | Answers) and not mine:
        found.answers.setdefault((message.session_id, body.query_seq), message)


def _checkpoints(found: _Found, result: ReadBack) -> None:
    for index, message in reversed(found.own):
        assert isinstance(message.body, Checkpoint)
        body = message.body
        view = checkpoint_view(body, message.sent_at, index, "own")
        view["prev_size"] = found.sent_prev.get(body.size)
        result.own_checkpoints.append(view)
    # Checked in order, each against those before it, as they were when they arrived; one
    # more than is kept is read, so that the oldest kept is checked against its predecessor.
    held: dict[int, str] = {}
    for position, (_, message) in enumerate(reversed(found.peer)):
        assert isinstance(message.body, Checkpoint)
        body = message.body
        status = peer_consistency(held, body)
        held[body.size] = body.root.hex()
        if position > 0 or len(found.peer) <= CHECKPOINTS_KEPT:
            result.peer_checkpoints.append(checkpoint_view(body, message.sent_at, None, status))
    result.sent_checkpoint = found.sent


def _events(found: _Found, side: str, policy: Policy, roster: Roster) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = list(found.messages)
    officers = roster.officer_by_kid
    for index, message, decision in found.decisions:
        events.append(decision_event(side, index, message.sent_at, decision, policy, officers))
    for message, query in found.queries:
        session = message.session_id.hex()
        answered = found.answers.get((message.session_id, message.seq))
        said = None if answered is None else answered.body
        answers: tuple[Answer, ...] | None = (
            said.answers
            if isinstance(said, Answers)
            else (said,)
            if isinstance(said, Answer)
            else None
        )
        # A swarm's query names several tracks: each is a clarification of its own.
        for item, track in enumerate(query.tracks):
            base = {
                "query_seq": message.seq,
                "track": track.track_id,
                "session": session,
                "from_log": True,
            }
            events.append(
                {"kind": "query", **base, "deadline_us": query.deadline, "at": message.sent_at}
            )
            if answered is not None and answers is not None and item < len(answers):
                ended = {
                    "outcome": "answered",
                    "reason": "",
                    "at": answered.sent_at,
                    "answer": answer_view(answers[item]),
                }
            else:
                ended = {
                    "outcome": "expired",
                    "reason": "no answer in the log",
                    "at": query.deadline,
                    "answer": None,
                }
            events.append({"kind": "clarification", **base, "elapsed_us": None, **ended})
    for _, message in [*found.own, *found.peer]:
        assert isinstance(message.body, Checkpoint)
        events.append(
            {
                "kind": "checkpoint",
                "from": message.side,
                "size": message.body.size,
                "root": message.body.root.hex(),
                "at": message.sent_at,
                "from_log": True,
            }
        )
    for event in events:
        event["side"] = side
    # Stable: the order found (newest first within a kind) is undone by the timestamps.
    events.sort(key=lambda e: int(e["at"]))
    return events


def decision_event(
    side: str,
    index: int,
    at: Micros,
    decision: Decision,
    policy: Policy,
    officers: dict[bytes, str],
) -> dict[str, Any]:
    """A gate decision read back from its signed record, as the node emitted it."""
    rung = policy.rungs.get(decision.rung)
    return {
        "kind": "decision",
        "action": decision.action_id,
        "rung": decision.rung,
        "domain": decision.domain,
        "verdict": decision.verdict.value,
        "rule": decision.rule,
        "reason": decision.reason,
        "index": index,
        "actor": decision.actor.value,
        "target": decision.target,
        "until_us": decision.until,
        "kinetic": rung.kinetic if rung is not None else False,
        "rung_index": policy.rung_index.get(decision.rung),
        "domain_of_act": policy.domain_of(decision.rung, decision.domain)
        if decision.rung in policy.rungs
        else decision.domain,
        "approved_by": list(_approvers(decision.approvals, officers)),
        "at": at,
        "from_log": True,
    }


def _approvers(approvals: tuple[bytes, ...], officers: dict[bytes, str]) -> Iterator[str]:
    for cose in approvals:
        try:
            envelope = codec.parse_envelope(cose)
            body = codec.decode_payload(envelope.payload).body
        except MessageError:
            continue
        named = body.officer if isinstance(body, Approval) else None
        yield officers.get(envelope.kid) or named or envelope.kid.hex()
