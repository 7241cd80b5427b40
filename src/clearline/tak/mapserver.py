"""`clearline tak map`: clearline's own minimal TAK map client, in a browser.

It joins a TAK server's CoT port as a TAK user does (clearline.tak.client), keeps what
the server sends in a `mapview.Picture`, and serves one self-contained page (map.html:
inline SVG and script, nothing loaded from anywhere else) that redraws from
`/picture.json` every second. If the server drops the connection the map redials it,
and the page says so meanwhile.

It is not ATAK or WinTAK: no tiles, no drawing tools, no chat, no data packages; it shows
the picture, and the hotline's state on the tracks a clearline node asked about.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import re
import secrets
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Final

import uvicorn
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from clearline.errors import TakConnectionError
from clearline.tak import client as tak_client
from clearline.tak.mapview import DEFAULT_MAX_MARKERS, Picture

log = logging.getLogger("clearline.tak.map")

DEFAULT_PORT: Final = 8600
DEFAULT_CALLSIGN: Final = "clearline map"
REDIAL_S: Final = (1.0, 30.0)
"""The first wait before redialling a server that dropped, and the longest (doubling)."""
LOOPBACK: Final = ("127.0.0.1", "localhost", "::1")
PAGE: Final = resources.files("clearline.tak").joinpath("map.html").read_text(encoding="utf-8")


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _policy(page: str) -> str:
    """The page's Content-Security-Policy: its own inline script and style (by hash), its
    own JSON, and nothing else from anywhere."""
    scripts = re.findall(r"<script>(.*?)</script>", page, re.S)
    styles = re.findall(r"<style>(.*?)</style>", page, re.S)
    return (
        "default-src 'none'; "
        f"script-src {' '.join(_sha256(s) for s in scripts)}; "
        f"style-src {' '.join(_sha256(s) for s in styles)}; "
        "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )


POLICY: Final = _policy(PAGE)


def _wall_us() -> int:
    return time.time_ns() // 1000


@dataclass
class Connection:
    """The map's side of its TAK server connection, as the page shows it."""

    server: str
    callsign: str
    uid: str
    connected: bool = False
    since: float = field(default_factory=time.time)
    """When it last connected or dropped (time.time())."""
    error: str | None = None
    connections: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "callsign": self.callsign,
            "uid": self.uid,
            "connected": self.connected,
            "since_s": round(time.time() - self.since, 1),
            "error": self.error,
            "connections": self.connections,
        }


class MapService:
    """The picture, fed by one connection at a time to the TAK server."""

    def __init__(
        self,
        host: str,
        port: int,
        callsign: str = DEFAULT_CALLSIGN,
        uid: str | None = None,
        max_markers: int = DEFAULT_MAX_MARKERS,
        now_us: Callable[[], int] = _wall_us,
    ) -> None:
        self.host, self.port = host, port
        self.picture = Picture(max_markers)
        self.now_us = now_us
        uid = uid or f"clearline-map-{secrets.token_hex(4)}"
        self.connection = Connection(f"tcp://{host}:{port}", callsign, uid)

    async def connect(self) -> tak_client.TakClient:
        """Joined and announced; TakConnectionError if the server cannot be reached."""
        joined = await tak_client.connect(
            self.host, self.port, self.connection.uid, self.connection.callsign
        )
        self._up()
        return joined

    def _up(self) -> None:
        self.connection.connected = True
        self.connection.error = None
        self.connection.connections += 1
        self.connection.since = time.time()

    async def follow(self, first: tak_client.TakClient | None = None) -> None:
        """Read the server into the picture for good. A server that drops the connection is
        redialled after REDIAL_S[0], doubling up to REDIAL_S[1] while it keeps dropping (or
        cannot be reached); a connection that lasted longer than that starts again at
        REDIAL_S[0]."""
        joined = first
        wait = REDIAL_S[0]
        while True:
            if joined is None:
                try:
                    joined = await self.connect()
                except TakConnectionError as exc:
                    self.connection.error = str(exc)
                    await asyncio.sleep(wait)
                    wait = min(REDIAL_S[1], wait * 2)
                    continue
            began = time.monotonic()
            try:
                while True:
                    items = await joined.read()
                    self.picture.feed(items, self.now_us())
            except TakConnectionError as exc:
                self.connection.error = str(exc)
                log.warning("%s; redialling", exc)
            finally:
                self.connection.connected = False
                self.connection.since = time.time()
                joined.close()
                joined = None
            if time.monotonic() - began > REDIAL_S[1]:
                wait = REDIAL_S[0]
            await asyncio.sleep(wait)
            wait = min(REDIAL_S[1], wait * 2)

    def snapshot(self) -> dict[str, Any]:
        shown = self.picture.snapshot(self.now_us())
        shown["connection"] = self.connection.as_json()
        return shown


