"""Reading input files from disk (kept out of the pure core)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from clearline.errors import PolicyError
from clearline.gate.policy import Policy, parse_policy


def load_policy(path: Path) -> Policy:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read the policy file: {exc.strerror}", str(path)) from None
    return parse_policy(text, str(path))


def default_policy_text() -> str:
    return resources.files("clearline.gate").joinpath("default_policy.yaml").read_text("utf-8")


def default_policy() -> Policy:
    return parse_policy(default_policy_text(), "clearline/gate/default_policy.yaml")
