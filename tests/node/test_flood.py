"""A connection flood: the listener survives running out of descriptors, and the real peer
gets in once the flood is gone."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.node.harness import (
    SIGHTING,
    SWARM,
    make_keys,
    running,
    start_node,
    wait_until,
    write_config,
)

MAX_FILES = 256
FLOOD = 300


@pytest.mark.slow
def test_a_flood_of_half_open_connections_does_not_kill_the_listener(tmp_path: Path) -> None:
    make_keys(tmp_path, "US", "PRC")
    # Handshake caps high enough that descriptors, not the caps, run out first.
    uncapped = "[limits]\nmax_handshakes = 10000\nmax_handshakes_per_source = 10000"
    prc = start_node(
        write_config(tmp_path, "PRC", "US", listen=True, extra=uncapped), max_files=MAX_FILES
    )
    with running(prc):
        assert prc.listen is not None
        flood: list[socket.socket] = []
        try:
            # More connections than the node has descriptors; none ever starts TLS.
            for _ in range(FLOOD):
                flood.append(socket.create_connection(("127.0.0.1", prc.listen), timeout=5))
            # The API shares the descriptors, so the node's own log line says it ran out.
            wait_until(
                lambda: "open files" in prc.stderr.read_text(),
                20,
                "the node never ran out of descriptors: the test proves nothing",
            )
        finally:
            for connection in flood:
                connection.close()
        began = time.monotonic()
        us = start_node(write_config(tmp_path, "US", "PRC", address=f"127.0.0.1:{prc.listen}"))
        with running(us):
            us.wait_link("up", timeout=30)
            prc.wait_link("up", timeout=30)
        assert time.monotonic() - began < 40
        assert prc.process.poll() is None
        refused = [e for e in prc.events("refused") if "accept failed" in str(e["reason"])]
        assert refused, "the listener's failures are events too"


@pytest.mark.slow
def test_a_dialler_refused_after_tls_backs_off(tmp_path: Path) -> None:
    """A second US node (same keys) is refused by PRC after TLS ("already up"): it must not
    redial in a loop, signing and logging a Hello each time."""
    make_keys(tmp_path, "US", "PRC")
    prc = start_node(write_config(tmp_path, "PRC", "US", listen=True))
    with running(prc):
        us = start_node(write_config(tmp_path, "US", "PRC", address=f"127.0.0.1:{prc.listen}"))
        with running(us):
            us.wait_link("up")
            second_dir = tmp_path / "second"
            second_dir.mkdir()
            (second_dir / "keys").symlink_to(tmp_path / "keys")
            second = start_node(
                write_config(second_dir, "US", "PRC", address=f"127.0.0.1:{prc.listen}")
            )
            with running(second):
                time.sleep(5)  # the window in which a storm would have shown
                with second.client() as api:
                    hellos = api.get("/v1/log").json()["size"]
                refusals = [e for e in prc.events("refused") if "already up" in str(e["reason"])]
            assert 1 <= len(refusals) <= 8, len(refusals)
            assert hellos <= 8, f"{hellos} log entries in 5 s: the dialler redials in a loop"


def test_the_node_says_what_happens_to_its_link(tmp_path: Path) -> None:
    """Its operator reads link changes, dial failures and refusals in its output, one line
    each, without asking the events API."""
    make_keys(tmp_path, "US", "PRC")
    us = start_node(write_config(tmp_path, "US", "PRC", address="127.0.0.1:9"))
    with running(us):
        wait_until(
            lambda: "dial-failed" in us.stderr.read_text(), 20, "no line for the failed dial"
        )
    line = next(x for x in us.stderr.read_text().splitlines() if "dial-failed" in x)
    assert "clearline.node.events dial-failed peer=127.0.0.1:9 reason=" in line


def test_json_log_lines_carry_the_event() -> None:
    import json
    import logging

    from clearline.node.serve import JsonLines

    record = logging.LogRecord(
        "clearline.node.events", logging.INFO, "", 0, "link %s", ("up",), None
    )
    record.event = {"kind": "link", "state": "up"}
    line = json.loads(JsonLines().format(record))
    assert line["message"] == "link up" and line["event"] == {"kind": "link", "state": "up"}
    assert line["level"] == "info" and line["logger"] == "clearline.node.events"


@pytest.mark.parametrize("which", ["listen", "api"])
def test_a_port_in_use_is_one_line_naming_the_setting(tmp_path: Path, which: str) -> None:
    import subprocess
    import sys

    make_keys(tmp_path, "US", "PRC")
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    config = write_config(tmp_path, "PRC", "US", listen=True)
    text = config.read_text()
    if which == "listen":
        text = text.replace(
            '[listen]\nhost = "127.0.0.1"\nport = 0', f'[listen]\nhost = "127.0.0.1"\nport = {port}'
        )
    else:
        text = text.replace(
            '[api]\nhost = "127.0.0.1"\nport = 0', f'[api]\nhost = "127.0.0.1"\nport = {port}'
        )
    assert str(port) in text
    config.write_text(text)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "clearline", "node", "serve", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        taken.close()
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    line = next(x for x in result.stderr.splitlines() if x.startswith("error:"))
    assert f"{which}.port" in line and str(config) in line, line
    assert not (tmp_path / "prc-data" / "prc.db").exists(), "a failed start left a log behind"


@pytest.mark.slow
def test_half_open_connections_meet_the_handshake_caps_and_the_link_holds(
    tmp_path: Path,
) -> None:
    """A slowloris of half-open connections is capped (per source and in all); the link
    that is up stays up and keeps clarifying."""
    make_keys(tmp_path, "US", "PRC")
    prc = start_node(write_config(tmp_path, "PRC", "US", listen=True))
    with running(prc):
        assert prc.listen is not None
        us = start_node(write_config(tmp_path, "US", "PRC", address=f"127.0.0.1:{prc.listen}"))
        with running(us):
            us.wait_link("up")
            with prc.client("sensor") as api:
                api.post("/v1/telemetry", json={"assets": [SWARM]})
            half_open: list[socket.socket] = []
            try:
                for _ in range(200):
                    half_open.append(socket.create_connection(("127.0.0.1", prc.listen), 5))
                wait_until(
                    lambda: any(
                        "too many handshakes" in str(e["reason"]) for e in prc.events("refused")
                    ),
                    20,
                    "the handshake caps never applied",
                )
                with us.client("sensor") as api:
                    for _ in range(5):
                        result = api.post("/v1/observations", json=SIGHTING).json()
                        assert result["outcome"] == "answered", result
                assert us.wait_link("up")["state"] == "up"
                assert not us.events("link") or us.events("link")[-1]["state"] == "up"
            finally:
                for connection in half_open:
                    connection.close()
