"""The mapping file: which CoT events are our own assets, which are foreign tracks, which
are ignored. Anything it does not name is skipped ("unmapped"): only what a person put
in the file crosses into the hotline.

    own:                       # -> our registry (answers) and telemetry to the peer
      - type: "a-f-A-*"        # CoT type, `*` matches any run of characters
        uid: "PRC-RS-*"        # and/or uid; a rule needs at least one of them
        kind: recon_swarm
        mission: reconnaissance
        armed: false
        intent: withdrawing
        share: telemetry       # or `answers`: registry only, never streamed to the peer
    foreign:                   # -> observations: asked about, fed to the gate
      - type: "a-h-*"
        looks_like: strike_package
    ignore:                    # checked first: these never cross, whatever else matches
      - uid: "ANDROID-*"

Read with the project's hardened YAML loader, so an error names the file and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from clearline.errors import InputFileError
from clearline.protocol.constants import MAX_ID_LENGTH
from clearline.protocol.messages import (
    AssetKind,
    AssetRecord,
    AutonomyMode,
    Intent,
    Mission,
    Position,
    TrackReport,
)
from clearline.sourcemap import load_yaml, read_text, validate
from clearline.tak.cot import CotEvent, Skipped

MAX_RULES = 1024
"""Rules in one list: a mapping is written by a person, not generated per track."""

_IDENT = re.compile(rf"[A-Za-z0-9._:/-]{{1,{MAX_ID_LENGTH}}}")


class MappingError(InputFileError):
    """A CoT mapping file is invalid."""


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    type: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.*-]{1,64}$")
    """A CoT type, `*` for any run of characters (`a-f-A-*`)."""
    uid: str | None = Field(default=None, pattern=r"^[!-~]{1,256}$")
    """An event uid, `*` for any run of characters."""

    @model_validator(mode="after")
    def _selects(self) -> _Rule:
        if self.type is None and self.uid is None:
            raise ValueError("a rule needs `type`, `uid` or both")
        return self

    def matches(self, event: CotEvent) -> bool:
        return (self.type is None or _glob(self.type).fullmatch(event.type) is not None) and (
            self.uid is None or _glob(self.uid).fullmatch(event.uid) is not None
        )


class OwnRule(_Rule):
    kind: AssetKind
    mission: Mission
    armed: bool
    autonomy: AutonomyMode = AutonomyMode.AUTONOMOUS
    intent: Intent = Intent.TRANSITING
    share: Literal["telemetry", "answers"] = "telemetry"
    """`telemetry`: registry and telemetry to the peer, as POST /v1/telemetry does;
    `answers`: registry only, so the peer learns of it only by asking (under the node's
    disclosure policy)."""


class ForeignRule(_Rule):
    looks_like: AssetKind = AssetKind.UNKNOWN
    count: int = Field(default=1, ge=1, le=100_000)


class IgnoreRule(_Rule):
    pass


class Mapping(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    own: tuple[OwnRule, ...] = Field(default=(), max_length=MAX_RULES)
    foreign: tuple[ForeignRule, ...] = Field(default=(), max_length=MAX_RULES)
    ignore: tuple[IgnoreRule, ...] = Field(default=(), max_length=MAX_RULES)


_GLOBS: dict[str, re.Pattern[str]] = {}


def _glob(pattern: str) -> re.Pattern[str]:
    compiled = _GLOBS.get(pattern)
    if compiled is None:
        # Patterns come from the mapping file only, so this cache is as small as the file.
        compiled = re.compile(".*".join(re.escape(p) for p in pattern.split("*")), re.DOTALL)
        _GLOBS[pattern] = compiled
    return compiled


@dataclass(frozen=True, slots=True)
class Own:
    record: AssetRecord
    intent: Intent
    share: Literal["telemetry", "answers"]


@dataclass(frozen=True, slots=True)
class Foreign:
    track: TrackReport
    event: CotEvent


@dataclass(frozen=True, slots=True)
class Withdraw:
    """An own asset whose event says it is stale: no longer ours to answer for."""

    asset_id: str


Routed = Own | Foreign | Withdraw | Skipped


def _position(event: CotEvent) -> Position:
    alt = 0 if event.hae >= 9_999_999 else max(-20_000, min(100_000_000, round(event.hae)))
    return Position(round(event.lat * 1e6), round(event.lon * 1e6), alt)


def route(mapping: Mapping, event: CotEvent, now_us: int) -> Routed:
    """Where one event goes. A stale own asset is withdrawn; a stale foreign track skipped."""
    if any(rule.matches(event) for rule in mapping.ignore):
        return Skipped("unmapped", "matched an ignore rule")
    own = next((rule for rule in mapping.own if rule.matches(event)), None)
    foreign = None if own else next((r for r in mapping.foreign if r.matches(event)), None)
    if own is None and foreign is None:
        return Skipped("unmapped", f"no rule for type {event.type}")
    if not _IDENT.fullmatch(event.uid):
        return Skipped("bad-uid", f"uid must be 1-{MAX_ID_LENGTH} of A-Z a-z 0-9 . _ : / -")
    stale = event.stale_us <= now_us
    if own is not None:
        if stale:
            return Withdraw(event.uid)
        record = AssetRecord(
            event.uid,
            own.kind,
            own.mission,
            own.armed,
            own.autonomy,
            min(event.time_us, now_us),
            position=_position(event),
        )
        return Own(record, own.intent, own.share)
    assert foreign is not None
    if stale:
        return Skipped("stale", f"stale since {event.stale_us}")
    heading = None if event.course is None else round(event.course) % 360
    speed = None if event.speed is None else min(100_000, round(event.speed))
    track = TrackReport(
        event.uid,
        _position(event),
        min(event.time_us, now_us),
        foreign.looks_like,
        foreign.count,
        heading,
        speed,
    )
    return Foreign(track, event)


def parse_mapping(text: str, source: str) -> Mapping:
    data, lines = load_yaml(text, source, MappingError)
    if not isinstance(data, dict):
        raise MappingError("expected a mapping with own, foreign and ignore lists", source, 1)
    return validate(Mapping, data, lines, source, MappingError)


def load_mapping(path: Path) -> Mapping:
    return parse_mapping(read_text(path, "CoT mapping", MappingError), str(path))
