"""Intervals: known values, edge cases, reproducibility, bounded memory."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from clearline.sim.montecarlo import parquet_schema
from clearline.sim.stats import (
    KEEP,
    MEANS,
    ArmStats,
    Reservoir,
    bootstrap_mean,
    bootstrap_median,
    newcombe_paired,
    wilson,
)


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


def test_newcombe_paired_matches_a_published_value() -> None:
    # Newcombe (1998b), table II, example (a): 36, 12, 2, 0 -> 0.0569 to 0.3404 (method 10).
    estimate = newcombe_paired(36, 12, 2, 0)
    assert estimate.estimate == pytest.approx(0.2)
    assert estimate.low == pytest.approx(0.0569, abs=1e-4)
    assert estimate.high == pytest.approx(0.3404, abs=1e-4)


@pytest.mark.parametrize(
    "table", [(0, 5, 0, 0), (0, 0, 5, 0), (3, 0, 0, 0), (0, 2, 0, 0), (1, 9, 0, 0), (0, 0, 0, 7)]
)
def test_newcombe_paired_stays_inside_minus_one_to_one(table: tuple[int, int, int, int]) -> None:
    estimate = newcombe_paired(*table)
    assert estimate.low is not None and estimate.high is not None
    assert estimate.estimate is not None
    assert -1.0 <= estimate.low <= estimate.estimate <= estimate.high <= 1.0


def test_newcombe_paired_is_not_empty_when_no_pair_differs() -> None:
    # a normal interval on the differences would be [0, 0] here: certainty from 40 episodes
    estimate = newcombe_paired(10, 0, 0, 30)
    assert estimate.estimate == 0
    assert estimate.low is not None and estimate.high is not None
    assert estimate.low < -0.03 and estimate.high > 0.03


def _normal_low(counts: Counter[int]) -> float:
    n = sum(counts.values())
    mean = sum(v * c for v, c in counts.items()) / n
    variance = sum(c * (v - mean) ** 2 for v, c in counts.items()) / (n - 1)
    return mean - 1.959963984540054 * math.sqrt(variance / n)


def test_bootstrap_mean_of_a_non_negative_score_stays_non_negative() -> None:
    # mostly calm episodes and a few large escalations: a normal interval reaches below zero
    # for a score that cannot
    for counts in (Counter({0: 57, 72: 3}), Counter({0: 9, 7: 1})):
        assert _normal_low(counts) < 0
        estimate = bootstrap_mean(counts, seed=3)
        assert estimate.low is not None and estimate.high is not None
        assert estimate.estimate is not None
        assert 0 <= estimate.low < estimate.estimate < estimate.high <= max(counts)


def test_bootstrap_mean_is_seeded_and_covers_the_mean() -> None:
    rng = random.Random(7)
    hits = 0
    for trial in range(40):
        counts = Counter(int(rng.expovariate(0.2)) for _ in range(300))
        a, b = bootstrap_mean(counts, seed=trial), bootstrap_mean(counts, seed=trial)
        assert a == b
        assert a.low is not None and a.high is not None
        hits += a.low <= 4.52 <= a.high  # E[floor(Exp(rate 0.2))] = 1 / (e^0.2 - 1)
    assert hits >= 34


def test_bootstrap_mean_edges() -> None:
    assert bootstrap_mean(Counter(), seed=1).estimate is None
    assert bootstrap_mean(Counter({4: 1}), seed=1) == bootstrap_mean(Counter({4: 1}), seed=2)
    assert bootstrap_mean(Counter({4: 1}), seed=1).low is None
    constant = bootstrap_mean(Counter({4: 50}), seed=1)
    assert (constant.estimate, constant.low, constant.high) == (4, 4, 4)


def test_means_are_taken_over_integer_columns() -> None:
    # bootstrap_mean counts values: a float column would be truncated by the tally
    schema = parquet_schema()
    for column in MEANS.values():
        assert str(schema.field(column).type) == "int64", column


def test_arm_stats_pairs_count_the_two_by_two_table() -> None:
    stats = ArmStats(seed=1)
    stats.add_paired([(True, True), (True, False), (False, True), (False, True), (False, False)])
    assert stats.paired == [1, 1, 2, 1]
    assert stats.paired_difference() == newcombe_paired(1, 1, 2, 1)


def test_reservoir_keeps_memory_flat() -> None:
    reservoir = Reservoir(seed=1, keep=100)
    for i in range(10_000):
        reservoir.add(float(i))
    assert len(reservoir.values) == 100
    assert reservoir.seen == 10_000
    assert 3000 < sum(reservoir.values) / 100 < 7000
    assert KEEP >= 10_000
