"""A swarm through the live nodes: one batch call, a few queries on the wire, every track
cleared and streamed back as it ends."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from tests.node.harness import (
    SIGHTING,
    SWARM,
    NodeProcess,
    make_keys,
    running,
    start_node,
    write_config,
)


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    folder = tmp_path_factory.mktemp("swarm")
    make_keys(folder, "US", "PRC")
    prc = start_node(write_config(folder, "PRC", "US", listen=True))
    with running(prc):
        us = start_node(write_config(folder, "US", "PRC", address=f"127.0.0.1:{prc.listen}"))
        with running(us):
            us.wait_link("up")
            with prc.client("sensor") as client:
                client.post("/v1/telemetry", json={"assets": [SWARM]})
            yield us, prc


def _swarm(n: int) -> list[dict[str, object]]:
    """The sighting of PRC's swarm, then `n - 1` tracks nowhere near anything of PRC's."""
    far = [
        {
            "track_id": f"S-{i:04d}",
            "position": {"lat": 10.0 + i / 1000, "lon": 100.0, "alt_m": 1000},
            "looks_like": "recon_swarm",
        }
        for i in range(1, n)
    ]
    return [SIGHTING, *far]


def _received(node: NodeProcess, kind: str) -> float:
    with node.client() as client:
        metrics = client.get("/metrics").text
    pattern = rf'clearline_messages_total{{direction="sent",kind="{kind}"}} (\S+)'
    found = re.search(pattern, metrics)
    return float(found.group(1)) if found else 0.0


def test_a_swarm_is_cleared_in_one_call_and_a_few_queries(
    nodes: tuple[NodeProcess, NodeProcess],
) -> None:
    us, prc = nodes
    queries_before = _received(us, "query")
    observations = _swarm(600)
    with (
        us.client("sensor") as client,
        client.stream(
            "POST", "/v1/observations/batch", json={"observations": observations}
        ) as response,
    ):
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in response.iter_lines() if line]
    done = lines.pop()
    assert done == {"done": True, "answered": 600, "expired": 0, "not_sent": 0}
    assert sorted(item["index"] for item in lines) == list(range(600))
    by_track = {item["track_id"]: item for item in lines}
    assert by_track["T-0417"]["answer"]["claim"] == "ours"
    assert by_track["T-0417"]["answer"]["intent"] == "withdrawing"
    assert {by_track[f"S-{i:04d}"]["answer"]["claim"] for i in range(1, 600)} == {"not_ours"}
    assert _received(us, "query") - queries_before == 3  # 256 + 256 + 88
    assert _received(prc, "answers") >= 3


def test_a_batch_naming_a_track_twice_or_too_many_is_refused(
    nodes: tuple[NodeProcess, NodeProcess],
) -> None:
    us, _ = nodes
    with us.client("sensor") as client:
        twice = client.post("/v1/observations/batch", json={"observations": [SIGHTING, SIGHTING]})
        assert twice.status_code == 422 and "appears twice" in twice.text
        many = client.post("/v1/observations/batch", json={"observations": _swarm(1025)})
        assert many.status_code == 422 and "1024" in many.text
        empty = client.post("/v1/observations/batch", json={"observations": []})
        assert empty.status_code == 422
    with us.client("observer") as client:
        assert (
            client.post("/v1/observations/batch", json={"observations": [SIGHTING]}).status_code
            == 403
        )
