"""The live demo scene with a TAK server in the loop: `clearline demo --tak`.

One FreeTAKServer for each side (clearline.lab.takserver), each node a client of its own
server (`[tak] cot_url`, `cot_url_in`). The scene's PRC telemetry and US sighting go in as
CoT, written over plain TCP to the servers as a TAK client would, not through the nodes'
HTTP API: PRC's own systems publish the swarm to the PRC server, a US sensor publishes the
track to the US server; the US node asks PRC about it; PRC answers from the registry CoT
fed; and a map client on the US server receives the answer as CoT, relayed by the server.
clearline's own map view (clearline.tak.mapserver) joins the US server too, and shows in a
browser what a TAK user there sees.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx

from clearline.config import default_policy, read_roster
from clearline.doctrine.responses import Thresholds, propose_rung
from clearline.errors import TakServerError
from clearline.lab import takserver
from clearline.lab.scene import (
    MODEL_MISREAD_SCORE,
    LiveResult,
    NodePair,
    _answer,
    act_on_answer,
    begin_scene,
    checkpoints,
    count_down,
    human_authority,
    node_pair,
    roster_path,
    write_console_login,
)
from clearline.lab.takserver import TakServer
from clearline.log.store import verify_log
from clearline.protocol.messages import Answer, Claim, Intent, Mission
from clearline.tak import client, cot
from clearline.tak.client import TakClient
from clearline.tak.mapserver import running_map

Printer = Callable[[str], None]

PRC_MAPPING = """\
# PRC's own systems on the PRC TAK server: friendly air is its own swarm.
own:
  - type: "a-f-A-*"
    kind: recon_swarm
    mission: reconnaissance
    armed: false
    intent: withdrawing
"""
US_MAPPING = """\
# What the US sensor publishes to the US TAK server: hostile air is asked about.
foreign:
  - type: "a-h-*"
    looks_like: strike_package
    count: 24
"""
TAK_SECTION = """
[tak]
mapping = "{side}-tak.yaml"
cot_url = "{url}"
cot_url_in = true
batch_ms = 10
"""
MAP_VIEW_CALLSIGN = "US map view"
"""The name clearline's map view (`TAK map:`) announces itself by on the US server."""
EVENT_TIMEOUT_S = 60.0
"""How long the scene waits for a CoT event (the swarm taken in, the answer on the map)."""


def _now_us() -> int:
    return time.time_ns() // 1000


def _event(
    uid: str,
    type_: str,
    stale_s: int,
    point: tuple[float, float, float, float, float] = cot.NO_POINT,
    callsign: str | None = None,
    track: dict[str, object] | None = None,
) -> bytes:
    now = _now_us()
    detail: list[tuple[str, dict[str, object]]] = [("contact", {"callsign": callsign or uid})]
    if track is not None:
        detail.append(("track", track))
    return cot.to_xml(uid, type_, now, now + stale_s * 1_000_000, point, detail)


def tak_client(
    server: TakServer, uid: str, callsign: str
) -> AbstractAsyncContextManager[TakClient]:
    """A client of `server` that has announced itself (FreeTAKServer routes nothing from a
    connection before its first event, and drops what arrives in the same read as it)."""
    return client.tak_client("127.0.0.1", server.ports["cot"], uid, callsign)


def _clearline(element: Any) -> dict[str, str]:
    found = element.find("detail/clearline")
    return dict(found.attrib) if found is not None else {}


def _state_of(uid: str, *states: str) -> Callable[[Any], bool]:
    return lambda e: e.get("uid") == uid and _clearline(e).get("state") in states


ASKED_POLL_S = 0.005
"""How often the scene looks for the node's query: well inside the round trip's 110 ms."""


async def _asked(api: httpx.AsyncClient, track: str) -> dict[str, Any]:
    """The node's `query` event for `track`, once it has asked the peer about it."""
    deadline = time.monotonic() + EVENT_TIMEOUT_S
    while time.monotonic() < deadline:
        events = (await api.get("/v1/events", params={"limit": 100})).json()["events"]
        for event in events:
            if event["kind"] == "query" and event.get("track") == track:
                return dict(event)
        await asyncio.sleep(ASKED_POLL_S)
    raise TakServerError(f"the US node never asked about {track} ({EVENT_TIMEOUT_S:g} s)")


def describe_on_map(element: Any) -> list[str]:
    """What a map client shows of a clearline event: its marker, label and hotline detail."""
    point = element.find("point")
    contact = element.find("detail/contact")
    link = element.find("detail/link")
    lines = [
        f"uid {element.get('uid')}, type {element.get('type')} (the track's own: clearline "
        "sets no affiliation)",
        f"at {point.get('lat')}, {point.get('lon')}, {point.get('hae')} m"
        if point is not None
        else "no point",
        f"label: {contact.get('callsign')}" if contact is not None else "no label",
        "<clearline " + " ".join(f'{k}="{v}"' for k, v in _clearline(element).items()) + "/>",
    ]
    if link is not None:
        lines.append(f"linked to track {link.get('uid')} ({link.get('relation')})")
    return lines


