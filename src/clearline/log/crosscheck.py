"""Cross-checking the two sides' logs: what one side sent, the other must hold, byte for byte.

Each log alone can show only that it is intact (and, with pinned keys, who signed
it); it cannot show that its owner kept everything. The peer's log can: a message
the owner sent is in both logs, with the same bytes, unless it never arrived.

What is decidable, and the rule applied, for each direction (sender S, receiver R):

- Session messages are compared by (signer kid, session id, sequence number).
  Hellos (sequence 0, no session id) and local records (decisions, the owner's
  checkpoint records) are never sent within a session and are not compared.
- **Conflict** (error): S's log and R's log hold different bytes under the same
  (kid, session, seq): one of them was rewritten by someone holding the key, or S
  showed the two a different history (a split view).
- **Insertion** (error): R's log holds a message signed by S's owner key that S's
  log lacks; or a message claiming S's side under a key that is not S's owner key.
  S's log may have been cut (the message was removed, or its tail truncated) or the
  node was killed between sending the message and committing it; either way S's log
  is not a complete record of what S signed, and the detail line says which
  (a gap in S's log, or past its last message of that session).
- **Omission** (error): a session is an in-order stream over TLS, so when R logged
  S's message with sequence n, R received every S message of that session below n.
  Any of those that R's log lacks was removed from it.
- **Not delivered** (counted, not an error): S's messages above the highest
  sequence R logged in their session (or in a session R logged nothing of S's
  from) may have been lost with the link, or with a crash before R committed them;
  nothing in R's log says they arrived. If R's log has uncovered entries
  (`clearline log verify`), its tail could also have been cut: compare the count
  with what S's later traffic implies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from clearline.errors import LogIntegrityError
from clearline.log import merkle
from clearline.log.evidence import TrustedKeys
from clearline.log.store import VerifyReport, verify_log
from clearline.protocol.codec import Verified


@dataclass(frozen=True, slots=True)
class _Held:
    index: int
    leaf: bytes
    kind: str
    side: str


@dataclass
class _Log:
    """A verified log and the session messages it holds, by (kid, session id, seq)."""

    name: str
    report: VerifyReport
    messages: dict[tuple[bytes, bytes, int], _Held] = field(default_factory=dict)

    @property
    def owner(self) -> bytes:
        return bytes.fromhex(self.report.owner_kid)

    @property
    def side(self) -> str:
        return self.report.side


def _load(path: Path, trust: TrustedKeys | None) -> _Log:
    messages: dict[tuple[bytes, bytes, int], _Held] = {}

    def visit(index: int, data: bytes, verified: Verified) -> None:
        message = verified.message
        if message.session_id:
            messages[(verified.kid, message.session_id, message.seq)] = _Held(
                index, merkle.leaf_hash(data), message.type.value, message.side
            )

    try:
        report = verify_log(path, trust, visit)
    except LogIntegrityError as exc:
        located = LogIntegrityError(f"{path}: {exc}")  # which of the two logs
        located.index = exc.index
        raise located from None
    return _Log(str(path), report, messages)


@dataclass
class Finding:
    """One discrepancy; indices are entry numbers in the first (a) and second (b) log."""

    kind: str
    """omission, insertion or conflict."""
    sender: str
    session: str
    seq: int
    type: str
    a_index: int | None
    b_index: int | None
    detail: str


@dataclass
class Direction:
    """The messages one side sent in sessions, as the other side's log accounts for them."""

    sender: str
    receiver: str
    sent: int = 0
    """Session messages in the sender's log signed by its owner."""
    delivered: int = 0
    """Of those, held byte for byte by the receiver."""
    not_delivered: int = 0
    """Above the highest sequence the receiver logged in their session: in flight or lost."""
    omissions: int = 0
    insertions: int = 0
    conflicts: int = 0


@dataclass
class CrossCheckReport:
    a: VerifyReport
    b: VerifyReport
    authenticated: bool
    """Whether both logs' keys were pinned from a trust file."""
    directions: list[Direction] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    ok: bool = True


def cross_check(a: Path, b: Path, trust: TrustedKeys | None = None) -> CrossCheckReport:
    """Verify both logs, then compare what each side sent with what the other holds.

    Raises LogIntegrityError or LogStoreError if either log fails on its own, or if the
    two are not the two ends of one hotline (see the module docstring for the rule).
    """
    log_a, log_b = _load(a, trust), _load(b, trust)
    if log_a.owner == log_b.owner or log_a.side == log_b.side:
        raise LogIntegrityError(
            f"{a} and {b} are both side {log_a.side}'s logs; cross-check compares one "
            "side's log with the other side's"
        )
    for first, second in ((log_a, log_b), (log_b, log_a)):
        pinned = second.report.keys.get(first.report.owner_kid)
        if pinned != first.side:
            held = f"for side {pinned}" if pinned else "at all"
            raise LogIntegrityError(
                f"{second.name} does not pin {first.name}'s owner key {first.report.owner_kid} "
                f"(side {first.side}) {held}: these logs are not two ends of one hotline"
            )
    report = CrossCheckReport(log_a.report, log_b.report, trust is not None)
    for sender, receiver in ((log_a, log_b), (log_b, log_a)):
        direction, findings = _compare(sender, receiver, sender is log_a)
        report.directions.append(direction)
        report.findings.extend(findings)
    report.ok = not report.findings
    return report


