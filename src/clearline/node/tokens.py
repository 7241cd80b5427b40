"""Bearer tokens for a node's local API: roles, token files, and the hashed list a node loads.

`clearline keys init DIR --side US` writes, besides the keys:

    US.api-token.observer   a token with the observer role (owner-only: 0600)
    US.api-token.sensor     ... the sensor role
    US.api-token.operator   ... the operator role
    US.api-tokens.json      what the node loads: {"tokens": [{name, role, sha256}]}

A token is 32 random bytes, URL-safe base64; the node keeps only its SHA-256
and compares in constant time. `clearline keys token DIR --side US --role R`
adds (or, with --force, replaces) one more.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from clearline.errors import InputFileError, KeyMaterialError
from clearline.sourcemap import LineMap, load_yaml, validate


class Role(enum.StrEnum):
    """What a caller may do; each role may do everything the ones before it may."""

    OBSERVER = "observer"
    """Every read: GET calls, the event stream, metrics."""
    SENSOR = "sensor"
    """Observer, plus POST /v1/observations and /v1/telemetry."""
    OPERATOR = "operator"
    """Sensor, plus POST /v1/actions and /v1/log/checkpoint."""

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def grants(self, needed: Role) -> bool:
        return _RANKS[self] >= _RANKS[needed]


_RANKS = {role: rank for rank, role in enumerate(Role)}


NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"
TokenName = Annotated[str, Field(pattern=NAME_PATTERN)]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class TokenFileError(InputFileError):
    """An API tokens file is invalid."""


class TokenEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: TokenName
    role: Role
    sha256: Sha256Hex


class TokenFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tokens: list[TokenEntry] = Field(max_length=1000)


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "replace")).digest()


@dataclass(frozen=True)
class Caller:
    """Who presented a valid token."""

    name: str
    role: Role


class TokenSet:
    """The hashed tokens a node accepts."""

    def __init__(self, entries: list[TokenEntry]) -> None:
        self._entries = [(bytes.fromhex(e.sha256), Caller(e.name, e.role)) for e in entries]

    def __len__(self) -> int:
        return len(self._entries)

    def check(self, token: str) -> Caller | None:
        """The caller `token` belongs to, or None; every entry is compared, in constant time."""
        presented = digest(token)
        found: Caller | None = None
        for hashed, caller in self._entries:
            if hmac.compare_digest(presented, hashed) and found is None:
                found = caller
        return found


def token_paths(folder: Path, side: str) -> dict[str, Path]:
    """Where keys init writes each role's token, and the hashed list."""
    paths = {f"api_token_{role.value}": token_path(folder, side, role.value) for role in Role}
    paths["api_tokens"] = tokens_file(folder, side)
    return paths


def token_path(folder: Path, side: str, name: str) -> Path:
    return folder / f"{side}.api-token.{name}"


def tokens_file(folder: Path, side: str) -> Path:
    return folder / f"{side}.api-tokens.json"


def _write_owner_only(path: Path, data: bytes, replace: bool) -> None:
    if replace:
        path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _save(path: Path, entries: list[TokenEntry]) -> None:
    body = {"tokens": [e.model_dump(mode="json") for e in entries]}
    text = json.dumps(body, indent=2) + "\n"
    temporary = path.with_name(path.name + ".new")
    _write_owner_only(temporary, text.encode(), replace=True)
    temporary.replace(path)


def write_role_tokens(folder: Path, side: str) -> dict[str, Path]:
    """A new token per role, each in its own 0600 file, and the hashed list (replaced)."""
    entries = []
    paths = token_paths(folder, side)
    for role in Role:
        token = secrets.token_urlsafe(32)
        _write_owner_only(paths[f"api_token_{role.value}"], token.encode() + b"\n", replace=True)
        entries.append(TokenEntry(name=role.value, role=role, sha256=digest(token).hex()))
    _save(paths["api_tokens"], entries)
    return paths


def add_token(folder: Path, side: str, role: Role, name: str, force: bool = False) -> Path:
    """One more token named `name` (its own 0600 file, its hash added to the list)."""
    if not re.fullmatch(NAME_PATTERN, name):
        raise KeyMaterialError(
            f"token name {name!r}: expected 1 to 32 lower-case letters, digits and dashes"
        )
    checked = name
    listing = tokens_file(folder, side)
    entries = list(load_tokens_file(listing).tokens) if listing.exists() else []
    path = token_path(folder, side, checked)
    taken = any(e.name == checked for e in entries) or path.exists()
    if taken and not force:
        raise KeyMaterialError(
            f"a token named {checked!r} exists for {side} ({path}); pass --force to replace it"
        )
    folder.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    _write_owner_only(path, token.encode() + b"\n", replace=True)
    entries = [e for e in entries if e.name != checked]
    entries.append(TokenEntry(name=checked, role=role, sha256=digest(token).hex()))
    _save(listing, entries)
    return path


def load_tokens_file(path: Path) -> TokenFile:
    source = str(path)
    try:
        info = path.stat()
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        suffix = ".api-tokens.json"
        side = path.name.removesuffix(suffix) if path.name.endswith(suffix) else "SIDE"
        raise TokenFileError(
            "the API tokens file is missing; create tokens with "
            f"`clearline keys token {path.parent} --side {side} --role operator` (and "
            "--role observer, sensor as needed), or set [api] tokens in the node's configuration",
            source,
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenFileError(f"cannot read the API tokens file: {exc}", source) from None
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise TokenFileError(
            f"others may write to it (mode {stat.S_IMODE(info.st_mode):o}); expected 600: "
            "chmod 600 it",
            source,
        )
    return parse_tokens(text, source)


def parse_tokens(text: str, source: str) -> TokenFile:
    """A tokens file's text, validated; errors give the line where one can be found."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TokenFileError(f"not valid JSON: {exc.msg}", source, exc.lineno) from None
    except RecursionError:
        raise TokenFileError("not valid JSON: nested too deeply", source) from None
    try:
        # JSON is (nearly) YAML: the YAML reader gives each key's line, for the errors.
        _, lines = load_yaml(text, source, TokenFileError)
    except (TokenFileError, RecursionError):
        lines = LineMap({})
    return validate(TokenFile, data, lines, source, TokenFileError)


def load_tokens(path: Path) -> TokenSet:
    return TokenSet(list(load_tokens_file(path).tokens))


def read_token(folder: Path, side: str, role: Role | str) -> str:
    """A token from its file (as keys init writes them), for the clients in this repository."""
    name = role.value if isinstance(role, Role) else role
    path = token_path(folder, side, name)
    try:
        return path.read_text(encoding="ascii").strip()
    except OSError as exc:
        raise KeyMaterialError(f"API token {path} cannot be read: {exc.strerror}") from None
