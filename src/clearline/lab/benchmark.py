"""`clearline bench link`: the hotline on loopback against the floor and against gRPC.

In one run: (a) a bare TCP echo of a 300-byte request, the floor; (b) a gRPC
unary echo with mutual TLS, the peer a user would otherwise pick; (c) a
clarification through two real node processes: a Query from node A's local API
to node B and the signed Answer back, verified, and committed to A's log before
the API answers; (d) telemetry throughput over one link, signed, verified and
committed, against raw SQLite batched inserts of same-size rows on the same
disk, published through the API and, (f), streamed into B's telemetry feed
(docs/feed.md), with each record's age when the peer verified it and when it committed
it, each node kept to a core of its own (as each side has a host of its own), and
once more with the nodes left to float; (e) the clarification again through a proxy
adding 55 ms each way.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import multiprocessing
import os
import socket
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import uvloop

from clearline import feed
from clearline.lab.scene import SIGHTING, SWARM, NodePair, node_pair
from clearline.node.keys import init_keys
from clearline.node.metrics import AGE_BUCKETS_US
from clearline.node.tokens import Role
from clearline.protocol.messages import AssetKind, Mission, Position

PAYLOAD = b"x" * 300
Say = Callable[[str], None]


def percentiles(samples_us: list[float]) -> dict[str, float]:
    ordered = sorted(samples_us)
    n = len(ordered)
    return {
        "p50_us": round(ordered[n // 2], 1),
        "p99_us": round(ordered[min(n - 1, int(n * 0.99))], 1),
        "max_us": round(ordered[-1], 1),
    }


def tcp_echo(rounds: int) -> dict[str, float]:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        connection, _ = server.accept()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with connection:
            while data := connection.recv(65536):
                connection.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    samples = []
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(rounds):
            began = time.perf_counter()
            client.sendall(PAYLOAD)
            got = 0
            while got < len(PAYLOAD):
                got += len(client.recv(65536))
            samples.append((time.perf_counter() - began) * 1e6)
    server.close()
    thread.join(timeout=5)
    return percentiles(samples)


def grpc_unary(rounds: int, keys: Path) -> dict[str, float]:
    try:
        import grpc
    except ImportError:
        raise RuntimeError(
            "the gRPC comparison needs grpcio: pip install 'clearline[bench]'"
        ) from None

    def echo(request: bytes, context: Any) -> bytes:
        return request

    server = grpc.server(_Pool())
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
            ),
        )
    )
    credentials = grpc.ssl_server_credentials(
        [((keys / "PRC.tls.key").read_bytes(), (keys / "PRC.tls.crt").read_bytes())],
        root_certificates=(keys / "US.tls.crt").read_bytes(),
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    channel = grpc.secure_channel(
        f"localhost:{port}",
        grpc.ssl_channel_credentials(
            root_certificates=(keys / "PRC.tls.crt").read_bytes(),
            private_key=(keys / "US.tls.key").read_bytes(),
            certificate_chain=(keys / "US.tls.crt").read_bytes(),
        ),
    )
    call = channel.unary_unary("/bench.Echo/Echo")
    for _ in range(50):
        call(PAYLOAD)
    samples = []
    for _ in range(rounds):
        began = time.perf_counter()
        call(PAYLOAD)
        samples.append((time.perf_counter() - began) * 1e6)
    channel.close()
    server.stop(None)
    return percentiles(samples)


class _Pool:
    """A one-thread executor for the gRPC server (a unary echo needs no more)."""

    def __init__(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=1)

    def submit(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)


def sqlite_raw(rows: int, row_bytes: int, batch: int, folder: Path) -> float:
    """Rows per second: batched inserts, WAL, synchronous=FULL, one commit per batch."""
    db = sqlite3.connect(folder / "raw.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (idx INTEGER PRIMARY KEY, data BLOB NOT NULL)")
    payload = os.urandom(row_bytes)
    began = time.perf_counter()
    for start in range(0, rows, batch):
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT INTO t VALUES (?, ?)", ((i, payload) for i in range(start, start + batch))
        )
        db.execute("COMMIT")
    elapsed = time.perf_counter() - began
    db.close()
    return rows / elapsed


def _post_loop(
    api: str, path: str, body: bytes, rounds: int, token: str
) -> list[tuple[float, Any]]:
    """POST `body` `rounds` times on one kept-alive connection (stdlib http.client: the
    lightest client, so the figure is the node's, not the client library's)."""
    host, port = api.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    headers = {"content-type": "application/json", "authorization": f"Bearer {token}"}
    results = []
    for _ in range(rounds):
        began = time.perf_counter()
        connection.request("POST", path, body, headers)
        response = connection.getresponse()
        data = json.loads(response.read())
        results.append(((time.perf_counter() - began) * 1e6, data))
    connection.close()
    return results


async def _clarifications(
    pair: NodePair, rounds: int, durable: bool = False
) -> tuple[list[float], list[float]]:
    await pair.prc_api.post("/v1/telemetry", json={"assets": [SWARM]})
    await asyncio.sleep(0.05)
    path = "/v1/observations" + ("?durable=true" if durable else "")
    results = await asyncio.to_thread(
        _post_loop,
        pair.us.api,
        path,
        json.dumps(SIGHTING).encode(),
        rounds + 20,
        pair.token("US", Role.SENSOR),
    )
    outer: list[float] = []
    inner: list[float] = []
    for i, (took, result) in enumerate(results):
        if result["outcome"] != "answered" or (durable and result["logged_index"] is None):
            raise RuntimeError(f"clarification {i} did not complete: {result}")
        if i >= 20:
            outer.append(took)
            inner.append(result["elapsed_ms"] * 1000)
    return outer, inner


def _asset(i: int) -> dict[str, Any]:
    return {
        "asset_id": f"PRC-UAS-{i:06d}",
        "kind": "uncrewed_aircraft",
        "mission": "patrol",
        "armed": False,
        "intent": "transiting",
        "position": {"lat": 20 + (i % 1000) / 1000, "lon": 120 + (i % 777) / 1000, "alt_m": 900},
    }


async def _telemetry(
    prc_api: httpx.AsyncClient, us_api: httpx.AsyncClient, records: int, per_call: int
) -> float:
    bodies = [
        {"assets": [_asset(start + j) for j in range(per_call)]}
        for start in range(0, records, per_call)
    ]

    received = 'clearline_telemetry_records_total{direction="received"}'
    before = (await _metric_lines(us_api, received)).get(received, 0.0)
    began = time.time()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def worker() -> None:
        while not queue.empty():
            body = queue.get_nowait()
            response = await prc_api.post("/v1/telemetry", json=body)
            response.raise_for_status()

    await asyncio.gather(*(worker() for _ in range(4)))
    deadline = time.perf_counter() + 300
    while (got := (await _metric_lines(us_api, received)).get(received, 0.0) - before) < records:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"only {got:.0f} of {records} telemetry records arrived")
        await asyncio.sleep(POLL_S)
    # Received means verified; committed follows within one group commit: wait for it,
    # then take the end from the node's own record of its last commit.
    await us_api.post("/v1/log/checkpoint")
    return records / ((await _metric_lines(us_api, LAST_COMMIT))[LAST_COMMIT] - began)


SETTLE_S = 1.0
POLL_S = 0.1
"""How often the benchmark asks the receiving node how many records it has: seldom, since
each answer costs the node it measures; the end is the node's own commit time."""
FEED_CHUNK = 100
"""Records written to the feed at once (one `sendall`), all stamped with that moment."""
_AT = 1 + 5
"""Where a record's `at` starts after its length prefix: after the type and enumeration bytes."""


