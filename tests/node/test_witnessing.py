"""Nodes and a witness, as real processes: checkpoints cosigned and counted by the peer, a
forked log caught on both sides, and what a missing quorum does to the gate, fail-open
(flag) against fail-closed."""

from __future__ import annotations

import os
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from clearline.config import default_policy
from clearline.lab.nodes import node_config_text, write_node_config
from clearline.lab.witness import WitnessProcess, make_witness, start_witness, witness_section
from clearline.log import merkle
from clearline.log.note import cosign, log_origin, signed_checkpoint
from clearline.node.config import NodeConfigError, parse_node_config
from clearline.node.keys import load_signer, load_verifier
from clearline.protocol.messages import Checkpoint
from clearline.protocol.session import Session, SessionConfig
from clearline.protocol.signing import Ed25519Signer
from clearline.witness.protocol import request_body
from tests.node.harness import (
    HEARTBEAT_MS,
    NodeProcess,
    make_keys,
    running,
    start_node,
    tls_client,
    wait_until,
)
from tests.node.test_nodes import _handshake

QUIET_MS = 60_000
"""Heartbeats this far apart keep a log still between two checkpoints (the fork test)."""


def _witness(folder: Path, port: int = 0) -> WitnessProcess:
    config = make_witness(
        folder / "witness",
        "witness.test/w1",
        {"US": "../keys/US.signing.pub", "PRC": "../keys/PRC.signing.pub"},
        port=port,
    )
    return start_witness(config)


def _servers(witness: WitnessProcess) -> list[tuple[str, str, str]]:
    return [(witness.name, witness.url, witness.public_key)]


def _pair(
    folder: Path, us_extra: str, prc_extra: str, heartbeat_ms: int = HEARTBEAT_MS
) -> tuple[NodeProcess, NodeProcess]:
    """PRC listening, US dialing it; each with its [witness] section."""
    prc = start_node(_config(folder, "PRC", "US", prc_extra, heartbeat_ms, listen=True))
    assert prc.listen is not None
    address = f"127.0.0.1:{prc.listen}"
    return start_node(_config(folder, "US", "PRC", us_extra, heartbeat_ms, address=address)), prc


def _config(
    folder: Path, side: str, peer: str, extra: str, heartbeat_ms: int = HEARTBEAT_MS, **options: Any
) -> Path:
    text = node_config_text(side, peer, extra=extra, heartbeat_ms=heartbeat_ms, **options)
    return write_node_config(folder, side, text)


def _latest(node: NodeProcess, side: str) -> dict[str, Any]:
    with node.client() as client:
        views: list[dict[str, Any]] = client.get("/v1/log/checkpoints").json()[side]
    return views[-1] if views else {}


def _checkpoint(node: NodeProcess) -> int:
    with node.client("operator") as client:
        return int(client.post("/v1/log/checkpoint").json()["index"])


def _judged(node: NodeProcess, side: str, size: int) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def done() -> bool:
        seen.update(_latest(node, side))
        return seen.get("size") == size and seen.get("quorum") in ("met", "not-met")

    wait_until(done, 20, lambda: f"{node.side}'s view of {side}'s checkpoint {size}: {seen}")
    return seen


def test_checkpoints_are_cosigned_and_the_peer_counts_the_cosignatures(tmp_path: Path) -> None:
    make_keys(tmp_path, "US", "PRC")
    witness = _witness(tmp_path)
    try:
        section = witness_section(_servers(witness))
        us, prc = _pair(tmp_path, section, section)
        with running(us, prc):
            us.wait_link()
            size = _checkpoint(us)
            own = _judged(us, "US", size)
            assert (own["quorum"], own["cosigners"]) == ("met", [witness.name])
            seen = _judged(prc, "US", size)
            # Counted from the cosignature US attached: PRC never had to ask the witness.
            assert (seen["quorum"], seen["cosigners"]) == ("met", [witness.name])
            assert not prc.events("bad-cosignature")
            again = _checkpoint(us)
            assert _judged(prc, "US", again)["quorum"] == "met"
            with us.client() as client:
                status = client.get("/v1/link").json()["witness"]
            assert status["latest"]["US"] == {
                "size": again,
                "quorum": "met",
                "cosigners": [witness.name],
            }
            assert status["up_withheld"] is None and status["split_views"] == []
            assert us.stop() == 0 and prc.stop() == 0
    finally:
        witness.kill()
    with sqlite3.connect(witness.state) as db:
        held = db.execute("SELECT size FROM cosigned ORDER BY size").fetchall()
    assert [s for (s,) in held] == [size, again]


