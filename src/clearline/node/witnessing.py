"""The node's witnesses: its checkpoints submitted to them, the peer's cosignatures counted.

After the node signs a checkpoint, a task of its own submits the C2SP checkpoint note to
every configured witness (tlog-witness add-checkpoint, with a consistency proof from the
size that witness last cosigned), keeps what comes back, and only then sends the
Checkpoint to the peer, with the cosignature lines attached. The hotline's latency path
never waits on a witness: only the sending of the checkpoint does, for at most
`[witness] timeout_ms`. A witness that cannot be reached is left alone for a while
(exponential backoff) and asked again about the latest checkpoint.

A split view is what a witness exists to catch: the witness answers that it holds another
root for the size of our checkpoint (409 at equal sizes), a larger tree of our log than we
have, or a tree at its size that our log's proof does not extend (422). The node also
submits the peer's checkpoint, as a monitor would, when the cosignatures the peer attached
do not make a quorum, so that a split view of the peer's log shows on this side too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import httpx

from clearline.errors import NoteError, WitnessRefusalError
from clearline.log.note import (
    COSIGNATURE_V1,
    Note,
    NoteKey,
    NoteSignature,
    TreeHead,
    parse_note,
    verify_note,
)
from clearline.node.config import Witnessing
from clearline.witness.protocol import parse_cosignatures, parse_size, request_body

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
MAX_ANSWER = 16 * 1024
"""Bytes of a witness's answer read at most (16 cosignature lines are under 6 KiB)."""
MAX_ATTEMPTS = 4
"""Requests per witness per checkpoint: a 409 teaches the size it holds, then once more."""

Status = Literal["cosigned", "split-view", "refused", "unreachable", "backing-off", "cannot-prove"]
Verdict = Literal["met", "not-met", "pending"]
ProofFrom = Callable[[int], Awaitable[Sequence[bytes] | None]]
"""The consistency proof from a size to the checkpoint, or None if it cannot be made."""


@dataclass
class Outcome:
    """What one witness said about one checkpoint."""

    witness: str
    status: Status
    detail: str = ""
    cosignature: NoteSignature | None = None


@dataclass
class Witness:
    """A configured witness, as this node knows it."""

    name: str
    url: str
    key: NoteKey
    sizes: dict[str, int] = field(default_factory=dict)
    """Origin -> the size this witness last cosigned, as far as this node has learned."""
    failures: int = 0
    retry_at: float = 0.0


