"""Scenario files: what the simulated world holds, validated with file:line errors.

A scenario is YAML. Every parameter has a default that docs/scenarios.md
justifies; a scenario states only what differs. The JSON Schema published in
docs/scenario.schema.json is generated from these models (a test keeps it
current), so an analyst's editor can check a file before the simulator does.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping
from dataclasses import replace
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from clearline.config import default_policy, load_policy
from clearline.doctrine.responses import (
    DEFAULT_THRESHOLDS,
    Thresholds,
    heaviest_open_kinetic,
    not_a_rung,
    nuclear_rung,
)
from clearline.doctrine.threat import Category
from clearline.errors import ScenarioError
from clearline.gate.policy import Policy
from clearline.protocol.constants import MAX_ID_LENGTH
from clearline.protocol.messages import AssetKind, Intent, Micros, Mission
from clearline.protocol.session import SessionConfig
from clearline.sourcemap import LineMap, checker, load_yaml, read_text, validate

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Seconds = Annotated[float, Field(ge=0.0, le=1e7)]
Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
SideName = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9]{0,15}$")]


class _Spec(BaseModel):
    # Each setting's docstring is its description: in the JSON Schema, and in the error
    # that names it when it is missing or wrong.
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


S = 1_000_000
"""Microseconds in a second: a delay is drawn in seconds and used in microseconds."""
MAX_DELAY_S = 1e7


class _DelaySpec(_Spec):
    """What every kind of delay has: a `type`, and one way to draw it."""

    type: str

    def draw(self, rng: random.Random) -> Micros:
        """One delay in microseconds, drawn from `rng` (the only randomness it uses)."""
        raise NotImplementedError

    @model_validator(mode="before")
    @classmethod
    def _settings_of_this_type(cls, data: Any) -> Any:
        """A setting of another type of delay is named as such, with the type that has it,
        rather than as an unknown input."""
        if not isinstance(data, dict):
            return data
        own = cls.model_fields
        kind = next((name for name, spec in DELAY_TYPES.items() if spec is cls), cls.__name__)
        for key in data:
            if key in own or not isinstance(key, str):
                continue
            others = [name for name, spec in DELAY_TYPES.items() if key in spec.model_fields]
            if others:
                settings = ", ".join(k for k in own if k != "type")
                raise ValueError(
                    f"{key} is a setting of {' and '.join(others)} delays, not of {kind} "
                    f"ones ({settings}); to use another type, state `type:` and its settings"
                )
        return data


class LognormalDelay(_DelaySpec):
    """A lognormal delay: `median_s` times exp(`sigma` times a standard normal draw). The
    default type: `{median_s: 180, sigma: 0.6}` needs no `type`."""

    type: Literal["lognormal"] = "lognormal"
    median_s: float = Field(gt=0.0, le=MAX_DELAY_S)
    sigma: float = Field(default=0.5, ge=0.0, le=5.0)

    def draw(self, rng: random.Random) -> Micros:
        return int(self.median_s * math.exp(self.sigma * rng.gauss(0.0, 1.0)) * S)


class FixedDelay(_DelaySpec):
    """Always `value_s`; draws nothing from its stream."""

    type: Literal["fixed"]
    value_s: float = Field(ge=0.0, le=MAX_DELAY_S)

    def draw(self, rng: random.Random) -> Micros:
        return int(self.value_s * S)


class ExponentialDelay(_DelaySpec):
    """Exponential with mean `mean_s`: memoryless, as the time to the next of many
    independent arrivals."""

    type: Literal["exponential"]
    mean_s: float = Field(gt=0.0, le=MAX_DELAY_S)

    def draw(self, rng: random.Random) -> Micros:
        return int(rng.expovariate(1.0 / self.mean_s) * S)


class GammaDelay(_DelaySpec):
    """Gamma with mean `mean_s` and `shape` k (scale `mean_s` / k): the sum of k exponential
    stages; k = 1 is exponential, a larger k is less spread (coefficient of variation
    1 / sqrt(k))."""

    type: Literal["gamma"]
    mean_s: float = Field(gt=0.0, le=MAX_DELAY_S)
    shape: float = Field(gt=0.0, le=1e4)

    def draw(self, rng: random.Random) -> Micros:
        return int(rng.gammavariate(self.shape, self.mean_s / self.shape) * S)


class EmpiricalDelay(_DelaySpec):
    """One of `values_s`, each as likely (resampling what was observed); `source` says where
    they were observed."""

    type: Literal["empirical"]
    values_s: list[Annotated[float, Field(ge=0.0, le=MAX_DELAY_S)]] = Field(
        min_length=1, max_length=100_000
    )
    source: str = Field(min_length=1, max_length=1000, pattern=r"\S")
    """Where the values were observed (a report, a data set, an exercise)."""

    def draw(self, rng: random.Random) -> Micros:
        return int(self.values_s[rng.randrange(len(self.values_s))] * S)


DELAY_TYPES: Mapping[str, type[_DelaySpec]] = MappingProxyType(
    {
        "lognormal": LognormalDelay,
        "fixed": FixedDelay,
        "exponential": ExponentialDelay,
        "gamma": GammaDelay,
        "empirical": EmpiricalDelay,
    }
)


def _delay_type(value: Any) -> str | None:
    """Which type of delay `value` is: its `type`, lognormal when it states none."""
    if isinstance(value, dict):
        kind = value.get("type", "lognormal")
        return kind if isinstance(kind, str) else None
    kind = getattr(value, "type", None)
    return kind if isinstance(kind, str) else None


Delay = Annotated[
    Annotated[LognormalDelay, Tag("lognormal")]
    | Annotated[FixedDelay, Tag("fixed")]
    | Annotated[ExponentialDelay, Tag("exponential")]
    | Annotated[GammaDelay, Tag("gamma")]
    | Annotated[EmpiricalDelay, Tag("empirical")],
    Discriminator(
        _delay_type,
        custom_error_type="delay_type",
        custom_error_message="expected a delay: {median_s, sigma} (lognormal), or `type:` "
        "lognormal, fixed (value_s), exponential (mean_s), gamma (mean_s, shape) or "
        "empirical (values_s, source)",
    ),
]
"""A delay of any type; a mapping without `type` is lognormal."""


THRESHOLD_DEFAULTS: Mapping[str, float] = MappingProxyType({**DEFAULT_THRESHOLDS, "nuclear": 0.9})
"""A side's thresholds by rung, for the rungs of its policy's ladder that have these names:
the doctrine's defaults, and the belief from which a track in nuclear C2 is taken for a
nuclear attack."""
OLD_THRESHOLD_NAMES: Mapping[str, str] = MappingProxyType({"intercept": "intercept-uncrewed"})
"""Threshold keys from before thresholds were named by rung, and the rung each stands for."""


class ModelSpec(_Spec):
    """The side's predictive model: where misreadings come from."""

    confusion: dict[AssetKind, dict[AssetKind, Probability]] = {}
    """True kind -> {kind it is read as: probability}; the rest is read correctly."""
    bias: float = Field(default=0.0, ge=-1.0, le=1.0)
    """Miscalibration: added to every threat score."""
    noise: float = Field(default=0.05, ge=0.0, le=1.0)
    """Standard deviation of the score's error per track."""
    drift_per_min: float = Field(default=0.0, ge=-1.0, le=1.0)
    """How much the bias grows per minute since the episode began (model drift in a crisis)."""

    @model_validator(mode="after")
    def _rows_sum_to_at_most_one(self) -> ModelSpec:
        for kind, row in self.confusion.items():
            if sum(row.values()) > 1.0 + 1e-9:
                raise ValueError(f"confusion row for {kind.value} sums to more than 1")
        return self


