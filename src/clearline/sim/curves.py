"""The data behind the survival figure, computed once for the HTML report and the console, so
both draw the same curves on the same axes. (numpy and pyarrow come with the `sim` extra:
imported in the function, not when this module is.)"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def survival_curves(episodes: Path, points: int = 200) -> dict[str, Any]:
    """P(no kinetic act yet) by time, per arm, on a log time grid from 0.1 s to the end of the
    longest episode, from episodes.parquet. `t` is the grid; its ends are the time axis."""
    import numpy as np
    import pyarrow.parquet as pq

    table = pq.read_table(episodes, columns=["arm", "first_kinetic_s", "ended_s"]).to_pandas()
    finite = table["first_kinetic_s"].dropna()
    top = max(1.0, float(finite.max()) if len(finite) else 1.0, float(table["ended_s"].max()))
    grid = np.logspace(-1, math.log10(top), points)
    curves: dict[str, list[float]] = {}
    for arm, group in table.groupby("arm", sort=False):
        times = group["first_kinetic_s"].to_numpy()
        happened = np.sort(times[~np.isnan(times)])
        alive = 1.0 - np.searchsorted(happened, grid, side="right") / max(1, len(times))
        curves[str(arm)] = [round(float(v), 6) for v in alive]
    return {"t": [round(float(t), 6) for t in grid], "arms": curves}
