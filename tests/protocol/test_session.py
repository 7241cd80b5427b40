"""Session behaviour: handshake, ordering, clarifications, link state, and refusal of bad input."""

from __future__ import annotations

import pytest

from clearline.errors import LocalProtocolError
from clearline.protocol import codec
from clearline.protocol.events import (
    ClarificationAnswered,
    ClarificationExpired,
    Closed,
    CloseReason,
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
    AssetKind,
    Claim,
    Heartbeat,
    Intent,
    Mission,
    Position,
    Query,
    TrackReport,
)
from clearline.protocol.session import TRANSITIONS, Session, SessionState, derive_session_id
from clearline.protocol.signing import Ed25519Signer
from tests.protocol.harness import POLICY_PRC, POLICY_US, T0, config, make_pair

MS = 1_000


def track(at: int = T0) -> TrackReport:
    return TrackReport("T-1", Position(21_500_000, 119_000_000, 300), at, AssetKind.RECON_SWARM, 24)


def answer(seq: int) -> Answer:
    return Answer(seq, Claim.OURS, Mission.RECONNAISSANCE, False, Intent.WITHDRAWING)


def test_handshake_agrees_on_session_and_reports_policies() -> None:
    p = make_pair()
    assert p.us.state is SessionState.UP and p.prc.state is SessionState.UP
    assert p.us.session_id == p.prc.session_id is not None
    us_done = p.of("US", HandshakeComplete)[0]
    prc_done = p.of("PRC", HandshakeComplete)[0]
    assert us_done.peer_policy_hash == POLICY_PRC and prc_done.peer_policy_hash == POLICY_US
    assert p.of("US", LinkStateChanged)[-1].current is LinkState.UP


def test_session_id_does_not_depend_on_who_speaks_first() -> None:
    p = make_pair(start=False)
    p.prc.start(T0, b"\x02" * 16)
    p.us.receive_data(p.prc.data_to_send(), T0)
    assert p.us.state is SessionState.HELLO_RECEIVED
    p.us.start(T0, b"\x01" * 16)
    p.pump(T0)
    q = make_pair()
    assert p.us.session_id == p.prc.session_id == q.us.session_id
    a = ("US", p.us_key.kid, b"\x01" * 16)
    b = ("PRC", p.prc_key.kid, b"\x02" * 16)
    assert derive_session_id(a, b) == derive_session_id(b, a) == p.us.session_id


def test_fresh_nonces_give_a_fresh_session() -> None:
    p = make_pair()
    q = make_pair(start=False)
    q.us.start(T0, b"\x03" * 16)
    q.prc.start(T0, b"\x02" * 16)
    q.pump(T0)
    assert q.us.session_id != p.us.session_id


def test_query_answered_once_with_elapsed_time() -> None:
    p = make_pair()
    sent = p.us.send(Query(track(), T0 + 2_000 * MS), T0)
    p.prc.receive_data(p.us.data_to_send(), T0 + 55 * MS)
    p.drain()
    got = p.of("PRC", MessageReceived)[-1].message
    assert isinstance(got.body, Query) and got.seq == sent.message.seq
    p.prc.send(answer(got.seq), T0 + 56 * MS)
    p.us.receive_data(p.prc.data_to_send(), T0 + 111 * MS)
    p.drain()
    done = p.of("US", ClarificationAnswered)
    assert [(d.query_seq, d.elapsed_us) for d in done] == [(sent.message.seq, 111 * MS)]
    assert done[0].answer.intent is Intent.WITHDRAWING
    assert p.us.open_queries == {}
    assert not p.of("US", ClarificationExpired)


def test_query_expires_at_deadline_and_late_answer_is_rejected() -> None:
    p = make_pair()
    sent = p.us.send(Query(track(), T0 + 100 * MS), T0)
    p.prc.receive_data(p.us.data_to_send(), T0 + 10 * MS)
    assert p.us.next_deadline() == T0 + 100 * MS
    p.us.handle_timer(T0 + 100 * MS)
    p.drain()
    assert [e.query_seq for e in p.of("US", ClarificationExpired)] == [sent.message.seq]
    p.prc.send(answer(sent.message.seq), T0 + 150 * MS)
    p.us.receive_data(p.prc.data_to_send(), T0 + 160 * MS)
    p.drain()
    assert not p.of("US", ClarificationAnswered)
    rejected = p.of("US", Rejected)
    assert [r.reason for r in rejected] == [RejectReason.LATE_ANSWER]
    # The late answer is still an authentic, logged statement.
    assert isinstance(p.of("US", MessageReceived)[-1].message.body, Answer)


