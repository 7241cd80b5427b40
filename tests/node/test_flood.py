"""Hostile clients against real nodes: a connection burst past the descriptor limit, a
slowloris, a huge body and thousands of event-stream clients, a dialler refused in a loop,
and a port in use. The figures go to artifacts/reliability.json (docs/reliability.md)."""

from __future__ import annotations

import re
import resource
import socket
import sqlite3
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from clearline.protocol import codec
from clearline.protocol.messages import Hello
from tests.node.abuse import Abuse, Counts, loopback_sources
from tests.node.harness import (
    SIGHTING,
    SWARM,
    NodeProcess,
    ProxyThread,
    make_keys,
    record,
    running,
    start_node,
    wait_until,
    write_config,
)

MAX_FILES = 1024
BURST = 1100
ROUNDS = 3


def _descriptors(needed: int, node_limit: int | None = None) -> None:
    """Skip, saying why, unless this process (and the nodes it starts, which inherit its
    limit) can hold `needed` descriptors, raising its soft limit if it must, and a node can
    be held to `node_limit`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    infinite = resource.RLIM_INFINITY
    if node_limit is not None and hard != infinite and hard < node_limit:
        pytest.skip(f"the hard descriptor limit is {hard}: a node cannot be given {node_limit}")
    if soft != infinite and soft < needed:
        if hard != infinite and hard < needed:
            pytest.skip(f"this test needs {needed} descriptors; the hard limit here is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def _rss_mib(node: NodeProcess) -> float:
    status = Path(f"/proc/{node.process.pid}/status").read_text()
    kib = int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])
    return round(kib / 1024, 1)


def _session(node: NodeProcess) -> str | None:
    with node.client() as api:
        session: str | None = api.get("/v1/link").json()["session_id"]
    return session


def _burst(prc: NodeProcess, us: NodeProcess, proxy: ProxyThread, round_: int) -> dict[str, Any]:
    """One burst of BURST connections at PRC, the link cut while it lasts; what it took."""
    assert prc.listen is not None
    session = _session(us)
    failed_accepts = prc.stderr.read_text().count("accept failed")
    burst: list[socket.socket] = []
    try:
        for _ in range(BURST):
            burst.append(socket.create_connection(("127.0.0.1", prc.listen), 10))
        # The API shares the descriptors, so the node's own log is what says it ran out.
        wait_until(
            lambda: prc.stderr.read_text().count("accept failed") > failed_accepts,
            20,
            f"round {round_}: PRC never ran out of descriptors: the burst proves nothing",
        )
        proxy.do(proxy.proxy.cut)
        wait_until(lambda: _session(us) != session, 10, f"round {round_}: the cut link held")
    finally:
        for connection in burst:
            connection.close()
    gone = time.monotonic()
    wait_until(
        lambda: _session(us) not in (None, session),
        40,
        f"round {round_}: the real peer never got back in",
    )
    back = time.monotonic() - gone
    with us.client("sensor") as api:
        result = api.post("/v1/observations", json=SIGHTING).json()
    assert result["outcome"] == "answered", (round_, result)
    return {
        "connections": len(burst),
        "accept_failures_logged": prc.stderr.read_text().count("accept failed") - failed_accepts,
        "reconnected_after_s": round(back, 2),
        "clarification_ms": result["elapsed_ms"],
        "prc_rss_mib_after": _rss_mib(prc),
    }


@pytest.mark.slow
def test_the_real_peer_gets_back_in_after_each_of_three_connection_bursts(
    tmp_path: Path,
) -> None:
    """PRC, held to 1,024 descriptors and with the handshake caps lifted (so that descriptors
    run out first), takes a burst of 1,100 connections that never start TLS, three times.
    During each, the link is cut, so that the real peer has to come back in through the
    exhausted listener; once the burst is gone it does, and clarifies."""
    _descriptors(BURST + 512, node_limit=MAX_FILES)  # the burst, the proxy, the API clients
    make_keys(tmp_path, "US", "PRC")
    uncapped = "[limits]\nmax_handshakes = 10000\nmax_handshakes_per_source = 10000"
    prc = start_node(
        write_config(tmp_path, "PRC", "US", listen=True, extra=uncapped), max_files=MAX_FILES
    )
    with running(prc):
        assert prc.listen is not None
        proxy = ProxyThread(prc.listen)
        try:
            us = start_node(write_config(tmp_path, "US", "PRC", address=f"127.0.0.1:{proxy.port}"))
            with running(us):
                us.wait_link("up")
                with prc.client("sensor") as api:
                    api.post("/v1/telemetry", json={"assets": [SWARM]})
                rss_before = _rss_mib(prc)
                rounds = [_burst(prc, us, proxy, round_) for round_ in range(ROUNDS)]
                prc.wait_link("up")
                assert prc.process.poll() is None
                # Counted too (the events API keeps only the latest of the many refusals).
                with prc.client() as api:
                    assert (
                        'clearline_refusals_total{reason="accept failed"}'
                        in api.get("/metrics").text
                    )
                record(
                    "burst-1100-at-1024-descriptors",
                    {
                        "descriptor_limit": MAX_FILES,
                        "rounds": rounds,
                        "prc_rss_mib": {"before": rss_before, "after": _rss_mib(prc)},
                    },
                )
        finally:
            proxy.close()


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
            figures = {"seconds": 5, "refusals": len(refusals), "log_entries": hellos}
            record("refused-dialler", figures)


def _logged_hello(log: Path, side: str) -> bytes:
    """The first Hello `side` signed, as its own log holds it (logs are exported and kept:
    this is what anyone with a copy could replay)."""
    connection = sqlite3.connect(f"file:{log}?mode=ro", uri=True)
    try:
        rows = connection.execute("SELECT data FROM entries ORDER BY idx").fetchall()
    finally:
        connection.close()
    for (data,) in rows:
        message = codec.decode_payload(codec.parse_envelope(bytes(data)).payload)
        if isinstance(message.body, Hello) and message.side == side:
            return bytes(data)
    raise AssertionError(f"no Hello of {side} in {log}")


@pytest.mark.slow
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
    record(
        f"port-in-use-{which}",
        {"exit_code": result.returncode, "stderr_lines": len(result.stderr.splitlines())},
    )


SLOWLORIS = 500
SLOWLORIS_SOURCES = 20
"""25 connections from each of 20 loopback addresses: past the cap per source (16) and, all
together, past the cap in all (128)."""
SUBSCRIBERS = 2000
BIG_BODY = 69 * 1024 * 1024
US_ASSET = {**SWARM, "asset_id": "US-RS-1"}
ABUSE_S = 15.0
"""How long the clarifications run with the abuse in force."""


def _link_lines(node: NodeProcess, since: int) -> Counter[str]:
    """The node's `link state=...` lines past byte `since` of its stderr (its event log:
    complete, where the events API keeps only the latest)."""
    after = node.stderr.read_bytes()[since:].decode()
    return Counter(m.group(1) for m in re.finditer(r"events link state=(\w+)", after))


def _clarify(api: httpx.Client, latencies: list[float], outcomes: Counter[str]) -> None:
    result = api.post("/v1/observations", json=SIGHTING).json()
    outcomes[result["outcome"]] += 1
    if result["outcome"] == "answered":
        latencies.append(result["elapsed_ms"])


def _handshakes(api: httpx.Client) -> float:
    """Connections the node holds in their TLS handshake now (its own gauge)."""
    found = re.search(r"^clearline_handshakes_in_progress (\S+)$", api.get("/metrics").text, re.M)
    assert found, "no clearline_handshakes_in_progress in /metrics"
    return float(found.group(1))


def _quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
        "max_ms": round(ordered[-1], 2),
    }


@pytest.mark.slow
def test_the_link_holds_and_clarifies_under_a_slowloris_a_huge_body_and_2000_subscribers(
    tmp_path: Path,
) -> None:
    """All at once: 500 half-open connections to PRC's peer port (from 20 addresses), POSTs
    of a 69 MiB body to the US API one after another, and 2,000 event-stream clients of the
    US API. PRC keeps asking US about a track; the link never goes down and every
    clarification is answered."""
    sources = loopback_sources(SLOWLORIS_SOURCES)
    if not sources:
        pytest.skip("cannot bind 127.0.0.2 and up: the slowloris needs many source addresses")
    # Each end of the slowloris and of the subscribers is a descriptor here, and at US.
    _descriptors(SLOWLORIS + SUBSCRIBERS + 512)
    make_keys(tmp_path, "US", "PRC")
    prc = start_node(write_config(tmp_path, "PRC", "US", listen=True))
    with running(prc):
        assert prc.listen is not None
        us = start_node(write_config(tmp_path, "US", "PRC", address=f"127.0.0.1:{prc.listen}"))
        with running(us), prc.client("sensor") as prc_api, us.client("sensor") as us_api:
            us.wait_link("up")
            session = prc.wait_link("up")["session_id"]
            us_api.post("/v1/telemetry", json={"assets": [US_ASSET]})
            quiet: list[float] = []
            quiet_outcomes: Counter[str] = Counter()
            for _ in range(20):
                _clarify(prc_api, quiet, quiet_outcomes)
            assert quiet_outcomes == {"answered": 20}, quiet_outcomes
            rss_before = _rss_mib(us)
            since = {node.side: node.stderr.stat().st_size for node in (us, prc)}

            abuse = Abuse()
            loris, streams = Counts(), Counts()
            bodies: list[dict[str, Any]] = []
            try:
                abuse.start(abuse.slowloris(prc.listen, SLOWLORIS, sources, loris))
                abuse.start(abuse.subscribers(us.api, us.token("observer"), SUBSCRIBERS, streams))
                abuse.start(abuse.big_bodies(us.api, us.token("sensor"), BIG_BODY, bodies))
                wait_until(
                    lambda: (
                        loris.opened >= SLOWLORIS
                        and streams.opened + streams.failed >= SUBSCRIBERS
                        and len(bodies) >= 2
                    ),
                    60,
                    lambda: f"the abuse never got going: {loris}, {streams}, {len(bodies)} bodies",
                )
                in_force = time.monotonic()
                latencies: list[float] = []
                outcomes: Counter[str] = Counter()
                rss_peak = rss_before
                handshaking = 0.0
                while time.monotonic() - in_force < ABUSE_S:
                    _clarify(prc_api, latencies, outcomes)
                    rss_peak = max(rss_peak, _rss_mib(us))
                    if len(latencies) % 10 == 0:
                        handshaking = max(handshaking, _handshakes(prc_api))
                    time.sleep(0.05)
                held = {"slowloris": loris.held, "subscribers": streams.held}
            finally:
                abuse.stop()
            with prc.client() as api:
                metrics = api.get("/metrics").text
            capped = sum(
                float(line.split()[-1])
                for line in metrics.splitlines()
                if line.startswith('clearline_refusals_total{reason="too many handshakes"}')
            )
            assert outcomes == {"answered": outcomes.total()}, outcomes
            assert outcomes.total() >= 20, f"only {outcomes.total()} clarifications in {ABUSE_S} s"
            prc_link, us_link = _link_lines(prc, since["PRC"]), _link_lines(us, since["US"])
            assert prc_link["down"] == 0 and us_link["down"] == 0, (prc_link, us_link)
            assert prc.wait_link("up")["session_id"] == session, "the link was replaced"
            assert capped > 0, "the handshake caps never applied: the slowloris proves nothing"
            assert 0 < handshaking <= 128, handshaking
            assert {b["status"] for b in bodies} == {413}, bodies[:4]
            assert max(b["response_bytes"] for b in bodies) < 1024, "a refusal echoed the input"
            assert streams.peak <= 64 < streams.statuses[503], streams
            record(
                "slowloris-body-subscribers",
                {
                    "abuse_seconds": ABUSE_S,
                    "slowloris_connections": SLOWLORIS,
                    "slowloris_opened": loris.opened,
                    "slowloris_held_at_end": held["slowloris"],
                    "slowloris_peak_open": loris.peak,
                    "prc_peak_handshakes_held": handshaking,
                    "refused_by_handshake_caps": capped,
                    "subscriber_clients": SUBSCRIBERS,
                    "subscriptions_served": streams.statuses[200],
                    "subscriptions_refused_503": streams.statuses[503],
                    "subscribers_held_at_end": held["subscribers"],
                    "subscriptions_ended_by_the_node": streams.closed_by_peer,
                    "big_bodies": len(bodies),
                    "big_body_max_seconds_to_413": round(max(b["seconds"] for b in bodies), 3),
                    "big_body_max_bytes_sent": max(b["sent_bytes"] for b in bodies),
                    "big_body_max_response_bytes": max(b["response_bytes"] for b in bodies),
                    "clarifications_quiet": _quantiles(quiet),
                    "clarifications_under_abuse": _quantiles(latencies),
                    "prc_link_changes": dict(prc_link),
                    "us_link_changes": dict(us_link),
                    "us_rss_mib": {"before": rss_before, "peak": rss_peak, "after": _rss_mib(us)},
                },
            )
