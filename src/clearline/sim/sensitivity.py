"""Global sensitivity analysis: which scenario parameter drives kinetic-before-human.

A study names parameters (dotted paths into the scenario, as `sim sweep` does)
with ranges, samples them with SALib (Saltelli's scheme for Sobol indices, or
Morris trajectories), runs every point over the arms, and reports for each arm
the indices of P(kinetic before any human decision) and, for each other arm,
of its paired difference against `none`.

Every point runs the same seed: point i and point j see the same episodes,
drawn from the same named random streams, and differ only by the parameters
(common random numbers, as in a sweep). So a parameter that cannot change an
outcome gives exactly the same estimate at every value, and its indices come out
zero instead of Monte Carlo noise; and the difference against `none` at a point
is a paired one, on the same episodes.

Points go to the executor in tasks of whole points (never a pool per point).
Each completed point is kept in memory for a few seconds and then written to
a Parquet file of its own batch under points/, atomically, so an interrupted
study loses at most those seconds: running the same command with the same
folder again runs only the points that are missing. study.json holds what
defines the study (scenario, parameters, method, sizes, seed, arms, sampler);
a folder holding a different study is refused rather than mixed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from clearline.errors import StudyError
from clearline.sim import salib
from clearline.sim.display import format_estimate, sig
from clearline.sim.executors import make_executor
from clearline.sim.montecarlo import DEFAULT_BATCH, default_workers, progress_bar, run_batch
from clearline.sim.outcomes import ARMS, Arm
from clearline.sim.scenario import LoadedScenario
from clearline.sim.signers import SignerName
from clearline.sim.sweep import cell_scenario

if TYPE_CHECKING:
    import pyarrow as pa

Method = Literal["sobol", "morris"]
METHODS: tuple[Method, ...] = ("sobol", "morris")
PARAM_FORM = "PATH=LOW:HIGH or PATH=LOW:HIGH:log"
QUANTITY = "kinetic_before_any_human"
FLUSH_S = 5.0
"""How long a completed point may wait in memory before it is written (one file per flush:
often enough to lose little to a crash, seldom enough to keep the files few)."""
FLUSH_POINTS = 256


# -- parameters -----------------------------------------------------------------------


def _number(text: str, what: str, spec: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise StudyError(
            f"{spec!r}: {what} {text!r} is not a number (expected {PARAM_FORM})"
        ) from None
    if not math.isfinite(value):
        raise StudyError(f"{spec!r}: {what} {text!r} is not finite")
    return value


@dataclass(frozen=True)
class Param:
    """One sampled parameter: a dotted path into the scenario and its range.

    `log` samples uniformly in log space. An integer setting (the scenario's value
    there is an integer: retries, counts) is sampled over LOW-0.5..HIGH+0.5 and
    rounded to the nearest integer, so each integer in LOW..HIGH is equally likely
    (equally likely in log space with `log`)."""

    path: str
    low: float
    high: float
    log: bool = False
    integer: bool = False

    @classmethod
    def parse(cls, text: str) -> Param:
        """`PATH=LOW:HIGH[:log]`; StudyError names the part that is wrong."""
        path, sep, rest = text.partition("=")
        path = path.strip()
        if not sep:
            raise StudyError(f"{text!r}: no '=' (expected {PARAM_FORM})")
        if not path:
            raise StudyError(f"{text!r}: no PATH before '=' (expected {PARAM_FORM})")
        if any(not part for part in path.split(".")):
            raise StudyError(f"{text!r}: PATH {path!r} has an empty part between dots")
        fields = [f.strip() for f in rest.split(":")]
        if len(fields) < 2 or len(fields) > 3:
            raise StudyError(
                f"{text!r}: {rest!r} has {len(fields)} part(s) separated by ':' "
                f"(expected {PARAM_FORM})"
            )
        low = _number(fields[0], "LOW", text)
        high = _number(fields[1], "HIGH", text)
        log = False
        if len(fields) == 3:
            if fields[2].lower() != "log":
                raise StudyError(f"{text!r}: {fields[2]!r} after HIGH: only 'log' may follow")
            log = True
        if not low < high:
            raise StudyError(f"{text!r}: LOW {fields[0]} must be below HIGH {fields[1]}")
        if log and low <= 0:
            raise StudyError(f"{text!r}: a log range needs LOW above 0, got {fields[0]}")
        return cls(path, low, high, log)

    @property
    def spec(self) -> str:
        return f"{self.path}={self.low:g}:{self.high:g}" + (":log" if self.log else "")

    def value(self, u: float) -> float | int:
        """The parameter's value at unit coordinate `u` in [0, 1]."""
        low, high = (self.low - 0.5, self.high + 0.5) if self.integer else (self.low, self.high)
        if self.log:
            x = math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
        else:
            x = low + u * (high - low)
        if self.integer:
            return int(min(self.high, max(self.low, math.floor(x + 0.5))))
        return min(self.high, max(self.low, x))


