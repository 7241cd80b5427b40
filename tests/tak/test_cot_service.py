"""The node's CoT service on its own, in one event loop with a stand-in node: routing,
staleness, re-asking, gate holds and releases, and a reader that falls behind."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

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


def test_the_nodes_own_events_are_never_taken_in(tmp_path: Path) -> None:
    """A TAK server repeats what the node wrote to every client, the node included: read
    back, an answer's event (a hostile type) would otherwise be asked about as a new track."""

    async def run() -> list[list[str]]:
        svc, node = service(tmp_path)
        echoed = [event("T-0417.clearline"), event("clearline.link.US", "b-x-clearline-link")]
        svc.route([*echoed, event("T-0417")], NOW)
        await asyncio.gather(*node.tasks)
        assert svc.tally.as_dict() == {"own-output": 2}
        return node.asked

    assert asyncio.run(run()) == [["T-0417"]]


def test_cot_url_in_needs_cot_url() -> None:
    with pytest.raises(ValidationError, match="cot_url_in = true needs cot_url"):
        TakSettings(mapping="m.yaml", cot_url_in=True)


def test_a_tak_server_is_sent_the_nodes_presence_first_and_read_with_cot_url_in(
    tmp_path: Path,
) -> None:
    """The node as a TAK server's client: its presence event, then what it writes; and
    with cot_url_in, what the server relays from its other clients is taken in."""

    async def run(take_in: bool) -> tuple[list[ET.Element], list[str]]:
        got: asyncio.Queue[bytes] = asyncio.Queue()

        async def tak_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(cot.to_xml("T-7", "a-h-A-M-F", NOW, NOW + 60_000_000, cot.NO_POINT))
            writer.write(cot.to_xml("T-7.clearline", "a-h-A", NOW, NOW + 60_000_000, cot.NO_POINT))
            while data := await reader.read(65536):
                await got.put(data)

        server = await asyncio.start_server(tak_server, "127.0.0.1", 0)
        url = f"tcp://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        svc, _ = service(tmp_path, cot_url=url, cot_url_in=take_in)
        svc.on_event({"kind": "link", "state": "up"})
        dialling = asyncio.ensure_future(svc._dial_forever(url))
        received = b""
        async with asyncio.timeout(10):
            while received.count(b"</event>") < 2:
                received += await got.get()
            await asyncio.sleep(0.2)  # the server's two events read, if they are
        dialling.cancel()
        server.close()
        events = [ET.fromstring(e) for e in cot.StreamSplitter().feed(received)]  # type: ignore[arg-type]
        taken = []
        while not svc.queue.empty():
            taken.append(svc.queue.get_nowait().uid)
        return events, taken

    events, taken = asyncio.run(run(take_in=True))
    assert [(e.get("uid"), e.get("type")) for e in events] == [
        ("clearline.node.US", "b-x-clearline-node"),
        ("clearline.link.US", "b-x-clearline-link"),
    ]
    assert events[0].find("detail/contact").get("callsign") == "clearline US"
    assert taken == ["T-7", "T-7.clearline"]  # parsed; the second is skipped when routed
    _, taken = asyncio.run(run(take_in=False))
    assert taken == []
