"""A small deterministic discrete-event kernel (in the manner of SimPy's core).

A heap of (time, priority, counter, callback): the counter makes simultaneous
events run in the order they were scheduled, so a run is a pure function of
its inputs. Time is integer microseconds, like everywhere in clearline.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

from clearline.protocol.messages import Micros

Callback = Callable[[], None]


@dataclass
class Kernel:
    now: Micros = 0
    _queue: list[tuple[Micros, int, int, Callback]] = field(default_factory=list)
    _counter: int = 0

    def at(self, when: Micros, callback: Callback, priority: int = 0) -> None:
        if when < self.now:
            raise ValueError(f"cannot schedule at {when}, before now ({self.now})")
        heapq.heappush(self._queue, (when, priority, self._counter, callback))
        self._counter += 1

    def after(self, delay: Micros, callback: Callback, priority: int = 0) -> None:
        self.at(self.now + delay, callback, priority)

    def run(self, until: Micros) -> None:
        """Run every event due up to and including `until`; the clock ends at `until`."""
        while self._queue and self._queue[0][0] <= until:
            when, _, _, callback = heapq.heappop(self._queue)
            self.now = when
            callback()
        self.now = max(self.now, until)
