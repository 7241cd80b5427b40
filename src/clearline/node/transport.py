"""The node's connections: accept and dial, mutual TLS 1.3 with a pinned certificate.

Accept TCP, then do the TLS handshake ourselves, so a failed one can be named
(asyncio.start_server(ssl=...) drops failed handshakes silently; and upgrading a
stream after accepting races with the client's first bytes). Each connection that
passes the pin is handed to the node, which runs the link over it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import socket
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from clearline.errors import KeyMaterialError
from clearline.node.keys import Identity, TlsFiles, fingerprint, load_tls
from clearline.node.link import READ_SIZE

if TYPE_CHECKING:
    from clearline.node.node import Node


HANDSHAKE_TIMEOUT_S = 10
"""A connection that has not finished its TLS handshake by then is closed."""
ACCEPT_PAUSE_S = 0.05
ACCEPT_PAUSE_MAX_S = 1.0
"""How long the listener waits before accepting again when accept fails (no descriptors)."""


class Slots:
    """How many of something are held at once, in all and by source address, each under
    its cap: the peer port's handshakes in progress, the CoT ports' connections."""

    def __init__(self) -> None:
        self.held = 0
        self.by_source: dict[str, int] = {}

    def full(self, source: str, cap: int, per_source: int) -> Literal["all", "source", None]:
        """Why one more for `source` would be over a cap ("all", "source"), or None."""
        if self.held >= cap:
            return "all"
        if self.by_source.get(source, 0) >= per_source:
            return "source"
        return None

    def take(self, source: str, cap: int, per_source: int) -> Literal["all", "source", None]:
        """One more held for `source`, and None; or, taking nothing, which cap it is over."""
        over = self.full(source, cap, per_source)
        if over is None:
            self.held += 1
            self.by_source[source] = self.by_source.get(source, 0) + 1
        return over

    def give_back(self, source: str) -> None:
        self.held -= 1
        left = self.by_source[source] - 1
        if left:
            self.by_source[source] = left
        else:
            del self.by_source[source]


async def accept_forever(
    listener: socket.socket,
    stop: asyncio.Event,
    accepted: Callable[[socket.socket, str], None],
    failed: Callable[[OSError], None],
) -> None:
    """Accept until stopped, handing each connection and its `host:port` to `accepted`.
    Out of descriptors (a flood of half-open connections), it tells `failed`, waits and
    tries again rather than dying: the real clients must get in once the flood goes."""
    loop = asyncio.get_running_loop()
    pause = ACCEPT_PAUSE_S
    while not stop.is_set():
        try:
            connection, address = await loop.sock_accept(listener)
        except OSError as exc:
            failed(exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=pause)
            pause = min(pause * 2, ACCEPT_PAUSE_MAX_S)
            continue
        pause = ACCEPT_PAUSE_S
        accepted(connection, f"{address[0]}:{address[1]}")


class Transport:
    """Listening and dialling for one node; every connection ends in `node.serve`."""

    def __init__(self, node: Node, identity: Identity) -> None:
        self.node = node
        self.identity = identity
        # Built once (and again on SIGHUP): reading the key and certificates on every accept
        # costs descriptors exactly when a flood has used them up.
        self.tls = identity.tls
        self._server, self._client = make_contexts(identity.tls)
        self._handshakes = Slots()

    def context(self, server: bool) -> ssl.SSLContext:
        return self._server if server else self._client

    def reload(self) -> TlsFiles:
        """Read the TLS certificate, key and pinned peer certificate again and use them for
        every connection from now on; connections already made keep theirs. Raises
        KeyMaterialError, naming the file, and changes nothing, if any of them is not
        usable."""
        config = self.node.config
        tls = load_tls(
            config.path(config.keys_dir), config.side, config.path(config.peer.certificate)
        )
        contexts = make_contexts(tls)
        self.tls = tls
        self._server, self._client = contexts
        return tls

    def pinned(self, writer: asyncio.StreamWriter, pin: str) -> str | None:
        """None if the peer presented exactly the certificate pinned as `pin`, else why not."""
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if der is None:
            return "no client certificate"
        if fingerprint(der) != pin:
            return f"certificate {fingerprint(der)[:16]} is not the pinned one"
        return None

    async def accept_forever(self, listener: socket.socket, stop: asyncio.Event) -> None:
        """Accept until stopped (`accept_forever`), each connection in a task of its own."""
        await accept_forever(
            listener,
            stop,
            lambda connection, peer: self.node.spawn(self.accept(connection, peer)),
            lambda exc: self.node.refuse("listener", f"accept failed: {exc.strerror or exc}"),
        )

    async def accept(self, connection: socket.socket, peer: str) -> None:
        source = peer.rsplit(":", 1)[0]
        limits = self.node.config.limits
        handshakes = self._handshakes
        over = handshakes.take(source, limits.max_handshakes, limits.max_handshakes_per_source)
        if over is not None:
            held = handshakes.held if over == "all" else handshakes.by_source[source]
            where = "at once" if over == "all" else f"from {source}"
            self.node.refuse(peer, f"too many handshakes: {held} {where}")
            connection.close()
            return
        self.node.metrics.handshakes.set(handshakes.held)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=READ_SIZE)
        # The pin that goes with the context the handshake uses, should SIGHUP come meanwhile.
        pin = self.tls.peer_fingerprint
        try:
            transport, protocol = await loop.connect_accepted_socket(
                lambda: asyncio.StreamReaderProtocol(reader),
                connection,
                ssl=self.context(server=True),
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S,
            )
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            self.node.refuse(peer, f"TLS handshake failed: {tls_reason(exc)}")
            connection.close()
            return
        finally:
            handshakes.give_back(source)
            self.node.metrics.handshakes.set(handshakes.held)
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        await self.checked(reader, writer, peer, pin)

    async def checked(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str, pin: str
    ) -> bool:
        """Serve a connection that presents the certificate pinned as `pin`; True if a
        session came up on it."""
        reason = self.pinned(writer, pin)
        if reason is not None:
            self.node.refuse(peer, reason)
            writer.close()
            return False
        return await self.node.serve(reader, writer, peer)

    async def dial_forever(self, host: str, port: int, stop: asyncio.Event) -> None:
        backoff = 0.2
        while not stop.is_set():
            if self.node.link is None:
                pin = self.tls.peer_fingerprint
                try:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(
                            host, port, ssl=self.context(server=False), server_hostname=None
                        ),
                        timeout=10,
                    )
                except (ssl.SSLError, OSError, TimeoutError) as exc:
                    self.node.emit(
                        {
                            "kind": "dial-failed",
                            "peer": f"{host}:{port}",
                            "reason": tls_reason(exc),
                        }
                    )
                else:
                    if await self.checked(reader, writer, f"{host}:{port}", pin):
                        backoff = 0.2  # a session came up: the next dial is at once
                        continue
                    # Refused after TLS (the peer already has a session, or refused our
                    # Hello): back off like any failed dial, never redial in a loop.
            delay = backoff * (0.5 + random.random())  # jitter: two nodes never march in step
            backoff = min(backoff * 2, 5.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)


def make_contexts(tls: TlsFiles) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) contexts for mutual TLS 1.3 with exactly the pinned peer certificate.
    Raises KeyMaterialError if the files changed since `tls` read them (a rotation under
    way: what was checked must be what is used) or ssl refuses them."""
    contexts = []
    for purpose in (ssl.Purpose.CLIENT_AUTH, ssl.Purpose.SERVER_AUTH):
        try:
            # The peer certificate from the bytes checked, not the file: no second read.
            context = ssl.create_default_context(purpose, cadata=tls.peer_pem.decode("latin-1"))
        except ssl.SSLError as exc:
            raise KeyMaterialError(
                f"certificate {tls.peer_crt} cannot be trusted: {tls_reason(exc)}"
            ) from None
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        try:
            context.load_cert_chain(str(tls.tls_crt), str(tls.tls_key))
        except (ssl.SSLError, OSError) as exc:
            raise KeyMaterialError(
                f"TLS key {tls.tls_key} and certificate {tls.tls_crt} cannot be used: "
                f"{tls_reason(exc)}"
            ) from None
        context.verify_mode = ssl.CERT_REQUIRED
        context.check_hostname = False  # pinned: the exact certificate, not a name
        contexts.append(context)
    for path, checked in tls.read_digests.items():
        try:
            unchanged = hashlib.sha256(path.read_bytes()).digest() == checked
        except OSError:
            unchanged = False
        if not unchanged:
            raise KeyMaterialError(
                f"{path} changed while it was being read (a rotation under way?); "
                "send SIGHUP again once both the key and the certificate are in place"
            )
    return contexts[0], contexts[1]


_TLS_REASONS = {
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "the client presented no certificate",
    "CERTIFICATE_VERIFY_FAILED": "certificate verification failed: not the pinned certificate",
    "TLSV1_ALERT_UNKNOWN_CA": "the peer does not accept our certificate",
    "WRONG_VERSION_NUMBER": "not TLS",
}


def tls_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        code = exc.reason or ""
        return _TLS_REASONS.get(code, code.lower().replace("_", " ") or str(exc))
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
