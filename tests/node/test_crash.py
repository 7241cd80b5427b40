"""Nothing acknowledged is lost: kill -9 the node under load, restart, and account for it all.

Each round starts the US node, takes a signed checkpoint, loads it with gate
decisions and durable clarifications (each acknowledged only after its commit),
kills it with SIGKILL at a random moment, and then checks the log file: it
verifies, it is consistent with the checkpoint taken before the crash, and
every acknowledged entry is there, at the index that was acknowledged. Rounds
in CI: 3; by hand: CLEARLINE_CRASH_ROUNDS=50 pytest tests/node/test_crash.py.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
from pathlib import Path

import httpx
import pytest

from clearline.log import merkle
from clearline.log.store import LogStore, verify_log
from clearline.node.keys import load_signer
from clearline.protocol import codec
from clearline.protocol.messages import Answer, Decision
from tests.node.harness import (
    SIGHTING,
    SWARM,
    NodeProcess,
    make_keys,
    running,
    start_node,
    write_config,
)

ROUNDS = int(os.environ.get("CLEARLINE_CRASH_ROUNDS", "3"))
SEED = int(os.environ.get("CLEARLINE_CRASH_SEED", "20261127"))


class Load(threading.Thread):
    """Posts decisions and durable clarifications as fast as the node takes them."""

    def __init__(self, node: NodeProcess, round_: int) -> None:
        super().__init__(daemon=True)
        self.node = node
        self.round = round_
        self.acknowledged: dict[int, tuple[str, str]] = {}
        self.stop = threading.Event()
        self._progress = threading.Condition()
        self._ended = False

    def _acknowledge(self, index: int, kind: str, action_id: str) -> None:
        with self._progress:
            self.acknowledged[index] = (kind, action_id)
            self._progress.notify_all()

    def wait_for(self, count: int, timeout: float = 60) -> dict[int, tuple[str, str]]:
        """Block until the node has acknowledged `count` entries; return a copy of them."""
        with self._progress:
            done = self._progress.wait_for(
                lambda: len(self.acknowledged) >= count or self._ended, timeout
            )
            assert done and len(self.acknowledged) >= count, (
                f"the load never got going: {len(self.acknowledged)} of {count} acknowledged "
                f"in {timeout} s"
            )
            return dict(self.acknowledged)

    def run(self) -> None:
        i = 0
        token = self.node.token("operator")
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=self.node.api, timeout=5, headers=headers) as client:
            while not self.stop.is_set():
                i += 1
                try:
                    if i % 3:
                        action_id = f"R{self.round}-A{i}"
                        decision = client.post(
                            "/v1/actions",
                            json={"action_id": action_id, "rung": "monitor", "domain": "air"},
                        ).json()
                        self._acknowledge(decision["logged_index"], "decision", action_id)
                    else:
                        result = client.post("/v1/observations?durable=true", json=SIGHTING).json()
                        if result["logged_index"] is not None:
                            self._acknowledge(result["logged_index"], "answer", "")
                except (httpx.HTTPError, KeyError, ValueError):
                    break  # the node is gone: whatever was acknowledged is recorded
        with self._progress:
            self._ended = True  # no more is coming: wake a waiter to say so
            self._progress.notify_all()


def _entry(db: Path, index: int) -> bytes | None:
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = connection.execute("SELECT data FROM entries WHERE idx = ?", (index,)).fetchone()
    finally:
        connection.close()
    return None if row is None else bytes(row[0])


@pytest.mark.slow
def test_kill_9_under_load_loses_nothing_acknowledged(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    keys = make_keys(tmp_path, "US", "PRC")
    prc = start_node(write_config(tmp_path, "PRC", "US", listen=True))
    totals = {"rounds": 0, "acknowledged": 0, "missing": 0}
    with running(prc):
        with prc.client("sensor") as client:
            client.post("/v1/telemetry", json={"assets": [SWARM]})
        config = write_config(tmp_path, "US", "PRC", address=f"127.0.0.1:{prc.listen}")
        for round_ in range(ROUNDS):
            us = start_node(config)
            with running(us):
                us.wait_link("up", timeout=20)
                with us.client("operator") as client:
                    client.post("/v1/log/checkpoint")
                    before = client.get("/v1/log/checkpoints").json()["US"][-1]
                load = Load(us, round_)
                load.start()
                load.wait_for(rng.randint(6, 60))  # a random moment, once the load is going
                us.process.kill()  # SIGKILL: no flush, no checkpoint, no goodbye
                us.process.wait(timeout=10)
                load.stop.set()
                load.join(timeout=10)
            where = f"seed {SEED}, round {round_}"
            report = verify_log(us.log)
            assert report.entries > 0, where
            store = LogStore(us.log, load_signer(keys / "US.signing.key"), "US")
            try:
                proof = store.consistency_proof(before["size"])
                merkle.verify_consistency(
                    before["size"], store.size, proof, bytes.fromhex(before["root"]), store.root()
                )
                size = store.size
            finally:
                store.close()
            missing = []
            for index, (kind, action_id) in load.acknowledged.items():
                data = _entry(us.log, index) if index < size else None
                if data is None:
                    missing.append(index)
                    continue
                body = codec.decode_payload(codec.parse_envelope(data).payload).body
                if kind == "decision" and not (
                    isinstance(body, Decision) and body.action_id == action_id
                ):
                    missing.append(index)
                if kind == "answer" and not isinstance(body, Answer):
                    missing.append(index)
            assert missing == [], f"{where}: acknowledged but missing after kill -9: {missing}"
            totals["rounds"] += 1
            totals["acknowledged"] += len(load.acknowledged)
        assert prc.stop() == 0
    print(f"crash rounds: {totals}")


def test_a_torn_copy_taken_mid_write_recovers_a_consistent_prefix(tmp_path: Path) -> None:
    """Power loss, approximated: copy the log's files while the node writes (no coordination,
    so the copy may hold half a transaction). SQLite must recover a prefix that verifies and
    holds everything acknowledged before the copy began."""
    import shutil

    rng = random.Random(SEED + 1)
    make_keys(tmp_path, "US", "PRC")
    prc = start_node(write_config(tmp_path, "PRC", "US", listen=True))
    with running(prc):
        us = start_node(write_config(tmp_path, "US", "PRC", address=f"127.0.0.1:{prc.listen}"))
        with running(us):
            us.wait_link("up", timeout=20)
            load = Load(us, 0)
            load.start()
            for shot in range(ROUNDS):
                acknowledged = load.wait_for(len(load.acknowledged) + rng.randint(5, 40))
                copy = tmp_path / f"snapshot-{shot}"
                copy.mkdir()
                for suffix in ("", "-wal"):
                    source = Path(str(us.log) + suffix)
                    if source.exists():
                        shutil.copyfile(source, copy / (us.log.name + suffix))
                report = verify_log(copy / us.log.name)
                missing = [
                    i
                    for i, (kind, action_id) in acknowledged.items()
                    if (data := _entry(copy / us.log.name, i)) is None
                    or (kind == "decision" and action_id.encode() not in data)
                ]
                assert missing == [], f"seed {SEED + 1}, snapshot {shot}: missing {missing}"
                assert report.entries >= len(acknowledged)
            load.stop.set()
            load.join(timeout=10)
            assert us.stop() == 0
        assert prc.stop() == 0
