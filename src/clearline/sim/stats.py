"""Estimates with intervals, accumulated in flat memory however many episodes run.

Every interval stays inside the range its quantity can take. Proportions get
Wilson score intervals (inside [0, 1]). Medians of times get percentile
bootstrap intervals over the kept sample (every value up to `KEEP`, then a
uniform reservoir of `KEEP`). Means of counts and scores get percentile
bootstrap intervals too, drawn from the count of each value over every episode
(inside the smallest and largest value seen, so a score that cannot go below 0
never gets an interval that does). Paired differences between arms (common
random numbers: the same episode index is the same world in every arm) get
Newcombe's hybrid score interval for paired proportions (inside [-1, 1]).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Z95 = 1.959963984540054
KEEP = 100_000
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_MAX_N = 20_000
"""Above this many values, the median's interval uses order statistics (what the
bootstrap converges to) instead of resampling, to keep `report` fast."""


@dataclass(frozen=True, slots=True)
class Estimate:
    estimate: float | None
    low: float | None
    high: float | None

    def as_dict(self) -> dict[str, float | None]:
        """Rounded to 9 significant figures, so summaries diff cleanly across platforms."""
        return {
            "estimate": _round(self.estimate),
            "low": _round(self.low),
            "high": _round(self.high),
        }

    @property
    def halfwidth(self) -> float:
        if self.low is None or self.high is None:
            return math.inf
        return (self.high - self.low) / 2


def _round(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.9g}")


def wilson(successes: int, n: int, z: float = Z95) -> Estimate:
    """Wilson score interval for a proportion (good near 0 and 1, unlike Wald's)."""
    if n == 0:
        return Estimate(None, None, None)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - spread)
    high = 1.0 if successes == n else min(1.0, centre + spread)
    return Estimate(p, round(low, 9), round(high, 9))


def newcombe_paired(both: int, first_only: int, second_only: int, neither: int) -> Estimate:
    """P(first) - P(second) over paired binary outcomes, with Newcombe's (1998) hybrid score
    interval (method 10): Wilson intervals of both margins, combined with the correlation
    of the pairs. The interval stays inside [-1, 1], and is not empty when no pair differs."""
    n = both + first_only + second_only + neither
    if n == 0:
        return Estimate(None, None, None)
    first, second = both + first_only, both + second_only
    p1, p2 = first / n, second / n
    w1, w2 = wilson(first, n), wilson(second, n)
    assert w1.low is not None and w1.high is not None and w2.low is not None
    assert w2.high is not None
    product = first * (n - first) * second * (n - second)
    cross = both * neither - first_only * second_only
    corrected = cross - n / 2 if cross > n / 2 else min(cross, 0)
    phi = corrected / math.sqrt(product) if product > 0 else 0.0
    d1_low, d1_high, d2_low, d2_high = p1 - w1.low, w1.high - p1, p2 - w2.low, w2.high - p2
    low = p1 - p2 - math.sqrt(max(0.0, d1_low**2 - 2 * phi * d1_low * d2_high + d2_high**2))
    high = p1 - p2 + math.sqrt(max(0.0, d2_low**2 - 2 * phi * d2_low * d1_high + d1_high**2))
    return Estimate(p1 - p2, max(-1.0, low), min(1.0, high))


def bootstrap_mean(counts: Mapping[int, int], seed: int) -> Estimate:
    """Mean with a 95% percentile-bootstrap interval (seeded), resampling the episodes through
    the count of each value: a multinomial draw over the values is one resample of every
    episode, so the interval uses all of them in memory bounded by the distinct values, and
    stays between the smallest and the largest value seen."""
    import numpy as np  # the `sim` extra: imported here, not when this module is

    values = sorted(v for v, c in counts.items() if c > 0)
    n = sum(counts[v] for v in values)
    if n == 0:
        return Estimate(None, None, None)
    mean = sum(v * counts[v] for v in values) / n
    if n == 1:
        return Estimate(mean, None, None)
    if len(values) == 1:
        return Estimate(mean, mean, mean)
    weights = np.array([counts[v] for v in values], dtype=np.float64) / n
    draws = np.random.default_rng(seed).multinomial(n, weights, size=BOOTSTRAP_RESAMPLES)
    means = draws @ np.array(values, dtype=np.float64) / n
    low, high = np.percentile(means, [2.5, 97.5])
    return Estimate(mean, max(float(values[0]), float(low)), min(float(values[-1]), float(high)))


