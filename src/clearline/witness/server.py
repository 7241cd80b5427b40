"""`clearline witness serve`: the tlog-witness HTTP interface over a `WitnessState`.

One route, ``POST /add-checkpoint``. The checks that need no state (syntax, the log's
signature, the old size against the size) run in the event loop; the check against the
state and its commit run on one thread in one SQLite transaction, so requests are decided
one after another and each new checkpoint is on disk before its cosignature is signed.
Bad input is answered with its status and a one-line reason, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import uvicorn
import uvloop
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from clearline.errors import LogStoreError, NoteError, WitnessRefusalError
from clearline.log.note import cosign, verify_note
from clearline.witness.config import Witness, load_witness, setting_error
from clearline.witness.protocol import SIZE_CONTENT_TYPE, parse_request
from clearline.witness.state import WitnessState

log = logging.getLogger("clearline.witness")

Clock = Callable[[], float]


class WitnessService:
    """A loaded witness, its state and the one thread that touches the state."""

    def __init__(self, witness: Witness, clock: Clock = time.time) -> None:
        self.witness = witness
        self.state = WitnessState(witness.config.path(witness.config.state))
        self.clock = clock
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="witness-state")

    async def add_checkpoint(self, body: bytes) -> str:
        """The cosignature line for the request in `body`, or WitnessRefusalError."""
        request = parse_request(body)
        origin = request.head.origin
        key = self.witness.logs.get(origin)
        if key is None:
            raise WitnessRefusalError(404, f"unknown log {origin[:100]!r}")
        try:
            verified = verify_note(request.note, [key])
        except NoteError as exc:
            raise WitnessRefusalError(403, f"the log's signature does not verify: {exc}") from None
        if not verified:
            raise WitnessRefusalError(403, f"no signature by the key of log {origin}")
        loop = asyncio.get_running_loop()
        head = request.head
        try:
            new = await loop.run_in_executor(self._thread, self.state.add, request)
        except WitnessRefusalError as refusal:
            if refusal.fork:
                log.warning(
                    "refused a second root for %s size %d (kept as evidence)", origin, head.size
                )
            raise
        log.info("cosigned %s size %d%s", origin, head.size, "" if new else " (already held)")
        # Signed only now that the checkpoint is committed (see WitnessState.add).
        timestamp = int(self.clock())
        return cosign(
            request.note.text, self.witness.config.name, self.witness.signer, timestamp
        ).line()

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        self.state.close()


class _TooLargeError(Exception):
    pass


async def _body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise _TooLargeError
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > limit:
            raise _TooLargeError
    return bytes(chunks)


def build_app(service: WitnessService) -> Starlette:
    limit = service.witness.config.max_body_bytes

    async def add_checkpoint(request: Request) -> Response:
        try:
            body = await _body(request, limit)
        except _TooLargeError:
            return PlainTextResponse(f"the request is over {limit} bytes\n", 413)
        except ClientDisconnect:
            return PlainTextResponse("", 400)
        try:
            line = await service.add_checkpoint(body)
        except WitnessRefusalError as refusal:
            if refusal.status == 409 and refusal.known_size is not None:
                # Exactly this type, with no charset parameter added.
                return Response(
                    f"{refusal.known_size}\n".encode(),
                    409,
                    headers={"Content-Type": SIZE_CONTENT_TYPE},
                )
            return PlainTextResponse(f"{refusal}\n", refusal.status)
        except LogStoreError as exc:
            log.error("%s", exc)
            return PlainTextResponse("the witness cannot commit its state\n", 503)
        return PlainTextResponse(line)

    return Starlette(routes=[Route("/add-checkpoint", add_checkpoint, methods=["POST"])])


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: `serve` owns shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(config_path: Path, ready_file: Path | None = None) -> int:
    witness = load_witness(config_path)
    config = witness.config
    try:
        listener = socket.create_server((config.listen.host, config.listen.port))
    except OSError as exc:
        raise setting_error(
            config,
            ("listen", "port"),
            f"cannot listen on {config.listen.host}:{config.listen.port}: {exc.strerror or exc}",
        ) from None
    service = WitnessService(witness)
    server = _Server(
        uvicorn.Config(
            build_app(service),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_keep_alive=20,
        )
    )
    task = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started:
        if task.done():
            await task
            service.close()
            return 1
        await asyncio.sleep(0.01)
    port = listener.getsockname()[1]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ready = {
        "name": config.name,
        "url": f"http://{config.listen.host}:{port}",
        "public_key": witness.signer.public_key.hex(),
        "vkey": witness.key.vkey(),
        "logs": sorted(witness.logs),
        "state": str(service.state.path.resolve()),
    }
    log.warning("witness %s ready: %s", config.name, json.dumps(ready))
    if ready_file is not None:
        ready_file.write_text(json.dumps(ready))
    await stop.wait()
    server.should_exit = True
    await task
    service.close()
    log.warning("witness %s stopped", config.name)
    return 0


def main(config_path: Path, ready_file: Path | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO,
        handlers=[logging.StreamHandler(sys.stderr)],
        format="%(asctime)s %(name)s %(message)s",
    )
    return uvloop.run(serve(config_path, ready_file))
