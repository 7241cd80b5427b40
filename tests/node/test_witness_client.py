"""The node's witness client against the witness's own app, in this process, and against
witnesses that misbehave: what it learns from a 409, what it calls a split view, and how it
backs off."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from clearline.node.config import Witnessing, WitnessServer
from clearline.node.witnessing import MAX_ANSWER, Outcome, Witnesses
from clearline.protocol.signing import Ed25519Signer
from clearline.witness.config import init_witness_key, load_witness
from clearline.witness.server import WitnessService, build_app
from tests.witness.forks import LOG, Log

NAME = "witness.test/w1"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[WitnessService]:
    init_witness_key(tmp_path, NAME)
    (tmp_path / "US.signing.pub").write_text(LOG.public_key.hex() + "\n")
    (tmp_path / "w.toml").write_text(
        f'name = "{NAME}"\n[[log]]\nside = "US"\nsigning_key = "US.signing.pub"\n'
    )
    witness = WitnessService(load_witness(tmp_path / "w.toml"))
    yield witness
    witness.close()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def client(
    public_key: bytes, transport: httpx.AsyncBaseTransport, clock: Clock | None = None
) -> Witnesses:
    server = WitnessServer(name=NAME, url="http://witness/", public_key=public_key.hex())
    return Witnesses(Witnessing(servers=(server,)), clock or Clock(), transport)


def of(service: WitnessService) -> httpx.AsyncBaseTransport:
    return httpx.ASGITransport(app=build_app(service))


def submit(witnesses: Witnesses, log: Log, own: bool = True) -> Outcome:
    async def proof_from(old: int) -> Sequence[bytes] | None:
        return log.proof(old) if old <= log.size else None

    async def run() -> Outcome:
        try:
            return (await witnesses.submit(log.note(), proof_from, own))[0]
        finally:
            await witnesses.close()

    return asyncio.run(run())


def test_the_client_proves_growth_and_learns_the_witnesss_size_from_a_409(
    service: WitnessService,
) -> None:
    key = service.witness.signer.public_key
    log = Log(4)
    first = client(key, of(service))
    assert submit(first, log).status == "cosigned"
    log.grow(5)
    assert submit(first, log).status == "cosigned"
    # A node that restarted knows nothing: old 0, a 409 says 9, then the proof from 9.
    restarted = client(key, of(service))
    log.grow(2)
    outcome = submit(restarted, log)
    assert outcome.status == "cosigned" and outcome.cosignature is not None
    assert restarted.witnesses[0].sizes == {log.note().text.split("\n")[0]: 11}
    assert set(service.state.cosigned(log.note().text.split("\n")[0])) == {4, 9, 11}


def test_another_root_for_our_size_or_a_tree_our_proof_does_not_extend_is_a_split_view(
    service: WitnessService,
) -> None:
    key = service.witness.signer.public_key
    log = Log(6)
    fork = log.fork(3)
    assert submit(client(key, of(service)), fork).status == "cosigned"
    same_size = submit(client(key, of(service)), log)
    assert same_size.status == "split-view"
    assert "another root for size 6" in same_size.detail
    log.grow(2)
    beyond = submit(client(key, of(service)), log)
    assert (beyond.status, "(422)" in beyond.detail) == ("split-view", True)
    # The witness holds more of our log than we have: signed with our key, never by us.
    shorter = submit(client(key, of(service)), Log(4))
    assert (shorter.status, "larger than this checkpoint's 4" in shorter.detail) == (
        "split-view",
        True,
    )


def test_a_witness_past_the_peers_checkpoint_is_no_split_view(service: WitnessService) -> None:
    key = service.witness.signer.public_key
    log = Log(5)
    older = log.fork(5)
    log.grow(3)
    assert submit(client(key, of(service)), log).status == "cosigned"
    monitor = submit(client(key, of(service)), older, own=False)
    assert monitor.status == "cannot-prove"


def test_an_unreachable_witness_is_left_alone_for_its_backoff() -> None:
    calls = []

    def failing(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503, text="busy")

    clock = Clock()
    witnesses = client(
        Ed25519Signer.from_label("w").public_key, httpx.MockTransport(failing), clock
    )
    assert submit(witnesses, Log(2)).status == "unreachable"
    assert submit(witnesses, Log(2)).status == "backing-off"
    assert len(calls) == 1
    clock.now += 0.6
    assert submit(witnesses, Log(2)).status == "unreachable"
    clock.now += 0.6  # the second failure doubled the wait to 1 s
    assert submit(witnesses, Log(2)).status == "backing-off"
    clock.now += 0.6
    assert submit(witnesses, Log(2)).status == "unreachable"
    assert len(calls) == 3


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (httpx.Response(200, content=b"\xe2\x80\x94 x " + b"A" * MAX_ANSWER), "over"),
        (httpx.Response(200, text="not a cosignature\n"), "without cosignatures"),
        (httpx.Response(409, text="07\n"), "bad size"),
        (httpx.Response(404, text="unknown log\n"), "HTTP 404: unknown log"),
    ],
)
def test_a_witness_answering_nonsense_is_refused_saying_why(
    answer: httpx.Response, expected: str
) -> None:
    transport = httpx.MockTransport(lambda request: answer)
    outcome = submit(client(Ed25519Signer.from_label("w").public_key, transport), Log(2))
    assert outcome.status == "refused" and expected in outcome.detail, outcome


def test_a_cosignature_by_another_key_is_refused(service: WitnessService) -> None:
    stranger = Ed25519Signer.from_label("not the witness").public_key
    outcome = submit(client(stranger, of(service)), Log(3))
    assert (outcome.status, outcome.detail) == ("refused", "no cosignature by the witness's key")
