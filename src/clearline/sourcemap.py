"""YAML input with line numbers, and pydantic validation errors mapped back to them.

Policies and scenarios are written by people; when one is wrong, the error must
say which file, which line, and what was expected there.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any, TypeVar

import pydantic
import yaml

from clearline.errors import InputFileError

Path_ = tuple[str | int, ...]
M = TypeVar("M", bound=pydantic.BaseModel)


class LineMap:
    """Line (1-based) of every key and item in a YAML document, by path."""

    def __init__(self, lines: dict[Path_, int]) -> None:
        self._lines = lines

    def line_of(self, path: Path_) -> int | None:
        """The line of `path`, or of its nearest ancestor that has one."""
        for cut in range(len(path), -1, -1):
            line = self._lines.get(tuple(path[:cut]))
            if line is not None:
                return line
        return None


MAX_DEPTH = 32
"""Nesting deeper than any clearline file needs is refused, not recursed into."""


class _RefusedError(ValueError):
    """A YAML construct clearline files do not use, refused with its line."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


def _walk(node: yaml.Node, path: Path_, lines: dict[Path_, int], seen: set[int]) -> Any:
    line = node.start_mark.line + 1
    lines.setdefault(path, line)
    if len(path) > MAX_DEPTH:
        raise _RefusedError(f"nested more than {MAX_DEPTH} levels deep", line)
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
        # An alias makes the composer hand out the same node twice: refused, so that a
        # few lines of anchors cannot expand into gigabytes (and no value hides elsewhere).
        if id(node) in seen:
            raise _RefusedError("anchors and aliases (&, *) are not supported", line)
        seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _walk(key_node, (*path, "<key>"), {}, seen)
            key_line = key_node.start_mark.line + 1
            if key in out:
                raise _RefusedError(
                    f"{key!r} appears twice (first on line {lines[(*path, key)]})", key_line
                )
            lines[(*path, key)] = key_line
            out[key] = _walk(value_node, (*path, key), lines, seen)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, (*path, i), lines, seen) for i, item in enumerate(node.value)]
    if node.tag == "tag:yaml.org,2002:merge":
        raise _RefusedError("merge keys (<<) are not supported", line)
    return yaml.SafeLoader("").construct_object(node, deep=True)


def _yaml_error(
    exc: yaml.MarkedYAMLError, source: str, error: type[InputFileError]
) -> InputFileError:
    mark = exc.problem_mark
    return error(f"not valid YAML: {exc.problem}", source, mark.line + 1 if mark else None)