class SensorSpec(_Spec):
    detect_probability: Probability = 0.9
    """Chance that one scan detects a track that is there."""
    scan_s: float = Field(default=1.0, gt=0.0, le=3600.0)
    position_sigma_m: float = Field(default=500.0, ge=0.0, le=1e6)
    perceive_action: Delay = LognormalDelay(median_s=1.0, sigma=0.3)
    """How long until an action against one's own assets is seen."""
    confirm: Delay = LognormalDelay(median_s=60.0, sigma=0.5)
    """How long until one's own sensors can check an answer against what is there."""
    confirm_accuracy: Probability = 0.95


class DoctrineSpec(_Spec):
    threat_weights: dict[Category, float] | None = None
    """Multipliers on the base threat by category; omitted: the side's default profile."""
    thresholds: dict[Ident, Probability] = Field(
        default={},
        description="Threat score from which the doctrine proposes each rung named, over the "
        f"defaults {', '.join(f'{k} {v}' for k, v in THRESHOLD_DEFAULTS.items())} (for the "
        "rungs the policy's ladder has); `intercept` stands for `intercept-uncrewed`.",
    )
    reaction: Delay = LognormalDelay(median_s=1.0, sigma=1.0)
    """Autonomous reaction time, from a track (or a hostile act) to the effector."""
    counter_ceiling: Ident = "strike"
    """The highest rung a "proportional" counter-response climbs to."""
    hostile_from: Ident = "disrupt"
    """The lowest rung at which an act against this side's assets is taken as hostile."""
    nuclear_autonomy: Literal["alert", "launch-on-warning"] = "alert"
    """What autonomy does in nuclear C2 without a gate: only raise the alert (posture), or
    launch on warning."""
    query_ttl_s: float = Field(default=2.0, gt=0.0, le=3600.0)
    query_retries: int = Field(default=1, ge=0, le=10)
    """How many times an expired query is asked again before the side acts without an answer."""
    deception_probability: Probability = 0.0
    """Chance that the side lies about an asset on a real attack when asked about it."""
    trust_prior: tuple[float, float] = (9.0, 1.0)
    """Beta prior (truthful, lying) on the counterpart's answers."""
    lie_weight: float = Field(default=5.0, gt=0.0, le=1000.0)
    notice_trust: bool = True
    """Whether a signed notice of malfunction from the counterpart can stop a counter-response."""

    @model_validator(mode="after")
    def _positive_prior(self) -> DoctrineSpec:
        if min(self.trust_prior) <= 0:
            raise ValueError("trust_prior counts must be positive")
        for old, rung in OLD_THRESHOLD_NAMES.items():
            if old in self.thresholds and rung in self.thresholds:
                raise ValueError(f"thresholds {old!r} and {rung!r} name the same rung")
        return self

    def minimums(self, policy: Policy) -> dict[str, float]:
        """Each rung's minimum score: the defaults for the rungs `policy` has, then those
        stated."""
        defaults = {
            rung: score for rung, score in THRESHOLD_DEFAULTS.items() if rung in policy.rungs
        }
        return defaults | {OLD_THRESHOLD_NAMES.get(k, k): v for k, v in self.thresholds.items()}

    def rung_thresholds(self, policy: Policy) -> Thresholds:
        """The thresholds on `policy`'s ladder; ValueError if they do not fit it."""
        return Thresholds.on_ladder(policy, self.minimums(policy))


