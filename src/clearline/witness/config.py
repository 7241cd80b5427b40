"""A witness's configuration (TOML) and key: its name, its Ed25519 cosigning key, where it
keeps its state, and the logs it witnesses, each by origin and note verifier key.

A clearline side's log is named by `log_origin(side, kid)` and signs its checkpoints
with the side's signing key, so a log can be given as that side and its public key file
(``SIDE.signing.pub``, as `clearline keys init` writes it); any other C2SP log by its
verifier key (``vkey``), whose name is the origin unless ``origin`` says otherwise.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from clearline.errors import InputFileError, KeyMaterialError, NoteError
from clearline.log.note import COSIGNATURE_V1, ED25519, NoteKey, log_origin
from clearline.node.config import Port, SideName, parse_toml_config, toml_lines
from clearline.node.keys import load_signer, load_verifier
from clearline.protocol.signing import Ed25519Signer
from clearline.sourcemap import read_text

KEY_NAME = r"[^\s+]{1,255}"
"""A note key name: no spaces and no '+' (signed-note)."""


class WitnessConfigError(InputFileError):
    """A witness configuration file is invalid."""


def _vkey(value: str) -> str:
    try:
        key = NoteKey.parse(value)
    except NoteError as exc:
        raise ValueError(str(exc)) from None
    if key.signature_type != ED25519:
        raise ValueError("expected a log's Ed25519 note key (type 0x01)")
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class Listen(_Section):
    host: str = "127.0.0.1"
    port: Port = 7380


class WitnessedLog(_Section):
    """One log the witness cosigns: a clearline side (`side` and `signing_key`, the path of
    its public key file) or any C2SP log (`vkey`, and `origin` if not the key's name)."""

    side: SideName | None = None
    signing_key: str | None = None
    vkey: Annotated[str, AfterValidator(_vkey)] | None = None
    origin: str | None = Field(default=None, pattern=f"^{KEY_NAME}$")

    @model_validator(mode="after")
    def _one_way(self) -> WitnessedLog:
        by_side = self.side is not None or self.signing_key is not None
        if by_side == (self.vkey is not None):
            raise ValueError("give either side and signing_key, or vkey")
        if by_side and (self.side is None or self.signing_key is None):
            raise ValueError("a side's log needs both side and signing_key")
        if by_side and self.origin is not None:
            raise ValueError("a side's log has its origin from the side and key; drop origin")
        return self


class WitnessConfig(_Section):
    name: str = Field(pattern=f"^{KEY_NAME}$")
    """The witness's key name on its cosignatures, e.g. witness.example/w1."""
    key: str = "witness.key"
    """Its Ed25519 key (64 hex digits, mode 600), as `clearline witness init` writes it."""
    state: str = "witness.db"
    listen: Listen = Listen()
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=1024 * 1024)
    """The largest add-checkpoint request read; a longer one is refused with 413."""
    log: tuple[WitnessedLog, ...] = Field(default=(), max_length=10_000)

    base: Path = Path(".")
    source: str = "<config>"

    def path(self, value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else self.base / p


@dataclass(frozen=True)
class Witness:
    """A loaded configuration: the key, and the note key of each log by origin."""

    config: WitnessConfig
    signer: Ed25519Signer
    logs: dict[str, NoteKey]

    @property
    def key(self) -> NoteKey:
        """The witness's own verifier key (a cosignature key, type 0x04)."""
        return NoteKey(self.config.name, self.signer.public_key, COSIGNATURE_V1)


def setting_error(config: WitnessConfig, key: tuple[str | int, ...], message: str) -> Exception:
    try:
        line = toml_lines(Path(config.source).read_text(encoding="utf-8")).line_of(key)
    except (OSError, UnicodeDecodeError):
        line = None
    where = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in key).lstrip(".")
    return WitnessConfigError(f"{where}: {message}", config.source, line)


def parse_witness_config(text: str, source: str, base: Path) -> WitnessConfig:
    return parse_toml_config(WitnessConfig, text, source, base, WitnessConfigError)


def load_witness(path: Path) -> Witness:
    """The configuration at `path`, its key and the logs' keys, or a located error."""
    text = read_text(path, "witness configuration", WitnessConfigError)
    config = parse_witness_config(text, str(path), path.parent)
    try:
        signer = load_signer(config.path(config.key))
    except KeyMaterialError as exc:
        raise setting_error(config, ("key",), str(exc)) from None
    logs: dict[str, NoteKey] = {}
    for index, entry in enumerate(config.log):
        if entry.vkey is not None:
            key = NoteKey.parse(entry.vkey)
            origin = entry.origin or key.name
        else:
            assert entry.side is not None and entry.signing_key is not None
            try:
                verifier = load_verifier(config.path(entry.signing_key))
            except KeyMaterialError as exc:
                raise setting_error(config, ("log", index, "signing_key"), str(exc)) from None
            origin = log_origin(entry.side, verifier.kid)
            key = NoteKey(origin, verifier.public_key)
        if origin in logs:
            raise setting_error(config, ("log", index), f"log {origin} is listed twice")
        logs[origin] = key
    return Witness(config, signer, logs)


def init_witness_key(folder: Path, name: str) -> tuple[NoteKey, Path, Path]:
    """A new cosigning key in FOLDER/witness.key (mode 600) and FOLDER/witness.pub (its
    public key, hex, for the nodes' configurations); refuses to overwrite one."""
    if not re.fullmatch(KEY_NAME, name):
        raise KeyMaterialError(f"witness name {name!r}: no spaces or '+', 1 to 255 characters")
    key_path, pub_path = folder / "witness.key", folder / "witness.pub"
    for path in (key_path, pub_path):
        if path.exists():
            raise KeyMaterialError(f"{path} exists; a witness keeps its key")
    folder.mkdir(parents=True, exist_ok=True)
    signer = Ed25519Signer(os.urandom(32))
    descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as f:
        f.write(signer.seed.hex().encode() + b"\n")
    pub_path.write_text(signer.public_key.hex() + "\n")
    return NoteKey(name, signer.public_key, COSIGNATURE_V1), key_path, pub_path
