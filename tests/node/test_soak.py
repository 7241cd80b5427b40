"""Soak: two nodes under sustained load for a bounded time; memory flat, nothing lost.

CI runs CLEARLINE_SOAK_SECONDS (default 120); by hand: clearline bench soak --seconds 3600.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from clearline.lab.soak import FLAT_MARGIN_KIB, run_soak

SECONDS = float(os.environ.get("CLEARLINE_SOAK_SECONDS", "120"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


@pytest.mark.slow
def test_two_nodes_under_sustained_load_keep_memory_flat() -> None:
    result = run_soak(SECONDS, lambda line: None)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "soak.json").write_text(json.dumps(result, indent=2))
    assert result["exit_codes"] == {"US": 0, "PRC": 0}
    outcomes = result["clarifications"]
    assert outcomes["expired"] == outcomes["not_sent"] == 0, outcomes
    assert outcomes["answered"] > SECONDS * 5
    for side in ("us", "prc"):
        assert result[f"{side}_memory_flat"], (
            f"{side} resident memory grew {result[f'{side}_rss_growth_kib']} KiB between the "
            f"second and last thirds (allowed {FLAT_MARGIN_KIB})"
        )
        assert result[f"{side}_log_growth_per_s"] > 10
    assert len(result["samples"]) >= 6
