"""The pure core stays pure: no I/O, clock, randomness or threads in the core modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "clearline"
FORBIDDEN = {
    "asyncio",
    "socket",
    "ssl",
    "time",
    "random",
    "threading",
    "sqlite3",
    "os",
    "pathlib",
    "subprocess",
    "datetime",
}
CORE = [
    *sorted((SRC / "protocol").glob("*.py")),
    SRC / "log" / "merkle.py",
    SRC / "log" / "tree.py",
    *sorted((SRC / "gate").glob("*.py")),
    *sorted((SRC / "doctrine").glob("*.py")),
    SRC / "sourcemap.py",
]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(SRC)))
def test_core_module_imports_nothing_impure(path: Path) -> None:
    bad = _imports(path) & FORBIDDEN
    assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}"


def test_core_modules_exist() -> None:
    assert all(p.is_file() for p in CORE)
    assert len(CORE) >= 12
