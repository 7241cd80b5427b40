"""The gate policy: its schema, its validation (file, line, expectation) and its canonical hash.

The hash is SHA-256 over the deterministic CBOR encoding of the policy's
normalised form (`Policy.canonical()`), so formatting and comments in the file
do not change it. Hello and Checkpoint carry it.
"""

from __future__ import annotations

import hashlib
import re
from functools import cached_property
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from clearline.errors import PolicyError
from clearline.protocol.codec import canonical_cbor
from clearline.sourcemap import checker, load_yaml, validate

NUCLEAR_C2 = "nuclear-c2"
"""The domain every policy must close to autonomy."""
NUCLEAR_OFFICERS = 2
"""Distinct officers every policy requires for an act in nuclear command and control."""
DEFAULT_POLICY_NAME = "clearline-default"
NUCLEAR_NAMES = re.compile(r"nuclear|nuke|atomic|thermonuclear", re.IGNORECASE)
"""A rung so named is a nuclear act and must be bound to nuclear-c2."""
"""Reserved for the shipped policy: a changed policy must not pass for it."""

Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,47}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, use_attribute_docstrings=True
    )


class Rung(_Strict):
    name: Name
    score: int = Field(ge=-100, le=100)
    kinetic: bool = False
    domain: Name | None = None
    """Every act at this rung is in this domain, whatever domain its caller names."""
    description: str = ""


class ExcludedDomain(_Strict):
    domain: Name
    human_authorizations: int = Field(ge=1, le=10)


class FailSafe(_Strict):
    degraded_cap: Name
    down_cap: Name


class HotlineHold(_Strict):
    enabled: bool = True


class CircuitBreaker(_Strict):
    max_escalations: int = Field(ge=1)
    window_ms: int = Field(ge=1)
    pause_ms: int = Field(ge=1)


class Approvals(_Strict):
    max_validity_ms: int = Field(default=3_600_000, ge=1_000, le=86_400_000)
    """No officer's approval, for one act or standing, counts if valid for longer."""


