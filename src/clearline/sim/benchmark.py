"""`clearline bench sim`: simulator throughput against SimPy, parallel efficiency, Dask overhead.

The SimPy baseline runs the *same* episode model, protocol and gate code with
the same signer; only the event engine differs. It is written the way SimPy is
meant to be used: every scheduled piece of work is a process, a generator that
yields a timeout and then acts. Both engines must give the same outcomes for
the same seeds (the benchmark checks and reports it), so the comparison is of
engines, not of models.
"""

from __future__ import annotations

import importlib
import platform
import tempfile
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from clearline.protocol.messages import Micros
from clearline.sim.episode import Episode, Prepared
from clearline.sim.kernel import Callback, Kernel
from clearline.sim.montecarlo import run
from clearline.sim.outcomes import ARMS
from clearline.sim.scenario import load_scenario
from clearline.sim.signers import SignerName

CANONICAL = "recon-swarm"
SWARM = "swarm"
BUDGET_S = 300.0
"""The simulator's budget: what 100,000 episodes of the canonical scenario in five arms may
take on this machine's two cores (docs/performance.md)."""


class SimPyClock:
    """The Clock interface on a simpy.Environment, one process per scheduled callback."""

    def __init__(self) -> None:
        try:
            import simpy
        except ImportError:
            raise RuntimeError(
                "the SimPy comparison needs simpy: pip install 'clearline[bench]'"
            ) from None

        self._simpy = simpy
        self.env = simpy.Environment()

    @property
    def now(self) -> Micros:
        return int(self.env.now)

    def _process(self, delay: Micros, callback: Callback) -> Generator[Any, Any, None]:
        yield self.env.timeout(delay)
        callback()

    def at(self, when: Micros, callback: Callback, priority: int = 0) -> None:
        self.env.process(self._process(when - self.now, callback))

    def stop(self) -> None:
        event = self.env.event()
        event.callbacks.append(self._simpy.core.StopSimulation.callback)
        event.succeed()

    def run(self, until: Micros) -> None:
        self.env.run(until=until + 1)


def _rate(
    prepared: Prepared,
    first: int,
    episodes: int,
    seed: int,
    clock: Callable[[], Any] | None,
) -> tuple[float, list[tuple[Any, ...]]]:
    """CPU seconds for episodes first..first+episodes-1 in every arm, and their rows."""
    rows = []
    began = time.process_time()
    for episode in range(first, first + episodes):
        for arm in ARMS:
            kernel = clock() if clock is not None else None
            rows.append(Episode(prepared, arm, episode, seed, clock=kernel).run().row())
    return time.process_time() - began, rows


