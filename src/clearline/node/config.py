"""Node configuration: TOML, validated, with errors that give file, line and expectation.

tomllib gives no positions, so `toml_lines` finds each key's line by scanning
the text for table headers and `key =` lines; good enough to point a person at
the right place in a hand-written file.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from clearline.errors import InputFileError
from clearline.hotline.endpoint import DEFAULT_MAX_ASSETS
from clearline.protocol.messages import SIDE_PATTERN
from clearline.sourcemap import LineMap, read_text, validate
from clearline.tak.settings import TakSettings

SideName = Annotated[str, Field(pattern=f"^{SIDE_PATTERN}$")]
Port = Annotated[int, Field(ge=0, le=65535)]


class NodeConfigError(InputFileError):
    """A node configuration file is invalid."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class Listen(_Section):
    host: str = "127.0.0.1"
    port: Port = 7400


class Peer(_Section):
    side: SideName
    address: str | None = Field(default=None, pattern=r"^[^:]+:\d{1,5}$")
    """HOST:PORT to dial; omit to wait for the peer to connect."""
    certificate: str
    """The peer's TLS certificate (pinned: the only one accepted)."""
    signing_key: str
    """The peer's Ed25519 public key, hex (pinned)."""


_HOST_NAME = re.compile(r"^(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9][A-Za-z0-9.-]{0,252})(:\d{1,5})?$")


def _host_name(value: str) -> str:
    if not _HOST_NAME.match(value):
        raise ValueError(
            "expected a host name or address as a Host header carries it, with or without "
            ":PORT (e.g. node.example, 10.0.0.1, [::1]:8400)"
        )
    return value


HostName = Annotated[str, AfterValidator(_host_name)]
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


class Api(_Section):
    host: str = "127.0.0.1"
    port: Port = 8400
    tokens: str | None = None
    """The hashed API tokens (JSON); default: KEYS_DIR/SIDE.api-tokens.json, as keys init
    writes it."""
    hosts: tuple[HostName, ...] | None = Field(default=None, max_length=64)
    """Names the API answers to in the Host header, each with or without the API's port (or
    with an explicit port); default: 127.0.0.1, localhost and [::1], plus the bind address if
    it is neither loopback nor a wildcard."""

    def allowed_hosts(self) -> tuple[str, ...]:
        if self.hosts is not None:
            return tuple(h.lower() for h in self.hosts)
        bind = self.host.lower()
        if ":" in bind and not bind.startswith("["):
            bind = f"[{bind}]"
        extra = () if bind in (*LOOPBACK_NAMES, "[::]", "0.0.0.0", "") else (bind,)
        return (*LOOPBACK_NAMES, *extra)


class Disclosure(_Section):
    """What the node may reveal about its own assets when the peer asks, without a human."""

    reveal_mission: bool = True
    reveal_armed: bool = True
    reveal_intent: bool = True
    reveal_identity: bool = True
    position_precision_m: int = Field(default=1000, ge=0, le=1_000_000)
    match_tolerance_m: int = Field(default=25_000, ge=1, le=1_000_000)


class Limits(_Section):
    """Per-peer bounds: a flood meets these, never unbounded memory."""

    frames_per_s: int = Field(default=5000, ge=1)
    burst: int = Field(default=10_000, ge=1)
    max_pending_log: int = Field(default=100_000, ge=100)
    event_history: int = Field(default=2000, ge=10, le=1_000_000)
    max_open_clarifications: int = Field(default=8192, ge=1)
    max_assets: int = Field(default=DEFAULT_MAX_ASSETS, ge=1, le=10_000_000)
    """Own assets the registry holds, the most recently published (the rest are dropped and
    counted), so that a feed of ever-new ids cannot grow the node's memory without end."""
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    """The largest request body the local API reads; larger ones are refused with 413."""
    max_event_streams: int = Field(default=64, ge=1, le=100_000)
    """Event stream (SSE) subscribers at once; one more is refused with 503."""
    max_handshakes: int = Field(default=128, ge=1, le=100_000)
    """Peer connections still in their TLS handshake at once; more are closed at once."""
    max_handshakes_per_source: int = Field(default=16, ge=1, le=100_000)
    """The same, from one source address."""


class Feed(_Section):
    """[feed]: where the node takes its own assets as a binary record stream (docs/feed.md)."""

    host: str = "127.0.0.1"
    port: Port = 7600
    max_connections: int = Field(default=8, ge=1, le=1024)
    """Feeds connected at once; one more is closed at once."""
    max_unsent_bytes: int = Field(default=1024 * 1024, ge=64 * 1024, le=256 * 1024 * 1024)
    """While this much signed telemetry waits to go to the peer, the feeds are not read:
    they slow down, and nothing is dropped or buffered without bound."""


