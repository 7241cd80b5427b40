"""The CoT ports against what anyone who reaches them can do: idle connections, floods
of connections and of TLS handshakes. Each bound holds, is counted by listener and
reason (`clearline_cot_refusals_total`), and leaves room for the real clients.

Sources are told apart by loopback address (127.0.0.2, 127.0.0.3, ...: all of 127/8 is
the loopback on Linux)."""

from __future__ import annotations

import asyncio
import ssl
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


# -- connection caps and idle connections -----------------------------------------------


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


# -- TLS handshakes ------------------------------------------------------------------


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