def read_text(path: Any, what: str, error: type[InputFileError]) -> str:
    """An input file's text: UTF-8, or an error that names the file and the bad byte."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"cannot read the {what}: {exc.strerror}", str(path)) from None
    try:
        return str(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise error(
            f"not UTF-8 text (byte {exc.start}: {data[exc.start : exc.start + 1]!r})",
            str(path),
            line,
        ) from None


def load_yaml(
    text: str, source: str, error: type[InputFileError] = InputFileError
) -> tuple[Any, LineMap]:
    """Parse one YAML document safely; return the data and its line map."""
    lines: dict[Path_, int] = {}
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(exc, source, error) from None
    except yaml.YAMLError as exc:
        raise error(f"not valid YAML: {exc}", source, None) from None
    except RecursionError:
        raise error(f"not valid here: nested more than {MAX_DEPTH} levels deep", source) from None
    if node is None:
        raise error("the file is empty; expected a mapping", source, 1)
    try:
        # Constructing values can fail too (an unknown tag such as `!x`, a bad timestamp).
        data = _walk(node, (), lines, set())
    except _RefusedError as exc:
        raise error(f"not valid here: {exc}", source, exc.line) from None
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(exc, source, error) from None
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
        raise error(f"not valid YAML: {exc}", source, None) from None
    return data, LineMap(lines)


def _format_loc(loc: Path_) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def input_path(loc: tuple[Any, ...], data: Any, missing: bool = False) -> Path_:
    """A pydantic error's location as a path into the input `data`: without the names of
    union members (a delay's `lognormal`, `fixed`, ...) that pydantic inserts, which are
    not keys of the input. For a `missing` error the last part stays (the absent field)."""
    path: list[str | int] = []
    node = data
    parts = [p for p in loc if isinstance(p, str | int)]
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        inside = (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        )
        if inside:
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and not (last and missing):
            continue  # a union member's name
        else:
            node = None
        path.append(part)
    return tuple(path)


def validate(
    model: type[M],
    data: Any,
    lines: LineMap,
    source: str,
    error: type[InputFileError] = InputFileError,
) -> M:
    """Validate with pydantic; the first error becomes `error` with its file and line."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        if first["type"] == "missing":
            # A setting missing beside one not known is most often that one misspelt.
            first = next(
                (
                    e
                    for e in errors
                    if e["type"] == "extra_forbidden" and e["loc"][:-1] == first["loc"][:-1]
                ),
                first,
            )
        loc = input_path(first["loc"], data, first["type"] == "missing")
        message = first["msg"]
        if first["type"] != "missing" and "input" in first:
            shown = repr(first["input"])
            message += f" (got {shown[:60]})"
        if first["type"] == "extra_forbidden" and first["loc"]:
            message += _known_settings(model, first["loc"])
        if first["type"] == "missing" and first["loc"]:
            message += _expected(model, first["loc"])
        raise error(f"{_format_loc(loc)}: {message}", source, lines.line_of(loc)) from None


def _known_settings(model: type[pydantic.BaseModel], loc: tuple[Any, ...]) -> str:
    """For a setting no model at `loc` has: the closest one's name, and all of them."""
    names = _settings_at(model, loc[:-1])
    if not names:
        return ""
    unknown = str(loc[-1])
    close = difflib.get_close_matches(unknown, names, n=1)
    known = ", ".join(sorted(names))
    if close:
        return f"; did you mean {close[0]!r}? Expected one of: {known}"
    return f"; expected one of: {known}"


def _expected(model: type[pydantic.BaseModel], loc: tuple[Any, ...]) -> str:
    """For a missing setting: what it takes, and what it means (its docstring)."""
    current: Any = model
    for part in loc[:-1]:
        current = _inside(current, part)
        if current is None:
            return ""
    fields = [m.model_fields[loc[-1]] for m in _models(current) if loc[-1] in m.model_fields]
    if len(fields) != 1:
        return ""
    field = fields[0]
    text = f"; expected {_takes(field.annotation, field.metadata)}"
    if field.description:
        text += f" ({field.description.strip().rstrip('.')})"
    return text


def _takes(annotation: Any, metadata: list[Any]) -> str:
    """A value of `annotation` in words: "a number from 0 to 1", "one of: a, b"."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        inner, *more = typing.get_args(annotation)
        return _takes(inner, [*metadata, *more])
    if origin is typing.Literal:
        return "one of: " + ", ".join(str(v) for v in typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "one of: " + ", ".join(str(m.value) for m in annotation)
    models = _models(annotation)
    if models:
        tags = [_tag(m) for m in models]
        if len(models) > 1 and all(tags):
            return "a mapping whose type is one of: " + ", ".join(map(str, tags))
        if len(models) == 1:
            required = [n for n, f in models[0].model_fields.items() if f.is_required()]
            return "a mapping" + (f" with {', '.join(required)}" if required else "")
    if origin in (dict, Mapping):
        return "a mapping"
    if origin in (list, tuple):
        return "a list"
    names = {str: "text", bool: "true or false", int: "a whole number", float: "a number"}
    text = names.get(annotation, "a value")
    words = {"Ge": "at least", "Gt": "more than", "Le": "at most", "Lt": "less than"}
    bounds = [
        f"{words[type(m).__name__]} {getattr(m, type(m).__name__.lower()):g}"
        for m in metadata
        if type(m).__name__ in words
    ]
    if bounds:
        text += " " + " and ".join(bounds)
    pattern = next(
        (getattr(m, "pattern", None) for m in metadata if getattr(m, "pattern", None)), None
    )
    if pattern == r"\S":
        text = f"non-empty {text}"
    elif pattern:
        text += f" matching {pattern}"
    return text


def _settings_at(model: type[pydantic.BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """The field names of the model a pydantic error location leads to, if one does."""
    current: Any = model
    for part in loc:
        current = _inside(current, part)
        if current is None:
            return None
    models = _models(current)
    return list(models[0].model_fields) if len(models) == 1 else None


def _models(annotation: Any) -> list[type[pydantic.BaseModel]]:
    if typing.get_origin(annotation) is typing.Annotated:
        return _models(typing.get_args(annotation)[0])
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _models(arg)]
    return []


def _inside(annotation: Any, part: str | int) -> Any:
    """The type one step into `annotation` along an error location's `part`: a model's
    field, a mapping's values, a list's items, or a union's member (by field, or by the
    member's name pydantic puts in the location)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _inside(typing.get_args(annotation)[0], part)
    if origin in (dict, Mapping):
        return typing.get_args(annotation)[1]
    if origin in (list, tuple) and isinstance(part, int):
        return typing.get_args(annotation)[0]
    models = _models(annotation)
    if not isinstance(part, str):
        return None
    owners = [m for m in models if part in m.model_fields]
    if len(owners) == 1:
        return owners[0].model_fields[part].annotation
    named = [m for m in models if _tag(m) == part]
    if len(named) == 1:
        return named[0]
    return None


def _tag(model: type[pydantic.BaseModel]) -> object:
    """The name of a union member that says its `type` (`fixed`, `gamma`, ...)."""
    field = model.model_fields.get("type")
    if field is None or typing.get_origin(field.annotation) is not typing.Literal:
        return None
    values = typing.get_args(field.annotation)
    return values[0] if len(values) == 1 else None


def checker(
    lines: LineMap, source: str, error: type[InputFileError]
) -> Callable[[bool, Path_, str], None]:
    """A `require(condition, path, message)` for cross-field rules after validation."""

    def require(condition: bool, path: Path_, message: str) -> None:
        if not condition:
            raise error(f"{_format_loc(path)}: {message}", source, lines.line_of(path))

    return require
