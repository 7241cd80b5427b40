"""A fault-injecting TCP proxy (this kernel has no netem), scriptable from tests.

Each direction (`up`: client to server, `down`: server to client) has its own
`Faults`: delay and jitter, loss, duplication and reordering of chunks, byte
corruption, a byte rate (slow readers and writers), and `blackhole` (the
direction silently carries nothing while the connection stays open: a
half-open connection, or with both directions a partition). `partition()` and
`heal()` switch both directions at once. Over TLS, lost, duplicated, reordered
or corrupted bytes break the record layer and the connection ends: which is the
point, since the nodes must then fail safe, end every clarification and
reconnect.

With only a delay it stands for a long path, e.g. Washington-Beijing in fibre
(55 ms each way): chunks keep their order and throughput is not throttled.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field, replace
from typing import Literal

Direction = Literal["up", "down", "both"]


@dataclass(frozen=True)
class Faults:
    delay_s: float = 0.0
    jitter_s: float = 0.0
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    corrupt: float = 0.0
    rate_bytes_per_s: float | None = None
    blackhole: bool = False


@dataclass
class _Stats:
    chunks: int = 0
    dropped: int = 0
    corrupted: int = 0
    duplicated: int = 0
    reordered: int = 0


@dataclass
class FaultProxy:
    target_host: str
    target_port: int
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    seed: int = 0
    faults: dict[str, Faults] = field(default_factory=lambda: {"up": Faults(), "down": Faults()})
    stats: dict[str, _Stats] = field(default_factory=lambda: {"up": _Stats(), "down": _Stats()})
    connections: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    # -- scripting ------------------------------------------------------------------

    def set(self, direction: Direction = "both", **changes: object) -> None:
        for d in ("up", "down") if direction == "both" else (direction,):
            self.faults[d] = replace(self.faults[d], **changes)  # type: ignore[arg-type]

    def partition(self) -> None:
        self.set("both", blackhole=True)

    def heal(self) -> None:
        self.set("both", blackhole=False)

    def cut(self) -> None:
        """Close every proxied connection at once (a cable cut that resets)."""
        for writer in list(self._writers):
            writer.close()

    # -- running ------------------------------------------------------------------------

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, self.listen_host, self.listen_port)
        self.listen_port = self._server.sockets[0].getsockname()[1]
        return self.listen_port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                self.target_host, self.target_port
            )
        except OSError:
            writer.close()
            return
        self.connections += 1
        self._writers |= {writer, upstream_writer}
        for direction, source, sink in (
            ("up", reader, upstream_writer),
            ("down", upstream_reader, writer),
        ):
            task = asyncio.create_task(self._pipe(direction, source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _mangle(self, direction: str, chunk: bytes) -> list[bytes]:
        """What the faults make of one chunk: nothing, itself, a corrupted copy, or two."""
        faults, stats, rng = self.faults[direction], self.stats[direction], self._rng
        stats.chunks += 1
        if faults.blackhole or (faults.loss and rng.random() < faults.loss):
            stats.dropped += 1
            return []
        if faults.corrupt and rng.random() < faults.corrupt:
            stats.corrupted += 1
            flipped = bytearray(chunk)
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
            chunk = bytes(flipped)
        if faults.duplicate and rng.random() < faults.duplicate:
            stats.duplicated += 1
            return [chunk, chunk]
        return [chunk]

    async def _pipe(
        self, direction: str, source: asyncio.StreamReader, sink: asyncio.StreamWriter
    ) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def release() -> None:
            held: bytes | None = None
            while True:
                due, chunk = await queue.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not chunk:
                    if held is not None:
                        sink.write(held)
                    sink.close()
                    return
                faults = self.faults[direction]
                if held is None and faults.reorder and self._rng.random() < faults.reorder:
                    self.stats[direction].reordered += 1
                    held = chunk  # goes out after the next chunk
                    continue
                sink.write(chunk)
                if held is not None:
                    sink.write(held)
                    held = None
                if faults.rate_bytes_per_s:
                    await asyncio.sleep(len(chunk) / faults.rate_bytes_per_s)
                await sink.drain()

        releaser = asyncio.create_task(release())
        try:
            while True:
                chunk = await source.read(65536)
                faults = self.faults[direction]
                due = time.monotonic() + faults.delay_s
                if faults.jitter_s:
                    due += self._rng.uniform(0, faults.jitter_s)
                if not chunk:
                    queue.put_nowait((due, b""))
                    break
                for piece in self._mangle(direction, chunk):
                    queue.put_nowait((due, piece))
            await releaser
        except (ConnectionError, OSError):
            releaser.cancel()
            sink.close()


def delay_proxy(target_host: str, target_port: int, delay_s: float) -> FaultProxy:
    """A proxy that only adds `delay_s` each way (the demo's long path)."""
    return FaultProxy(
        target_host,
        target_port,
        faults={"up": Faults(delay_s=delay_s), "down": Faults(delay_s=delay_s)},
    )
