"""Node processes started from outside: keys, a config file, `clearline node serve` until its
ready file is written, the node's API tokens, and SIGTERM.

The demo scene, the link benchmark, the soak and the integration tests all start nodes
this way: a node is a real process, found only through the ready file it writes.

Every process started here is tracked by its id until it has been reaped: `end_process`
stops one (SIGTERM, SIGKILL after a bound, then reaps it), `end_started` stops whatever is
still running, and at interpreter exit whatever is left is stopped too, so that a caller
that fails between starting a node and stopping it leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from clearline.errors import NodeStartError
from clearline.node.config import load_node_config
from clearline.node.keys import init_keys
from clearline.node.tokens import Role, read_token

START_TIMEOUT_S = 30.0
STOP_GRACE_S = 10.0
"""How long a process is given to exit on SIGTERM before it is killed."""

_started: dict[int, subprocess.Popen[bytes]] = {}
"""Processes started here, by id, until they are reaped."""
_leaders: set[int] = set()
"""Those of them that lead a process group of their own, ended with it."""


def track(process: subprocess.Popen[bytes], group: bool = False) -> None:
    """Track `process` as one started here (with `group`: it leads a process group, started
    with start_new_session, and its group is ended with it)."""
    _started[process.pid] = process
    if group:
        _leaders.add(process.pid)


def started_pids() -> set[int]:
    """The ids of the processes started here that have not been reaped."""
    for pid, process in list(_started.items()):
        if process.poll() is not None and pid not in _leaders:
            del _started[pid]
    return set(_started)


def _exited(process: subprocess.Popen[Any]) -> bool:
    """Whether `process` has exited, without reaping it: its id stays reserved, so signals
    to it (or to its group) cannot reach an unrelated process that took the id over."""
    if process.returncode is not None:
        return True
    waitid = getattr(os, "waitid", None)
    if waitid is None:  # not Linux or macOS: reaping is the only way to ask
        return process.poll() is not None
    try:
        return waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def end_process(
    process: subprocess.Popen[Any], grace: float = STOP_GRACE_S, group: bool = False
) -> int:
    """Stop `process` by its id and reap it; its exit code. SIGTERM first (a node flushes and
    seals its log), SIGKILL if it is still running after `grace` seconds (at once if `grace`
    is 0). With `group`, both signals go to its process group (it must lead one: started
    with start_new_session), so that the children it started go with it."""

    def signal_it(sig: signal.Signals) -> None:
        # ProcessLookupError: gone already; PermissionError: a group whose members have all
        # exited or changed hands.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(process.pid, sig)
            else:
                os.kill(process.pid, sig)

    try:
        if grace > 0 and not _exited(process):
            signal_it(signal.SIGTERM)
            deadline = time.monotonic() + grace
            while not _exited(process) and time.monotonic() < deadline:
                time.sleep(0.02)
        if group or not _exited(process):
            # Still unreaped, so the id (and group id) is still this process's.
            signal_it(signal.SIGKILL)
        return process.wait()
    finally:
        _started.pop(process.pid, None)
        _leaders.discard(process.pid)


def end_started(keep: Iterable[int] = ()) -> list[int]:
    """End every process started here and still running, except those in `keep`; the ids
    it had to end."""
    kept = set(keep)
    ended = []
    for pid in sorted(started_pids() - kept):
        process = _started.get(pid)
        if process is not None:
            end_process(process, group=pid in _leaders)
            ended.append(pid)
    return ended


atexit.register(end_started)


def make_keys(folder: Path, *sides: str, force: bool = False) -> Path:
    """Signing keys, certificates and API tokens for each of `sides` in FOLDER/keys."""
    keys = folder / "keys"
    for side in sides:
        init_keys(keys, side, force=force)
    return keys


def node_config_text(
    side: str,
    peer: str,
    *,
    listen: bool = False,
    address: str | None = None,
    keys_dir: str = "keys",
    peer_keys_dir: str = "keys",
    roster: str | None = None,
    heartbeat_ms: int | None = None,
    extra: str = "",
) -> str:
    """A node's TOML: its keys in `keys_dir`, its data in SIDE-data, the peer's certificate
    and signing key from `peer_keys_dir`, its API on a free loopback port; with `listen`, it
    listens on a free loopback port; with `address`, it dials the peer there. `extra` is
    TOML put in before the first table."""
    lines = [f'side = "{side}"', f'keys_dir = "{keys_dir}"', f'data_dir = "{side.lower()}-data"']
    if roster is not None:
        lines.append(f'roster = "{roster}"')
    if heartbeat_ms is not None:
        lines.append(f"heartbeat_ms = {heartbeat_ms}")
    if extra:
        lines.append(extra)
    if listen:
        lines += ["[listen]", 'host = "127.0.0.1"', "port = 0"]
    lines += [
        "[peer]",
        f'side = "{peer}"',
        f'certificate = "{peer_keys_dir}/{peer}.tls.crt"',
        f'signing_key = "{peer_keys_dir}/{peer}.signing.pub"',
    ]
    if address is not None:
        lines.append(f'address = "{address}"')
    lines += ["[api]", 'host = "127.0.0.1"', "port = 0"]
    return "\n".join(lines) + "\n"


def write_node_config(folder: Path, side: str, text: str) -> Path:
    """`text` as FOLDER/side.toml (lower case), which it returns."""
    path = folder / f"{side.lower()}.toml"
    path.write_text(text)
    return path


@dataclass
class NodeProcess:
    """A running `clearline node serve`, as its ready file describes it."""

    side: str
    process: subprocess.Popen[bytes]
    api: str
    listen: int | None
    log: Path
    stderr: Path
    keys: Path
    feed: int | None = None
    """The telemetry feed's port, if the configuration opens one ([feed])."""

    def token(self, role: Role | str) -> str:
        """The node's API token for `role`, as keys init wrote it."""
        return read_token(self.keys, self.side, role)

    def bearer(self, role: Role | str) -> dict[str, str]:
        """The Authorization header with the token for `role`."""
        return {"Authorization": f"Bearer {self.token(role)}"}

    def client(self, role: Role | str = Role.OBSERVER) -> httpx.Client:
        """An API client holding the token of `role` (ask for the least the calls need)."""
        return httpx.Client(base_url=self.api, timeout=20, headers=self.bearer(role))

    def wait_link(self, state: str = "up", timeout: float = 20) -> dict[str, Any]:
        """The node's link once it is in `state`; AssertionError after `timeout` s."""
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while True:
                link: dict[str, Any] = client.get("/v1/link").json()
                if link["state"] == state:
                    return link
                if time.monotonic() > deadline:
                    raise AssertionError(f"link not {state} after {timeout} s: {link}")
                time.sleep(0.05)

    def events(self, kind: str) -> list[dict[str, Any]]:
        """The node's recent events of `kind`."""
        with self.client() as client:
            events: list[dict[str, Any]] = client.get(
                "/v1/events", params={"limit": 10_000}
            ).json()["events"]
        return [e for e in events if e["kind"] == kind]

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then the exit code (the node flushes and seals its log first)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        _started.pop(self.process.pid, None)
        return code

    async def stop_async(self, timeout: float = 30) -> int:
        return await asyncio.to_thread(self.stop, timeout)

    def end(self, grace: float = STOP_GRACE_S) -> int:
        """SIGTERM, SIGKILL if it has not exited after `grace` s; reaped either way."""
        return end_process(self.process, grace)

    def kill(self) -> None:
        """SIGKILL (no flush, no seal), and reaped."""
        end_process(self.process, grace=0)


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the process that started it dies, however it
    dies, so that a demo killed outright leaves no nodes behind (Linux; elsewhere a no-op)."""
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def in_child(die_with_parent: bool, max_files: int | None) -> None:
    """In the child, before exec: die with the parent; a descriptor limit, for flood tests."""
    if die_with_parent:
        _die_with_parent()
    if max_files is not None:
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (max_files, max_files))


class ServeStarting:
    """`clearline COMMAND serve --config CONFIG` started, in CONFIG's folder, its stderr in
    CONFIG.stderr and its ready file CONFIG.ready, until it has written that file; tracked
    by pid so that it is ended however the caller ends."""

    def __init__(
        self, command: str, config: Path, die_with_parent: bool, max_files: int | None = None
    ) -> None:
        # Absolute: the process runs in CONFIG's folder, where a relative CONFIG means nothing.
        config = config.absolute()
        self.command = command
        self.config = config
        folder = config.parent
        self.ready = folder / f"{config.stem}.ready"
        self.ready.unlink(missing_ok=True)
        self.stderr = folder / f"{config.stem}.stderr"
        with self.stderr.open("wb") as stderr:
            self.process: subprocess.Popen[bytes] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "clearline",
                    command,
                    "serve",
                    "--config",
                    str(config),
                    "--ready-file",
                    str(self.ready),
                ],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                cwd=folder,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                preexec_fn=partial(in_child, die_with_parent, max_files),
            )
        _started[self.process.pid] = self.process
        self.deadline = time.monotonic() + START_TIMEOUT_S

    def poll_ready(self) -> dict[str, Any] | None:
        """The ready file's contents once written; None before; NodeStartError if the process
        exited or has not started in time (then it is ended)."""
        text = self.ready.read_text() if self.ready.exists() else ""
        try:
            info: dict[str, Any] | None = json.loads(text) if text else None
        except json.JSONDecodeError:
            info = None  # read while it was being written
        if info is None:
            failed = self.process.poll() is not None or time.monotonic() > self.deadline
            if not failed:
                return None
            end_process(self.process, grace=0)
            raise NodeStartError(
                f"the {self.command} of {self.config} did not start "
                f"(exit {self.process.returncode}):\n{self.stderr.read_text()}"
            )
        return info


class _Starting(ServeStarting):
    def __init__(self, config: Path, die_with_parent: bool, max_files: int | None = None) -> None:
        super().__init__("node", config, die_with_parent, max_files)

    def poll(self) -> NodeProcess | None:
        info = self.poll_ready()
        if info is None:
            return None
        loaded = load_node_config(self.config)
        return NodeProcess(
            loaded.side,
            self.process,
            info["api"],
            info["listen"],
            Path(info["log"]),
            self.stderr,
            loaded.path(loaded.keys_dir),
            info.get("feed"),
        )


def start_node(
    config: Path, *, die_with_parent: bool = False, max_files: int | None = None
) -> NodeProcess:
    """Start a node on `config` and wait until it serves (with at most `max_files` open
    descriptors, if given)."""
    starting = _Starting(config, die_with_parent, max_files)
    try:
        while (node := starting.poll()) is None:
            time.sleep(0.05)
    except BaseException:
        # Interrupted, or a ready file that does not parse: the caller never gets the node
        # to stop, so it is stopped here.
        end_process(starting.process, grace=0)
        raise
    return node


async def start_node_async(config: Path, *, die_with_parent: bool = False) -> NodeProcess:
    """`start_node` without blocking the event loop while the node starts."""
    starting = _Starting(config, die_with_parent)
    try:
        while (node := starting.poll()) is None:
            await asyncio.sleep(0.05)
    except BaseException:
        end_process(starting.process, grace=0)
        raise
    return node
