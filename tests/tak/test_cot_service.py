"""The node's CoT service on its own, in one event loop with a stand-in node: routing,
staleness, re-asking, gate holds and releases, and a reader that falls behind."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from clearline.doctrine.registry import OwnAsset
from clearline.hotline import AssetRegistry
from clearline.node.cot import CotService
from clearline.node.metrics import NodeMetrics
from clearline.node.node import Outcome
from clearline.protocol.messages import Answer, Claim, Intent, Mission, TrackReport
from clearline.tak import cot
from clearline.tak.settings import TakSettings
from tests.tak.test_mapping import MAPPING, NOW, event


class StandIn:
    """What the CoT service uses of a Node."""

    def __init__(self, folder: Path) -> None:
        self.config = SimpleNamespace(path=lambda p: folder / p)
        self.metrics = NodeMetrics("US")
        self.registry = AssetRegistry()
        self.subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self.side, self.peer_side = "US", "PRC"
        self.published: list[list[OwnAsset]] = []
        self.asked: list[list[str]] = []
        self.tasks: list[asyncio.Task[Any]] = []

    def publish(self, assets: list[OwnAsset]) -> bool:
        self.published.append(assets)
        for asset in assets:
            self.registry.publish(asset)
        return True

    def spawn(self, coroutine: Any) -> None:
        self.tasks.append(asyncio.ensure_future(coroutine))

    async def clarify_many(
        self, tracks: Sequence[TrackReport], ttl_ms: int | None = None
    ) -> AsyncIterator[tuple[int, Outcome]]:
        self.asked.append([t.track_id for t in tracks])
        for index, _ in enumerate(tracks):
            answer = Answer(
                1, Claim.OURS, Mission.RECONNAISSANCE, False, Intent.WITHDRAWING, "PRC-RS-7"
            )
            yield index, Outcome(7, "answered", answer, 113_000)


def service(tmp_path: Path, **settings: Any) -> tuple[CotService, StandIn]:
    (tmp_path / "m.yaml").write_text(MAPPING)
    node = StandIn(tmp_path)
    return CotService(node, TakSettings(mapping="m.yaml", **settings)), node  # type: ignore[arg-type]


def test_own_assets_publish_and_stale_ones_are_withdrawn(tmp_path: Path) -> None:
    svc, node = service(tmp_path)
    svc.route([event("PRC-RS-7", "a-f-A-M"), event("PRC-SUB-1", "a-f-S")], NOW)
    assert [[a.record.asset_id for a in batch] for batch in node.published] == [["PRC-RS-7"]]
    assert set(node.registry.assets) == {"PRC-RS-7", "PRC-SUB-1"}  # the sub: answers only
    svc.route([event("PRC-RS-7", "a-f-A-M", stale_in_s=-1)], NOW)
    assert set(node.registry.assets) == {"PRC-SUB-1"}
    assert svc.tally["stale"] == 1


def test_a_track_is_asked_about_once_then_again_after_requery(tmp_path: Path) -> None:
    async def run() -> list[list[str]]:
        svc, node = service(tmp_path, requery_s=10)
        svc.route([event("T-1"), event("T-2"), event("T-1")], NOW)
        await asyncio.gather(*node.tasks)
        svc.route([event("T-1")], NOW + 1_000_000)
        svc.route([event("T-1")], NOW + 11_000_000)
        await asyncio.gather(*node.tasks)
        return node.asked

    assert asyncio.run(run()) == [["T-1", "T-2"], ["T-1"]]


def _read(writer: Any) -> list[ET.Element]:
    data = b"".join(writer.written)
    splitter = cot.StreamSplitter()
    return [ET.fromstring(item) for item in splitter.feed(data) if isinstance(item, bytes)]


class Reader:
    """A TAK client on the output, as a stream writer the service writes to."""

    def __init__(self, buffered: int = 0) -> None:
        self.written: list[bytes] = []
        self.aborted = False
        self.transport = SimpleNamespace(
            is_closing=lambda: self.aborted,
            get_write_buffer_size=lambda: buffered,
            abort=self._abort,
        )

    def _abort(self) -> None:
        self.aborted = True

    def write(self, data: bytes) -> None:
        self.written.append(data)


def test_holds_are_written_and_released_by_the_clarification(tmp_path: Path) -> None:
    svc, _ = service(tmp_path)
    reader = Reader()
    svc.readers.add(reader)  # type: ignore[arg-type]
    svc.tracks["T-0417"] = event("T-0417")  # seen, so its place is known; asked elsewhere
    svc.on_event({"kind": "query", "track": "T-0417", "query_seq": 3})
    svc.on_event(
        {"kind": "decision", "action": "a1", "verdict": "hold", "target": "T-0417",
         "until_us": NOW + 2_000_000, "reason": "clarification about T-0417 is open"}
    )  # fmt: skip
    svc.on_event({"kind": "clarification", "track": "T-0417", "outcome": "expired", "query_seq": 3})
    svc.on_event({"kind": "link", "state": "degraded"})
    written = _read(reader)
    states = [(e.get("uid"), e.find("detail/clearline").attrib) for e in written]
    assert [(uid, a.get("state") or a.get("hold") or a.get("link")) for uid, a in states] == [
        ("T-0417.clearline", "open"),
        ("clearline.hold.US.a1", "held"),
        ("T-0417.clearline", "expired"),
        ("clearline.hold.US.a1", "released"),
        ("clearline.link.US", "degraded"),
    ]
    hold = written[1]
    assert hold.get("type") == "b-x-clearline-hold"
    assert float(hold.find("point").get("lat")) == 24.13  # at the track it holds fire on
    assert svc.holds == {}


def test_a_reader_that_falls_behind_is_dropped_and_a_new_one_sees_the_latest(
    tmp_path: Path,
) -> None:
    svc, _ = service(tmp_path, out_buffer_bytes=4096)
    slow, quick = Reader(buffered=10_000), Reader()
    svc.readers.update({slow, quick})  # type: ignore[arg-type]
    svc.on_event({"kind": "link", "state": "up"})
    assert slow.aborted and slow not in svc.readers
    assert len(_read(quick)) == 1
    assert list(svc.latest) == ["clearline.link.US"]


def test_the_queue_drops_when_full_and_counts_it(tmp_path: Path) -> None:
    svc, _ = service(tmp_path, queue=16)
    data = cot.to_xml("T-9", "a-h-A", NOW, NOW + 60_000_000, cot.NO_POINT)
    for _ in range(20):
        svc.take(data)
    svc.take(b"<event")
    assert svc.queue.qsize() == 16
    assert svc.tally.as_dict() == {"queue-full": 4, "malformed": 1}
