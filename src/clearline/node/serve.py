"""`clearline node serve`: one node and its local API in one event loop, stopped by SIGTERM.

On SIGTERM or SIGINT the node stops dialing and listening, ends the session,
flushes the log writer, seals the log with a signed checkpoint and exits 0. On
SIGHUP it reads its TLS certificate, key and the pinned peer certificate again
for the connections it makes or accepts from then on.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import uvicorn
import uvloop

from clearline.node.api import build_app
from clearline.node.config import NodeConfig, load_node_config, setting_error
from clearline.node.cot import start_cot
from clearline.node.feed import start_feed
from clearline.node.node import Node

log = logging.getLogger("clearline.node")


class _ApiServer(uvicorn.Server):
    """uvicorn without its own signal handling: the node owns shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


API_KEEP_ALIVE_S = 20
"""Idle API connections are kept longer than clients keep theirs (httpx: 5 s), so that a
client never sends a request on a connection the node is just closing (a lost request)."""


API_SHUTDOWN_GRACE_S = 5
"""How long a stopping node waits for API requests still running (a streamed batch waiting
for answers) before it closes their connections; its event streams end by themselves."""


DESCRIPTOR_MARGIN = 64
"""Descriptors the node needs besides the capped ones: its log, sockets, the peer link."""


def _check_descriptors(config: NodeConfig) -> None:
    """Say at start, not during a flood, if the descriptor limit is below what the caps need."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    limits = config.limits
    caps = {
        "[limits] max_handshakes": limits.max_handshakes,
        "[limits] max_event_streams": limits.max_event_streams,
    }
    if config.feed is not None:
        caps["[feed] max_connections"] = config.feed.max_connections
    tak = config.tak
    if tak is not None:
        # Each CoT port holds its connections, and a TLS one its handshakes too.
        ports = sum(not url.startswith("udp://") for url in tak.listen) + (tak.out is not None)
        tls = sum(url.startswith("tls://") for url in tak.listen)
        caps["[tak] max_connections per port"] = ports * tak.max_connections
        caps["[tak] max_handshakes per TLS port"] = tls * tak.max_handshakes
    needed = sum(caps.values()) + DESCRIPTOR_MARGIN
    if soft != resource.RLIM_INFINITY and soft < needed:
        log.warning(
            "descriptor limit %d is below the %d the caps need (%s, + %d): raise it "
            "(ulimit -n %d) or lower the caps",
            soft,
            needed,
            ", ".join(f"{name} {n}" for name, n in caps.items() if n),
            DESCRIPTOR_MARGIN,
            needed,
        )


async def serve(config_path: Path, ready_file: Path | None = None) -> int:
    config = load_node_config(config_path)
    node = Node(config)
    # The API's socket is bound here, before anything starts: a port in use is one error
    # naming the setting, and leaves no log behind.
    try:
        api_socket = socket.create_server((config.api.host, config.api.port))
    except OSError as exc:
        raise setting_error(
            config,
            ("api", "port"),
            f"cannot serve the API on {config.api.host}:{config.api.port}: {exc.strerror or exc}",
        ) from None
    _check_descriptors(config)
    await node.start()
    cot = await start_cot(node)
    feed = await start_feed(node)
    api = _ApiServer(
        uvicorn.Config(
            build_app(node),
            host=config.api.host,
            port=config.api.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_keep_alive=API_KEEP_ALIVE_S,
            timeout_graceful_shutdown=API_SHUTDOWN_GRACE_S,
        )
    )
    api_task = asyncio.create_task(api.serve(sockets=[api_socket]))
    while not api.started:
        if api_task.done():
            await api_task
            return 1
        await asyncio.sleep(0.01)
    node.api_port = api.servers[0].sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, node.request_stop)
    # Certificates are rotated without a restart: SIGHUP reads them again for new connections.
    loop.add_signal_handler(signal.SIGHUP, node.reload_tls)
    ready: dict[str, object] = {
        "side": node.side,
        "api": f"http://{config.api.host}:{node.api_port}",
        "listen": node.listen_port,
        "log": str(node.log_path),
    }
    if cot is not None:
        ready["cot"] = cot.ports
    if feed is not None:
        ready["feed"] = feed.port
    # Everything made at start lives as long as the node: out of the collector's sight.
    gc.freeze()
    log.warning("node %s ready: %s", node.side, json.dumps(ready))
    if ready_file is not None:
        ready_file.write_text(json.dumps(ready))
    await node.wait_stopped()
    await node.shutdown()
    api.should_exit = True
    await api_task
    log.warning("node %s stopped; log %s has %d entries", node.side, node.log_path, node.log.size)
    return 0


class JsonLines(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the event, if any."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": self.formatTime(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        event = getattr(record, "event", None)
        if isinstance(event, dict):
            line["event"] = event
        return json.dumps(line, default=str)


GC_YOUNG_THRESHOLD = 50_000
"""Allocations less deallocations between young-generation collections (Python's: 700)."""


def main(config_path: Path, ready_file: Path | None = None, log_json: bool = False) -> int:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonLines() if log_json else logging.Formatter("%(asctime)s %(name)s %(message)s")
    )
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    # The log's commit thread must not hold the event loop off for the default 5 ms.
    sys.setswitchinterval(0.0002)
    # A feed makes three objects a record, and the registry keeps the latest 20,000 of
    # them: at the default 700 allocations a young collection, the collector cost about
    # 2 us a record (a third of a feed record's cost). Cycles are still collected, later.
    gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)
    # uvloop: libuv's event loop, about a quarter off each TLS round trip on this machine.
    return uvloop.run(serve(config_path, ready_file))