def feed_chunks(records: int) -> list[tuple[bytearray, list[int]]]:
    """`records` feed frames in chunks of FEED_CHUNK, each with the offsets of its `at`s."""
    chunks = []
    for start in range(0, records, FEED_CHUNK):
        data, offsets = bytearray(), []
        for i in range(start, min(records, start + FEED_CHUNK)):
            offsets.append(len(data) + 2 + _AT)
            data += feed.point_frame(
                f"PRC-UAS-{i:06d}",
                AssetKind.UNCREWED_AIRCRAFT,
                Mission.PATROL,
                False,
                Position(20_000_000 + i % 1000 * 1000, 120_000_000 + i % 777 * 1000, 900),
                at=1,
            )
        chunks.append((data, offsets))
    return chunks


def feed_stream(
    port: int, token: str, chunks: list[tuple[bytearray, list[int]]], rate: float
) -> float:
    """Write the chunks to the feed at `rate` records a second (0: as fast as it takes
    them), each chunk's records stamped with the time it is written; the wall time of the
    first record's write.

    Run in a process of its own (`_stream_telemetry`): in a thread, it would share the
    benchmark's interpreter lock, and a chunk stamped and then held off for the lock's
    switch interval (5 ms) would count that wait in its records' ages."""
    with socket.create_connection(("127.0.0.1", port)) as connection:
        # As docs/feed.md asks of a feed: without it, Nagle's algorithm holds a write back
        # until the node acknowledges the last, which a delayed ACK puts off up to 40 ms.
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection.sendall(feed.token_frame(token))
        first_write = time.time()
        began = time.perf_counter()
        sent = 0
        for data, offsets in chunks:
            if rate:
                due = began + sent / rate
                while (wait := due - time.perf_counter()) > 0:
                    time.sleep(wait)
            stamp = (time.time_ns() // 1000).to_bytes(8, "big")
            for at in offsets:
                data[at : at + 8] = stamp
            connection.sendall(data)
            sent += len(offsets)
        return first_write


async def _metric_lines(api: httpx.AsyncClient, prefix: str) -> dict[str, float]:
    text = (await api.get("/metrics")).text
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(prefix)
    }


