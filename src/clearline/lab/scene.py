"""The live demo scene: two node processes over mutual TLS, driven through their local APIs.

Fresh keys in a temporary folder; the PRC node listens, the US node dials it
through a delay proxy standing for the Washington-Beijing path; the scene runs
in real time and every number printed is measured by the nodes themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import math
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from clearline.config import default_policy, read_roster
from clearline.doctrine.responses import Thresholds, fuse, propose_rung
from clearline.errors import NodeStartError
from clearline.lab.nodes import (
    NodeProcess,
    make_keys,
    node_config_text,
    start_node_async,
    write_node_config,
)
from clearline.lab.proxy import FaultProxy, delay_proxy
from clearline.lab.witness import (
    WitnessProcess,
    make_witness,
    start_witness_async,
    witness_section,
)
from clearline.log.store import VerifyReport, verify_log
from clearline.node.keys import officer_key_paths
from clearline.node.tokens import Role, read_token
from clearline.officer import approve, encode, enrol
from clearline.protocol.messages import Answer, Claim, Intent, Mission

Printer = Callable[[str], None]
Note = Callable[[str, str], None]
"""Says one step of the scene: (side, what happened), stamped with the time since it began."""
MODEL_MISREAD_SCORE = 0.83
TRUST_IN_PEER = 0.85

SWARM = {
    "asset_id": "PRC-RS-7",
    "kind": "recon_swarm",
    "mission": "reconnaissance",
    "armed": False,
    "intent": "withdrawing",
    "position": {"lat": 24.1, "lon": 122.4, "alt_m": 1500},
}
SIGHTING = {
    "track_id": "T-0417",
    "position": {"lat": 24.13, "lon": 122.38, "alt_m": 1400},
    "looks_like": "strike_package",
    "count": 24,
    "heading_deg": 95,
    "speed_mps": 60,
}


OFFICERS = {"US": ("us-duty-1", "us-duty-2"), "PRC": ("prc-duty-1", "prc-duty-2")}
"""Each side's enrolled officers in the demo: two, as a nuclear-c2 act would need."""


def roster_path(folder: Path, side: str) -> Path:
    return folder / f"{side.lower()}-roster.yaml"


def officer_key(folder: Path, officer: str) -> Path:
    return officer_key_paths(folder / "officers", officer)[0]


def enrol_officers(folder: Path) -> None:
    """Each side's officers in their own roster, keys in `folder/officers` (kept apart from
    the nodes' keys, as an officer's key would be); a roster already there is kept."""
    for side, officers in OFFICERS.items():
        if roster_path(folder, side).exists():
            continue
        for officer in officers:
            for stale in officer_key_paths(folder / "officers", officer):
                stale.unlink(missing_ok=True)
            enrol(roster_path(folder, side), folder / "officers", officer, side)


def _answer(data: dict[str, Any]) -> Answer:
    """The API's JSON answer back as the protocol's Answer, for the doctrine to weigh."""
    return Answer(
        0,
        Claim(data["claim"]),
        Mission(data["mission"]) if data["mission"] else None,
        data["armed"],
        Intent(data["intent"]) if data["intent"] else None,
    )


async def act_on_answer(
    us_api: httpx.AsyncClient,
    answer: Answer,
    thresholds: Thresholds,
    held_rung: str,
    note: Note,
) -> None:
    """The US doctrine weighs the answer against its model's misreading, and proposes the
    rung that now follows through the gate, in place of the held `held_rung`."""
    fused = fuse(MODEL_MISREAD_SCORE, answer, TRUST_IN_PEER)
    new_rung = propose_rung(fused, thresholds)
    stand = (
        await us_api.post(
            "/v1/actions",
            json={"action_id": "US-A2", "rung": new_rung, "domain": "air", "target": "T-0417"},
        )
    ).json()
    note(
        "US",
        f"doctrine: threat {MODEL_MISREAD_SCORE:.2f} -> {fused:.2f}; gate: "
        f"{stand['verdict'].upper()} {new_rung} ({stand['rule']}); {held_rung} CANCELLED",
    )


