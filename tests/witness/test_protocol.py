"""The witness's add-checkpoint interface: each status code the tlog-witness specification
names, for the reason it names, and the cosignature it returns on success."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clearline.errors import WitnessRefusalError
from clearline.log import merkle
from clearline.log.note import Note, TreeHead, parse_note, sign_note, verify_note
from clearline.protocol.signing import Ed25519Signer
from clearline.witness.config import init_witness_key, load_witness
from clearline.witness.protocol import parse_cosignatures, parse_request, request_body
from clearline.witness.server import WitnessService, build_app
from clearline.witness.state import WitnessState
from tests.witness.forks import LOG, ORIGIN, Log

NAME = "witness.test/w1"


def write_witness(folder: Path, extra: str = "") -> Path:
    init_witness_key(folder, NAME)
    (folder / "US.signing.pub").write_text(LOG.public_key.hex() + "\n")
    config = folder / "witness.toml"
    config.write_text(
        f'name = "{NAME}"\n{extra}[[log]]\nside = "US"\nsigning_key = "US.signing.pub"\n'
    )
    return config


@pytest.fixture
def service(tmp_path: Path) -> Iterator[WitnessService]:
    witness = WitnessService(load_witness(write_witness(tmp_path)), clock=lambda: 1_700_000_000)
    yield witness
    witness.close()


class WitnessClient:
    """The witness's app called in this process, on a loop of its own, from sync tests."""

    def __init__(self, service: WitnessService) -> None:
        self.loop = asyncio.new_event_loop()
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=build_app(service)), base_url="http://witness"
        )

    def request(self, method: str, path: str, content: bytes = b"") -> httpx.Response:
        return self.loop.run_until_complete(self.client.request(method, path, content=content))

    def post(self, path: str, content: bytes = b"") -> httpx.Response:
        return self.request("POST", path, content)

    def get(self, path: str) -> httpx.Response:
        return self.request("GET", path)

    def __enter__(self) -> WitnessClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


@pytest.fixture
def client(service: WitnessService) -> Iterator[WitnessClient]:
    with WitnessClient(service) as test_client:
        yield test_client


def post(client: WitnessClient, old: int, proof: list[bytes], note: Note | str) -> tuple[int, str]:
    body = request_body(old, proof, note) if isinstance(note, Note) else note.encode()
    response = client.post("/add-checkpoint", content=body)
    return response.status_code, response.text


def test_a_first_checkpoint_is_cosigned_and_the_cosignature_verifies(
    client: WitnessClient, service: WitnessService
) -> None:
    log = Log(5)
    status, text = post(client, 0, [], log.note())
    assert status == 200, text
    cosignatures = parse_cosignatures(text.encode())
    note = log.note()
    witness = service.witness.key
    verified = verify_note(Note(note.text, cosignatures), [witness])
    assert [(v.key.name, v.timestamp) for v in verified] == [(NAME, 1_700_000_000)]
    assert service.state.cosigned(ORIGIN) == {5: log.root()}


def test_growth_with_a_consistency_proof_is_cosigned_and_the_same_checkpoint_again(
    client: WitnessClient, service: WitnessService
) -> None:
    log = Log(5)
    assert post(client, 0, [], log.note())[0] == 200
    log.grow(8)
    assert post(client, 5, log.proof(5), log.note())[0] == 200
    # The very checkpoint the witness holds: cosigned again, the state unchanged.
    assert post(client, 13, [], log.note())[0] == 200
    assert service.state.cosigned(ORIGIN) == {5: log.root(5), 13: log.root(13)}


def test_409_when_the_old_size_is_not_the_witnesss_with_its_size_as_the_body(
    client: WitnessClient,
) -> None:
    log = Log(5)
    assert post(client, 0, [], log.note())[0] == 200
    log.grow(3)
    response = client.post("/add-checkpoint", content=request_body(3, log.proof(3), log.note()))
    assert response.status_code == 409
    assert response.text == "5\n"
    assert response.headers["content-type"] == "text/x.tlog.size"
    # A client that knows nothing asks with old 0 and learns the size the same way.
    assert post(client, 0, [], log.note()) == (409, "5\n")


def test_409_for_another_root_at_the_size_it_holds_and_the_fork_is_kept_as_evidence(
    client: WitnessClient, service: WitnessService
) -> None:
    log = Log(5)
    assert post(client, 0, [], log.note())[0] == 200
    fork = log.fork(4)
    assert fork.size == 5 and fork.root() != log.root()
    assert post(client, 5, [], fork.note()) == (409, "5\n")
    assert service.state.cosigned(ORIGIN) == {5: log.root()}
    assert service.state.evidence(ORIGIN) == [str(fork.note())]
    # The root it holds, asked with a stale old size: refused, and no evidence of anything.
    assert post(client, 0, [], log.note()) == (409, "5\n")
    assert post(client, 0, [], fork.note()) == (409, "5\n")
    assert service.state.evidence(ORIGIN) == [str(fork.note())], "kept once"


