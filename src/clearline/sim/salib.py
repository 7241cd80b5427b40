"""A typed door to SALib, which ships no type hints: the few calls a study makes.

Every problem handed to SALib is the unit hypercube. The study maps unit
coordinates to parameter values itself (linear, log-uniform, rounded), so that
Morris effects are per fraction of each parameter's range (comparable across
parameters whatever their units) and Sobol indices, which do not depend on the
scale, are computed on the same sample.

SALib is imported inside each function: it pulls in scipy, which nothing else in
the simulator needs, so `sim run` and `sim sweep` do not pay for it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def version() -> str:
    return importlib.metadata.version("SALib")


def _seed(seed: int, purpose: str) -> int:
    """A seed for SALib from the study's: never 0, which SALib's Sobol analysis takes as
    "no seed" (its bootstrap then draws from numpy's global state and the intervals change
    from run to run), and never negative, which numpy refuses."""
    digest = hashlib.blake2b(f"clearline/sensitivity/{purpose}/{seed}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big") >> 1 | 1


def _problem(names: Sequence[str]) -> dict[str, Any]:
    return {"num_vars": len(names), "names": list(names), "bounds": [[0.0, 1.0]] * len(names)}


def sobol_sample(names: Sequence[str], base_samples: int, seed: int) -> FloatArray:
    """Saltelli's scheme on a scrambled Sobol' sequence: base_samples * (D + 2) rows,
    without the extra rows second-order indices would need."""
    from SALib.sample import sobol

    rows = sobol.sample(
        _problem(names), base_samples, calc_second_order=False, seed=_seed(seed, "sample")
    )
    return np.asarray(rows, dtype=np.float64)


def morris_sample(names: Sequence[str], trajectories: int, levels: int, seed: int) -> FloatArray:
    """`trajectories` one-at-a-time paths on a `levels`-level grid: trajectories * (D + 1) rows."""
    from SALib.sample import morris

    rows = morris.sample(
        _problem(names), trajectories, num_levels=levels, seed=_seed(seed, "sample")
    )
    return np.asarray(rows, dtype=np.float64)


def sobol_indices(
    names: Sequence[str], y: FloatArray, resamples: int, conf_level: float, seed: int
) -> dict[str, FloatArray]:
    """First-order (S1) and total (ST) indices with the half-widths of their bootstrap
    intervals (S1_conf, ST_conf), one entry per name."""
    from SALib.analyze import sobol

    result = sobol.analyze(
        _problem(names),
        np.asarray(y, dtype=np.float64),
        calc_second_order=False,
        num_resamples=resamples,
        conf_level=conf_level,
        seed=_seed(seed, "bootstrap"),
    )
    return {k: np.asarray(result[k], dtype=np.float64) for k in ("S1", "S1_conf", "ST", "ST_conf")}


def morris_indices(
    names: Sequence[str],
    x: FloatArray,
    y: FloatArray,
    levels: int,
    resamples: int,
    conf_level: float,
    seed: int,
) -> dict[str, FloatArray]:
    """mu, mu* (mean absolute elementary effect), sigma, and the half-width of mu*'s
    bootstrap interval (mu_star_conf), one entry per name."""
    from SALib.analyze import morris

    result = morris.analyze(
        _problem(names),
        np.asarray(x, dtype=np.float64),
        np.asarray(y, dtype=np.float64),
        num_resamples=resamples,
        conf_level=conf_level,
        num_levels=levels,
        seed=_seed(seed, "bootstrap"),
    )
    return {
        k: np.asarray(result[k], dtype=np.float64)
        for k in ("mu", "mu_star", "sigma", "mu_star_conf")
    }
