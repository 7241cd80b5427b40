"""Simulated officers: each side's enrolled officers, who act through signed approvals.

The simulator's commanders do not label their decisions "human": they sign
approvals with enrolled keys, as officers at a live node do, and the real gate
checks them. Keys are derived from public labels (test keys), cached per side so
an episode pays for signatures, not for key generation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from clearline.gate.authority import Officer, Roster, sign_approval
from clearline.gate.policy import Policy
from clearline.protocol.messages import Approval, ApprovalScope, Micros
from clearline.protocol.signing import Ed25519Signer

OFFICERS_PER_SIDE = 2
"""A commander and a second officer: enough for the two that nuclear acts need."""


@dataclass(frozen=True)
class SideOfficers:
    side: str
    signers: tuple[Ed25519Signer, ...]
    roster: Roster

    def standing(self, policy: Policy, domain: str, now: Micros, horizon: Micros) -> bytes | None:
        """The commander's standing approval for responses in `domain`, up to the highest
        rung open to it; None where nothing may be approved in advance."""
        if domain in policy.exclusions:
            return None
        open_rungs = [r.name for r in policy.ladder if r.name not in policy.excluded_rungs]
        until = min(now + policy.approvals.max_validity_ms * 1000, max(now, horizon))
        body = Approval(ApprovalScope.STANDING, open_rungs[-1], domain, now, until)
        return sign_approval(self.signers[0], self.side, body, now)

    def approve(
        self,
        policy: Policy,
        action_id: str,
        rung: str,
        domain: str,
        target: str | None,
        now: Micros,
        officers: int = OFFICERS_PER_SIDE,
    ) -> tuple[bytes, ...]:
        """Approvals of one act by the first `officers` officers."""
        until = now + policy.approvals.max_validity_ms * 1000
        body = Approval(ApprovalScope.ACTION, rung, domain, now, until, action_id, target)
        return tuple(sign_approval(s, self.side, body, now) for s in self.signers[:officers])


@cache
def officers_of(side: str) -> SideOfficers:
    signers = tuple(
        Ed25519Signer.from_label(f"{side} officer {i}") for i in range(OFFICERS_PER_SIDE)
    )
    roster = Roster(
        version=1,
        side=side,
        officers=[
            Officer(id=f"{side.lower()}-officer-{i}", public_key=s.public_key.hex())
            for i, s in enumerate(signers)
        ],
    )
    return SideOfficers(side, signers, roster)
