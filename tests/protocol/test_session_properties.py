"""Randomised: clarifications always end exactly once, by their deadline; bad bytes never raise."""

from __future__ import annotations

import heapq

from hypothesis import given, settings
from hypothesis import strategies as st

from clearline.protocol import codec
from clearline.protocol.events import (
    ClarificationAnswered,
    ClarificationExpired,
    Closed,
    MessageReceived,
)
from clearline.protocol.messages import (
    Answer,
    AssetKind,
    Claim,
    Position,
    Query,
    TrackReport,
)
from clearline.protocol.session import SessionState
from tests.protocol.harness import T0, make_pair

MS = 1_000


@settings(max_examples=60, deadline=None)
@given(
    n_queries=st.integers(1, 8),
    delays=st.lists(st.integers(0, 400), min_size=64, max_size=64),
    fates=st.lists(st.sampled_from(["deliver", "drop", "duplicate"]), min_size=64, max_size=64),
    ttl=st.integers(50, 500),
)
def test_each_query_ends_exactly_once_by_its_deadline(
    n_queries: int, delays: list[int], fates: list[str], ttl: int
) -> None:
    p = make_pair()
    sessions = {"US": p.us, "PRC": p.prc}
    peer = {"US": "PRC", "PRC": "US"}
    pending: list[tuple[int, int, str, bytes]] = []  # (time, order, to, frame)
    order = 0
    deadlines: dict[int, int] = {}
    outcome: dict[int, list[str]] = {}

    def ship(sender: str, now: int) -> None:
        nonlocal order
        data = sessions[sender].data_to_send()
        reader = codec.FrameReader()
        for raw in reader.feed(data):
            fate, delay = fates[order % 64], delays[order % 64] * MS
            copies = {"deliver": 1, "drop": 0, "duplicate": 2}[fate]
            for _ in range(copies):
                order += 1
                heapq.heappush(pending, (now + delay, order, peer[sender], codec.frame(raw)))

    for i in range(n_queries):
        now = T0 + i * 20 * MS
        q = TrackReport(f"T-{i}", Position(0, 0, 0), now, AssetKind.UNKNOWN)
        sent = p.us.send(Query(q, now + ttl * MS), now)
        deadlines[sent.message.seq] = now + ttl * MS
        ship("US", now)

    now = T0
    for _ in range(10_000):
        timers = [s.next_deadline() for s in sessions.values()]
        candidates = [t for t in timers if t is not None]
        if pending:
            candidates.append(pending[0][0])
        if not candidates or now > T0 + 10_000 * MS:
            break
        now = max(now, min(candidates))
        while pending and pending[0][0] <= now:
            _, _, to, frame = heapq.heappop(pending)
            sessions[to].receive_data(frame, now)
        for name, session in sessions.items():
            session.handle_timer(now)
            while (event := session.next_event()) is not None:
                if name == "PRC" and isinstance(event, MessageReceived):
                    body = event.message.body
                    if isinstance(body, Query):
                        session.send(Answer(event.message.seq, Claim.NOT_OURS), now)
                if isinstance(event, ClarificationAnswered):
                    assert event.at < deadlines[event.query_seq]
                    outcome.setdefault(event.query_seq, []).append("answered")
                if isinstance(event, ClarificationExpired):
                    assert event.at == deadlines[event.query_seq]
                    outcome.setdefault(event.query_seq, []).append("expired")
                assert not isinstance(event, Closed)
            ship(name, now)
        if len(outcome) == n_queries and not p.us.open_queries:
            break
    assert sorted(outcome) == sorted(deadlines)
    assert all(len(v) == 1 for v in outcome.values()), outcome


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.booleans())
def test_arbitrary_bytes_never_raise(data: bytes, framed: bool) -> None:
    p = make_pair()
    p.us.receive_data(codec.frame(data) if framed and data else data, T0)
    p.drain()
    assert p.us.state in (SessionState.UP, SessionState.CLOSED)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_single_byte_change_to_a_valid_frame_is_refused(data: st.DataObject) -> None:
    p = make_pair()
    q = TrackReport("T-1", Position(1, 2, 3), T0, AssetKind.RECON_SWARM, 3)
    p.prc.send(Query(q, T0 + 1_000 * MS), T0)
    frame = bytearray(p.prc.data_to_send())
    index = data.draw(st.integers(4, len(frame) - 1), label="index")
    frame[index] ^= data.draw(st.integers(1, 255), label="xor")
    p.us.receive_data(bytes(frame), T0)
    p.drain()
    assert not p.of("US", MessageReceived)[2:]  # only the Hello and the liveness proof