def age_percentiles(
    before: dict[str, float],
    after: dict[str, float],
    histogram: str = "clearline_telemetry_age_seconds",
    prefix: str = "",
) -> dict[str, float]:
    """p50 and p99 of the records' ages between two readings of an age histogram, as the
    upper bound of the bucket each falls in (ms); inf past the last bound."""
    counts = []
    for bound in (*AGE_BUCKETS_US, None):
        le = "+Inf" if bound is None else f"{bound / 1e6:g}"
        key = f'{histogram}_bucket{{le="{le}"}}'
        counts.append((bound, after.get(key, 0.0) - before.get(key, 0.0)))
    total = counts[-1][1]
    out: dict[str, float] = {} if prefix else {"records": total}
    for name, q in (("p50_ms", 0.5), ("p99_ms", 0.99)):
        bound = next((b for b, c in counts if c >= q * total), None)
        out[prefix + name] = float("inf") if bound is None else bound / 1000
    return out


def commit_latency(folder: Path, commits: int = 300, row_bytes: int = 60_000) -> dict[str, float]:
    """The disk's own floor under a record's age at commit: p50 and p99 (ms) of one SQLite
    commit of a message-sized row (WAL, synchronous=FULL, as the node's log), one every
    10 ms, as a steady stream of messages would commit."""
    db = sqlite3.connect(folder / "commits.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (data BLOB NOT NULL)")
    payload = os.urandom(row_bytes)
    took = []
    for _ in range(commits):
        began = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t VALUES (?)", (payload,))
        db.execute("COMMIT")
        took.append((time.perf_counter() - began) * 1e6)
        time.sleep(0.01)
    db.close()
    figures = percentiles(took)
    return {"p50_ms": figures["p50_us"] / 1000, "p99_ms": figures["p99_us"] / 1000}


