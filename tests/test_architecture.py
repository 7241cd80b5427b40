"""The layers of clearline, written once, and checked along every import path.

LAYERS below is the architecture: which modules make up each layer, which other
layers (or single modules of them) it may import, and which outside packages its
own modules may import. The tests build the import graph of src/clearline from
the source (absolute, relative and function-level imports, and the package
__init__ that importing a submodule runs) and check every path through it: a
layer may not reach, however indirectly, a module it is not allowed. A failure
names the import chain, file and line at each step.

The core is pure: no I/O, clock, randomness, threads or processes, anywhere
below it. Each package that defines __all__ exports exactly what is recorded in
EXPORTS, and every name there can be imported.
"""

from __future__ import annotations

import ast
import importlib
import re
import sys
import types
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "clearline"

IMPURE = frozenset(
    {
        # the outside world: files, sockets, processes, the environment
        "os",
        "pathlib",
        "shutil",
        "tempfile",
        "socket",
        "ssl",
        "selectors",
        "http",
        "urllib",
        "sqlite3",
        "subprocess",
        "signal",
        "ctypes",
        "logging",
        # clocks and randomness
        "time",
        "datetime",
        "random",
        "secrets",
        "uuid",
        # concurrency
        "asyncio",
        "threading",
        "multiprocessing",
        "concurrent",
        # imports the graph below cannot see
        "importlib",
    }
)
STDLIB = frozenset(sys.stdlib_module_names)
PURE_STDLIB = STDLIB - IMPURE
ANY = None
"""As `externals`: anything at all."""


@dataclass(frozen=True)
class Layer:
    modules: tuple[str, ...]
    """Module names, or patterns such as "clearline.gate.*" (the package and all below it)."""
    may_import: tuple[str, ...] = ()
    """Other layers by name, or single modules of them by their dotted name."""
    externals: frozenset[str] | None = frozenset()
    """Top-level names of what the layer's own modules may import from outside clearline."""


CORE_LIBS = frozenset({"cbor2", "nacl", "numpy", "pydantic", "yaml"})

LAYERS: dict[str, Layer] = {
    # The pure core: the protocol, the log's hashing, the gate, doctrine.
    "core": Layer(
        modules=(
            "clearline",
            "clearline.errors",
            "clearline.sourcemap",
            "clearline.feed",
            "clearline.protocol.*",
            "clearline.gate.*",
            "clearline.doctrine.*",
            "clearline.hotline.*",
            "clearline.log",
            "clearline.log.merkle",
            "clearline.log.note",
            "clearline.log.tree",
            "clearline.witness",
            "clearline.witness.protocol",
            "clearline.log.tiles",
        ),
        externals=PURE_STDLIB | CORE_LIBS,
    ),
    # Input files from disk: the default policy, rosters.
    "config": Layer(
        modules=("clearline.config",),
        may_import=("core",),
        externals=PURE_STDLIB | {"importlib", "pathlib"},
    ),
    # The log on disk and the evidence around it.
    "log-store": Layer(
        modules=("clearline.log.store", "clearline.log.evidence", "clearline.log.crosscheck"),
        may_import=("core",),
        externals=STDLIB,
    ),
    # The simulator: the core under a virtual clock, never a real network or thread.
    "sim": Layer(
        modules=("clearline.sim.*",),
        may_import=("core", "config"),
        externals=(STDLIB - {"asyncio", "socket", "ssl", "selectors", "threading", "subprocess"})
        | CORE_LIBS
        | {"numpy", "pandas", "pyarrow", "matplotlib", "rich", "simpy", "distributed", "SALib"},
    ),
    # Cursor-on-Target: parsing, writing and the mapping file, with no I/O but its own file.
    "tak": Layer(
        modules=("clearline.tak.*",),
        may_import=("core",),
        externals=PURE_STDLIB | CORE_LIBS | {"pathlib", "takproto", "google"},
    ),
    # clearline's own TAK client: the TCP connection to a TAK server (the demo's clients use
    # it too), and the map view served from what that connection receives.
    "tak-client": Layer(
        modules=("clearline.tak.client", "clearline.tak.mapserver"),
        may_import=("core", "tak"),
        externals=STDLIB | {"fastapi", "starlette", "uvicorn"},
    ),
    # The live node: transport, log writer, local API.
    "node": Layer(
        modules=("clearline.node.*",),
        may_import=("core", "config", "log-store", "tak"),
        externals=STDLIB
        | CORE_LIBS
        | {
            "cryptography",
            "fastapi",
            "starlette",
            "uvicorn",
            "uvloop",
            "prometheus_client",
            "httpx",
        },
    ),
    # The witness: its own process, its own state; of the node only key files and config.
    "witness": Layer(
        modules=("clearline.witness.*",),
        may_import=(
            "core",
            "tak",  # only through node.config's types, which name the [tak] section's
            "clearline.node",
            "clearline.node.config",
            "clearline.node.keys",
            "clearline.node.tokens",
        ),
        externals=STDLIB | CORE_LIBS | {"starlette", "uvicorn", "uvloop"},
    ),
    # Officers at a keyboard: enrolment and signed approvals, with the node's key files.
    "officer": Layer(
        modules=("clearline.officer",),
        may_import=("core", "config", "node"),
        externals=STDLIB,
    ),
    # The console page: simulation results, and of the node only its configuration and
    # access control, never the running node.
    "console": Layer(
        modules=("clearline.console.*",),
        may_import=(
            "core",
            "config",
            "sim",
            "clearline.node",
            "clearline.node.auth",
            "clearline.node.config",
            "clearline.node.tokens",
            "clearline.tak",
            "clearline.tak.settings",
        ),
        externals=STDLIB | {"fastapi", "starlette", "numpy", "pyarrow"},
    ),
    # Scenes, fault proxy, benchmarks and soak runs over real nodes.
    "lab": Layer(
        modules=("clearline.lab.*",),
        may_import=(
            "core",
            "config",
            "log-store",
            "node",
            "officer",
            "tak",
            "tak-client",
            "witness",
        ),
        externals=STDLIB | {"httpx", "grpc", "uvloop"},
    ),
    # The entry points put it all together.
    "app": Layer(
        modules=("clearline.__main__", "clearline.cli", "clearline.demo"),
        may_import=("*",),
        externals=ANY,
    ),
}

