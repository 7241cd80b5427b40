"""Two real node processes over mutual TLS: clarify, log, verify; refuse whoever is not the peer."""

from __future__ import annotations

import contextlib
import os
import ssl
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from clearline.cli import main
from clearline.config import default_policy
from clearline.node.keys import load_signer, load_verifier
from clearline.protocol.messages import Checkpoint, Heartbeat
from clearline.protocol.session import Session, SessionConfig
from tests.node.harness import (
    SIGHTING,
    SWARM,
    NodeProcess,
    make_keys,
    running,
    start_node,
    tls_client,
    wait_until,
    write_config,
)


@pytest.fixture
def prc(tmp_path: Path) -> Iterator[NodeProcess]:
    make_keys(tmp_path, "US", "PRC")
    node = start_node(write_config(tmp_path, "PRC", "US", listen=True))
    with running(node):
        yield node


def test_two_nodes_clarify_log_and_verify(tmp_path: Path, prc: NodeProcess) -> None:
    us = start_node(write_config(tmp_path, "US", "PRC", address=f"127.0.0.1:{prc.listen}"))
    with running(us):
        link = us.wait_link("up")
        assert link["session_id"] == prc.wait_link("up")["session_id"]
        with prc.client("sensor") as client:
            published = client.post("/v1/telemetry", json={"assets": [SWARM]}).json()
        assert published["sent_to_peer"] is True
        with us.client("operator") as client:
            quick = client.post("/v1/observations", json=SIGHTING).json()
            assert quick["outcome"] == "answered", quick
            result = client.post("/v1/observations?durable=true", json=SIGHTING).json()
            assert result["outcome"] == "answered", result
            assert result["answer"]["claim"] == "ours"
            assert result["answer"]["asset_id"] == "PRC-RS-7"
            assert result["answer"]["intent"] == "withdrawing"
            assert 0 < result["elapsed_ms"] < 1000
            assert isinstance(result["logged_index"], int)
            unknown = client.post(
                "/v1/observations",
                json={**SIGHTING, "track_id": "T-9", "position": {"lat": 10.0, "lon": 10.0}},
            ).json()
            assert unknown["answer"]["claim"] == "not_ours"
            decision = client.post(
                "/v1/actions", json={"action_id": "A1", "rung": "strike", "domain": "nuclear-c2"}
            ).json()
            assert decision["verdict"] == "deny"
            assert decision["rule"] == "excluded-domain"
            proof = client.get(f"/v1/log/proof/{result['logged_index']}").json()
            assert proof["size"] > result["logged_index"]
            ours = client.post("/v1/log/checkpoint").json()
            seen = client.get("/v1/log/checkpoints").json()
            assert seen["US"][-1]["size"] == ours["index"]
            assert seen["US"][-1]["log_index"] == ours["index"]
            metrics = client.get("/metrics").text
            assert 'clearline_messages_total{direction="received",kind="answer"} 3.0' in metrics
            assert "clearline_link_state 2.0" in metrics
        with us.client("operator") as client:
            second = client.post("/v1/log/checkpoint").json()
        with prc.client() as client:
            wait_until(
                lambda: len(client.get("/v1/log/checkpoints").json()["US"]) >= 2,
                10,
                "the PRC node never saw the US checkpoints",
            )
            first_seen, second_seen = client.get("/v1/log/checkpoints").json()["US"][-2:]
        assert first_seen["root"] == seen["US"][-1]["root"]
        assert first_seen["consistency"] == "first"
        assert second_seen["size"] == second["index"]
        assert second_seen["prev_size"] == first_seen["size"]
        assert second_seen["consistency"] == "consistent"
        assert us.stop() == 0
        assert prc.stop() == 0
    for node in (us, prc):
        verified = CliRunner().invoke(main, ["log", "verify", str(node.log)])
        assert verified.exit_code == 0, verified.output
        assert "answer 3" in verified.output and "query 3" in verified.output
        assert "signed checkpoints" in verified.output


def _refused(node: NodeProcess, fragment: str, timeout: float = 10) -> str:
    reasons: list[str] = []

    def found() -> bool:
        reasons[:] = [str(e["reason"]) for e in node.events("refused")]
        return any(fragment in reason for reason in reasons)

    wait_until(found, timeout, lambda: f"no refusal mentioning {fragment!r}: {reasons}")
    return next(reason for reason in reasons if fragment in reason)


def _attempt(port: int, keys: Path, data: bytes, cert: Path | None = None) -> None:
    """Connect (with `cert` and its key, if any), send, read until the node hangs up."""
    key = cert.with_suffix(".key") if cert is not None else None
    with (
        contextlib.suppress(OSError, ssl.SSLError),
        tls_client(port, keys / "PRC.tls.crt", cert, key) as sock,
    ):
        sock.sendall(data)
        while sock.recv(65536):
            pass


