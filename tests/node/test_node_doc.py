"""docs/node.md, run as a new user would run it: every fenced ```sh block, in order, in one
empty folder, against real node processes.

The document's conventions, which this test reads:

- a ```sh block is run with bash (`set -euo pipefail`) and must succeed; an indented
  block is an illustration and is not run;
- a ```json block right after it is the answer it prints: the same keys, the same
  values except those that differ from run to run (`VARYING`: times, hashes, sizes), and
  each element shown of a list found in the answer; a ```text block after it holds lines
  whose first word must begin a line of the output;
- `<!-- walkthrough: background -->` before a block: each of its lines is a command left
  running in a terminal of its own (a node); the test waits until each node serves and,
  when two do, until their link is up;
- `<!-- walkthrough: stop -->`: Ctrl-C in each of those terminals; each must exit 0;
- `<!-- walkthrough: skip -->` before a block: not run (it never ends by itself).

The document's ports (7400, 8400, 8401) are replaced by free ones, so that the test can run
beside anything else on the machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from clearline.node.config import load_node_config
from clearline.node.tokens import Role, read_token

DOC = Path(__file__).resolve().parents[2] / "docs" / "node.md"
PORTS = (7400, 8400, 8401)
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```\n", re.M | re.S)
DIRECTIVE = re.compile(r"^<!-- walkthrough: (background|stop|skip) -->$", re.M)
VARYING = frozenset(
    {
        "at",
        "bytes",
        "deadline_us",
        "elapsed_ms",
        "elapsed_us",
        "hash",
        "id",
        "index",
        "leaf_hash",
        "log_index",
        "logged_index",
        "path",
        "peer_policy_hash",
        "peer_roster_hash",
        "policy_hash",
        "prev_size",
        "proof",
        "public_key",
        "query_seq",
        "remaining_ms",
        "root",
        "roster_hash",
        "rtt_ms",
        "sent_at",
        "seq",
        "session",
        "session_id",
        "size",
        "until_us",
    }
)
"""Keys whose values differ from run to run: the document's are examples."""
STEP_TIMEOUT_S = 120
NODE_TIMEOUT_S = 30


@dataclass
class Step:
    line: int
    """Where the block starts in docs/node.md, for failure messages."""
    action: str
    """run, background, stop or skip."""
    code: str = ""
    answer: tuple[str, str] | None = None
    """(json or text, the example) printed by the block."""


def walkthrough(text: str) -> list[Step]:
    """The document's steps, in order."""
    marks = [(m.start(), "directive", m) for m in DIRECTIVE.finditer(text)]
    marks += [(m.start(), "block", m) for m in BLOCK.finditer(text)]
    steps: list[Step] = []
    pending: str | None = None
    for start, what, match in sorted(marks, key=lambda mark: mark[0]):
        line = text.count("\n", 0, start) + 1
        if what == "directive":
            if match.group(1) == "stop":
                steps.append(Step(line, "stop"))
            else:
                pending = match.group(1)
            continue
        language, body = match.group(1), match.group(2)
        if language == "sh":
            steps.append(Step(line, pending or "run", body))
            pending = None
        elif language in ("json", "text") and steps and steps[-1].code and not steps[-1].answer:
            steps[-1].answer = (language, body)
    return steps


def free_ports(count: int) -> list[int]:
    sockets = [socket.create_server(("127.0.0.1", 0)) for _ in range(count)]
    try:
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def same(example: Any, actual: Any, where: str = "") -> list[str]:
    """How `actual` differs from the document's `example` (nothing: they agree)."""
    if isinstance(example, dict):
        if not isinstance(actual, dict):
            return [f"{where or 'answer'}: expected an object, got {actual!r}"]
        problems = []
        if set(example) != set(actual):
            problems.append(f"{where or 'answer'}: keys {sorted(example)} != {sorted(actual)}")
        for key in set(example) & set(actual):
            if key not in VARYING:
                problems += same(example[key], actual[key], f"{where}.{key}")
        return problems
    if isinstance(example, list):
        if not isinstance(actual, list):
            return [f"{where}: expected a list, got {actual!r}"]
        problems = []
        for i, item in enumerate(example):
            if not any(not same(item, candidate) for candidate in actual):
                problems.append(f"{where}[{i}]: {item!r} is in no element of {actual!r}")
        return problems
    if example != actual:
        return [f"{where}: {example!r} != {actual!r}"]
    return []


