"""One episode: two sides' sensors, models, doctrine, humans, gate and hotline, on the kernel.

The hotline is each side's real endpoint (`clearline.hotline`, the node's own
glue around the Session) and the gate is the real `gate.Gate`; the rest is model:
outcomes and arms in `outcomes.py`, kinematics and tracks in `world.py`, what a
side believes and proposes in `belief.py`, its commander in `humans.py`, officers
in `officers.py`. This module runs them together. The story of an episode
(docs/scenarios.md has the parameters):

1. Assets appear; the other side's sensors detect each after a few scans, with
   position noise. Spoofed tracks and false alarms appear the same way.
2. The detecting side's predictive model reads the track: a confusion draw for
   what it is taken to be, then a threat score (base threat of that kind times
   the side's weight for what it threatens, plus bias, drift and noise).
3. Its doctrine proposes a rung. With the hotline, it asks the counterpart at
   once; with the gate, a kinetic action on that track is held while the query
   is open. After its reaction time, autonomy acts on its current belief.
4. The counterpart's node answers from its own asset registry at once, truthfully
   or, for a real attack, with a cover story, per its doctrine. The asker fuses
   its model's score with the answer by its trust in the counterpart; its own
   sensors later confirm or refute the answer, and trust learns from that.
5. A hostile act against a side's assets is perceived and answered one step
   higher ("proportional" automated deterrence), up to the doctrine's ceiling,
   unless a trusted signed notice of malfunction explains it.
6. Humans: each side's commander is alerted by the first flag or hostile act and
   decides after a delay (`human.decision`), halting autonomous responses (or authorizing
   them). The analog channel, where present, connects the humans after minutes
   to hours, if the call is answered at all.

An episode ends at the horizon, or once nothing more can happen. When only human
decisions remain, the link stops being simulated (its heartbeats would cost
thousands of messages and change nothing): what humans do afterwards happens
without hotline traffic.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from clearline.doctrine.registry import Nearest, OwnAsset
from clearline.doctrine.responses import (
    at_rest,
    counter_response,
    heaviest_open_kinetic,
    nuclear_rung,
)
from clearline.doctrine.threat import CATEGORY_OF_KIND, RESPONSE_DOMAIN, Category
from clearline.gate import NUCLEAR_C2, Gate, Policy, ProposedAction
from clearline.gate.decide import GateDecision, Rule
from clearline.hotline import Cleared, Endpoint, EndpointConfig, QuerySent, Unresolved
from clearline.hotline.endpoint import Matcher
from clearline.protocol import codec
from clearline.protocol.events import (
    Closed,
    LinkState,
    LinkStateChanged,
    MessageReceived,
    Rejected,
    RejectReason,
)
from clearline.protocol.messages import (
    Actor,
    Answer,
    Area,
    AssetKind,
    AssetRecord,
    AutonomyMode,
    Claim,
    Hold,
    Intent,
    Message,
    Micros,
    Mission,
    Notice,
    NoticeKind,
    Position,
    TrackReport,
)
from clearline.protocol.session import Session, SessionConfig
from clearline.protocol.signing import Signer, Verifier
from clearline.sim.belief import Belief, Proposals, answer_was_true
from clearline.sim.humans import Choice, Commander, Referral, decision_time, first_decision
from clearline.sim.kernel import Clock, Kernel
from clearline.sim.network import Partitions, SimLink
from clearline.sim.officers import officers_of
from clearline.sim.outcomes import Arm, InvariantError, Outcome
from clearline.sim.rng import Streams
from clearline.sim.scenario import (
    Accident,
    AssetSpec,
    LoadedScenario,
    Scenario,
    SideSpec,
    TrackSpoof,
)
from clearline.sim.signers import SignerName, make_signer
from clearline.sim.world import Track, jittered, moved, spread

S = 1_000_000


@dataclass(frozen=True)
class Prepared:
    """Everything about a scenario that does not change between episodes, built once."""

    loaded: LoadedScenario
    signer_name: SignerName
    keys: dict[str, tuple[Signer, Verifier]]
    forger: tuple[Signer, Verifier]
    configs: dict[str, SessionConfig]
    ladder: tuple[str, ...]
    scores: dict[str, int]
    kinetic: frozenset[str]
    index: dict[str, int]
    lowest_kinetic: int
    """Ladder index of the lowest kinetic rung (past the top if there is none)."""
    rest: str
    """What a side is at before it acts, and what its doctrine proposes when nothing calls
    for more."""
    nuclear: str
    """The rung of nuclear use."""
    strike: str | None
    """What a real attack's impact is taken as: the heaviest kinetic act open to autonomy."""
    proposals: dict[str, Proposals]
    swarms: dict[str, tuple[AssetSpec, ...]]
    """Each swarm's elements by the swarm's asset id: assets of their own, spread over the
    swarm's disc."""

    @classmethod
    def build(cls, loaded: LoadedScenario, signer: SignerName = "keyed-hash") -> Prepared:
        scenario, policy = loaded.scenario, loaded.policy
        a, b = scenario.side_names
        keys = {side: make_signer(signer, f"{scenario.name} {side}") for side in (a, b)}
        configs = {
            a: SessionConfig(a, b, policy.hash),
            b: SessionConfig(b, a, policy.hash),
        }
        ladder = tuple(r.name for r in policy.ladder)
        kinetic = frozenset(r.name for r in policy.ladder if r.kinetic)
        return cls(
            loaded,
            signer,
            keys,
            make_signer(signer, f"{scenario.name} third party"),
            configs,
            ladder,
            {r.name: r.score for r in policy.ladder},
            kinetic,
            policy.rung_index,
            next((i for i, name in enumerate(ladder) if name in kinetic), len(ladder)),
            at_rest(policy),
            nuclear_rung(policy),
            heaviest_open_kinetic(policy),
            {side: Proposals.build(policy, scenario.sides[side].doctrine) for side in (a, b)},
            {asset.id: _elements(asset) for asset in scenario.assets if asset.swarm is not None},
        )

    @property
    def scenario(self) -> Scenario:
        return self.loaded.scenario

    @property
    def policy(self) -> Policy:
        return self.loaded.policy


