"""The simulated path: partitions, loss, duplication, and frame splitting."""

from __future__ import annotations

import random

from clearline.protocol import codec
from clearline.sim.kernel import Kernel
from clearline.sim.network import Partitions, SimLink, split_frames
from clearline.sim.scenario import NetworkSpec, Partition, RandomPartitions

S = 1_000_000


def test_partitions_merge_and_block_half_open_intervals() -> None:
    spec = NetworkSpec(
        partitions=[Partition(at_s=10, duration_s=5), Partition(at_s=12, duration_s=10)]
    )
    parts = Partitions.draw(spec, 100 * S, random.Random(1))
    assert (parts.starts, parts.ends) == ((10 * S,), (22 * S,))
    assert not parts.blocked(10 * S - 1)
    assert parts.blocked(10 * S)
    assert parts.blocked(22 * S - 1)
    assert not parts.blocked(22 * S)


def test_random_partitions_respect_the_minimum_duration() -> None:
    spec = NetworkSpec(random_partitions=RandomPartitions(rate_per_hour=60, min_s=5, mean_s=20))
    parts = Partitions.draw(spec, 3600 * S, random.Random(7))
    assert 20 < len(parts.starts) < 120
    assert all(end - start >= 5 * S for start, end in zip(parts.starts, parts.ends, strict=True))


def test_split_frames_cuts_a_session_stream_into_frames() -> None:
    frames = [codec.frame(b"x" * n) for n in (1, 300, 0)]
    assert split_frames(b"".join(frames)) == frames


def _deliveries(spec: NetworkSpec, n: int, seed: int) -> tuple[list[int], SimLink]:
    kernel = Kernel()
    arrived: list[int] = []
    link = SimLink(
        kernel,
        spec,
        Partitions((), ()),
        random.Random(seed),
        lambda frame: arrived.append(kernel.now),
    )
    for _ in range(n):
        link.send(codec.frame(b"m"))
    kernel.run(10 * S)
    return arrived, link


def test_loss_and_duplication_rates_match_the_spec() -> None:
    arrived, link = _deliveries(NetworkSpec(loss=0.2, duplicate=0.1), 20_000, seed=3)
    assert abs(link.stats.lost / 20_000 - 0.2) < 0.015
    assert abs(link.stats.duplicated / (20_000 - link.stats.lost) - 0.1) < 0.015
    assert len(arrived) == 20_000 - link.stats.lost + link.stats.duplicated
    assert link.stats.in_flight == 0


def test_delay_is_the_one_way_time_plus_jitter() -> None:
    arrived, _ = _deliveries(NetworkSpec(one_way_ms=55, jitter_ms=0), 10, seed=1)
    assert arrived == [55_000] * 10
    arrived, _ = _deliveries(NetworkSpec(one_way_ms=55, jitter_ms=4), 5000, seed=1)
    assert min(arrived) >= 55_000
    assert 3_500 < sum(a - 55_000 for a in arrived) / len(arrived) < 4_500
