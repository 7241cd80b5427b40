"""A witness process started from outside, as the demo and the tests run one: a key, a
config naming the logs it witnesses, `clearline witness serve` until its ready file is
written, SIGTERM or SIGKILL."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from clearline.lab.nodes import ServeStarting
from clearline.witness.config import init_witness_key


def witness_config_text(
    name: str,
    sides: dict[str, str],
    *,
    port: int = 0,
    key: str = "witness.key",
    state: str = "witness.db",
) -> str:
    """A witness's TOML: its key and state in its folder, its API on `port` of loopback
    (0: a free one), and a [[log]] per side, from SIDE -> path of SIDE.signing.pub."""
    lines = [f'name = "{name}"', f'key = "{key}"', f'state = "{state}"']
    lines += ["[listen]", 'host = "127.0.0.1"', f"port = {port}"]
    for side, public_key in sides.items():
        lines += ["[[log]]", f'side = "{side}"', f'signing_key = "{public_key}"']
    return "\n".join(lines) + "\n"


def make_witness(folder: Path, name: str, sides: dict[str, str], port: int = 0) -> Path:
    """A witness in `folder`: a new key unless one is there, and witness.toml (returned)."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "witness.key").exists():
        init_witness_key(folder, name)
    config = folder / "witness.toml"
    config.write_text(witness_config_text(name, sides, port=port))
    return config


@dataclass
class WitnessProcess:
    """A running `clearline witness serve`, as its ready file describes it."""

    name: str
    url: str
    public_key: str
    process: subprocess.Popen[bytes]
    stderr: Path
    state: Path

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL (kill -9), if it is still running, and reap it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def witness_section(
    servers: list[tuple[str, str, str]],
    quorum: int = 1,
    on_missing: str = "flag",
    timeout_ms: int | None = None,
) -> str:
    """A node's [witness] table and one [[witness.servers]] per (name, url, public key)."""
    lines = ["[witness]", f"quorum = {quorum}", f'on_missing = "{on_missing}"']
    if timeout_ms is not None:
        lines.append(f"timeout_ms = {timeout_ms}")
    for name, url, public_key in servers:
        lines += [
            "[[witness.servers]]",
            f'name = "{name}"',
            f'url = "{url}"',
            f'public_key = "{public_key}"',
        ]
    return "\n".join(lines) + "\n"


class _Starting(ServeStarting):
    def __init__(self, config: Path, die_with_parent: bool) -> None:
        super().__init__("witness", config, die_with_parent)

    def poll(self) -> WitnessProcess | None:
        info = self.poll_ready()
        if info is None:
            return None
        return WitnessProcess(
            info["name"],
            info["url"],
            info["public_key"],
            self.process,
            self.stderr,
            Path(info["state"]),
        )


def start_witness(config: Path, *, die_with_parent: bool = False) -> WitnessProcess:
    """Start a witness on `config` and wait until it serves."""
    starting = _Starting(config, die_with_parent)
    while (witness := starting.poll()) is None:
        time.sleep(0.02)
    return witness


async def start_witness_async(config: Path, *, die_with_parent: bool = False) -> WitnessProcess:
    starting = _Starting(config, die_with_parent)
    while (witness := starting.poll()) is None:
        await asyncio.sleep(0.02)
    return witness