def test_a_forked_log_is_refused_by_the_witness_and_flagged_on_both_nodes(tmp_path: Path) -> None:
    """Someone holding US's key shows the witness a history of US's log that US's node does
    not have, then US's node checkpoints the same size: the witness refuses the second root,
    US's node sees it in the witness's answer, and PRC's node, showing US's checkpoint to the
    witness itself, sees it too."""
    keys = make_keys(tmp_path, "US", "PRC")
    witness = _witness(tmp_path)
    try:
        section = witness_section(_servers(witness))
        us, prc = _pair(tmp_path, section, section, heartbeat_ms=QUIET_MS)
        with running(us, prc):
            us.wait_link()
            first = _checkpoint(us)
            assert _judged(us, "US", first)["quorum"] == "met"
            assert _judged(prc, "US", first)["quorum"] == "met"
            # The quiet log: the checkpoint record and the Checkpoint message sent, nothing else.
            next_size = first + 2
            wait_until(lambda: _log_size(us) == next_size, 10, "US's log did not settle")
            signer = load_signer(keys / "US.signing.key")
            leaves = _leaf_hashes(us.log)[:first]
            forged = [*leaves, *(merkle.leaf_hash(b"forged %d" % i) for i in range(2))]
            note = signed_checkpoint("US", signer, next_size, merkle.root_hash(forged))
            proof = merkle.consistency_proof(forged, first)
            taken = httpx.post(
                f"{witness.url}/add-checkpoint", content=request_body(first, proof, note)
            )
            assert taken.status_code == 200, taken.text
            # Now US's node checkpoints the same size, with its own, other root.
            assert _checkpoint(us) == next_size
            own = _judged(us, "US", next_size)
            assert (own["quorum"], own["cosigners"], own.get("split_view")) == (
                "not-met",
                [],
                True,
            )
            seen = _judged(prc, "US", next_size)
            assert (seen["quorum"], seen.get("split_view")) == ("not-met", True)
            for node in (us, prc):
                views = node.events("split-view")
                assert [(v["log"], v["size"], v["witness"]) for v in views] == [
                    ("US", next_size, witness.name)
                ], f"{node.side}: {views}"
                with node.client() as client:
                    link = client.get("/v1/link").json()
                    assert link["witness"]["split_views"][0]["size"] == next_size
                    metrics = client.get("/metrics").text
                assert "clearline_split_views_total" in metrics
            assert us.stop() == 0 and prc.stop() == 0
    finally:
        witness.kill()
    origin = log_origin("US", load_verifier(keys / "US.signing.pub").kid)
    with sqlite3.connect(witness.state) as db:
        roots = dict(db.execute("SELECT size, root FROM cosigned WHERE origin = ?", (origin,)))
        refused = db.execute("SELECT size FROM evidence WHERE origin = ?", (origin,)).fetchall()
    assert roots[next_size] == merkle.root_hash(forged), "the forger's root stays the only one"
    # US's own checkpoint, refused to US and again to PRC: one piece of evidence, kept once.
    assert refused == [(next_size,)]


def _log_size(node: NodeProcess) -> int:
    with node.client() as client:
        return int(client.get("/v1/log").json()["size"])


def _leaf_hashes(path: Path) -> list[bytes]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT data FROM entries ORDER BY idx").fetchall()
    return [merkle.leaf_hash(bytes(data)) for (data,) in rows]


def _decide(node: NodeProcess, action_id: str) -> dict[str, Any]:
    with node.client("operator") as client:
        answer: dict[str, Any] = client.post(
            "/v1/actions",
            json={
                "action_id": action_id,
                "rung": "intercept-uncrewed",
                "domain": "air",
                "target": "T-1",
            },
        ).json()
    return answer


def test_a_missing_quorum_withholds_the_up_caps_only_when_fail_closed(tmp_path: Path) -> None:
    """intercept-uncrewed is within autonomy's cap on an up link and above the degraded cap.
    The witness goes away: US (fail-closed) treats the link as degraded until a checkpoint
    is witnessed again; PRC (flag) only says so."""
    make_keys(tmp_path, "US", "PRC")
    witness = _witness(tmp_path)
    port = int(witness.url.rsplit(":", 1)[1])
    try:
        servers = _servers(witness)
        us, prc = _pair(
            tmp_path,
            witness_section(servers, on_missing="fail-closed", timeout_ms=500),
            witness_section(servers, on_missing="flag", timeout_ms=500),
        )
        with running(us, prc):
            us.wait_link()
            prc.wait_link()
            assert _decide(us, "US-1")["verdict"] == "allow"
            witness.kill()
            size = _checkpoint(us)
            assert _judged(us, "US", size)["quorum"] == "not-met"
            denied = _decide(us, "US-2")
            assert (denied["verdict"], denied["rule"]) == ("deny", "fail-safe-cap")
            assert "lack a witness quorum" in denied["reason"], denied["reason"]
            assert _judged(prc, "US", size)["quorum"] == "not-met"
            assert _decide(prc, "PRC-1")["verdict"] == "allow", "flag never touches the gate"
            # The witness returns on its port: each side tries again after its backoff.
            witness = _witness(tmp_path, port=port)
            assert prc.events("quorum")[0]["verdict"] == "not-met"
            with prc.client() as client:
                assert "clearline_witness_quorum_missing_total" in client.get("/metrics").text

            def granted() -> bool:
                with us.client() as client:
                    return client.get("/v1/link").json()["witness"]["up_withheld"] is None

            wait_until(granted, 40, "US never had its checkpoint witnessed again")
            assert _decide(us, "US-3")["verdict"] == "allow"
            assert us.stop() == 0 and prc.stop() == 0
    finally:
        witness.kill()


