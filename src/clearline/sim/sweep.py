"""Parameter sweeps: the same Monte Carlo over a grid of scenario variations.

A parameter is a dotted path into the scenario (`network.one_way_ms`,
`sides.US.model.confusion.recon_swarm.strike_package`,
`sides.US.doctrine.trust_prior.0`). Every cell is re-validated as a scenario,
so a sweep can never run a world a scenario file could not describe. Every cell
uses the same seed: cells differ only by the parameters (common random numbers
across the grid as well as across arms).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from clearline.errors import ScenarioError
from clearline.sim.executors import make_executor
from clearline.sim.montecarlo import DEFAULT_BATCH, RunPlan, default_workers, execute, progress_bar
from clearline.sim.outcomes import ARMS, Arm
from clearline.sim.scenario import SCENARIO_VERSION, LoadedScenario, Scenario, check_scenario
from clearline.sim.signers import SignerName
from clearline.sourcemap import input_path


@dataclass(frozen=True)
class Axis:
    path: str
    values: tuple[Any, ...]

    @classmethod
    def parse(cls, text: str) -> Axis:
        """`PATH=v1,v2,...`; the values are read as one YAML flow sequence, so each may be a
        number, a yes/no, a name, a list (`[1, 9]`) or a mapping (`{type: fixed, value_s: 1}`)."""
        path, sep, values = text.partition("=")
        if not sep or not path.strip() or not values.strip():
            raise ValueError(f"expected PATH=v1,v2,... for a sweep parameter, got {text!r}")
        try:
            parsed = yaml.safe_load(f"[{values}]")
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at character {mark.column}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or "not YAML"
            raise ValueError(
                f"{path.strip()}: cannot read the values {values!r}{where} ({problem}); "
                "expected v1,v2,... with each a number, yes/no, name, [list] or {mapping}"
            ) from None
        if not isinstance(parsed, list) or not parsed:
            raise ValueError(f"expected PATH=v1,v2,... for a sweep parameter, got {text!r}")
        return cls(path.strip(), tuple(parsed))


def set_path(data: Any, path: str, value: Any) -> None:
    """Set `value` at a dotted `path` in nested dicts and lists, creating dicts as needed."""
    parts = path.split(".")
    node = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ValueError(f"{path}: {part!r} is not an index of a {len(node)}-item list")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
        else:
            inside = ".".join(parts[:i])
            raise ValueError(f"{path}: cannot go into {inside}, a {type(node).__name__}")


def cell_scenario(
    base: LoadedScenario, settings: dict[str, Any], what: str = "sweep cell"
) -> LoadedScenario:
    """`base` with `settings` applied, re-validated; errors name `what` and the settings."""
    # Every setting, defaults included: a path into a default (`sides.US.analog.connect.
    # median_s`) changes that one number and keeps the default's others (its sigma, type).
    data = base.scenario.model_dump(mode="json")
    data["version"] = SCENARIO_VERSION
    for path, value in settings.items():
        set_path(data, path, value)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in input_path(first["loc"], data, first["type"] == "missing"))
        raise ScenarioError(f"{what} {settings}: {where}: {first['msg']}", base.source) from None
    try:
        check_scenario(scenario, base.policy, base.source)
    except ScenarioError as exc:
        raise ScenarioError(f"{what} {settings}: {exc.detail}", base.source) from None
    return LoadedScenario(scenario, base.policy, base.source)


def sweep(
    base: LoadedScenario,
    axes: Sequence[Axis],
    *,
    out: Path,
    arms: Sequence[str | Arm] = ARMS,
    episodes: int = 1000,
    seed: int = 0,
    executor: str = "process",
    workers: int | None = None,
    batch: int = DEFAULT_BATCH,
    signer: SignerName = "keyed-hash",
    progress: bool = False,
) -> dict[str, Any]:
    """Run every cell of the grid into cells/NNN/ (episodes.parquet, summary.json);
    write sweep.json with every cell's estimates."""
    if not axes:
        raise ValueError("a sweep needs at least one parameter")
    arm_values = tuple(Arm(a) for a in arms)
    grid = list(itertools.product(*(axis.values for axis in axes)))
    cells = [
        (i, {axis.path: value for axis, value in zip(axes, values, strict=True)})
        for i, values in enumerate(grid)
    ]
    scenarios = [cell_scenario(base, settings) for _, settings in cells]
    out.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    began = time.perf_counter()
    with (
        make_executor(executor, workers or default_workers()) as (pool, n_workers),
        progress_bar(
            len(cells) * episodes * len(arm_values),
            f"sweep of {base.scenario.name}: {len(cells)} cells",
            progress,
        ) as advance,
    ):
        for (index, settings), loaded in zip(cells, scenarios, strict=True):
            plan = RunPlan(
                loaded, arm_values, seed, episodes, None, batch, signer, {"cell": settings}
            )
            result = execute(plan, out / "cells" / f"{index:03d}", pool, n_workers, advance)
            results.append({"index": index, "settings": settings, "summary": result.summary})
    summary = {
        "scenario": base.scenario.name,
        "seed": seed,
        "signer": signer,
        "episodes_per_cell": episodes,
        "axes": [{"path": a.path, "values": list(a.values)} for a in axes],
        "arms": [a.value for a in arm_values],
        "cells": [
            {
                "index": r["index"],
                "settings": r["settings"],
                "arms": {arm: data["outcomes"] for arm, data in r["summary"]["arms"].items()},
            }
            for r in results
        ],
        "elapsed_s": round(time.perf_counter() - began, 3),
    }
    (out / "sweep.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
