"""Node configuration and key material: clear, located errors for every way they go wrong."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from clearline.cli import main
from clearline.errors import KeyMaterialError
from clearline.node.api import build_app
from clearline.node.config import NodeConfigError, parse_node_config
from clearline.node.keys import init_keys, load_certificate, load_identity, load_signer

DOCS = Path(__file__).resolve().parents[2] / "docs"

GOOD = """\
side = "US"
heartbeat_ms = 1000

[listen]
port = 7400

[peer]
side = "PRC"
address = "10.0.0.2:7400"
certificate = "keys/PRC.tls.crt"
signing_key = "keys/PRC.signing.pub"

[disclosure]
position_precision_m = 5000
"""


def test_good_config_and_relative_paths() -> None:
    config = parse_node_config(GOOD, "us.toml", Path("/etc/clearline"))
    assert config.peer.address == "10.0.0.2:7400"
    assert config.disclosure.position_precision_m == 5000
    assert config.path(config.peer.certificate) == Path("/etc/clearline/keys/PRC.tls.crt")
    assert config.api.host == "127.0.0.1", "the local API binds to loopback by default"


@pytest.mark.parametrize(
    ("change", "line", "expected"),
    [
        (("heartbeat_ms = 1000", "heartbeat_ms = 5"), 2, "heartbeat_ms"),
        (("port = 7400", "port = 70000"), 5, "listen.port"),
        (('address = "10.0.0.2:7400"', 'address = "nowhere"'), 9, "peer.address"),
        (("position_precision_m = 5000", 'colour = "red"'), 14, "Extra inputs"),
        (('side = "PRC"', 'side = "prc"'), 8, "peer.side"),
    ],
)
def test_config_errors_name_the_line(change: tuple[str, str], line: int, expected: str) -> None:
    with pytest.raises(NodeConfigError) as info:
        parse_node_config(GOOD.replace(*change), "us.toml", Path("."))
    assert info.value.line == line, str(info.value)
    assert expected in str(info.value)


def test_invalid_toml_names_its_line() -> None:
    with pytest.raises(NodeConfigError, match="not valid TOML") as info:
        parse_node_config(GOOD + 'broken = "unterminated\n', "us.toml", Path("."))
    assert info.value.line == 15


def test_keys_init_writes_owner_only_private_keys(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["keys", "init", str(tmp_path), "--side", "US"])
    assert result.exit_code == 0, result.output
    for name in ("US.signing.key", "US.tls.key"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600
    again = CliRunner().invoke(main, ["keys", "init", str(tmp_path), "--side", "US"])
    assert again.exit_code == 1
    assert "--force" in again.output


def test_key_material_errors(tmp_path: Path) -> None:
    init_keys(tmp_path, "US")
    init_keys(tmp_path, "PRC")
    with pytest.raises(KeyMaterialError, match="is missing"):
        load_signer(tmp_path / "nope.signing.key")
    (tmp_path / "US.signing.key").chmod(0o644)
    with pytest.raises(KeyMaterialError, match="chmod 600"):
        load_signer(tmp_path / "US.signing.key")
    (tmp_path / "US.signing.key").chmod(0o600)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
    with pytest.raises(KeyMaterialError, match="expired on"):
        load_certificate(tmp_path / "US.tls.crt", now=later)
    (tmp_path / "US.tls.key").unlink()
    init_keys(tmp_path / "other", "US")
    (tmp_path / "US.tls.key").write_bytes((tmp_path / "other" / "US.tls.key").read_bytes())
    (tmp_path / "US.tls.key").chmod(0o600)
    with pytest.raises(KeyMaterialError, match="does not match certificate"):
        load_identity(tmp_path, "US", "PRC", tmp_path / "PRC.tls.crt", tmp_path / "PRC.signing.pub")


def test_published_openapi_is_current() -> None:
    current = json.dumps(build_app(None).openapi(), indent=2, sort_keys=True) + "\n"
    assert (DOCS / "openapi.json").read_text() == current, (
        "docs/openapi.json is stale: python scripts/update_openapi.py"
    )
