"""Certificates rotated on SIGHUP, with real node processes: the link that is up stays up, new
connections use the new pair, and a file that is not usable keeps the old one."""

from __future__ import annotations

import contextlib
import signal
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from clearline.node.keys import init_keys, rotate_tls
from tests.node.harness import (
    SIGHTING,
    SWARM,
    NodeProcess,
    ProxyThread,
    make_keys,
    running,
    start_node,
    tls_client,
    wait_until,
    write_config,
)

Pair = tuple[NodeProcess, NodeProcess, ProxyThread, Path]


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    """PRC listens; US dials it through a proxy that can cut the connection (to make US
    redial without a restart). Both read their keys from the same folder."""
    keys = make_keys(tmp_path, "US", "PRC")
    prc = start_node(write_config(tmp_path, "PRC", "US", listen=True))
    with running(prc):
        assert prc.listen is not None
        proxy = ProxyThread(prc.listen)
        try:
            us = start_node(write_config(tmp_path, "US", "PRC", address=f"127.0.0.1:{proxy.port}"))
            with running(us):
                us.wait_link("up")
                prc.wait_link("up")
                with prc.client("sensor") as api:
                    api.post("/v1/telemetry", json={"assets": [SWARM]})
                yield us, prc, proxy, keys
        finally:
            proxy.close()


def _lines(node: NodeProcess, kind: str) -> list[str]:
    return [line for line in node.stderr.read_text().splitlines() if f"events {kind} " in line]


def _reload(node: NodeProcess, kind: str) -> str:
    """SIGHUP, then the one new line of `kind` the node writes for it."""
    before = len(_lines(node, kind))
    node.process.send_signal(signal.SIGHUP)
    wait_until(
        lambda: len(_lines(node, kind)) > before,
        10,
        lambda: f"no new {kind} line after SIGHUP:\n{node.stderr.read_text()[-2000:]}",
    )
    return _lines(node, kind)[-1]


def _clarifies(us: NodeProcess) -> None:
    with us.client("sensor") as api:
        result = api.post("/v1/observations", json=SIGHTING).json()
    assert result["outcome"] == "answered", result


def _redial(us: NodeProcess, prc: NodeProcess, proxy: ProxyThread, session: str) -> None:
    """Cut the connection, and see US and PRC make a new session."""
    proxy.do(proxy.proxy.cut)
    for node in (us, prc):
        with node.client() as api:
            wait_until(
                lambda api=api: api.get("/v1/link").json()["session_id"] not in (None, session),
                15,
                f"{node.side} never made a new session",
            )
        node.wait_link("up")


def test_sighup_rotates_the_certificates_and_keeps_the_link(pair: Pair) -> None:
    us, prc, proxy, keys = pair
    session = us.wait_link("up")["session_id"]
    # One folder holds both US's own pair and the copy PRC pins: one rotation changes both.
    rotate_tls(keys, "US")
    assert "changed=certificate" in _reload(us, "tls-reloaded")
    assert "changed=peer-certificate" in _reload(prc, "tls-reloaded")
    assert us.wait_link("up")["session_id"] == session, "the reload touched the live link"
    assert prc.wait_link("up")["session_id"] == session
    _clarifies(us)
    # The old certificate no longer gets in.
    assert prc.listen is not None
    seen = len(prc.events("refused"))
    with (
        contextlib.suppress(ssl.SSLError, OSError),
        tls_client(
            prc.listen, keys / "PRC.tls.crt", keys / "US.tls.crt.old", keys / "US.tls.key.old"
        ) as client,
    ):
        client.sendall(b"\x00")
        client.recv(1)
    wait_until(
        lambda: any("not the pinned" in str(e["reason"]) for e in prc.events("refused")[seen:]),
        10,
        lambda: f"PRC did not refuse the old certificate: {prc.events('refused')[seen:]}",
    )
    # The next connection is made with the new pair on both ends.
    _redial(us, prc, proxy, session)
    _clarifies(us)
    with prc.client() as api:
        assert 'clearline_tls_reloads_total{outcome="reloaded"} 1.0' in api.get("/metrics").text


def test_sighup_with_unusable_files_keeps_the_old_certificates(pair: Pair, tmp_path: Path) -> None:
    us, prc, proxy, keys = pair
    session = us.wait_link("up")["session_id"]
    key, crt = keys / "PRC.tls.key", keys / "PRC.tls.crt"
    good_key, good_crt = key.read_bytes(), crt.read_bytes()
    other = init_keys(tmp_path / "other", "PRC")

    def garbage() -> None:
        key.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")

    def mismatched() -> None:
        key.write_bytes(other["tls_key"].read_bytes())

    def readable() -> None:
        key.chmod(0o644)

    def missing() -> None:
        crt.unlink()

    def unreadable_peer() -> None:
        (keys / "US.tls.crt").write_bytes(b"not a certificate")

    good_peer = (keys / "US.tls.crt").read_bytes()
    for breakage, expected in (
        (garbage, f"TLS key {key} cannot be loaded"),
        (mismatched, f"TLS key {key} does not match certificate {crt}"),
        (readable, f"TLS key {key} is readable by others"),
        (missing, f"{crt} is missing"),
        (unreadable_peer, f"certificate {keys / 'US.tls.crt'} is not a PEM certificate"),
    ):
        breakage()
        line = _reload(prc, "tls-reload-failed")
        assert expected in line and "kept=certificate " in line, line
        key.write_bytes(good_key)
        key.chmod(0o600)
        crt.write_bytes(good_crt)
        (keys / "US.tls.crt").write_bytes(good_peer)
    assert "Traceback" not in prc.stderr.read_text()
    assert prc.wait_link("up")["session_id"] == session
    # With a broken key in place, the node still accepts the real peer with what it had.
    garbage()
    _reload(prc, "tls-reload-failed")
    _redial(us, prc, proxy, session)
    _clarifies(us)
    with prc.client() as api:
        assert 'clearline_tls_reloads_total{outcome="failed"} 6.0' in api.get("/metrics").text