def _compare(sender: _Log, receiver: _Log, sender_is_a: bool) -> tuple[Direction, list[Finding]]:
    def indices(s: int | None, r: int | None) -> tuple[int | None, int | None]:
        return (s, r) if sender_is_a else (r, s)

    me = sender.owner
    sent = {(sid, seq): h for (kid, sid, seq), h in sender.messages.items() if kid == me}
    held = {(sid, seq): h for (kid, sid, seq), h in receiver.messages.items() if kid == me}
    highest_sent = _highest(sent)
    highest_held = _highest(held)
    direction = Direction(sender.side, receiver.side, sent=len(sent))
    findings: list[Finding] = []

    def found(
        kind: str, sid: bytes, seq: int, what: str, s: int | None, r: int | None, detail: str
    ) -> None:
        a_index, b_index = indices(s, r)
        findings.append(Finding(kind, sender.side, sid.hex(), seq, what, a_index, b_index, detail))

    for (sid, seq), mine in sorted(sent.items(), key=lambda item: item[1].index):
        theirs = held.get((sid, seq))
        if theirs is not None:
            if theirs.leaf == mine.leaf:
                direction.delivered += 1
                continue
            direction.conflicts += 1
            found(
                "conflict",
                sid,
                seq,
                mine.kind,
                mine.index,
                theirs.index,
                f"{sender.side} {mine.kind} seq {seq} of session {sid.hex()} differs: "
                f"{sender.name} entry {mine.index} and {receiver.name} entry {theirs.index} "
                "hold different bytes under the same key, session and sequence (a split view, "
                "or a rewrite by the key's holder)",
            )
            continue
        top = highest_held.get(sid)
        if top is not None and seq < top[0]:
            direction.omissions += 1
            found(
                "omission",
                sid,
                seq,
                mine.kind,
                mine.index,
                None,
                f"{sender.side} {mine.kind} seq {seq} of session {sid.hex()} ({sender.name} entry "
                f"{mine.index}) is missing from {receiver.name}, which logged {sender.side} seq "
                f"{top[0]} of that session at entry {top[1]}: it was received, then removed",
            )
            continue
        direction.not_delivered += 1
    for (sid, seq), theirs in sorted(held.items(), key=lambda item: item[1].index):
        if (sid, seq) in sent:
            continue
        direction.insertions += 1
        last = highest_sent.get(sid)
        if last is None:
            why = f"{sender.name} holds no {sender.side} message of that session"
        elif seq < last[0]:
            why = (
                f"{sender.name} skips it: it holds seq {last[0]} of that session at entry {last[1]}"
            )
        else:
            why = (
                f"{sender.name} ends that session at seq {last[0]} (entry {last[1]}): its tail "
                "was cut, or lost in a crash before it was committed"
            )
        found(
            "insertion",
            sid,
            seq,
            theirs.kind,
            None,
            theirs.index,
            f"{receiver.name} entry {theirs.index} holds a {sender.side} {theirs.kind} (session "
            f"{sid.hex()}, seq {seq}) signed by {sender.name}'s owner key that {sender.name} never "
            f"logged; {why}",
        )
    for (kid, sid, seq), theirs in sorted(receiver.messages.items(), key=lambda i: i[1].index):
        if kid == me or theirs.side != sender.side:
            continue
        direction.insertions += 1
        found(
            "insertion",
            sid,
            seq,
            theirs.kind,
            None,
            theirs.index,
            f"{receiver.name} entry {theirs.index} holds a {sender.side} {theirs.kind} (session "
            f"{sid.hex()}, seq {seq}) signed by key {kid.hex()}, which is not {sender.name}'s "
            f"owner key {me.hex()}",
        )
    return direction, findings


def _highest(messages: dict[tuple[bytes, int], _Held]) -> dict[bytes, tuple[int, int]]:
    """For each session, the highest sequence number held and its entry index."""
    top: dict[bytes, tuple[int, int]] = {}
    for (sid, seq), held in messages.items():
        if sid not in top or seq > top[sid][0]:
            top[sid] = (seq, held.index)
    return top