_MISSING = object()


def _current(data: Any, path: str) -> Any:
    """The value at `path` in a dumped scenario, or _MISSING where it is not set."""
    node = data
    for part in path.split("."):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return _MISSING
    return node


def resolve(base: LoadedScenario, params: Sequence[Param]) -> list[Param]:
    """Check `params` against the scenario: each path names a number, once, and both ends
    of its range make a valid scenario; integer settings are marked to be rounded."""
    if not params:
        raise StudyError("a study needs at least one --param")
    seen: set[str] = set()
    data = base.scenario.model_dump(mode="json")
    out = []
    for param in params:
        if param.path in seen:
            raise StudyError(f"{param.path}: named twice")
        seen.add(param.path)
        current = _current(data, param.path)
        if isinstance(current, bool):
            raise StudyError(f"{param.path}: a yes/no setting, not a number (use sim sweep)")
        if current is not _MISSING and current is not None and not isinstance(current, int | float):
            kind = "a list" if isinstance(current, list) else type(current).__name__
            if isinstance(current, dict):
                kind = "a group of settings"
            raise StudyError(f"{param.path}: {kind} in {base.scenario.name}, not a number")
        integer = isinstance(current, int)
        if integer and not (param.low.is_integer() and param.high.is_integer()):
            raise StudyError(
                f"{param.path}: an integer setting; LOW and HIGH must be whole numbers, "
                f"got {param.low:g}:{param.high:g}"
            )
        resolved = replace(param, integer=integer)
        for end in (0.0, 1.0):
            try:
                cell_scenario(base, {param.path: resolved.value(end)}, "parameter")
            except ValueError as exc:
                raise StudyError(str(exc)) from None
        out.append(resolved)
    return out


# -- the study ------------------------------------------------------------------------


@dataclass(frozen=True)
class Study:
    """What defines a study's points and their results (not where or how fast they run)."""

    scenario: str
    scenario_hash: str
    params: tuple[Param, ...]
    method: Method
    base_samples: int
    episodes: int
    arms: tuple[str, ...]
    seed: int
    signer: SignerName
    levels: int
    sampler: str

    def definition(self) -> dict[str, Any]:
        data = asdict(self)
        data["params"] = [asdict(p) for p in self.params]
        data["arms"] = list(self.arms)
        return data

    @property
    def names(self) -> list[str]:
        return [p.path for p in self.params]

    def unit_sample(self) -> salib.FloatArray:
        """The points in the unit hypercube, one row each, as SALib lays them out."""
        if self.method == "sobol":
            return salib.sobol_sample(self.names, self.base_samples, self.seed)
        return salib.morris_sample(self.names, self.base_samples, self.levels, self.seed)

    def settings(self, row: Sequence[float]) -> dict[str, float | int]:
        return {p.path: p.value(float(u)) for p, u in zip(self.params, row, strict=True)}


def scenario_hash(loaded: LoadedScenario) -> str:
    digest = hashlib.sha256(loaded.scenario.model_dump_json().encode() + loaded.policy.hash)
    return digest.hexdigest()[:16]


def point_count(method: Method, base_samples: int, dimensions: int) -> int:
    """Saltelli without second order: N (D + 2); Morris: N trajectories of D + 1."""
    return base_samples * (dimensions + 2 if method == "sobol" else dimensions + 1)


