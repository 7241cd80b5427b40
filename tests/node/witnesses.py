"""Nodes with a witness, as real processes, for the tests: a witness of both sides' logs,
a pair of nodes each with its [witness] section, checkpoints and the verdicts on them, and
a forked log of US's that the witness takes before US's own node does."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from clearline.lab.nodes import node_config_text, write_node_config
from clearline.lab.witness import WitnessProcess, make_witness, start_witness, witness_section
from clearline.log import merkle
from clearline.log.note import signed_checkpoint
from clearline.node.keys import load_signer
from clearline.witness.protocol import request_body
from tests.node.harness import HEARTBEAT_MS, NodeProcess, make_keys, running, start_node, wait_until

QUIET_MS = 60_000
"""Heartbeats this far apart keep a log still between two checkpoints (the fork test)."""


def start_test_witness(folder: Path, port: int = 0) -> WitnessProcess:
    config = make_witness(
        folder / "witness",
        "witness.test/w1",
        {"US": "../keys/US.signing.pub", "PRC": "../keys/PRC.signing.pub"},
        port=port,
    )
    return start_witness(config)


def servers(witness: WitnessProcess) -> list[tuple[str, str, str]]:
    return [(witness.name, witness.url, witness.public_key)]


def pair(
    folder: Path, us_extra: str, prc_extra: str, heartbeat_ms: int = HEARTBEAT_MS
) -> tuple[NodeProcess, NodeProcess]:
    """PRC listening, US dialing it; each with its [witness] section."""
    prc = start_node(config(folder, "PRC", "US", prc_extra, heartbeat_ms, listen=True))
    assert prc.listen is not None
    address = f"127.0.0.1:{prc.listen}"
    return start_node(config(folder, "US", "PRC", us_extra, heartbeat_ms, address=address)), prc


def config(
    folder: Path, side: str, peer: str, extra: str, heartbeat_ms: int = HEARTBEAT_MS, **options: Any
) -> Path:
    text = node_config_text(side, peer, extra=extra, heartbeat_ms=heartbeat_ms, **options)
    return write_node_config(folder, side, text)


def latest(node: NodeProcess, side: str) -> dict[str, Any]:
    with node.client() as client:
        views: list[dict[str, Any]] = client.get("/v1/log/checkpoints").json()[side]
    return views[-1] if views else {}


def checkpoint(node: NodeProcess) -> int:
    with node.client("operator") as client:
        return int(client.post("/v1/log/checkpoint").json()["index"])


def judged(node: NodeProcess, side: str, size: int) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def done() -> bool:
        seen.update(latest(node, side))
        return seen.get("size") == size and seen.get("quorum") in ("met", "not-met")

    wait_until(done, 20, lambda: f"{node.side}'s view of {side}'s checkpoint {size}: {seen}")
    return seen


def log_size(node: NodeProcess) -> int:
    with node.client() as client:
        return int(client.get("/v1/log").json()["size"])


def leaf_hashes(path: Path) -> list[bytes]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT data FROM entries ORDER BY idx").fetchall()
    return [merkle.leaf_hash(bytes(data)) for (data,) in rows]


@dataclass
class Fork:
    us: NodeProcess
    prc: NodeProcess
    witness: WitnessProcess
    size: int
    """The size both histories of US's log have: the forger's, cosigned; US's own, refused."""
    forged_root: bytes


@contextlib.contextmanager
def forked(folder: Path) -> Iterator[Fork]:
    """Someone holding US's key shows the witness a history of US's log that US's node does
    not have; then US's node checkpoints the same size, with its own root. Both nodes
    (and the witness) still running inside; killed on the way out."""
    keys = make_keys(folder, "US", "PRC")
    witness = start_test_witness(folder)
    try:
        section = witness_section(servers(witness))
        us, prc = pair(folder, section, section, heartbeat_ms=QUIET_MS)
        with running(us, prc):
            us.wait_link()
            first = checkpoint(us)
            assert judged(us, "US", first)["quorum"] == "met"
            assert judged(prc, "US", first)["quorum"] == "met"
            # The quiet log: the checkpoint record and the Checkpoint message sent, nothing else.
            size = first + 2
            wait_until(lambda: log_size(us) == size, 10, "US's log did not settle")
            signer = load_signer(keys / "US.signing.key")
            leaves = leaf_hashes(us.log)[:first]
            forged = [*leaves, *(merkle.leaf_hash(b"forged %d" % i) for i in range(2))]
            note = signed_checkpoint("US", signer, size, merkle.root_hash(forged))
            proof = merkle.consistency_proof(forged, first)
            taken = httpx.post(
                f"{witness.url}/add-checkpoint", content=request_body(first, proof, note)
            )
            assert taken.status_code == 200, taken.text
            # Now US's node checkpoints the same size, with its own, other root.
            assert checkpoint(us) == size
            yield Fork(us, prc, witness, size, merkle.root_hash(forged))
    finally:
        witness.kill()