class HumanSpec(_Spec):
    decision: Delay = LognormalDelay(median_s=240.0, sigma=0.6)
    """From alert to the commander's first decision."""
    halt_probability: Probability = 0.9
    """Chance the commander halts autonomous responses (otherwise authorizes them)."""
    authorize_nuclear_probability: Probability = 0.0
    """Chance the commander authorizes nuclear use while still believing a nuclear attack."""


class AnalogSpec(_Spec):
    """This side as the one called: the other side's humans call when alerted."""

    answer_probability: Probability = 0.5
    """Chance this side's humans answer the other side's call."""
    connect: Delay = LognormalDelay(median_s=3600.0, sigma=1.0)
    """From the other side's call to this side's humans answering it."""


class SideSpec(_Spec):
    doctrine: DoctrineSpec = DoctrineSpec()
    model: ModelSpec = ModelSpec()
    sensor: SensorSpec = SensorSpec()
    human: HumanSpec = HumanSpec()
    analog: AnalogSpec = AnalogSpec()


class Partition(_Spec):
    at_s: Seconds
    duration_s: float = Field(gt=0.0, le=1e7)


class RandomPartitions(_Spec):
    rate_per_hour: float = Field(ge=0.0, le=3600.0)
    min_s: float = Field(default=5.0, gt=0.0)
    mean_s: float = Field(default=60.0, gt=0.0)

    @model_validator(mode="after")
    def _mean_above_min(self) -> RandomPartitions:
        if self.mean_s < self.min_s:
            raise ValueError("mean_s must be at least min_s")
        return self