def make_study(
    base: LoadedScenario,
    params: Sequence[Param],
    *,
    method: Method = "sobol",
    base_samples: int = 64,
    episodes: int = 200,
    arms: Sequence[str | Arm] = ARMS,
    seed: int = 0,
    signer: SignerName = "keyed-hash",
    levels: int = 4,
) -> Study:
    if method not in METHODS:
        raise StudyError(f"unknown method {method!r}; expected sobol or morris")
    if episodes < 1:
        raise StudyError(f"episodes per point must be at least 1, got {episodes}")
    if method == "sobol" and (base_samples < 2 or base_samples & (base_samples - 1)):
        # The Sobol' sequence is balanced only at powers of two; elsewhere the
        # estimates converge more slowly, and SALib warns.
        raise StudyError(f"--base-samples must be a power of two for sobol, got {base_samples}")
    if method == "morris" and base_samples < 2:
        raise StudyError(f"morris needs at least 2 trajectories, got {base_samples}")
    if method == "morris" and (levels < 2 or levels % 2):
        raise StudyError(f"morris needs an even number of levels, at least 2, got {levels}")
    arm_names = tuple(Arm(a).value for a in arms)
    if not arm_names:
        raise StudyError("at least one arm is needed")
    return Study(
        base.scenario.name,
        scenario_hash(base),
        tuple(resolve(base, params)),
        method,
        base_samples,
        episodes,
        arm_names,
        seed,
        signer,
        levels if method == "morris" else 0,
        f"SALib {salib.version()}",
    )


# -- running points -------------------------------------------------------------------


def run_points(
    points: Sequence[tuple[int, LoadedScenario]],
    signer: SignerName,
    arms: Sequence[str],
    seed: int,
    episodes: int,
) -> list[dict[str, Any]]:
    """Run each point's `episodes` over `arms` (one task); per point and arm, the counts."""
    rows = []
    for index, loaded in points:
        began = time.perf_counter()
        columns = run_batch(loaded, signer, arms, seed, 0, episodes)
        row: dict[str, Any] = {"point": index}
        for arm in arms:
            kbh = any_kinetic = 0
            for a, hit, kinetic in zip(
                columns["arm"],
                columns["kinetic_before_any_human"],
                columns["kinetic_actions"],
                strict=True,
            ):
                if a == arm:
                    kbh += hit
                    any_kinetic += kinetic > 0
            row[f"{QUANTITY}[{arm}]"] = kbh
            row[f"any_kinetic[{arm}]"] = any_kinetic
        row["seconds"] = time.perf_counter() - began
        rows.append(row)
    return rows


def _schema(study: Study) -> pa.Schema:
    import pyarrow as pa

    fields = [("point", pa.int64()), ("episodes", pa.int64())]
    fields += [(p.path, pa.int64() if p.integer else pa.float64()) for p in study.params]
    for arm in study.arms:
        fields += [
            (f"{QUANTITY}[{arm}]", pa.int64()),
            (f"p_{QUANTITY}[{arm}]", pa.float64()),
            (f"any_kinetic[{arm}]", pa.int64()),
        ]
    fields.append(("seconds", pa.float64()))
    return pa.schema(fields)


