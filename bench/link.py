"""Link benchmark: TCP echo, gRPC mTLS echo, clarification through two nodes, telemetry, WAN.

Run by hand:  .venv/bin/python bench/link.py [--json]   (same as `clearline bench link`)
Figures go to docs/performance.md with the machine and the date.
"""

from __future__ import annotations

import json
import sys

from clearline.lab.benchmark import bench_link


def main() -> None:
    results = bench_link(say=lambda line: print(line, file=sys.stderr))
    print(json.dumps(results, indent=None if "--json" in sys.argv else 2))


if __name__ == "__main__":
    main()