def _engines(
    prepared: Prepared, episodes: int, seed: int, blocks: int = 10
) -> tuple[float, float, list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Episode-arms per CPU second on our kernel and on SimPy, and the rows of each: the same
    episodes in alternating blocks (each engine first in every other block), so that a
    machine shared with other work slows both alike."""
    spent = {"ours": 0.0, "simpy": 0.0}
    rows: dict[str, list[tuple[Any, ...]]] = {"ours": [], "simpy": []}
    size = max(1, episodes // blocks)
    for block, first in enumerate(range(0, episodes, size)):
        n = min(size, episodes - first)
        order = ("ours", "simpy") if block % 2 == 0 else ("simpy", "ours")
        for engine in order:
            cpu, block_rows = _rate(
                prepared, first, n, seed, SimPyClock if engine == "simpy" else None
            )
            spent[engine] += cpu
            rows[engine] += block_rows
    total = episodes * len(ARMS)
    return total / spent["ours"], total / spent["simpy"], rows["ours"], rows["simpy"]


def _engine_us_per_event(clock: Callable[[], Any], events: int = 20_000) -> float:
    """An engine's own cost per event: chains of no-op callbacks, each scheduling the next a
    varying delay ahead, eight pending at a time (as in an episode, a few to a few tens)."""
    engine = clock()
    left = [events]

    def tick() -> None:
        left[0] -= 1
        if left[0] > 0:
            engine.at(engine.now + 1_000 + left[0] * 7_919 % 5_000, tick)

    for start in range(8):
        engine.at(start * 100, tick)
    began = time.process_time()
    engine.run(1 << 62)
    return (time.process_time() - began) * 1e6 / (events + 7)


def _events_per_episode(prepared: Prepared, episodes: int, seed: int) -> float:
    """Events an episode schedules on our kernel, over all arms."""
    scheduled = 0
    for episode in range(episodes):
        for arm in ARMS:
            kernel = Kernel()
            Episode(prepared, arm, episode, seed, clock=kernel).run()
            scheduled += kernel.scheduled
    return scheduled / (episodes * len(ARMS))


def _engine_share(prepared: Prepared, ours: float, theirs: float) -> dict[str, Any]:
    """How much of an episode is the engine. Ours: events per episode times its cost per
    event, measured apart from any model. What is left of an episode on our kernel is the
    model, protocol and gate code, which SimPy runs too, so the rest of an episode on SimPy
    is SimPy's engine (its processes, timeouts and clock reads). The ratio to SimPy is
    (rest + SimPy's engine) / (rest + ours): `rest_us_for_3x` is what the rest would have to
    cost for 3x, `ratio_if_rest_were_free` the most any rest allows."""
    events = _events_per_episode(prepared, 100, 3)
    per_event_ours = min(_engine_us_per_event(Kernel) for _ in range(3))
    per_event_simpy = min(_engine_us_per_event(SimPyClock) for _ in range(3))
    episode_ours, episode_simpy = 1e6 / ours, 1e6 / theirs
    engine_ours = events * per_event_ours
    rest = episode_ours - engine_ours
    engine_simpy = episode_simpy - rest
    return {
        "events_per_episode_arm": round(events, 1),
        "engine_us_per_event": round(per_event_ours, 2),
        "simpy_engine_us_per_event_alone": round(per_event_simpy, 2),
        "engine_share": round(engine_ours / episode_ours, 3),
        "simpy_engine_share": round(engine_simpy / episode_simpy, 3),
        "rest_us_per_episode_arm": round(rest, 1),
        "rest_us_for_3x": round((engine_simpy - 3 * engine_ours) / 2, 1),
        "ratio_if_rest_were_free": round(engine_simpy / engine_ours, 1),
    }


def bench_sim(
    episodes: int = 1000,
    parallel_episodes: int = 20_000,
    workers: int = 2,
    signer: SignerName = "keyed-hash",
    dask: bool = True,
    say: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Measure; every rate is episode-arms per second (one episode of one arm): per CPU
    second on one core for the engines, per wall-clock second for the executors."""
    loaded = load_scenario(CANONICAL)
    prepared = Prepared.build(loaded, signer)
    _rate(prepared, 0, 20, 99, None)  # warm caches and imports
    _rate(prepared, 0, 5, 99, SimPyClock)
    say(f"own kernel and SimPy in turns, one core, {episodes} episodes x {len(ARMS)} arms ...")
    ours, theirs, our_rows, their_rows = _engines(prepared, episodes, 1)
    same = sum(a == b or repr(a) == repr(b) for a, b in zip(our_rows, their_rows, strict=True))
    results: dict[str, Any] = {
        "episodes_per_s": round(ours, 1),
        "simpy_episodes_per_s": round(theirs, 1),
        "ratio_vs_simpy": round(ours / theirs, 2),
        "same_outcomes_as_simpy": round(same / len(our_rows), 4),
    }
    say("engine cost per event, and events per episode ...")
    results.update(_engine_share(prepared, ours, theirs))
    with tempfile.TemporaryDirectory() as tmp:
        timings = {}
        for name, executor, n in (("serial", "serial", 1), ("process", "process", workers)):
            say(f"{name} executor, {parallel_episodes} episodes x {len(ARMS)} arms ...")
            began = time.perf_counter()
            run(
                loaded,
                episodes=parallel_episodes,
                seed=2,
                executor=executor,
                workers=n,
                out=Path(tmp) / name,
                signer=signer,
            )
            timings[name] = time.perf_counter() - began
        speedup = timings["serial"] / timings["process"]
        results["parallel_efficiency"] = round(speedup / workers, 3)
        results["process_episodes_per_s"] = round(
            parallel_episodes * len(ARMS) / timings["process"], 1
        )
        if dask:
            # A study runs on a cluster that is up (`dask://HOST:PORT`); `dask-local` starts
            # one for the run. Both are reported: the run on a cluster already up, and the
            # same with the cluster's start added.
            say(f"Dask cluster of {workers} workers, starting ...")
            distributed: Any = importlib.import_module("distributed")
            began = time.perf_counter()
            cluster = distributed.LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
            )
            start_s = time.perf_counter() - began
            try:
                say(f"dask executor, {parallel_episodes} episodes x {len(ARMS)} arms ...")
                began = time.perf_counter()
                run(
                    loaded,
                    episodes=parallel_episodes,
                    seed=2,
                    executor="dask://" + cluster.scheduler_address.split("://", 1)[1],
                    workers=workers,
                    out=Path(tmp) / "dask",
                    signer=signer,
                )
                dask_time = time.perf_counter() - began
            finally:
                cluster.close()
            serial = timings["serial"]
            results["dask_episodes_per_s"] = round(parallel_episodes * len(ARMS) / dask_time, 1)
            results["dask_parallel_efficiency"] = round(serial / dask_time / workers, 3)
            results["dask_cluster_start_s"] = round(start_s, 2)
            results["dask_local_parallel_efficiency"] = round(
                serial / (dask_time + start_s) / workers, 3
            )
            results["dask_overhead_us_per_episode"] = round(
                (dask_time - timings["process"]) / (parallel_episodes * len(ARMS)) * 1e6, 1
            )
    results["budget_100k_x5_estimate_s"] = round(
        100_000 * len(ARMS) / results["process_episodes_per_s"], 1
    )
    results["signer"] = signer
    results["machine"] = f"{platform.processor() or platform.machine()}, {workers} workers"
    results["python"] = platform.python_version()
    return results


def _cpu_rate(prepared: Prepared, first: int, episodes: int, seed: int) -> dict[str, float]:
    """CPU milliseconds per episode in each arm, over episodes first..first+episodes-1."""
    spent: dict[str, float] = {}
    for arm in ARMS:
        began = time.process_time()
        for episode in range(first, first + episodes):
            Episode(prepared, arm, episode, seed).run()
        spent[arm.value] = (time.process_time() - began) * 1e3 / episodes
    return spent


def bench_swarm(
    episodes: int = 200,
    swarm_episodes: int = 20,
    blocks: int = 5,
    parallel_episodes: int = 400,
    workers: int = 2,
    signer: SignerName = "keyed-hash",
    say: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """The swarm scenario's cost per episode against the canonical scenario's, in the same
    run: blocks of each in turn, one core, all five arms, CPU time (the machine may be
    shared); then the swarm on a process pool, against the budget."""
    canonical = Prepared.build(load_scenario(CANONICAL), signer)
    swarm = Prepared.build(load_scenario(SWARM), signer)
    _cpu_rate(canonical, 0, 5, 99)  # warm caches and imports
    _cpu_rate(swarm, 0, 1, 99)
    per_block: dict[str, list[dict[str, float]]] = {CANONICAL: [], SWARM: []}
    for block in range(blocks):
        say(f"block {block + 1}/{blocks}: {CANONICAL} x {episodes}, {SWARM} x {swarm_episodes}")
        per_block[CANONICAL].append(_cpu_rate(canonical, block * episodes, episodes, 1))
        per_block[SWARM].append(_cpu_rate(swarm, block * swarm_episodes, swarm_episodes, 1))

    def median(values: list[float]) -> float:
        ordered = sorted(values)
        return ordered[len(ordered) // 2]

    results: dict[str, Any] = {}
    for name, rows in per_block.items():
        arms = {arm.value: round(median([row[arm.value] for row in rows]), 3) for arm in ARMS}
        mean_ms = median([sum(row.values()) / len(row) for row in rows])
        results[f"{name}_ms_per_episode_arm"] = arms
        results[f"{name}_episodes_per_s"] = round(1e3 / mean_ms, 1)
    results["swarm_vs_canonical"] = round(
        results[f"{SWARM}_episodes_per_s"] / results[f"{CANONICAL}_episodes_per_s"], 4
    )
    say(f"{SWARM} on a process pool, {parallel_episodes} episodes x {len(ARMS)} arms ...")
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        run(
            swarm.loaded,
            episodes=parallel_episodes,
            seed=2,
            executor="process",
            workers=workers,
            out=Path(tmp),
            signer=signer,
            batch=max(1, parallel_episodes // (4 * workers)),
        )
        elapsed = time.perf_counter() - began
    pool_rate = parallel_episodes * len(ARMS) / elapsed
    results["swarm_process_episodes_per_s"] = round(pool_rate, 1)
    results["swarm_episodes_in_budget"] = int(BUDGET_S * pool_rate / len(ARMS))
    results["signer"] = signer
    results["machine"] = f"{platform.processor() or platform.machine()}, {workers} workers"
    results["python"] = platform.python_version()
    return results
