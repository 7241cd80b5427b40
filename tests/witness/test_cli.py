"""`clearline witness`: init writes an owner-only key and says what the nodes need; serve
refuses a bad configuration in one located line, never a traceback; arbitrary request bodies
get a status, never a crash."""

from __future__ import annotations

import asyncio
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from clearline.cli import main
from clearline.errors import WitnessRefusalError
from clearline.witness.config import load_witness
from clearline.witness.protocol import parse_request, request_body
from clearline.witness.server import WitnessService, build_app
from tests.witness.forks import LOG, Log

STATUSES = {200, 400, 403, 404, 409, 413, 422}


def test_init_writes_an_owner_only_key_and_refuses_to_replace_it(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["witness", "init", str(tmp_path), "--name", "w.test/1"])
    assert result.exit_code == 0, result.output
    key = tmp_path / "witness.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    public = (tmp_path / "witness.pub").read_text().strip()
    assert public in result.output and "w.test/1+" in result.output
    again = CliRunner().invoke(main, ["witness", "init", str(tmp_path), "--name", "w.test/1"])
    assert again.exit_code == 1 and again.stderr.startswith("error: ")
    assert "exists" in again.stderr
    spaced = CliRunner().invoke(main, ["witness", "init", str(tmp_path / "x"), "--name", "a b"])
    assert spaced.exit_code == 1 and "no spaces" in spaced.stderr


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        yield taken.getsockname()[1]


def test_serve_refuses_a_bad_configuration_in_one_located_line(
    tmp_path: Path, busy_port: int
) -> None:
    CliRunner().invoke(main, ["witness", "init", str(tmp_path), "--name", "w.test/1"])
    (tmp_path / "US.signing.pub").write_text(LOG.public_key.hex() + "\n")
    log = '[[log]]\nside = "US"\nsigning_key = "US.signing.pub"\n'
    cases = {
        "missing.toml": (None, "error: "),
        "bad.toml": ("name = 1\n", "bad.toml:1: name"),
        "nolog.toml": ('name = "w.test/1"\n[[log]]\nside = "US"\n', "nolog.toml:2: log[0]"),
        "nokey.toml": (f'name = "w.test/1"\nkey = "none.key"\n{log}', "nokey.toml:2: key"),
        "busy.toml": (
            f'name = "w.test/1"\n[listen]\nport = {busy_port}\n{log}',
            "busy.toml:3: listen.port",
        ),
    }
    for name, (text, start) in cases.items():
        config = tmp_path / name
        if text is not None:
            config.write_text(text)
        result = CliRunner().invoke(main, ["witness", "serve", "--config", str(config)])
        assert result.exit_code == 2, (name, result.output)
        assert "Traceback" not in result.output
        line = result.stderr.strip()
        assert len(line.splitlines()) == 1, (name, line)
        assert start in line if start != "error: " else line.startswith(start), (name, line)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bodies_are_refused_with_a_status(body: bytes) -> None:
    with pytest.raises(WitnessRefusalError) as refusal:
        parse_request(body)
    assert refusal.value.status == 400


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.AsyncClient]:
    folder = tmp_path_factory.mktemp("witness")
    CliRunner().invoke(main, ["witness", "init", str(folder), "--name", "w.test/1"])
    (folder / "US.signing.pub").write_text(LOG.public_key.hex() + "\n")
    (folder / "w.toml").write_text(
        'name = "w.test/1"\n[[log]]\nside = "US"\nsigning_key = "US.signing.pub"\n'
    )
    service = WitnessService(load_witness(folder / "w.toml"))
    yield httpx.AsyncClient(
        transport=httpx.ASGITransport(app=build_app(service)), base_url="http://w"
    )
    service.close()


VALID = request_body(0, [], Log(3).note())


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_mutated_requests_get_a_status_the_specification_names(
    app: httpx.AsyncClient, data: st.DataObject
) -> None:
    body = bytearray(VALID)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(body) - 1))
        body[at] = data.draw(st.integers(0, 255))
    response = asyncio.run(app.post("/add-checkpoint", content=bytes(body)))
    assert response.status_code in STATUSES, (response.status_code, response.text)
    assert "Traceback" not in response.text
