"""Policies whose ladders differ from the default's in names, or at the bottom."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import yaml

from clearline.config import default_policy_text
from clearline.gate.policy import Policy, parse_policy

RENAMED: Mapping[str, str] = {
    "stand-down": "withdraw",
    "monitor": "watch",
    "posture": "shadow",
    "disrupt": "jam",
    "intercept-uncrewed": "down-drones",
    "strike": "destroy",
    "nuclear": "last-resort",
}
"""Every rung of the default ladder under another name (none that says nuclear)."""


def ladder_policy_text(
    name: str,
    renamed: Mapping[str, str] = RENAMED,
    *,
    drop: Collection[str] = (),
    scores: Mapping[str, int] | None = None,
) -> str:
    """The default policy with its rungs renamed (caps included), some dropped, some rescored
    (by their new names)."""
    data: dict[str, Any] = yaml.safe_load(default_policy_text())
    data["name"] = name
    ladder = []
    for rung in data["ladder"]:
        if rung["name"] in drop:
            continue
        new = renamed.get(rung["name"], rung["name"])
        ladder.append({**rung, "name": new, "score": (scores or {}).get(new, rung["score"])})
    data["ladder"] = ladder
    data["autonomy_cap"] = renamed.get(data["autonomy_cap"], data["autonomy_cap"])
    data["fail_safe"] = {k: renamed.get(v, v) for k, v in data["fail_safe"].items()}
    return yaml.safe_dump(data, sort_keys=False)


def ladder_policy(name: str, renamed: Mapping[str, str] = RENAMED, **edits: Any) -> Policy:
    """`ladder_policy_text`, loaded."""
    return parse_policy(ladder_policy_text(name, renamed, **edits), name)