def test_answer_arriving_after_deadline_expires_before_it_is_read() -> None:
    p = make_pair()
    sent = p.us.send(Query(track(), T0 + 100 * MS), T0)
    p.prc.receive_data(p.us.data_to_send(), T0)
    p.prc.send(answer(sent.message.seq), T0)
    p.us.receive_data(p.prc.data_to_send(), T0 + 100 * MS)  # timer never called
    p.drain()
    assert len(p.of("US", ClarificationExpired)) == 1
    assert [r.reason for r in p.of("US", Rejected)] == [RejectReason.LATE_ANSWER]


def test_duplicate_and_unknown_answers_are_rejected() -> None:
    p = make_pair()
    q = p.us.send(Query(track(), T0 + 1_000 * MS), T0).message.seq
    p.pump(T0)
    p.prc.send(answer(q), T0)
    p.pump(T0)
    dup = p.forge(p.prc, p.prc_key, answer(q), seq=p.prc._next_seq, now=T0)
    unknown = p.forge(p.prc, p.prc_key, answer(999), seq=p.prc._next_seq + 1, now=T0)
    p.us.receive_data(dup + unknown, T0)
    p.drain()
    reasons = [r.reason for r in p.of("US", Rejected)]
    assert reasons == [RejectReason.DUPLICATE_ANSWER, RejectReason.UNKNOWN_QUERY]
    assert len(p.of("US", ClarificationAnswered)) == 1


def test_replayed_and_reordered_frames_are_rejected_and_session_goes_on() -> None:
    p = make_pair()
    p.prc.send(Heartbeat(), T0)
    first = p.prc.data_to_send()
    p.prc.send(Heartbeat(), T0)
    second = p.prc.data_to_send()
    p.prc.send(Heartbeat(), T0)
    third = p.prc.data_to_send()
    p.us.receive_data(first, T0)
    p.us.receive_data(first, T0)  # replay
    p.us.receive_data(third, T0)
    p.us.receive_data(second, T0)  # arrives after a later one
    p.drain()
    assert [r.reason for r in p.of("US", Rejected)] == [
        RejectReason.REPLAYED,
        RejectReason.REORDERED,
    ]
    assert p.us.state is SessionState.UP


def test_replay_of_hello_is_rejected_and_a_resent_one_ignored() -> None:
    earlier = make_pair(start=False)
    earlier.prc.start(T0 - 10, b"\x09" * 16)
    old_hello = earlier.prc.data_to_send()  # a Hello from another session, as logged
    p = make_pair(start=False)
    p.us.start(T0, b"\x01" * 16)
    p.prc.start(T0, b"\x02" * 16)
    hello = p.prc.data_to_send()
    p.us.receive_data(hello, T0)
    p.prc.receive_data(p.us.data_to_send(), T0)
    p.drain()
    # The peer re-sending its own Hello over a lossy path is no error: it has not heard us
    # in this session yet, so we prove liveness again.
    p.us.receive_data(hello, T0 + 1)
    p.drain()
    assert p.of("US", Rejected) == [] and p.us.state is SessionState.PROVING
    assert p.us.data_to_send(), "no fresh proof after the peer's re-sent Hello"
    p.us.receive_data(p.prc.data_to_send(), T0 + 1)  # PRC's proof
    assert p.us.link_state is LinkState.UP
    p.us.receive_data(old_hello, T0 + 2)
    p.drain()
    assert [r.reason for r in p.of("US", Rejected)] == [RejectReason.REPLAYED]


def test_bad_signature_unknown_key_and_garbage_are_rejected_not_fatal() -> None:
    p = make_pair()
    p.prc.send(Heartbeat(), T0)
    good = bytearray(p.prc.data_to_send())
    good[-1] ^= 0x01  # last signature byte
    mallory = Ed25519Signer.from_label("MALLORY")
    forged = p.forge(p.prc, mallory, Heartbeat(), seq=50, now=T0)
    garbage = codec.frame(b"\xff\x00 not cbor at all")
    p.us.receive_data(bytes(good) + forged + garbage, T0)
    p.prc.send(Heartbeat(), T0)
    p.us.receive_data(p.prc.data_to_send(), T0)
    p.drain()
    assert [r.reason for r in p.of("US", Rejected)] == [
        RejectReason.BAD_SIGNATURE,
        RejectReason.UNKNOWN_KEY,
        RejectReason.MALFORMED,
    ]
    assert isinstance(p.of("US", MessageReceived)[-1].message.body, Heartbeat)
    assert p.us.state is SessionState.UP


