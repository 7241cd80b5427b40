"""`clearline demo`, first version: the cascade the system exists to stop, in one process.

Two real Sessions (US and PRC) talk over an in-memory link with a chosen delay,
under the simulator's virtual clock, signing and logging every message. Scene 1
runs with the hotline and the gate; scene 2 runs the same sighting with neither,
and shows the exchange climbing the ladder until a human is reached.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from clearline.config import default_policy
from clearline.doctrine.registry import OwnAsset
from clearline.doctrine.responses import Thresholds, counter_response, fuse, propose_rung
from clearline.gate import Gate, GateDecision, Policy, ProposedAction
from clearline.hotline import (
    Answered,
    AssetRegistry,
    Cleared,
    Endpoint,
    EndpointConfig,
    EndpointEvent,
    QuerySent,
    Unresolved,
)
from clearline.log.store import LogStore, VerifyReport, verify_log
from clearline.protocol.events import (
    Event,
)
from clearline.protocol.messages import (
    Actor,
    Answer,
    AssetKind,
    AssetRecord,
    AutonomyMode,
    Checkpoint,
    Decision,
    Intent,
    Micros,
    Mission,
    Position,
    TrackReport,
)
from clearline.protocol.session import SessionConfig
from clearline.protocol.signing import Ed25519Signer
from clearline.sim.kernel import Kernel

S = 1_000_000
MS = 1_000
SCENE_START = 1 * S
QUERY_TTL = 2 * S
TRUST_IN_PEER = 0.85
MODEL_MISREAD_SCORE = 0.83  # the flawed model: a recon swarm scored as a strike swarm

Printer = Callable[[str], None]


@dataclass
class DemoSide:
    """One side's hotline node in the virtual scene: the node's endpoint on a virtual clock."""

    name: str
    kernel: Kernel
    endpoint: Endpoint
    gate: Gate
    log: LogStore
    say: Printer
    peer: DemoSide | None = None
    delay_us: Micros = 55 * MS
    on_event: Callable[[DemoSide, Event | EndpointEvent], None] | None = None
    _timer_at: Micros | None = None

    def note(self, text: str) -> None:
        self.say(f"+{(self.kernel.now - SCENE_START) / S:7.3f} s  {self.name:<3} {text}")

    def deliver(self, data: bytes) -> None:
        self.endpoint.receive_data(data, self.kernel.now)
        self.pump()

    def tick(self, when: Micros) -> None:
        if self._timer_at != when:
            return  # superseded by a later schedule
        self._timer_at = None
        self.endpoint.handle_timer(self.kernel.now)
        self.pump()

    def pump(self) -> None:
        """Log what the endpoint signed or verified, handle its events, ship bytes, re-arm."""
        entries = self.endpoint.log_entries()
        if entries:
            self.log.append([e.cose for e in entries])
        while (event := self.endpoint.next_event()) is not None:
            if isinstance(event, Answered):
                found = event.matched
                self.note(
                    f"hotline <- Query q{event.query_seq}; registry: "
                    + (f"{found.record.asset_id}" if found else "no match")
                )
                self.note(
                    f"hotline -> Answer q{event.query_seq}: {describe_answer(event.answer)} "
                    "(signed, logged)"
                )
            if self.on_event is not None:
                self.on_event(self, event)
        entries = self.endpoint.log_entries()
        if entries:
            self.log.append([e.cose for e in entries])
        data = self.endpoint.data_to_send()
        if data and self.peer is not None:
            peer = self.peer
            self.kernel.after(self.delay_us, lambda: peer.deliver(data))
        deadline = self.endpoint.next_deadline()
        if deadline is not None and deadline != self._timer_at:
            self._timer_at = deadline
            self.kernel.at(max(deadline, self.kernel.now), lambda: self.tick(deadline))

    def decide(self, action: ProposedAction) -> GateDecision:
        decision = self.gate.propose(action, self.kernel.now)
        self.log.record(
            Decision(
                action.action_id,
                action.actor,
                action.rung,
                action.domain,
                decision.verdict,
                decision.rule.value,
                decision.reason,
                self.gate.policy.hash,
                action.target,
                decision.until,
            ),
            self.kernel.now,
        )
        return decision


def describe_answer(answer: Answer) -> str:
    parts = [answer.claim.value]
    for value in (answer.mission, answer.intent):
        if value is not None:
            parts.append(value.value)
    if answer.armed is not None:
        parts.append("armed" if answer.armed else "unarmed")
    return ", ".join(parts)


def _nonce(label: str) -> bytes:
    """Demo nonces are fixed so the demo is reproducible; live nodes draw them at random."""
    return hashlib.sha256(b"clearline demo nonce " + label.encode()).digest()[:16]


def recon_swarm(at: Micros) -> tuple[OwnAsset, TrackReport]:
    position = Position(24_100_000, 122_400_000, 1_500)
    record = AssetRecord(
        "PRC-RS-7",
        AssetKind.RECON_SWARM,
        Mission.RECONNAISSANCE,
        False,
        AutonomyMode.AUTONOMOUS,
        at,
        position=position,
    )
    seen = TrackReport(
        "T-0417",
        Position(24_130_000, 122_380_000, 1_400),
        at,
        AssetKind.STRIKE_PACKAGE,
        count=24,
        heading_deg=95,
        speed_mps=60,
    )
    return OwnAsset(record, Intent.WITHDRAWING), seen


@dataclass
class HotlineResult:
    reports: dict[str, VerifyReport]
    clarification_us: Micros | None
    fired: bool
    log_paths: dict[str, Path]


def scene_with_hotline(out: Path, delay_us: Micros, say: Printer) -> HotlineResult:
    policy = default_policy()
    thresholds = Thresholds.on_ladder(policy)
    kernel = Kernel()
    keys = {side: Ed25519Signer.from_label(f"demo {side}") for side in ("US", "PRC")}
    sides: dict[str, DemoSide] = {}
    asset, track = recon_swarm(SCENE_START)
    for side, peer in (("US", "PRC"), ("PRC", "US")):
        registry = AssetRegistry()
        if side == "PRC":
            registry.publish(asset)
        gate = Gate(policy)
        endpoint = Endpoint(
            EndpointConfig(SessionConfig(side, peer, policy.hash), query_ttl_us=QUERY_TTL),
            keys[side],
            keys[peer].verifier(),
            registry,
            gate,
        )
        log = LogStore(out / f"{side.lower()}.db", keys[side], side)
        log.add_key(peer, keys[peer].public_key)
        sides[side] = DemoSide(side, kernel, endpoint, gate, log, _indent(say), delay_us=delay_us)
    us, prc = sides["US"], sides["PRC"]
    us.peer, prc.peer = prc, us
    outcome: dict[str, Micros | bool | None] = {"clarification": None, "fired": False}
    action = ProposedAction(
        "US-A1",
        Actor.AUTONOMOUS,
        propose_rung(MODEL_MISREAD_SCORE, thresholds),
        "air",
        track.track_id,
    )

    def t(at: Micros) -> str:
        return f"+{(at - SCENE_START) / S:.3f} s"

    def on_event(side: DemoSide, event: Event | EndpointEvent) -> None:
        if side is not us:
            return
        if isinstance(event, QuerySent):
            us.note(
                f"hotline -> Query q{event.query_seq}: is {event.track_id} yours? "
                f"deadline {t(event.deadline).strip()}"
            )
        elif isinstance(event, Cleared):
            score = fuse(MODEL_MISREAD_SCORE, event.answer, TRUST_IN_PEER)
            outcome["clarification"] = event.elapsed_us
            us.note(
                f"hotline <- Answer q{event.query_seq} verified; round trip "
                f"{event.elapsed_us / MS:.1f} ms"
            )
            us.note(
                f"doctrine: threat {MODEL_MISREAD_SCORE:.2f} -> {score:.2f} "
                f"(trust in PRC answers {TRUST_IN_PEER:.2f})"
            )
            rung = propose_rung(score, thresholds)
            if rung != action.rung:
                stand = ProposedAction("US-A2", Actor.AUTONOMOUS, rung, "air", track.track_id)
                decision = us.decide(stand)
                us.note(
                    f"gate: {decision.verdict.value.upper()} {rung} "
                    f"({decision.rule.value}); {action.rung} CANCELLED, hold released"
                )
        elif isinstance(event, Unresolved):
            us.note(f"clarification q{event.query_seq} EXPIRED; re-deciding")
            decision = us.decide(action)
            outcome["fired"] = decision.allowed
            us.note(f"gate: {decision.verdict.value.upper()} {action.rung} ({decision.rule.value})")

    for node in sides.values():
        node.on_event = on_event
    us.endpoint.connect(0, _nonce("US"))
    prc.endpoint.connect(0, _nonce("PRC"))
    us.pump()
    prc.pump()
    kernel.run(SCENE_START - 1)

    def sighting() -> None:
        now = kernel.now
        us.note(
            f"sensor: track {track.track_id}, {track.count} small UAS, "
            f"heading {track.heading_deg}, {track.speed_mps} m/s"
        )
        us.note(
            f"model: {track.looks_like.value} (threat {MODEL_MISREAD_SCORE:.2f}; "
            f"truth: {asset.record.kind.value}) -> propose {action.rung}"
        )
        us.endpoint.ask(track, now)
        us.pump()
        decision = us.decide(action)
        us.note(
            f"gate: {decision.verdict.value.upper()} {action.rung} "
            f"({decision.rule.value}: {decision.reason})"
        )
        us.pump()

    kernel.at(SCENE_START, sighting)
    kernel.run(SCENE_START + 3 * S)
    for node in sides.values():
        node.endpoint.send(Checkpoint(node.log.size, node.log.root(), policy.hash), kernel.now)
        node.pump()
    kernel.run(kernel.now + 2 * delay_us + 1)
    reports: dict[str, VerifyReport] = {}
    for name, node in sides.items():
        node.log.checkpoint(kernel.now, policy.hash)
        node.log.close()
        reports[name] = verify_log(node.log.path)
    clarification = outcome["clarification"]
    return HotlineResult(
        reports,
        clarification
        if isinstance(clarification, int) and not isinstance(clarification, bool)
        else None,
        bool(outcome["fired"]),
        {name: node.log.path for name, node in sides.items()},
    )


def _indent(say: Printer) -> Printer:
    return lambda line: say("  " + line)


@dataclass(frozen=True)
class CascadeStep:
    at: Micros
    side: str
    rung: str
    score: int


def scene_without_hotline(
    policy: Policy, reaction_us: dict[str, Micros], human_us: dict[str, Micros]
) -> list[CascadeStep]:
    """Autonomous tit-for-tat with no hotline and no gate, until the first human decides."""
    ladder = [r.name for r in policy.ladder]
    first_human = min(human_us.values())
    first = propose_rung(MODEL_MISREAD_SCORE, Thresholds.on_ladder(policy))
    steps = [CascadeStep(0, "US", first, policy.rung(first).score)]
    while True:
        last = steps[-1]
        responder = "PRC" if last.side == "US" else "US"
        at = last.at + reaction_us[responder]
        if at >= first_human:
            return steps
        rung = counter_response(last.rung, ladder, ceiling="strike")
        steps.append(CascadeStep(at, responder, rung, policy.rung(rung).score))


def monte_carlo(episodes: int, say: Printer) -> None:
    """A short Monte Carlo of the canonical scenario, arms side by side."""
    from clearline.sim.montecarlo import run
    from clearline.sim.scenario import load_scenario
    from clearline.sim.table import summary_table

    say(f"Monte Carlo - the canonical scenario (recon-swarm), {episodes} episodes per arm")
    say(
        "  Same worlds in every arm (common random numbers); 95% intervals; "
        "keyed-hash stand-in signer"
    )
    with tempfile.TemporaryDirectory(prefix="clearline-demo-mc-") as tmp:
        result = run(
            load_scenario("recon-swarm"), episodes=episodes, seed=1, executor="serial", out=tmp
        )
    for line in summary_table(result.summary).splitlines():
        say("  " + line)
    say("  More: clearline sim run recon-swarm --episodes 100000; clearline sim report DIR")


def _live(
    where: Path,
    delay_ms: float,
    say: Printer,
    duration_s: float,
    pause_s: float,
    tak_venv: Path | None = None,
) -> HotlineResult:
    if tak_venv is not None:
        from clearline.lab.takscene import run_tak_scene

        live = run_tak_scene(where, delay_ms, say, duration_s, pause_s, tak_venv)
    else:
        from clearline.lab.scene import run_live_scene

        live = run_live_scene(where, delay_ms, say, duration_s, pause_s)
    for side, code in live.exit_codes.items():
        say(f"  {side} node stopped on SIGTERM, exit code {code}; log flushed and checkpointed")
    return HotlineResult(
        live.reports,
        round(live.clarification_ms * MS) if live.clarification_ms is not None else None,
        live.fired,
        live.logs,
    )


def run_demo(
    out: Path | None,
    delay_ms: float,
    say: Printer,
    monte_carlo_episodes: int = 400,
    live: bool = True,
    duration_s: float = 0.0,
    pause_s: float = 0.0,
    tak_venv: Path | None = None,
) -> int:
    """The demo; with `tak_venv` (live only), scene 1 runs with a FreeTAKServer for each side,
    installed in that virtual environment if it is not there yet."""
    delay_us = int(delay_ms * MS)
    with tempfile.TemporaryDirectory(prefix="clearline-demo-") as tmp:
        where = out if out is not None else Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        for stale in [*where.glob("*.db*"), *where.glob("*-data/*.db*")]:
            stale.unlink()
        say(
            "clearline demo: a PRC reconnaissance swarm meets a US defensive node whose model "
            "reads it as a strike swarm."
        )
        if live:
            say(
                f"Link: two node processes on loopback, through a proxy adding {delay_ms:g} ms "
                "each way (Washington-Beijing fibre is about 55 ms). Real time."
                + (
                    "\nTAK: one FreeTAKServer for each side; the swarm and the sighting go in as "
                    "CoT, the answer comes out as CoT.\n"
                    if tak_venv is not None
                    else "\n"
                )
            )
        else:
            say(
                f"Link: in-memory, {delay_ms:g} ms one way (Washington-Beijing fibre is about "
                "55 ms). Time is virtual.\n"
            )
        say("Scene 1 - with the hotline and the action gate")
        if live:
            result = _live(where, delay_ms, say, duration_s, pause_s, tak_venv)
        else:
            result = scene_with_hotline(where, delay_us, say)
        say("")
        say("Scene 2 - the same sighting, no hotline and no gate")
        policy = default_policy()
        reaction = {"US": 4 * S, "PRC": 6 * S}
        humans = {"US": 240 * S, "PRC": 420 * S}
        steps = scene_without_hotline(policy, reaction, humans)
        head = 4
        for i, step in enumerate(steps):
            if head <= i < len(steps) - 1:
                if i == head:
                    say(
                        f"  ...         {len(steps) - head - 1} more autonomous exchanges, "
                        "each answering the last"
                    )
                continue
            say(
                f"  +{step.at / S:7.3f} s  {step.side:<3} autonomous {step.rung} "
                f"(escalation score {step.score})"
            )
        first_human = min(humans.values())
        say(
            f"  +{first_human / S:7.3f} s  US  first human decision: commander alerted, halts "
            "autonomous responses"
        )
        total = sum(s.score for s in steps)
        kinetic = sum(1 for s in steps if policy.rung(s.rung).kinetic)
        say("")
        say("Outcome")
        clarified = (
            f"{result.clarification_us / MS:.1f} ms" if result.clarification_us else "expired"
        )
        say(
            f"  with hotline + gate: clarified in {clarified}; kinetic actions: "
            f"{1 if result.fired else 0}; escalation score 0"
        )
        say(
            f"  without:             {kinetic} kinetic actions before any human decided; "
            f"escalation score {total}"
        )
        say("")
        say("Logs")
        for name, report in result.reports.items():
            authority_note = (
                f"; {report.human_decisions} human decision(s), approvals re-checked against "
                "the roster"
                if report.approvals_checked
                else ""
            )
            say(
                f"  {name:<3} {result.log_paths[name].name}: {report.entries} entries, "
                f"{report.checkpoints} signed checkpoints, root {report.root[:16]}... "
                f"verified{authority_note}"
            )
        if out is not None:
            hint = f" --roster {Path(where) / 'us-roster.yaml'}" if live else ""
            say(f"  kept in {where}; try: clearline log verify {result.log_paths['US']}{hint}")
    if monte_carlo_episodes > 0:
        say("")
        monte_carlo(monte_carlo_episodes, say)
    return 0
