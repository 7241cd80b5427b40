"""Simulator benchmark: our kernel against SimPy on the same model, executors, Dask.

Run by hand:  .venv/bin/python bench/sim.py [--swarm] [--json]
(same as `clearline bench sim [--swarm]`; --swarm measures the swarm scenario's cost per
episode against the canonical scenario's, in the same run, instead).
Figures go to docs/performance.md with the machine and the date.
"""

from __future__ import annotations

import json
import sys

from clearline.sim.benchmark import bench_sim, bench_swarm


def say(line: str) -> None:
    print(line, file=sys.stderr)


def main() -> None:
    results = bench_swarm(say=say) if "--swarm" in sys.argv else bench_sim(say=say)
    if "--json" in sys.argv:
        print(json.dumps(results))
        return
    for key, value in results.items():
        print(f"{key:<32} {value}")


if __name__ == "__main__":
    main()