async def _stream_telemetry(pair: NodePair, records: int, rate: float) -> dict[str, float]:
    """Records streamed into PRC's feed, signed, sent, verified and committed at US: the
    rate from the first byte written to the last record committed, and their ages."""
    assert pair.prc.feed is not None
    chunks = feed_chunks(records)
    # What the run before set off (its checkpoint, the witnesses' round on it) is done
    # before this one's records are timed.
    await asyncio.sleep(SETTLE_S)
    received = 'clearline_telemetry_records_total{direction="received"}'
    before = await _metric_lines(pair.us_api, "clearline_telemetry_")
    token = pair.token("PRC", Role.SENSOR)
    writer = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    writing = asyncio.get_running_loop().run_in_executor(
        writer, feed_stream, pair.prc.feed, token, chunks, rate
    )
    deadline = time.perf_counter() + 300
    # Not asked how far it is while the records flow: each answer costs the receiving node
    # milliseconds of its loop, which the records arriving meanwhile would count as age.
    await asyncio.wait([writing], timeout=300)
    while True:
        now = await _metric_lines(pair.us_api, received)
        if now.get(received, 0.0) - before.get(received, 0.0) >= records:
            break
        if writing.done():
            writing.result()  # the writer's error, if it had one
        if time.perf_counter() > deadline:
            raise RuntimeError(f"only part of {records} streamed records arrived")
        await asyncio.sleep(POLL_S)
    # Received means verified; committed follows within one group commit: wait for it,
    # then take the end from the node's own record of its last commit.
    await pair.us_api.post("/v1/log/checkpoint")
    began = await writing
    writer.shutdown()
    after = await _metric_lines(pair.us_api, "clearline_telemetry_")
    took = after[LAST_COMMIT] - began
    ages = age_percentiles(before, after)
    verified = age_percentiles(before, after, VERIFIED_AGE, "verified_")
    return {"records_per_s": records / took, **ages, **verified}


def pin(pid: int, cores: set[int] | None) -> None:
    """Keep every thread of process `pid` on `cores` (None: any core)."""
    allowed = cores if cores is not None else set(range(os.cpu_count() or 1))
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(task.name), allowed)


def can_pin() -> bool:
    """Whether each node can have a core of its own here (Linux, two cores or more)."""
    return hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2


LAST_COMMIT = "clearline_telemetry_last_commit_timestamp_seconds"
VERIFIED_AGE = "clearline_telemetry_verified_age_seconds"


STREAM_PACE = 100_000
"""Records a second offered to the feed in the run that measures their ages (or 0.8 times
what the feed took flat out, if that is less)."""


LIGHT_PACE = 10_000
"""Records a second offered in the run that measures the ages under light load (or 0.2
times what the feed took flat out, if that is less): three seconds of it. Its ages are
the path's floor, both commits and the send, with little queueing."""


