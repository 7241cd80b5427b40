"""Intervals: known values, edge cases, reproducibility, bounded memory."""

from __future__ import annotations

import math
import random

import pytest

from clearline.sim.stats import KEEP, Reservoir, bootstrap_median, normal_mean, wilson


def test_wilson_matches_a_published_value() -> None:
    # Newcombe (1998), table I: 81 of 263 -> 0.2553 to 0.3662.
    estimate = wilson(81, 263)
    assert estimate.low == pytest.approx(0.2553, abs=1e-4)
    assert estimate.high == pytest.approx(0.3662, abs=1e-4)


def test_wilson_edges_are_exact() -> None:
    assert wilson(0, 50).low == 0.0
    assert wilson(50, 50).high == 1.0
    assert wilson(0, 0).estimate is None


def test_bootstrap_median_is_seeded_and_covers_the_median() -> None:
    rng = random.Random(5)
    values = [rng.expovariate(1.0) for _ in range(2001)]
    a, b = bootstrap_median(values, seed=1), bootstrap_median(values, seed=1)
    assert a == b
    assert a.low is not None and a.high is not None
    assert a.low < math.log(2) < a.high


def test_large_samples_use_order_statistics() -> None:
    values = [float(i) for i in range(50_001)]
    estimate = bootstrap_median(values, seed=1)
    assert estimate.estimate == 25_000
    assert estimate.low is not None and estimate.high is not None
    assert 24_700 < estimate.low < 25_000 < estimate.high < 25_300


def test_normal_mean() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    estimate = normal_mean(sum(values), sum(v * v for v in values), len(values))
    assert estimate.estimate == 2.5
    assert estimate.low is not None
    assert estimate.low == pytest.approx(2.5 - 1.959963984540054 * math.sqrt(5 / 3 / 4))


def test_reservoir_keeps_memory_flat() -> None:
    reservoir = Reservoir(seed=1, keep=100)
    for i in range(10_000):
        reservoir.add(float(i))
    assert len(reservoir.values) == 100
    assert reservoir.seen == 10_000
    assert 3000 < sum(reservoir.values) / 100 < 7000
    assert KEEP >= 10_000
