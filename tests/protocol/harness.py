"""Two Sessions wired back to back in memory, for protocol tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from clearline.protocol import codec
from clearline.protocol.events import Event
from clearline.protocol.messages import Body, Message
from clearline.protocol.session import Session, SessionConfig
from clearline.protocol.signing import Ed25519Signer

POLICY_US = bytes(range(32))
POLICY_PRC = bytes(range(32, 64))
T0 = 1_800_000_000_000_000


@dataclass
class Pair:
    us: Session
    prc: Session
    us_key: Ed25519Signer
    prc_key: Ed25519Signer
    events: dict[str, list[Event]] = field(default_factory=lambda: {"US": [], "PRC": []})

    def drain(self) -> None:
        for name, session in (("US", self.us), ("PRC", self.prc)):
            while (event := session.next_event()) is not None:
                self.events[name].append(event)

    def pump(self, now: int) -> None:
        """Deliver everything queued, both ways, until nothing moves."""
        while True:
            a, b = self.us.data_to_send(), self.prc.data_to_send()
            if not a and not b:
                break
            if a:
                self.prc.receive_data(a, now)
            if b:
                self.us.receive_data(b, now)
        self.drain()

    def of(self, side: str, kind: type) -> list:  # type: ignore[type-arg]
        return [e for e in self.events[side] if isinstance(e, kind)]

    def forge(self, sender: Session, key: Ed25519Signer, body: Body, seq: int, now: int) -> bytes:
        """A correctly signed frame with chosen sequence number (as a replaying peer would make)."""
        assert sender.session_id is not None
        message = Message(sender.config.side, sender.session_id, seq, now, body)
        return codec.frame(codec.sign(message, key))


def config(side: str, peer: str, **overrides: int) -> SessionConfig:
    policy = POLICY_US if side == "US" else POLICY_PRC
    return SessionConfig(side=side, peer_side=peer, policy_hash=policy, **overrides)


def make_pair(start: bool = True, **overrides: int) -> Pair:
    us_key, prc_key = Ed25519Signer.from_label("US"), Ed25519Signer.from_label("PRC")
    us = Session(config("US", "PRC", **overrides), us_key, prc_key.verifier())
    prc = Session(config("PRC", "US", **overrides), prc_key, us_key.verifier())
    pair = Pair(us, prc, us_key, prc_key)
    if start:
        us.start(T0, b"\x01" * 16)
        prc.start(T0, b"\x02" * 16)
        pair.pump(T0)
    return pair