_CONSOLE_IN_NODE = (
    "the node's local API mounts the console page (inside a function); the console should "
    "instead be handed to the API by whoever serves both"
)
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("clearline.node.api", "clearline.console"): _CONSOLE_IN_NODE,
    ("clearline.node.api", "clearline.console.server"): _CONSOLE_IN_NODE,
}
"""Imports the table does not allow, each with the reason it stands. Each must still exist."""

EXPORTS: dict[str, list[str]] = {
    "clearline.gate": [
        "NUCLEAR_C2",
        "Gate",
        "GateContext",
        "GateDecision",
        "Policy",
        "ProposedAction",
        "Rule",
        "decide",
        "parse_policy",
    ],
    "clearline.hotline": [
        "Answered",
        "AssetRegistry",
        "Cleared",
        "CoverStory",
        "Endpoint",
        "EndpointConfig",
        "EndpointEvent",
        "LogEntry",
        "QuerySent",
        "Registry",
        "Unresolved",
        "Waiting",
    ],
    "clearline.sim": [
        "ARMS",
        "Arm",
        "Axis",
        "SimResult",
        "load_scenario",
        "run",
        "shipped_scenarios",
        "sweep",
    ],
}
"""The public names of each package that defines __all__; change them here on purpose."""


# -- the import graph ------------------------------------------------------------------


@dataclass(frozen=True)
class Edge:
    target: str
    line: int


@dataclass(frozen=True)
class Graph:
    files: dict[str, Path]
    packages: frozenset[str]
    edges: dict[str, list[Edge]]
    """Module -> the clearline modules it imports (and the packages that run with them)."""
    externals: dict[str, dict[str, int]]
    """Module -> top-level outside names it imports, with the first line of each."""


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@cache
def graph() -> Graph:
    files = {_module_name(p): p for p in sorted((SRC / ROOT).rglob("*.py"))}
    packages = frozenset(_module_name(p) for p in files.values() if p.name == "__init__.py")
    edges: dict[str, list[Edge]] = {}
    externals: dict[str, dict[str, int]] = {}
    for module, path in files.items():
        package = module if module in packages else module.rpartition(".")[0]
        found: list[Edge] = [Edge(parent, 0) for parent in _parents(module)]
        outside: dict[str, int] = {}

        def add(name: str, line: int, found: list[Edge] = found) -> None:
            for candidate in [*_parents(name), name]:
                if candidate in files:
                    found.append(Edge(candidate, line))

        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == ROOT:
                        add(alias.name, node.lineno)
                    else:
                        outside.setdefault(alias.name.split(".")[0], node.lineno)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    source = node.module or ""
                if source.split(".")[0] != ROOT:
                    outside.setdefault(source.split(".")[0], node.lineno)
                    continue
                add(source, node.lineno)
                for alias in node.names:
                    add(f"{source}.{alias.name}", node.lineno)
        first: dict[str, Edge] = {}
        for edge in sorted(found, key=lambda e: (e.line == 0, e.line)):
            if edge.target != module:
                first.setdefault(edge.target, edge)
        edges[module] = sorted(first.values(), key=lambda e: (e.line, e.target))
        externals[module] = outside
    return Graph(files, packages, edges, externals)