def test_reflected_own_message_is_refused() -> None:
    p = make_pair()
    p.us.send(Heartbeat(), T0)
    p.us.receive_data(p.us.data_to_send(), T0)
    p.drain()
    assert [r.reason for r in p.of("US", Rejected)] == [RejectReason.UNKNOWN_KEY]


def test_message_from_another_session_is_rejected() -> None:
    old = make_pair()
    old.prc.send(Heartbeat(), T0)
    stale = old.prc.data_to_send()
    new = make_pair(start=False)
    new.us.start(T0, b"\x09" * 16)
    new.prc.start(T0, b"\x08" * 16)
    new.pump(T0)
    new.us.receive_data(stale, T0)
    new.drain()
    assert [r.reason for r in new.of("US", Rejected)] == [RejectReason.WRONG_SESSION]


def test_oversized_frame_closes_with_reason() -> None:
    p = make_pair()
    p.us.receive_data((10_000_000).to_bytes(4, "big") + b"x" * 10, T0)
    p.drain()
    closed = p.of("US", Closed)
    assert [c.reason for c in closed] == [CloseReason.FRAME_ERROR]
    assert "outside" in closed[0].detail
    assert p.us.state is SessionState.CLOSED
    p.us.receive_data(b"more", T0)  # ignored once closed, never raises
    with pytest.raises(LocalProtocolError):
        p.us.send(Heartbeat(), T0)


def test_flood_of_rejected_frames_closes_session() -> None:
    p = make_pair(max_consecutive_rejections=10)
    p.us.receive_data(codec.frame(b"junk") * 20, T0)
    p.drain()
    assert len(p.of("US", Rejected)) == 10
    assert [c.reason for c in p.of("US", Closed)] == [CloseReason.TOO_MANY_REJECTIONS]


def test_handshake_mismatch_closes() -> None:
    us_key, prc_key = Ed25519Signer.from_label("US"), Ed25519Signer.from_label("PRC")
    other = Ed25519Signer.from_label("US-old")
    us = Session(config("US", "PRC"), us_key, prc_key.verifier())
    prc = Session(config("PRC", "US"), prc_key, us_key.verifier())
    wrong = Session(config("PRC", "US"), prc_key, other.verifier())  # expects another US key
    wrong.start(T0, b"\x02" * 16)
    us.receive_data(wrong.data_to_send(), T0)
    events = [us.next_event() for _ in range(3)]
    closed = [e for e in events if isinstance(e, Closed)]
    assert closed and closed[0].reason is CloseReason.HANDSHAKE_MISMATCH
    assert "expects our key" in closed[0].detail
    del prc


def test_handshake_timeout() -> None:
    p = make_pair(start=False)
    p.us.start(T0, b"\x01" * 16)
    deadline = p.us.next_deadline()
    assert deadline == T0 + p.us.config.handshake_timeout_us
    p.us.handle_timer(deadline - 1)
    assert p.us.state is SessionState.HELLO_SENT
    p.us.handle_timer(deadline)
    p.drain()
    assert [c.reason for c in p.of("US", Closed)] == [CloseReason.HANDSHAKE_TIMEOUT]


def test_link_degrades_goes_down_and_recovers_on_schedule() -> None:
    p = make_pair()
    cfg = p.us.config
    now = T0
    changes: list[tuple[LinkState, int]] = []
    while now < T0 + cfg.down_after_us + 1:
        now = p.us.next_deadline() or now + 1
        p.us.handle_timer(now)
        p.us.data_to_send()  # heartbeats go nowhere: the peer is silent
        while (e := p.us.next_event()) is not None:
            if isinstance(e, LinkStateChanged):
                changes.append((e.current, e.at - T0))
    assert changes == [
        (LinkState.DEGRADED, cfg.degraded_after_us),
        (LinkState.DOWN, cfg.down_after_us),
    ]
    p.prc.send(Heartbeat(), now)
    p.us.receive_data(p.prc.data_to_send(), now)
    assert p.us.link_state is LinkState.UP


def test_heartbeats_measure_round_trip() -> None:
    p = make_pair()
    one_way = 55 * MS
    now = T0
    for _ in range(4):
        now += p.us.config.heartbeat_interval_us
        p.us.handle_timer(now)
        p.prc.receive_data(p.us.data_to_send(), now + one_way)
        p.prc.handle_timer(now + one_way + 10 * MS)
        p.us.receive_data(p.prc.data_to_send(), now + 2 * one_way + 10 * MS)
        p.drain()
    rtts = [e.rtt_us for e in p.of("US", RoundTrip)]
    assert rtts and all(r == 2 * one_way for r in rtts)


