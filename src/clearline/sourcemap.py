"""YAML input with line numbers, and pydantic validation errors mapped back to them.

Policies and scenarios are written by people; when one is wrong, the error must
say which file, which line, and what was expected there.
"""

from __future__ import annotations

from collections.abc import Callable
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


def _walk(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _walk(key_node, (*path, "<key>"), {})
            lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _walk(value_node, (*path, key), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, (*path, i), lines) for i, item in enumerate(node.value)]
    return yaml.SafeLoader("").construct_object(node, deep=True)


def _yaml_error(
    exc: yaml.MarkedYAMLError, source: str, error: type[InputFileError]
) -> InputFileError:
    mark = exc.problem_mark
    return error(f"not valid YAML: {exc.problem}", source, mark.line + 1 if mark else None)


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
    if node is None:
        raise error("the file is empty; expected a mapping", source, 1)
    try:
        # Constructing values can fail too (an unknown tag such as `!x`, a bad timestamp).
        data = _walk(node, (), lines)
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
        first = exc.errors()[0]
        loc = tuple(p for p in first["loc"] if isinstance(p, str | int))
        message = first["msg"]
        if first["type"] != "missing" and "input" in first:
            shown = repr(first["input"])
            message += f" (got {shown[:60]})"
        raise error(f"{_format_loc(loc)}: {message}", source, lines.line_of(loc)) from None


def checker(
    lines: LineMap, source: str, error: type[InputFileError]
) -> Callable[[bool, Path_, str], None]:
    """A `require(condition, path, message)` for cross-field rules after validation."""

    def require(condition: bool, path: Path_, message: str) -> None:
        if not condition:
            raise error(f"{_format_loc(path)}: {message}", source, lines.line_of(path))

    return require
