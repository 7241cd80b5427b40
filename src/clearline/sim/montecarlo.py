"""Monte Carlo over arms: batches of episodes on an Executor, streamed to Parquet.

Episode `i` of a run is the same world in every arm (common random numbers), so
the arms are compared pair by pair. Work goes out in batches of episode indices
(every arm of an episode in the same batch, and many episodes per task, because
a Dask task costs about 1.7 ms). Results are taken back in batch order whatever
order they finish in, so the output file, the summary and the stopping point
are the same for a given seed on any executor with any number of workers.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clearline.sim.episode import Prepared, run_episode
from clearline.sim.executors import make_executor
from clearline.sim.outcomes import ARMS, OUTCOME_COLUMNS, Arm, Outcome
from clearline.sim.scenario import LoadedScenario
from clearline.sim.signers import SignerName
from clearline.sim.stats import ArmStats

if TYPE_CHECKING:
    import pyarrow as pa


@functools.cache
def parquet_schema() -> pa.Schema:
    """The Parquet schema, derived from the Outcome record so the two cannot drift.
    (pyarrow comes with the `sim` extra: imported here, not when this module is.)"""
    import pyarrow as pa

    types = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "str": pa.string()}
    return pa.schema([(f.name, types[str(f.type)]) for f in dataclasses.fields(Outcome)])


DEFAULT_BATCH = 200
MIN_EPISODES_FOR_CI = 400

_PREPARED: dict[str, Prepared] = {}
"""Per-process cache: a worker builds each scenario's keys and configs once."""


def _prepared(loaded: LoadedScenario, signer: SignerName) -> Prepared:
    key = hashlib.sha256(
        loaded.scenario.model_dump_json().encode() + loaded.policy.hash + signer.encode()
    ).hexdigest()
    prepared = _PREPARED.get(key)
    if prepared is None:
        prepared = Prepared.build(loaded, signer)
        _PREPARED.clear()
        _PREPARED[key] = prepared
    return prepared


def run_batch(
    loaded: LoadedScenario,
    signer: SignerName,
    arms: Sequence[str],
    seed: int,
    start: int,
    count: int,
) -> dict[str, list[Any]]:
    """Episodes start..start+count-1 in every arm, as columns (cheap to pickle)."""
    prepared = _prepared(loaded, signer)
    columns: dict[str, list[Any]] = {name: [] for name in OUTCOME_COLUMNS}
    arm_values = [Arm(a) for a in arms]
    for episode in range(start, start + count):
        for arm in arm_values:
            row = run_episode(prepared, arm, episode, seed).row()
            for name, value in zip(OUTCOME_COLUMNS, row, strict=True):
                columns[name].append(value)
    return columns


ProgressFn = Callable[[int], None]


@dataclass
class SimResult:
    """What a run produced: its folder, the summary, and the episodes as a data frame."""

    out: Path
    summary: dict[str, Any]

    @property
    def episodes_path(self) -> Path:
        return self.out / "episodes.parquet"

    def episodes(self) -> Any:
        """One row per (episode, arm), as a pandas DataFrame."""
        import pandas as pd

        return pd.read_parquet(self.episodes_path)

    def summary_frame(self) -> Any:
        """One row per (arm, outcome): estimate, low, high."""
        import pandas as pd

        rows = [
            {"arm": arm, "outcome": name, **values}
            for arm, data in self.summary["arms"].items()
            for name, values in data["outcomes"].items()
        ]
        return pd.DataFrame(rows)


@dataclass
class RunPlan:
    loaded: LoadedScenario
    arms: tuple[Arm, ...] = ARMS
    seed: int = 0
    episodes: int = 1000
    ci_halfwidth: float | None = None
    batch: int = DEFAULT_BATCH
    signer: SignerName = "keyed-hash"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise ValueError(f"episodes must be at least 1, got {self.episodes}")
        if self.ci_halfwidth is not None and not 0 < self.ci_halfwidth < 0.5:
            raise ValueError(f"ci_halfwidth must be in (0, 0.5), got {self.ci_halfwidth}")
        if not self.arms:
            raise ValueError("at least one arm is needed")
        if self.batch < 1:
            raise ValueError(f"batch must be at least 1, got {self.batch}")


def _batches(plan: RunPlan) -> Iterator[tuple[int, int]]:
    start = 0
    while start < plan.episodes:
        count = min(plan.batch, plan.episodes - start)
        yield start, count
        start += count


def _done(stats: dict[Arm, ArmStats], plan: RunPlan) -> bool:
    if plan.ci_halfwidth is None:
        return False
    if any(s.episodes < MIN_EPISODES_FOR_CI for s in stats.values()):
        return False
    return all(
        s.proportion("kinetic_before_any_human").halfwidth <= plan.ci_halfwidth
        for s in stats.values()
    )


