"""The telemetry feed's port, when the node's configuration has a `[feed]` section.

Each connection sends a token frame and then records (`clearline.feed`, docs/feed.md);
its records go where POST /v1/telemetry sends them (`Node.publish`): into the registry
and, batched under one signature, to the peer. A skipped frame is counted by reason
and answered with one line on the same connection (`frame N skipped: reason: detail`)
while the feed reads its answers (the first 64 of a read one by one, then how many more);
a missing, late or wrong token is answered with one line and the connection is closed.
Records taken while the link to the peer is down go into the registry and are not sent,
counted and said in one line per read.

Nothing a feed does can hold the event loop or grow memory: connections are capped,
each read is bounded and parsed before the next, the loop runs everything else
between reads, and while the link has `max_unsent_bytes` of signed telemetry waiting
for the peer the feeds are not read (TCP slows the sender).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from clearline.feed import FeedReader
from clearline.node.config import Feed, setting_error
from clearline.node.link import wall_us
from clearline.node.tokens import Role

if TYPE_CHECKING:
    from clearline.node.node import Node

log = logging.getLogger("clearline.node.feed")

READ_BYTES = 64 * 1024
"""One read from a feed: parsed (about 1,500 records) and sent before the next, so that the
first record of a read waits for no more than that many behind it."""
ANSWER_BUFFER = 64 * 1024
"""Lines about skipped frames stop while this much is unread by the feed (they are counted)."""
DRAIN_WAIT_S = 0.001
TOKEN_DEADLINE_S = 10.0
"""A connection that has not sent its token this long after connecting is refused: an
idle connection must not hold one of the few places for long."""


class FeedService:
    def __init__(self, node: Node, settings: Feed) -> None:
        self.node = node
        self.settings = settings
        self.connections = 0
        self.port: int | None = None
        self.frames = node.metrics.feed_frames
        self.unsent = node.metrics.feed_unsent

    async def start(self) -> None:
        try:
            server = await asyncio.start_server(
                self._serve, self.settings.host, self.settings.port, limit=READ_BYTES
            )
        except OSError as exc:
            where = f"{self.settings.host}:{self.settings.port}"
            raise setting_error(
                self.node.config, ("feed", "port"), f"cannot listen on {where}: {exc.strerror}"
            ) from None
        self.port = server.sockets[0].getsockname()[1]
        self.node.spawn(self._run(server))
        log.info("feed: port %d", self.port)

    async def _run(self, server: asyncio.Server) -> None:
        async with server:
            await server.serve_forever()

    def _check_token(self, token: bytes) -> bool:
        try:
            caller = self.node.tokens.check(token.decode())
        except UnicodeDecodeError:
            return False
        return caller is not None and caller.role.grants(Role.SENSOR)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        who = f"feed {writer.get_extra_info('peername')}"
        if self.connections >= self.settings.max_connections:
            self.node.refuse(
                who, f"feed connections at their cap ({self.settings.max_connections})"
            )
            writer.transport.abort()
            return
        self.connections += 1
        parser = FeedReader(self._check_token)
        node = self.node
        token_due = asyncio.get_running_loop().time() + TOKEN_DEADLINE_S

        def answer(line: str) -> None:
            if writer.transport.get_write_buffer_size() < ANSWER_BUFFER:
                writer.write(line.encode() + b"\n")

        try:
            while True:
                if parser.authenticated:
                    data = await reader.read(READ_BYTES)
                else:
                    try:
                        async with asyncio.timeout_at(token_due):
                            data = await reader.read(READ_BYTES)
                    except TimeoutError:
                        why = f"no token within {TOKEN_DEADLINE_S:g} s"
                        node.refuse(who, why)
                        answer(f"refused: {why}")
                        await writer.drain()
                        break
                if not data:
                    break
                batch = parser.feed(data, wall_us())
                if batch.taken:
                    self.frames.labels(outcome="taken").inc(batch.taken)
                    if not node.publish_read(batch):
                        self.unsent.inc(batch.taken)
                        answer(
                            f"{batch.taken} records taken into the registry, not sent: "
                            "the link to the peer is down"
                        )
                for reason, count in batch.skips.items():
                    self.frames.labels(outcome=reason).inc(count)
                for skipped in batch.skipped:
                    answer(skipped.line())
                unlisted = sum(batch.skips.values()) - len(batch.skipped)
                if unlisted:
                    answer(f"{unlisted} more frames skipped in this read (counted by reason)")
                if batch.refused is not None:
                    node.refuse(who, batch.refused)
                    answer(f"refused: {batch.refused}")
                    await writer.drain()
                    break
                # The peer sets the pace: while the link is this far behind, stop reading.
                while node.unsent_bytes > self.settings.max_unsent_bytes:
                    await asyncio.sleep(DRAIN_WAIT_S)
                await asyncio.sleep(0)  # a feed that never pauses must not hold the loop
        except (ConnectionError, OSError):
            pass
        finally:
            self.connections -= 1
            writer.transport.abort()


async def start_feed(node: Node) -> FeedService | None:
    """The node's feed port, if its configuration has a `[feed]` section."""
    settings = node.config.feed
    if settings is None:
        return None
    service = FeedService(node, settings)
    await service.start()
    return service
