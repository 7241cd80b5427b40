"""A Hello copied from a log, relayed by someone who holds the side's TLS key, opens nothing."""

from __future__ import annotations

import time
from pathlib import Path

from clearline.protocol import codec
from clearline.protocol.messages import MessageType
from tests.log.exchange import entries
from tests.node.harness import (
    SIGHTING,
    SWARM,
    make_keys,
    record,
    running,
    start_node,
    tls_client,
    wait_until,
    write_config,
)

HANDSHAKE_TIMEOUT_S = 10  # SessionConfig's default


def test_a_replayed_hello_cannot_keep_the_real_peer_out(tmp_path: Path) -> None:
    """The attacker holds US's TLS key and a US Hello from US's own log, fresh enough to pass
    the age check. PRC takes it, answers with its Hello and its liveness proof, and waits for
    US's proof over the new session id, which only US's signing key can make. The link never
    comes up on it, and the real US, restarted, is let in at once (the replayed connection is
    not up, so the newer authenticated one replaces it) and clarifies."""
    keys = make_keys(tmp_path, "US", "PRC")
    prc = start_node(write_config(tmp_path, "PRC", "US", listen=True))
    with running(prc):
        assert prc.listen is not None
        us_config = write_config(tmp_path, "US", "PRC", address=f"127.0.0.1:{prc.listen}")
        us = start_node(us_config)
        with running(us):
            us.wait_link("up")
            with prc.client("sensor") as client:
                client.post("/v1/telemetry", json={"assets": [SWARM]})
            assert us.stop() == 0
        prc.wait_link("down")
        hello = next(
            e.cose
            for e in entries(tmp_path / "us-data" / "us.db")
            if e.message.type is MessageType.HELLO and e.message.side == "US"
        )
        ups_before = len([e for e in prc.events("link") if e["state"] == "up"])
        with tls_client(
            prc.listen, keys / "PRC.tls.crt", keys / "US.tls.crt", keys / "US.tls.key"
        ) as sock:
            sock.sendall(codec.frame(hello))
            reply = codec.FrameReader()
            frames: list[bytes] = []
            while len(frames) < 2:  # PRC's Hello, then its proof in the new session
                data = sock.recv(65536)
                assert data, "PRC closed the connection instead of waiting for a proof"
                frames += reply.feed(data)
            types = [codec.decode_payload(codec.parse_envelope(f).payload).type for f in frames]
            assert types[:2] == [MessageType.HELLO, MessageType.READY]
            time.sleep(0.5)  # PRC would be up by now had the Hello been enough
            assert prc.wait_link("down")["state"] == "down"
            started = time.monotonic()
            us = start_node(us_config)
            with running(us):
                us.wait_link("up", timeout=HANDSHAKE_TIMEOUT_S)
                took = time.monotonic() - started
                assert took < HANDSHAKE_TIMEOUT_S
                wait_until(
                    lambda: any(
                        "replaced by a newer authenticated connection" in str(e["reason"])
                        for e in prc.events("refused")
                    ),
                    5,
                    "PRC did not replace the replayed connection",
                )
                ups = [e for e in prc.events("link") if e["state"] == "up"]
                assert len(ups) == ups_before + 1, "the link came up more than once"
                record(
                    "replayed-hello",
                    {
                        "replay_opened_a_session": False,
                        "peer_in_after_its_start_s": round(took, 2),
                    },
                )
                with us.client("sensor") as client:
                    result = client.post("/v1/observations", json=SIGHTING).json()
                assert result["outcome"] == "answered", result
                assert us.stop() == 0
        assert prc.stop() == 0
