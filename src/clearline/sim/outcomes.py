"""What Monte Carlo compares: the arms, and what one episode of one arm came to."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any


class Arm(StrEnum):
    """One configuration compared in Monte Carlo."""

    NONE = "none"
    ANALOG = "analog"
    HOTLINE = "hotline"
    HOTLINE_GATE = "hotline+gate"
    GATE = "gate"

    @property
    def hotline(self) -> bool:
        return self in (Arm.HOTLINE, Arm.HOTLINE_GATE)

    @property
    def gate(self) -> bool:
        return self in (Arm.GATE, Arm.HOTLINE_GATE)

    @property
    def analog(self) -> bool:
        return self is Arm.ANALOG


ARMS: tuple[Arm, ...] = tuple(Arm)


class InvariantError(AssertionError):
    """A promise the system makes was broken inside the simulation: a bug, never a result."""


@dataclass
class Outcome:
    episode: int
    arm: str
    peak_rung_a: int = 1
    peak_rung_b: int = 1
    escalation_score: int = 0
    kinetic_actions: int = 0
    first_kinetic_s: float = math.nan
    first_human_s: float = math.nan
    kinetic_before_any_human: bool = False
    """A kinetic act, by either side, before the first human decision on either side."""
    kinetic_before_own_human_a: bool = False
    """The first side acted kinetically before its own commander decided (or never did)."""
    kinetic_before_own_human_b: bool = False
    fired_first_a: bool = False
    """The first kinetic act of the episode was the first side's."""
    fired_first_b: bool = False
    escalation_score_a: int = 0
    """The scores of the rungs the first side acted on, summed."""
    escalation_score_b: int = 0
    excluded_attempts: int = 0
    excluded_allowed: int = 0
    excluded_unguarded: int = 0
    nuclear_use: bool = False
    false_reassurance: bool = False
    reassurance_delay_s: float = math.nan
    cleared_by_hotline: bool = False
    tracks_engaged: int = 0
    tracks_cleared: int = 0
    clarifications_answered: int = 0
    clarifications_expired: int = 0
    messages_sent: int = 0
    messages_lost: int = 0
    forged_injected: int = 0
    forged_accepted: int = 0
    ended_s: float = 0.0

    def row(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in OUTCOME_COLUMNS)


OUTCOME_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Outcome))
"""One row per episode, in this order (Parquet columns and the Python API's data frame)."""
