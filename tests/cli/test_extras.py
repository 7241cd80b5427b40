"""A deployed node installs `clearline[node]` only: the command line works without the
simulator's packages, and a command that needs them says which extra to install."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from clearline.cli import EXTRAS

ROOT = Path(__file__).resolve().parents[2]
SIM_PACKAGES = [module for module, extra in EXTRAS.items() if extra == "sim"]


def clearline_without(
    modules: list[str], *args: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    """`clearline ARGS` in a process where importing any of `modules` fails, as it would
    where they are not installed."""
    code = (
        "import sys\n"
        f"sys.modules.update(dict.fromkeys({modules!r}))\n"
        "from clearline.cli import main\n"
        "main()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, check=False
    )


def test_extras_name_every_package_of_the_node_and_sim_extras() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    # Requirement names are case-insensitive; EXTRAS keeps the import name (SALib).
    by_name = {module.lower(): extra for module, extra in EXTRAS.items()}
    for extra in ("node", "sim"):
        for requirement in extras[extra]:
            module = re.split(r"[<>=!~ \[;]", requirement)[0].lower().replace("-", "_")
            assert by_name.get(module) == extra, (extra, requirement)


def test_the_core_and_node_commands_work_without_the_simulator(tmp_path: Path) -> None:
    probe = (
        "import sys\nimport clearline.cli\n"
        f"print(sorted(m for m in {SIM_PACKAGES!r} if m in sys.modules))\n"
    )
    imported = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert imported.stdout.strip() == "[]", "importing the command line pulls in the simulator"
    for args in (
        ["--help"],
        ["node", "serve", "--help"],
        ["keys", "init", "keys", "--side", "US"],
        ["policy", "check"],
        ["sim", "validate", "recon-swarm"],
    ):
        result = clearline_without(SIM_PACKAGES, *args, cwd=tmp_path)
        assert result.returncode == 0, (args, result.stderr)


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (["sim", "run", "recon-swarm", "--episodes", "1"], "sim"),
        (["sim", "sensitivity", "recon-swarm", "--param", "a=0:1", "--base-samples", "4"], "sim"),
        (["demo", "--virtual"], "sim"),
        (["keys", "init", "keys", "--side", "US"], "node"),
        (["tak", "map", "--server", "tcp://127.0.0.1:1"], "node"),
    ],
)
def test_a_command_whose_extra_is_missing_says_which_to_install(
    tmp_path: Path, args: list[str], extra: str
) -> None:
    missing = [module for module, wanted in EXTRAS.items() if wanted == extra]
    result = clearline_without(missing, *args, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.endswith(f"pip install 'clearline[{extra}]'\n"), result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
