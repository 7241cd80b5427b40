"""Hostile clients for the flood tests, on an event loop of their own in a thread: a slowloris
of half-open connections, event-stream subscribers by the thousand, and request bodies far
over the API's limit. Each keeps counts a test can read while it runs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any


def loopback_sources(count: int) -> list[str]:
    """`count` loopback addresses to connect from (127.0.0.2 and up), so that a flood comes
    from many sources as the per-source cap sees them; empty if this machine cannot bind
    them (then the caller skips)."""
    sources = [f"127.0.0.{2 + i}" for i in range(count)]
    try:
        for source in sources[:1] + sources[-1:]:
            with socket.socket() as probe:
                probe.bind((source, 0))
    except OSError:
        return []
    return sources


@dataclass
class Counts:
    held: int = 0
    peak: int = 0
    opened: int = 0
    closed_by_peer: int = 0
    failed: int = 0
    statuses: Counter[int] = field(default_factory=Counter)

    def hold(self) -> None:
        self.held += 1
        self.peak = max(self.peak, self.held)


class Abuse:
    """The hostile clients' event loop, in a daemon thread; `stop` ends them all."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.stopping: asyncio.Event | None = None
        self.tasks: list[asyncio.Future[Any]] = []
        started = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self.loop)
            self.stopping = asyncio.Event()
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        started.wait(10)

    def start(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        self.tasks.append(asyncio.run_coroutine_threadsafe(coroutine, self.loop))

    def call(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 120) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    async def _wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True if stopping."""
        assert self.stopping is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)
        return self.stopping.is_set()

    def stop(self) -> None:
        """End every client (their connections close) and the loop."""
        assert self.stopping is not None
        self.loop.call_soon_threadsafe(self.stopping.set)
        for task in self.tasks:
            with contextlib.suppress(Exception):
                task.result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    # -- the clients ----------------------------------------------------------------------

    async def slowloris(
        self, port: int, count: int, sources: list[str], counts: Counts, pause: float = 0.5
    ) -> None:
        """`count` connections to the node's peer port that never start TLS, from `sources`
        in turn; each one the node closes is opened again after `pause` s."""

        async def one(source: str) -> None:
            while not self.stopping_set():
                try:
                    reader, writer = await asyncio.open_connection(
                        "127.0.0.1", port, local_addr=(source, 0)
                    )
                except OSError:
                    counts.failed += 1
                else:
                    counts.opened += 1
                    counts.hold()
                    try:
                        await self._until_closed(reader)
                        if not self.stopping_set():
                            counts.closed_by_peer += 1
                    finally:
                        counts.held -= 1
                        writer.close()
                if await self._wait(pause):
                    return

        await asyncio.gather(*(one(sources[i % len(sources)]) for i in range(count)))

    async def subscribers(
        self, api: str, token: str, count: int, counts: Counts, retry: float = 3.0
    ) -> None:
        """`count` clients of GET /v1/events/stream, each reading what it is sent; refused
        (or ended), each asks again after `retry` s, as an EventSource would."""
        host, port = api.removeprefix("http://").rsplit(":", 1)
        request = (
            f"GET /v1/events/stream HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
        ).encode()
        opening = asyncio.Semaphore(200)  # the SYNs of 2,000 at once would overflow the backlog

        async def one() -> None:
            while not self.stopping_set():
                writer = None
                try:
                    async with opening:
                        reader, writer = await asyncio.open_connection(host, int(port))
                        writer.write(request)
                        status = int((await reader.readline()).split()[1])
                    if self.stopping_set():
                        return  # a place freed by the others stopping: not the node's doing
                    counts.opened += 1
                    counts.statuses[status] += 1
                    if status == 200:
                        counts.hold()
                        try:
                            await self._until_closed(reader)
                            if not self.stopping_set():
                                counts.closed_by_peer += 1
                        finally:
                            counts.held -= 1
                except (OSError, ValueError, IndexError):
                    counts.failed += 1
                finally:
                    if writer is not None:
                        writer.close()
                if await self._wait(retry):
                    return

        await asyncio.gather(*(one() for _ in range(count)))

    async def big_bodies(
        self, api: str, token: str, size: int, results: list[dict[str, Any]]
    ) -> None:
        """POST /v1/telemetry with a `size`-byte body, again and again until stopped, in
        turn with its Content-Length and chunked (no length: the node must count); each is
        sent whole unless the node closes the connection first."""
        chunked = False
        while not self.stopping_set():
            results.append(await self.big_body(api, token, size, chunked))
            chunked = not chunked

    async def big_body(self, api: str, token: str, size: int, chunked: bool) -> dict[str, Any]:
        host, port = api.removeprefix("http://").rsplit(":", 1)
        framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
        head = (
            f"POST /v1/telemetry HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"{framing}\r\n\r\n"
        ).encode()
        asset = json.dumps(
            {
                "asset_id": "US-DECOY-0000",
                "kind": "recon_swarm",
                "mission": "reconnaissance",
                "armed": False,
                "position": {"lat": 24.1, "lon": 122.4},
            }
        ).encode()
        piece = (asset + b",") * (65_536 // (len(asset) + 1))
        began = time.monotonic()
        reader, writer = await asyncio.open_connection(host, int(port))
        sent = 0

        async def send() -> None:
            nonlocal sent
            writer.write(head)
            while sent < size:
                chunk = (b'{"assets": [' if sent == 0 else b"") + piece[: size - sent]
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                sent += len(chunk)
                await writer.drain()
            if chunked:
                writer.write(b"0\r\n\r\n")
            await writer.drain()

        sender = asyncio.create_task(send())
        try:
            status_line = await reader.readline()
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            answered = time.monotonic() - began
            # The rest of the body goes on regardless, as an attacker's would, until the node
            # closes the connection.
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(asyncio.shield(sender), 60)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await sender
            writer.close()
        return {
            "chunked": chunked,
            "status": int(status_line.split()[1]),
            "seconds": answered,
            "seconds_to_send": time.monotonic() - began,
            "sent_bytes": sent,
            "response_bytes": len(body),
            "detail": json.loads(body).get("detail", ""),
        }

    # -- helpers --------------------------------------------------------------------------

    def stopping_set(self) -> bool:
        return self.stopping is not None and self.stopping.is_set()

    async def _until_closed(self, reader: asyncio.StreamReader) -> None:
        """Read and drop what comes until the other end closes, or we stop."""
        assert self.stopping is not None
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            while True:
                read = asyncio.ensure_future(reader.read(65_536))
                done, _ = await asyncio.wait({read, stop}, return_when=asyncio.FIRST_COMPLETED)
                if read not in done:
                    read.cancel()
                    return
                try:
                    if not read.result():
                        return
                except OSError:
                    return
        finally:
            stop.cancel()
