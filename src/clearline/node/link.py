"""One authenticated TLS connection carrying the node's hotline endpoint, and its bounds.

The link moves bytes between the socket and the endpoint, keeps the endpoint's
timer on the event loop, and charges the peer for what it makes the node verify.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from clearline.protocol.events import MessageReceived, Rejected
from clearline.protocol.messages import Micros
from clearline.protocol.session import Session

if TYPE_CHECKING:
    from clearline.node.node import Node

log = logging.getLogger("clearline.node")

READ_SIZE = 65_536
MAX_WRITE_BUFFER = 4 * 1024 * 1024
"""A peer that stops reading is cut off once this much is waiting for it."""


def wall_us() -> Micros:
    return time.time_ns() // 1000


@dataclass
class TokenBucket:
    rate: float
    burst: float
    tokens: float = 0.0
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self, n: float) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < n:
            return False
        self.tokens -= n
        return True


class Link:
    """One authenticated TLS connection, carrying the node's endpoint's current session."""

    def __init__(
        self,
        node: Node,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: str,
    ) -> None:
        self.node = node
        self.endpoint = node.endpoint
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at: Micros | None = None
        self.bucket = TokenBucket(node.config.limits.frames_per_s, node.config.limits.burst)
        self.closed = asyncio.Event()
        self.frames = 0
        self._session: Session | None = None

    @property
    def session(self) -> Session:
        """The session this connection carries (the endpoint moves on to the next one's)."""
        session = self._session if self._session is not None else self.endpoint.session
        assert session is not None
        return session

    def start(self, session: Session) -> None:
        """Bind the session begun on this connection, and run its first exchange."""
        self._session = session
        self.pump()

    @property
    def current(self) -> bool:
        """Whether the endpoint's session is still this connection's (not replaced)."""
        return self.endpoint.session is self.session

    def pump(self) -> None:
        if not self.current:
            self.abort()
            return
        node = self.node
        endpoint = self.endpoint
        logged = node.log_entries(self)
        while (event := endpoint.next_event()) is not None:
            if isinstance(event, MessageReceived | Rejected):
                self.frames += 1
            node.handle(self, event, logged)
        data = endpoint.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)
            transport = self.writer.transport
            if transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
                node.refuse(self.peer, "peer is not reading (write buffer over 4 MiB)")
                self.abort()
                return
        if self.session.closed:
            self.abort()
            return
        self._arm_timer()

    def _arm_timer(self) -> None:
        deadline = self.endpoint.next_deadline()
        if deadline == self.timer_at:
            return
        if deadline is not None and self.timer_at is not None and self.timer_at < deadline:
            # Every message sent moves the next heartbeat on: the timer armed for the old
            # one is kept rather than re-armed hundreds of times a second under load. It
            # fires early, finds nothing due, and is armed again for what is.
            return
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.timer_at = deadline
        if deadline is None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, (deadline - wall_us()) / 1e6)
        self.timer = loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self.timer = None
        self.timer_at = None
        if self.session.closed or not self.current:
            return
        self.endpoint.handle_timer(wall_us())
        self.pump()

    async def run(self) -> None:
        try:
            while not self.session.closed:
                data = await self.reader.read(READ_SIZE)
                if not data or not self.current:
                    break
                self.endpoint.receive_data(data, wall_us())
                self.frames = 0
                self.pump()
                # Charge what the peer made us verify: one token per frame.
                if self.frames and not self.bucket.take(self.frames):
                    self.node.refuse(self.peer, "rate limit: the peer sends faster than allowed")
                    break
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            log.info("connection to %s lost: %s", self.peer, exc)
        finally:
            self.abort()

    def abort(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not self.session.closed and self.current:
            self.endpoint.close(wall_us(), "connection ended")
            logged = self.node.log_entries(self)
            while (event := self.endpoint.next_event()) is not None:
                self.node.handle(self, event, logged)
        if not self.writer.is_closing():
            self.writer.close()
        self.closed.set()
