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

import pytest

from clearline.config import default_policy
from clearline.lab.witness import witness_section
from clearline.log import merkle
from clearline.log.note import cosign, log_origin, signed_checkpoint
from clearline.node.config import NodeConfigError, parse_node_config
from clearline.node.keys import load_signer, load_verifier
from clearline.protocol.messages import Checkpoint
from clearline.protocol.session import Session, SessionConfig
from clearline.protocol.signing import Ed25519Signer
from tests.node.harness import (
    NodeProcess,
    make_keys,
    running,
    start_node,
    tls_client,
    wait_until,
)
from tests.node.test_nodes import _handshake
from tests.node.witnesses import (
    checkpoint,
    config,
    forked,
    judged,
    pair,
    servers,
    start_test_witness,
)


def test_checkpoints_are_cosigned_and_the_peer_counts_the_cosignatures(tmp_path: Path) -> None:
    make_keys(tmp_path, "US", "PRC")
    witness = start_test_witness(tmp_path)
    try:
        section = witness_section(servers(witness))
        us, prc = pair(tmp_path, section, section)
        with running(us, prc):
            us.wait_link()
            size = checkpoint(us)
            own = judged(us, "US", size)
            assert (own["quorum"], own["cosigners"]) == ("met", [witness.name])
            seen = judged(prc, "US", size)
            # Counted from the cosignature US attached: PRC never had to ask the witness.
            assert (seen["quorum"], seen["cosigners"]) == ("met", [witness.name])
            assert not prc.events("bad-cosignature")
            again = checkpoint(us)
            assert judged(prc, "US", again)["quorum"] == "met"
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
    """The witness refuses US's own root for a size it cosigned another root for; US's
    node sees it in the witness's answer, and PRC's node, showing US's checkpoint to the
    witness itself, sees it too."""
    with forked(tmp_path) as fork:
        us, prc, size = fork.us, fork.prc, fork.size
        own = judged(us, "US", size)
        assert (own["quorum"], own["cosigners"], own.get("split_view")) == ("not-met", [], True)
        seen = judged(prc, "US", size)
        assert (seen["quorum"], seen.get("split_view")) == ("not-met", True)
        for node in (us, prc):
            views = node.events("split-view")
            assert [(v["log"], v["size"], v["witness"]) for v in views] == [
                ("US", size, fork.witness.name)
            ], f"{node.side}: {views}"
            with node.client() as client:
                link = client.get("/v1/link").json()
                assert link["witness"]["split_views"][0]["size"] == size
                metrics = client.get("/metrics").text
            assert "clearline_split_views_total" in metrics
        assert us.stop() == 0 and prc.stop() == 0
    origin = log_origin("US", load_verifier(tmp_path / "keys" / "US.signing.pub").kid)
    with sqlite3.connect(fork.witness.state) as db:
        roots = dict(db.execute("SELECT size, root FROM cosigned WHERE origin = ?", (origin,)))
        refused = db.execute("SELECT size FROM evidence WHERE origin = ?", (origin,)).fetchall()
    assert roots[size] == fork.forged_root, "the forger's root stays the only one"
    # US's own checkpoint, refused to US and again to PRC: one piece of evidence, kept once.
    assert refused == [(size,)]


STEADY_MS = 1000
"""Heartbeats far enough apart that a busy machine never makes the link look degraded: the
gate's verdicts in the fail-closed test must be the witnesses' doing alone."""


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
    witness = start_test_witness(tmp_path)
    port = int(witness.url.rsplit(":", 1)[1])
    try:
        listed = servers(witness)
        us, prc = pair(
            tmp_path,
            witness_section(listed, on_missing="fail-closed", timeout_ms=500),
            witness_section(listed, on_missing="flag", timeout_ms=500),
            heartbeat_ms=STEADY_MS,
        )
        with running(us, prc):
            us.wait_link()
            prc.wait_link()
            first = _decide(us, "US-1")
            assert first["verdict"] == "allow", first
            witness.kill()
            size = checkpoint(us)
            assert judged(us, "US", size)["quorum"] == "not-met"
            denied = _decide(us, "US-2")
            assert (denied["verdict"], denied["rule"]) == ("deny", "fail-safe-cap")
            assert "lack a witness quorum" in denied["reason"], denied["reason"]
            assert judged(prc, "US", size)["quorum"] == "not-met"
            flagged = _decide(prc, "PRC-1")
            assert flagged["verdict"] == "allow", f"flag never touches the gate: {flagged}"
            # The witness returns on its port: each side tries again after its backoff.
            witness = start_test_witness(tmp_path, port=port)
            assert prc.events("quorum")[0]["verdict"] == "not-met"
            with prc.client() as client:
                assert "clearline_witness_quorum_missing_total" in client.get("/metrics").text

            def granted() -> bool:
                with us.client() as client:
                    return client.get("/v1/link").json()["witness"]["up_withheld"] is None

            wait_until(granted, 40, "US never had its checkpoint witnessed again")
            again = _decide(us, "US-3")
            assert again["verdict"] == "allow", again
            assert us.stop() == 0 and prc.stop() == 0
    finally:
        witness.kill()


def test_a_bad_cosignature_from_the_peer_is_reported_and_never_counted(tmp_path: Path) -> None:
    keys = make_keys(tmp_path, "US", "PRC")
    w1, w2 = Ed25519Signer.from_label("w1"), Ed25519Signer.from_label("w2")
    listed = [
        ("w1.test", "http://127.0.0.1:9", w1.public_key.hex()),
        ("w2.test", "http://127.0.0.1:9", w2.public_key.hex()),
    ]
    prc = start_node(config(tmp_path, "PRC", "US", witness_section(listed), listen=True))
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
            seen = judged(prc, "US", 2)
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
    settings = parse_node_config(GOOD_WITNESSES, "us.toml", Path(".")).witness
    assert [s.name for s in settings.servers] == ["w1.example/a", "w2.example/b"]
    assert (settings.quorum, settings.on_missing) == (2, "fail-closed")
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
