"""Deterministic simulation testing of the hotline, in the manner of TigerBeetle's VOPR.

One seed draws a fault profile (delay, jitter, loss, duplication, reordering,
partitions), a workload (queries with random deadlines, peers that answer at
once, late or never, autonomous and human actions of every rung in every domain)
and runs the real `Session` pair and the real `Gate`s on the simulator's kernel.
After every single event the promises in docs/reliability.md are checked as
invariants; the first one broken stops the run with the seed that reproduces it.

    clearline sim dst --seeds 1000          # a longer swarm, by hand
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from clearline.config import default_policy
from clearline.gate import Gate, GateDecision, Policy, ProposedAction
from clearline.gate.authority import open_approval, sign_approval
from clearline.hotline import (
    AssetRegistry,
    Cleared,
    Endpoint,
    EndpointConfig,
    QuerySent,
    Unresolved,
    Waiting,
)
from clearline.protocol import codec
from clearline.protocol.constants import MAX_FRAME_SIZE, REPLAY_WINDOW
from clearline.protocol.events import (
    Closed,
    LinkState,
    MessageReceived,
    MessageSent,
)
from clearline.protocol.messages import (
    Actor,
    Answer,
    Answers,
    Approval,
    ApprovalScope,
    AssetKind,
    Claim,
    Micros,
    Position,
    TrackReport,
)
from clearline.protocol.session import SessionConfig
from clearline.protocol.signing import Ed25519Signer
from clearline.sim.kernel import Callback, Kernel
from clearline.sim.network import Partitions, SimLink
from clearline.sim.officers import officers_of
from clearline.sim.outcomes import InvariantError
from clearline.sim.rng import Streams
from clearline.sim.scenario import NetworkSpec, RandomPartitions
from clearline.sim.signers import make_signer

S = 1_000_000
MS = 1_000
SIDES = ("US", "PRC")
LIVELOCK_EVENTS = 100_000
DOMAINS = ("air", "maritime", "land", "space", "cyber", "nuclear-c2", "unknown-domain")


@dataclass(frozen=True)
class FaultProfile:
    network: NetworkSpec
    query_rate_per_s: float
    action_rate_per_s: float
    ttl_ms: tuple[float, float]
    answer_never: float
    answer_late: float
    corrupt: float
    """Chance that a delivered chunk has one byte flipped (a broken middlebox, a bad NIC)."""
    garbage_per_s: float
    """Rate at which an attacker on the path injects an unframeable chunk into one side."""

    @classmethod
    def draw(cls, rng: random.Random) -> FaultProfile:
        partitions = None
        if rng.random() < 0.6:
            partitions = RandomPartitions(
                rate_per_hour=rng.uniform(10, 600), min_s=0.5, mean_s=rng.uniform(0.5, 15)
            )
        network = NetworkSpec(
            one_way_ms=rng.choice([0.0, 1.0, 20.0, 55.0, 150.0, 400.0]),
            jitter_ms=rng.choice([0.0, 1.0, 10.0, 100.0]),
            loss=rng.choice([0.0, 0.0, 0.01, 0.1, 0.4]),
            duplicate=rng.choice([0.0, 0.01, 0.2]),
            reorder=rng.choice([0.0, 0.05, 0.3]),
            reorder_ms=rng.choice([5.0, 50.0, 500.0]),
            random_partitions=partitions,
        )
        low = rng.choice([10.0, 100.0, 1000.0])
        return cls(
            network,
            query_rate_per_s=rng.uniform(0.1, 20),
            action_rate_per_s=rng.uniform(0.1, 20),
            ttl_ms=(low, low * rng.choice([1.0, 3.0, 20.0])),
            answer_never=rng.choice([0.0, 0.1, 0.5]),
            answer_late=rng.choice([0.0, 0.1, 0.5]),
            corrupt=rng.choice([0.0, 0.0, 0.0, 0.001, 0.01]),
            garbage_per_s=rng.choice([0.0, 0.0, 0.0, 0.02, 0.2]),
        )


@dataclass
class _Query:
    side: str
    seq: int
    deadline: Micros
    sent_at: Micros
    tracks: int = 0
    """How many asks the query carries (a swarm's query carries several)."""
    ended: list[tuple[str, Micros]] = field(default_factory=list)
    """One end per track: all the same, since a query is answered or expires as a whole."""


@dataclass
class DstResult:
    seed: int
    events: int
    queries: int
    answered: int
    expired: int
    decisions: int
    closed: int
    messages: int


class _CheckedKernel(Kernel):
    """The kernel, with the invariants checked after every event."""

    check: Callable[[], None] = staticmethod(lambda: None)

    def at(self, when: Micros, callback: Callback, priority: int = 0) -> None:
        def run() -> None:
            callback()
            self.check()

        super().at(when, run, priority)


class Run:
    def __init__(self, seed: int, horizon_s: float = 60.0, policy: Policy | None = None) -> None:
        self.seed = seed
        self.streams = Streams(seed, 0)
        self.profile = FaultProfile.draw(self.streams("profile"))
        self.policy = policy or default_policy()
        self.kernel = _CheckedKernel()
        self.kernel.check = self.check
        self.horizon: Micros = int(horizon_s * S)
        self.endpoints: dict[str, Endpoint] = {}
        self.gates: dict[str, Gate] = {}
        self.links: dict[str, SimLink] = {}
        self.timer_at: dict[str, Micros | None] = dict.fromkeys(SIDES)
        self.last_heard: dict[str, Micros] = dict.fromkeys(SIDES, 0)
        self.queries: dict[tuple[str, int], _Query] = {}
        self.ask_query: dict[tuple[str, int], int] = {}
        """(side, ask) -> the seq of its query on the wire (test bookkeeping)."""
        self.decisions: list[tuple[str, ProposedAction, GateDecision, Micros]] = []
        self.events = 0
        self.closed = 0
        self._last_check_at: Micros = -1
        self._same_instant = 0
        configs = {
            "US": SessionConfig("US", "PRC", self.policy.hash),
            "PRC": SessionConfig("PRC", "US", self.policy.hash),
        }
        keys = {side: make_signer("keyed-hash", f"dst {side}") for side in SIDES}
        partitions = Partitions.draw(self.profile.network, self.horizon, self.streams("partitions"))
        for side, peer in (("US", "PRC"), ("PRC", "US")):
            self.gates[side] = Gate(self.policy, roster=officers_of(side).roster)
            self.endpoints[side] = Endpoint(
                EndpointConfig(configs[side]),
                keys[side][0],
                keys[peer][1],
                AssetRegistry(),
                self.gates[side],
                partial(self._any_claim, side),
            )
        for side, peer in (("US", "PRC"), ("PRC", "US")):
            self.links[side] = SimLink(
                self.kernel,
                self.profile.network,
                partitions,
                self.streams(f"net {side}"),
                partial(self._deliver, peer),
            )

    def fail(self, what: str) -> InvariantError:
        return InvariantError(
            f"seed {self.seed}, t={self.kernel.now} us: {what} "
            f"(reproduce: clearline sim dst --start {self.seed} --seeds 1)"
        )

    # -- driving -------------------------------------------------------------------

    def run(self) -> DstResult:
        for side in SIDES:
            self.endpoints[side].connect(0, self.streams(f"nonce {side}").randbytes(16))
            self._pump(side)
        self._schedule_poisson("queries", self.profile.query_rate_per_s, self._random_query)
        self._schedule_poisson("actions", self.profile.action_rate_per_s, self._random_action)
        if self.profile.garbage_per_s:
            self._schedule_poisson("garbage", self.profile.garbage_per_s, self._inject_garbage)
        self.kernel.run(self.horizon)
        # Liveness: at the end every query whose deadline has passed has ended.
        self.kernel.run(self.horizon + int(self.profile.ttl_ms[1] * MS) + 1)
        self.check(final=True)
        return DstResult(
            self.seed,
            self.events,
            len(self.queries),
            sum(1 for q in self.queries.values() if q.ended and q.ended[0][0] == "answered"),
            sum(1 for q in self.queries.values() if q.ended and q.ended[0][0] == "expired"),
            len(self.decisions),
            self.closed,
            sum(link.stats.sent for link in self.links.values()),
        )

    def _schedule_poisson(self, name: str, rate: float, action: Callable[[], None]) -> None:
        rng = self.streams(name)

        def fire() -> None:
            action()
            later = self.kernel.now + int(rng.expovariate(rate) * S)
            if later < self.horizon:
                self.kernel.at(later, fire)

        self.kernel.at(int(rng.expovariate(rate) * S), fire)

    def _random_query(self) -> None:
        rng = self.streams("query choices")
        side = rng.choice(SIDES)
        now = self.kernel.now
        ttl = int(rng.uniform(*self.profile.ttl_ms) * MS)
        # One track, or now and then a swarm of them (possibly naming a track twice, which
        # the endpoint must split across queries).
        size = 1 if rng.random() < 0.8 else rng.randrange(2, 8)
        tracks = [
            TrackReport(
                f"T{rng.randrange(20)}", Position(0, 0, 0), now, rng.choice(list(AssetKind))
            )
            for _ in range(size)
        ]
        self.endpoints[side].ask_many(
            tracks, now, ttl, retries=rng.randrange(2), persistent=rng.random() < 0.3
        )
        self._pump(side)

    def _random_action(self) -> None:
        rng = self.streams("action choices")
        side = rng.choice(SIDES)
        rungs = [r.name for r in self.policy.ladder] + ["no-such-rung"]
        actor = Actor.HUMAN if rng.random() < 0.1 else Actor.AUTONOMOUS
        action_id = f"{side}-{len(self.decisions)}"
        rung, domain, target = rng.choice(rungs), rng.choice(DOMAINS), f"T{rng.randrange(20)}"
        now = self.kernel.now
        approvals = _random_approvals(rng, side, self.policy, action_id, rung, domain, target, now)
        action = ProposedAction(action_id, actor, rung, domain, target, approvals)
        decision = self.gates[side].propose(action, now)
        self.decisions.append((side, action, decision, now))
        self._check_decision(side, action, decision, now)

    def _check_human(
        self, side: str, action: ProposedAction, decision: GateDecision, domain: str, now: Micros
    ) -> None:
        """Re-check, independently of the gate, that an allowed human act was approved."""
        policy = self.policy
        roster = officers_of(side).roster
        kids = set()
        for approval in decision.approvals:
            checked = open_approval(roster, approval.cose)
            body = checked.body
            if not body.not_before <= now <= body.not_after or body.domain != action.domain:
                raise self.fail(f"{side}: {action.action_id} allowed on an approval not for it")
            if body.action_id is not None and body.action_id != action.action_id:
                raise self.fail(f"{side}: {action.action_id} allowed on another act's approval")
            kids.add(checked.officer_kid)
        if len(kids) != len(decision.approvals) or not kids:
            raise self.fail(f"{side}: human act {action.action_id} without distinct officers")
        needed = policy.officers_required(action.rung, action.domain)
        if needed:
            standing = [a for a in decision.approvals if a.body.action_id is None]
            if standing or len(kids) < needed:
                raise self.fail(
                    f"{side}: {action.rung} in {domain} allowed with {len(kids)} approvals"
                )

    def _inject_garbage(self) -> None:
        rng = self.streams("garbage choices")
        side = rng.choice(SIDES)
        self._deliver(side, b"\x00\x00\x00\x00" + rng.randbytes(rng.randrange(40)))

    def _any_claim(self, side: str, seq: int, found: object, answer: Answer) -> Answer:
        """A counterpart whose claims are arbitrary: the session must not care."""
        return Answer(seq, self.streams(f"answers {side}").choice(list(Claim)))

    def _answer_fate(self, side: str) -> Micros | None:
        """None: the answer is never sent; else its extra delay (0 for at once)."""
        rng = self.streams(f"answers {side}")
        roll = rng.random()
        if roll < self.profile.answer_never:
            return None
        if roll < self.profile.answer_never + self.profile.answer_late:
            return int(rng.uniform(0, 2 * self.profile.ttl_ms[1]) * MS)
        return 0

    # -- plumbing ----------------------------------------------------------------------

    def _deliver(self, side: str, data: bytes) -> None:
        rng = self.streams(f"corruption {side}")
        if self.profile.corrupt and rng.random() < self.profile.corrupt:
            flipped = bytearray(data)
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
            data = bytes(flipped)
        self.endpoints[side].receive_data(data, self.kernel.now)
        self._pump(side)

    def _pump(self, side: str) -> None:
        endpoint = self.endpoints[side]
        endpoint.log_entries()
        now = self.kernel.now
        answers: set[bytes] = set()
        while (event := endpoint.next_event()) is not None:
            self.events += 1
            if isinstance(event, MessageReceived):
                self.last_heard[side] = event.received_at
            elif isinstance(event, MessageSent) and isinstance(
                event.message.body, Answer | Answers
            ):
                answers.add(event.cose)
            elif isinstance(event, QuerySent):
                previous = self.ask_query.get((side, event.ask))
                if previous is not None:  # a retry: the previous query expired
                    self._end(side, previous, "expired")
                self.ask_query[(side, event.ask)] = event.query_seq
                query = self.queries.setdefault(
                    (side, event.query_seq), _Query(side, event.query_seq, event.deadline, now)
                )
                query.tracks += 1
            elif isinstance(event, Cleared):
                self._end(side, event.query_seq, "answered")
                self.ask_query.pop((side, event.ask), None)
            elif isinstance(event, Unresolved):
                if event.query_seq is not None:
                    self._end(side, event.query_seq, "expired")
                self.ask_query.pop((side, event.ask), None)
            elif isinstance(event, Waiting):
                self._end(side, event.query_seq, "expired")
                self.ask_query.pop((side, event.ask), None)
            elif isinstance(event, Closed):
                self.closed += 1
        data = endpoint.data_to_send()
        if data:
            self._send(side, data, answers)
        deadline = endpoint.next_deadline()
        if deadline is not None and deadline != self.timer_at[side]:
            self.timer_at[side] = deadline
            self.kernel.at(max(deadline, self.kernel.now), partial(self._tick, side, deadline))

    def _send(self, side: str, data: bytes, answers: set[bytes]) -> None:
        """Ship the endpoint's bytes; its answers meet their fate (never, late, at once)."""
        if not answers:
            self.links[side].send(data)
            return
        at_once = bytearray()
        for cose in codec.FrameReader().feed(data):
            delay = self._answer_fate(side) if cose in answers else 0
            if delay is None:
                continue
            if delay == 0:
                at_once += codec.frame(cose)
            else:
                later = codec.frame(cose)
                self.kernel.at(self.kernel.now + delay, partial(self.links[side].send, later))
        if at_once:
            self.links[side].send(bytes(at_once))

    def _end(self, side: str, seq: int, kind: str) -> None:
        query = self.queries.get((side, seq))
        if query is None:
            raise self.fail(f"{side} ended query {seq}, which it never sent")
        query.ended.append((kind, self.kernel.now))

    def _tick(self, side: str, when: Micros) -> None:
        if self.timer_at[side] != when:
            return
        self.timer_at[side] = None
        self.endpoints[side].handle_timer(self.kernel.now)
        self._pump(side)

    # -- the promises ----------------------------------------------------------------------

    def check(self, final: bool = False) -> None:
        now = self.kernel.now
        if now == self._last_check_at:
            self._same_instant += 1
            if self._same_instant > LIVELOCK_EVENTS:
                raise self.fail(f"{LIVELOCK_EVENTS} events without the clock moving (livelock)")
        else:
            self._last_check_at, self._same_instant = now, 0
        for query in self.queries.values():
            if len(query.ended) > query.tracks or len(set(query.ended)) > 1:
                raise self.fail(
                    f"{query.side} query {query.seq} of {query.tracks} track(s) ended "
                    f"more than once: {query.ended}"
                )
            if query.ended:
                kind, at = query.ended[0]
                if kind == "answered" and at >= query.deadline:
                    raise self.fail(f"{query.side} query {query.seq} answered after its deadline")
                if kind == "expired" and at > query.deadline:
                    raise self.fail(
                        f"{query.side} query {query.seq} expired {at - query.deadline} us late"
                    )
            elif now > query.deadline:
                raise self.fail(
                    f"{query.side} query {query.seq} is still open {now - query.deadline} us "
                    "after its deadline"
                )
        for side in SIDES:
            endpoint = self.endpoints[side]
            session = endpoint.session
            assert session is not None
            holds: dict[str, Micros] = {}
            for _, track, deadline in endpoint.open_queries():
                holds[track] = max(deadline, holds.get(track, deadline))
            if self.gates[side].context.open_clarifications != holds:
                raise self.fail(
                    f"{side} gate holds {dict(self.gates[side].context.open_clarifications)}, "
                    f"the open queries {holds}"
                )
            gate_link = self.gates[side].context.link
            if gate_link is not session.link_state:
                raise self.fail(
                    f"{side} gate sees the link {gate_link.value}, the session "
                    f"{session.link_state.value}"
                )
            if session.established:
                quiet = now - self.last_heard[side]
                cfg = session.config
                if quiet > cfg.down_after_us and session.link_state is not LinkState.DOWN:
                    raise self.fail(f"{side} heard nothing for {quiet} us but the link is not down")
                if quiet > cfg.degraded_after_us and session.link_state is LinkState.UP:
                    raise self.fail(f"{side} heard nothing for {quiet} us but the link is up")
            if len(session.open_queries) > len(self.queries):
                raise self.fail(f"{side} holds more open queries than were sent")
            # Bounded memory, whatever arrives (internals read on purpose: this is the test).
            if session._window._seen.bit_length() > REPLAY_WINDOW:
                raise self.fail(f"{side} replay window grew past {REPLAY_WINDOW}")
            if session._reader.buffered > MAX_FRAME_SIZE + 4:
                raise self.fail(f"{side} buffers more than one frame")
        if final:
            for query in self.queries.values():
                if not query.ended and now > query.deadline:
                    raise self.fail(f"{query.side} query {query.seq} never ended")

    def _check_decision(
        self, side: str, action: ProposedAction, decision: GateDecision, now: Micros
    ) -> None:
        policy = self.policy
        domain = (
            policy.domain_of(action.rung, action.domain)
            if action.rung in policy.rungs
            else action.domain
        )
        if not decision.allowed or action.actor is not Actor.AUTONOMOUS:
            if decision.allowed and action.actor is Actor.HUMAN:
                self._check_human(side, action, decision, domain, now)
            return
        if domain in policy.exclusions:
            raise self.fail(f"{side}: autonomous {action.rung} allowed in {domain}")
        rung = policy.rungs[action.rung]
        if rung.score <= 0:
            return
        index = policy.rung_index[action.rung]
        if index > policy.rung_index[policy.autonomy_cap]:
            raise self.fail(f"{side}: autonomous {action.rung} allowed above the autonomy cap")
        link = self.gates[side].context.link
        if link is not LinkState.UP:
            cap = (
                policy.fail_safe.degraded_cap
                if link is LinkState.DEGRADED
                else (policy.fail_safe.down_cap)
            )
            if index > policy.rung_index[cap]:
                raise self.fail(f"{side}: {action.rung} allowed above the fail-safe cap ({link})")
        open_deadline = self.gates[side].context.open_clarifications.get(action.target or "")
        if rung.kinetic and open_deadline is not None and now < open_deadline:
            raise self.fail(f"{side}: kinetic {action.rung} allowed through an open clarification")


def run_seed(seed: int, horizon_s: float = 60.0) -> DstResult:
    return Run(seed, horizon_s).run()


def _random_approvals(
    rng: random.Random,
    side: str,
    policy: Policy,
    action_id: str,
    rung: str,
    domain: str,
    target: str,
    now: Micros,
) -> tuple[bytes, ...]:
    """Approvals as a careless or dishonest caller might present them: right, for another
    act, standing for anything, expired, duplicated, or signed by someone not enrolled."""
    officers = officers_of(side)
    ladder_rung = rung if rung in policy.rungs else policy.ladder[-1].name
    out: list[bytes] = []
    for _ in range(rng.randrange(4)):
        kind = rng.randrange(6)
        signer = officers.signers[rng.randrange(len(officers.signers))]
        if kind == 5:
            signer = Ed25519Signer.from_label(f"{side} impostor")
        scope = ApprovalScope.STANDING if kind in (2, 3) else ApprovalScope.ACTION
        until = max(0, now + rng.choice([-1, 1, 3]) * (policy.approvals.max_validity_ms * 500))
        body = Approval(
            scope,
            ladder_rung if kind != 3 else policy.ladder[-1].name,
            domain,
            min(now, until),
            max(now, until),
            (action_id if kind != 1 else f"{action_id}-other")
            if scope is ApprovalScope.ACTION
            else None,
            target,
        )
        out.append(sign_approval(signer, side, body, now))
    return tuple(out)
