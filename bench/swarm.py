"""Swarm benchmark: N tracks cleared through two live nodes over a 55 ms each-way path.

In one run, for each N: (a) the baseline, one `POST /v1/observations` per track, all
concurrent, from a client on this machine; (b) one `POST /v1/observations/batch` with all
N, results streamed as each ends. Reports the time until every track is cleared, the
ratio (a)/(b), and the number of Query messages each put on the wire.

Run by hand:  .venv/bin/python bench/swarm.py [--sizes 1,100,200,500,1000] [--json]
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
    before = await queries_sent(api)
    started = time.perf_counter()
    first: float | None = None
    answered = 0
    async with api.stream(
        "POST", "/v1/observations/batch", json={"observations": tracks}
    ) as response:
        async for line in response.aiter_lines():
            if not line:
                continue
            item = json.loads(line)
            if item.get("done"):
                break
            first = first if first is not None else time.perf_counter() - started
            answered += item["outcome"] == "answered"
    return {
        "all_cleared_s": round(time.perf_counter() - started, 3),
        "first_result_s": round(first or 0.0, 3),
        "answered": answered,
        "queries": int(await queries_sent(api) - before),
    }


async def run(sizes: list[int], say: Any) -> dict[str, Any]:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        async with node_pair(Path(folder), 55.0) as pair:
            await pair.prc_api.post("/v1/telemetry", json={"assets": [SWARM]})
            for n in sizes:
                say(f"N = {n}: one call per track ...")
                baseline = await one_call_per_track(pair.us_api, swarm(n, f"A{n}"))
                say(f"N = {n}: one batch call ...")
                batch = await one_batch(pair.us_api, swarm(n, f"B{n}"))
                ratio = baseline["all_cleared_s"] / max(batch["all_cleared_s"], 1e-9)
                rows.append(
                    {"n": n, "per_track": baseline, "batch": batch, "ratio": round(ratio, 1)}
                )
                say(
                    f"  per track {baseline['all_cleared_s']} s ({baseline['queries']} queries), "
                    f"batch {batch['all_cleared_s']} s ({batch['queries']} queries): x{ratio:.1f}"
                )
    return {"one_way_ms": 55.0, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,100,200,500,1000")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = asyncio.run(run(sizes, lambda line: print(line, file=sys.stderr)))
    print(json.dumps(results, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
