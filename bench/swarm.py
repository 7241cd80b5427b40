"""Swarm benchmark: N tracks cleared through two live nodes over a 55 ms each-way path.

In one run, for each N: (a) the baseline, one `POST /v1/observations` per track, all
concurrent, from a client on this machine; (b) one `POST /v1/observations/batch` with all
N, results streamed as each ends. Reports the time until every track is cleared, the
ratio (a)/(b), and the number of Query messages each put on the wire.

Run by hand:  .venv/bin/python bench/swarm.py [--sizes 1,100,1000,5000] [--json]
Above 1,024 tracks the batch is split into concurrent calls of 1,024 (the API's limit).
Figures go to docs/performance.md with the machine and the date.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from clearline.lab.scene import SIGHTING, SWARM, node_pair
from clearline.node.api import MAX_BATCH_OBSERVATIONS

SETTLE_S = 2.0


def swarm(n: int, tag: str) -> list[dict[str, Any]]:
    far = [
        {
            "track_id": f"{tag}-{i:05d}",
            "position": {"lat": 10.0 + i / 10_000, "lon": 100.0, "alt_m": 1000},
            "looks_like": "recon_swarm",
        }
        for i in range(1, n)
    ]
    return [{**SIGHTING, "track_id": f"{tag}-00000"}, *far]


async def queries_sent(api: httpx.AsyncClient) -> float:
    text = (await api.get("/metrics")).text
    found = re.search(r'clearline_messages_total\{direction="sent",kind="query"\} (\S+)', text)
    return float(found.group(1)) if found else 0.0


async def one_call_per_track(
    api: httpx.AsyncClient, tracks: list[dict[str, Any]]
) -> dict[str, Any]:
    before = await queries_sent(api)
    started = time.perf_counter()
    times: list[float] = []

    async def one(track: dict[str, Any]) -> str:
        response = await api.post("/v1/observations", json=track)
        times.append(time.perf_counter() - started)
        return str(response.json()["outcome"])

    outcomes = await asyncio.gather(*(one(t) for t in tracks))
    return {
        "all_cleared_s": round(max(times), 3),
        "answered": outcomes.count("answered"),
        "queries": int(await queries_sent(api) - before),
    }


async def one_batch(api: httpx.AsyncClient, tracks: list[dict[str, Any]]) -> dict[str, Any]:
    """All of `tracks` in as few batch calls as the API takes (1,024 tracks each), made
    together; the clock stops when the last result of the last call has arrived."""
    before = await queries_sent(api)
    started = time.perf_counter()
    firsts: list[float] = []
    answered = 0

    async def call(chunk: list[dict[str, Any]]) -> None:
        nonlocal answered
        async with api.stream(
            "POST", "/v1/observations/batch", json={"observations": chunk}
        ) as response:
            async for line in response.aiter_lines():
                if not line:
                    continue
                item = json.loads(line)
                if item.get("done"):
                    break
                if not firsts:
                    firsts.append(time.perf_counter() - started)
                answered += item["outcome"] == "answered"

    chunks = [
        tracks[i : i + MAX_BATCH_OBSERVATIONS]
        for i in range(0, len(tracks), MAX_BATCH_OBSERVATIONS)
    ]
    await asyncio.gather(*(call(chunk) for chunk in chunks))
    return {
        "all_cleared_s": round(time.perf_counter() - started, 3),
        "first_result_s": round(firsts[0] if firsts else 0.0, 3),
        "answered": answered,
        "calls": len(chunks),
        "queries": int(await queries_sent(api) - before),
    }


async def single_track(api: httpx.AsyncClient) -> float:
    """One track's round trip through the API: the baseline each size is compared with."""
    started = time.perf_counter()
    response = await api.post("/v1/observations", json={**SIGHTING, "track_id": "ONE"})
    assert response.json()["outcome"] == "answered"
    return round(time.perf_counter() - started, 3)


async def run(sizes: list[int], say: Any, per_track_up_to: int = 1000) -> dict[str, Any]:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        async with node_pair(Path(folder), 55.0) as pair:
            await pair.prc_api.post("/v1/telemetry", json={"assets": [SWARM]})
            single = await single_track(pair.us_api)
            say(f"one track alone: {single} s")
            for n in sizes:
                row: dict[str, Any] = {"n": n}
                # The batch first, and a pause after each phase: a thousand single calls
                # leave the node logging and forgetting for a while after they are answered.
                say(f"N = {n}: batch calls ...")
                batch = await one_batch(pair.us_api, swarm(n, f"B{n}"))
                row["batch"] = batch
                await asyncio.sleep(SETTLE_S)
                if n <= per_track_up_to:
                    say(f"N = {n}: one call per track ...")
                    row["per_track"] = await one_call_per_track(pair.us_api, swarm(n, f"A{n}"))
                    await asyncio.sleep(SETTLE_S)
                row["batch_vs_single_track"] = round(batch["all_cleared_s"] / single, 2)
                if "per_track" in row:
                    row["ratio"] = round(
                        row["per_track"]["all_cleared_s"] / batch["all_cleared_s"], 1
                    )
                rows.append(row)
                say(
                    f"  batch {batch['all_cleared_s']} s in {batch['calls']} call(s), "
                    f"{batch['queries']} queries ({row['batch_vs_single_track']}x one track)"
                    + (
                        f"; per track {row['per_track']['all_cleared_s']} s"
                        if "per_track" in row
                        else ""
                    )
                )
    return {"one_way_ms": 55.0, "single_track_s": single, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,100,1000,5000")
    parser.add_argument(
        "--per-track-up-to",
        type=int,
        default=1000,
        help="run the one-call-per-track comparison only up to this N (it grows linearly)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = asyncio.run(
        run(sizes, lambda line: print(line, file=sys.stderr), args.per_track_up_to)
    )
    print(json.dumps(results, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