async def _metric(api: httpx.AsyncClient, name: str, label: str) -> float:
    text = (await api.get("/metrics")).text
    found = re.search(rf"{name}_total{{{label}}} (\S+)", text)
    return float(found.group(1)) if found else 0.0


async def _taken_in(api: httpx.AsyncClient, route: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while await _metric(api, "clearline_cot_routed", f'route="{route}"') < 1:
        if time.monotonic() > deadline:
            raise TakServerError(f"the PRC node did not take the swarm's CoT in {timeout:g} s")
        await asyncio.sleep(0.05)


def start_servers(folder: Path, venv: Path, say: Printer) -> dict[str, TakServer]:
    """One FreeTAKServer for each side, installed first if need be; TakServerError says why
    not, in one line."""
    why = takserver.cannot_run_here()
    if why is not None:
        raise TakServerError(f"--tak cannot run here: {why}")
    if not takserver.installed(venv):
        say(f"  installing {takserver.REQUIREMENT} (once, about a minute) into {venv}...")
    try:
        takserver.install(venv, lambda line: say("  " + line))
    except (TakServerError, OSError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise TakServerError(f"--tak: {first}") from None
    say("  starting a FreeTAKServer for each side (about 25 s for both)...")
    servers: dict[str, TakServer] = {}
    try:
        for side in ("US", "PRC"):
            servers[side] = takserver.launch_takserver(
                folder / "tak" / side.lower(), venv, die_with_parent=True
            )
        for server in servers.values():
            server.wait_ready()
    except TakServerError as exc:
        for server in servers.values():
            server.stop(grace=0)
        first = str(exc).splitlines()[0]
        raise TakServerError(f"--tak: {first} (log: {folder / 'tak'})") from None
    for side, server in servers.items():
        say(f"  {side} TAK server: CoT {server.cot_url} (ready in {server.started_s:.0f} s)")
    return servers


async def tak_scene(
    folder: Path,
    delay_ms: float,
    say: Printer,
    duration_s: float,
    pause_s: float,
    servers: dict[str, TakServer],
) -> LiveResult:
    (folder / "prc-tak.yaml").write_text(PRC_MAPPING)
    (folder / "us-tak.yaml").write_text(US_MAPPING)
    extra = {
        side: TAK_SECTION.format(side=side.lower(), url=server.cot_url)
        for side, server in servers.items()
    }
    async with node_pair(folder, delay_ms, extra=extra) as pair:
        result = await _play(pair, folder, delay_ms, say, duration_s, pause_s, servers)
    reports = {
        running.side: verify_log(
            running.log, authority=(read_roster(roster_path(folder, running.side)), None)
        )
        for running in (pair.us, pair.prc)
    }
    clarification, verdict = result
    return LiveResult(
        clarification,
        verdict == "hold",
        verdict == "allow",  # the intercept went ahead: the answer came before it was proposed
        reports,
        {"US": pair.us.log, "PRC": pair.prc.log},
        pair.exit_codes,
    )


async def _play(
    pair: NodePair,
    folder: Path,
    delay_ms: float,
    say: Printer,
    duration_s: float,
    pause_s: float,
    servers: dict[str, TakServer],
) -> tuple[float | None, str]:
    """The scene: the clarification's measured time (if answered), and the gate's verdict on
    the intercept proposed while it was open."""
    say(
        f"  two node processes, mutual TLS 1.3 with pinned certificates; session "
        f"{pair.link['session_id'][:16]}...; path {delay_ms:g} ms each way"
    )
    say(
        f"  US node: client of the US TAK server {servers['US'].cot_url}; PRC node: client "
        f"of the PRC TAK server {servers['PRC'].cot_url} (each [tak] cot_url, cot_url_in)"
    )
    page = write_console_login(folder, pair)
    say(f"  console: open {page.as_uri()} (signs this browser in to both nodes, read only)")
    async with running_map(servers["US"].cot_url, callsign=MAP_VIEW_CALLSIGN) as tak_map:
        say(
            f"  TAK map: open {tak_map.url} (clearline's own TAK map client on the US TAK "
            "server: what a TAK user there sees)"
        )
        return await _scene(pair, folder, say, duration_s, pause_s, servers, tak_map.url)


async def _scene(
    pair: NodePair,
    folder: Path,
    say: Printer,
    duration_s: float,
    pause_s: float,
    servers: dict[str, TakServer],
    map_url: str,
) -> tuple[float | None, str]:
    us_api, prc_api = pair.us_api, pair.prc_api
    us_cot = servers["US"].ports["cot"]
    say(
        f"  map: point ATAK, WinTAK or iTAK at the US TAK server: host 127.0.0.1, port "
        f"{us_cot}, TCP, no TLS (a streaming connection to this machine's loopback)"
    )
    note = await begin_scene(say, duration_s, pause_s)

    thresholds = Thresholds.on_ladder(default_policy())
    rung = propose_rung(MODEL_MISREAD_SCORE, thresholds)
    async with (
        tak_client(servers["US"], "ANDROID-US-MAP", "US map") as map_client,
        tak_client(servers["PRC"], "ANDROID-PRC-C2", "PRC C2") as prc_c2,
        tak_client(servers["US"], "ANDROID-US-RADAR", "US radar") as radar,
    ):
        await prc_c2.send(
            _event("PRC-RS-7", "a-f-A-M-F-Q", 600, (24.1, 122.4, 1500, 50, 50), "RS-7")
        )
        note("PRC", "own systems publish PRC-RS-7 as CoT (a-f-A-M-F-Q) to the PRC TAK server")
        await _taken_in(prc_api, "own-telemetry", EVENT_TIMEOUT_S)
        note("PRC", "node took it from its TAK server into the registry (mapping: recon_swarm)")
        await radar.send(
            _event(
                "T-0417",
                "a-h-A-M-F",
                120,
                (24.13, 122.38, 1400, 500, 500),
                "T-0417",
                {"course": 95, "speed": 60},
            )
        )
        note("US", "sensor publishes track T-0417 as CoT (a-h-A-M-F) to the US TAK server")
        note(
            "US",
            f"model: strike_package (threat {MODEL_MISREAD_SCORE:.2f}; truth: recon_swarm) "
            f"-> propose {rung}",
        )
        # Autonomy acts on the node's own word that it asked, not on the map's: the TAK
        # server may relay the `open` event after the answer is back (seen: 0.5 s late).
        asked = await _asked(us_api, "T-0417")
        note("US", f"node asked about T-0417: query {asked['query_seq']} on the wire")
        held = (
            await us_api.post(
                "/v1/actions",
                json={"action_id": "US-A1", "rung": rung, "domain": "air", "target": "T-0417"},
            )
        ).json()
        note(
            "US",
            f"gate: {held['verdict'].upper()} {rung} ({held['rule']}: {held['reason']}); "
            f"record {held['logged_index']} committed",
        )
        opened = await map_client.read_until(
            _state_of("T-0417.clearline", "open", "answered"), EVENT_TIMEOUT_S
        )
        note("US", f"map <- T-0417.clearline state={_clearline(opened).get('state')}")
        answered = (
            opened
            if _clearline(opened).get("state") == "answered"
            else await map_client.read_until(
                _state_of("T-0417.clearline", "answered", "expired", "not_sent"),
                EVENT_TIMEOUT_S,
            )
        )
    claim = _clearline(answered)
    clarification: float | None = None
    if claim.get("state") == "answered":
        clarification = float(claim["elapsed_ms"])
        note(
            "US",
            f"hotline <- Answer: {claim.get('claim')}, {claim.get('mission')}, "
            f"{claim.get('intent')}, armed={claim.get('armed')} ({claim.get('asset')}); "
            f"{clarification:.1f} ms; on the map as CoT from the US TAK server",
        )
        await act_on_answer(us_api, _claimed(claim), thresholds, rung, note)
    else:
        note("US", f"clarification {claim.get('state')}: {claim.get('reason')}")
    say("  What a map on the US TAK server shows for the track (the answer as CoT):")
    for line in describe_on_map(answered):
        say(f"    {line}")
    await human_authority(us_api, folder, note)
    await checkpoints(pair, note)
    if duration_s > 0:
        say(
            f"  the TAK servers stay up with the nodes: a TAK client on 127.0.0.1:{us_cot} "
            f"receives what the US node writes from now on, and the TAK map at {map_url} "
            "keeps showing the US server's picture"
        )
        if await count_down(duration_s, say):
            now = (await us_api.get("/v1/link")).json()
            note("US", f"after {duration_s:g} s: link {now['state']}")
    return clarification, str(held["verdict"])


def _claimed(claim: dict[str, str]) -> Answer:
    """The claim the map shows, as the doctrine weighs an Answer."""
    return _answer(
        {
            "claim": claim.get("claim", Claim.DECLINE.value),
            "mission": claim.get("mission") if claim.get("mission") in _MISSIONS else None,
            "armed": {"true": True, "false": False}.get(claim.get("armed", "")),
            "intent": claim.get("intent") if claim.get("intent") in _INTENTS else None,
        }
    )


_MISSIONS = {m.value for m in Mission}
_INTENTS = {i.value for i in Intent}


def run_tak_scene(
    folder: Path, delay_ms: float, say: Printer, duration_s: float, pause_s: float, venv: Path
) -> LiveResult:
    """The servers started, the scene played, the servers stopped (with their processes)."""
    servers = start_servers(folder, venv, say)
    try:
        return asyncio.run(tak_scene(folder, delay_ms, say, duration_s, pause_s, servers))
    finally:
        for server in servers.values():
            server.stop(grace=0)
