"""CoT through two real node processes, with pytak as the TAK clients.

PRC's swarm arrives as own-asset CoT (XML over TCP) at the PRC node; a sensor's track of
it arrives as TAK Protocol protobuf (mesh, over UDP) at the US node; the US node asks,
PRC answers from the registry CoT fed, and a TAK client on the US node's CoT output
reads the answer as a CoT event.
"""

from __future__ import annotations

import asyncio
import json
import re
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from configparser import ConfigParser
from pathlib import Path
from typing import Any

import pytest
import takproto

from clearline.lab.takscene import PRC_MAPPING, US_MAPPING
from clearline.tak import cot
from tests.node.harness import NodeProcess, make_keys, running, start_node, wait_until, write_config

with warnings.catch_warnings():
    # pytak warns on import that aiohttp (for TAK servers' HTTP APIs) is absent: unused here.
    warnings.simplefilter("ignore", UserWarning)
    import pytak

TAK = """\
[tak]
mapping = "{side}-tak.yaml"
listen = ["tcp://127.0.0.1:0", "udp://127.0.0.1:0"]
out = "tcp://127.0.0.1:0"
batch_ms = 10
"""


def _cot_ports(config: Path) -> dict[str, int]:
    ports: dict[str, int] = json.loads(config.with_suffix(".ready").read_text())["cot"]
    return ports


@pytest.fixture(scope="module")
def nodes(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[NodeProcess, dict[str, int], NodeProcess, dict[str, int]]]:
    folder = tmp_path_factory.mktemp("cot")
    make_keys(folder, "US", "PRC")
    (folder / "prc-tak.yaml").write_text(PRC_MAPPING)
    (folder / "us-tak.yaml").write_text(US_MAPPING)
    prc_config = write_config(folder, "PRC", "US", listen=True, extra=TAK.format(side="prc"))
    prc = start_node(prc_config)
    with running(prc):
        us_config = write_config(
            folder, "US", "PRC", address=f"127.0.0.1:{prc.listen}", extra=TAK.format(side="us")
        )
        us = start_node(us_config)
        with running(us):
            us.wait_link("up")
            yield us, _cot_ports(us_config), prc, _cot_ports(prc_config)
            # A node with CoT connections open stops on SIGTERM (its log sealed), at once.
            assert us.stop(timeout=5) == 0
            assert prc.stop(timeout=5) == 0


def _metric(node: NodeProcess, name: str, label: str) -> float:
    with node.client() as client:
        text = client.get("/metrics").text
    found = re.search(rf"{name}_total{{{label}}} (\S+)", text)
    return float(found.group(1)) if found else 0.0


def _pytak(url: str) -> Any:
    config = ConfigParser()
    config["clearline"] = {"COT_URL": url}
    return pytak.protocol_factory(config["clearline"])


async def _read_events(reader: asyncio.StreamReader, until: Any, timeout: float) -> list[Any]:
    """CoT events (as XML elements) from `reader` until one satisfies `until`."""
    splitter = cot.StreamSplitter()
    seen: list[Any] = []
    async with asyncio.timeout(timeout):
        while True:
            data = await reader.read(65536)
            assert data, "the CoT output closed"
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


def test_a_cot_track_is_asked_about_and_the_answer_comes_back_as_cot(
    nodes: tuple[NodeProcess, dict[str, int], NodeProcess, dict[str, int]],
) -> None:
    us, us_ports, prc, prc_ports = nodes

    async def scene() -> list[Any]:
        out_reader, out_writer = await _pytak(f"tcp://127.0.0.1:{us_ports['out']}")
        # PRC's own systems: the swarm, as a TAK client publishes a friendly air track.
        _, prc_writer = await _pytak(f"tcp://127.0.0.1:{prc_ports['tcp']}")
        swarm = pytak.gen_cot(
            lat=24.1, lon=122.4, hae=1500, ce=50, le=50, uid="PRC-RS-7",
            stale=600, cot_type="a-f-A-M-F-Q", callsign="RS-7",
        )  # fmt: skip
        assert swarm is not None
        prc_writer.write(swarm)
        await prc_writer.drain()
        await asyncio.to_thread(
            wait_until,
            lambda: _metric(prc, "clearline_cot_routed", 'route="own-telemetry"') >= 1,
            20,
            "the PRC node never took the swarm's CoT",
        )
        # The US sensor: a hostile-looking air track near it, as TAK Protocol over UDP.
        track = pytak.gen_cot(
            lat=24.13, lon=122.38, hae=1400, ce=500, le=500, uid="T-0417",
            stale=120, cot_type="a-h-A-M-F", callsign="T-0417",
        )  # fmt: skip
        assert track is not None
        _, sensor = await _pytak(f"udp+wo://127.0.0.1:{us_ports['udp']}")
        await sensor.send(bytes(takproto.xml2proto(track, takproto.TAKProtoVer.MESH)))
        events = await _read_events(out_reader, _answered, 20)
        out_writer.close()
        prc_writer.close()
        sensor.close()
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
    assert "PRC, ours, reconnaissance, withdrawing" in answer.find("detail/contact").get("callsign")
    kinds = {(e.get("uid"), e.find("detail/clearline").get("state")) for e in events}
    assert ("T-0417.clearline", "open") in kinds  # the query, before its answer
    link = [e for e in events if e.get("uid") == "clearline.link.US"]
    assert link and link[0].find("detail/clearline").get("link") == "up"
    assert _metric(us, "clearline_cot_routed", 'route="foreign"') == 1


def test_hostile_cot_is_counted_and_skipped(
    nodes: tuple[NodeProcess, dict[str, int], NodeProcess, dict[str, int]],
) -> None:
    us, us_ports, _, _ = nodes
    bomb = b'<!DOCTYPE e [<!ENTITY a "aaaaaaaa">]><event uid="&a;"></event>'
    huge = b"<event>" + b"x" * (70 * 1024) + b"</event>"

    async def send() -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", us_ports["tcp"])
        writer.write(b"garbage " + bomb + huge + b"\xbf\x01\xbf\xff\xff")
        await writer.drain()
        writer.close()

    asyncio.run(send())
    wait_until(
        lambda: all(
            _metric(us, "clearline_cot_skipped", f'reason="{r}"') >= 1
            for r in ("malformed", "dtd-refused", "oversized")
        ),
        20,
        "the hostile events were not all counted",
    )
    us.wait_link("up")  # and the hotline carried on
