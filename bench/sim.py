"""Simulator benchmark: our kernel against SimPy on the same model, executors, Dask.

Run by hand:  .venv/bin/python bench/sim.py [--json]   (same as `clearline bench sim`)
Figures go to docs/performance.md with the machine and the date.
"""

from __future__ import annotations

import json
import sys

from clearline.sim.benchmark import bench_sim


def main() -> None:
    results = bench_sim(say=lambda line: print(line, file=sys.stderr))
    if "--json" in sys.argv:
        print(json.dumps(results))
        return
    for key, value in results.items():
        print(f"{key:<32} {value}")


if __name__ == "__main__":
    main()