def bootstrap_median(values: list[float], seed: int) -> Estimate:
    """Median with a 95% percentile-bootstrap interval (seeded, so reproducible)."""
    import numpy as np  # the `sim` extra: imported here, not when this module is

    n = len(values)
    if n == 0:
        return Estimate(None, None, None)
    data = np.sort(np.asarray(values, dtype=np.float64))
    median = float(np.median(data))
    if n == 1:
        return Estimate(median, None, None)
    if n > BOOTSTRAP_MAX_N:
        half = Z95 * math.sqrt(n) / 2
        lo = max(0, math.floor(n / 2 - half) - 1)
        hi = min(n - 1, math.ceil(n / 2 + half))
        return Estimate(median, float(data[lo]), float(data[hi]))
    rng = np.random.default_rng(seed)
    medians = np.empty(BOOTSTRAP_RESAMPLES)
    step = max(1, 2_000_000 // n)
    for start in range(0, BOOTSTRAP_RESAMPLES, step):
        stop = min(BOOTSTRAP_RESAMPLES, start + step)
        picks = rng.integers(0, n, size=(stop - start, n))
        medians[start:stop] = np.median(data[picks], axis=1)
    low, high = np.percentile(medians, [2.5, 97.5])
    return Estimate(median, float(low), float(high))


@dataclass
class Reservoir:
    """Every value up to `keep`, then a uniform sample of `keep` (Algorithm R, seeded)."""

    seed: int
    keep: int = KEEP
    values: list[float] = field(default_factory=list)
    seen: int = 0
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def add(self, value: float) -> None:
        self.seen += 1
        if len(self.values) < self.keep:
            self.values.append(value)
            return
        slot = self._rng.randrange(self.seen)
        if slot < self.keep:
            self.values[slot] = value


PROPORTIONS: dict[str, str] = {
    "kinetic_before_any_human": "kinetic_before_any_human",
    "kinetic_before_own_human_a": "kinetic_before_own_human_a",
    "kinetic_before_own_human_b": "kinetic_before_own_human_b",
    "fired_first_a": "fired_first_a",
    "fired_first_b": "fired_first_b",
    "any_kinetic": "kinetic_actions",
    "nuclear_use": "nuclear_use",
    "false_reassurance": "false_reassurance",
    "cleared_by_hotline": "cleared_by_hotline",
    "excluded_domain_unguarded": "excluded_unguarded",
}
"""Summary name -> episode column; an episode counts when the column is true or non-zero."""

COUNTS: dict[str, str] = {
    "excluded_domain_allowed": "excluded_allowed",
    "excluded_domain_attempts": "excluded_attempts",
    "forged_accepted": "forged_accepted",
    "forged_injected": "forged_injected",
}
"""Summary name -> episode column, summed over episodes (the first and third must be 0)."""

MEDIANS: dict[str, str] = {
    "time_to_first_kinetic_s": "first_kinetic_s",
    "time_to_first_human_s": "first_human_s",
    "reassurance_delay_s": "reassurance_delay_s",
}
"""Summary name -> episode column; median over the episodes where it happened."""

MEANS: dict[str, str] = {
    "escalation_score": "escalation_score",
    "escalation_score_a": "escalation_score_a",
    "escalation_score_b": "escalation_score_b",
    "kinetic_actions": "kinetic_actions",
    "peak_rung_a": "peak_rung_a",
    "peak_rung_b": "peak_rung_b",
    "messages_sent": "messages_sent",
    "messages_lost": "messages_lost",
}
"""Summary name (`mean_` + it) -> episode column of integers; mean over every episode."""


class ArmStats:
    """Running totals for one arm."""

    def __init__(self, seed: int) -> None:
        self.episodes = 0
        self.hits = dict.fromkeys(PROPORTIONS, 0)
        self.counts = dict.fromkeys(COUNTS, 0)
        self.tallies: dict[str, Counter[int]] = {name: Counter() for name in MEANS}
        self.times = {name: Reservoir(seed + i) for i, name in enumerate(MEDIANS)}
        self.paired = [0, 0, 0, 0]
        """Episodes where kinetic_before_any_human was true in this arm and the baseline, in
        this arm only, in the baseline only, and in neither."""

    def add(self, columns: dict[str, list[Any]], rows: list[int]) -> None:
        self.episodes += len(rows)
        for name, column in PROPORTIONS.items():
            values = columns[column]
            self.hits[name] += sum(1 for i in rows if values[i])
        for name, column in COUNTS.items():
            values = columns[column]
            self.counts[name] += sum(int(values[i]) for i in rows)
        for name, column in MEANS.items():
            values = columns[column]
            self.tallies[name].update(int(values[i]) for i in rows)
        for name, column in MEDIANS.items():
            values = columns[column]
            reservoir = self.times[name]
            for i in rows:
                v = values[i]
                if not math.isnan(v):
                    reservoir.add(float(v))

    def add_paired(self, pairs: list[tuple[bool, bool]]) -> None:
        """(this arm's outcome, the baseline's) for the same episodes."""
        for mine, base in pairs:
            self.paired[(0 if mine else 2) + (0 if base else 1)] += 1

    def paired_difference(self) -> Estimate:
        both, mine_only, base_only, neither = self.paired
        return newcombe_paired(both, mine_only, base_only, neither)

    def proportion(self, name: str) -> Estimate:
        return wilson(self.hits[name], self.episodes)

    def summary(self, seed: int) -> dict[str, dict[str, float | None]]:
        outcomes: dict[str, dict[str, float | None]] = {}
        for name in PROPORTIONS:
            outcomes[name] = self.proportion(name).as_dict()
        for name in COUNTS:
            total = float(self.counts[name])
            outcomes[name] = {"estimate": total, "low": total, "high": total}
        for i, name in enumerate(MEDIANS):
            outcomes[name] = bootstrap_median(self.times[name].values, seed + i).as_dict()
        for i, name in enumerate(MEANS):
            outcomes[f"mean_{name}"] = bootstrap_mean(
                self.tallies[name], seed + len(MEDIANS) + i
            ).as_dict()
        return outcomes