def allowed_hosts(bind: str) -> frozenset[str] | None:
    """The Host header names the page answers to (any port): its loopback names, and the
    address it is bound to; None (any) when bound to every address."""
    if bind in ("0.0.0.0", "::", ""):
        return None
    return frozenset({*LOOPBACK, bind.lower().strip("[]")})


def _host_name(header: str) -> str:
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


class _HostCheck:
    """421 for a Host header that is not one of the page's names: a page on another site
    that rebinds its own name to this address cannot read the picture."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str] | None) -> None:
        self.app, self.hosts = app, hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.hosts is not None:
            headers = dict(scope["headers"])
            host = _host_name(headers.get(b"host", b"").decode("latin-1"))
            if host not in self.hosts:
                response = JSONResponse(
                    {"detail": f"Host {host!r} is not a name of this map"}, status_code=421
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def build_app(service: MapService, hosts: frozenset[str] | None) -> FastAPI:
    app = FastAPI(title="clearline TAK map", docs_url=None, redoc_url=None, openapi_url=None)
    safe = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}

    @app.get("/", include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE, headers={**safe, "Content-Security-Policy": POLICY})

    @app.get("/favicon.ico", include_in_schema=False)
    async def icon() -> Response:
        return Response(status_code=204)

    @app.get("/picture.json")
    async def picture() -> JSONResponse:
        """What the map shows now (clearline.tak.mapview.Picture.snapshot)."""
        return JSONResponse(service.snapshot(), headers=safe)

    app.add_middleware(_HostCheck, hosts=hosts)
    return app


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: whoever runs the map owns shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class RunningMap:
    url: str
    """The page."""
    service: MapService


def page_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


@contextlib.asynccontextmanager
async def running_map(
    server_url: str,
    host: str = "127.0.0.1",
    port: int = 0,
    callsign: str = DEFAULT_CALLSIGN,
    uid: str | None = None,
    max_markers: int = DEFAULT_MAX_MARKERS,
) -> AsyncIterator[RunningMap]:
    """The map, joined to the TAK server at `server_url` (`tcp://HOST:PORT`) and serving its
    page on host:port (0: a free port), until the block ends. ValueError for a malformed
    URL; TakConnectionError if the server cannot be reached; OSError if the page's port
    cannot be bound (its message names the address)."""
    server_host, server_port = tak_client.parse_server_url(server_url)
    try:
        listener = socket.create_server((host, port))
    except OSError as exc:
        raise OSError(f"cannot serve the map on {host}:{port}: {exc.strerror or exc}") from None
    with listener:
        service = MapService(server_host, server_port, callsign, uid, max_markers)
        first = await service.connect()
        web = _Server(
            uvicorn.Config(
                build_app(service, allowed_hosts(host)),
                log_level="warning",
                access_log=False,
                lifespan="off",
            )
        )
        serving = asyncio.create_task(web.serve(sockets=[listener]))
        following = asyncio.create_task(service.follow(first))
        try:
            while not web.started:
                if serving.done():
                    await serving
                    raise OSError(f"the map's web server on {host}:{port} did not start")
                await asyncio.sleep(0.01)
            yield RunningMap(page_url(host, listener.getsockname()[1]), service)
        finally:
            following.cancel()
            web.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await following
            first.close()  # if `following` was cancelled before it began
            await serving


async def serve_map(
    server_url: str,
    host: str,
    port: int,
    callsign: str,
    max_markers: int,
    say: Callable[[str], None],
) -> int:
    """`clearline tak map`: until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running_map(server_url, host, port, callsign, None, max_markers) as shown:
        say(
            f"TAK map: {shown.url} (a client of the TAK server {server_url}, announced as "
            f"{callsign!r}; Ctrl-C stops it)"
        )
        await stop.wait()
    say("TAK map stopped")
    return 0
