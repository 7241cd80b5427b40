"""Regenerate tests/sim/golden/*.json: every shipped scenario's summary under a fixed seed.

A change in these files is a change in the simulator's behaviour; the commit that
makes it must say why.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "sim"))

from test_golden import GOLDEN, golden_summary  # noqa: E402

from clearline.sim.scenario import shipped_scenarios  # noqa: E402


def main() -> None:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for name in shipped_scenarios():
        path = GOLDEN / f"{name}.json"
        path.write_text(json.dumps(golden_summary(name), indent=2, sort_keys=True) + "\n")
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