def test_refusals_are_logged_and_the_node_keeps_serving(tmp_path: Path, prc: NodeProcess) -> None:
    keys = tmp_path / "keys"
    assert prc.listen is not None
    # 1. no client certificate
    _attempt(prc.listen, keys, b"hello")
    _refused(prc, "no certificate")
    # 2. a certificate that is not the pinned one
    rogue = make_keys(tmp_path / "rogue", "US")
    _attempt(prc.listen, keys, b"hello", rogue / "US.tls.crt")
    _refused(prc, "not the pinned certificate")
    # 3. the pinned certificate, but a signing key that is not the pinned one
    wrong = tmp_path / "wrong"
    make_keys(wrong, "US")
    for name in ("US.tls.crt", "US.tls.key"):
        (wrong / "keys" / name).write_bytes((keys / name).read_bytes())
    (wrong / "keys" / "US.tls.key").chmod(0o600)
    for name in ("PRC.tls.crt", "PRC.signing.pub"):
        (wrong / "keys" / name).write_bytes((keys / name).read_bytes())
    impostor = start_node(write_config(wrong, "US", "PRC", address=f"127.0.0.1:{prc.listen}"))
    with running(impostor):
        reason = _refused(prc, "hello refused")
        assert "unknown_key" in reason or "signature" in reason
        impostor.stop()
    # 4. garbage and an oversized frame from the pinned certificate
    _attempt(prc.listen, keys, b"\x00\x00\x00\x05garbage-not-cbor", keys / "US.tls.crt")
    _attempt(prc.listen, keys, struct.pack(">I", 10_000_000) + b"x" * 100, keys / "US.tls.crt")
    wait_until(
        lambda: any(e["reason"] == "frame_error" for e in prc.events("closed")),
        10,
        lambda: f"no frame_error among {prc.events('closed')}",
    )
    # and the real peer still gets through
    us = start_node(write_config(tmp_path, "US", "PRC", address=f"127.0.0.1:{prc.listen}"))
    with running(us):
        us.wait_link("up")
        with us.client("sensor") as client:
            assert client.post("/v1/observations", json=SIGHTING).json()["outcome"] == "answered"
        assert us.stop() == 0
    assert prc.stop() == 0


def _rss_kib(node: NodeProcess) -> int:
    status = Path(f"/proc/{node.process.pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])


def test_a_flooding_peer_meets_the_rate_limit_with_bounded_memory(tmp_path: Path) -> None:
    """An authenticated peer that floods valid signed messages is cut off by the per-peer
    rate limit; the node's memory stays put and it keeps serving."""
    keys = make_keys(tmp_path, "US", "PRC")
    prc = start_node(
        write_config(
            tmp_path, "PRC", "US", listen=True, extra="[limits]\nframes_per_s = 500\nburst = 1000"
        )
    )
    with running(prc):
        assert prc.listen is not None
        baseline = _rss_kib(prc)
        session = Session(
            SessionConfig("US", "PRC", default_policy().hash),
            load_signer(keys / "US.signing.key"),
            load_verifier(keys / "PRC.signing.pub"),
        )
        now = time.time_ns() // 1000
        session.start(now, os.urandom(16))
        sent = 0
        with (
            contextlib.suppress(OSError, ssl.SSLError),
            tls_client(
                prc.listen, keys / "PRC.tls.crt", keys / "US.tls.crt", keys / "US.tls.key"
            ) as sock,
        ):
            _handshake(session, sock, now)
            for _ in range(40):
                for _ in range(500):
                    session.send(Heartbeat(), now)
                sock.sendall(session.data_to_send())
                sent += 500
        reason = _refused(prc, "rate limit")
        assert reason
        with prc.client() as client:
            metrics = client.get("/metrics").text
        accepted = next(
            float(line.split()[-1])
            for line in metrics.splitlines()
            if line.startswith('clearline_messages_total{direction="received",kind="heartbeat"}')
        )
        assert 1000 <= accepted < sent, f"accepted {accepted} of {sent}: the flood went through"
        assert _rss_kib(prc) - baseline < 64 * 1024, "memory grew by more than 64 MiB"
        with prc.client() as client:
            assert client.get("/v1/link").status_code == 200
        assert prc.stop() == 0


def _handshake(session: Session, sock: ssl.SSLSocket, now: int) -> None:
    """Hellos and liveness proofs, as a peer's node would exchange them."""
    sock.settimeout(10)
    while not session.established:
        sock.sendall(session.data_to_send())
        data = sock.recv(65536)
        assert data, f"the node closed the connection in state {session.state}"
        session.receive_data(data, now)
    sock.sendall(session.data_to_send())


def test_a_peer_showing_two_histories_is_caught(tmp_path: Path) -> None:
    """Split view: a peer whose second checkpoint does not extend its first is flagged."""
    keys = make_keys(tmp_path, "US", "PRC")
    prc = start_node(write_config(tmp_path, "PRC", "US", listen=True))
    with running(prc):
        assert prc.listen is not None
        policy = default_policy().hash
        session = Session(
            SessionConfig("US", "PRC", policy),
            load_signer(keys / "US.signing.key"),
            load_verifier(keys / "PRC.signing.pub"),
        )
        now = time.time_ns() // 1000
        session.start(now, os.urandom(16))
        with tls_client(
            prc.listen, keys / "PRC.tls.crt", keys / "US.tls.crt", keys / "US.tls.key"
        ) as sock:
            _handshake(session, sock, now)
            leaves = [bytes([i]) * 32 for i in range(9)]
            from clearline.log import merkle

            honest = merkle.root_hash(leaves[:5])
            forked = merkle.root_hash([b"\xff" * 32, *leaves[1:]])
            proof = tuple(merkle.consistency_proof(leaves, 5))
            session.send(Checkpoint(5, honest, policy), now)
            session.send(Checkpoint(9, forked, policy, 5, proof), now)
            sock.sendall(session.data_to_send())
            held: list[dict[str, object]] = []

            def both_held() -> bool:
                with prc.client() as client:
                    held[:] = client.get("/v1/log/checkpoints").json()["US"]
                return len(held) == 2

            wait_until(both_held, 10, lambda: f"checkpoints held: {held}")
        assert [c["consistency"] for c in held] == ["first", "INCONSISTENT"]
        with prc.client() as client:
            assert "clearline_inconsistent_checkpoints_total 1.0" in client.get("/metrics").text
        assert prc.stop() == 0