def _matches(module: str, pattern: str) -> bool:
    if pattern.endswith(".*"):
        return module == pattern[:-2] or fnmatchcase(module, pattern)
    return module == pattern


def layer_of(module: str, layers: dict[str, Layer] = LAYERS) -> str:
    """The one layer a module belongs to; the most specific pattern wins."""
    best: tuple[int, str] | None = None
    for name, layer in layers.items():
        for pattern in layer.modules:
            if _matches(module, pattern):
                rank = len(pattern) + (0 if pattern.endswith(".*") else 1000)
                assert best is None or rank != best[0], f"{module} is in {best[1]} and {name}"
                if best is None or rank > best[0]:
                    best = (rank, name)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")
    return best[1]


def allowed(layer: str, module: str, layers: dict[str, Layer] = LAYERS) -> bool:
    rules = layers[layer].may_import
    return "*" in rules or layer_of(module, layers) in {layer, *rules} or module in rules


def _where(module: str, line: int) -> str:
    if line == 0:
        return "its package's __init__ runs first"
    return f"{graph().files[module].relative_to(SRC)}:{line}"


def _chain(steps: list[tuple[str, int]]) -> str:
    """`a (a.py:3) -> b (b.py:7) -> c`: each module, and the line that imports the next."""
    parts = [f"{module} ({_where(module, line)})" for module, line in steps[:-1]]
    return " -> ".join([*parts, steps[-1][0]])


def _reach(
    starts: list[str], through: Callable[[str], bool] = lambda module: True
) -> dict[str, list[tuple[str, int]]]:
    """Every module the `starts` import, however indirectly, each with the shortest chain
    to it from one of them; the search goes on only from modules `through` accepts."""
    chains = {start: [(start, 0)] for start in starts}
    queue = deque(starts)
    while queue:
        module = queue.popleft()
        if not through(module):
            continue
        for edge in graph().edges[module]:
            if (module, edge.target) in EXCEPTIONS or edge.target in chains:
                continue
            *before, (last, _) = chains[module]
            chains[edge.target] = [*before, (last, edge.line), (edge.target, 0)]
            queue.append(edge.target)
    return chains


def violations(layer: str, layers: dict[str, Layer] = LAYERS) -> list[str]:
    """Each module `layer` reaches but may not, with the shortest chain to it (the search
    stops there, so one wrong import is one line, not one for everything behind it)."""
    modules = sorted(m for m in graph().files if layer_of(m, layers) == layer)
    reached = _reach(modules, through=lambda module: allowed(layer, module, layers))
    return [
        f"{layer} may not import {target} ({layer_of(target, layers)}): {_chain(chain)}"
        for target, chain in sorted(reached.items())
        if not allowed(layer, target, layers)
    ]


# -- the tests -------------------------------------------------------------------------


def test_every_module_is_in_exactly_one_layer() -> None:
    by_layer: dict[str, list[str]] = {}
    for module in graph().files:
        by_layer.setdefault(layer_of(module), []).append(module)
    assert by_layer.keys() >= {"core", "sim", "node", "console", "app"}
    for name, layer in LAYERS.items():
        for rule in layer.may_import:
            assert rule == "*" or rule in LAYERS or rule in graph().files, (
                f"{name} may import {rule!r}, which is neither a layer nor a module"
            )


@pytest.mark.parametrize("layer", LAYERS)
def test_layer_reaches_only_what_it_may(layer: str) -> None:
    found = violations(layer)
    assert not found, "\n".join(found)


