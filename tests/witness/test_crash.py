"""kill -9 the witness at random points of a stream of add-checkpoint requests, 20 rounds.

Each step of the stream sends two checkpoints at once, both signed by the log's key and
both valid against what the witness holds: two different roots for one size (a fork), or
two sizes of one history (the rollback race the specification warns of). One may win;
the other must be refused. The witness is killed with SIGKILL at a random moment, and
before it restarts its state file is read: every cosignature it ever returned names a
(size, root) the state holds, and no size ever got two roots, across all rounds.
Seeded: CLEARLINE_WITNESS_SEED=N repeats a run; the seed is printed on failure.
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from clearline.lab.witness import WitnessProcess, make_witness, start_witness
from clearline.log.note import COSIGNATURE_V1, Note, NoteKey, TreeHead, verify_note
from clearline.witness.protocol import parse_cosignatures, parse_size, request_body
from tests.witness.forks import LOG, ORIGIN, Log

ROUNDS = int(os.environ.get("CLEARLINE_WITNESS_ROUNDS", "20"))
SEED = int(os.environ.get("CLEARLINE_WITNESS_SEED", str(random.randrange(1 << 32))))


@dataclass
class Stream:
    """What the client side knows: the history the witness holds (as far as it can tell),
    the candidates whose outcome a kill left unknown, and every cosignature returned."""

    rng: random.Random
    trunk: Log = field(default_factory=lambda: Log(0))
    unknown: list[Log] = field(default_factory=list)
    cosigned: list[tuple[str, str]] = field(default_factory=list)
    """(checkpoint text, cosignature line) of each 200."""
    refused: int = 0
    steps: int = 0
    failure: AssertionError | None = None


async def _post(
    client: httpx.AsyncClient, old: int, proof: list[bytes], log: Log
) -> httpx.Response:
    return await client.post("/add-checkpoint", content=request_body(old, proof, log.note()))


def _accepted(stream: Stream, log: Log, response: httpx.Response) -> bool:
    if response.status_code == 200:
        line = response.text
        assert parse_cosignatures(line.encode()), line
        stream.cosigned.append((log.note().text, line))
        return True
    assert response.status_code in (409, 422), (response.status_code, response.text)
    stream.refused += 1
    return False


async def resync(stream: Stream, client: httpx.AsyncClient) -> None:
    """Learn which history the witness holds after a restart, through the protocol only."""
    probe = await _post(client, 0, [], stream.trunk)
    if probe.status_code == 200:  # it held nothing, or exactly the trunk at size 0
        _accepted(stream, stream.trunk, probe)
        return
    held = parse_size(probe.content)
    for candidate in [stream.trunk, *stream.unknown]:
        if candidate.size != held:
            continue
        answer = await _post(client, held, [], candidate)
        if _accepted(stream, candidate, answer):
            stream.trunk = candidate
            stream.unknown = []
            return
    raise AssertionError(f"the witness holds size {held}, which no candidate has")


async def run_stream(stream: Stream, url: str, stop: threading.Event) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        try:
            await resync(stream, client)
            while not stop.is_set():
                base = stream.trunk
                first = base.fork(base.size)
                first.grow(stream.rng.randint(1, 4))
                if stream.rng.random() < 0.5:  # the same size, another root: a fork
                    second = base.fork(base.size)
                    second.grow(first.size - base.size)
                else:  # a larger tree of the same history: a rollback if both were taken
                    second = first.fork(first.size)
                    second.grow(stream.rng.randint(1, 3))
                stream.unknown = [first, second]
                old = base.size
                answers = await asyncio.gather(
                    *(_post(client, old, c.proof(old) if old else [], c) for c in (first, second))
                )
                pairs = zip((first, second), answers, strict=True)
                won = [c for c, answer in pairs if _accepted(stream, c, answer)]
                # Both valid against what the witness held: exactly one may move it.
                assert len(won) == 1, f"{len(won)} of two taken: {[a.text for a in answers]}"
                stream.trunk = won[0]
                stream.unknown = [c for c in (first, second) if c is not won[0]]
                stream.steps += 1
        except httpx.TransportError:
            return  # killed
        except AssertionError as failure:
            stream.failure = failure


def check_state(state: Path, stream: Stream, witness_key: NoteKey) -> None:
    with sqlite3.connect(state) as db:
        rows = db.execute("SELECT size, root FROM cosigned WHERE origin = ?", (ORIGIN,)).fetchall()
        latest = db.execute("SELECT size FROM latest WHERE origin = ?", (ORIGIN,)).fetchone()
    held = {int(size): bytes(root) for size, root in rows}
    assert len(held) == len(rows), "a size is stored with two roots"
    if held:
        assert latest is not None and latest[0] == max(held), "the latest is not the largest"
    roots: dict[int, bytes] = {}
    for text, line in stream.cosigned:
        note = Note(text, parse_cosignatures(line.encode()))
        assert verify_note(note, [witness_key]), "a cosignature does not verify"
        head = TreeHead.parse(text)
        assert held.get(head.size) == head.root, (
            f"cosigned size {head.size}, which the state does not hold with that root"
        )
        assert roots.setdefault(head.size, head.root) == head.root, (
            f"two roots were cosigned for size {head.size}"
        )


@pytest.mark.slow
def test_kill_9_never_costs_a_cosignature_or_lets_a_size_take_two_roots(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    (tmp_path / "US.signing.pub").write_text(LOG.public_key.hex() + "\n")
    config = make_witness(tmp_path, "witness.test/crash", {"US": "US.signing.pub"})
    stream = Stream(rng)
    witness: WitnessProcess | None = None
    try:
        for _ in range(ROUNDS):
            witness = start_witness(config)
            key = NoteKey(witness.name, bytes.fromhex(witness.public_key), COSIGNATURE_V1)
            stop = threading.Event()
            runner = threading.Thread(
                target=asyncio.run, args=(run_stream(stream, witness.url, stop),), daemon=True
            )
            before = stream.steps
            runner.start()
            # A random point: after some steps, a little way into the next.
            goal = before + rng.randint(0, 12)
            while stream.steps < goal and runner.is_alive():
                threading.Event().wait(0.002)
            threading.Event().wait(rng.uniform(0, 0.02))
            witness.kill()
            stop.set()
            runner.join(30)
            assert not runner.is_alive(), "the stream did not stop after the kill"
            if stream.failure is not None:
                raise stream.failure
            check_state(witness.state, stream, key)
    except AssertionError as failure:
        raise AssertionError(f"{failure} (CLEARLINE_WITNESS_SEED={SEED})") from failure
    finally:
        if witness is not None:
            witness.kill()
    assert stream.steps >= ROUNDS and stream.refused >= ROUNDS, (stream.steps, stream.refused)
    assert len(stream.cosigned) >= ROUNDS