def test_every_outgoing_message_is_reported_for_the_log() -> None:
    p = make_pair()
    p.us.send(Query(track(), T0 + MS), T0)
    p.pump(T0)
    sent = p.of("US", MessageSent)
    received = p.of("PRC", MessageReceived)
    assert [s.cose for s in sent] == [r.cose for r in received]


def test_local_misuse_raises() -> None:
    p = make_pair(start=False)
    with pytest.raises(LocalProtocolError, match="state IDLE"):
        p.us.send(Heartbeat(), T0)
    q = make_pair()
    with pytest.raises(LocalProtocolError, match="did not send"):
        q.us.send(answer(7), T0)
    with pytest.raises(LocalProtocolError, match="nonce"):
        make_pair(start=False).us.start(T0, b"short")


def test_transition_table_reaches_every_state_and_closed_is_final() -> None:
    targets = {t for edges in TRANSITIONS.values() for t in edges.values()}
    assert targets | {SessionState.IDLE} == set(SessionState)
    assert TRANSITIONS[SessionState.CLOSED] == {}


def test_a_hello_stamped_long_ago_opens_no_session() -> None:
    """A Hello replayed from a log (or the export) later cannot complete a handshake."""
    p = make_pair(start=False)
    p.prc.start(T0, b"\x02" * 16)
    old_hello = p.prc.data_to_send()
    late = T0 + 61_000_000
    p.us.start(late, b"\x01" * 16)
    p.us.receive_data(old_hello, late)
    p.drain()
    closed = p.of("US", Closed)
    assert closed and closed[0].reason is CloseReason.HANDSHAKE_MISMATCH
    assert "from our clock" in closed[0].detail
    assert p.us.session_id is None


def test_a_replayed_hello_never_brings_a_session_up() -> None:
    """Whoever relays a logged Hello (fresh enough to pass the age check) gets the peer to
    PROVING at most: only the real peer can sign over the new session id, so the session
    closes at the handshake timeout without ever being up."""
    real = make_pair(start=False)
    real.prc.start(T0, b"\x02" * 16)
    logged_hello = real.prc.data_to_send()
    p = make_pair(start=False)
    p.us.start(T0 + 1_000, b"\x01" * 16)
    p.us.receive_data(logged_hello, T0 + 1_000)
    p.drain()
    assert p.us.state is SessionState.PROVING and p.us.link_state is LinkState.DOWN
    assert p.us.established_at is None
    with pytest.raises(LocalProtocolError):
        p.us.send(Heartbeat(), T0 + 2_000)
    # A message from the earlier session (another session id) is no proof.
    real_us = make_pair(start=False).us
    real_us.start(T0, b"\x07" * 16)
    real.prc.receive_data(real_us.data_to_send(), T0)
    p.us.receive_data(real.prc.data_to_send(), T0 + 3_000)
    p.drain()
    assert [r.reason for r in p.of("US", Rejected)] == [RejectReason.WRONG_SESSION]
    p.us.handle_timer(T0 + 1_000 + p.us.config.handshake_timeout_us)
    p.drain()
    closed = p.of("US", Closed)
    assert closed and closed[0].reason is CloseReason.HANDSHAKE_TIMEOUT
    assert "prove liveness" in closed[0].detail
    assert p.of("US", HandshakeComplete) == []
    assert all(c.current is not LinkState.UP for c in p.of("US", LinkStateChanged))


def test_a_lost_proof_is_sent_again_at_the_heartbeat_interval() -> None:
    """Over a transport without Hello re-sends, the proof is re-sent on the heartbeat
    schedule until the peer's in-session message arrives."""
    p = make_pair(start=False)
    p.us.start(T0, b"\x01" * 16)
    p.prc.start(T0, b"\x02" * 16)
    p.us.receive_data(p.prc.data_to_send(), T0)
    p.prc.receive_data(p.us.data_to_send(), T0)  # PRC: Hello and proof, so it is up
    assert p.prc.state is SessionState.UP and p.us.state is SessionState.PROVING
    p.prc.data_to_send()  # PRC's proof is lost
    due = p.us.next_deadline()
    assert due == T0 + p.us.config.heartbeat_interval_us
    p.us.handle_timer(due)
    p.prc.receive_data(p.us.data_to_send(), due)
    p.prc.handle_timer(due)  # PRC answers on its own heartbeat schedule
    p.us.receive_data(p.prc.data_to_send(), due)
    p.drain()
    assert p.us.state is SessionState.UP and p.us.established_at == due
