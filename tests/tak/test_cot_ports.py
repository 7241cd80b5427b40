"""The CoT ports against what anyone who reaches them can do: junk, idle connections,
floods of connections and of TLS handshakes. Each bound holds, is counted by listener and
reason (`clearline_cot_refusals_total`), and leaves room for the real clients.

Sources are told apart by loopback address (127.0.0.2, 127.0.0.3, ...: all of 127/8 is
the loopback on Linux)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

import pytest

from clearline.node import cot as node_cot
from clearline.node.cot import CotService
from clearline.protocol.events import LinkState
from tests.tak.test_cot import event_xml
from tests.tak.test_cot_service import StandIn, service
from tests.tak.test_cot_tls import _client, _pair

FAR = "2099-01-01T00:00:00Z"
JUNK = b"x\xbf\x00"  # two items: bytes outside any event, a TAK Protocol frame of no length


def published(node: StandIn) -> list[str]:
    return [asset.record.asset_id for batch in node.published for asset in batch]


def refusals(node: StandIn, listener: str, reason: str) -> float:
    value = node.metrics.registry.get_sample_value(
        "clearline_cot_refusals_total", {"listener": listener, "reason": reason}
    )
    return value or 0.0


def running(
    tmp_path: Path,
    body: Callable[[CotService, StandIn], Awaitable[Any]],
    **settings: Any,
) -> Any:
    """Run `body` against a started service, in one event loop, then stop it."""

    async def run() -> Any:
        svc, node = service(tmp_path, **settings)
        node.gate = SimpleNamespace(context=SimpleNamespace(link=LinkState.UP))  # type: ignore[attr-defined]
        await svc.start()
        try:
            return await body(svc, node)
        finally:
            for task in node.tasks:
                task.cancel()
            await asyncio.gather(*node.tasks, return_exceptions=True)

    return asyncio.run(run())


class Conn(NamedTuple):
    """A client connection; held as a whole, since a writer that is let go closes it."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


