"""The simulated world: where things are, how sensors see them, what a side believes."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from clearline.doctrine.threat import Category
from clearline.protocol.messages import Answer, Micros, Position, TrackReport
from clearline.sim.scenario import AssetSpec

S = 1_000_000
METRES_PER_DEGREE = 111_320.0


def moved(
    position: tuple[float, float, float], velocity: tuple[float, float], dt_s: float
) -> Position:
    lat, lon, alt = position
    east, north = velocity
    lat2 = lat + north * dt_s / METRES_PER_DEGREE
    lon2 = lon + east * dt_s / (METRES_PER_DEGREE * max(0.01, math.cos(math.radians(lat))))
    return Position(round(lat2 * 1e6), round(lon2 * 1e6), round(alt))


GOLDEN_ANGLE = math.pi * (3.0 - math.sqrt(5.0))


def spread(
    centre: tuple[float, float, float], radius_m: float, n: int
) -> list[tuple[float, float, float]]:
    """`n` points over a disc of `radius_m` around `centre`, evenly (Vogel's sunflower
    spiral): a swarm's formation, the same in every episode, so that only what the sensors
    and the model draw differs from one episode to the next."""
    lat, lon, alt = centre
    metres_per_lon = METRES_PER_DEGREE * max(0.01, math.cos(math.radians(lat)))
    points = []
    for k in range(n):
        r = radius_m * math.sqrt((k + 0.5) / n)
        angle = k * GOLDEN_ANGLE
        north = lat + r * math.sin(angle) / METRES_PER_DEGREE
        east = lon + r * math.cos(angle) / metres_per_lon
        if not -180.0 <= east <= 180.0:
            east = (east + 180.0) % 360.0 - 180.0
        points.append((max(-90.0, min(90.0, north)), east, alt))
    return points


def jittered(position: Position, sigma_m: float, rng: random.Random) -> Position:
    if sigma_m <= 0:
        return position
    dlat = rng.gauss(0.0, sigma_m) / METRES_PER_DEGREE
    dlon = rng.gauss(0.0, sigma_m) / (
        METRES_PER_DEGREE * max(0.01, math.cos(math.radians(position.lat_e6 / 1e6)))
    )
    return Position(
        max(-90_000_000, min(90_000_000, position.lat_e6 + round(dlat * 1e6))),
        max(-180_000_000, min(180_000_000, position.lon_e6 + round(dlon * 1e6))),
        position.alt_m,
    )


@dataclass(eq=False)
class Track:
    """What one side believes about one thing its sensors show."""

    track_id: str
    report: TrackReport
    owner: str | None
    """Whose assets a hostile act against this track lands on (None: nobody's)."""
    asset: AssetSpec | None
    category: Category
    domain: str
    model_score: float
    true_score: float
    answer: Answer | None = None
    confirmed: bool = False
    query_seq: int | None = None
    acted: int = 0
    """Ladder index of the highest action taken against it so far."""
    held_kinetic: bool = False
    reacted: bool = False
    """Autonomy's reaction time has passed: changes of belief now act at once."""
    reassured_at: Micros | None = None
    lied_to: bool = False
    stopped: bool = False
    """A real attack was intercepted."""
    sensed: bool = True
    """Shown by the side's sensors; False for the attacker's forces, the target a
    counter-response is aimed at."""
    engaged: bool = False
    """Some kinetic act was taken against it."""
