"""The hotline endpoint: asks, holds per query, answers under disclosure, Hello re-sends."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from clearline.config import default_policy
from clearline.doctrine.registry import Disclosure, OwnAsset
from clearline.gate import Gate, ProposedAction
from clearline.hotline import (
    Answered,
    AssetRegistry,
    Cleared,
    Endpoint,
    EndpointConfig,
    QuerySent,
    Unresolved,
)
from clearline.protocol import codec
from clearline.protocol.events import LinkState
from clearline.protocol.messages import (
    Actor,
    AssetKind,
    AssetRecord,
    AutonomyMode,
    Claim,
    Intent,
    Mission,
    Position,
    Query,
    TrackReport,
    Verdict,
)
from clearline.protocol.signing import Ed25519Signer
from tests.protocol.harness import T0, config

MS = 1000
POLICY = default_policy()
SWARM = OwnAsset(
    AssetRecord(
        "PRC-RS-7",
        AssetKind.RECON_SWARM,
        Mission.RECONNAISSANCE,
        False,
        AutonomyMode.AUTONOMOUS,
        T0,
        position=Position(24_100_123, 122_400_456, 1500),
    ),
    Intent.WITHDRAWING,
)
TRACK = TrackReport("T-0417", Position(24_130_000, 122_380_000, 1400), T0, AssetKind.UNKNOWN)


@dataclass
class Wire:
    """Two endpoints back to back; `drop` decides, frame by frame, what never arrives."""

    us: Endpoint
    prc: Endpoint
    drop: Callable[[str, bytes], bool] = lambda sender, cose: False
    dropped: list[tuple[str, bytes]] = field(default_factory=list)

    def pump(self, now: int) -> None:
        while True:
            moved = False
            for sender, source, sink in (("US", self.us, self.prc), ("PRC", self.prc, self.us)):
                data = source.data_to_send()
                if not data:
                    continue
                moved = True
                for cose in codec.FrameReader().feed(data):
                    if self.drop(sender, cose):
                        self.dropped.append((sender, cose))
                    else:
                        sink.receive_data(codec.frame(cose), now)
            if not moved:
                return

    def tick(self, now: int) -> None:
        for endpoint in (self.us, self.prc):
            deadline = endpoint.next_deadline()
            if deadline is not None and deadline <= now:
                endpoint.handle_timer(now)
        self.pump(now)


def events(endpoint: Endpoint) -> list[object]:
    out = []
    while (event := endpoint.next_event()) is not None:
        out.append(event)
    return out


def make_wire(
    drop: Callable[[str, bytes], bool] | None = None,
    disclosure: Disclosure | None = None,
    connect: bool = True,
    prc_batch: int = 256,
) -> Wire:
    us_key, prc_key = Ed25519Signer.from_label("US"), Ed25519Signer.from_label("PRC")
    registry = AssetRegistry()
    registry.publish(SWARM)
    us = Endpoint(
        EndpointConfig(config("US", "PRC")),
        us_key,
        prc_key.verifier(),
        AssetRegistry(),
        gate=Gate(POLICY),
    )
    prc = Endpoint(
        EndpointConfig(config("PRC", "US", batch=prc_batch), disclosure=disclosure or Disclosure()),
        prc_key,
        us_key.verifier(),
        registry,
    )
    wire = Wire(us, prc) if drop is None else Wire(us, prc, drop)
    if connect:
        us.connect(T0, b"\x01" * 16)
        prc.connect(T0, b"\x02" * 16)
        wire.pump(T0)
    return wire


def kinetic(gate: Gate, now: int) -> Verdict:
    act = ProposedAction("a", Actor.AUTONOMOUS, "intercept-uncrewed", "air", TRACK.track_id)
    return gate.propose(act, now).verdict


def test_an_ask_is_cleared_by_a_disclosed_answer_and_everything_is_logged() -> None:
    wire = make_wire(disclosure=Disclosure(reveal_identity=False, position_precision_m=1000))
    assert wire.us.link_state is LinkState.UP
    events(wire.us)
    ask = wire.us.ask(TRACK, T0 + 10 * MS)
    sent = [e for e in events(wire.us) if isinstance(e, QuerySent)]
    assert [(e.ask, e.track_id) for e in sent] == [(ask, "T-0417")]
    assert wire.us.gate is not None and kinetic(wire.us.gate, T0 + 20 * MS) is Verdict.HOLD
    wire.pump(T0 + 65 * MS)
    answered = [e for e in events(wire.prc) if isinstance(e, Answered)]
    assert answered[0].matched == SWARM
    cleared = [e for e in events(wire.us) if isinstance(e, Cleared)]
    assert len(cleared) == 1 and cleared[0].ask == ask
    answer = cleared[0].answer
    assert answer.claim is Claim.OURS and answer.intent is Intent.WITHDRAWING
    assert answer.asset_id is None  # withheld by the disclosure policy
    assert answer.position is not None and answer.position != SWARM.record.position
    assert abs(answer.position.lat_e6 - SWARM.record.position.lat_e6) <= 4_505  # 500 m
    assert codec.parse_envelope(cleared[0].cose).payload  # the exact signed bytes
    assert kinetic(wire.us.gate, T0 + 70 * MS) is Verdict.ALLOW  # hold released
    logged = wire.us.log_entries()
    kinds = [(e.sent, e.message.type.value) for e in logged]
    handshake = [(True, "hello"), (False, "hello"), (True, "ready"), (False, "ready")]
    assert sorted(kinds[:4]) == sorted(handshake)  # each side's liveness proof is logged
    assert kinds[4:] == [(True, "query"), (False, "answer")]
    assert logged[-1].cose == cleared[0].cose
    assert [e.message.type.value for e in wire.prc.log_entries()][4:] == ["query", "answer"]


def test_two_queries_on_one_track_each_hold_on_their_own() -> None:
    """The first query's answer must not release the second query's hold."""
    answers_seen: list[bytes] = []

    def second_answer_lost(sender: str, cose: bytes) -> bool:
        message = codec.decode_payload(codec.parse_envelope(cose).payload)
        if sender == "PRC" and message.type.value == "answer":
            answers_seen.append(cose)
            return len(answers_seen) == 2
        return False

    wire = make_wire(drop=second_answer_lost)
    gate = wire.us.gate
    assert gate is not None
    wire.us.ask(TRACK, T0 + 10 * MS, ttl_us=2_000 * MS)
    wire.us.ask(TRACK, T0 + 20 * MS, ttl_us=3_000 * MS)
    wire.pump(T0 + 100 * MS)
    cleared = [e for e in events(wire.us) if isinstance(e, Cleared)]
    assert len(cleared) == 1
    assert gate.context.open_clarifications == {"T-0417": T0 + 3_020 * MS}
    assert kinetic(gate, T0 + 200 * MS) is Verdict.HOLD
    wire.tick(T0 + 3_020 * MS)
    unresolved = [e for e in events(wire.us) if isinstance(e, Unresolved)]
    assert [u.reason for u in unresolved] == ["expired"]
    assert gate.context.open_clarifications == {}


def test_a_lost_hello_is_sent_again_until_the_peer_shows_it_has_one() -> None:
    lost: list[str] = []

    def first_us_hello_lost(sender: str, cose: bytes) -> bool:
        message = codec.decode_payload(codec.parse_envelope(cose).payload)
        if sender == "US" and message.type.value == "hello" and not lost:
            lost.append("hello")
            return True
        return False

    wire = make_wire(drop=first_us_hello_lost)
    assert wire.prc.link_state is not LinkState.UP
    ask = wire.us.ask(TRACK, T0 + 10 * MS, persistent=True)  # PRC cannot answer yet
    now = T0
    for _ in range(20):
        deadline = min(d for d in (wire.us.next_deadline(), wire.prc.next_deadline()) if d)
        now = deadline
        wire.tick(now)
        if wire.prc.link_state is LinkState.UP:
            break
    assert wire.prc.link_state is LinkState.UP
    assert now - T0 < 1_000 * MS  # the first re-send, 250 ms after the first Hello
    # The Hello re-sent is the one logged: nothing new to log, nothing rejected.
    hellos = [e for e in wire.us.log_entries() if e.message.type.value == "hello" and e.sent]
    assert len(hellos) == 1
    rejected = [e for e in events(wire.prc) if type(e).__name__ == "Rejected"]
    assert rejected == [] or all("query" not in str(r) for r in rejected)
    # The query sent while PRC had no session was refused there; the retry-less ask expires
    # unless the link is up again: here the link never went down, so the ask expired.
    assert ask is not None


def test_an_ask_made_before_the_link_is_up_is_sent_when_it_comes_up() -> None:
    wire = make_wire(connect=False)
    one_shot = wire.us.ask(TRACK, T0)
    persistent = wire.us.ask(TRACK, T0, persistent=True)
    before = events(wire.us)
    assert [(e.ask, e.reason) for e in before if isinstance(e, Unresolved)] == [
        (one_shot, "the hotline is not up")
    ]
    wire.us.connect(T0 + 5 * MS, b"\x01" * 16)
    wire.prc.connect(T0 + 5 * MS, b"\x02" * 16)
    wire.pump(T0 + 60 * MS)
    wire.pump(T0 + 120 * MS)
    after = events(wire.us)
    assert [e.ask for e in after if isinstance(e, QuerySent)] == [persistent]
    assert [e.ask for e in after if isinstance(e, Cleared)] == [persistent]


def test_a_persistent_ask_survives_a_lost_link_and_a_one_shot_ask_ends() -> None:
    wire = make_wire(drop=lambda sender, cose: sender == "US" and b"query" in cose)
    one_shot = wire.us.ask(TRACK, T0 + MS)
    persistent = wire.us.ask(TRACK, T0 + MS, persistent=True)
    wire.pump(T0 + MS)
    events(wire.us)
    wire.us.close(T0 + 10 * MS)
    wire.prc.close(T0 + 10 * MS)
    ended = [e for e in events(wire.us) if isinstance(e, Unresolved)]
    assert [(e.ask, e.reason) for e in ended] == [(one_shot, "link lost")]
    assert wire.us.gate is not None and wire.us.gate.context.open_clarifications == {}
    wire.drop = lambda sender, cose: False
    wire.us.connect(T0 + 20 * MS, b"\x03" * 16)
    wire.prc.connect(T0 + 20 * MS, b"\x04" * 16)
    wire.pump(T0 + 80 * MS)
    wire.pump(T0 + 140 * MS)
    cleared = [e for e in events(wire.us) if isinstance(e, Cleared)]
    assert [e.ask for e in cleared] == [persistent]


def test_an_expired_query_is_retried_as_a_new_query() -> None:
    queries: list[bytes] = []

    def first_query_lost(sender: str, cose: bytes) -> bool:
        message = codec.decode_payload(codec.parse_envelope(cose).payload)
        if isinstance(message.body, Query):
            queries.append(cose)
            return len(queries) == 1
        return False

    wire = make_wire(drop=first_query_lost)
    wire.us.ask(TRACK, T0 + MS, ttl_us=500 * MS, retries=1)
    wire.pump(T0 + MS)
    wire.tick(T0 + 501 * MS)
    seen = events(wire.us)
    sent = [e for e in seen if isinstance(e, QuerySent)]
    assert [e.retry for e in sent] == [0, 1]
    assert sent[0].query_seq != sent[1].query_seq
    assert [type(e).__name__ for e in seen if isinstance(e, Cleared | Unresolved)] == ["Cleared"]


def _swarm(n: int) -> list[TrackReport]:
    """`n` tracks; the first is where PRC's swarm is, the others far from anything of PRC's."""
    far = Position(10_000_000, 100_000_000, 1000)
    return [TRACK] + [
        TrackReport(f"T-{i:04d}", far, T0, AssetKind.RECON_SWARM) for i in range(1, n)
    ]


def test_a_swarm_is_asked_in_few_queries_and_cleared_track_by_track() -> None:
    wire = make_wire()
    events(wire.us)
    tracks = _swarm(300)
    asks = wire.us.ask_many(tracks, T0 + 10 * MS)
    assert None not in asks
    sent = [e for e in events(wire.us) if isinstance(e, QuerySent)]
    assert len({e.query_seq for e in sent}) == 2  # 256 + 44: the peer takes 256 per query
    assert wire.us.gate is not None
    assert len(wire.us.gate.context.open_clarifications) == 300
    assert kinetic(wire.us.gate, T0 + 20 * MS) is Verdict.HOLD
    wire.pump(T0 + 65 * MS)
    cleared = [e for e in events(wire.us) if isinstance(e, Cleared)]
    assert [e.track_id for e in cleared] == [t.track_id for t in tracks]
    assert cleared[0].answer.claim is Claim.OURS
    assert {e.answer.claim for e in cleared[1:]} == {Claim.NOT_OURS}
    assert len(wire.us.gate.context.open_clarifications) == 0
    assert wire.us.open_asks == 0
    answered = [e for e in events(wire.prc) if isinstance(e, Answered)]
    assert [e.item for e in answered[:3]] == [0, 1, 2] and answered[0].matched == SWARM
    logged = [e.message.type.value for e in wire.us.log_entries()][4:]
    assert logged == ["query", "query", "answers", "answers"]


def test_a_peer_that_takes_one_track_per_query_is_asked_one_by_one() -> None:
    """A peer whose ready says 1 (or, a peer from before ready, which says nothing)."""
    wire = make_wire(prc_batch=1)
    events(wire.us)
    wire.us.ask_many(_swarm(5), T0 + 10 * MS)
    sent = [e for e in events(wire.us) if isinstance(e, QuerySent)]
    assert len({e.query_seq for e in sent}) == 5
    wire.pump(T0 + 65 * MS)
    assert len([e for e in events(wire.us) if isinstance(e, Cleared)]) == 5


def test_one_track_of_a_swarm_asked_twice_goes_in_two_queries() -> None:
    wire = make_wire()
    events(wire.us)
    wire.us.ask_many([TRACK, TRACK], T0 + 10 * MS)
    sent = [e for e in events(wire.us) if isinstance(e, QuerySent)]
    assert len({e.query_seq for e in sent}) == 2
    wire.pump(T0 + 65 * MS)
    assert len([e for e in events(wire.us) if isinstance(e, Cleared)]) == 2


def test_an_expired_swarm_query_is_retried_as_one_query() -> None:
    cut = [False]
    wire = make_wire(drop=lambda sender, cose: cut[0] and sender == "PRC")
    cut[0] = True  # after the handshake: nothing PRC says arrives
    events(wire.us)
    wire.us.ask_many(_swarm(10), T0 + 10 * MS, ttl_us=100 * MS, retries=1)
    wire.pump(T0 + 10 * MS)
    first = {e.query_seq for e in events(wire.us) if isinstance(e, QuerySent)}
    wire.tick(T0 + 110 * MS)
    retried = [e for e in events(wire.us) if isinstance(e, QuerySent)]
    assert len(first) == 1 and len({e.query_seq for e in retried}) == 1
    assert [e.retry for e in retried] == [1] * 10
    wire.tick(T0 + 210 * MS)
    unresolved = [e for e in events(wire.us) if isinstance(e, Unresolved)]
    assert len(unresolved) == 10 and {e.reason for e in unresolved} == {"expired"}
    assert wire.us.gate is not None and len(wire.us.gate.context.open_clarifications) == 0