class Policy(_Strict):
    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, ignored_types=(cached_property,)
    )

    version: Literal[1]
    name: str = Field(min_length=1, max_length=64)
    ladder: list[Rung] = Field(min_length=2)
    domains: list[Name] = Field(min_length=1)
    excluded_domains: list[ExcludedDomain] = Field(min_length=1)
    autonomy_cap: Name
    fail_safe: FailSafe
    hotline_hold: HotlineHold = HotlineHold()
    circuit_breaker: CircuitBreaker
    approvals: Approvals = Approvals()

    def canonical(self) -> dict[str, object]:
        return self.model_dump(mode="python")

    @cached_property
    def hash(self) -> bytes:
        return hashlib.sha256(canonical_cbor(self.canonical())).digest()

    @cached_property
    def rung_index(self) -> dict[str, int]:
        return {rung.name: i for i, rung in enumerate(self.ladder)}

    @cached_property
    def rungs(self) -> dict[str, Rung]:
        return {rung.name: rung for rung in self.ladder}

    @cached_property
    def exclusions(self) -> dict[str, int]:
        return {e.domain: e.human_authorizations for e in self.excluded_domains}

    @cached_property
    def excluded_rungs(self) -> frozenset[str]:
        """Rungs bound to an excluded domain: closed to autonomy whatever the caller says."""
        return frozenset(
            r.name for r in self.ladder if r.domain is not None and r.domain in self.exclusions
        )

    def rung(self, name: str) -> Rung:
        return self.rungs[name]

    def officers_required(self, rung: str, stated_domain: str) -> int:
        """Distinct officers an act needs: 0 outside excluded domains (by its rung or its
        stated domain), else the most that either domain requires."""
        domain = self.domain_of(rung, stated_domain)
        return max(self.exclusions.get(domain, 0), self.exclusions.get(stated_domain, 0))

    def domain_of(self, rung: str, stated_domain: str) -> str:
        """The domain an act is in: the rung's own, if the ladder binds one, else the stated."""
        bound = self.rungs[rung].domain if rung in self.rungs else None
        return bound if bound is not None else stated_domain


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """Parse and validate a policy file's text; PolicyError names the line and the expectation."""
    data, lines = load_yaml(text, source, PolicyError)
    policy = validate(Policy, data, lines, source, PolicyError)
    require = checker(lines, source, PolicyError)
    names = [r.name for r in policy.ladder]
    for i, name in enumerate(names):
        require(names.index(name) == i, ("ladder", i, "name"), f"rung {name!r} appears twice")
    for i, domain in enumerate(policy.domains):
        require(
            policy.domains.index(domain) == i, ("domains", i), f"domain {domain!r} appears twice"
        )
    for i, excluded in enumerate(policy.excluded_domains):
        require(
            excluded.domain in policy.domains,
            ("excluded_domains", i, "domain"),
            f"{excluded.domain!r} is not one of the domains {policy.domains}",
        )
    require(
        NUCLEAR_C2 in policy.exclusions,
        ("excluded_domains",),
        f"{NUCLEAR_C2!r} must be an excluded domain: nuclear command and control "
        "is closed to autonomy in every clearline policy",
    )
    for i, excluded in enumerate(policy.excluded_domains):
        if excluded.domain == NUCLEAR_C2:
            require(
                excluded.human_authorizations >= NUCLEAR_OFFICERS,
                ("excluded_domains", i, "human_authorizations"),
                f"expected at least {NUCLEAR_OFFICERS}: an act in {NUCLEAR_C2} needs "
                "two distinct officers in every clearline policy",
            )
    for i, rung in enumerate(policy.ladder):
        require(
            rung.domain is None or rung.domain in policy.domains,
            ("ladder", i, "domain"),
            f"{rung.domain!r} is not one of the domains {policy.domains}",
        )
        if NUCLEAR_NAMES.search(rung.name):
            require(
                rung.domain == NUCLEAR_C2,
                ("ladder", i, "domain"),
                f"expected domain: {NUCLEAR_C2} on rung {rung.name!r}: a rung whose name says "
                "nuclear is a nuclear act",
            )
        require(
            not rung.kinetic or rung.score > 0,
            ("ladder", i, "score"),
            f"rung {rung.name!r} is kinetic, so it escalates: expected a score above 0 "
            "(acts scoring 0 or less pass as standing down)",
        )
        if i:
            below = policy.ladder[i - 1]
            require(
                rung.score >= below.score,
                ("ladder", i, "score"),
                f"expected a score of at least {below.score} ({below.name!r}, below it): the "
                "ladder is ordered, lowest first",
            )
    nuclear_rungs = [i for i, r in enumerate(policy.ladder) if r.domain == NUCLEAR_C2]
    require(
        bool(nuclear_rungs),
        ("ladder",),
        f"expected at least one rung with domain: {NUCLEAR_C2}: the ladder must say which "
        "rungs are nuclear, so that no label can carry a nuclear act out of its domain",
    )
    first_excluded = min(policy.rung_index[r] for r in policy.excluded_rungs)
    floor = policy.ladder[first_excluded]
    for i, rung in enumerate(policy.ladder[:first_excluded]):
        require(
            rung.score < floor.score,
            ("ladder", i, "score"),
            f"rung {rung.name!r} scores {rung.score}, as much as the excluded rung "
            f"{floor.name!r} ({floor.score}); expected less, or domain: {floor.domain}",
        )
    for i in range(first_excluded, len(policy.ladder)):
        rung = policy.ladder[i]
        require(
            rung.name in policy.excluded_rungs,
            ("ladder", i, "domain"),
            f"rung {rung.name!r} is above the excluded rung "
            f"{policy.ladder[first_excluded].name!r}; expected a domain among "
            f"{sorted(policy.exclusions)} (nothing above an excluded rung is open)",
        )
    for path, cap_name in (
        (("autonomy_cap",), policy.autonomy_cap),
        (("fail_safe", "degraded_cap"), policy.fail_safe.degraded_cap),
        (("fail_safe", "down_cap"), policy.fail_safe.down_cap),
    ):
        require(
            cap_name in policy.rung_index,
            path,
            f"{cap_name!r} is not a rung; expected one of {names}",
        )
    cap = policy.rung_index[policy.autonomy_cap]
    degraded = policy.rung_index[policy.fail_safe.degraded_cap]
    down = policy.rung_index[policy.fail_safe.down_cap]
    for path, cap_name in (
        (("autonomy_cap",), policy.autonomy_cap),
        (("fail_safe", "degraded_cap"), policy.fail_safe.degraded_cap),
        (("fail_safe", "down_cap"), policy.fail_safe.down_cap),
    ):
        require(
            policy.rung_index[cap_name] < first_excluded,
            path,
            f"expected a rung below {policy.ladder[first_excluded].name!r}: no cap may "
            "reach an excluded rung",
        )
    require(
        degraded <= cap,
        ("fail_safe", "degraded_cap"),
        "expected a rung no higher than autonomy_cap (fail-safe caps only tighten)",
    )
    require(
        down <= degraded,
        ("fail_safe", "down_cap"),
        "expected a rung no higher than degraded_cap (a dead link is no better than a slow one)",
    )
    return policy
