"""A small deterministic discrete-event kernel (in the manner of SimPy's core).

A heap of (time, priority, counter, callback): the counter makes simultaneous
events run in the order they were scheduled, so a run is a pure function of
its inputs. Time is integer microseconds, like everywhere in clearline.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from clearline.protocol.messages import Micros

Callback = Callable[[], None]


class Clock(Protocol):
    """What the episode model needs from an event engine (the benchmark plugs SimPy in)."""

    @property
    def now(self) -> Micros: ...

    def at(self, when: Micros, callback: Callback, priority: int = 0) -> None: ...

    def stop(self) -> None: ...

    def run(self, until: Micros) -> None: ...


@dataclass(slots=True)
class Kernel:
    now: Micros = 0
    _queue: list[tuple[Micros, int, int, Callback]] = field(default_factory=list)
    _counter: int = 0
    _stopped: bool = False

    def at(self, when: Micros, callback: Callback, priority: int = 0) -> None:
        if when < self.now:
            raise ValueError(f"cannot schedule at {when}, before now ({self.now})")
        counter = self._counter
        heapq.heappush(self._queue, (when, priority, counter, callback))
        self._counter = counter + 1

    def after(self, delay: Micros, callback: Callback, priority: int = 0) -> None:
        self.at(self.now + delay, callback, priority)

    def stop(self) -> None:
        """End the current (or next) `run` after the event that is running now."""
        self._stopped = True

    @property
    def pending(self) -> int:
        return len(self._queue)

    @property
    def scheduled(self) -> int:
        """Events scheduled so far, run or not."""
        return self._counter

    def run(self, until: Micros) -> None:
        """Run every event due up to and including `until` (the clock then reads `until`),
        or until `stop()` is called (the clock then reads the time of the last event)."""
        queue = self._queue
        pop = heapq.heappop
        if not self._stopped:
            while queue and queue[0][0] <= until:
                when, _, _, callback = pop(queue)
                self.now = when
                callback()
                if self._stopped:
                    break
        if self._stopped:
            self._stopped = False
            return
        self.now = max(self.now, until)