def execute(
    plan: RunPlan,
    out: Path,
    executor: Executor,
    workers: int,
    progress: ProgressFn | None = None,
) -> SimResult:
    """Run `plan` on `executor`, writing episodes.parquet and summary.json under `out`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = parquet_schema()
    out.mkdir(parents=True, exist_ok=True)
    arms = [a.value for a in plan.arms]
    stats = {arm: ArmStats(plan.seed + 17 * i) for i, arm in enumerate(plan.arms)}
    baseline = Arm.NONE if Arm.NONE in plan.arms else None
    began = time.perf_counter()
    pending: dict[int, Future[dict[str, list[Any]]]] = {}
    ready: dict[int, dict[str, list[Any]]] = {}
    batches = list(_batches(plan))
    window = max(2, 3 * workers)
    submitted = 0
    next_to_take = 0
    total = 0
    stopped = False
    tmp = out / "episodes.parquet.partial"
    with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        while next_to_take < len(batches) and not stopped:
            while submitted < len(batches) and len(pending) + len(ready) < window:
                start, count = batches[submitted]
                pending[submitted] = executor.submit(
                    run_batch, plan.loaded, plan.signer, arms, plan.seed, start, count
                )
                submitted += 1
            future = pending.pop(next_to_take, None)
            if future is not None:
                ready[next_to_take] = future.result()
            columns = ready.pop(next_to_take)
            writer.write_table(pa.table(columns, schema=schema))
            _accumulate(columns, plan.arms, stats, baseline)
            count = len(columns["episode"])
            total += count
            if progress is not None:
                progress(count)
            next_to_take += 1
            stopped = _done(stats, plan)
        for future in pending.values():
            future.cancel()
    tmp.replace(out / "episodes.parquet")
    elapsed = time.perf_counter() - began
    summary = _summary(plan, stats, total, elapsed, workers)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n")
    return SimResult(out, summary)


def _accumulate(
    columns: dict[str, list[Any]],
    arms: tuple[Arm, ...],
    stats: dict[Arm, ArmStats],
    baseline: Arm | None,
) -> None:
    by_arm: dict[str, list[int]] = {a.value: [] for a in arms}
    for i, arm in enumerate(columns["arm"]):
        by_arm[arm].append(i)
    for arm in arms:
        stats[arm].add(columns, by_arm[arm.value])
    if baseline is None:
        return
    kbh = columns["kinetic_before_any_human"]
    base = by_arm[baseline.value]
    for arm in arms:
        rows = by_arm[arm.value]
        pairs = [(bool(kbh[r]), bool(kbh[b])) for r, b in zip(rows, base, strict=True)]
        stats[arm].add_paired(pairs)


def _summary(
    plan: RunPlan, stats: dict[Arm, ArmStats], total: int, elapsed: float, workers: int
) -> dict[str, Any]:
    scenario = plan.loaded.scenario
    a, b = scenario.side_names
    arms: dict[str, Any] = {}
    for i, (arm, s) in enumerate(stats.items()):
        entry: dict[str, Any] = {"episodes": s.episodes, "outcomes": s.summary(plan.seed + 101 * i)}
        if sum(s.paired) and arm is not Arm.NONE:
            entry["paired_vs_none"] = {"kinetic_before_any_human": s.paired_difference().as_dict()}
        arms[arm.value] = entry
    return {
        "scenario": scenario.name,
        "seed": plan.seed,
        "arms": arms,
        "signer": plan.signer,
        "sides": {"a": a, "b": b},
        "ladder": [r.name for r in plan.loaded.policy.ladder],
        "episodes_run": total,
        "elapsed_s": round(elapsed, 3),
        "episodes_per_s": round(total / elapsed, 1) if elapsed > 0 else None,
        "workers": workers,
        "ci_halfwidth": plan.ci_halfwidth,
        **plan.extra,
    }


@contextmanager
def progress_bar(total: int, label: str, enabled: bool) -> Iterator[ProgressFn | None]:
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>9} episodes/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    began = time.perf_counter()
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(label, total=total, rate="-")
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            rate = done / max(1e-9, time.perf_counter() - began)
            bar.update(task, advance=n, rate=f"{rate:,.0f}")

        yield advance


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


def run(
    scenario: LoadedScenario,
    *,
    arms: Sequence[str | Arm] = ARMS,
    episodes: int = 1000,
    ci_halfwidth: float | None = None,
    seed: int = 0,
    out: Path | str | None = None,
    executor: str = "process",
    workers: int | None = None,
    batch: int = DEFAULT_BATCH,
    signer: SignerName = "keyed-hash",
    progress: bool = False,
) -> SimResult:
    """Run a Monte Carlo of `scenario` over `arms`; the Python API behind `clearline sim run`.

    With `ci_halfwidth`, stops once every arm's kinetic-before-human interval is that
    narrow (or at `episodes`, the cap). Results go to `out` (a temporary folder if None).
    """
    plan = RunPlan(
        scenario,
        tuple(Arm(a) for a in arms),
        seed,
        episodes,
        ci_halfwidth,
        batch,
        signer,
    )
    where = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="clearline-sim-"))
    n_workers = workers or default_workers()
    with (
        make_executor(executor, n_workers) as (pool, actual_workers),
        progress_bar(
            plan.episodes * len(plan.arms),
            f"{scenario.scenario.name} x {len(plan.arms)} arms",
            progress,
        ) as advance,
    ):
        return execute(plan, where, pool, actual_workers, advance)
