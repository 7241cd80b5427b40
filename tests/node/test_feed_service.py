"""The feed's port in a node: a token first, records published, bad frames answered and
counted, a wrong token refused, and a link that falls behind pauses the reading."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from clearline import feed
from clearline.doctrine.registry import OwnAsset
from clearline.node.config import Feed
from clearline.node.feed import FeedService
from clearline.node.metrics import NodeMetrics
from clearline.node.tokens import Caller, Role
from clearline.protocol.messages import AssetKind, Mission, Position

SENSOR, OBSERVER = "sensor-secret", "observer-secret"


class StubNode:
    """What the feed uses of a node."""

    def __init__(self) -> None:
        self.config = SimpleNamespace(source="<test>", path=lambda p: Path(p))
        self.metrics = NodeMetrics("PRC")
        self.tokens = SimpleNamespace(check=self._check)
        self.published: list[OwnAsset] = []
        self.refused: list[str] = []
        self.unsent_bytes = 0
        self.link_up = True
        self.tasks: list[asyncio.Task[Any]] = []

    @staticmethod
    def _check(token: str) -> Caller | None:
        roles = {SENSOR: Role.SENSOR, OBSERVER: Role.OBSERVER}
        return Caller(token, roles[token]) if token in roles else None

    def publish_read(self, batch: feed.Batch) -> bool:
        self.published.extend(batch.records)
        return self.link_up

    def refuse(self, peer: str, reason: str) -> None:
        self.refused.append(reason)

    def spawn(self, coroutine: Any) -> None:
        self.tasks.append(asyncio.ensure_future(coroutine))


def record(asset_id: str) -> bytes:
    return feed.point_frame(
        asset_id, AssetKind.UNCREWED_AIRCRAFT, Mission.PATROL, False, Position(1, 2, 3), at=0
    )


def frames(node: StubNode, outcome: str) -> float:
    value = node.metrics.registry.get_sample_value(
        "clearline_feed_frames_total", {"outcome": outcome}
    )
    return value or 0.0


async def _service(node: StubNode) -> FeedService:
    service = FeedService(node, Feed(port=0))  # type: ignore[arg-type]
    await service.start()
    return service


async def _until(condition: Any) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


def test_records_are_published_and_bad_frames_answered() -> None:
    async def run() -> None:
        node = StubNode()
        service = await _service(node)
        assert service.port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
        writer.write(feed.token_frame(SENSOR) + record("A") + b"\x00\x02\x07\x00" + record("B"))
        writer.write(record("bad id"))
        await writer.drain()
        assert await reader.readline() == b"frame 2 skipped: unknown-type: frame type 7\n"
        line = await reader.readline()
        assert line.startswith(b"frame 4 skipped: bad-id: ")
        await _until(lambda: len(node.published) == 2)
        assert [a.record.asset_id for a in node.published] == ["A", "B"]
        assert frames(node, "taken") == 2 and frames(node, "bad-id") == 1
        writer.close()
        for task in node.tasks:
            task.cancel()

    asyncio.run(run())


def test_a_token_without_the_sensor_role_is_refused_and_nothing_taken() -> None:
    async def run() -> None:
        node = StubNode()
        service = await _service(node)
        assert service.port is not None
        for first in (feed.token_frame(OBSERVER), record("A")):
            reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
            writer.write(first + record("B"))
            assert (await reader.readline()).startswith(b"refused: ")
            assert await reader.read() == b""  # and the connection is closed
            writer.close()
        assert node.published == [] and len(node.refused) == 2
        for task in node.tasks:
            task.cancel()

    asyncio.run(run())


def test_a_link_behind_stops_the_reading_until_it_catches_up() -> None:
    async def run() -> None:
        node = StubNode()
        node.unsent_bytes = 10 * 1024 * 1024
        service = await _service(node)
        assert service.port is not None
        _, writer = await asyncio.open_connection("127.0.0.1", service.port)
        writer.write(feed.token_frame(SENSOR) + record("A"))
        await writer.drain()
        await _until(lambda: len(node.published) == 1)
        writer.write(record("B"))
        await writer.drain()
        await asyncio.sleep(0.2)
        assert len(node.published) == 1  # not read while the link is behind
        node.unsent_bytes = 0
        await _until(lambda: len(node.published) == 2)
        writer.close()
        for task in node.tasks:
            task.cancel()

    asyncio.run(run())


def test_a_connection_that_sends_no_token_in_time_is_refused(monkeypatch: Any) -> None:
    monkeypatch.setattr("clearline.node.feed.TOKEN_DEADLINE_S", 0.2)

    async def run() -> None:
        node = StubNode()
        service = await _service(node)
        assert service.port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
        writer.write(feed.token_frame(SENSOR)[:2])  # a token begun and never finished
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 5)
        assert line == b"refused: no token within 0.2 s\n"
        assert await reader.read() == b"" and node.refused == ["no token within 0.2 s"]
        assert service.connections == 0  # its place is free again
        writer.close()
        for task in node.tasks:
            task.cancel()

    asyncio.run(run())


def test_records_taken_while_the_link_is_down_are_counted_and_said_unsent() -> None:
    async def run() -> None:
        node = StubNode()
        node.link_up = False
        service = await _service(node)
        assert service.port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
        writer.write(feed.token_frame(SENSOR) + record("A") + record("B"))
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 5)
        assert line.endswith(b"not sent: the link to the peer is down\n"), line
        sample = node.metrics.registry.get_sample_value("clearline_feed_records_unsent_total")
        assert sample == 2 and frames(node, "taken") == 2
        writer.close()
        for task in node.tasks:
            task.cancel()

    asyncio.run(run())


def test_connections_past_the_cap_are_refused_and_counted() -> None:
    async def run() -> None:
        node = StubNode()
        service = FeedService(node, Feed(port=0, max_connections=1))  # type: ignore[arg-type]
        await service.start()
        assert service.port is not None
        _, first = await asyncio.open_connection("127.0.0.1", service.port)
        await _until(lambda: service.connections == 1)
        reader, second = await asyncio.open_connection("127.0.0.1", service.port)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert node.refused == ["feed connections at their cap (1)"]
        first.close()
        second.close()
        for task in node.tasks:
            task.cancel()

    asyncio.run(run())