@dataclass
class Terminals:
    """Commands left running, as in terminals of their own; all are killed at the end."""

    folder: Path
    env: dict[str, str]
    running: list[tuple[str, subprocess.Popen[bytes], Path]] = field(default_factory=list)

    def start(self, command: str) -> None:
        output = self.folder / f"terminal-{len(self.running)}.out"
        with output.open("wb") as out:
            process = subprocess.Popen(
                ["bash", "-c", command],
                cwd=self.folder,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.running.append((command, process, output))

    def api(self, command: str) -> tuple[str, dict[str, str]]:
        """The address of the node `command` runs, and its observer's Authorization header,
        from the configuration it names with --config."""
        found = re.search(r"--config\s+(\S+)", command)
        assert found, f"a command left running that is not a node: {command}"
        config = load_node_config(self.folder / found.group(1))
        token = read_token(config.path(config.keys_dir), config.side, Role.OBSERVER)
        return f"http://127.0.0.1:{config.api.port}", {"Authorization": f"Bearer {token}"}

    def link(self, command: str, process: subprocess.Popen[bytes], output: Path) -> str | None:
        """The node's link state, or None while it does not serve yet."""
        assert process.poll() is None, f"{command} exited:\n{output.read_text()}"
        api, auth = self.api(command)
        try:
            answer = httpx.get(f"{api}/v1/link", headers=auth)
        except httpx.HTTPError:
            return None
        return str(answer.json()["state"]) if answer.status_code == 200 else None

    def wait_served(self) -> None:
        """Until every node serves and, when two do, until their link is up."""
        wanted = ("up",) if len(self.running) > 1 else ("down", "degraded", "up")
        deadline = time.monotonic() + NODE_TIMEOUT_S
        for running in self.running:
            while (state := self.link(*running)) not in wanted:
                assert time.monotonic() < deadline, (
                    f"{running[0]}: link {state} after {NODE_TIMEOUT_S} s:\n"
                    f"{running[2].read_text()}"
                )
                time.sleep(0.05)

    def stop(self) -> None:
        """Ctrl-C in each terminal: each node stops, seals its log and exits 0."""
        for _, process, _ in self.running:
            process.send_signal(signal.SIGINT)
        for command, process, output in self.running:
            code = process.wait(timeout=NODE_TIMEOUT_S)
            assert code == 0, f"{command} exited {code}:\n{output.read_text()}"
        self.running.clear()

    def kill(self) -> None:
        for _, process, _ in self.running:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture
def terminals(tmp_path: Path) -> Iterator[Terminals]:
    for tool in ("bash", "curl"):
        if shutil.which(tool) is None:
            pytest.skip(f"docs/node.md's walk-through uses {tool}, which is not installed")
    bin_dir = tmp_path / ".bin"
    bin_dir.mkdir()
    # `clearline` as this checkout's: the document's commands must run this code.
    shim = bin_dir / "clearline"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m clearline "$@"\n')
    shim.chmod(0o755)
    work = tmp_path / "walkthrough"
    work.mkdir()
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    opened = Terminals(work, env)
    try:
        yield opened
    finally:
        opened.kill()


def test_the_walkthrough_runs_as_written(terminals: Terminals) -> None:
    text = DOC.read_text()
    for port, free in zip(PORTS, free_ports(len(PORTS)), strict=True):
        assert str(port) in text, f"docs/node.md no longer uses port {port}"
        text = text.replace(str(port), str(free))
    steps = walkthrough(text)
    assert sum(s.action == "background" for s in steps) >= 1
    calls: set[str] = set()
    for step in steps:
        where = f"docs/node.md:{step.line}"
        if step.action == "skip":
            continue
        if step.action == "stop":
            terminals.stop()
            continue
        if step.action == "background":
            for command in step.code.splitlines():
                if command.strip() and not command.lstrip().startswith("#"):
                    terminals.start(command)
            terminals.wait_served()
            continue
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", step.code],
            cwd=terminals.folder,
            env=terminals.env,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT_S,
            check=False,
        )
        assert done.returncode == 0, f"{where}: exit {done.returncode}\n{done.stdout}{done.stderr}"
        calls.update(re.findall(r"http://127\.0\.0\.1:\d+(/[\w/{}.-]*)", step.code))
        if step.answer is None:
            continue
        language, example = step.answer
        if language == "json":
            try:
                actual = json.loads(done.stdout)
            except json.JSONDecodeError:
                pytest.fail(f"{where}: the answer is not JSON:\n{done.stdout}{done.stderr}")
            problems = same(json.loads(example), actual)
            assert not problems, f"{where}: the document's answer differs:\n" + "\n".join(problems)
        else:
            starts = [line.split()[0] for line in done.stdout.splitlines() if line.split()]
            for shown in example.splitlines():
                if shown.split():
                    first = shown.split()[0]
                    assert any(_same_token(first, start) for start in starts), (
                        f"{where}: no line like {shown!r} in:\n" + done.stdout
                    )
    documented = set(re.findall(r"^\| `(?:GET|POST) (/[^`]*)`", text, re.M))
    assert documented, "the API table is gone"
    ran = {re.sub(r"/\d+$", "/{i}", path).split("?")[0] for path in calls}
    assert documented - {"/v1/events/stream"} <= ran, f"API calls not run: {documented - ran}"


BASE64_HASH = re.compile(r"[A-Za-z0-9+/]{43}=")


def _same_token(shown: str, actual: str) -> bool:
    """A text answer's line starts as the page shows it, but for what differs from run to
    run: a prefix the page ends with '…' (a key id), a number (a size), a base64 hash."""
    if shown.endswith("\u2026"):
        return actual.startswith(shown[:-1])
    if shown.isdigit():
        return actual.isdigit()
    if BASE64_HASH.fullmatch(shown):
        return BASE64_HASH.fullmatch(actual) is not None
    return shown == actual


def test_the_rungs_and_domains_it_lists_are_the_default_policys() -> None:
    from clearline.config import default_policy

    text = DOC.read_text()
    policy = default_policy()
    rows = re.findall(r"^\| `([a-z-]+)` \| (-?\d+) \| ?(yes)? ?\|", text, re.M)
    assert [(name, int(score), kinetic == "yes") for name, score, kinetic in rows] == [
        (r.name, r.score, r.kinetic) for r in policy.ladder
    ]
    domains = re.search(r"^Domains: (.*?)\.", text, re.M)
    assert domains is not None
    assert re.findall(r"`([a-z0-9-]+)`", domains.group(1)) == list(policy.domains)
