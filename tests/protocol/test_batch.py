"""A swarm asked about in one Query and answered in one Answers message."""

from __future__ import annotations

import pytest

from clearline.errors import LocalProtocolError, MessageError
from clearline.protocol import codec
from clearline.protocol.constants import MAX_FRAME_SIZE, MAX_ID_LENGTH, MAX_TRACKS_PER_QUERY
from clearline.protocol.events import ClarificationAnswered, Rejected, RejectReason
from clearline.protocol.messages import (
    Answer,
    Answers,
    AssetKind,
    Claim,
    Intent,
    Message,
    Mission,
    Position,
    Query,
    TrackReport,
)
from clearline.protocol.signing import Ed25519Signer
from tests.protocol.harness import T0, make_pair

MS = 1_000


def swarm(n: int, id_length: int = 8) -> tuple[TrackReport, ...]:
    return tuple(
        TrackReport(
            f"T-{i:0{id_length - 2}d}",
            Position(-89_999_999 + i, -179_999_999 + i, 100_000),
            T0 + 999_999_999,
            AssetKind.RECON_SWARM,
            1_000_000,
            359,
            100_000,
        )
        for i in range(n)
    )


def test_both_sides_say_what_they_take_in_their_ready() -> None:
    p = make_pair(batch=40)
    assert p.us.peer_batch == 40 and p.prc.peer_batch == 40


def test_a_swarm_query_is_answered_track_by_track_in_one_message() -> None:
    p = make_pair()
    tracks = swarm(5)
    sent = p.us.send(Query(tracks[0], T0 + 2_000 * MS, tracks[1:]), T0)
    p.pump(T0 + 1)
    seq = sent.message.seq
    claims = (Claim.OURS, Claim.NOT_OURS, Claim.DECLINE, Claim.NOT_OURS, Claim.OURS)
    answers = tuple(Answer(seq, c) for c in claims)
    with pytest.raises(LocalProtocolError, match="named 5 track"):
        p.prc.send(Answers(seq, answers[:4]), T0 + 2)
    with pytest.raises(LocalProtocolError, match="named 5 track"):
        p.prc.send(Answer(seq, Claim.OURS), T0 + 2)
    p.prc.send(Answers(seq, answers), T0 + 2)
    p.pump(T0 + 3)
    got = p.of("US", ClarificationAnswered)
    assert [(e.item, e.answer.claim) for e in got] == list(enumerate(claims))
    assert p.us.open_queries == {}


def test_a_query_larger_than_the_peer_takes_is_not_sent_nor_taken() -> None:
    p = make_pair(batch=3)
    tracks = swarm(4)
    with pytest.raises(LocalProtocolError, match="at most 3"):
        p.us.send(Query(tracks[0], T0 + 2_000 * MS, tracks[1:]), T0)
    # A peer that sends one anyway is refused, and the query is not held open to answer.
    forged = p.forge(p.us, p.us_key, Query(tracks[0], T0 + 2_000 * MS, tracks[1:]), 9, T0)
    p.prc.receive_data(forged, T0)
    p.drain()
    rejected = p.of("PRC", Rejected)
    assert [r.reason for r in rejected] == [RejectReason.UNEXPECTED]
    assert "at most 3" in rejected[0].detail
    with pytest.raises(LocalProtocolError, match="did not send"):
        p.prc.send(Answers(9, tuple(Answer(9, Claim.NOT_OURS) for _ in tracks)), T0)


def test_answers_that_do_not_match_the_query_are_rejected() -> None:
    p = make_pair()
    tracks = swarm(3)
    seq = p.us.send(Query(tracks[0], T0 + 2_000 * MS, tracks[1:]), T0).message.seq
    p.pump(T0)
    short = Answers(seq, (Answer(seq, Claim.OURS), Answer(seq, Claim.OURS)))
    p.us.receive_data(p.forge(p.prc, p.prc_key, short, 50, T0 + 1), T0 + 1)
    p.drain()
    assert [r.reason for r in p.of("US", Rejected)] == [RejectReason.UNEXPECTED]
    assert seq in p.us.open_queries  # still open: the real answer may yet come


def test_the_largest_swarm_query_and_its_answers_fit_in_one_frame() -> None:
    key = Ed25519Signer.from_label("US")
    tracks = swarm(MAX_TRACKS_PER_QUERY, MAX_ID_LENGTH)
    query = Query(tracks[0], (1 << 63) - 1, tracks[1:])
    frame = codec.frame(codec.sign(Message("US", bytes(16), 2**40, T0, query), key))
    assert len(frame) <= MAX_FRAME_SIZE + 4
    full = Answer(
        2**40,
        Claim.OURS,
        Mission.RECONNAISSANCE,
        True,
        Intent.WITHDRAWING,
        Position(-89_999_999, -179_999_999, 100_000),
        "A" * MAX_ID_LENGTH,
    )
    answers = Answers(2**40, (full,) * MAX_TRACKS_PER_QUERY)
    frame = codec.frame(codec.sign(Message("US", bytes(16), 2**40, T0, answers), key))
    assert len(frame) <= MAX_FRAME_SIZE + 4


def test_a_track_named_twice_in_one_query_is_malformed() -> None:
    tracks = swarm(2)
    with pytest.raises(MessageError, match="named twice"):
        codec.sign(
            Message("US", bytes(16), 1, T0, Query(tracks[0], T0, (tracks[1], tracks[0]))),
            Ed25519Signer.from_label("US"),
        )


def test_a_peer_from_before_ready_is_asked_one_track_at_a_time() -> None:
    """A peer from before `ready` existed: up once the Hellos cross, it rejects our ready as
    malformed (without closing), never sends one, and takes single-track queries only. We
    come up at its first in-session message and never send it a swarm query."""
    from clearline.protocol.messages import Heartbeat, Hello
    from clearline.protocol.session import Session, derive_session_id
    from tests.protocol.harness import POLICY_PRC, config

    us_key, prc_key = Ed25519Signer.from_label("US"), Ed25519Signer.from_label("PRC")
    us = Session(config("US", "PRC"), us_key, prc_key.verifier())
    us.start(T0, b"\x01" * 16)
    old_nonce = b"\x02" * 16
    old_hello = Hello(old_nonce, "US", us_key.kid, POLICY_PRC, 1_000_000)
    us.receive_data(codec.frame(codec.sign(Message("PRC", b"", 0, T0, old_hello), prc_key)), T0)
    sid = derive_session_id(("US", us_key.kid, b"\x01" * 16), ("PRC", prc_key.kid, old_nonce))
    assert us.session_id == sid and not us.established
    # The old peer's first heartbeat, one interval later, is proof enough.
    beat = Message("PRC", sid, 1, T0 + 1_000_000, Heartbeat())
    us.receive_data(codec.frame(codec.sign(beat, prc_key)), T0 + 1_000_000)
    assert us.established and us.peer_batch == 1
    tracks = swarm(2)
    with pytest.raises(LocalProtocolError, match="at most 1"):
        us.send(Query(tracks[0], T0 + 3_000_000, tracks[1:]), T0 + 1_000_000)
    seq = us.send(Query(tracks[0], T0 + 3_000_000), T0 + 1_000_000).message.seq
    answer = Message("PRC", sid, 2, T0 + 1_100_000, Answer(seq, Claim.NOT_OURS))
    us.receive_data(codec.frame(codec.sign(answer, prc_key)), T0 + 1_100_000)
    events = []
    while (event := us.next_event()) is not None:
        events.append(event)
    assert [e.answer.claim for e in events if isinstance(e, ClarificationAnswered)] == [
        Claim.NOT_OURS
    ]