def test_422_for_a_proof_that_does_not_verify(
    client: WitnessClient, service: WitnessService
) -> None:
    log = Log(5)
    assert post(client, 0, [], log.note())[0] == 200
    fork = log.fork(3)  # shares 3 entries with what the witness cosigned, not 5
    fork.grow(4)
    status, text = post(client, 5, fork.proof(5), fork.note())
    assert status == 422, text
    assert "does not verify" in text
    bogus = [bytes(32)] * 3
    log.grow(3)
    assert post(client, 5, bogus, log.note())[0] == 422
    assert post(client, 5, log.proof(5)[:-1], log.note())[0] == 422
    assert service.state.cosigned(ORIGIN) == {5: log.root(5)}


def test_404_for_an_unknown_log_and_403_for_a_signature_that_is_not_the_logs(
    client: WitnessClient,
) -> None:
    stranger = Ed25519Signer.from_label("stranger")
    head = TreeHead("clearline/XX/00", 1, merkle.leaf_hash(b"x"))
    assert post(client, 0, [], sign_note(head.text(), head.origin, stranger))[0] == 404
    # The log's origin, signed by another key under the log's name: not the log's signature.
    text = Log(2).note().text
    assert post(client, 0, [], sign_note(text, ORIGIN, stranger))[0] == 403
    # The log's key, but the text changed after signing.
    good = Log(2).note()
    forged = Note(text.replace("\n2\n", "\n3\n"), good.signatures)
    assert post(client, 0, [], forged)[0] == 403


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("old 0\n", "blank line"),
        ("new 0\n\n{note}", "'old <size>'"),
        ("old 05\n\n{note}", "leading 0"),
        ("old -1\n\n{note}", "leading 0"),
        ("old 9\n\n{note}", "above the checkpoint's size"),
        ("old 0\n" + "A" * 43 + "=\n\n{note}", "must be empty"),
        ("old 2\nnot-a-hash\n\n{note}", "base64"),
        ("old 2\n" + ("A" * 43 + "=\n") * 64 + "\n{note}", "more than 63"),
        ("old 0\n\nnot a note\n", "the checkpoint"),
        ("old 0\n\nclearline/US/x\n2\n\n\u2014 a AAAAAAAA\n", "checkpoint"),
    ],
)
def test_400_for_a_malformed_request_saying_what(
    client: WitnessClient, body: str, problem: str
) -> None:
    note = str(Log(2).note())
    status, text = post(client, 0, [], body.replace("{note}", note))
    assert status == 400, text
    assert problem in text
    assert "Traceback" not in text


def test_bytes_that_are_not_text_and_oversized_or_wrong_method_requests(
    client: WitnessClient,
) -> None:
    response = client.post("/add-checkpoint", content=b"old 0\n\n\xff\xfe")
    assert response.status_code == 400
    huge = client.post("/add-checkpoint", content=b"old 0\n" + b"A" * 70_000)
    assert huge.status_code == 413
    assert client.get("/add-checkpoint").status_code == 405
    assert client.post("/other").status_code == 404


def test_state_survives_a_restart_and_the_witness_never_goes_back(tmp_path: Path) -> None:
    config = write_witness(tmp_path)
    log = Log(4)
    first = WitnessService(load_witness(config))
    with WitnessClient(first) as client:
        assert post(client, 0, [], log.note())[0] == 200
    first.close()
    again = WitnessService(load_witness(config))
    with WitnessClient(again) as client:
        # A smaller tree, even one consistent with what it holds: never cosigned.
        assert post(client, 4, log.proof(2, 4), Log(2).note())[0] == 400
        assert post(client, 0, [], Log(2).note()) == (409, "4\n")
    again.close()
    assert WitnessState(tmp_path / "witness.db").cosigned(ORIGIN) == {4: log.root()}


def test_the_request_format_round_trips() -> None:
    log = Log(9)
    proof = log.proof(4)
    request = parse_request(request_body(4, proof, log.note()))
    assert (request.old_size, request.proof, request.head.size) == (4, tuple(proof), 9)
    assert request.note == parse_note(str(log.note()))
    with pytest.raises(WitnessRefusalError) as info:
        parse_request(b"old 1\n" + base64.b64encode(bytes(31)) + b"\n\n" + str(log.note()).encode())
    assert info.value.status == 400


def test_config_errors_are_located(tmp_path: Path) -> None:
    from clearline.witness.config import WitnessConfigError

    config = write_witness(tmp_path, extra="max_body_bytes = 5\n")
    with pytest.raises(WitnessConfigError) as info:
        load_witness(config)
    assert info.value.line == 2
    config.write_text(f'name = "{NAME}"\n[[log]]\nside = "US"\n')
    with pytest.raises(WitnessConfigError, match="both side and signing_key") as info:
        load_witness(config)
    assert info.value.line == 2
    config.write_text(
        f'name = "{NAME}"\n[[log]]\nside = "US"\nsigning_key = "US.signing.pub"\n'
        '[[log]]\nside = "PRC"\nsigning_key = "nowhere.pub"\n'
    )
    with pytest.raises(WitnessConfigError, match="missing") as info:
        load_witness(config)
    assert info.value.line == 7
    config.write_text(f'name = "{NAME}"\n[[log]]\nvkey = "a+b+c"\n')
    with pytest.raises(WitnessConfigError, match="vkey") as info:
        load_witness(config)
    assert info.value.line == 3