class NetworkSpec(_Spec):
    """The hotline's path, per direction, in the style of TigerBeetle's packet simulator."""

    one_way_ms: float = Field(default=55.0, ge=0.0, le=1e6)
    """Washington-Beijing in fibre is about 55 ms one way; c in vacuum about 37 ms."""
    jitter_ms: float = Field(default=2.0, ge=0.0, le=1e6)
    loss: Probability = 0.0
    duplicate: Probability = 0.0
    reorder: Probability = 0.0
    reorder_ms: float = Field(default=20.0, ge=0.0, le=1e6)
    partitions: list[Partition] = []
    random_partitions: RandomPartitions | None = None


class HotlineSpec(_Spec):
    """How each side's hotline endpoint keeps its link: the node's own settings, which the
    defaults are. What a side asks, and how often it asks again, is its doctrine's
    (`query_ttl_s`, `query_retries`)."""

    hello_retry_s: float | None = Field(default=0.25, gt=0.0, le=3600.0)
    """First re-send of a Hello the peer has not shown it holds, doubling up to `heartbeat_s`;
    null: never re-sent (as on the node's TCP, where a Hello is lost only with its
    connection), so one lost Hello leaves the episode without a session."""
    heartbeat_s: float = Field(default=1.0, gt=0.0, le=3600.0)
    """A heartbeat after this much silence from our side."""
    degraded_after_s: float = Field(default=2.5, gt=0.0, le=3600.0)
    """Silence from the peer after which the link is degraded (the gate's degraded cap)."""
    down_after_s: float = Field(default=5.0, gt=0.0, le=3600.0)
    """Silence from the peer after which the link is down (the gate's down cap)."""
    handshake_timeout_s: float = Field(default=10.0, gt=0.0, le=3600.0)
    """A session whose handshake is not done by then closes (and, with `reconnect`, the
    connection is dialled again)."""
    reconnect: bool = True
    """As a node does: a session down for `close_after_down` times `down_after_s` is
    closed, as is one whose handshake timed out, and the connection is dialled again
    (first after `redial_first_s`, doubling up to `redial_max_s`, each with jitter, while
    the path is partitioned); the asks still open are asked again on the new session.
    false: a session is kept through any silence, and one that closes stays closed."""
    close_after_down: int = Field(default=3, ge=1, le=1000)
    redial_first_s: float = Field(default=0.2, gt=0.0, le=3600.0)
    redial_max_s: float = Field(default=5.0, gt=0.0, le=3600.0)

    @model_validator(mode="after")
    def _silences_in_order(self) -> HotlineSpec:
        if not self.heartbeat_s < self.degraded_after_s < self.down_after_s:
            raise ValueError(
                "expected heartbeat_s < degraded_after_s < down_after_s (got "
                f"{self.heartbeat_s:g}, {self.degraded_after_s:g}, {self.down_after_s:g})"
            )
        if self.redial_max_s < self.redial_first_s:
            raise ValueError(
                f"expected redial_first_s <= redial_max_s (got {self.redial_first_s:g}, "
                f"{self.redial_max_s:g})"
            )
        return self

    @property
    def hello_retry_us(self) -> Micros | None:
        return None if self.hello_retry_s is None else round(self.hello_retry_s * S)

    def session(self, config: SessionConfig) -> SessionConfig:
        """`config` with these settings."""
        return replace(
            config,
            heartbeat_interval_us=round(self.heartbeat_s * S),
            degraded_after_us=round(self.degraded_after_s * S),
            down_after_us=round(self.down_after_s * S),
            handshake_timeout_us=round(self.handshake_timeout_s * S),
        )


Vector3 = tuple[float, float, float]

MAX_SWARM_ELEMENTS = 8192
"""The most elements one swarm may have: a node holds at most 8,192 open clarifications by
default, and every element may need one."""


