"""Golden summaries: each shipped scenario under a fixed seed, compared number for number.

In the manner of DAIDALUS's regression gold files: any change in behaviour shows
up here as a diff that someone must explain. Regenerate with
`python scripts/update_sim_golden.py` and say why in the commit.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest

from clearline.sim.montecarlo import run
from clearline.sim.scenario import load_scenario, shipped_scenarios

GOLDEN = Path(__file__).resolve().parent / "golden"
EPISODES = 200
SEED = 20261127


def golden_summary(name: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        result = run(
            load_scenario(name), episodes=EPISODES, seed=SEED, executor="serial", out=Path(tmp)
        )
    return {"scenario": name, "seed": SEED, "episodes": EPISODES, "arms": result.summary["arms"]}


SLOW = {"mq9-collision", "link-loss", "swarm"}
"""Those of the shipped scenarios whose golden run takes over 10 s here."""


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in shipped_scenarios()],
)
def test_golden_summary(name: str) -> None:
    path = GOLDEN / f"{name}.json"
    assert path.exists(), f"no golden file for {name}: run python scripts/update_sim_golden.py"
    expected = json.loads(path.read_text())
    actual = json.loads(json.dumps(golden_summary(name)))
    for arm, data in expected["arms"].items():
        assert actual["arms"][arm] == data, (
            f"{name}/{arm} changed from the golden summary (seed {SEED}); if intended, run "
            "python scripts/update_sim_golden.py and explain the diff in the commit"
        )
    assert actual == expected


def test_golden_intervals_stay_inside_their_quantities_range() -> None:
    """Probabilities in [0, 1], paired differences in [-1, 1], means of counts and scores
    (none of the shipped scenarios takes a rung that scores below 0) at or above 0."""
    from clearline.sim.stats import MEANS, PROPORTIONS

    for path in sorted(GOLDEN.glob("*.json")):
        for arm, data in json.loads(path.read_text())["arms"].items():
            where = f"{path.name} {arm}"
            outcomes = data["outcomes"]
            for name, o in outcomes.items():
                if o["low"] is not None:
                    assert o["low"] <= o["estimate"] <= o["high"], f"{where} {name}: {o}"
            for name in PROPORTIONS:
                o = outcomes[name]
                assert o["low"] >= 0 and o["high"] <= 1, f"{where} {name}: {o}"
            for name in MEANS:
                o = outcomes[f"mean_{name}"]
                assert o["low"] >= 0, f"{where} mean_{name}: {o}"
            for o in data.get("paired_vs_none", {}).values():
                assert -1 <= o["low"] <= o["estimate"] <= o["high"] <= 1, f"{where}: {o}"
