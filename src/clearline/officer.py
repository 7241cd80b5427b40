"""Officers at a keyboard: enrol one in a side's roster, sign an approval of a pending act.

Everything here is what a person does by hand with `clearline officer …`; the gate's
check of what they sign is pure and lives in `clearline.gate.authority`.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from clearline.config import load_roster
from clearline.errors import ClearlineError, InputFileError
from clearline.gate.authority import (
    Officer,
    Roster,
    RosterError,
    roster_text,
    sign_approval,
)
from clearline.node.keys import check_side, init_officer_key, load_signer
from clearline.protocol.messages import Approval, ApprovalScope, Micros


def enrol(
    roster_path: Path, keys_dir: Path, officer_id: str, side: str, name: str = ""
) -> tuple[Roster, Path, Path]:
    """Create the officer's key in `keys_dir` and add its public key to the roster file
    (created if absent). Returns the new roster and the key files."""
    check_side(side)
    roster = load_roster(roster_path, side) if roster_path.exists() else None
    if roster is not None and any(o.id == officer_id for o in roster.officers):
        raise RosterError(f"officer {officer_id!r} is already enrolled", str(roster_path))
    signer, key_path, pub_path = init_officer_key(keys_dir, officer_id)
    officers = list(roster.officers) if roster is not None else []
    officers.append(Officer(id=officer_id, public_key=signer.public_key.hex(), name=name))
    updated = Roster(version=1, side=side, officers=officers)
    roster_path.parent.mkdir(parents=True, exist_ok=True)
    partial = roster_path.with_name(roster_path.name + ".partial")
    partial.write_text(roster_text(updated))
    os.replace(partial, roster_path)
    return updated, key_path, pub_path


def pending_act(source: str, text: str, action_id: str | None) -> dict[str, Any]:
    """One pending act from `GET /v1/approvals/pending` output (or one of its entries)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputFileError(f"not JSON: {exc.msg}", source, exc.lineno) from None
    entries = data.get("pending") if isinstance(data, dict) and "pending" in data else [data]
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise InputFileError("expected the answer of GET /v1/approvals/pending", source)
    chosen = [e for e in entries if action_id is None or e.get("action_id") == action_id]
    if not chosen:
        ids = ", ".join(str(e.get("action_id")) for e in entries) or "none"
        raise InputFileError(f"no pending act {action_id!r}; pending: {ids}", source)
    if len(chosen) > 1:
        ids = ", ".join(str(e.get("action_id")) for e in chosen)
        raise InputFileError(f"{len(chosen)} acts are pending ({ids}); name one", source)
    act: dict[str, Any] = chosen[0]
    for key in ("action_id", "side", "rung", "domain"):
        if not isinstance(act.get(key), str):
            raise InputFileError(f"the pending act has no {key!r}", source)
    return act


def approve(
    key_path: Path,
    side: str,
    rung: str,
    domain: str,
    now: Micros,
    valid_for_s: int,
    action_id: str | None,
    target: str | None,
    officer: str | None = None,
) -> bytes:
    """Sign an approval with the officer's key: of one act (`action_id`), or standing."""
    signer = load_signer(key_path)
    scope = ApprovalScope.ACTION if action_id is not None else ApprovalScope.STANDING
    body = Approval(
        scope, rung, domain, now, now + valid_for_s * 1_000_000, action_id, target, officer
    )
    try:
        return sign_approval(signer, side, body, now)
    except ClearlineError as exc:
        raise ClearlineError(f"cannot sign this approval: {exc}") from None


def encode(approval: bytes) -> str:
    """The text an officer hands over: standard base64 of the COSE_Sign1."""
    return base64.b64encode(approval).decode("ascii")