def test_a_bad_cosignature_from_the_peer_is_reported_and_never_counted(tmp_path: Path) -> None:
    keys = make_keys(tmp_path, "US", "PRC")
    w1, w2 = Ed25519Signer.from_label("w1"), Ed25519Signer.from_label("w2")
    servers = [
        ("w1.test", "http://127.0.0.1:9", w1.public_key.hex()),
        ("w2.test", "http://127.0.0.1:9", w2.public_key.hex()),
    ]
    prc = start_node(_config(tmp_path, "PRC", "US", witness_section(servers), listen=True))
    with running(prc):
        assert prc.listen is not None
        policy = default_policy().hash
        us = load_signer(keys / "US.signing.key")
        session = Session(
            SessionConfig("US", "PRC", policy), us, load_verifier(keys / "PRC.signing.pub")
        )
        now = time.time_ns() // 1000
        session.start(now, os.urandom(16))
        root = merkle.root_hash([merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")])
        note = signed_checkpoint("US", us, 2, root)
        good = cosign(note.text, "w1.test", w1, 1_800_000_000)
        other = signed_checkpoint("US", us, 3, root)
        misplaced = cosign(other.text, "w2.test", w2, 1_800_000_000)  # another tree head's
        stranger = cosign(note.text, "w3.test", Ed25519Signer.from_label("w3"), 1)
        lines = tuple(s.line().encode() for s in (good, misplaced, stranger))
        with tls_client(
            prc.listen, keys / "PRC.tls.crt", keys / "US.tls.crt", keys / "US.tls.key"
        ) as sock:
            _handshake(session, sock, now)
            body = Checkpoint(2, root, policy, note_sig=note.signatures[0].signature, cosigs=lines)
            session.send(body, now)
            sock.sendall(session.data_to_send())
            seen = _judged(prc, "US", 2)
        assert seen["quorum"] == "not-met"
        assert seen["cosigners"] == ["w1.test"], "w2's does not verify, w3 is no witness here"
        reported = prc.events("bad-cosignature")
        assert len(reported) == 1 and "w2.test" in reported[0]["detail"], reported
        assert prc.stop() == 0


WITNESS_CONFIG = """\
side = "US"

[peer]
side = "PRC"
certificate = "keys/PRC.tls.crt"
signing_key = "keys/PRC.signing.pub"

[witness]
quorum = 2
on_missing = "fail-closed"

[[witness.servers]]
name = "w1.example/a"
url = "https://w1.example/a"
public_key = "{key1}"

[[witness.servers]]
name = "w2.example/b"
url = "http://10.0.0.9:7380"
public_key = "{key2}"
"""


GOOD_WITNESSES = WITNESS_CONFIG.format(key1="ab" * 32, key2="cd" * 32)


def test_the_witness_section() -> None:
    config = parse_node_config(GOOD_WITNESSES, "us.toml", Path("."))
    assert [s.name for s in config.witness.servers] == ["w1.example/a", "w2.example/b"]
    assert (config.witness.quorum, config.witness.on_missing) == (2, "fail-closed")
    without = GOOD_WITNESSES.split("[witness]")[0]
    assert parse_node_config(without, "us.toml", Path(".")).witness.servers == ()


@pytest.mark.parametrize(
    ("change", "line", "expected"),
    [
        (("cd" * 32, "cd" * 31), 20, "witness.servers[1].public_key"),
        (('"http://10.0.0.9:7380"', '"ftp://x"'), 19, "witness.servers[1].url"),
        (("quorum = 2", "quorum = 3"), 8, "more than the 2 witness"),
        (('"fail-closed"', '"ignore"'), 10, "on_missing"),
        (("w2.example/b", "w1.example/a"), 8, "one name"),
    ],
)
def test_witness_settings_errors_name_the_line(
    change: tuple[str, str], line: int, expected: str
) -> None:
    with pytest.raises(NodeConfigError, match=re.escape(expected)) as info:
        parse_node_config(GOOD_WITNESSES.replace(*change), "us.toml", Path("."))
    assert info.value.line == line, str(info.value)