@pytest.mark.parametrize("layer", LAYERS)
def test_layer_imports_only_its_outside_packages(layer: str) -> None:
    permitted = LAYERS[layer].externals
    if permitted is ANY:
        return
    found = [
        f"{module} imports {name} ({_where(module, line)}), not allowed in {layer}"
        for module in sorted(graph().files)
        if layer_of(module) == layer
        for name, line in graph().externals[module].items()
        if name not in permitted and name != "__future__"
    ]
    assert not found, "\n".join(found)


CORE = sorted(m for m in graph().files if layer_of(m) == "core")


@pytest.mark.parametrize("module", CORE)
def test_core_module_reaches_nothing_impure(module: str) -> None:
    """The purity promise, along every path: nothing the module imports, however indirectly,
    touches I/O, a clock, randomness, threads or processes."""
    found = [
        f"{target} imports {name} ({_where(target, line)}), reached by {_chain(chain)}"
        for target, chain in _reach([module]).items()
        for name, line in graph().externals[target].items()
        if name in IMPURE
    ]
    assert not found, "\n".join(found)


def test_the_checks_see_what_they_must() -> None:
    """The graph itself: relative, from-package and function-level imports all make edges,
    and importing a submodule runs its package's __init__."""
    edges = {m: {e.target for e in es} for m, es in graph().edges.items()}
    assert "clearline.protocol.messages" in edges["clearline.protocol.codec"]
    assert "clearline.console.server" in edges["clearline.node.api"]  # inside a function
    assert "clearline.gate" in edges["clearline.gate.policy"]  # its own package
    assert "clearline.log.merkle" in edges["clearline.log.tree"]
    chain = _reach(["clearline.protocol.session"])
    assert "clearline.errors" in chain
    assert "clearline.node.node" not in chain
    # and a violation is reported with its chain: were merkle outside the core, then
    core = LAYERS["core"]
    layers = {
        **LAYERS,
        "core": Layer(tuple(m for m in core.modules if m != "clearline.log.merkle")),
        "probe": Layer(("clearline.log.merkle",)),
    }
    found = [v for v in violations("core", layers) if v.startswith("core may not import")]
    chained = (
        r"core may not import clearline\.log\.merkle \(probe\): clearline\.log\.(tiles|tree) "
        r"\(clearline/log/(tiles|tree)\.py:[0-9]+\) -> clearline\.log\.merkle"
    )
    assert any(re.fullmatch(chained, v) for v in found), found


def test_each_exception_still_stands() -> None:
    for (importer, imported), reason in EXCEPTIONS.items():
        targets = {e.target for e in graph().edges.get(importer, [])}
        assert imported in targets, (
            f"{importer} no longer imports {imported}: remove it from EXCEPTIONS ({reason})"
        )
        assert not allowed(layer_of(importer), imported), f"{importer} -> {imported} is allowed"


def _public(package: types.ModuleType) -> set[str]:
    return {
        name
        for name, value in vars(package).items()
        if not name.startswith("_")
        and not (
            isinstance(value, types.ModuleType) and value.__name__ == f"{package.__name__}.{name}"
        )
        and type(value).__module__ != "__future__"  # `from __future__ import annotations`
    }


def _defines_all(path: Path) -> bool:
    return any(
        isinstance(target, ast.Name) and target.id == "__all__"
        for node in ast.parse(path.read_text()).body
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
    )


PACKAGES = sorted(p for p in graph().packages if _defines_all(graph().files[p]))


def test_exports_are_recorded_for_every_package_with_all() -> None:
    assert sorted(EXPORTS) == PACKAGES, "record each package's __all__ in EXPORTS"


@pytest.mark.parametrize("name", PACKAGES)
def test_package_exports_exactly_its_recorded_names(name: str) -> None:
    package = importlib.import_module(name)
    exported = list(package.__all__)
    assert sorted(exported) == sorted(EXPORTS[name]), (
        f"{name}.__all__ changed: added {sorted(set(exported) - set(EXPORTS[name]))}, "
        f"removed {sorted(set(EXPORTS[name]) - set(exported))}; update EXPORTS if intended"
    )
    assert len(set(exported)) == len(exported), f"{name}.__all__ repeats a name"
    namespace: dict[str, object] = {}
    exec(f"from {name} import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(exported)
    assert _public(package) == set(exported), (
        f"{name} has public names outside __all__: {sorted(_public(package) - set(exported))}"
    )
