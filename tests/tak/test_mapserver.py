"""`clearline tak map` against a stand-in TAK server in the test's own event loop: it
announces itself first, as a TAK user does; what the server sends reaches the page's JSON;
a server that drops is redialled; the page loads nothing from anywhere; and what cannot
work (a bad URL, a server that cannot be reached, a port taken) is one line."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from clearline.cli import main
from clearline.errors import TakConnectionError
from clearline.tak import cot, mapserver
from clearline.tak.client import parse_server_url
from clearline.tak.mapserver import running_map

S = 1_000_000


def now_us() -> int:
    return time.time_ns() // 1000


def track(uid: str, clearline: dict[str, object] | None = None) -> bytes:
    at = now_us()
    detail: list[tuple[str, dict[str, object]]] = [("contact", {"callsign": uid})]
    if clearline is not None:
        detail.insert(0, ("clearline", clearline))
    return cot.to_xml(uid, "a-h-A-M-F", at, at + 120 * S, (24.13, 122.38, 1400, 5, 5), detail)


@dataclass
class StandIn:
    """A TAK server's CoT port that records what each client sends first and relays what the
    test hands it; `drop` closes every connection."""

    port: int = 0
    first: list[cot.CotEvent] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        splitter = cot.StreamSplitter()
        items: list[bytes | cot.Skipped] = []
        while not items:
            data = await reader.read(65536)
            if not data:
                return
            items = splitter.feed(data)
        parsed = cot.parse(items[0]) if isinstance(items[0], bytes) else items[0]
        assert isinstance(parsed, cot.CotEvent), parsed
        self.first.append(parsed)
        self.writers.append(writer)
        self.connected.set()
        while await reader.read(65536):
            pass

    async def send(self, data: bytes) -> None:
        for writer in self.writers:
            writer.write(data)
            await writer.drain()

    def drop(self) -> None:
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()
        self.connected.clear()


@asynccontextmanager
async def stand_in() -> AsyncIterator[StandIn]:
    server = StandIn()
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    async with listener:
        yield server
        server.drop()


async def until(check: Callable[[], Any], timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
    return found


def test_the_map_announces_itself_and_shows_what_the_server_sends() -> None:
    async def run() -> tuple[list[cot.CotEvent], dict[str, Any], httpx.Response]:
        async with (
            stand_in() as server,
            running_map(f"tcp://127.0.0.1:{server.port}", callsign="US map view") as shown,
            httpx.AsyncClient(base_url=shown.url) as web,
        ):
            await server.connected.wait()
            answered: dict[str, object] = {
                "track": "T-0417",
                "state": "answered",
                "side": "PRC",
                "claim": "ours",
            }
            await server.send(track("T-0417") + track("T-0417.clearline", answered))
            await until(lambda: "T-0417.clearline" in shown.service.picture)
            data = (await web.get("/picture.json")).json()
            page = await web.get("/")
            return server.first, data, page

    first, data, page = asyncio.run(run())
    (presence,) = first
    assert presence.type == "a-f-G-U-C"
    assert presence.callsign == "US map view"
    assert (presence.lat, presence.lon) == (0, 0)
    (marker,) = data["markers"]
    assert marker["uid"] == "T-0417"
    assert marker["hotline"]["headline"] == "answered: PRC, ours"
    assert data["connection"]["connected"] is True
    assert data["connection"]["callsign"] == "US map view"
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'id="map"' in page.text


def test_the_page_loads_nothing_from_anywhere_else() -> None:
    page = mapserver.PAGE
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "@import" not in page and "url(" not in page
    assert "innerHTML" not in page and "insertAdjacentHTML" not in page and "eval(" not in page
    policy = mapserver.POLICY
    assert policy.startswith("default-src 'none'; ")
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    assert "connect-src 'self'" in policy
    assert len(re.findall(r"'sha256-", policy)) == 2  # its one script and its one style


def test_a_page_under_another_name_is_refused() -> None:
    service = mapserver.MapService("127.0.0.1", 1)
    app = mapserver.build_app(service, mapserver.allowed_hosts("127.0.0.1"))

    async def get(host: str) -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
            return (await client.get("/picture.json", headers={"host": host})).status_code

    assert asyncio.run(get("127.0.0.1:8600")) == 200
    assert asyncio.run(get("localhost:8600")) == 200
    assert asyncio.run(get("[::1]:8600")) == 200
    assert asyncio.run(get("attacker.example:8600")) == 421
    assert asyncio.run(get("")) == 421
    assert mapserver.allowed_hosts("0.0.0.0") is None  # every address: any name


def test_a_server_that_drops_is_redialled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mapserver, "REDIAL_S", (0.1, 0.2))

    async def run() -> tuple[int, dict[str, Any]]:
        async with (
            stand_in() as server,
            running_map(f"tcp://127.0.0.1:{server.port}") as shown,
        ):
            await server.connected.wait()
            server.drop()
            await until(lambda: not shown.service.connection.connected)
            await until(lambda: len(server.first) == 2)
            await until(lambda: shown.service.connection.connected)
            await server.send(track("T-0418"))
            await until(lambda: "T-0418" in shown.service.picture)
            return len(server.first), shown.service.snapshot()["connection"]

    announced, connection = asyncio.run(run())
    assert announced == 2  # announced again on the new connection
    assert connection["connections"] == 2
    assert connection["connected"] is True


def test_what_cannot_work_is_said_in_one_line() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]  # nothing listens on it once this is closed

    def one_line(args: list[str], code: int) -> str:
        result = CliRunner().invoke(main, ["tak", "map", *args])
        assert result.exit_code == code, result.output
        assert "Traceback" not in result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        return lines[0]

    assert one_line(["--server", f"tcp://127.0.0.1:{closed}", "--port", "0"], 1) == (
        f"error: tak map: cannot reach the TAK server at tcp://127.0.0.1:{closed}: "
        "Connection refused"
    )
    assert "expected tcp://HOST:PORT" in one_line(["--server", "127.0.0.1:8087"], 2)
    assert "not TLS" in one_line(["--server", "tls://127.0.0.1:8089"], 2)
    assert "Missing option '--server'" in one_line([], 2)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        line = one_line(["--server", f"tcp://127.0.0.1:{closed}", "--port", str(port)], 1)
    assert line.startswith(f"error: tak map: cannot serve the map on 127.0.0.1:{port}: ")


def test_server_urls() -> None:
    assert parse_server_url("tcp://127.0.0.1:8087") == ("127.0.0.1", 8087)
    assert parse_server_url("tcp://takserver.example:8087") == ("takserver.example", 8087)
    for bad in ("tcp://host:0", "tcp://host:70000", "udp://host:8087", "tcp://host", "host:1"):
        with pytest.raises(ValueError, match="expected tcp://HOST:PORT"):
            parse_server_url(bad)


def test_an_unreachable_server_is_one_error() -> None:
    async def run() -> None:
        async with running_map("tcp://127.0.0.1:1"):
            pass

    with pytest.raises(TakConnectionError, match=r"^cannot reach the TAK server at tcp://127"):
        asyncio.run(run())