class SwarmSpec(_Spec):
    """An asset seen element by element: each element is a track of its own, which the other
    side's sensors detect and its model reads independently of the others."""

    elements: int = Field(ge=1, le=MAX_SWARM_ELEMENTS)
    spread_m: float = Field(default=2000.0, ge=0.0, le=1e6)
    """Radius around the asset's position over which its elements are spread, evenly."""


class AssetSpec(_Spec):
    id: Ident
    owner: SideName
    kind: AssetKind
    mission: Mission
    armed: bool = False
    intent: Intent = Intent.TRANSITING
    threatens: Category | None = None
    """The category this asset threatens, if not the one its kind implies."""
    position: Vector3
    """Latitude and longitude in degrees, altitude in metres, when it appears."""
    velocity_mps: tuple[float, float] = (0.0, 0.0)
    """East and north speed, for its track as it moves."""
    count: int = Field(default=1, ge=1, le=100_000)
    """How many objects one track of it shows (each element's track, for a swarm)."""
    appears_s: Seconds = 1.0
    appears_jitter_s: Seconds = 0.0
    probability: Probability = 1.0
    """Chance the asset is there at all in an episode."""
    real_attack: bool = False
    """A real attack: its owner may lie about it, and it strikes at `impact_s` unless stopped
    (a swarm strikes unless every element was stopped)."""
    impact_s: float | None = Field(default=None, gt=0.0)
    swarm: SwarmSpec | None = None
    """Track it element by element; omitted: the asset is one track."""

    def element_ids(self) -> list[str]:
        """The ids of its elements (`PRC-SW-1.007`), or its own id if it is not a swarm."""
        if self.swarm is None:
            return [self.id]
        n = self.swarm.elements
        width = len(str(n))
        return [f"{self.id}.{k:0{width}d}" for k in range(1, n + 1)]


class TrackSpoof(_Spec):
    """A track that is not there: a sensor false alarm, or a third party's spoof."""

    seen_by: SideName
    attributed_to: SideName | None = None
    """The side the track seems to belong to; a kinetic answer lands on that side's assets."""
    looks_like: AssetKind
    count: int = Field(default=1, ge=1, le=100_000)
    position: Vector3
    at_s: Seconds
    probability: Probability = 1.0
    cleared_by_sensors: Delay = LognormalDelay(median_s=120.0, sigma=0.5)
    """How long until one's own sensors show there is nothing there."""


class ForgedMessages(_Spec):
    """A third party injects forged hotline messages toward `into`."""

    into: SideName
    at_s: Seconds
    count: int = Field(default=1, ge=1, le=10_000)
    probability: Probability = 1.0


class Accident(_Spec):
    """An unintended kinetic event (the 2023 MQ-9 collision): `by`'s asset downs `victim`'s."""

    by: SideName
    victim: SideName
    victim_asset: Ident
    at_s: Seconds
    probability: Probability = 1.0
    perceived_as: Ident = "intercept-uncrewed"


class ThirdParty(_Spec):
    spoof_tracks: list[TrackSpoof] = []
    forged_messages: list[ForgedMessages] = []


SCENARIO_VERSION = 2

VERSION_CHANGES: Mapping[int, str] = MappingProxyType(
    {
        1: "in version 2, each side's analog.answer_probability and analog.connect are that "
        "side's as the one called (how likely its humans answer the other side's call, and "
        "how long they take to), where version 1 read the caller's. Move each side's values "
        "to the side that answers, then set version: 2",
    }
)
"""What changed in meaning since each older version, for the error that refuses it."""


class Scenario(_Spec):
    version: Literal[2]
    name: Ident
    title: str = Field(min_length=1, max_length=120)
    description: str = ""
    horizon_s: float = Field(default=1800.0, gt=0.0, le=1e7)
    """Each episode ends here, or earlier once nothing more can happen."""
    policy: str | None = None
    """Path to a gate policy (relative to the scenario file); omitted: the default policy."""
    sides: dict[SideName, SideSpec]
    network: NetworkSpec = NetworkSpec()
    hotline: HotlineSpec = HotlineSpec()
    assets: list[AssetSpec] = []
    false_alarms: list[TrackSpoof] = []
    third_party: ThirdParty = ThirdParty()
    accidents: list[Accident] = []

    @property
    def side_names(self) -> tuple[str, str]:
        first, second = self.sides
        return first, second