def _write_part(folder: Path, study: Study, rows: list[dict[str, Any]], unit: Any) -> None:
    """Write `rows` (completed points) as one Parquet file, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = sorted(rows, key=lambda r: r["point"])
    columns: dict[str, list[Any]] = {name: [] for name in _schema(study).names}
    for row in rows:
        settings = study.settings(unit[row["point"]])
        columns["point"].append(row["point"])
        columns["episodes"].append(study.episodes)
        for path, value in settings.items():
            columns[path].append(value)
        for arm in study.arms:
            hits = row[f"{QUANTITY}[{arm}]"]
            columns[f"{QUANTITY}[{arm}]"].append(hits)
            columns[f"p_{QUANTITY}[{arm}]"].append(hits / study.episodes)
            columns[f"any_kinetic[{arm}]"].append(row[f"any_kinetic[{arm}]"])
        columns["seconds"].append(row["seconds"])
    # The first point names the file: each point is in one file only, so names never clash.
    name = f"part-{rows[0]['point']:06d}-{len(rows)}.parquet"
    tmp = folder / f".{name}.tmp"
    pq.write_table(pa.table(columns, schema=_schema(study)), tmp, compression="zstd")
    os.replace(tmp, folder / name)


def read_points(folder: Path) -> Any:
    """Every completed point of the study in `folder`, sorted by point, as a data frame."""
    import pandas as pd
    import pyarrow.parquet as pq

    parts = sorted((folder / "points").glob("part-*.parquet"))
    if not parts:
        return pd.DataFrame({"point": pd.Series([], dtype="int64")})
    frame = pd.concat([pq.read_table(p).to_pandas() for p in parts], ignore_index=True)
    twice = frame["point"][frame["point"].duplicated()]
    if len(twice):
        raise StudyError(f"{folder}: point {int(twice.iloc[0])} was stored twice")
    return frame.sort_values("point", ignore_index=True)


def _spec_of(param: Any) -> str:
    try:
        return Param(**param).spec
    except TypeError:
        return repr(param)


def _check_folder(out: Path, study: Study) -> None:
    """Claim `out` for `study`, or check it already holds the same study."""
    path = out / "study.json"
    definition = study.definition()
    if path.exists():
        held = json.loads(path.read_text())
        if held != definition:

            def show(key: str, value: Any) -> str:
                if key == "params" and isinstance(value, list):
                    return " ".join(_spec_of(p) for p in value)
                return repr(value)

            differ = [
                f"{key} {show(key, held.get(key))} there, {show(key, definition[key])} here"
                for key in definition
                if held.get(key) != definition[key]
            ]
            raise StudyError(
                f"{out} holds another study ({'; '.join(differ)}): "
                "use another --out, or delete that folder to start over"
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(definition, indent=2) + "\n")


@dataclass
class StudyResult:
    out: Path
    summary: dict[str, Any]

    @property
    def complete(self) -> bool:
        return bool(self.summary["complete"])

    def points(self) -> Any:
        """One row per point: parameter values, and per arm the counts and estimates."""
        return read_points(self.out)


ProgressFn = Callable[[int], None]


def _chunks(items: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def run_study(
    base: LoadedScenario,
    study: Study,
    *,
    out: Path,
    executor: str = "process",
    workers: int | None = None,
    batch: int = DEFAULT_BATCH,
    max_points: int | None = None,
    conf_level: float = 0.95,
    resamples: int = 1000,
    progress: bool = False,
    on_point: ProgressFn | None = None,
) -> StudyResult:
    """Run the points of `study` that `out` does not hold yet; once all are there, analyse
    them into sensitivity.json. `batch` is episodes per task, rounded to whole points;
    `max_points` stops after that many new points (run again to go on). `on_point` is
    called with each point index as it is stored in memory (tests use it to interrupt)."""
    if scenario_hash(base) != study.scenario_hash:
        raise StudyError("the study was defined on another version of the scenario")
    out = Path(out)
    _check_folder(out, study)
    folder = out / "points"
    folder.mkdir(exist_ok=True)
    for stale in folder.glob(".part-*.tmp"):
        stale.unlink()
    unit = study.unit_sample()
    done = set(read_points(out)["point"].tolist())
    pending = [i for i in range(len(unit)) if i not in done]
    if max_points is not None:
        pending = pending[:max_points]
    # Every point is validated before any runs: a range that leaves the schema somewhere
    # inside it fails now, naming the point, not hours later.
    scenarios = {i: cell_scenario(base, study.settings(unit[i]), f"point {i}") for i in pending}
    per_task = max(1, batch // study.episodes)
    tasks = list(_chunks(pending, per_task))
    began = time.perf_counter()
    n_workers = workers or default_workers()
    buffer: list[dict[str, Any]] = []
    oldest = 0.0  # when the oldest point in `buffer` came back
    ran = 0

    def flush() -> None:
        if buffer:
            _write_part(folder, study, buffer, unit)
            buffer.clear()

    label = f"sensitivity of {study.scenario}: {len(pending)} of {len(unit)} points"
    arms = list(study.arms)
    try:
        with (
            make_executor(executor, n_workers) as (pool, actual_workers),
            progress_bar(len(pending) * study.episodes * len(arms), label, progress) as advance,
        ):
            n_workers = actual_workers
            window = max(2, 3 * actual_workers)
            queue = iter(tasks)
            in_flight: set[Future[list[dict[str, Any]]]] = set()
            try:
                while True:
                    while len(in_flight) < window and (task := next(queue, None)) is not None:
                        points = [(i, scenarios.pop(i)) for i in task]
                        in_flight.add(
                            pool.submit(
                                run_points, points, study.signer, arms, study.seed, study.episodes
                            )
                        )
                    if not in_flight:
                        break
                    # Wake up at least every FLUSH_S, so that points done wait no longer than
                    # that to be written even while every task in flight is a slow one.
                    finished, in_flight = wait(
                        in_flight, timeout=FLUSH_S, return_when=FIRST_COMPLETED
                    )
                    for future in finished:
                        for row in future.result():
                            if not buffer:
                                oldest = time.perf_counter()
                            buffer.append(row)
                            ran += 1
                            if advance is not None:
                                advance(study.episodes * len(arms))
                            if on_point is not None:
                                on_point(row["point"])
                    if buffer and (
                        len(buffer) >= FLUSH_POINTS or time.perf_counter() - oldest >= FLUSH_S
                    ):
                        flush()
            finally:
                for future in in_flight:
                    future.cancel()
    finally:
        flush()
    elapsed = time.perf_counter() - began
    frame = read_points(out)
    run_info = {
        "points_run": ran,
        "elapsed_s": round(elapsed, 3),
        "points_per_s": round(ran / elapsed, 2) if elapsed > 0 and ran else None,
        "episode_arms_per_s": (
            round(ran * study.episodes * len(arms) / elapsed, 1) if elapsed > 0 and ran else None
        ),
        "workers": n_workers,
        "executor": executor,
    }
    if len(frame) < len(unit):
        summary = {
            "kind": "sensitivity",
            "complete": False,
            **study.definition(),
            "points": len(unit),
            "points_done": len(frame),
            "run": run_info,
        }
        return StudyResult(out, summary)
    summary = analyse(study, frame, unit, conf_level=conf_level, resamples=resamples)
    summary["run"] = run_info
    (out / "sensitivity.json").write_text(json.dumps(summary, indent=2) + "\n")
    return StudyResult(out, summary)


# -- analysis -------------------------------------------------------------------------


def _interval(estimate: float, half: float) -> dict[str, float | None]:
    def clean(x: float) -> float | None:
        return round(float(x), 6) if math.isfinite(x) else None

    return {
        "estimate": clean(estimate),
        "low": clean(estimate - half),
        "high": clean(estimate + half),
    }


def indices(
    study: Study,
    y: salib.FloatArray,
    unit: salib.FloatArray,
    *,
    conf_level: float,
    resamples: int,
) -> dict[str, dict[str, dict[str, float | None]]] | None:
    """Per parameter, the method's indices of output `y` with their intervals; None when
    `y` is the same at every point (no variance to apportion)."""
    if float(np.ptp(y)) == 0.0:
        return None
    names = study.names
    if study.method == "sobol":
        s = salib.sobol_indices(names, y, resamples, conf_level, study.seed)
        return {
            name: {
                "S1": _interval(s["S1"][i], s["S1_conf"][i]),
                "ST": _interval(s["ST"][i], s["ST_conf"][i]),
            }
            for i, name in enumerate(names)
        }
    m = salib.morris_indices(names, unit, y, study.levels, resamples, conf_level, study.seed)
    return {
        name: {
            "mu_star": _interval(m["mu_star"][i], m["mu_star_conf"][i]),
            "mu": _interval(m["mu"][i], 0.0),
            "sigma": _interval(m["sigma"][i], 0.0),
        }
        for i, name in enumerate(names)
    }


def _label(arm: str, quantity: str) -> str:
    if quantity == "difference_vs_none":
        return f"P(kinetic before any human): {arm} minus none"
    return f"P(kinetic before any human) in {arm}"


def analyse(
    study: Study,
    frame: Any,
    unit: salib.FloatArray,
    *,
    conf_level: float = 0.95,
    resamples: int = 1000,
) -> dict[str, Any]:
    """The indices of every output: P(kinetic before any human) in each arm, and each arm's
    paired difference against `none` (same episodes, so per point the difference of the two
    estimates is the mean of the per-episode differences)."""
    if len(frame) != len(unit) or list(frame["point"]) != list(range(len(unit))):
        raise StudyError("the study is not complete: every point is needed for the analysis")
    outputs: list[dict[str, Any]] = []
    estimates = {
        arm: frame[f"p_{QUANTITY}[{arm}]"].to_numpy(dtype=np.float64) for arm in study.arms
    }
    series: list[tuple[str, str, salib.FloatArray]] = [
        (arm, QUANTITY, estimates[arm]) for arm in study.arms
    ]
    if Arm.NONE.value in study.arms:
        series += [
            (arm, "difference_vs_none", estimates[arm] - estimates[Arm.NONE.value])
            for arm in study.arms
            if arm != Arm.NONE.value
        ]
    for arm, quantity, y in series:
        found = indices(study, y, unit, conf_level=conf_level, resamples=resamples)
        outputs.append(
            {
                "arm": arm,
                "quantity": quantity,
                "label": _label(arm, quantity),
                "mean": round(float(y.mean()), 6),
                "min": round(float(y.min()), 6),
                "max": round(float(y.max()), 6),
                "indices": found,
                "note": None
                if found is not None
                else "the same at every point: no parameter moves it, and indices are undefined",
            }
        )
    notes = [
        f"{p.path} is an integer setting: sampled over {p.low - 0.5:g}..{p.high + 0.5:g}"
        f"{' in log space' if p.log else ''} and rounded, so each of {p.low:g}..{p.high:g} "
        "is equally likely" + (" in log space" if p.log else "")
        for p in study.params
        if p.integer
    ]
    if study.method == "sobol":
        notes.append(
            "Sobol: first-order (S1) and total (ST) indices by Saltelli's scheme, N (D + 2) "
            "points; second-order indices are not computed. Intervals: bootstrap over the "
            f"base samples ({resamples} resamples), {conf_level:.0%}."
        )
    else:
        notes.append(
            "Morris: mu* is the mean absolute change in the output when one parameter moves "
            f"by {study.levels // 2} of {study.levels - 1} steps of its range, sigma the "
            f"spread of that change; mu* interval: bootstrap, {resamples} resamples, "
            f"{conf_level:.0%}."
        )
    return {
        "kind": "sensitivity",
        "complete": True,
        **study.definition(),
        "points": len(unit),
        "points_done": len(frame),
        "conf_level": conf_level,
        "resamples": resamples,
        "outputs": outputs,
        "notes": notes,
    }


# -- reading it -----------------------------------------------------------------------


def summary_table(summary: dict[str, Any]) -> str:
    """The indices of every output as plain-text tables, parameters by total effect."""
    if not summary.get("complete"):
        return (
            f"{summary['scenario']}: {summary['points_done']} of {summary['points']} points "
            "done; run the same command again to go on"
        )
    sobol = summary["method"] == "sobol"
    key = "ST" if sobol else "mu_star"
    head = ("S1", "ST") if sobol else ("mu*", "sigma")
    width = max(len(p["path"]) for p in summary["params"]) + 2
    lines = [
        f"{summary['scenario']}: {summary['method']}, {summary['points']} points x "
        f"{summary['episodes']} episodes, seed {summary['seed']}, "
        f"intervals {summary['conf_level']:.0%}"
    ]
    for output in summary["outputs"]:
        lines += [
            "",
            f"{output['label']}: mean {sig(output['mean'])} over the points "
            f"({sig(output['min'])} to {sig(output['max'])})",
        ]
        found = output["indices"]
        if found is None:
            lines.append(f"  {output['note']}")
            continue
        lines.append(f"  {'Parameter':<{width}} {head[0]:<26} {head[1]}")
        order = sorted(found, key=lambda n: -(found[n][key]["estimate"] or 0.0))
        for name in order:
            values = found[name]
            first = format_estimate(values["S1"] if sobol else values["mu_star"])
            second = format_estimate(values["ST"] if sobol else values["sigma"])
            lines.append(f"  {name:<{width}} {first:<26} {second}")
    lines += ["", *summary["notes"]]
    return "\n".join(lines)