def _elements(swarm: AssetSpec) -> tuple[AssetSpec, ...]:
    assert swarm.swarm is not None
    ids = swarm.element_ids()
    positions = spread(swarm.position, swarm.swarm.spread_m, len(ids))
    return tuple(
        swarm.model_copy(update={"id": element, "position": position, "swarm": None})
        for element, position in zip(ids, positions, strict=True)
    )


class _Impostor:
    """A third party's signer that claims a side's key id without holding its key."""

    __slots__ = ("_inner", "kid", "public_key")

    def __init__(self, claimed: Verifier, inner: Signer) -> None:
        self.kid = claimed.kid
        self.public_key = inner.public_key
        self._inner = inner

    def sign(self, data: bytes) -> bytes:
        return self._inner.sign(data)


@dataclass(eq=False)
class Side:
    name: str
    peer_name: str
    spec: SideSpec
    belief: Belief
    commander: Commander
    gate: Gate | None
    reaction: random.Random
    decisions: random.Random
    tracks: dict[str, Track] = field(default_factory=dict)
    own: dict[str, AssetSpec] = field(default_factory=dict)
    appeared: dict[str, Micros] = field(default_factory=dict)
    endpoint: Endpoint | None = None
    link: SimLink | None = None
    timer_at: Micros | None = None
    notices: set[str] = field(default_factory=set)
    action_count: int = 0
    first_kinetic: Micros | None = None
    escalation: int = 0
    answering: dict[str, str] = field(default_factory=dict)
    """By attacker: the highest rung received of the hostile acts an answer is pending for."""
    peak: int = 0
    """Ladder index of the highest action the side has taken (its rest rung before any)."""


class _WorldRegistry:
    """A side's own assets where the world has them now: what its node would know."""

    def __init__(self, episode: Episode, side: Side) -> None:
        self._episode = episode
        self._side = side

    def matcher(self, now: Micros, tolerance_m: float) -> Matcher:
        """Matches against every own asset where it is now, building the record (what the
        node would hold) only for the one found: a swarm's owner holds hundreds, and a
        query names a few."""
        side = self._side
        nearest = Nearest(
            ((self._episode._position_of(side, asset), 0.0, asset) for asset in side.own.values()),
            tolerance_m,
        )

        def match(track: TrackReport) -> OwnAsset | None:
            asset = nearest(track)
            if asset is None:
                return None
            record = AssetRecord(
                asset.id,
                asset.kind,
                asset.mission,
                asset.armed,
                AutonomyMode.AUTONOMOUS,
                now,
                position=self._episode._position_of(side, asset),
            )
            return OwnAsset(record, asset.intent)

        return match


def _nothing() -> None:
    pass


