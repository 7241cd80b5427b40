"""Human authority as a proof: an officers' roster, signed approvals, and their pure check.

A human decision is not a label on a request. It is one or more approvals, each a
COSE_Sign1 (the hotline's own envelope, type ``approval``) signed by an enrolled
officer's Ed25519 key over exactly what is approved. The gate accepts an approval
only if, with nothing but the roster's public keys in hand:

- its signature verifies under an officer enrolled for the gate's side;
- it is inside its validity window, and the window is no longer than the policy allows;
- it matches the act: an ACTION approval names this action id, rung, domain and
  target; a STANDING approval covers the rung (at or below its own), the domain and,
  if it names one, the target, and is never for an excluded rung or domain;
- its officer has not already been counted for this act, and (for an ACTION
  approval) it has not already authorized an act: approvals are single use.

The roster is a YAML file beside the policy; its canonical hash travels with the
policy hash in Hello and in every checkpoint, so a changed roster is visible to the peer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from clearline.errors import ClearlineError, InputFileError
from clearline.gate.policy import Policy
from clearline.protocol import codec
from clearline.protocol.messages import (
    SIDE_PATTERN,
    Approval,
    ApprovalScope,
    Decision,
    Message,
    Micros,
)
from clearline.protocol.signing import Ed25519Verifier, KeyRing, Signer
from clearline.sourcemap import checker, load_yaml, validate


class RosterError(InputFileError):
    """An authority roster file is invalid."""


OfficerId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]


class Officer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    id: OfficerId
    public_key: str = Field(pattern=r"^[0-9a-f]{64}$", description="Ed25519 public key, hex")
    name: str = Field(default="", max_length=128)


class Roster(BaseModel):
    """The officers of one side whose signed approvals make a decision human."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, ignored_types=(cached_property,)
    )

    version: Literal[1]
    side: str = Field(pattern=f"^{SIDE_PATTERN}$")
    officers: list[Officer] = Field(default_factory=list, max_length=1000)

    def canonical(self) -> dict[str, object]:
        return self.model_dump(mode="python")

    @cached_property
    def hash(self) -> bytes:
        return hashlib.sha256(codec.canonical_cbor(self.canonical())).digest()

    @cached_property
    def keys(self) -> KeyRing:
        ring = KeyRing()
        for officer in self.officers:
            ring.add(self.side, Ed25519Verifier(bytes.fromhex(officer.public_key)))
        return ring

    @cached_property
    def officer_by_kid(self) -> dict[bytes, str]:
        return {Ed25519Verifier(bytes.fromhex(o.public_key)).kid: o.id for o in self.officers}


def empty_roster(side: str) -> Roster:
    """No officers: no decision on this side can be human."""
    return Roster(version=1, side=side, officers=[])


def parse_roster(text: str, source: str = "<roster>") -> Roster:
    """Parse and validate a roster's text; RosterError names the line and the expectation."""
    data, lines = load_yaml(text, source, RosterError)
    roster = validate(Roster, data, lines, source, RosterError)
    require = checker(lines, source, RosterError)
    ids = [o.id for o in roster.officers]
    keys = [o.public_key for o in roster.officers]
    for i, officer in enumerate(roster.officers):
        require(ids.index(officer.id) == i, ("officers", i, "id"), f"{officer.id!r} appears twice")
        require(
            keys.index(officer.public_key) == i,
            ("officers", i, "public_key"),
            f"this key is already enrolled as {ids[keys.index(officer.public_key)]!r}; "
            "one officer, one key",
        )
    return roster


def roster_text(roster: Roster) -> str:
    """The YAML a roster is written back as (comments are not kept)."""
    lines = [
        "# clearline authority roster: officers whose signed approvals make a decision human.",
        "version: 1",
        f"side: {roster.side}",
        "officers:" if roster.officers else "officers: []",
    ]
    for o in roster.officers:
        lines.append(f"  - id: {o.id}")
        lines.append(f"    public_key: {o.public_key}")
        if o.name:
            lines.append(f"    name: {o.name!r}")
    return "\n".join(lines) + "\n"


def sign_approval(signer: Signer, side: str, approval: Approval, now: Micros) -> bytes:
    """An officer's approval: the exact COSE_Sign1 bytes to hand to the gate."""
    return codec.sign(Message(side, b"", 0, now, approval), signer)


def approval_digest(cose: bytes) -> bytes:
    return hashlib.sha256(cose).digest()


@dataclass(frozen=True, slots=True)
class CheckedApproval:
    """An approval whose signature verified under an enrolled officer's key."""

    cose: bytes
    officer_kid: bytes
    officer: str
    body: Approval
    digest: bytes


class ApprovalError(ClearlineError):
    """An approval that does not count, and why."""


def open_approval(roster: Roster, cose: bytes) -> CheckedApproval:
    """Verify one approval's signature against the roster; ApprovalError says why not."""
    try:
        verified = codec.verify(cose, roster.keys)
    except ClearlineError as exc:
        raise ApprovalError(
            f"not a valid approval by an enrolled {roster.side} officer: {exc}"
        ) from None
    body = verified.message.body
    if not isinstance(body, Approval):
        raise ApprovalError(f"a signed {verified.message.type.value}, not an approval")
    if verified.message.session_id or verified.message.seq != 0:
        raise ApprovalError("an approval has sequence 0 and no session id")
    return CheckedApproval(
        cose, verified.kid, roster.officer_by_kid[verified.kid], body, approval_digest(cose)
    )


