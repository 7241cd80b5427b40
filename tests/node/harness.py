"""Real node processes for integration tests: keys, configs, start, stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from clearline.node.config import load_node_config
from clearline.node.keys import init_keys
from clearline.node.tokens import read_token

START_TIMEOUT_S = 30


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
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while True:
                link: dict[str, object] = client.get("/v1/link").json()
                if link["state"] == state:
                    return link
                if time.monotonic() > deadline:
                    raise AssertionError(f"link not {state} after {timeout} s: {link}")
                time.sleep(0.05)

    def events(self, kind: str) -> list[dict[str, object]]:
        with self.client() as client:
            events: list[dict[str, object]] = client.get(
                "/v1/events", params={"limit": 10_000}
            ).json()["events"]
        return [e for e in events if e["kind"] == kind]


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
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready.exists() or not ready.read_text():
        if process.poll() is not None:
            raise AssertionError(f"node exited {process.returncode}: {stderr.read_text()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"node did not start: {stderr.read_text()}")
        time.sleep(0.05)
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

        from clearline.lab.proxy import FaultProxy

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
        """Run a scripting call on the proxy's loop."""
        self.loop.call_soon_threadsafe(lambda: fn(*args, **kwargs))  # type: ignore[operator]

    def close(self) -> None:
        import asyncio

        asyncio.run_coroutine_threadsafe(self.proxy.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