class LoadedScenario:
    """A validated scenario with the gate policy it runs under."""

    __slots__ = ("policy", "scenario", "source")

    def __init__(self, scenario: Scenario, policy: Policy, source: str) -> None:
        self.scenario = scenario
        self.policy = policy
        self.source = source

    def __reduce__(self) -> tuple[Any, ...]:
        return (LoadedScenario, (self.scenario, self.policy, self.source))


def check_scenario(
    scenario: Scenario, policy: Policy, source: str, lines: LineMap | None = None
) -> None:
    """The rules schema validation cannot see: across fields (sides, asset ids) and against
    the policy's ladder. ScenarioError names the file and, given `lines`, the line."""
    require = checker(lines or LineMap({}), source, ScenarioError)
    require(len(scenario.sides) == 2, ("sides",), "expected exactly two sides")
    sides = set(scenario.sides)
    ids: set[str] = set()
    swarm_of: dict[str, str] = {}
    for i, asset in enumerate(scenario.assets):
        require(
            asset.id not in ids,
            ("assets", i, "id"),
            f"asset id {asset.id!r} appears twice"
            if asset.id not in swarm_of
            else f"asset id {asset.id!r} is an element of swarm {swarm_of[asset.id]!r}",
        )
        ids.add(asset.id)
        if asset.swarm is not None:
            elements = asset.element_ids()
            longest = f"T-{elements[-1]}"
            require(
                len(longest) <= MAX_ID_LENGTH,
                ("assets", i, "id"),
                f"too long for a swarm of {asset.swarm.elements}: its elements' track ids "
                f"({longest!r}) would exceed {MAX_ID_LENGTH} characters",
            )
            for element in elements:
                require(
                    element not in ids,
                    ("assets", i, "id"),
                    f"element id {element!r} of swarm {asset.id!r} is already an asset id",
                )
                ids.add(element)
                swarm_of[element] = asset.id
        require(
            asset.owner in sides,
            ("assets", i, "owner"),
            f"owner {asset.owner!r} is not one of the sides {sorted(sides)}",
        )
        require(
            not asset.real_attack or asset.impact_s is not None,
            ("assets", i, "impact_s"),
            "a real attack needs impact_s",
        )
    spoofs = [("false_alarms", i, s) for i, s in enumerate(scenario.false_alarms)] + [
        ("third_party", i, s) for i, s in enumerate(scenario.third_party.spoof_tracks)
    ]
    for where, i, spoof in spoofs:
        path: tuple[str | int, ...] = (
            (where, i) if where == "false_alarms" else (where, "spoof_tracks", i)
        )
        require(spoof.seen_by in sides, (*path, "seen_by"), f"expected one of {sorted(sides)}")
        require(
            spoof.attributed_to is None
            or (spoof.attributed_to in sides and spoof.attributed_to != spoof.seen_by),
            (*path, "attributed_to"),
            "expected the other side (or nothing)",
        )
    for i, forged in enumerate(scenario.third_party.forged_messages):
        require(
            forged.into in sides,
            ("third_party", "forged_messages", i, "into"),
            f"expected one of {sorted(sides)}",
        )
    for i, accident in enumerate(scenario.accidents):
        require(
            accident.by in sides and accident.victim in sides and accident.by != accident.victim,
            ("accidents", i),
            "expected `by` and `victim` to be the two different sides",
        )
        require(
            accident.victim_asset in ids,
            ("accidents", i, "victim_asset"),
            f"no asset {accident.victim_asset!r} in assets",
        )
        require(
            accident.perceived_as in policy.rungs,
            ("accidents", i, "perceived_as"),
            f"expected a rung of the policy ladder {list(policy.rungs)}",
        )
    nuclear = nuclear_rung(policy)
    for name, side in scenario.sides.items():
        doctrine = side.doctrine
        for setting in ("counter_ceiling", "hostile_from"):
            require(
                getattr(doctrine, setting) in policy.rungs,
                ("sides", name, "doctrine", setting),
                f"expected a rung of the policy ladder {list(policy.rungs)}",
            )
        at = ("sides", name, "doctrine", "thresholds")
        for key in doctrine.thresholds:
            rung = OLD_THRESHOLD_NAMES.get(key, key)
            require(
                rung in policy.rungs,
                (*at, key),
                not_a_rung(key, policy)
                if rung == key
                else f"{key!r} stands for {rung!r}: {not_a_rung(rung, policy)}",
            )
        try:
            doctrine.rung_thresholds(policy)
        except ValueError as exc:
            require(False, at, f"{exc} (a rung not stated here keeps its default threshold)")
        require(
            nuclear in doctrine.minimums(policy),
            at,
            f"expected a threshold for {nuclear!r}, the policy's nuclear rung: the belief from "
            "which a track in nuclear C2 is taken for a nuclear attack",
        )
    require(
        heaviest_open_kinetic(policy) is not None
        or not any(asset.real_attack for asset in scenario.assets),
        ("policy",),
        "expected a kinetic rung open to autonomy: a real attack's impact is taken as the "
        "heaviest one",
    )
    for p in scenario.network.partitions:
        require(math.isfinite(p.at_s + p.duration_s), ("network", "partitions"), "expected finite")


