"""Real node processes for integration tests: keys, configs, start, stop."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from clearline.node.config import load_node_config
from clearline.node.keys import init_keys
from clearline.node.tokens import read_token

START_TIMEOUT_S = 30
SWARM = {
    "asset_id": "PRC-RS-7",
    "kind": "recon_swarm",
    "mission": "reconnaissance",
    "armed": False,
    "intent": "withdrawing",
    "position": {"lat": 24.1, "lon": 122.4, "alt_m": 1500},
}
"""The PRC node's own asset, as its sensor reports it."""
SIGHTING = {
    "track_id": "T-0417",
    "position": {"lat": 24.13, "lon": 122.38, "alt_m": 1400},
    "looks_like": "strike_package",
    "count": 24,
}
"""What the US node sees of SWARM: close by, and looking like a strike package."""
NUCLEAR_BY_NAME = {
    "action_id": "a2",
    "actor": "human",
    "rung": "nuclear",
    "domain": "nuclear-c2",
    "authorizations": ["nobody-1", "nobody-2"],
}
"""A human nuclear act that names officers instead of carrying their signatures."""
POLL_S = 0.05


def wait_until(
    condition: Callable[[], object], timeout: float, failure: str | Callable[[], str]
) -> None:
    """Poll `condition` until it holds; after `timeout` seconds fail, saying `failure`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(failure if isinstance(failure, str) else failure())
        time.sleep(POLL_S)


def make_keys(folder: Path, *sides: str) -> Path:
    keys = folder / "keys"
    for side in sides:
        init_keys(keys, side)
    return keys


def write_config(
    folder: Path,
    side: str,
    peer: str,
    *,
    listen: bool = False,
    address: str | None = None,
    keys_dir: str = "keys",
    peer_keys_dir: str = "keys",
    extra: str = "",
) -> Path:
    lines = [
        f'side = "{side}"',
        f'keys_dir = "{keys_dir}"',
        f'data_dir = "{side.lower()}-data"',
        "heartbeat_ms = 200",
        extra,
    ]
    if listen:
        lines += ["[listen]", 'host = "127.0.0.1"', "port = 0"]
    lines += [
        "[peer]",
        f'side = "{peer}"',
        f'certificate = "{peer_keys_dir}/{peer}.tls.crt"',
        f'signing_key = "{peer_keys_dir}/{peer}.signing.pub"',
    ]
    if address:
        lines.append(f'address = "{address}"')
    lines += ["[api]", "port = 0"]
    path = folder / f"{side.lower()}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class NodeProcess:
    process: subprocess.Popen[bytes]
    api: str
    listen: int | None
    log: Path
    stderr: Path
    keys: Path
    side: str

    def token(self, role: str) -> str:
        """The node's API token for `role`, as keys init wrote it."""
        return read_token(self.keys, self.side, role)

    def client(self, role: str = "observer") -> httpx.Client:
        """An API client holding the token of `role` (ask for the least the calls need)."""
        return httpx.Client(
            base_url=self.api, timeout=20, headers={"Authorization": f"Bearer {self.token(role)}"}
        )

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)

    def wait_link(self, state: str = "up", timeout: float = 20) -> dict[str, object]:
        link: dict[str, object] = {}
        with self.client() as client:

            def reached() -> bool:
                link.update(client.get("/v1/link").json())
                return link["state"] == state

            wait_until(reached, timeout, lambda: f"link not {state} after {timeout} s: {link}")
        return link

    def events(self, kind: str) -> list[dict[str, object]]:
        with self.client() as client:
            events: list[dict[str, object]] = client.get(
                "/v1/events", params={"limit": 10_000}
            ).json()["events"]
        return [e for e in events if e["kind"] == kind]


@contextlib.contextmanager
def running(*nodes: NodeProcess) -> Iterator[None]:
    """Kill whichever of `nodes` is still running on the way out (a failed test's nodes)."""
    try:
        yield
    finally:
        for node in nodes:
            if node.process.poll() is None:
                node.process.kill()


def start_node(config: Path) -> NodeProcess:
    folder = config.parent
    ready = folder / f"{config.stem}.ready"
    ready.unlink(missing_ok=True)
    stderr = folder / f"{config.stem}.stderr"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from clearline.cli import main; main()",
            "node",
            "serve",
            "--config",
            str(config),
            "--ready-file",
            str(ready),
        ],
        stdout=subprocess.DEVNULL,
        stderr=stderr.open("wb"),
        cwd=folder,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )

    def started() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"node exited {process.returncode}: {stderr.read_text()}")
        return ready.exists() and bool(ready.read_text())

    try:
        wait_until(started, START_TIMEOUT_S, lambda: f"node did not start: {stderr.read_text()}")
    except AssertionError:
        process.kill()
        raise
    info = json.loads(ready.read_text())
    loaded = load_node_config(config)
    return NodeProcess(
        process,
        info["api"],
        info["listen"],
        Path(info["log"]),
        stderr,
        loaded.path(loaded.keys_dir),
        loaded.side,
    )


def tls_client(
    port: int, ca: Path, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLSocket:
    """A raw TLS 1.3 client to a node's listening port (for refusal tests)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False
    context.load_verify_locations(str(ca))
    if cert is not None and key is not None:
        context.load_cert_chain(str(cert), str(key))
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return context.wrap_socket(raw)


class ProxyThread:
    """A FaultProxy running on its own event loop in a thread, scriptable from sync tests."""

    def __init__(self, target_port: int, seed: int = 0) -> None:
        import asyncio
        import threading

        from clearline.node.proxy import FaultProxy

        self.loop = asyncio.new_event_loop()
        self.proxy = FaultProxy("127.0.0.1", target_port, seed=seed)
        started = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.proxy.start())
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        started.wait(10)
        self.port = self.proxy.listen_port

    def do(self, fn: object, *args: object, **kwargs: object) -> None:
        """Run a scripting call on the proxy's loop, and return once it has taken effect."""
        import asyncio

        async def call() -> None:
            fn(*args, **kwargs)  # type: ignore[operator]

        asyncio.run_coroutine_threadsafe(call(), self.loop).result(10)

    def close(self) -> None:
        import asyncio

        asyncio.run_coroutine_threadsafe(self.proxy.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
