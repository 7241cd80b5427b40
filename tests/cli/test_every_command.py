"""Every command of `clearline`, found by walking the command tree, given bad arguments, each
run in its own process as `python -m clearline` runs it: each ends with one line on stderr
that names what was wrong, and a non-zero exit, never a Python traceback. A command added
later is covered without a word here: its parameters' types say what a malformed value of
each is."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from clearline.cli import main

RUN_MANY = Path(__file__).with_name("run_many.py")
FILLER = "NOPE-1"
"""The value of a required parameter that is not the one under test."""


def walk(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from walk(sub, (*path, name))


def command_at(path: tuple[str, ...]) -> click.Command:
    command: click.Command = main
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    named: tuple[str, ...]
    """The line on stderr must name one of these: what the user typed wrong, or left out."""


@dataclass(frozen=True)
class Files:
    afile: Path
    adir: Path
    missing: Path

    @property
    def under_a_file(self) -> Path:
        return self.afile / "sub"


def malformed(param: click.Parameter, files: Files) -> list[str]:
    """Values of `param` that are wrong by its type alone: each must be refused in one line."""
    kind = param.type
    if isinstance(kind, click.IntRange | click.FloatRange) or kind in (click.INT, click.FLOAT):
        return ["x"]
    if isinstance(kind, click.Choice):
        return ["no-such-choice"]
    if isinstance(kind, click.File):
        return [str(files.missing)]
    if isinstance(kind, click.Path):
        # Not one that could be created: an output folder under a missing one is not a mistake.
        values = [str(files.under_a_file)]
        if kind.exists:
            values.append(str(files.missing))
        if not kind.dir_okay:
            values.append(str(files.adir))
        if not kind.file_okay:
            values.append(str(files.afile))
        return values
    return []


def filler(param: click.Parameter, files: Files) -> str:
    """A value for a required parameter that is not the one under test."""
    if isinstance(param.type, click.Choice):
        return str(param.type.choices[0])
    if isinstance(param.type, click.Path | click.File):
        return str(files.missing)
    return FILLER


def given(param: click.Parameter, value: str) -> list[str]:
    return [value] if isinstance(param, click.Argument) else [param.opts[-1], value]


def generic_cases(files: Files) -> list[Case]:
    cases = []
    for path in walk(main):
        command = command_at(path)
        cases.append(Case((*path, "--no-such-option"), ("--no-such-option",)))
        if isinstance(command, click.Group):
            cases.append(Case((*path, "no-such-command"), ("no-such-command",)))
            continue
        required = [p for p in command.params if p.required]
        if required:
            cases.append(Case(path, ()))
        for param in command.params:
            for value in malformed(param, files):
                args = [*path]
                for other in required:
                    if other is not param:
                        args += given(other, filler(other, files))
                args += given(param, value)
                cases.append(Case(tuple(args), tuple(args[len(path) :])))
    return cases


def deeper_cases(tmp: Path, files: Files, busy_port: int) -> list[Case]:
    """Mistakes a type cannot catch, a new user's among them."""
    no_keys = tmp / "no-keys.toml"
    no_keys.write_text(
        'side = "US"\nkeys_dir = "no-such-keys"\ndata_dir = "us-data"\n'
        '[peer]\nside = "PRC"\ncertificate = "no-such-keys/PRC.tls.crt"\n'
        'signing_key = "no-such-keys/PRC.signing.pub"\n'
    )
    garbage = files.afile
    return [
        Case(("node", "serve", "--config", str(no_keys)), ("no-such-keys",)),
        Case(("keys", "init", str(tmp / "k"), "--side", "US PRC"), ("US PRC",)),
        Case(("keys", "init", str(tmp / "k"), "--side", "us/../x"), ("us/../x",)),
        Case(("keys", "init", str(tmp / "k"), "--side", "US", "--days", "0"), ("--days",)),
        Case(("log", "verify", str(garbage)), (str(garbage),)),
        Case(("log", "export", str(garbage), str(tmp / "out")), (str(garbage),)),
        Case(("log", "cross-check", str(garbage), str(garbage)), (str(garbage),)),
        Case(("policy", "check", str(garbage)), (str(garbage),)),
        Case(("sim", "run", str(garbage)), (str(garbage),)),
        Case(("sim", "sweep", "recon-swarm", "--param", "nope"), ("--param", "nope")),
        Case(
            ("officer", "approve", "--key", str(garbage), "--pending", str(garbage)),
            (str(garbage),),
        ),
        Case(
            ("demo", "--virtual", "--episodes", "0", "--out", str(files.under_a_file)),
            (str(files.under_a_file),),
        ),
        Case(("console", "--port", str(busy_port)), (str(busy_port),)),
    ]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        yield taken.getsockname()[1]


def run_all(cases: list[Case], cwd: Path) -> list[dict[str, str | int]]:
    """Each case in its own process (run_many.py: one interpreter, a fork per case)."""
    done = subprocess.run(
        [sys.executable, str(RUN_MANY)],
        input=json.dumps([list(c.args) for c in cases]),
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=True,
    )
    results: list[dict[str, str | int]] = json.loads(done.stdout)
    return results


def located(line: str, case: Case) -> bool:
    """The line names something the user typed, or (a usage error) the command, with what
    it lacked or could not read."""
    command = " ".join(("clearline", *(a for a in case.args if a in command_names())))
    # A path is also located by the part of it that is wrong: `afile: ...` for afile/sub.
    parents = [str(p) for name in case.named if "/" in name for p in Path(name).parents]
    named = [*case.named, *(f"{p}:" for p in parents if len(p) > 1)]
    return any(name in line for name in named) or line.startswith(f"error: {command}: ")


def command_names() -> set[str]:
    return {name for path in walk(main) for name in path}


def test_every_command_refuses_bad_arguments_in_one_line(tmp_path: Path, busy_port: int) -> None:
    files = Files(tmp_path / "afile", tmp_path / "adir", tmp_path / "missing")
    files.afile.write_text("not what any command expects\n")
    files.adir.mkdir()
    cases = generic_cases(files) + deeper_cases(tmp_path, files, busy_port)
    commands = {c.args[: len(p)] for c in cases for p in walk(main) if c.args[: len(p)] == p}
    assert commands == set(walk(main)), "every command and group has a case"
    failures = []
    for case, result in zip(cases, run_all(cases, tmp_path), strict=True):
        stderr = str(result["stderr"])
        lines = stderr.splitlines()
        problems = []
        if result["code"] in (0, "timeout"):
            problems.append(f"exit {result['code']}")
        if "Traceback" in f"{result['stdout']}{stderr}":
            problems.append("a traceback")
        if len(lines) != 1:
            problems.append(f"{len(lines)} lines on stderr")
        elif not lines[0].startswith(("error: ", "FAIL ")):
            problems.append("a line that is not `error: ...` or `FAIL ...`")
        elif not located(lines[0], case):
            problems.append(f"a line naming none of {case.named}")
        if problems:
            failures.append(f"clearline {' '.join(case.args)}: {', '.join(problems)}:\n{stderr}")
    assert not failures, "\n".join(failures)
    assert not (tmp_path / "k").exists(), "a refused side name leaves no folder behind"


def test_a_usage_error_names_the_command_and_its_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "clearline", "keys", "init", "k", "--days", "x", "--side", "US"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == (
        "error: clearline keys init: Invalid value for '--days': 'x' is not a valid integer "
        "range. (see clearline keys init --help)\n"
    )