def parse_scenario(text: str, source: str, base: Path | None = None) -> LoadedScenario:
    """Validate a scenario's text; ScenarioError names file, line and expectation."""
    data, lines = load_yaml(text, source, ScenarioError)
    if not isinstance(data, dict):
        raise ScenarioError("expected a mapping at the top level", source, 1)
    version = data.get("version")
    if isinstance(version, int) and version in VERSION_CHANGES:
        raise ScenarioError(
            f"version: scenario version {version} is no longer read: {VERSION_CHANGES[version]}",
            source,
            lines.line_of(("version",)),
        )
    scenario = validate(Scenario, data, lines, source, ScenarioError)
    if scenario.policy is None:
        policy = default_policy()
    else:
        policy_path = Path(scenario.policy)
        if not policy_path.is_absolute() and base is not None:
            policy_path = base / policy_path
        policy = load_policy(policy_path)
    check_scenario(scenario, policy, source, lines)
    return LoadedScenario(scenario, policy, source)


def shipped_scenarios() -> list[str]:
    """Names of the scenarios that ship with clearline."""
    folder = resources.files("clearline.sim").joinpath("scenarios")
    return sorted(
        entry.name.removesuffix(".yaml")
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    )


def load_scenario(name_or_path: str | Path) -> LoadedScenario:
    """Load a shipped scenario by name, or any scenario file by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        text = read_text(path, "scenario file", ScenarioError)
        return parse_scenario(text, str(path), path.parent)
    name = str(name_or_path)
    if name not in shipped_scenarios():
        raise ScenarioError(
            f"no scenario file {name!r}, and no shipped scenario of that name; "
            f"shipped: {', '.join(shipped_scenarios())}",
            name,
        )
    resource = resources.files("clearline.sim").joinpath("scenarios", f"{name}.yaml")
    return parse_scenario(resource.read_text("utf-8"), f"clearline/sim/scenarios/{name}.yaml")


def json_schema() -> str:
    """The published JSON Schema of scenario files (docs/scenario.schema.json)."""
    schema = Scenario.model_json_schema()
    _name_delays(schema)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def _name_delays(schema: dict[str, Any]) -> None:
    """Name the delay types' union once, as `Delay`, where pydantic writes it out at each
    delay."""
    one_of = [{"$ref": f"#/$defs/{spec.__name__}"} for spec in DELAY_TYPES.values()]

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("oneOf") == one_of:
                del node["oneOf"]
                node["$ref"] = "#/$defs/Delay"
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(schema)
    schema["$defs"]["Delay"] = {
        "description": "A delay: lognormal `{median_s, sigma}` when it states no `type`, or "
        "one of the types named by `type`.",
        "oneOf": one_of,
    }