async def connect(port: int, source: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> Conn:
    return Conn(
        *await asyncio.open_connection(
            "127.0.0.1",
            port,
            local_addr=(source, 0),
            ssl=tls,
            server_hostname="127.0.0.1" if tls is not None else None,
        )
    )


async def closed_within(conn: Conn, seconds: float) -> bool:
    """Whether the node closes the connection within `seconds` (what it sends is read)."""
    try:
        async with asyncio.timeout(seconds):
            while await conn.reader.read(65536):
                pass
    except TimeoutError:
        return False
    except (ConnectionError, ssl.SSLError):
        pass
    return True


async def sent_and_read(port: int, context: ssl.SSLContext, source: str) -> str:
    """A TLS client with `context` sends an event: "read" if the node keeps reading it."""
    try:
        conn = await connect(port, source, context)
        conn.writer.write(event_xml("PRC-RS-7", stale=FAR))
        await conn.writer.drain()
    except (ssl.SSLError, ConnectionError, OSError) as exc:
        return f"refused ({type(exc).__name__})"
    closed = await closed_within(conn, 0.5)
    conn.writer.close()
    return "closed" if closed else "read"


# -- A: junk -------------------------------------------------------------------------------


def test_junk_is_counted_at_once_and_a_run_of_64_items_closes_its_connection(
    tmp_path: Path,
) -> None:
    """Skipped items never wait on the rate (one event a second here), and a sender that
    sends nothing else for 64 items in a row is closed; what it sent before is kept."""

    async def body(svc: CotService, node: StandIn) -> None:
        url = f"tcp://127.0.0.1:{svc.ports['tcp']}"
        conn = await connect(svc.ports["tcp"])
        conn.writer.write(event_xml("PRC-RS-7", stale=FAR) + JUNK * 20)
        assert not await closed_within(conn, 0.3)
        assert svc.tally.as_dict() == {"malformed": 20, "bad-header": 20}
        assert published(node) == ["PRC-RS-7"]  # the event before the junk
        conn.writer.write(JUNK * 1000)
        assert await closed_within(conn, 1.0)
        assert svc.tally["malformed"] + svc.tally["bad-header"] == 64
        assert refusals(node, url, "not-cot") == 1

    running(tmp_path, body, listen=("tcp://127.0.0.1:0",), events_per_s=1)


def test_events_the_parser_refuses_count_in_the_run_too(tmp_path: Path) -> None:
    async def body(svc: CotService, node: StandIn) -> None:
        conn = await connect(svc.ports["tcp"])
        conn.writer.write(b"<event><x></event>" * 63 + event_xml("PRC-RS-7", stale=FAR))
        conn.writer.write(b"<event><x></event>" * 63)
        assert not await closed_within(conn, 0.5)  # an event between: no run of 64
        conn.writer.write(b"<event><x></event>")
        assert await closed_within(conn, 1.0)
        assert svc.tally["malformed"] == 127 and published(node) == ["PRC-RS-7"]

    running(tmp_path, body, listen=("tcp://127.0.0.1:0",), events_per_s=1000)


def test_a_junk_flood_ends_with_its_senders(tmp_path: Path) -> None:
    """Four connections send junk as fast as they can for a second, then stop sending: the
    node has closed each of them already, with nothing left in its buffers to work
    through (it used to read them on at 2,000 items a second for minutes)."""

    def flood(port: int, until: float, closed: list[bool]) -> None:
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.settimeout(0.5)
            blob = JUNK * 21845
            try:
                while time.monotonic() < until:
                    s.sendall(blob)
                s.shutdown(socket.SHUT_WR)
                s.settimeout(3)
                while s.recv(65536):
                    pass
            except TimeoutError:
                closed.append(False)
                return
            except OSError:
                pass  # reset by the node, or a send into a closed connection
            closed.append(True)

    async def body(svc: CotService, node: StandIn) -> None:
        closed: list[bool] = []
        until = time.monotonic() + 1
        threads = [
            threading.Thread(target=flood, args=(svc.ports["tcp"], until, closed)) for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            await asyncio.sleep(0.05)
        assert closed == [True] * 4
        listener = next(iter(svc.listeners.values()))
        assert listener.connections.held == 0
        url = f"tcp://127.0.0.1:{svc.ports['tcp']}"
        assert refusals(node, url, "not-cot") == 4

    running(tmp_path, body, listen=("tcp://127.0.0.1:0",))


# -- B: connection caps and idle connections -----------------------------------------------


def test_idle_plain_connections_do_not_lock_out_a_certificate_client(tmp_path: Path) -> None:
    """Each listener has its own cap: idle plain-TCP connections (no credential) fill the
    plain port only, and a client with a certificate still gets in on the TLS port."""
    node_crt, _ = _pair(tmp_path, "node")
    member = _pair(tmp_path, "member")
    (tmp_path / "clients.pem").write_bytes(member[0].read_bytes())

    async def body(svc: CotService, node: StandIn) -> None:
        port = svc.ports["tcp"]
        idle = [await connect(port, f"127.0.0.{i}") for i in range(1, 5)]
        await asyncio.sleep(0.1)
        tls = svc.ports["tls"]
        assert await sent_and_read(tls, _client(node_crt, member), "127.0.0.6") == "read"
        await asyncio.sleep(0.2)
        assert published(node) == ["PRC-RS-7"]
        extra = await connect(port, "127.0.0.5")  # the plain port is full
        assert await closed_within(extra, 0.5)
        assert refusals(node, f"tcp://127.0.0.1:{port}", "max-connections") == 1
        assert not any([await closed_within(conn, 0.05) for conn in idle])

    running(
        tmp_path,
        body,
        listen=("tcp://127.0.0.1:0", "tls://127.0.0.1:0"),
        tls_cert="node.crt",
        tls_key="node.key",
        tls_client_ca="clients.pem",
        max_connections=4,
    )


def test_one_source_holds_at_most_a_quarter_of_a_port(tmp_path: Path) -> None:
    async def body(svc: CotService, node: StandIn) -> None:
        for name in ("tcp", "out"):
            port = svc.ports[name]
            url = f"tcp://127.0.0.1:{port}"
            held = [await connect(port) for _ in range(2)]
            third = await connect(port)
            assert await closed_within(third, 0.5), name
            assert refusals(node, url, "per-source") == 1, name
            other = await connect(port, "127.0.0.2")
            if name == "out":  # a reader from elsewhere gets the hotline's state
                latest = await asyncio.wait_for(other.reader.read(65536), 1)
                assert b"clearline.link.US" in latest
            assert not await closed_within(other, 0.2), name
            assert not any([await closed_within(conn, 0.05) for conn in held]), name

    running(
        tmp_path, body, listen=("tcp://127.0.0.1:0",), out="tcp://127.0.0.1:0", max_connections=8
    )


def test_a_connection_that_sends_nothing_for_idle_s_is_closed(tmp_path: Path) -> None:
    async def body(svc: CotService, node: StandIn) -> None:
        port = svc.ports["tcp"]
        silent = await connect(port)
        pinging = await connect(port, "127.0.0.2")
        reader_of_out = await connect(svc.ports["out"])
        for i in range(8):  # a TAK client's pings
            pinging.writer.write(event_xml("PRC-RS-7", stale=FAR))
            await asyncio.sleep(0.2)
            if i == 0:
                assert not await closed_within(silent, 0.01)  # not yet
        assert await closed_within(silent, 0.1)
        assert not await closed_within(pinging, 0.1)
        assert not await closed_within(reader_of_out, 0.1)  # a map that only listens stays
        assert refusals(node, f"tcp://127.0.0.1:{port}", "idle") == 1

    running(tmp_path, body, listen=("tcp://127.0.0.1:0",), out="tcp://127.0.0.1:0", idle_s=0.5)


# -- C, D: TLS handshakes ------------------------------------------------------------------


@pytest.fixture
def tls_files(tmp_path: Path) -> dict[str, Any]:
    node_crt, _ = _pair(tmp_path, "node")
    member = _pair(tmp_path, "member")
    stranger = _pair(tmp_path, "stranger")
    (tmp_path / "clients.pem").write_bytes(member[0].read_bytes())
    return {
        "settings": {
            "listen": ("tls://127.0.0.1:0",),
            "tls_cert": "node.crt",
            "tls_key": "node.key",
            "tls_client_ca": "clients.pem",
        },
        "member": _client(node_crt, member),
        "stranger": _client(node_crt, stranger),
        "none": _client(node_crt, None),
    }


def test_tls_handshakes_in_progress_are_capped_per_port_and_per_source(
    tmp_path: Path, tls_files: dict[str, Any]
) -> None:
    """Connections that never finish a handshake take at most `max_handshakes` of a port,
    `max_handshakes_per_source` from one address; the rest are closed at once, and a
    client with a certificate gets in as soon as they go."""

    async def body(svc: CotService, node: StandIn) -> None:
        port = svc.ports["tls"]
        url = f"tls://127.0.0.1:{port}"
        held = [await connect(port, source) for source in ("127.0.0.1", "127.0.0.1")]
        over = await connect(port, "127.0.0.1")
        assert await closed_within(over, 0.5)
        assert refusals(node, url, "handshakes-per-source") == 1
        held += [await connect(port, "127.0.0.2") for _ in range(2)]
        over = await connect(port, "127.0.0.3")
        assert await closed_within(over, 0.5)
        assert refusals(node, url, "max-handshakes") == 1
        assert not any([await closed_within(conn, 0.05) for conn in held])
        assert (await sent_and_read(port, tls_files["member"], "127.0.0.4")).startswith(
            ("refused", "closed")
        )
        for conn in held:
            conn.writer.close()
        await asyncio.sleep(0.2)
        assert await sent_and_read(port, tls_files["member"], "127.0.0.4") == "read"

    running(tmp_path, body, **tls_files["settings"], max_handshakes=4, max_handshakes_per_source=2)


def test_refused_and_stalled_tls_handshakes_are_counted(
    tmp_path: Path, tls_files: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(node_cot, "TLS_HANDSHAKE_S", 0.5)

    async def body(svc: CotService, node: StandIn) -> None:
        port = svc.ports["tls"]
        url = f"tls://127.0.0.1:{port}"
        stalled = await connect(port)
        for who in ("stranger", "none"):
            assert (await sent_and_read(port, tls_files[who], "127.0.0.2")).startswith(
                ("refused", "closed")
            )
        assert await closed_within(stalled, 1.0)
        assert refusals(node, url, "tls-failed") == 2
        assert refusals(node, url, "tls-timeout") == 1
        assert await sent_and_read(port, tls_files["member"], "127.0.0.3") == "read"

    running(tmp_path, body, **tls_files["settings"])