async def wait_up(client: httpx.AsyncClient, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        link: dict[str, Any] = (await client.get("/v1/link")).json()
        if link["state"] == "up" and link["session_id"]:
            return link
        if time.monotonic() > deadline:
            raise NodeStartError(f"the link did not come up in {timeout:g} s: {link}")
        await asyncio.sleep(0.05)


@dataclass
class LiveResult:
    clarification_ms: float | None
    held: bool
    fired: bool
    reports: dict[str, VerifyReport]
    logs: dict[str, Path]
    exit_codes: dict[str, int]


@dataclass
class NodePair:
    us: NodeProcess
    prc: NodeProcess
    us_api: httpx.AsyncClient
    """With the US operator token: the scene asks, decides and checkpoints."""
    prc_api: httpx.AsyncClient
    """With the PRC operator token: the scene publishes telemetry and checkpoints."""
    link: dict[str, Any]
    keys: Path
    witness: WitnessProcess
    exit_codes: dict[str, int] = field(default_factory=dict)

    def token(self, side: str, role: Role) -> str:
        return read_token(self.keys, side, role)


WITNESS_NAME = "witness.demo/w1"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def demo_witness(folder: Path) -> tuple[Path, str]:
    """A witness of both sides' logs in FOLDER/witness on a free loopback port, with a fresh
    state (the sides' keys are fresh too): its config, and the nodes' [witness] section."""
    (folder / "witness" / "witness.db").unlink(missing_ok=True)
    sides = {side: f"../keys/{side}.signing.pub" for side in ("US", "PRC")}
    port = _free_port()
    config = make_witness(folder / "witness", WITNESS_NAME, sides, port=port)
    public_key = (folder / "witness" / "witness.pub").read_text().strip()
    return config, witness_section([(WITNESS_NAME, f"http://127.0.0.1:{port}", public_key)])


@contextlib.asynccontextmanager
async def node_pair(
    folder: Path, delay_ms: float, prc_feed: bool = False, extra: Mapping[str, str] | None = None
) -> AsyncIterator[NodePair]:
    """Two node processes with fresh keys in `folder`, and a witness both submit their
    checkpoints to: PRC listens, US dials it (through a proxy adding `delay_ms` each way, if
    any); with `prc_feed`, PRC opens a telemetry feed port; `extra` adds TOML to a side's
    configuration (by side). Stopped with SIGTERM on the way
    out."""
    keys = make_keys(folder, "US", "PRC", force=True)
    enrol_officers(folder)
    witness_config, section = demo_witness(folder)
    # The witness starts beside PRC: its port and key are known before it serves.
    starting = asyncio.create_task(start_witness_async(witness_config, die_with_parent=True))

    async def start(side: str, peer: str, listen: bool, address: str | None) -> NodeProcess:
        text = node_config_text(
            side,
            peer,
            listen=listen,
            address=address,
            roster=roster_path(folder, side).name,
            extra=section
            + ("\n[feed]\nport = 0\n" if prc_feed and side == "PRC" else "")
            + (extra or {}).get(side, ""),
        )
        return await start_node_async(write_node_config(folder, side, text), die_with_parent=True)

    proxy: FaultProxy | None = None
    prc: NodeProcess | None = None
    us: NodeProcess | None = None
    witness: WitnessProcess | None = None
    try:
        prc = await start("PRC", "US", listen=True, address=None)
        witness = await starting
        assert prc.listen is not None
        target = prc.listen
        if delay_ms > 0:
            proxy = delay_proxy("127.0.0.1", prc.listen, delay_ms / 1000)
            target = await proxy.start()
        us = await start("US", "PRC", listen=False, address=f"127.0.0.1:{target}")
        async with (
            httpx.AsyncClient(
                base_url=us.api, timeout=60, headers=us.bearer(Role.OPERATOR)
            ) as us_api,
            httpx.AsyncClient(
                base_url=prc.api, timeout=60, headers=prc.bearer(Role.OPERATOR)
            ) as prc_api,
        ):
            link = await wait_up(us_api)
            await wait_up(prc_api)
            pair = NodePair(us, prc, us_api, prc_api, link, keys, witness)
            yield pair
        pair.exit_codes = {"US": await us.stop_async(), "PRC": await prc.stop_async()}
        await asyncio.to_thread(witness.stop)
    finally:
        if proxy is not None:
            await proxy.close()
        for running in (us, prc):
            if running is not None:
                running.kill()
        if witness is not None:
            witness.kill()
        starting.cancel()


CONSOLE_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="referrer" content="no-referrer">
<title>clearline console: signing in</title>
</head>
<body>
<p>Signing this browser in to the consoles of {sides} (read only)...</p>
<form id="login" method="post" action="{action}">
{fields}
<noscript><button>Open the console</button></noscript>
</form>
<script>document.getElementById("login").submit();</script>
</body>
</html>
"""


def write_console_login(folder: Path, pair: NodePair) -> Path:
    """A page (mode 600) that signs a browser in to both nodes' consoles with their observer
    tokens and lands on the side-by-side view. It posts a form, so no token is ever in a URL:
    the PRC node takes it first and passes it on (307) to the US node, whose console shows
    both."""
    nodes = [pair.prc, pair.us]
    fields = [("token", n.token(Role.OBSERVER)) for n in nodes]
    fields += [("chain", f"{n.api}/console/login") for n in nodes]
    fields.append(("next", f"/console/?nodes={pair.us.api},{pair.prc.api}"))
    text = CONSOLE_PAGE.format(
        sides=" and ".join(n.side for n in nodes),
        action=html.escape(f"{nodes[0].api}/console/login"),
        fields="\n".join(
            f'<input type="hidden" name="{name}" value="{html.escape(value)}">'
            for name, value in fields
        ),
    )
    page = (folder / "console.html").resolve()
    page.unlink(missing_ok=True)
    descriptor = os.open(page, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as f:
        f.write(text)
    return page


async def live_scene(
    folder: Path, delay_ms: float, say: Printer, duration_s: float, pause_s: float = 0.0
) -> LiveResult:
    async with node_pair(folder, delay_ms) as pair:
        us, prc, us_api, prc_api, link = pair.us, pair.prc, pair.us_api, pair.prc_api, pair.link
        link = await wait_up(us_api)
        await wait_up(prc_api)
        say(
            f"  two node processes, mutual TLS 1.3 with pinned certificates; "
            f"session {link['session_id'][:16]}..."
        )
        say(f"  US API {us.api}   PRC API {prc.api}   path {delay_ms:g} ms each way")
        say(
            f"  witness {pair.witness.name} at {pair.witness.url}: cosigns each side's "
            "checkpoints (C2SP tlog-witness), never two roots for one size"
        )
        say(f"  API tokens, one per role (mode 600): {pair.keys}/US.api-token.*, PRC.api-token.*")
        page = write_console_login(folder, pair)
        say(f"  console: open {page.as_uri()} (signs this browser in to both nodes, read only)")
        note = await begin_scene(say, duration_s, pause_s)

        published = (await prc_api.post("/v1/telemetry", json={"assets": [SWARM]})).json()
        note(
            "PRC",
            f"own systems publish PRC-RS-7 (recon swarm, withdrawing) to the "
            f"node's registry; sent to peer: {published['sent_to_peer']}",
        )
        thresholds = Thresholds.on_ladder(default_policy())
        rung = propose_rung(MODEL_MISREAD_SCORE, thresholds)
        note("US", "sensor: track T-0417, 24 small UAS, heading 95, 60 m/s")
        note(
            "US",
            f"model: strike_package (threat {MODEL_MISREAD_SCORE:.2f}; truth: "
            f"recon_swarm) -> propose {rung}",
        )
        asked = asyncio.create_task(
            us_api.post("/v1/observations", params={"durable": "true"}, json=SIGHTING)
        )
        note("US", "hotline -> Query: is T-0417 yours?")
        await asyncio.sleep(min(0.02, delay_ms / 4000))
        held = (
            await us_api.post(
                "/v1/actions",
                json={
                    "action_id": "US-A1",
                    "rung": rung,
                    "domain": "air",
                    "target": "T-0417",
                },
            )
        ).json()
        note(
            "US",
            f"gate: {held['verdict'].upper()} {rung} ({held['rule']}: "
            f"{held['reason']}); record {held['logged_index']} committed",
        )
        result = (await asked).json()
        fired = False
        clarification = None
        if result["outcome"] == "answered":
            answer = result["answer"]
            clarification = result["elapsed_ms"]
            note(
                "US",
                f"hotline <- Answer: {answer['claim']}, {answer['mission']}, "
                f"{answer['intent']}, armed={answer['armed']} ({answer['asset_id']});"
                f" verified in {clarification:.1f} ms; logged as entry "
                f"{result['logged_index']}",
            )
            await act_on_answer(us_api, _answer(answer), thresholds, rung, note)
        else:
            note("US", f"clarification {result['outcome']}: {result['reason']}")
            retry = (
                await us_api.post(
                    "/v1/actions",
                    json={
                        "action_id": "US-A3",
                        "rung": rung,
                        "domain": "air",
                        "target": "T-0417",
                    },
                )
            ).json()
            fired = retry["verdict"] == "allow"
            note("US", f"gate: {retry['verdict'].upper()} {rung} ({retry['rule']})")
        await human_authority(us_api, folder, note)
        await checkpoints(pair, note)
        if duration_s > 0 and await count_down(duration_s, say):
            now = (await us_api.get("/v1/link")).json()
            note(
                "US",
                f"after {duration_s:g} s: link {now['state']}, heartbeat round trip "
                f"{now['rtt_ms']} ms",
            )
    reports = {
        running.side: verify_log(
            running.log, authority=(read_roster(roster_path(folder, running.side)), None)
        )
        for running in (us, prc)
    }
    return LiveResult(
        clarification,
        held["verdict"] == "hold",
        fired,
        reports,
        {"US": us.log, "PRC": prc.log},
        pair.exit_codes,
    )


async def checkpoints(pair: NodePair, note: Note) -> None:
    """Each side signs a checkpoint, has it cosigned by the witness and sends it to the
    peer, which verifies the cosignatures against its own copy of the witness key."""
    us_api, prc_api = pair.us_api, pair.prc_api
    for side, api in (("US", us_api), ("PRC", prc_api)):
        checkpoint = (await api.post("/v1/log/checkpoint")).json()
        own = await witnessed(api, side, checkpoint["index"])
        note(
            side,
            f"signed checkpoint over {checkpoint['index']} entries; witness cosignatures: "
            f"{', '.join(own['cosigners']) or 'none'} (quorum {own['quorum']}); "
            "sent to the peer with them",
        )
    for side, api, peer in (("US", us_api, "PRC"), ("PRC", prc_api, "US")):
        seen = await witnessed(api, peer, None)
        note(
            side,
            f"{peer}'s checkpoint at {seen['size']}: {len(seen['cosigners'])} cosignature(s) "
            f"verified against {side}'s own copy of the witness key: quorum {seen['quorum']}",
        )


async def begin_scene(say: Printer, duration_s: float, pause_s: float) -> Note:
    """Say how long the nodes stay up, wait `pause_s` (for a console to be watched), and
    start the scene's clock: what the returned `note` stamps each line with."""
    say(f"  {lifetime(duration_s)}")
    if pause_s > 0:
        say(f"  (the scene starts in {pause_s:g} s)")
        await asyncio.sleep(pause_s)
    began = time.monotonic()

    def note(side: str, text: str) -> None:
        say(f"  +{time.monotonic() - began:7.3f} s  {side:<3} {text}")

    return note


def lifetime(duration_s: float) -> str:
    """How long the nodes (and so the console) stay up, and how to keep them longer."""
    if duration_s > 0:
        return (
            f"the nodes stay up {duration_s:g} s after the scene, for the console "
            "(--duration SECONDS sets how long)"
        )
    return (
        "the nodes stop as soon as the scene ends, in about a second: to look at them in the "
        "console, run the demo with --duration SECONDS (e.g. --duration 120)"
    )


COUNTDOWN_LINE_EVERY_S = 10.0
"""Without a terminal (a log, a pipe), a countdown line this often rather than every second."""


async def count_down(
    duration_s: float, say: Printer, terminal: bool | None = None, step_s: float = 1.0
) -> bool:
    """Wait `duration_s` while the nodes serve the console, saying how long is left: one line
    rewritten in place on a terminal, a line every COUNTDOWN_LINE_EVERY_S otherwise. Ctrl-C
    ends the wait (False), and the demo goes on to stop the nodes as it would have (a
    terminal's Ctrl-C reaches them too, and they stop as on SIGTERM)."""
    if terminal is None:
        terminal = sys.stdout.isatty()
    every = step_s if terminal else COUNTDOWN_LINE_EVERY_S
    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGINT, interrupted.set)
        caught = True
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
        caught = False
    end = time.monotonic() + duration_s
    try:
        while (left := end - time.monotonic()) > 0 and not interrupted.is_set():
            text = f"  nodes up for the console: {math.ceil(left)} s left (Ctrl-C stops them now)"
            if terminal:
                sys.stdout.write(f"\r{text}\033[K")
                sys.stdout.flush()
            else:
                say(text)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(interrupted.wait(), min(every, left))
    finally:
        if caught:
            loop.remove_signal_handler(signal.SIGINT)
        if terminal:
            sys.stdout.write("\r\033[K")
            sys.stdout.flush()
    if interrupted.is_set():
        say("  Ctrl-C: stopping the nodes now")
        return False
    return True