class Witnesses:
    """The [witness] settings in use: submission, verification and the quorum verdict."""

    def __init__(
        self,
        settings: Witnessing,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._transport = transport
        self.witnesses = [
            Witness(
                s.name,
                s.url.rstrip("/"),
                NoteKey(s.name, bytes.fromhex(s.public_key), COSIGNATURE_V1),
            )
            for s in settings.servers
        ]
        self.keys = [w.key for w in self.witnesses]
        self._client: httpx.AsyncClient | None = None

    @property
    def configured(self) -> bool:
        return bool(self.witnesses)

    def verdict(self, cosigners: int) -> Verdict:
        return "met" if cosigners >= self.settings.quorum else "not-met"

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- submitting ------------------------------------------------------------------

    async def submit(
        self, note: Note, proof_from: ProofFrom, own: bool, only: set[str] | None = None
    ) -> list[Outcome]:
        """Ask every witness (or those named in `only`) to cosign `note`, at once; each has
        `timeout_ms` for all its requests. `own`: the note is of this node's log (else the
        peer's, submitted as a monitor would)."""
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.settings.timeout_ms / 1000, transport=self._transport
            )
        head = TreeHead.parse(note.text)
        chosen = [w for w in self.witnesses if only is None or w.name in only]
        return list(
            await asyncio.gather(
                *(self._submit_in_time(w, note, head, proof_from, own) for w in chosen)
            )
        )

    async def _submit_in_time(
        self, witness: Witness, note: Note, head: TreeHead, proof_from: ProofFrom, own: bool
    ) -> Outcome:
        now = self.clock()
        if now < witness.retry_at:
            return Outcome(witness.name, "backing-off", f"unreachable {witness.failures} time(s)")
        try:
            async with asyncio.timeout(self.settings.timeout_ms / 1000):
                outcome = await self._submit(witness, note, head, proof_from, own)
        except TimeoutError:
            outcome = Outcome(witness.name, "unreachable", "no answer in time")
        except httpx.HTTPError as exc:
            outcome = Outcome(witness.name, "unreachable", f"{type(exc).__name__}: {exc}"[:200])
        if outcome.status == "unreachable":
            witness.failures += 1
            delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (witness.failures - 1))
            witness.retry_at = self.clock() + delay
        else:
            witness.failures, witness.retry_at = 0, 0.0
        return outcome

    async def _submit(
        self, witness: Witness, note: Note, head: TreeHead, proof_from: ProofFrom, own: bool
    ) -> Outcome:
        name, origin = witness.name, head.origin
        old = witness.sizes.get(origin, 0)
        for _ in range(MAX_ATTEMPTS):
            if old > head.size and own:
                # Our checkpoints reach a witness in order: a larger tree of our log, signed
                # with our key, is one we never had.
                return Outcome(
                    name,
                    "split-view",
                    f"the witness has cosigned size {old} of {origin}, larger than this "
                    f"checkpoint's {head.size}",
                )
            if old > head.size:
                # The peer may have shown the witness a newer checkpoint than it has sent us.
                return Outcome(name, "cannot-prove", f"the witness is at size {old} already")
            proof = [] if old in (0, head.size) else await proof_from(old)
            if proof is None:
                return Outcome(name, "cannot-prove", f"no consistency proof from size {old}")
            status, body = await self._post(witness, request_body(old, proof, note))
            if body is None:
                return Outcome(name, "refused", f"HTTP {status} with an answer over {MAX_ANSWER}")
            if status == 200:
                return self._cosigned(witness, note, head, body)
            if status == 409:
                try:
                    held = parse_size(body)
                except WitnessRefusalError as exc:
                    return Outcome(name, "refused", f"409 with a bad size: {exc}")
                if held == old == head.size:
                    return Outcome(
                        name,
                        "split-view",
                        f"the witness holds another root for size {head.size} of {origin}",
                    )
                witness.sizes[origin] = old = held
                continue
            if status == 422 and old > 0:
                return Outcome(
                    name,
                    "split-view",
                    f"the witness's tree of {origin} at size {old} is not the one this "
                    f"checkpoint extends (422)",
                )
            if status >= 500:
                return Outcome(name, "unreachable", f"HTTP {status}")
            text = body[:200].decode("utf-8", "replace").strip()
            return Outcome(name, "refused", f"HTTP {status}: {text}")
        return Outcome(name, "refused", f"no agreement on the old size in {MAX_ATTEMPTS} tries")

    async def _post(self, witness: Witness, body: bytes) -> tuple[int, bytes | None]:
        """The status and body of the witness's answer; no body if it is over MAX_ANSWER
        bytes (a witness is not trusted with this node's memory)."""
        assert self._client is not None
        url = f"{witness.url}/add-checkpoint"
        async with self._client.stream("POST", url, content=body) as response:
            answer = bytearray()
            async for chunk in response.aiter_bytes():
                answer += chunk
                if len(answer) > MAX_ANSWER:
                    return response.status_code, None
            return response.status_code, bytes(answer)

    def _cosigned(self, witness: Witness, note: Note, head: TreeHead, body: bytes) -> Outcome:
        try:
            lines = parse_cosignatures(body)
        except NoteError as exc:
            return Outcome(witness.name, "refused", f"a 200 without cosignatures: {exc}")
        key = witness.key
        mine = [s for s in lines if (s.name, s.key_id) == (key.name, key.key_id)]
        try:
            if not mine or not verify_note(Note(note.text, (mine[0],)), [key]):
                return Outcome(witness.name, "refused", "no cosignature by the witness's key")
        except NoteError as exc:
            return Outcome(witness.name, "refused", f"its cosignature does not verify: {exc}")
        witness.sizes[head.origin] = head.size
        return Outcome(witness.name, "cosigned", cosignature=mine[0])

    # -- checking what the peer attached ---------------------------------------------

    def check(self, text: str, lines: Sequence[bytes]) -> tuple[list[str], list[str]]:
        """The witnesses whose cosignatures among `lines` verify over the checkpoint `text`,
        and a problem for each line that is malformed or from a known witness and does not
        verify. Lines from witnesses not configured here are ignored."""
        cosigners: list[str] = []
        problems: list[str] = []
        for number, raw in enumerate(lines, 1):
            try:
                signature = parse_note("x\n\n" + raw.decode("utf-8")).signatures
                if len(signature) != 1:
                    raise NoteError("expected exactly one signature line")
            except (UnicodeDecodeError, NoteError) as exc:
                problems.append(f"cosignature {number} is malformed: {exc}"[:200])
                continue
            try:
                verified = verify_note(Note(text, signature), self.keys)
            except NoteError as exc:
                problems.append(f"cosignature {number}: {exc}"[:200])
                continue
            for v in verified:
                if v.key.name not in cosigners:
                    cosigners.append(v.key.name)
        return cosigners, problems


def cosignature_lines(signatures: Iterable[NoteSignature]) -> tuple[bytes, ...]:
    """Cosignatures as the lines a Checkpoint carries, exactly as the witnesses sent them."""
    return tuple(signature.line().encode() for signature in signatures)
