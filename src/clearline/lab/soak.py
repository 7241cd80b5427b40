"""`clearline bench soak`: two nodes under sustained load, memory and latency over time.

Load, all through the local APIs: clarifications (20 a second), telemetry (5
batches of 100 records a second) and gate decisions (10 a second), for a
bounded time. Every 5 seconds both nodes' resident memory and log sizes are
sampled. Memory is flat if the mean of the last third of the samples is within
a small margin of the mean of the second third (the first third is warm-up).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvloop

from clearline.lab.benchmark import percentiles
from clearline.lab.scene import SIGHTING, SWARM, node_pair

FLAT_MARGIN_KIB = 16 * 1024
"""Growth allowed between the second and last thirds (allocator noise, caches filling)."""


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])


async def _every(interval: float, until: float, action: Callable[[], Any]) -> int:
    count = 0
    while time.monotonic() < until:
        began = time.monotonic()
        await action()
        count += 1
        await asyncio.sleep(max(0.0, interval - (time.monotonic() - began)))
    return count


async def soak(seconds: float, folder: Path, say: Callable[[str], None]) -> dict[str, Any]:
    async with node_pair(folder, 0) as pair:
        us_api, prc_api = pair.us_api, pair.prc_api
        await prc_api.post("/v1/telemetry", json={"assets": [SWARM]})
        until = time.monotonic() + seconds
        latencies: list[float] = []
        outcomes = {"answered": 0, "expired": 0, "not_sent": 0}
        samples: list[dict[str, Any]] = []
        started = time.monotonic()

        async def query() -> None:
            began = time.perf_counter()
            result = (await us_api.post("/v1/observations", json=SIGHTING)).json()
            latencies.append((time.perf_counter() - began) * 1e6)
            outcomes[result["outcome"]] += 1

        batch = 0

        async def telemetry() -> None:
            nonlocal batch
            batch += 1
            assets = [
                {**SWARM, "asset_id": f"PRC-UAS-{(batch * 100 + i) % 5000:05d}"} for i in range(100)
            ]
            (await prc_api.post("/v1/telemetry", json={"assets": assets})).raise_for_status()

        decisions = 0

        async def decide() -> None:
            nonlocal decisions
            decisions += 1
            body = {"action_id": f"S{decisions}", "rung": "monitor", "domain": "air"}
            (await us_api.post("/v1/actions", json=body)).raise_for_status()

        async def sample() -> None:
            us_log = (await us_api.get("/v1/log")).json()["size"]
            prc_log = (await prc_api.get("/v1/log")).json()["size"]
            point = {
                "t_s": round(time.monotonic() - started, 1),
                "us_rss_kib": rss_kib(pair.us.process.pid),
                "prc_rss_kib": rss_kib(pair.prc.process.pid),
                "us_log": us_log,
                "prc_log": prc_log,
            }
            samples.append(point)
            say(f"  {point}")

        await asyncio.gather(
            _every(0.05, until, query),
            _every(0.2, until, telemetry),
            _every(0.1, until, decide),
            _every(5.0, until, sample),
        )
    third = max(1, len(samples) // 3)
    result: dict[str, Any] = {
        "seconds": seconds,
        "clarifications": outcomes,
        "clarification_latency": percentiles(latencies) if latencies else None,
        "telemetry_records": batch * 100,
        "decisions": decisions,
        "samples": samples,
        "exit_codes": pair.exit_codes,
    }
    for side in ("us", "prc"):
        key = f"{side}_rss_kib"
        middle = samples[third : 2 * third] or samples
        last = samples[2 * third :] or samples
        growth = _mean(last, key) - _mean(middle, key)
        result[f"{side}_rss_growth_kib"] = round(growth)
        result[f"{side}_memory_flat"] = growth < FLAT_MARGIN_KIB
        result[f"{side}_log_growth_per_s"] = round(
            (samples[-1][f"{side}_log"] - samples[0][f"{side}_log"])
            / max(1e-9, samples[-1]["t_s"] - samples[0]["t_s"]),
            1,
        )
    return result


def _mean(points: list[dict[str, Any]], key: str) -> float:
    return float(sum(p[key] for p in points)) / len(points)


def run_soak(seconds: float, say: Callable[[str], None] = print) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="clearline-soak-") as tmp:
        return uvloop.run(soak(seconds, Path(tmp), say))