def bench_link(
    rounds: int = 2000, clarifications: int = 500, records: int = 200_000, say: Say = print
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="clearline-bench-") as tmp:
        folder = Path(tmp)
        keys = folder / "grpc-keys"
        for side in ("US", "PRC"):
            init_keys(keys, side)
        say("a. bare TCP echo ...")
        tcp = tcp_echo(rounds)
        say("b. gRPC unary echo, mutual TLS ...")
        grpc_figures = grpc_unary(rounds, keys)

        async def nodes() -> dict[str, Any]:
            out: dict[str, Any] = {}
            async with node_pair(folder / "loopback", 0, prc_feed=True) as pair:
                say("c. clarification through two nodes ...")
                outer, inner = await _clarifications(pair, clarifications)
                out["clarification"] = percentiles(outer)
                out["clarification_protocol"] = percentiles(inner)
                outer, _ = await _clarifications(pair, clarifications, durable=True)
                out["clarification_durable"] = percentiles(outer)
                say("d. telemetry throughput ...")
                out["records_per_s"] = await _telemetry(pair.prc_api, pair.us_api, records, 250)
                # Two sides run on two hosts. On one machine, each node (all its threads)
                # is kept to a core of its own for the stream, as a host of its own would
                # give it, rather than both floating over the same cores and evicting each
                # other's caches at every switch; the paced run is repeated unpinned.
                pinned = can_pin()
                if pinned:
                    pin(pair.prc.process.pid, {0})
                    pin(pair.us.process.pid, {1})
                say("f. telemetry streamed into the feed, as fast as it is taken ...")
                out["stream"] = await _stream_telemetry(pair, records, 0)
                paced = min(STREAM_PACE, 0.8 * out["stream"]["records_per_s"])
                say(f"   ... and at {paced:,.0f} records/s, for the records' ages ...")
                out["stream_paced"] = await _stream_telemetry(pair, records // 2, paced)
                out["stream_paced"]["offered_per_s"] = paced
                light = min(LIGHT_PACE, 0.2 * out["stream"]["records_per_s"])
                say(f"   ... and at {light:,.0f} records/s, light load, for the ages' floor ...")
                out["stream_light"] = await _stream_telemetry(pair, int(3 * light), light)
                out["stream_light"]["offered_per_s"] = light
                if pinned:
                    pin(pair.prc.process.pid, None)
                    pin(pair.us.process.pid, None)
                    say(f"   ... and at {paced:,.0f} records/s again, the nodes not pinned ...")
                    unpinned = await _stream_telemetry(pair, records // 2, paced)
                    out["stream_paced_unpinned"] = {**unpinned, "offered_per_s": paced}
                out["nodes_pinned"] = pinned
            async with node_pair(folder / "wan", 55.0) as pair:
                say("e. clarification through a 55 ms each-way path ...")
                outer, inner = await _clarifications(pair, 100)
                out["wan_outer"] = percentiles(outer)
                out["wan_inner"] = percentiles(inner)
            return out

        (folder / "loopback").mkdir()
        (folder / "wan").mkdir()
        measured = uvloop.run(nodes())
        say("   raw SQLite baseline ...")
        row_bytes = 110
        raw = sqlite_raw(200_000, row_bytes, 250, folder)
        say("   the disk's commit latency ...")
        commits = commit_latency(folder)
    results: dict[str, Any] = {
        "tcp_echo": tcp,
        "grpc_unary": grpc_figures,
        "clarification": measured["clarification"],
        "clarification_protocol": measured["clarification_protocol"],
        "clarification_durable": measured["clarification_durable"],
        "telemetry": {
            "records_per_s": round(measured["records_per_s"], 1),
            "sqlite_raw_rows_per_s": round(raw, 1),
            "stream": {k: round(v, 1) for k, v in measured["stream"].items()},
            "stream_paced": {k: round(v, 1) for k, v in measured["stream_paced"].items()},
            "stream_light": {k: round(v, 1) for k, v in measured["stream_light"].items()},
            "nodes_pinned": measured["nodes_pinned"],
            **(
                {
                    "stream_paced_unpinned": {
                        k: round(v, 1) for k, v in measured["stream_paced_unpinned"].items()
                    }
                }
                if "stream_paced_unpinned" in measured
                else {}
            ),
            "stream_vs_raw_sqlite": round(measured["stream"]["records_per_s"] / raw, 3),
            "sqlite_commit": {k: round(v, 2) for k, v in commits.items()},
        },
        "wan": {
            "added_one_way_ms": 55.0,
            "clarification_p50_ms": round(measured["wan_outer"]["p50_us"] / 1000, 3),
            "clarification_protocol_p50_ms": round(measured["wan_inner"]["p50_us"] / 1000, 3),
        },
    }
    results["ratios"] = {
        "clarification_p50_vs_tcp_p50": round(
            results["clarification"]["p50_us"] / tcp["p50_us"], 2
        ),
        "clarification_p50_vs_grpc_p50": round(
            results["clarification"]["p50_us"] / grpc_figures["p50_us"], 2
        ),
        "clarification_p99_vs_tcp_p99": round(
            results["clarification"]["p99_us"] / tcp["p99_us"], 2
        ),
        "telemetry_vs_raw_sqlite": round(measured["records_per_s"] / raw, 3),
    }
    return results
