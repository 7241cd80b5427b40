"""What each side fears: threat categories, per-side weights, and the weighted threat of a track.

The two default profiles differ on purpose. The US profile weighs threats to
nuclear command and control, critical infrastructure and biosecurity highest;
the PRC profile weighs surveillance near its coast and information operations
highest. The same sighting therefore reads differently on each side, which is
half of how a misreading becomes a cascade.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from clearline.doctrine.responses import BASE_THREAT
from clearline.protocol.messages import AssetKind


class Category(StrEnum):
    SURVEILLANCE = "surveillance"
    STRIKE = "strike"
    NUCLEAR_C2 = "nuclear-c2"
    INFRASTRUCTURE = "infrastructure"
    BIOSECURITY = "biosecurity"
    INFORMATION_OPERATIONS = "information-operations"
    SPACE = "space"


CATEGORY_OF_KIND: dict[AssetKind, Category] = {
    AssetKind.RECON_SWARM: Category.SURVEILLANCE,
    AssetKind.UNCREWED_AIRCRAFT: Category.SURVEILLANCE,
    AssetKind.SURFACE_VESSEL: Category.SURVEILLANCE,
    AssetKind.STRIKE_PACKAGE: Category.STRIKE,
    AssetKind.CREWED_AIRCRAFT: Category.STRIKE,
    AssetKind.INTERCEPTOR: Category.STRIKE,
    AssetKind.CRUISE_MISSILE: Category.STRIKE,
    AssetKind.SUBMARINE: Category.STRIKE,
    AssetKind.GROUND_UNIT: Category.STRIKE,
    AssetKind.UNKNOWN: Category.STRIKE,
    AssetKind.BALLISTIC_MISSILE: Category.NUCLEAR_C2,
    AssetKind.SATELLITE: Category.SPACE,
    AssetKind.CYBER_ACTOR: Category.INFRASTRUCTURE,
}
"""The category a track of each kind threatens, unless a scenario says otherwise."""

RESPONSE_DOMAIN: dict[Category, str] = {
    Category.NUCLEAR_C2: "nuclear-c2",
    Category.INFRASTRUCTURE: "cyber",
    Category.INFORMATION_OPERATIONS: "cyber",
    Category.SPACE: "space",
}
"""The gate domain an answer to each category falls in; anything else is `air`."""

DEFAULT_WEIGHTS: dict[str, dict[Category, float]] = {
    "US": {
        Category.NUCLEAR_C2: 1.5,
        Category.INFRASTRUCTURE: 1.4,
        Category.BIOSECURITY: 1.4,
        Category.STRIKE: 1.0,
        Category.SPACE: 1.1,
        Category.SURVEILLANCE: 0.9,
        Category.INFORMATION_OPERATIONS: 0.9,
    },
    "PRC": {
        Category.SURVEILLANCE: 1.4,
        Category.INFORMATION_OPERATIONS: 1.4,
        Category.NUCLEAR_C2: 1.3,
        Category.STRIKE: 1.0,
        Category.SPACE: 1.1,
        Category.INFRASTRUCTURE: 1.0,
        Category.BIOSECURITY: 0.9,
    },
}
"""Default threat weights by side name; a side not listed here weighs everything 1.0."""


def default_weights(side: str) -> dict[Category, float]:
    return dict(DEFAULT_WEIGHTS.get(side, dict.fromkeys(Category, 1.0)))


def weighted_threat(
    kind: AssetKind, category: Category, weights: Mapping[Category, float]
) -> float:
    """The threat a side reads into a track it believes is `kind`, in [0, 1]."""
    return min(1.0, BASE_THREAT[kind] * weights.get(category, 1.0))