@dataclass(frozen=True, slots=True)
class ApprovalCheck:
    """Which approvals counted for one act, and why the others did not."""

    accepted: tuple[CheckedApproval, ...]
    refused: tuple[str, ...]

    @property
    def officers(self) -> int:
        return len(self.accepted)


def check_approvals(
    roster: Roster,
    approvals: Iterable[bytes],
    *,
    policy: Policy,
    action_id: str,
    rung: str,
    stated_domain: str,
    target: str | None,
    now: Micros,
    spent: Mapping[bytes, Micros],
    opened: Mapping[bytes, CheckedApproval] | None = None,
) -> ApprovalCheck:
    """Which of `approvals` count for this act: pure, the roster's keys passed in.

    In an excluded domain (by the act's rung or its stated domain) only ACTION approvals
    count. `spent` holds digests of ACTION approvals that already authorized an act.
    `opened` is an optional cache of approvals already verified, by digest.
    """
    excluded = policy.officers_required(rung, stated_domain) > 0
    rung_index = policy.rung_index
    max_validity_us = policy.approvals.max_validity_ms * 1000
    accepted: list[CheckedApproval] = []
    refused: list[str] = []
    counted: set[bytes] = set()
    for i, cose in enumerate(approvals):
        digest = approval_digest(cose)
        try:
            checked = opened.get(digest) if opened is not None else None
            if checked is None:
                checked = open_approval(roster, cose)
        except ApprovalError as exc:
            refused.append(f"approval {i}: {exc}")
            continue
        a = checked.body
        problem = None
        if not a.not_before <= now <= a.not_after:
            problem = "outside its validity window"
        elif a.not_after - a.not_before > max_validity_us:
            problem = f"valid for longer than the policy's {max_validity_us // 1_000_000} s"
        elif a.domain != stated_domain:
            problem = f"approves domain {a.domain}, the act is in {stated_domain}"
        elif a.scope is ApprovalScope.ACTION:
            if a.action_id != action_id:
                problem = f"approves action {a.action_id}, not {action_id}"
            elif a.rung != rung:
                problem = f"approves rung {a.rung}, the act is {rung}"
            elif a.target != target:
                problem = f"approves target {a.target}, the act's is {target}"
            elif digest in spent:
                problem = "already used for an act"
        else:
            if excluded or a.rung in policy.excluded_rungs or a.domain in policy.exclusions:
                problem = "a standing approval never covers an excluded rung or domain"
            elif a.rung not in rung_index or rung_index[rung] > rung_index[a.rung]:
                problem = f"covers rungs up to {a.rung}, the act is {rung}"
            elif a.target is not None and a.target != target:
                problem = f"covers target {a.target} only"
        if problem is None and checked.officer_kid in counted:
            problem = f"officer {checked.officer} is already counted for this act"
        if problem is not None:
            refused.append(f"approval {i} by {checked.officer}: {problem}")
            continue
        counted.add(checked.officer_kid)
        accepted.append(checked)
    return ApprovalCheck(tuple(accepted), tuple(refused))


def recheck_decision(
    roster: Roster, decision: Decision, at: Micros, policy: Policy | None
) -> list[str]:
    """An auditor's offline re-check of a logged human decision's approvals; the problems.

    With the policy the decision names (same hash), it is the gate's own check, officer
    count included; without it, every approval must still verify, be distinct and match
    the act. Single use is checked across the whole log by the caller.
    """
    if decision.roster_hash != roster.hash:
        return [
            f"made under roster {decision.roster_hash.hex()[:16]}…, "
            f"not the given one {roster.hash.hex()[:16]}…"
        ]
    if policy is not None and policy.hash == decision.policy_hash and decision.rung in policy.rungs:
        required = policy.officers_required(decision.rung, decision.domain)
        check = check_approvals(
            roster,
            decision.approvals,
            policy=policy,
            action_id=decision.action_id,
            rung=decision.rung,
            stated_domain=decision.domain,
            target=decision.target,
            now=at,
            spent={},
        )
        problems = list(check.refused)
        if check.officers < max(1, required):
            problems.append(
                f"{check.officers} valid approvals; the policy requires {required or 1}"
            )
        return problems
    problems = []
    officers: set[bytes] = set()
    for i, cose in enumerate(decision.approvals):
        try:
            checked = open_approval(roster, cose)
        except ApprovalError as exc:
            problems.append(f"approval {i}: {exc}")
            continue
        a = checked.body
        if not a.not_before <= at <= a.not_after:
            problems.append(f"approval {i}: outside its validity window at the decision")
        if a.domain != decision.domain or (
            a.scope is ApprovalScope.ACTION
            and (a.action_id, a.rung, a.target)
            != (decision.action_id, decision.rung, decision.target)
        ):
            problems.append(f"approval {i}: not for this act")
        if checked.officer_kid in officers:
            problems.append(f"approval {i}: officer {checked.officer} counted twice")
        officers.add(checked.officer_kid)
    if not decision.approvals:
        problems.append("a human decision without any approval")
    return problems