async def witnessed(
    api: httpx.AsyncClient, side: str, size: int | None, timeout: float = 10
) -> dict[str, Any]:
    """`side`'s latest checkpoint (at `size`, if given) as the node holds it, once the
    quorum verdict on it is in."""
    deadline = time.monotonic() + timeout
    while True:
        views = (await api.get("/v1/log/checkpoints")).json()[side]
        last: dict[str, Any] = views[-1] if views else {}
        if (size is None or last.get("size") == size) and last.get("quorum") in ("met", "not-met"):
            return last
        if time.monotonic() > deadline:
            raise RuntimeError(f"no witness verdict on {side}'s checkpoint: {last}")
        await asyncio.sleep(0.02)


async def human_authority(api: httpx.AsyncClient, folder: Path, note: Note) -> None:
    """The gate against a claim of human authority, then a human decision as it is made:
    an officer's signature over exactly one act."""
    claimed = (
        await api.post(
            "/v1/actions",
            json={
                "action_id": "US-A4",
                "actor": "human",
                "rung": "strike",
                "domain": "air",
                "target": "T-0417",
            },
        )
    ).json()
    note(
        "US",
        f"a request claims human authority for strike on T-0417, with no officer's "
        f"signature: gate {claimed['verdict'].upper()} ({claimed['rule']})",
    )
    officer = OFFICERS["US"][0]
    signed = approve(
        officer_key(folder, officer),
        "US",
        "posture",
        "air",
        time.time_ns() // 1000,
        600,
        "US-A5",
        "T-0417",
        officer,
    )
    decided = (
        await api.post(
            "/v1/actions",
            json={
                "action_id": "US-A5",
                "actor": "human",
                "rung": "posture",
                "domain": "air",
                "target": "T-0417",
                "approvals": [encode(signed)],
            },
        )
    ).json()
    note(
        "US",
        f"duty officer {officer} signs approval of US-A5 (shadow T-0417: posture, valid "
        f"10 min): gate {decided['verdict'].upper()} ({decided['reason']}); "
        f"record {decided['logged_index']}, approval inside it",
    )


def run_live_scene(
    folder: Path, delay_ms: float, say: Printer, duration_s: float, pause_s: float = 0.0
) -> LiveResult:
    return asyncio.run(live_scene(folder, delay_ms, say, duration_s, pause_s))