class Episode:
    """Runs one episode of one arm; `run()` returns its Outcome."""

    def __init__(
        self,
        prepared: Prepared,
        arm: Arm,
        episode: int,
        seed: int,
        trace: Callable[[str], None] | None = None,
        clock: Clock | None = None,
        skip_inert: bool = True,
    ) -> None:
        """`skip_inert=False` schedules the reaction and confirmation of every track, even
        those that cannot change anything (`Belief.inert`); the outcomes are the same, which
        is what it is there to show."""
        self.p = prepared
        self.arm = arm
        self.scenario = prepared.scenario
        self.policy = prepared.policy
        self.kernel: Clock = clock if clock is not None else Kernel()
        self.streams = Streams(seed, episode)
        self.out = Outcome(episode, arm.value)
        self._trace = trace
        self._skip_inert = skip_inert
        self._busy_until: Micros = 0
        self._pending = 0
        self._link_pending = 0
        self._humans_pending = 0
        self._link_live = arm.hotline
        network = self.scenario.network
        self._has_partitions = bool(network.partitions) or (
            network.random_partitions is not None and network.random_partitions.rate_per_hour > 0
        )
        self._forged: set[bytes] = set()
        self._ended = False
        hotline = self.scenario.hotline
        self._redial_first: Micros = round(hotline.redial_first_s * S)
        self._redial_max: Micros = round(hotline.redial_max_s * S)
        self._redial_backoff = self._redial_first
        self._redialling = False
        self._connections = 1
        self._redial_rng: random.Random | None = None
        a, b = self.scenario.side_names
        self.horizon: Micros = int(self.scenario.horizon_s * S)
        self.sides: dict[str, Side] = {}
        for name, peer in ((a, b), (b, a)):
            spec = self.scenario.sides[name]
            gate = Gate(self.policy, roster=officers_of(name).roster) if arm.gate else None
            if gate is not None and not arm.hotline:
                # No link to fail: the fail-safe caps are about a hotline that is down.
                gate.set_link(LinkState.UP)
            self.sides[name] = Side(
                name,
                peer,
                spec,
                Belief.initial(name, spec, prepared.proposals[name]),
                Commander.draw(name, spec, self.streams),
                gate,
                self.streams(f"{name}.reaction"),
                self.streams(f"{name}.decisions"),
                peak=prepared.index[prepared.rest],
            )

    # -- scheduling ---------------------------------------------------------

    def note(self, text: str) -> None:
        """Trace a line. Where this runs per track or per act, callers test `_trace` first, so
        that an untraced episode (every one in a Monte Carlo) does not format the text."""
        if self._trace is not None:
            self._trace(f"{self.kernel.now} {text}")

    def _after(self, delay: Micros, action: Callable[[], None], link: bool = False) -> None:
        """Schedule model work; the episode is over when none is left. `link` marks work
        that may put new traffic on the hotline (a new track, an injected message)."""
        self._pending += 1
        self._link_pending += link

        def run() -> None:
            self._pending -= 1
            self._link_pending -= link
            if not self._ended:
                action()
            self._check_settled()

        self.kernel.at(self.kernel.now + max(0, delay), run)

    def _still_working(self, delay: Micros) -> None:
        """Keep the episode going for `delay` from now, as work that does nothing would."""
        until = self.kernel.now + max(0, delay)
        if until > self._busy_until:
            self._busy_until = until
            self._after(delay, _nothing)

    def _link_settled(self) -> bool:
        """Nothing left that the link could still change: no new traffic to come, nothing
        in flight, no open query, and no partition ahead that would move the gate's caps."""
        if self._link_pending > 0 or (self._has_partitions and self._pending > 0):
            return False
        for side in self.sides.values():
            endpoint = side.endpoint
            if endpoint is not None and endpoint.busy:
                return False
            if side.link is not None and side.link.stats.in_flight:
                return False
        return True

    def _check_settled(self) -> None:
        if self._ended:
            return
        if self._link_live and self._link_settled():
            self._link_live = False
            self.note("settled: link no longer simulated")
        if self._pending == 0 and self._humans_pending == 0 and not self._link_live:
            self.kernel.stop()

    # -- run ----------------------------------------------------------------

    def run(self) -> Outcome:
        a, b = self.scenario.side_names
        if self.arm.hotline:
            self._start_link()
        for asset in self.scenario.assets:
            self._place(asset)
        for spoof in self.scenario.false_alarms:
            self._spoof(spoof, "alarm")
        for spoof in self.scenario.third_party.spoof_tracks:
            self._spoof(spoof, "spoof")
        if self.arm.hotline:
            for forged in self.scenario.third_party.forged_messages:
                rng = self.streams(f"third-party.forge.{forged.into}")
                if rng.random() < forged.probability:
                    self._after(
                        int(forged.at_s * S),
                        partial(self._forge, forged.into, forged.count),
                        link=True,
                    )
        for accident in self.scenario.accidents:
            rng = self.streams("accidents")
            if rng.random() < accident.probability:
                self._after(
                    int(accident.at_s * S),
                    partial(self._accident, accident),
                    link=self.arm.hotline,
                )
        self._check_settled()
        self.kernel.run(self.horizon)
        out = self.out
        out.ended_s = min(self.kernel.now, self.horizon) / S
        out.peak_rung_a = self.sides[a].peak
        out.peak_rung_b = self.sides[b].peak
        first_human = first_decision((s.commander for s in self.sides.values()), self.horizon)
        if first_human is not None:
            out.first_human_s = first_human / S
        if not math.isnan(out.first_kinetic_s):
            out.kinetic_before_any_human = math.isnan(out.first_human_s) or (
                out.first_kinetic_s < out.first_human_s
            )
        side_a, side_b = self.sides[a], self.sides[b]
        out.escalation_score_a, out.escalation_score_b = side_a.escalation, side_b.escalation
        out.kinetic_before_own_human_a = self._before_own_human(side_a)
        out.kinetic_before_own_human_b = self._before_own_human(side_b)
        for side in self.sides.values():
            if side.link is not None:
                out.messages_sent += side.link.stats.sent
                out.messages_lost += side.link.stats.lost
        return out

    def _before_own_human(self, side: Side) -> bool:
        """Whether `side` acted kinetically before its own commander decided."""
        if side.first_kinetic is None:
            return False
        decided = decision_time(side.commander, self.horizon)
        return decided is None or side.first_kinetic < decided

    # -- the world ----------------------------------------------------------

    def _place(self, asset: AssetSpec) -> None:
        if asset.swarm is not None:
            self._place_swarm(asset)
            return
        rng = self.streams(f"asset.{asset.id}")
        if rng.random() >= asset.probability:
            return
        appears = int((asset.appears_s + rng.uniform(0.0, asset.appears_jitter_s)) * S)
        owner = self.sides[asset.owner]
        observer = self.sides[owner.peer_name]
        hotline = self.arm.hotline

        def appear() -> None:
            owner.own[asset.id] = asset
            owner.appeared[asset.id] = self.kernel.now
            sensor = observer.spec.sensor
            srng = self.streams(f"{observer.name}.sensor.{asset.id}")
            scans = 0
            while srng.random() >= sensor.detect_probability and scans < 10_000:
                scans += 1
            delay = int(scans * sensor.scan_s * S)
            self._after(delay, lambda: self._detect_asset(observer, asset, srng), link=hotline)
            if asset.real_attack and asset.impact_s is not None:
                self._after(int(asset.impact_s * S), lambda: self._impact(owner, observer, asset))

        self._after(appears, appear, link=hotline)

    def _place_swarm(self, swarm: AssetSpec) -> None:
        """A swarm appears as one; its elements are detected one by one. The elements one scan
        detects become tracks in one event, as a node sees them arrive together.

        The elements draw from one sensor stream and one model stream per swarm rather than a
        stream each: every draw is still an element's own, made in an order that is the same
        in every arm (element order at a scan, time order for confirmations), and seeding a
        generator costs about 11 us, some 7 ms for two streams for each of 300 elements."""
        rng = self.streams(f"asset.{swarm.id}")
        if rng.random() >= swarm.probability:
            return
        appears = int((swarm.appears_s + rng.uniform(0.0, swarm.appears_jitter_s)) * S)
        owner = self.sides[swarm.owner]
        observer = self.sides[owner.peer_name]
        hotline = self.arm.hotline

        def appear() -> None:
            now = self.kernel.now
            sensor = observer.spec.sensor
            srng = self.streams(f"{observer.name}.sensor.{swarm.id}")
            mrng = self.streams(f"{observer.name}.model.{swarm.id}")
            by_scans: dict[int, list[AssetSpec]] = {}
            for element in self.p.swarms[swarm.id]:
                owner.own[element.id] = element
                owner.appeared[element.id] = now
                scans = 0
                while srng.random() >= sensor.detect_probability and scans < 10_000:
                    scans += 1
                by_scans.setdefault(scans, []).append(element)
            for scans in sorted(by_scans):
                self._after(
                    int(scans * sensor.scan_s * S),
                    partial(self._detect_elements, observer, by_scans[scans], srng, mrng),
                    link=hotline,
                )
            if swarm.real_attack and swarm.impact_s is not None:
                self._after(int(swarm.impact_s * S), lambda: self._impact(owner, observer, swarm))

        self._after(appears, appear, link=hotline)

    def _position_of(self, owner: Side, asset: AssetSpec) -> Position:
        dt = (self.kernel.now - owner.appeared.get(asset.id, self.kernel.now)) / S
        return moved(asset.position, asset.velocity_mps, dt)

    def _detect_asset(
        self,
        observer: Side,
        asset: AssetSpec,
        srng: random.Random,
        mrng: random.Random | None = None,
        flagged: list[Track] | None = None,
    ) -> None:
        owner = self.sides[asset.owner]
        seen_at = jittered(
            self._position_of(owner, asset), observer.spec.sensor.position_sigma_m, srng
        )
        category = asset.threatens or CATEGORY_OF_KIND[asset.kind]
        self._new_track(
            observer,
            f"T-{asset.id}",
            asset.kind,
            category,
            seen_at,
            asset.count,
            owner=asset.owner,
            asset=asset,
            true_score=observer.belief.truth(
                asset.kind, category, asset.armed or asset.real_attack
            ),
            model_stream=mrng,
            flagged=flagged,
        )

    def _detect_elements(
        self,
        observer: Side,
        elements: list[AssetSpec],
        srng: random.Random,
        mrng: random.Random,
    ) -> None:
        """Elements of a swarm seen in one scan: a track each, and those flagged asked about
        together (the endpoint sends them as few queries as the peer takes)."""
        flagged: list[Track] = []
        for element in elements:
            self._detect_asset(observer, element, srng, mrng, flagged)
        if flagged and self._link_live:
            self._ask(observer, flagged)

    def _spoof(self, spoof: TrackSpoof, label: str) -> None:
        rng = self.streams(f"{label}.{spoof.seen_by}.{spoof.at_s}")
        if rng.random() >= spoof.probability:
            return
        observer = self.sides[spoof.seen_by]
        lat, lon, alt = spoof.position
        position = Position(round(lat * 1e6), round(lon * 1e6), round(alt))
        track_id = f"T-{label}-{int(spoof.at_s * 1000)}"
        category = CATEGORY_OF_KIND[spoof.looks_like]
        clear_after = spoof.cleared_by_sensors.draw(rng)

        def appear() -> None:
            self._new_track(
                observer,
                track_id,
                spoof.looks_like,
                category,
                position,
                spoof.count,
                owner=spoof.attributed_to,
                asset=None,
                true_score=0.0,
                confirm_after=clear_after,
            )

        self._after(int(spoof.at_s * S), appear, link=self.arm.hotline)

    def _new_track(
        self,
        side: Side,
        track_id: str,
        kind: AssetKind,
        category: Category,
        position: Position,
        count: int,
        *,
        owner: str | None,
        asset: AssetSpec | None,
        true_score: float,
        confirm_after: Micros | None = None,
        model_stream: random.Random | None = None,
        flagged: list[Track] | None = None,
    ) -> None:
        """A new track: the model reads it, and a flagged one alerts the commander and is asked
        about (now, or with the others in `flagged` by whoever passed it)."""
        now = self.kernel.now
        mrng = (
            model_stream
            if model_stream is not None
            else self.streams(f"{side.name}.model.{track_id}")
        )
        perceived, category, score = side.belief.read(kind, category, now, mrng)
        report = TrackReport(track_id, position, now, perceived, count=count)
        track = Track(
            track_id,
            report,
            owner,
            asset,
            category,
            RESPONSE_DOMAIN.get(category, "air"),
            score,
            true_score,
        )
        side.tracks[track_id] = track
        if self._trace is not None:
            self.note(f"{side.name} sees {track_id} as {perceived.value} score {score:.3f}")
        if side.belief.flags(score):
            self._alert(side)
            if flagged is not None:
                flagged.append(track)
            elif self._link_live:
                self._ask(side, [track])
        reaction = side.spec.doctrine.reaction.draw(side.reaction)
        if confirm_after is None:
            confirm_after = side.spec.sensor.confirm.draw(mrng)
        # Drawn now, not when the sensors confirm: a swarm's elements share one model
        # stream, and drawing in element order keeps each draw the element's own whether
        # or not its confirmation is scheduled (below).
        accurate = mrng.random() < side.spec.sensor.confirm_accuracy
        if self._skip_inert and side.belief.inert(track):
            # Nothing to schedule but the time it would have taken: the episode still ends
            # when its last piece of work would have run.
            self._still_working(max(reaction, confirm_after))
            return
        self._after(reaction, lambda: self._react(side, track))
        self._after(confirm_after, lambda: self._confirm(side, track, accurate))

    # -- action -------------------------------------------------------------

    def _react(self, side: Side, track: Track) -> None:
        track.reacted = True
        self._act(side, track)

    def _reconsider(self, side: Side, track: Track) -> None:
        """Belief changed: act on it now if autonomy has already reacted to this track."""
        if track.reacted:
            self._act(side, track)

    def _act(self, side: Side, track: Track) -> None:
        if side.commander.halted or track.stopped:
            return
        rung = side.belief.proposal(track)
        index = self.p.index[rung]
        kinetic = rung in self.p.kinetic
        if track.held_kinetic and not kinetic:
            track.held_kinetic = False
        if index <= track.acted:
            return
        if rung == self.p.rest:
            return
        self._attempt(side, rung, track.domain, track)

    def _attempt(
        self,
        side: Side,
        rung: str,
        domain: str,
        track: Track,
        actor: Actor = Actor.AUTONOMOUS,
    ) -> None:
        """Propose an action through the gate (if any) and carry out what is allowed.

        Autonomy's acts stay autonomous after the commander authorizes responses: they meet
        the gate's holds, caps and breaker as before. What the gate refers to a human is
        then proposed again as the commander's act, under the standing approval; before
        that, the rung first proposed is what waits for the commander."""
        excluded = self.policy.domain_of(rung, domain) in self.policy.exclusions
        if side.gate is None:
            if excluded and actor is Actor.AUTONOMOUS:
                self.out.excluded_unguarded += 1
            self._execute(side, rung, domain, track, actor)
            return
        side.action_count += 1
        action_id = f"{side.name}-{side.action_count}"
        commander = side.commander
        candidate = rung
        while True:
            decision = self._propose(side, action_id, actor, candidate, domain, track)
            if decision.rule is Rule.AUTONOMY_CAP and commander.authorized:
                decision = self._propose(side, action_id, Actor.HUMAN, candidate, domain, track)
                if decision.allowed:
                    self._execute(side, candidate, domain, track, Actor.HUMAN)
                    return
            elif decision.allowed:
                excluded = self.policy.domain_of(candidate, domain) in self.policy.exclusions
                if excluded and actor is Actor.AUTONOMOUS:
                    self.out.excluded_allowed += 1
                    raise InvariantError(
                        f"the gate allowed autonomous {candidate} in excluded domain {domain}"
                    )
                self._execute(side, candidate, domain, track, actor)
                return
            if decision.rule is Rule.EXCLUDED_DOMAIN:
                self.out.excluded_attempts += 1
                return
            if decision.rule is Rule.HOTLINE_HOLD:
                track.held_kinetic = True
                return
            if decision.rule is Rule.AUTONOMY_CAP and commander.referred is None:
                commander.referred = Referral(rung, domain, track.track_id)
            # Denied: take the highest lower rung the gate allows, as a capped effector would.
            lower = self.p.index[candidate] - 1
            if lower <= max(track.acted, self.p.index[self.p.rest]):
                return
            candidate = self.p.ladder[lower]

    def _propose(
        self, side: Side, action_id: str, actor: Actor, rung: str, domain: str, track: Track
    ) -> GateDecision:
        assert side.gate is not None
        approvals: tuple[bytes, ...] = ()
        if actor is Actor.HUMAN:
            approvals = side.commander.approvals(self.policy, domain, self.kernel.now, self.horizon)
        action = ProposedAction(action_id, actor, rung, domain, track.track_id, approvals)
        decision = side.gate.propose(action, self.kernel.now)
        if self._trace is not None:
            by = " (human act)" if actor is Actor.HUMAN else ""
            self.note(f"{side.name} gate {rung} {domain}{by}: {decision.rule.value}")
        return decision

    def _execute(self, side: Side, rung: str, domain: str, track: Track, actor: Actor) -> None:
        index = self.p.index[rung]
        if index <= track.acted:
            return
        track.acted = index
        now = self.kernel.now
        side.peak = max(side.peak, index)
        side.escalation += self.p.scores[rung]
        self.out.escalation_score += self.p.scores[rung]
        if self._trace is not None:
            self.note(f"{side.name} {actor.value} {rung} on {track.track_id} ({domain})")
        if rung in self.p.kinetic:
            self.out.kinetic_actions += 1
            if track.sensed and not track.engaged:
                track.engaged = True
                self.out.tracks_engaged += 1
            if math.isnan(self.out.first_kinetic_s):
                self.out.first_kinetic_s = now / S
                self.out.fired_first_a = side.name == self.scenario.side_names[0]
                self.out.fired_first_b = not self.out.fired_first_a
            if side.first_kinetic is None:
                side.first_kinetic = now
            if track.asset is not None and track.asset.real_attack:
                track.stopped = True
                if track.reassured_at is not None:
                    self._reassurance_cost(track)
        if self.policy.rung(rung).domain == NUCLEAR_C2:
            self.out.nuclear_use = True
            self._ended = True
            self.kernel.stop()
            return
        # Jamming a phantom touches nobody; shooting at one lands on whoever it was pinned on.
        lands = track.asset is not None or rung in self.p.kinetic
        if track.owner is None or not lands:
            return
        victim = self.sides[track.owner]
        if index >= self.p.index[victim.spec.doctrine.hostile_from]:
            delay = victim.spec.sensor.perceive_action.draw(self.streams(f"{victim.name}.perceive"))
            self._after(delay, lambda: self._hostile(victim, side, rung))

    def _hostile(self, victim: Side, attacker: Side, rung: str) -> None:
        """`victim` sees `attacker` act against its assets and answers in kind, a step higher."""
        self._alert(victim)
        if victim.commander.halted:
            return
        if self._trace is not None:
            self.note(f"{victim.name} perceives {rung} by {attacker.name}")
        pending = victim.answering.get(attacker.name)
        if pending is not None:
            # One answer to the acts perceived while it is pending, at the highest of them: a
            # swarm's elements engaged one by one are answered as the attack they make up.
            if self.p.index[rung] > self.p.index[pending]:
                victim.answering[attacker.name] = rung
            return
        victim.answering[attacker.name] = rung
        delay = victim.spec.doctrine.reaction.draw(victim.reaction)
        self._after(delay, lambda: self._counter(victim, attacker))

    def _counter(self, side: Side, attacker: Side) -> None:
        received = side.answering.pop(attacker.name)
        if side.commander.halted:
            return
        if side.name in side.notices and side.spec.doctrine.notice_trust:
            side.notices.discard(side.name)
            if side.decisions.random() < side.belief.trust.trust:
                self.note(f"{side.name} holds its counter: trusted notice from {attacker.name}")
                return
        ceiling = side.spec.doctrine.counter_ceiling
        rung = counter_response(received, list(self.p.ladder), ceiling)
        target = side.tracks.get(f"forces-{attacker.name}")
        if target is None:
            target = Track(
                f"forces-{attacker.name}",
                TrackReport(
                    f"forces-{attacker.name}", Position(0, 0, 0), self.kernel.now, AssetKind.UNKNOWN
                ),
                attacker.name,
                None,
                Category.STRIKE,
                "air",
                1.0,
                1.0,
                sensed=False,
            )
            side.tracks[target.track_id] = target
        else:
            target.acted = min(target.acted, self.p.index[rung] - 1)
        self._attempt(side, rung, "air", target)

    def _impact(self, owner: Side, victim: Side, asset: AssetSpec) -> None:
        """A real attack strikes, unless it was stopped (a swarm: every element of it)."""
        tracks = [victim.tracks.get(f"T-{element}") for element in asset.element_ids()]
        if all(track is not None and track.stopped for track in tracks):
            return
        self.note(f"{asset.id} strikes {victim.name}")
        for track in tracks:
            if track is not None:
                if track.reassured_at is not None:
                    self._reassurance_cost(track)
                track.stopped = True
        assert self.p.strike is not None, "loading refuses a real attack with no strike rung"
        self._hostile(victim, owner, self.p.strike)

    def _reassurance_cost(self, track: Track) -> None:
        if track.reassured_at is None or self.out.false_reassurance:
            return
        self.out.false_reassurance = True
        self.out.reassurance_delay_s = (self.kernel.now - track.reassured_at) / S

    def _confirm(self, side: Side, track: Track, accurate: bool) -> None:
        """One's own sensors now show what the track is (`accurate`: and read it right): the
        answer about it is judged, and the side acts on what it believes now (on every
        answered track, if one was a lie)."""
        if side.belief.confirm(track, accurate):
            self.note(f"{side.name} finds the answer about {track.track_id} false")
            for other in side.tracks.values():
                if other is not track and other.answer is not None and not other.confirmed:
                    self._reconsider(side, other)
        self._reconsider(side, track)

    # -- humans ---------------------------------------------------------------

    def _alert(self, side: Side) -> None:
        commander = side.commander
        if not commander.alert(self.kernel.now):
            return
        self.note(f"{side.name} commander alerted; decides at {commander.decides_at}")
        self._human_later(commander.delay, side)
        callee = self.sides[side.peer_name].commander
        if self.arm.analog and callee.analog_answers:
            self._human_later(callee.analog_delay, None)

    def _human_later(self, delay: Micros, side: Side | None) -> None:
        if self.kernel.now + delay > self.horizon:
            return
        self._humans_pending += 1

        def run() -> None:
            self._humans_pending -= 1
            if not self._ended:
                if side is None:
                    self._analog_connects()
                else:
                    self._decide(side)
            self._check_settled()

        self.kernel.at(self.kernel.now + delay, run)

    def _decide(self, side: Side) -> None:
        commander = side.commander
        if commander.decided:
            return
        fears = side.belief.fears_nuclear_attack(side.tracks.values())
        choice = commander.decide(self.kernel.now, fears, side.decisions)
        if choice is Choice.NUCLEAR:
            self.note(f"{side.name} commander authorizes nuclear use")
            track = next(t for t in side.tracks.values() if t.category is Category.NUCLEAR_C2)
            self._human_nuclear(side, track)
        elif choice is Choice.HALT:
            self._halt(side, "commander halts autonomous responses")
        else:
            self.note(f"{side.name} commander authorizes responses (standing approvals)")
            referral = commander.take_referral()
            referred = side.tracks.get(referral.target) if referral is not None else None
            if referral is not None and referred is not None:
                self._attempt(side, referral.rung, referral.domain, referred, Actor.HUMAN)

    def _human_nuclear(self, side: Side, track: Track) -> None:
        rung = self.p.nuclear
        action = side.commander.nuclear_act(
            self.policy, rung, NUCLEAR_C2, track.track_id, self.kernel.now
        )
        if side.gate is not None and not side.gate.propose(action, self.kernel.now).allowed:
            return
        self._execute(side, rung, NUCLEAR_C2, track, Actor.HUMAN)

    def _halt(self, side: Side, why: str) -> None:
        if not side.commander.halt():
            return
        self.note(f"{side.name} {why}")
        if self._link_live and side.endpoint is not None and side.endpoint.up:
            everywhere = Area(Position(0, 0, 0), 40_000_000)
            hold = Hold(everywhere, self.horizon, why[:64])
            self._send(side, hold)

    def _analog_connects(self) -> None:
        """The humans reach each other: both sides stand down while they talk."""
        now = self.kernel.now
        self.note("analog call connects")
        for side in self.sides.values():
            side.commander.reached(now)
            self._halt(side, "stands down after the analog call")

    # -- the hotline ------------------------------------------------------------

    def _start_link(self) -> None:
        a, b = self.scenario.side_names
        partitions = Partitions.draw(
            self.scenario.network, self.horizon, self.streams("network.partitions")
        )
        for name, peer in ((a, b), (b, a)):
            signer, _ = self.p.keys[name]
            _, peer_verifier = self.p.keys[peer]
            side = self.sides[name]
            side.endpoint = Endpoint(
                EndpointConfig(
                    self.scenario.hotline.session(self.p.configs[name]),
                    query_ttl_us=int(side.spec.doctrine.query_ttl_s * S),
                    hello_retry_us=self.scenario.hotline.hello_retry_us,
                ),
                signer,
                peer_verifier,
                _WorldRegistry(self, side),
                side.gate,
                partial(self._cover_story, side),
            )
        for name, peer in ((a, b), (b, a)):
            receiver = self.sides[peer]
            self.sides[name].link = SimLink(
                self.kernel,
                self.scenario.network,
                partitions,
                self.streams(f"network.{name}->{peer}"),
                partial(self._deliver, receiver),
            )
        for name in (a, b):
            side = self.sides[name]
            assert side.endpoint is not None
            side.endpoint.connect(0, self.streams(f"{name}.nonce").randbytes(16))
            self._pump(side)

    def _deliver(self, side: Side, data: bytes) -> None:
        if side.endpoint is None or not self._link_live:
            return
        side.endpoint.receive_data(data, self.kernel.now)
        self._pump(side)
        self._check_settled()

    def _tick(self, side: Side, when: Micros) -> None:
        if side.timer_at != when or side.endpoint is None or not self._link_live:
            return
        side.timer_at = None
        side.endpoint.handle_timer(self.kernel.now)
        self._pump(side)

    def _send(self, side: Side, body: Any) -> int | None:
        endpoint = side.endpoint
        if endpoint is None:
            return None
        sent = endpoint.send(body, self.kernel.now)
        if sent is None:
            return None
        self._pump(side)
        return sent.message.seq

    def _ask(self, side: Side, tracks: list[Track]) -> None:
        """Ask the peer about `tracks`: now if the link is up, else as soon as it is."""
        assert side.endpoint is not None
        side.endpoint.ask_many(
            [track.report for track in tracks],
            self.kernel.now,
            retries=side.spec.doctrine.query_retries,
            persistent=True,
        )
        self._pump(side)

    def _pump(self, side: Side) -> None:
        endpoint = side.endpoint
        assert endpoint is not None
        endpoint.log_entries()  # the simulator keeps no log: what a node would log, dropped
        ended = False
        while (event := endpoint.next_event()) is not None:
            if isinstance(event, MessageReceived):
                body = event.message.body
                if event.cose in self._forged:
                    self.out.forged_accepted += 1
                if isinstance(body, Notice) and body.asset_id is not None:
                    side.notices.add(body.asset_id)
            elif isinstance(event, QuerySent):
                if event.retry:
                    self.out.clarifications_expired += 1
                track = side.tracks.get(event.track_id)
                if track is not None:
                    track.query_seq = event.query_seq
                if self._trace is not None:
                    self.note(f"{side.name} queries {event.track_id} (q{event.query_seq})")
            elif isinstance(event, Cleared):
                self._answered(side, event)
            elif isinstance(event, Unresolved):
                self._expired(side, event.track_id)
            elif isinstance(event, LinkStateChanged):
                self.note(f"{side.name} link {event.current.value}")
                if self.scenario.hotline.reconnect:
                    if event.current is LinkState.DOWN:
                        self._close_if_still_down_later(side)
                    elif event.current is LinkState.UP:
                        self._redial_backoff = self._redial_first
            elif isinstance(event, Closed):
                ended = self.scenario.hotline.reconnect
            elif isinstance(event, Rejected) and event.reason is RejectReason.BAD_SIGNATURE:
                self.note(f"{side.name} rejects a forged message")
        data = endpoint.data_to_send()
        if data and side.link is not None:
            side.link.send(data)
        deadline = endpoint.next_deadline()
        if deadline is not None and deadline != side.timer_at:
            side.timer_at = deadline
            self.kernel.at(max(deadline, self.kernel.now), partial(self._tick, side, deadline))
        if ended:
            self._connection_ended(f"{side.name}'s session closed")

    # -- reconnection, as the node's transport does it -------------------------------

    def _close_if_still_down_later(self, side: Side) -> None:
        """A node closes a link that was up and has been down `close_after_down` times
        `down_after` (node.DEAD_AFTER_DOWN)."""
        assert side.endpoint is not None
        session = side.endpoint.session
        if session is None or session.established_at is None:
            return
        hotline = self.scenario.hotline
        delay = hotline.close_after_down * round(hotline.down_after_s * S)
        self._after(delay, partial(self._close_if_still_down, side, session), link=True)

    def _close_if_still_down(self, side: Side, session: Session) -> None:
        if not self._link_live or side.endpoint is None or side.endpoint.session is not session:
            return
        if session.closed or session.link_state is not LinkState.DOWN:
            return
        self._connection_ended(f"{side.name} closes the link, down too long")

    def _connection_ended(self, why: str) -> None:
        """The connection is gone, for both sides: what it has in flight is lost, each side's
        session closes (its open queries end; the asks stay, to be asked again), and it is
        dialled again."""
        if self._redialling or not self._link_live:
            return
        self._redialling = True
        self.note(f"connection ends: {why}")
        for side in self.sides.values():
            assert side.link is not None and side.endpoint is not None
            side.link.cut()
            side.endpoint.close(self.kernel.now, "connection ended")
            self._pump(side)
        self._redial_later()

    def _redial_later(self) -> None:
        if self._redial_rng is None:
            self._redial_rng = self.streams("network.redial")
        jitter = 0.5 + self._redial_rng.random()  # as the node's: never in step
        self._after(int(self._redial_backoff * jitter), self._redial, link=True)
        self._redial_backoff = min(2 * self._redial_backoff, self._redial_max)

    def _redial(self) -> None:
        if not self._link_live:
            return
        if any(side.link is not None and side.link.blocked() for side in self.sides.values()):
            self._redial_later()  # the dial fails: no path
            return
        self._redialling = False
        self._connections += 1
        self.note(f"connection {self._connections} dialled")
        for name, side in self.sides.items():
            assert side.endpoint is not None
            nonce = self.streams(f"{name}.nonce.{self._connections}").randbytes(16)
            side.endpoint.connect(self.kernel.now, nonce)
            self._pump(side)

    def _cover_story(self, side: Side, seq: int, found: OwnAsset | None, answer: Answer) -> Answer:
        """A dishonest side hides a real attack behind a reconnaissance story, as often as its
        doctrine says; otherwise the truth (the endpoint then applies the disclosure rules)."""
        if found is None:
            return answer
        asset = side.own.get(found.record.asset_id)
        if asset is None or not asset.real_attack:
            return answer
        if side.decisions.random() >= side.spec.doctrine.deception_probability:
            return answer
        self.note(f"{side.name} answers q{seq} with a cover story")
        return Answer(
            seq,
            Claim.OURS,
            Mission.RECONNAISSANCE,
            False,
            Intent.WITHDRAWING,
            found.record.position,
            asset.id,
        )

    def _answered(self, side: Side, event: Cleared) -> None:
        self.out.clarifications_answered += 1
        track = side.tracks.get(event.track_id)
        if track is None:
            return
        kinetic = self.p.kinetic
        unanswered = side.belief.proposal(track)
        track.answer = event.answer
        answered = side.belief.proposal(track)
        if track.asset is not None and track.asset.real_attack and not answer_was_true(track):
            track.lied_to = True
        if (
            unanswered in kinetic
            and answered not in kinetic
            and track.acted < self.p.index[unanswered]
        ):
            if track.lied_to:
                track.reassured_at = self.kernel.now
            elif side.belief.harmless(track):
                self.out.cleared_by_hotline = True
                self.out.tracks_cleared += 1
        before = track.acted
        if self._trace is not None:
            self.note(f"{side.name} answer for {track.track_id}: {event.answer.claim.value}")
        self._reconsider(side, track)
        kinetic_before = before >= self.p.lowest_kinetic
        if kinetic_before and side.belief.proposal(track) not in kinetic and track.owner:
            notice = Notice(
                NoticeKind.MALFUNCTION,
                self.kernel.now,
                self.kernel.now,
                f"engagement of {track.track_id} was in error",
                asset_id=track.owner,
            )
            self._send(side, notice)

    def _expired(self, side: Side, track_id: str) -> None:
        """The ask ended without an answer (its retries included): the hold is gone."""
        self.out.clarifications_expired += 1
        track = side.tracks.get(track_id)
        if track is None:
            return
        if track.held_kinetic:
            track.held_kinetic = False
            self._reconsider(side, track)

    def _forge(self, into: str, count: int) -> None:
        """A third party injects messages that claim to come from `into`'s peer."""
        victim = self.sides[into]
        claimed = self.sides[victim.peer_name]
        endpoint = victim.endpoint
        if endpoint is None or endpoint.session is None or endpoint.session.session_id is None:
            return
        _, claimed_verifier = self.p.keys[claimed.name]
        impostor = _Impostor(claimed_verifier, self.p.forger[0])
        now = self.kernel.now
        for i in range(count):
            message = Message(
                claimed.name,
                endpoint.session.session_id,
                1_000_000 + i,
                now,
                Notice(NoticeKind.EXERCISE, now, now, "exercise in progress; ignore strikes"),
            )
            cose = codec.sign(message, impostor)
            self._forged.add(cose)
            self.out.forged_injected += 1
            endpoint.receive_data(codec.frame(cose), now)
        self._pump(victim)

    def _accident(self, accident: Accident) -> None:
        by, victim = self.sides[accident.by], self.sides[accident.victim]
        self.note(f"accident: {accident.by} downs {accident.victim_asset}")
        delay = victim.spec.sensor.perceive_action.draw(self.streams(f"{victim.name}.perceive"))
        self._after(delay, lambda: self._hostile(victim, by, accident.perceived_as))
        if self._link_live:
            notice_delay = by.spec.sensor.perceive_action.draw(self.streams(f"{by.name}.perceive"))

            def tell() -> None:
                if self._link_live:
                    self._send(
                        by,
                        Notice(
                            NoticeKind.MALFUNCTION,
                            self.kernel.now,
                            self.kernel.now,
                            "accidental collision; no hostile intent",
                            asset_id=victim.name,
                        ),
                    )

            self._after(notice_delay, tell, link=True)


def run_episode(
    prepared: Prepared,
    arm: Arm,
    episode: int,
    seed: int,
    trace: Callable[[str], None] | None = None,
) -> Outcome:
    return Episode(prepared, arm, episode, seed, trace).run()
