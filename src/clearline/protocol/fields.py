"""Field codecs: how each typed value maps to CBOR, and the checks on the way in and out.

One table per message structure (`FIELDS`) drives both encoding and decoding,
so the two can never disagree. Every check raises `MessageError` naming the
field path and what was expected; decoding never returns a half-valid value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from clearline.errors import MessageError

T = TypeVar("T")
E = TypeVar("E", bound=StrEnum)

UINT64_MAX = (1 << 64) - 1


class Codec(Protocol[T]):
    def encode(self, value: T, path: str) -> object: ...

    def decode(self, obj: object, path: str) -> T: ...

    def describe(self) -> str: ...


def _fail(path: str, expected: str, got: object) -> MessageError:
    shown = repr(got)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return MessageError(f"expected {expected}, got {type(got).__name__} {shown}", field=path)


@dataclass(frozen=True, slots=True)
class IntCodec:
    low: int = 0
    high: int = UINT64_MAX

    def encode(self, value: int, path: str) -> object:
        return self.decode(value, path)

    def decode(self, obj: object, path: str) -> int:
        if type(obj) is not int or not self.low <= obj <= self.high:
            raise _fail(path, self.describe(), obj)
        return obj

    def describe(self) -> str:
        return f"integer in [{self.low}, {self.high}]"


@dataclass(frozen=True, slots=True)
class BoolCodec:
    def encode(self, value: bool, path: str) -> object:
        return self.decode(value, path)

    def decode(self, obj: object, path: str) -> bool:
        if type(obj) is not bool:
            raise _fail(path, "true or false", obj)
        return obj

    def describe(self) -> str:
        return "boolean"


@dataclass(frozen=True, slots=True)
class TextCodec:
    max_length: int
    pattern: str | None = None
    _compiled: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.pattern is not None:
            object.__setattr__(self, "_compiled", re.compile(self.pattern))

    def encode(self, value: str, path: str) -> object:
        return self.decode(value, path)

    def decode(self, obj: object, path: str) -> str:
        if type(obj) is not str or len(obj) > self.max_length:
            raise _fail(path, self.describe(), obj)
        if self._compiled is not None and self._compiled.fullmatch(obj) is None:
            raise _fail(path, self.describe(), obj)
        return obj

    def describe(self) -> str:
        limit = f"text of at most {self.max_length} characters"
        return f"{limit} matching {self.pattern}" if self.pattern else limit


@dataclass(frozen=True, slots=True)
class BytesCodec:
    size: int | None = None
    max_size: int | None = None

    def encode(self, value: bytes, path: str) -> object:
        return self.decode(value, path)

    def decode(self, obj: object, path: str) -> bytes:
        if type(obj) is not bytes:
            raise _fail(path, self.describe(), obj)
        if (self.size is not None and len(obj) != self.size) or (
            self.max_size is not None and len(obj) > self.max_size
        ):
            raise _fail(path, self.describe(), obj)
        return obj

    def describe(self) -> str:
        if self.size is not None:
            return f"byte string of exactly {self.size} bytes"
        return f"byte string of at most {self.max_size} bytes"


@dataclass(frozen=True, slots=True)
class EnumCodec(Generic[E]):
    enum: type[E]
    _members: dict[str, E] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._members.update((m.value, m) for m in self.enum)

    def encode(self, value: E, path: str) -> object:
        if not isinstance(value, self.enum):
            raise _fail(path, self.describe(), value)
        return value.value

    def decode(self, obj: object, path: str) -> E:
        member = self._members.get(obj) if type(obj) is str else None
        if member is None:
            raise _fail(path, self.describe(), obj)
        return member

    def describe(self) -> str:
        return "one of " + ", ".join(repr(m.value) for m in self.enum)


@dataclass(frozen=True, slots=True)
class ListCodec(Generic[T]):
    item: Codec[T]
    max_items: int
    min_items: int = 0

    # Each item's path is written out only to report a fault: the items are first coded
    # with the list's path, and again with their own if one of them fails (coding is pure,
    # so the second pass finds the same fault and names it exactly).

    def encode(self, value: tuple[T, ...], path: str) -> object:
        self._check_length(value, path)
        encode = self.item.encode
        try:
            return [encode(v, path) for v in value]
        except MessageError:
            return [encode(v, f"{path}[{i}]") for i, v in enumerate(value)]

    def decode(self, obj: object, path: str) -> tuple[T, ...]:
        if type(obj) is not list:
            raise _fail(path, self.describe(), obj)
        self._check_length(obj, path)
        decode = self.item.decode
        try:
            return tuple([decode(v, path) for v in obj])
        except MessageError:
            return tuple([decode(v, f"{path}[{i}]") for i, v in enumerate(obj)])

    def _check_length(self, value: object, path: str) -> None:
        if not isinstance(value, list | tuple) or not (
            self.min_items <= len(value) <= self.max_items
        ):
            raise _fail(path, self.describe(), value)

    def describe(self) -> str:
        return f"array of {self.min_items} to {self.max_items} items ({self.item.describe()})"


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a structure: attribute name, CBOR map key, codec, optional or not."""

    attr: str
    key: str
    codec: Codec[Any]
    optional: bool = False
    suffix: str = field(default="", init=False, repr=False, compare=False)
    """What this field adds to an error's path (kept, so decoding builds no strings)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "suffix", "." + self.key)


_ABSENT = object()


class Structure:
    """Base of every structure carried on the wire as a CBOR map with text keys.

    Subclasses are frozen dataclasses listing their `FIELDS`; `check()` lets a
    subclass add rules that involve more than one field.
    """

    FIELDS: ClassVar[tuple[Field, ...]] = ()

    def check(self, path: str) -> None:
        """Cross-field rules; raise MessageError. Default: none."""


S = TypeVar("S", bound=Structure)


@dataclass(frozen=True, slots=True)
class StructCodec(Generic[S]):
    cls: type[S]
    _known: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)
    _wire_order: tuple[Field, ...] = field(default=(), init=False, repr=False, compare=False)
    """The fields in deterministic key order (RFC 8949 §4.2.1: encoded length, then bytes)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "_known", frozenset(f.key for f in self.cls.FIELDS))
        order = sorted(self.cls.FIELDS, key=lambda f: (len(f.key.encode()), f.key.encode()))
        object.__setattr__(self, "_wire_order", tuple(order))

    def encode(self, value: S, path: str) -> object:
        """The map for `value`, its keys in deterministic order, so that cbor2's plain
        encoder writes the deterministic bytes (codec.encode_payload relies on it)."""
        if type(value) is not self.cls:
            return self._encode_checked(value, path)
        out: dict[str, object] = {}
        try:
            for f in self._wire_order:
                item = getattr(value, f.attr)
                if item is None:
                    if not f.optional:
                        raise MessageError("required field is missing", field=path + f.suffix)
                    continue
                out[f.key] = f.codec.encode(item, path + f.suffix)
        except MessageError:
            # Report the same fault the table's order finds first.
            self._encode_checked(value, path)
            raise
        value.check(path)
        return out

    def _encode_checked(self, value: S, path: str) -> object:
        """Encode in the table's order: what decides which fault is reported first."""
        if not isinstance(value, self.cls):
            raise _fail(path, self.describe(), value)
        out: dict[str, object] = {}
        for f in self.cls.FIELDS:
            item = getattr(value, f.attr)
            if item is None:
                if not f.optional:
                    raise MessageError("required field is missing", field=f"{path}.{f.key}")
                continue
            out[f.key] = f.codec.encode(item, path + f.suffix)
        value.check(path)
        return {f.key: out[f.key] for f in self._wire_order if f.key in out}

    def decode(self, obj: object, path: str) -> S:
        if type(obj) is not dict and not isinstance(obj, Mapping):
            raise _fail(path, self.describe(), obj)
        known = self._known
        if not known.issuperset(obj):
            for key in obj:
                if key not in known:
                    raise MessageError(
                        f"unknown field {key!r}; expected only {sorted(known)}", field=path
                    )
        kwargs: dict[str, object] = {}
        for f in self.cls.FIELDS:
            item = obj.get(f.key, _ABSENT)
            if item is not _ABSENT:
                kwargs[f.attr] = f.codec.decode(item, path + f.suffix)
            elif f.optional:
                kwargs[f.attr] = None
            else:
                raise MessageError("required field is missing", field=path + f.suffix)
        value = self.cls(**kwargs)
        value.check(path)
        return value

    def describe(self) -> str:
        return f"map ({self.cls.__name__})"


def require(condition: bool, path: str, message: str) -> None:
    """Raise MessageError for a cross-field rule that does not hold."""
    if not condition:
        raise MessageError(message, field=path)
