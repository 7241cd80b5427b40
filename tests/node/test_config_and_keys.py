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
from clearline.node.tokens import TokenFileError, load_tokens
from tests.node.harness import make_keys, write_config

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
    listed = json.loads((tmp_path / "US.api-tokens.json").read_text())["tokens"]
    assert [(t["name"], t["role"]) for t in listed] == [
        ("observer", "observer"),
        ("sensor", "sensor"),
        ("operator", "operator"),
    ]
    tokens = load_tokens(tmp_path / "US.api-tokens.json")
    for role in ("observer", "sensor", "operator"):
        path = tmp_path / f"US.api-token.{role}"
        assert path.stat().st_mode & 0o777 == 0o600
        assert str(path) in result.output, "keys init says where each token is"
        token = path.read_text().strip()
        assert len(token) >= 43
        caller = tokens.check(token)
        assert caller is not None and caller.role == role
        assert token not in (tmp_path / "US.api-tokens.json").read_text(), "only hashes there"
    assert tokens.check("not-a-token") is None
    again = CliRunner().invoke(main, ["keys", "init", str(tmp_path), "--side", "US"])
    assert again.exit_code == 1
    assert "--force" in again.output


def test_api_settings_and_their_errors() -> None:
    config = parse_node_config(GOOD, "us.toml", Path("/etc/clearline"))
    assert config.api.allowed_hosts() == ("127.0.0.1", "localhost", "[::1]")
    assert config.tokens_path() == Path("/etc/clearline/keys/US.api-tokens.json")
    assert config.limits.max_body_bytes == 1024 * 1024
    assert config.limits.max_event_streams == 64
    custom = parse_node_config(
        GOOD + '[api]\nhost = "10.0.0.1"\ntokens = "/srv/tokens.json"\n'
        'hosts = ["node.example", "[::1]:8400"]\n',
        "us.toml",
        Path("."),
    )
    assert custom.tokens_path() == Path("/srv/tokens.json")
    assert custom.api.allowed_hosts() == ("node.example", "[::1]:8400")
    bound = parse_node_config(GOOD + '[api]\nhost = "10.0.0.1"\n', "us.toml", Path("."))
    assert bound.api.allowed_hosts() == ("127.0.0.1", "localhost", "[::1]", "10.0.0.1")
    for extra, line, expected in (
        ('[api]\nport = 1\nhosts = ["good", "bad host"]\n', 17, "api.hosts[1]: Value error"),
        ("[api]\nhosts = 3\n", 16, "api.hosts"),
        ("[limits]\nmax_body_bytes = 10\n", 16, "limits.max_body_bytes"),
        ("[limits]\nevent_history = 100\nmax_event_streams = 0\n", 17, "max_event_streams"),
    ):
        with pytest.raises(NodeConfigError) as info:
            parse_node_config(GOOD + extra, "us.toml", Path("."))
        assert info.value.line == line, str(info.value)
        assert expected in str(info.value)


def test_tokens_file_errors_are_located(tmp_path: Path) -> None:
    path = tmp_path / "US.api-tokens.json"
    with pytest.raises(TokenFileError, match="is missing; create tokens with `clearline keys"):
        load_tokens(path)
    good = {"name": "observer", "role": "observer", "sha256": "ab" * 32}
    for text, line, expected in (
        ('{"tokens": [\n  {"name": "x",\n', 3, "not valid JSON"),
        (json.dumps({"tokens": [good, {**good, "role": "admin"}]}, indent=2), 10, "role"),
        (json.dumps({"tokens": [{**good, "sha256": "secret"}]}, indent=2), 6, "sha256"),
        (json.dumps({"tokens": [good], "more": 1}, indent=2), 9, "Extra inputs"),
    ):
        path.write_text(text)
        path.chmod(0o600)
        with pytest.raises(TokenFileError) as info:
            load_tokens(path)
        assert info.value.line == line, str(info.value)
        assert expected in str(info.value)
        assert str(path) in str(info.value)
    path.write_text(json.dumps({"tokens": [good]}))
    path.chmod(0o666)
    with pytest.raises(TokenFileError, match="others may write to it"):
        load_tokens(path)


