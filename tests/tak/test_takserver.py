"""The nodes behind real TAK servers: FreeTAKServer (from PyPI), one for each side, and
pytak clients on them, as a command centre's TAK users would be.

On the PRC server a client publishes the swarm as friendly air; the PRC node, a client of
that server, takes it as its own asset. On the US server a sensor publishes a
hostile-looking track; the US node, a client of its server, asks PRC about it; PRC answers
from the registry CoT fed; and a map on the US server receives the answer as CoT, relayed
by the server. Neither server ever carries the other side's picture.
"""

from __future__ import annotations

import asyncio
import re
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from configparser import ConfigParser
from typing import Any

import pytest

from clearline.lab.takscene import PRC_MAPPING, US_MAPPING
from clearline.lab.takserver import TakServer
from clearline.tak import cot
from tests.node.harness import NodeProcess, make_keys, running, start_node, wait_until, write_config

with warnings.catch_warnings():
    # pytak warns on import that aiohttp (for TAK servers' HTTP APIs) is absent: unused here.
    warnings.simplefilter("ignore", UserWarning)
    import pytak

pytestmark = pytest.mark.slow

TAK = """\
[tak]
mapping = "{side}-tak.yaml"
cot_url = "{url}"
cot_url_in = true
batch_ms = 10
"""


@pytest.fixture(scope="module")
def nodes(
    tmp_path_factory: pytest.TempPathFactory, takservers: dict[str, TakServer]
) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    folder = tmp_path_factory.mktemp("cot-takserver")
    make_keys(folder, "US", "PRC")
    (folder / "prc-tak.yaml").write_text(PRC_MAPPING)
    (folder / "us-tak.yaml").write_text(US_MAPPING)
    prc_tak = TAK.format(side="prc", url=takservers["PRC"].cot_url)
    prc = start_node(write_config(folder, "PRC", "US", listen=True, extra=prc_tak))
    with running(prc):
        us_tak = TAK.format(side="us", url=takservers["US"].cot_url)
        address = f"127.0.0.1:{prc.listen}"
        us = start_node(write_config(folder, "US", "PRC", address=address, extra=us_tak))
        with running(us):
            us.wait_link("up")
            yield us, prc
            # A node with CoT connections open stops on SIGTERM (its log sealed), at once.
            assert us.stop(timeout=5) == 0
            assert prc.stop(timeout=5) == 0


def _metric(node: NodeProcess, name: str, label: str) -> float:
    with node.client() as client:
        text = client.get("/metrics").text
    found = re.search(rf"{name}_total{{{label}}} (\S+)", text)
    return float(found.group(1)) if found else 0.0


def _cot_metrics(node: NodeProcess) -> str:
    with node.client() as client:
        text = client.get("/metrics").text
    return "\n".join(line for line in text.splitlines() if line.startswith("clearline_cot_"))


async def _client(server: TakServer, uid: str, callsign: str) -> tuple[Any, Any]:
    """A pytak client of `server`, announced as a TAK user is (its first event)."""
    config = ConfigParser()
    config["clearline"] = {"COT_URL": server.cot_url}
    reader, writer = await pytak.protocol_factory(config["clearline"])
    writer.write(
        pytak.gen_cot(uid=uid, cot_type="a-f-G-U-C", callsign=callsign, lat=0, lon=0, stale=600)
    )
    await writer.drain()
    await asyncio.sleep(0.5)  # FreeTAKServer drops what arrives in the same read as that
    return reader, writer


async def _read_events(reader: asyncio.StreamReader, until: Any, timeout: float) -> list[Any]:
    """CoT events (as XML elements) from `reader` until one satisfies `until`."""
    splitter = cot.StreamSplitter()
    seen: list[Any] = []
    async with asyncio.timeout(timeout):
        while True:
            data = await reader.read(65536)
            assert data, "the TAK server closed the connection"
            for item in splitter.feed(data):
                assert isinstance(item, bytes), item
                seen.append(ET.fromstring(item))
                if until(seen[-1]):
                    return seen


def _answered(element: Any) -> bool:
    found = element.find("detail/clearline")
    return (
        element.get("uid") == "T-0417.clearline"
        and found is not None
        and found.get("state") == "answered"
    )


def test_a_track_on_the_us_tak_server_is_answered_from_the_prc_tak_servers_picture(
    takservers: dict[str, TakServer], nodes: tuple[NodeProcess, NodeProcess]
) -> None:
    us, prc = nodes

    async def scene() -> list[Any]:
        map_reader, map_writer = await _client(takservers["US"], "ANDROID-US-MAP", "US map")
        # PRC's own systems: the swarm, published to PRC's TAK server as friendly air.
        _, swarm_writer = await _client(takservers["PRC"], "ANDROID-PRC-C2", "PRC C2")
        swarm = pytak.gen_cot(
            lat=24.1, lon=122.4, hae=1500, ce=50, le=50, uid="PRC-RS-7",
            stale=600, cot_type="a-f-A-M-F-Q", callsign="RS-7",
        )  # fmt: skip
        swarm_writer.write(swarm)
        await swarm_writer.drain()
        await asyncio.to_thread(
            wait_until,
            lambda: _metric(prc, "clearline_cot_routed", 'route="own-telemetry"') >= 1,
            30,
            lambda: (
                "the PRC node never took the swarm's CoT from its TAK server:\n" + _cot_metrics(prc)
            ),
        )
        # The US sensor: a hostile-looking air track near it, published to the US server.
        _, sensor_writer = await _client(takservers["US"], "ANDROID-US-RADAR", "US radar")
        track = pytak.gen_cot(
            lat=24.13, lon=122.38, hae=1400, ce=500, le=500, uid="T-0417",
            stale=120, cot_type="a-h-A-M-F", callsign="T-0417",
        )  # fmt: skip
        sensor_writer.write(track)
        await sensor_writer.drain()
        events = await _read_events(map_reader, _answered, 60)
        for writer in (map_writer, swarm_writer, sensor_writer):
            writer.close()
        return events

    events = asyncio.run(scene())
    answer = events[-1]
    claim = answer.find("detail/clearline").attrib
    assert claim["claim"] == "ours"
    assert claim["side"] == "PRC"
    assert claim["mission"] == "reconnaissance"
    assert claim["intent"] == "withdrawing"
    assert claim["asset"] == "PRC-RS-7"
    assert claim["asker"] == "US"
    assert 0 < float(claim["elapsed_ms"]) < 5000
    assert answer.get("type") == "a-h-A-M-F"  # the track's own type: no verdict on affiliation
    point = answer.find("point")
    assert (float(point.get("lat")), float(point.get("lon"))) == (24.13, 122.38)
    assert answer.find("detail/link").get("uid") == "T-0417"
    uids = [e.get("uid") for e in events]
    assert "T-0417" in uids  # the map sees the sensor's track through the same server
    assert "PRC-RS-7" not in uids  # and never PRC's own picture: only what PRC answered
    # The US server sent the node's own events back to it; none was asked about again.
    wait_until(
        lambda: _metric(us, "clearline_cot_skipped", 'reason="own-output"') >= 1,
        20,
        "the US node was never sent its own events back",
    )
    assert _metric(us, "clearline_cot_routed", 'route="foreign"') == 1
    assert len(us.events("clarification")) == 1
