"""What a client holding a token can send that is not what the API expects: refused, alone."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from clearline.errors import MessageError
from clearline.log.store import verify_log
from clearline.node.logwriter import LogWriter
from clearline.protocol.messages import Actor, Decision, Verdict
from clearline.protocol.signing import Ed25519Signer
from tests.node.harness import NodeProcess, make_keys, running, start_node, write_config


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    folder = tmp_path_factory.mktemp("hostile")
    make_keys(folder, "US", "PRC")
    started = start_node(write_config(folder, "PRC", "US", listen=True))
    with running(started):
        yield started


@pytest.mark.parametrize("rung", ["bad rung", "nucléaire", "nuclear\u200b", "nuclear\n", "☢"])
def test_a_rung_that_cannot_be_logged_is_a_422_and_costs_no_other_entry(
    node: NodeProcess, rung: str
) -> None:
    with node.client("operator") as api:
        before = api.get("/v1/log").json()["size"]
        refused = api.post("/v1/actions", json={"action_id": "P1", "rung": rung, "domain": "air"})
        assert refused.status_code == 422, refused.text
        assert "rung" in refused.text
        fine = api.post("/v1/actions", json={"action_id": "P2", "rung": "monitor", "domain": "air"})
        assert fine.status_code == 200 and fine.json()["verdict"] == "allow"
        assert api.get("/v1/log").json()["size"] == before + 1


@pytest.mark.parametrize(
    ("path", "body", "headers"),
    [
        ("/v1/observations", '{"track_id":"T","position":{"lat":NaN,"lon":1}}', {}),
        ("/v1/observations", '{"track_id":"T","position":{"lat":1e400,"lon":1}}', {}),
        ("/v1/telemetry", '{"assets":[{"position":{"lat":Infinity}}]}', {}),
        (
            "/v1/actions",
            '{"action_id":"a","rung":"monitor","domain":"air"}',
            {"content-type": "text/plain"},
        ),
        (
            "/v1/actions",
            "action_id=a&rung=monitor",
            {"content-type": "application/x-www-form-urlencoded"},
        ),
        ("/v1/actions", '{"action_id":"a"}', {"content-type": ""}),
    ],
)
def test_odd_bodies_get_a_short_json_422(
    node: NodeProcess, path: str, body: str, headers: dict[str, str]
) -> None:
    with node.client("operator") as api:
        response = api.post(
            path, content=body, headers={"content-type": "application/json", **headers}
        )
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], list)
    assert "Traceback" not in response.text
    assert node.process.poll() is None


def test_a_record_that_cannot_be_logged_fails_its_caller_alone(tmp_path: Path) -> None:
    owner = Ed25519Signer.from_label("US")

    def decision(action: str, rung: str) -> Decision:
        return Decision(action, Actor.AUTONOMOUS, rung, "air", Verdict.DENY, "r", "why", bytes(32))

    async def scene() -> list[int]:
        writer = LogWriter(tmp_path / "us.db", owner, "US", 1000)
        await writer.open("PRC", Ed25519Signer.from_label("PRC").public_key)
        good = [writer.record(decision(f"g{i}", "monitor"), 1) for i in range(5)]
        with pytest.raises(MessageError, match="rung"):
            writer.record(decision("bad", "bad rung"), 1)
        more = [writer.record(decision(f"h{i}", "monitor"), 1) for i in range(5)]
        indices = [await f for f in good + more]
        await writer.close()
        return indices

    assert asyncio.run(scene()) == list(range(10))
    assert verify_log(tmp_path / "us.db").by_type == {"decision": 10}


def test_a_flood_of_refused_connections_is_counted_not_listed(tmp_path: Path) -> None:
    """Strangers on the feed port are refused one by one, but said one by one only up to
    ten a second: the node's event history keeps what else happened."""
    import socket

    make_keys(tmp_path, "US", "PRC")
    started = start_node(write_config(tmp_path, "PRC", "US", listen=True, extra="[feed]\nport = 0"))
    with running(started):
        assert started.feed is not None
        with started.client() as api:
            before = [e for e in api.get("/v1/events").json()["events"] if e["kind"] != "refused"]
        for _ in range(200):
            with socket.create_connection(("127.0.0.1", started.feed), timeout=5) as stranger:
                stranger.sendall(b"\x00\x00" * 100)
                stranger.recv(1024)  # the refusal line, then the close
        refusals = 'clearline_refusals_total{reason="the first frame must be a token frame"}'
        with started.client() as api:
            metrics = api.get("/metrics").text
            events = api.get("/v1/events").json()["events"]
        assert f"{refusals} 200.0" in metrics
        said = [e for e in events if e["kind"] == "refused"]
        assert 10 <= len(said) < 200, len(said)
        assert [e for e in events if e["kind"] != "refused"][: len(before)] == before
