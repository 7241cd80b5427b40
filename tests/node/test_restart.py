"""Two real node processes, stopped and started again: what they show of their past is what
their logs hold (both sides' checkpoints, decisions, clarifications), not what a new process
happens to remember."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clearline.log.store import verify_log
from tests.node.harness import (
    SIGHTING,
    SWARM,
    NodeProcess,
    make_keys,
    running,
    start_node,
    wait_until,
    write_config,
)


def start_pair(folder: Path) -> tuple[NodeProcess, NodeProcess]:
    prc = start_node(write_config(folder, "PRC", "US", listen=True))
    try:
        us = start_node(write_config(folder, "US", "PRC", address=f"127.0.0.1:{prc.listen}"))
    except BaseException:
        prc.kill()
        raise
    return us, prc


def get(node: NodeProcess, path: str) -> Any:
    with node.client() as client:
        return client.get(path).json()


def of_kind(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == kind]


def test_checkpoints_and_history_survive_a_restart(tmp_path: Path) -> None:
    make_keys(tmp_path, "US", "PRC")
    us, prc = start_pair(tmp_path)
    with running(us, prc):
        us.wait_link("up")
        prc.wait_link("up")
        with prc.client("operator") as client:
            assert client.post("/v1/telemetry", json={"assets": [SWARM]}).json()["sent_to_peer"]
            client.post("/v1/log/checkpoint")
        with us.client("operator") as client:
            answer = client.post("/v1/observations?durable=true", json=SIGHTING).json()
            assert answer["outcome"] == "answered", answer
            held = client.post(
                "/v1/actions", json={"action_id": "A1", "rung": "strike", "domain": "nuclear-c2"}
            ).json()
            for _ in range(2):
                client.post("/v1/log/checkpoint")
        wait_until(lambda: len(get(prc, "/v1/log/checkpoints")["US"]) == 2, 10, "PRC saw no US")
        wait_until(lambda: len(get(us, "/v1/log/checkpoints")["PRC"]) == 1, 10, "US saw no PRC")
        before = {"US": get(us, "/v1/log/checkpoints"), "PRC": get(prc, "/v1/log/checkpoints")}
        history = get(us, "/v1/history")["events"]
        assert [e["action"] for e in of_kind(history, "decision")] == ["A1"]
        assert us.stop() == 0 and prc.stop() == 0

    sealed = verify_log(us.log)
    us, prc = start_pair(tmp_path)
    with running(us, prc):
        us.wait_link("up")
        after = get(us, "/v1/log/checkpoints")
        # Ours: the two made through the API, then the seal of the stop; all that the log signs.
        assert [c["size"] for c in after["US"]] == [
            *(c["size"] for c in before["US"]["US"]),
            sealed.last_checkpoint_size,
        ]
        # `log verify` counts each signed checkpoint, the copies sent to the peer too.
        assert sealed.checkpoints == len(after["US"]) + len(before["PRC"]["US"])
        assert all(c["consistency"] == "own" for c in after["US"])
        assert after["US"][:2] == before["US"]["US"][:2], "read back as they were shown"
        # The peer's, as received (its seal is never sent), with the verdicts they had.
        assert after["PRC"] == before["US"]["PRC"]
        assert get(prc, "/v1/log/checkpoints")["US"] == before["PRC"]["US"]

        # The next checkpoint's proof starts at the last one the peer was sent, which it holds.
        with us.client("operator") as client:
            made = client.post("/v1/log/checkpoint").json()

        def seen_by_prc() -> list[dict[str, Any]]:
            return [c for c in get(prc, "/v1/log/checkpoints")["US"] if c["size"] == made["index"]]

        wait_until(seen_by_prc, 10, "PRC never saw the checkpoint made after the restart")
        assert seen_by_prc()[0]["prev_size"] == before["US"]["US"][-1]["size"]
        assert seen_by_prc()[0]["consistency"] == "consistent"

        events = get(us, "/v1/history")["events"]
        ids = [e["id"] for e in events]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        [decision] = of_kind(events, "decision")
        assert decision["from_log"] is True
        assert {k: decision[k] for k in ("action", "verdict", "rule", "reason", "index")} == {
            "action": "A1",
            "verdict": held["verdict"],
            "rule": held["rule"],
            "reason": held["reason"],
            "index": held["logged_index"],
        }
        [query] = of_kind(events, "query")
        [cleared] = of_kind(events, "clarification")
        assert query["track"] == cleared["track"] == SIGHTING["track_id"]
        assert query["query_seq"] == cleared["query_seq"] == answer["query_seq"]
        assert cleared["outcome"] == "answered" and cleared["session"] == query["session"]
        assert {(e["from"], e["size"]) for e in of_kind(events, "checkpoint")} >= {
            ("US", c["size"]) for c in after["US"]
        }
        received = [e["type"] for e in of_kind(events, "message") if e["direction"] == "received"]
        assert "answer" in received and "bulk" in received
