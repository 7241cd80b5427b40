"""The event kernel: time order, then priority, then scheduling order; never backwards."""

from __future__ import annotations

import pytest

from clearline.sim.kernel import Kernel


def test_simultaneous_events_run_by_priority_then_schedule_order() -> None:
    kernel = Kernel()
    seen: list[str] = []
    kernel.at(10, lambda: seen.append("b"))
    kernel.at(10, lambda: seen.append("c"))
    kernel.at(10, lambda: seen.append("a"), priority=-1)
    kernel.at(5, lambda: kernel.after(5, lambda: seen.append("d")))
    kernel.run(until=10)
    assert seen == ["a", "b", "c", "d"]
    assert kernel.now == 10


def test_run_stops_at_until_and_keeps_later_events() -> None:
    kernel = Kernel()
    seen: list[int] = []
    for t in (3, 7, 12):
        kernel.at(t, lambda t=t: seen.append(t))
    kernel.run(until=8)
    assert (seen, kernel.now) == ([3, 7], 8)
    kernel.run(until=20)
    assert seen == [3, 7, 12]


def test_scheduling_in_the_past_is_refused() -> None:
    kernel = Kernel(now=100)
    with pytest.raises(ValueError, match="before now"):
        kernel.at(99, lambda: None)
