"""The node's own telemetry metrics: the ages of received records and the last commit."""

from __future__ import annotations

from clearline.node.metrics import NodeMetrics


def sample(metrics: NodeMetrics, name: str, labels: dict[str, str] | None = None) -> float:
    value = metrics.registry.get_sample_value(name, labels or {})
    assert value is not None, f"{name} {labels} is not exported"
    return value


def test_record_ages_fall_in_their_buckets_and_the_last_commit_is_kept() -> None:
    metrics = NodeMetrics("US")
    assert sample(metrics, "clearline_telemetry_last_commit_timestamp_seconds") == 0.0
    first, second = 1_700_000_000_250_000, 1_700_000_001_500_000
    metrics.telemetry_age.add([first - age for age in (400, 900, 3_000, 70_000_000_000)], first)
    metrics.telemetry_age.add([second - 2_000], second)

    def below(le: str) -> float:
        return sample(metrics, "clearline_telemetry_age_seconds_bucket", {"le": le})

    assert below("0.0005") == 1  # 400 us
    assert below("0.001") == 2  # and 900 us
    assert below("0.002") == 3  # and the second message's 2 ms
    assert below("0.003") == 4
    assert below("300") == 4  # 70,000 s is past the last bound
    assert below("+Inf") == 5
    assert sample(metrics, "clearline_telemetry_age_seconds_count") == 5
    # The later message's commit, not the larger one's.
    assert sample(metrics, "clearline_telemetry_last_commit_timestamp_seconds") == 1_700_000_001.5


def test_a_record_from_ahead_of_our_clock_counts_as_age_zero() -> None:
    metrics = NodeMetrics("US")
    now = 1_700_000_000_000_000
    metrics.telemetry_age.add([now + 9_000_000_000_000, now - 2_000, (1 << 63) - 1], now)
    assert sample(metrics, "clearline_telemetry_age_seconds_sum") == 0.002
    assert sample(metrics, "clearline_telemetry_age_seconds_bucket", {"le": "0.0005"}) == 2


def test_ages_at_verification_are_their_own_histogram_without_a_stamp() -> None:
    metrics = NodeMetrics("US")
    now = 1_700_000_000_000_000
    metrics.telemetry_verified_age.add([now - 700, now - 9_000], now)
    name = "clearline_telemetry_verified_age_seconds"
    assert sample(metrics, f"{name}_bucket", {"le": "0.001"}) == 1
    assert sample(metrics, f"{name}_count") == 2
    assert sample(metrics, "clearline_telemetry_age_seconds_count") == 0
    assert sample(metrics, "clearline_telemetry_last_commit_timestamp_seconds") == 0.0
