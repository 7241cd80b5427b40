"""A simulated hotline path: delay, jitter, loss, duplication, reordering and partitions.

In the style of TigerBeetle's packet simulator: each frame is delivered, lost,
duplicated or delayed independently, from the link's own random stream, and a
partition (jamming, a cable cut) drops everything in both directions while it
lasts. Frames are the unit: a simulated path loses whole messages, which is what
the Session must survive (a TCP path turns loss into delay; the simulator shows
the harder case).
"""

from __future__ import annotations

import bisect
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass

from clearline.protocol.messages import Micros
from clearline.sim.kernel import Clock
from clearline.sim.scenario import NetworkSpec

S = 1_000_000
MS = 1_000

ROUTES_ONE_WAY_MS: dict[str, float] = {
    "washington-beijing-fibre": 55.0,
    "washington-beijing-vacuum": 37.0,
    "geostationary-relay": 270.0,
}
"""Reference one-way delays (docs/scenarios.md gives the sources)."""


@dataclass(frozen=True, slots=True)
class Partitions:
    """Sorted, non-overlapping [start, end) intervals during which the path carries nothing."""

    starts: tuple[Micros, ...]
    ends: tuple[Micros, ...]

    def blocked(self, now: Micros) -> bool:
        i = bisect.bisect_right(self.starts, now) - 1
        return i >= 0 and now < self.ends[i]

    @classmethod
    def draw(cls, spec: NetworkSpec, horizon: Micros, rng: random.Random) -> Partitions:
        intervals = [(int(p.at_s * S), int((p.at_s + p.duration_s) * S)) for p in spec.partitions]
        rp = spec.random_partitions
        if rp is not None and rp.rate_per_hour > 0:
            t = 0.0
            rate_per_s = rp.rate_per_hour / 3600.0
            while True:
                t += rng.expovariate(rate_per_s)
                if t * S >= horizon:
                    break
                extra = rp.mean_s - rp.min_s
                duration = rp.min_s + (rng.expovariate(1.0 / extra) if extra > 0 else 0.0)
                intervals.append((int(t * S), int((t + duration) * S)))
        merged: list[tuple[Micros, Micros]] = []
        for start, end in sorted(intervals):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return cls(tuple(s for s, _ in merged), tuple(e for _, e in merged))


_LENGTH = struct.Struct(">I")


def split_frames(data: bytes) -> list[bytes]:
    """Cut a Session's outgoing bytes into whole frames (length prefix included)."""
    frames = []
    offset = 0
    while offset < len(data):
        (length,) = _LENGTH.unpack_from(data, offset)
        end = offset + 4 + length
        frames.append(data[offset:end])
        offset = end
    return frames


@dataclass(slots=True)
class LinkStats:
    sent: int = 0
    lost: int = 0
    duplicated: int = 0
    in_flight: int = 0


class SimLink:
    """One direction of the path; `deliver` is called with each frame that arrives."""

    __slots__ = ("_deliver", "_kernel", "_partitions", "_rng", "_spec", "connection", "stats")

    def __init__(
        self,
        kernel: Clock,
        spec: NetworkSpec,
        partitions: Partitions,
        rng: random.Random,
        deliver: Callable[[bytes], None],
    ) -> None:
        self._kernel = kernel
        self._spec = spec
        self._partitions = partitions
        self._rng = rng
        self._deliver = deliver
        self.stats = LinkStats()
        self.connection = 0
        """Which connection the path carries: frames of an earlier one still in flight when
        it ended are dropped on arrival, as a closed TCP connection's are."""

    def cut(self) -> None:
        """The connection ends: what it still has in flight never arrives."""
        self.connection += 1

    def blocked(self) -> bool:
        """Whether the path is partitioned now (a dial now fails)."""
        return bool(self._partitions.starts) and self._partitions.blocked(self._kernel.now)

    def send(self, data: bytes) -> None:
        spec = self._spec
        rng = self._rng
        now = self._kernel.now
        for frame in split_frames(data):
            self.stats.sent += 1
            if self._partitions.starts and self._partitions.blocked(now):
                self.stats.lost += 1
                continue
            if spec.loss and rng.random() < spec.loss:
                self.stats.lost += 1
                continue
            copies = 2 if spec.duplicate and rng.random() < spec.duplicate else 1
            self.stats.duplicated += copies - 1
            for _ in range(copies):
                delay_ms = spec.one_way_ms
                if spec.jitter_ms:
                    delay_ms += rng.expovariate(1.0 / spec.jitter_ms)
                if spec.reorder and rng.random() < spec.reorder:
                    delay_ms += rng.uniform(0.0, spec.reorder_ms)
                self.stats.in_flight += 1
                self._kernel.at(now + int(delay_ms * MS), self._arrival(frame))

    def _arrival(self, frame: bytes) -> Callable[[], None]:
        connection = self.connection

        def arrive() -> None:
            self.stats.in_flight -= 1
            # A partition that starts while a frame is in flight drops it too.
            if self._partitions.starts and self._partitions.blocked(self._kernel.now):
                self.stats.lost += 1
                return
            if connection != self.connection:
                self.stats.lost += 1
                return
            self._deliver(frame)

        return arrive
