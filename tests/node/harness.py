"""Real node processes for integration tests: keys, configs, start and stop as
`clearline.lab.nodes` does them, heartbeats every 200 ms; raw TLS clients; a fault proxy.

Cleanup is by process id, in layers: `running` ends its nodes on the way out of its body,
however it ends; the suite's autouse fixture (tests/conftest.py) ends any node a test started
and left running; `clearline.lab.nodes` ends what is left at interpreter exit; and a node
started here gets SIGTERM from the kernel if the test runner dies outright."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from clearline.lab import nodes
from clearline.lab.nodes import (
    NodeProcess,
    make_keys,
    node_config_text,
    write_node_config,
)
from clearline.lab.scene import SIGHTING, SWARM

__all__ = [
    "HEARTBEAT_MS",
    "NUCLEAR_BY_NAME",
    "SIGHTING",
    "SWARM",
    "NodeProcess",
    "ProxyThread",
    "make_keys",
    "record",
    "running",
    "seed_log",
    "start_node",
    "tls_client",
    "wait_until",
    "write_config",
]

HEARTBEAT_MS = 200
"""Degraded after 500 ms of silence, down after 1 s: the fault tests count on it."""
NUCLEAR_BY_NAME = {
    "action_id": "a2",
    "actor": "human",
    "rung": "nuclear",
    "domain": "nuclear-c2",
    "authorizations": ["nobody-1", "nobody-2"],
}
"""A human nuclear act that names officers instead of carrying their signatures."""
POLL_S = 0.05


ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def record(name: str, figures: dict[str, Any]) -> None:
    """Keep a test's figures in artifacts/reliability.json (docs/reliability.md quotes them),
    and print them (pytest -s shows them)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "reliability.json"
    held = json.loads(path.read_text()) if path.exists() else {}
    held[name] = {"at": time.strftime("%Y-%m-%d %H:%M:%S"), **figures}
    path.write_text(json.dumps(held, indent=2) + "\n")
    print(f"{name}: {json.dumps(figures)}")


def wait_until(
    condition: Callable[[], object], timeout: float, failure: str | Callable[[], str]
) -> None:
    """Poll `condition` until it holds; after `timeout` seconds fail, saying `failure`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(failure if isinstance(failure, str) else failure())
        time.sleep(POLL_S)


def write_config(folder: Path, side: str, peer: str, **options: Any) -> Path:
    """FOLDER/side.toml for a node under test (`node_config_text`'s options)."""
    text = node_config_text(side, peer, heartbeat_ms=HEARTBEAT_MS, **options)
    return write_node_config(folder, side, text)


def start_node(config: Path, *, max_files: int | None = None) -> NodeProcess:
    """`clearline.lab.nodes.start_node`, the node dying with the test runner."""
    return nodes.start_node(config, die_with_parent=True, max_files=max_files)


def seed_log(folder: Path, side: str, records: int) -> Path:
    """The log a node on FOLDER/side.toml will open, holding `records` local records signed
    with the side's key (decisions, then a checkpoint): faster than driving that many
    through the API, and the node serves it as its own."""
    from clearline.log.store import LogStore
    from clearline.node.keys import load_signer
    from clearline.protocol.messages import Actor, Decision, Verdict

    path = folder / f"{side.lower()}-data" / f"{side.lower()}.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    store = LogStore(path, load_signer(folder / "keys" / f"{side}.signing.key"), side)
    now = int(time.time() * 1e6)
    decisions = [
        Decision(
            f"a{i}",
            Actor.AUTONOMOUS,
            "intercept-uncrewed",
            "air",
            Verdict.HOLD,
            "hotline-hold",
            "clarification open",
            bytes(32),
            f"T-{i}",
            now + 2_000_000,
        )
        for i in range(records - 1)
    ]
    store.append([store.seal_local(d, now + i, i) for i, d in enumerate(decisions)])
    store.checkpoint(now + records, bytes(32))
    store.close()
    return path


@contextlib.contextmanager
def running(*started: NodeProcess, grace: float = nodes.STOP_GRACE_S) -> Iterator[None]:
    """End the nodes still running on the way out, whatever happened: SIGTERM, SIGKILL after
    `grace` s, each reaped by its process id."""
    try:
        yield
    finally:
        for node in started:
            node.end(grace)


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