def test_keys_token_adds_and_replaces_a_token(tmp_path: Path) -> None:
    runner = CliRunner()
    added = runner.invoke(
        main,
        ["keys", "token", str(tmp_path), "--side", "US", "--role", "sensor", "--name", "radar"],
    )
    assert added.exit_code == 0, added.output
    path = tmp_path / "US.api-token.radar"
    assert str(path) in added.output
    assert path.stat().st_mode & 0o777 == 0o600
    first = path.read_text().strip()
    caller = load_tokens(tmp_path / "US.api-tokens.json").check(first)
    assert caller is not None and (caller.name, caller.role) == ("radar", "sensor")
    again = runner.invoke(
        main,
        ["keys", "token", str(tmp_path), "--side", "US", "--role", "operator", "--name", "radar"],
    )
    assert again.exit_code == 1 and "--force" in again.output
    forced = runner.invoke(
        main,
        [
            "keys",
            "token",
            str(tmp_path),
            "--side",
            "US",
            "--role",
            "operator",
            "--name",
            "radar",
            "--force",
        ],
    )
    assert forced.exit_code == 0, forced.output
    tokens = load_tokens(tmp_path / "US.api-tokens.json")
    assert len(tokens) == 1
    assert tokens.check(first) is None, "the replaced token no longer works"
    replaced = tokens.check(path.read_text().strip())
    assert replaced is not None and replaced.role == "operator"
    bad = runner.invoke(
        main, ["keys", "token", str(tmp_path), "--side", "US", "--role", "sensor", "--name", "A B"]
    )
    assert bad.exit_code == 1 and "token name" in bad.output


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


def test_keys_tls_replaces_the_tls_pair_alone(tmp_path: Path) -> None:
    init_keys(tmp_path, "US")
    init_keys(tmp_path, "PRC")
    kept = {
        p.name: p.read_bytes()
        for p in tmp_path.iterdir()
        if p.name.startswith("US.") and ".tls." not in p.name
    }
    old_crt = (tmp_path / "US.tls.crt").read_bytes()
    result = CliRunner().invoke(main, ["keys", "tls", str(tmp_path), "--side", "US"])
    assert result.exit_code == 0, result.output
    assert "SIGHUP" in result.output
    assert (tmp_path / "US.tls.crt").read_bytes() != old_crt
    assert (tmp_path / "US.tls.crt.old").read_bytes() == old_crt
    for name in ("US.tls.key", "US.tls.key.old"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600, name
    assert {p: (tmp_path / p).read_bytes() for p in kept} == kept, "more than the TLS pair changed"
    load_identity(tmp_path, "US", "PRC", tmp_path / "PRC.tls.crt", tmp_path / "PRC.signing.pub")
    missing = CliRunner().invoke(main, ["keys", "tls", str(tmp_path / "none"), "--side", "US"])
    assert missing.exit_code != 0 and "keys init" in missing.output
    assert "Traceback" not in missing.output


def test_published_openapi_is_current() -> None:
    current = json.dumps(build_app(None).openapi(), indent=2, sort_keys=True) + "\n"
    assert (DOCS / "openapi.json").read_text() == current, (
        "docs/openapi.json is stale: python scripts/update_openapi.py"
    )


def test_the_descriptor_warning_counts_every_port_s_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A node whose descriptor limit is below what its caps may hold says so at start,
    counting the feed's and each CoT port's connections, not only the peer port's."""
    import resource

    from clearline.node.config import load_node_config
    from clearline.node.serve import _check_descriptors

    make_keys(tmp_path, "US", "PRC")
    extra = (
        '[feed]\nport = 0\n[tak]\nmapping = "tak.yaml"\n'
        'listen = ["tcp://127.0.0.1:0", "udp://127.0.0.1:0"]'
    )
    config = load_node_config(write_config(tmp_path, "PRC", "US", listen=True, extra=extra))
    monkeypatch.setattr(resource, "getrlimit", lambda _: (100, 100))
    with caplog.at_level("WARNING", logger="clearline.node"):
        _check_descriptors(config)
    (line,) = [r.getMessage() for r in caplog.records if "descriptor limit" in r.getMessage()]
    assert "[feed] max_connections 8" in line
    assert "[tak] max_connections per port 32" in line  # the TCP port; UDP holds none
    assert "ulimit -n 296" in line  # 128 + 64 + 8 + 32 + a margin of 64