class WitnessServer(_Section):
    """One witness the node submits its checkpoints to, and whose cosignatures it counts."""

    name: str = Field(pattern=r"^[^\s+]{1,255}$")
    """The witness's key name on its cosignatures (e.g. witness.example/w1)."""
    url: str = Field(pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
    """Its submission prefix: the node POSTs to URL/add-checkpoint."""
    public_key: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    """Its Ed25519 cosigning key, hex (pinned), as `clearline witness init` prints it."""


class Witnessing(_Section):
    """[witness]: the witnesses, how many cosignatures a checkpoint needs, and what the node
    does about a checkpoint (its own or the peer's) that has fewer."""

    quorum: int = Field(default=1, ge=0, le=16)
    on_missing: Literal["flag", "fail-closed"] = "flag"
    """flag: an event, a metric and a console warning; fail-closed: also withhold the gate's
    link-up caps (as if the link were degraded) until the latest checkpoints have a quorum."""
    timeout_ms: int = Field(default=3000, ge=50, le=60_000)
    """How long a checkpoint waits for the witnesses before it is sent to the peer."""
    servers: tuple[WitnessServer, ...] = Field(default=(), max_length=16)

    @model_validator(mode="after")
    def _quorum_reachable(self) -> Witnessing:
        if self.quorum > len(self.servers):
            raise ValueError(
                f"quorum {self.quorum} is more than the {len(self.servers)} witness(es) listed "
                "([[witness.servers]])"
            )
        names = [s.name for s in self.servers]
        if len(set(names)) != len(names):
            raise ValueError("two witnesses have one name")
        return self


class NodeConfig(_Section):
    side: SideName
    keys_dir: str = "keys"
    data_dir: str = "data"
    policy: str | None = None
    roster: str | None = None
    """The authority roster (officers' public keys); without one, no act is human."""
    heartbeat_ms: int = Field(default=1000, ge=10, le=60_000)
    query_ttl_ms: int = Field(default=2000, ge=10, le=3_600_000)
    listen: Listen | None = None
    peer: Peer
    api: Api = Api()
    disclosure: Disclosure = Disclosure()
    limits: Limits = Limits()
    tak: TakSettings | None = None
    """CoT in and out (docs/tak.md); without it the node opens no TAK port."""
    witness: Witnessing = Witnessing(quorum=0)
    feed: Feed | None = None
    """Own assets as a binary record stream (docs/feed.md); without it no feed port opens."""

    base: Path = Path(".")
    source: str = "<config>"
    """The file it was read from, for errors about what it asks for."""

    def path(self, value: str) -> Path:
        """A path from the file, relative to the file's folder."""
        p = Path(value)
        return p if p.is_absolute() else self.base / p

    def tokens_path(self) -> Path:
        """The hashed API tokens the node loads."""
        if self.api.tokens is not None:
            return self.path(self.api.tokens)
        return self.path(self.keys_dir) / f"{self.side}.api-tokens.json"


_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-]+)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*=")


def toml_lines(text: str) -> LineMap:
    """The line of each table and key of a TOML file, by its path; an array of tables'
    items (``[[a.b]]``) by their index, as pydantic names them in its errors."""
    lines: dict[tuple[str | int, ...], int] = {}
    table: tuple[str | int, ...] = ()
    items: dict[tuple[str, ...], int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            name = tuple(header.group(2).split("."))
            table = name
            if header.group(1) == "[[":
                lines.setdefault(name, number)
                items[name] = items.get(name, -1) + 1
                table = (*name, items[name])
            lines.setdefault(table, number)
            continue
        key = _KEY.match(line)
        if key:
            lines.setdefault((*table, key.group(1)), number)
    return LineMap(lines)


Config = TypeVar("Config", bound=BaseModel)


def parse_toml_config(
    model: type[Config], text: str, source: str, base: Path, error: type[InputFileError]
) -> Config:
    """A TOML file as `model`, every problem an `error` naming its line; `base` (the file's
    folder, for relative paths) and `source` are set here, never by the file."""
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        raise error(
            f"not valid TOML: {exc}", source, int(match.group(1)) if match else None
        ) from None
    for internal in ("base", "source"):
        if internal in data:
            line = toml_lines(text).line_of((internal,))
            raise error(f"'{internal}' is not a setting", source, line)
    config = validate(model, data, toml_lines(text), source, error)
    return config.model_copy(update={"base": base, "source": source})


def parse_node_config(text: str, source: str, base: Path) -> NodeConfig:
    return parse_toml_config(NodeConfig, text, source, base, NodeConfigError)


def setting_error(config: NodeConfig, key: tuple[str, ...], message: str) -> NodeConfigError:
    """An error about what a setting asks for (a port in use, say), naming the file and key."""
    try:
        line = toml_lines(Path(config.source).read_text(encoding="utf-8")).line_of(key)
    except (OSError, UnicodeDecodeError):
        line = None
    return NodeConfigError(f"{'.'.join(key)}: {message}", config.source, line)


def load_node_config(path: Path) -> NodeConfig:
    text = read_text(path, "node configuration", NodeConfigError)
    return parse_node_config(text, str(path), path.parent)
