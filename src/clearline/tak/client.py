"""A plain TCP client of a TAK server, announced as a TAK user is: the demo's clients and
the map view (clearline.tak.mapserver) connect through it.

It speaks what a TAK server's plain CoT port speaks (XML events back to back, or TAK
Protocol stream frames), cut into events by `cot.StreamSplitter` and parsed by `cot`'s
parser, which never raises on what the server sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Final

from clearline.errors import TakConnectionError
from clearline.tak import cot

PRESENCE_TYPE: Final = "a-f-G-U-C"
"""What TAK users announce themselves as: a friendly ground unit (a person with a device)."""
PRESENCE_STALE_S: Final = 600
ANNOUNCE_PAUSE_S: Final = 0.5
"""FreeTAKServer takes a connection's first read as the client's presence and drops whatever
else that read holds: nothing is sent for this long after the presence."""
CONNECT_TIMEOUT_S: Final = 10.0
READ_BYTES: Final = 65536

_SERVER_URL = re.compile(r"tcp://([^\s:/]+):(\d{1,5})")


def parse_server_url(url: str) -> tuple[str, int]:
    """(host, port) of a TAK server's plain CoT port, written as pytak's COT_URL is
    (`tcp://HOST:PORT`); ValueError saying what is expected otherwise."""
    found = _SERVER_URL.fullmatch(url.strip())
    if found is None or not 0 < int(found.group(2)) < 65536:
        if url.startswith(("tls://", "ssl://")):
            raise ValueError(
                f"{url}: only a plain TCP CoT port is supported (tcp://HOST:PORT), not TLS"
            )
        raise ValueError(f"{url}: expected tcp://HOST:PORT (a TAK server's CoT port)")
    return found.group(1), int(found.group(2))


def presence(uid: str, callsign: str, stale_s: int = PRESENCE_STALE_S) -> bytes:
    """A TAK user's announcement of itself: no position (CoT's 0,0 with unknown error)."""
    now = time.time_ns() // 1000
    detail = [("contact", {"callsign": callsign})]
    return cot.to_xml(uid, PRESENCE_TYPE, now, now + stale_s * 1_000_000, cot.NO_POINT, detail)


@dataclass
class TakClient:
    """One connection to a TAK server's CoT port."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    splitter: cot.StreamSplitter
    url: str

    async def send(self, event: bytes) -> None:
        self.writer.write(event)
        await self.writer.drain()

    async def read(self) -> list[bytes | cot.Skipped]:
        """The events the next bytes from the server complete (each still to be parsed), or
        why they were dropped; TakConnectionError when the server closes the connection."""
        try:
            data = await self.reader.read(READ_BYTES)
        except OSError as exc:
            raise TakConnectionError(f"the TAK server at {self.url} dropped: {exc}") from None
        if not data:
            raise TakConnectionError(f"the TAK server at {self.url} closed the connection")
        return self.splitter.feed(data)

    async def read_until(self, until: Callable[[Any], bool], timeout: float) -> Any:
        """The first event (an XML element) that satisfies `until`."""
        async with asyncio.timeout(timeout):
            while True:
                for item in await self.read():
                    # Parsed first by clearline's own parser, which refuses any DTD.
                    if isinstance(item, bytes) and isinstance(cot.parse(item), cot.CotEvent):
                        element = ET.fromstring(item)
                        if until(element):
                            return element

    def close(self) -> None:
        self.writer.close()


async def connect(host: str, port: int, uid: str, callsign: str) -> TakClient:
    """A client of the TAK server at host:port that has announced itself (FreeTAKServer routes
    nothing from a connection before its first event); TakConnectionError, in one line, if the
    server cannot be reached."""
    url = f"tcp://{host}:{port}"
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port), CONNECT_TIMEOUT_S
        )
    except TimeoutError:
        raise TakConnectionError(
            f"cannot reach the TAK server at {url}: no answer in {CONNECT_TIMEOUT_S:g} s"
        ) from None
    except OSError as exc:
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        raise TakConnectionError(f"cannot reach the TAK server at {url}: {why}") from None
    client = TakClient(reader, writer, cot.StreamSplitter(), url)
    try:
        await client.send(presence(uid, callsign))
        await asyncio.sleep(ANNOUNCE_PAUSE_S)
    except OSError as exc:
        client.close()
        raise TakConnectionError(f"the TAK server at {url} dropped: {exc}") from None
    except BaseException:
        client.close()
        raise
    return client


@contextlib.asynccontextmanager
async def tak_client(host: str, port: int, uid: str, callsign: str) -> AsyncIterator[TakClient]:
    """`connect`, closed on leaving."""
    client = await connect(host, port, uid, callsign)
    try:
        yield client
    finally:
        client.close()
