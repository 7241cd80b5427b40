"""Reading input files from disk (kept out of the pure core)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from clearline.errors import PolicyError
from clearline.gate.authority import Roster, RosterError, empty_roster, parse_roster
from clearline.gate.policy import DEFAULT_POLICY_NAME, Policy, parse_policy
from clearline.sourcemap import load_yaml, read_text


def load_policy(path: Path) -> Policy:
    """A policy file from disk; one that changes the default may not keep the default's name."""
    text = read_text(path, "policy file", PolicyError)
    policy = parse_policy(text, str(path))
    if policy.name == DEFAULT_POLICY_NAME and policy.hash != default_policy().hash:
        line = load_yaml(text, str(path), PolicyError)[1].line_of(("name",))
        raise PolicyError(
            f"this policy differs from the shipped default but keeps its name "
            f"{DEFAULT_POLICY_NAME!r}; expected a name of its own",
            str(path),
            line,
        )
    return policy


def read_roster(path: Path) -> Roster:
    """A roster file, whichever side it names (for audits)."""
    return parse_roster(read_text(path, "roster file", RosterError), str(path))


def load_roster(path: Path | None, side: str) -> Roster:
    """The side's authority roster; without a file, no officer: nothing can be human."""
    if path is None:
        return empty_roster(side)
    roster = read_roster(path)
    if roster.side != side:
        raise RosterError(
            f"the roster enrols officers of side {roster.side!r}, not {side!r}",
            str(path),
        )
    return roster


def default_policy_text() -> str:
    return resources.files("clearline.gate").joinpath("default_policy.yaml").read_text("utf-8")


def default_policy() -> Policy:
    return parse_policy(default_policy_text(), "clearline/gate/default_policy.yaml")
