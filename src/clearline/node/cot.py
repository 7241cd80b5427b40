"""CoT in and out of a running node, when its configuration has a `[tak]` section.

In: TCP and UDP listeners parse CoT (clearline.tak.cot) into a bounded queue; one task
routes it by the mapping file: own assets go where POST /v1/telemetry sends them
(`Node.publish`), foreign tracks where POST /v1/observations/batch sends them
(`Node.clarify_many`), several at once when they arrive together. Out: the node's events
(followed as an event-stream subscriber would) and the outcomes of the asks made here
become CoT for TAK clients connected to the `out` port and for a TAK server at `cot_url`,
whose own clients' CoT the node also takes in with `cot_url_in`. The node's own events are
never taken in (`own-output`), so a server that sends them back cannot make a loop.

Nothing a CoT sender does can hold the event loop: connections are capped per port and
per source address, TLS handshakes in progress too (as the peer port's, with the same
code: clearline.node.transport), and a connection that sends nothing for `idle_s` is
closed; each read is bounded and cut in one linear scan; TCP senders over their rate are
read more slowly (UDP ones are dropped), while what is skipped is counted at once and a
sender of nothing but skipped items is closed; the queue drops when full, and a reader of
the output that falls behind is disconnected. Every connection refused or closed is
counted by port and reason (`clearline_cot_refusals_total`). docs/tak.md has the CoT
types and detail schema written, and these bounds.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections import Counter as Tally
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter

from clearline.doctrine.registry import OwnAsset
from clearline.node.config import setting_error
from clearline.node.link import TokenBucket, wall_us
from clearline.node.transport import Slots, accept_forever, tls_reason
from clearline.protocol.messages import TrackReport
from clearline.tak import cot
from clearline.tak.mapping import Foreign, Own, Withdraw, load_mapping, route
from clearline.tak.settings import TakSettings, split_url

if TYPE_CHECKING:
    from clearline.node.node import Node, Outcome

log = logging.getLogger("clearline.node.cot")

READ_BYTES = 64 * 1024
"""One read from a CoT connection; parsed before the next, so a sender is read at most this
far ahead of what the node has digested."""
TLS_HANDSHAKE_S = 10.0
"""A `tls://` client that has not finished its handshake by then is dropped."""
MAX_NOT_COT = 64
"""Items in a row that are not CoT (skipped by the splitter, or refused by the parser
for one of `NOT_COT`) after which a connection is closed: the sender is not speaking CoT.
Bytes outside any event count one item a run (however long), and more than
`max_event_bytes` of them in a row close it too."""
NOT_COT = frozenset(
    {"oversized", "malformed", "dtd-refused", "too-complex", "not-an-event", "bad-header"}
)
"""What the parser refuses that is not a CoT event at all. An event with a bad field
(`bad-uid`, `bad-time`, ...) is CoT, and skipped without counting towards closing."""
CONNECTIONS_OVER: dict[str | None, str] = {"all": "max-connections", "source": "per-source"}
HANDSHAKES_OVER: dict[str | None, str] = {
    "all": "max-handshakes",
    "source": "handshakes-per-source",
}
"""The refusal reason when a port's `Slots` are full, in all or for one source."""
REFUSAL_LOG_S = 60.0
"""Refusals are logged at most once this often for each port and reason (with how many
there were since); each is counted in the metrics."""
MAX_ROUTED = 4096
"""Events routed in one go: the queue is drained in pieces of this, between which the loop
runs everything else."""
MAX_ASKING = 64
"""Batches of tracks being asked about at once; while this many are open, new tracks wait
in the queue's place (they are skipped as `queue-full` and asked at their next update)."""
BATCH_TRACKS = 1024
"""Tracks per clarify_many call: as POST /v1/observations/batch takes (api.py)."""
SWEEP_S = 1.0
"""How often stale own assets are withdrawn and ended holds released."""
REDIAL_S = (1.0, 30.0)
"""First and longest wait before redialling the TAK server at cot_url."""
LINK_UID = "clearline.link.{side}"
HOLD_UID = "clearline.hold.{side}.{action}"
TRACK_UID = "{track}.clearline"
LINK_TYPE = "b-x-clearline-link"
HOLD_TYPE = "b-x-clearline-hold"
TRACK_TYPE_UNKNOWN = "a-u-G"
PRESENCE_PAUSE_S = 0.5
"""Between the presence and the rest: FreeTAKServer takes a new client's first read as its
presence and drops whatever else that read holds."""
NODE_UID = "clearline.node.{side}"
NODE_TYPE = "b-x-clearline-node"
"""The node's presence on a TAK server: the first event it sends there, which servers take
as the client's identity (FreeTAKServer routes nothing from a connection before it)."""


@dataclass
class _Listener:
    """One TCP port of the service (a `listen` port or `out`) and what it holds."""

    url: str
    """As configured, with the port taken if it was 0: the `listener` label of metrics."""
    tls: ssl.SSLContext | None
    taking_in: bool
    """A `listen` port (its CoT is taken in, idle connections are closed), or `out`."""
    connections: Slots = field(default_factory=Slots)
    handshakes: Slots = field(default_factory=Slots)


def own_output(uid: str) -> bool:
    """Whether `uid` is one of those the node writes (`clearline.*`, `*.clearline`)."""
    return uid.startswith("clearline.") or uid.endswith(".clearline")


class CotService:
    def __init__(self, node: Node, settings: TakSettings) -> None:
        config = node.config
        self.node = node
        self.settings = settings
        self.mapping = load_mapping(config.path(settings.mapping))
        self.tally = cot.Tally()
        self.queue: asyncio.Queue[cot.CotEvent] = asyncio.Queue(settings.queue)
        self.ports: dict[str, int] = {}
        self.listeners: dict[str, _Listener] = {}
        self.readers: set[asyncio.StreamWriter] = set()
        self._reader_of: dict[asyncio.StreamWriter, str] = {}
        """The `out` port (or `cot_url`) each reader is on, for the metrics."""
        self.tracks: OrderedDict[str, cot.CotEvent] = OrderedDict()
        """The latest event of each foreign track seen, for its place on the map."""
        self.asked: OrderedDict[str, int] = OrderedDict()
        """When each track was last asked about from here."""
        self.asking: set[str] = set()
        """Tracks whose ask from here is open: their outcome is written from the Outcome."""
        self.fed: OrderedDict[str, tuple[int, Any]] = OrderedDict()
        """Own assets fed from CoT: their stale time and the record published."""
        self.holds: dict[str, tuple[str | None, int]] = {}
        """Gate holds written out and not yet released: action -> (target, until)."""
        self.latest: OrderedDict[str, bytes] = OrderedDict()
        """The last CoT written for each uid, sent to a reader when it connects."""
        self._batches = 0
        registry = node.metrics.registry
        self.skipped = Counter(
            "clearline_cot_skipped", "CoT events skipped, by reason", ["reason"], registry=registry
        )
        self.routed = Counter(
            "clearline_cot_routed", "CoT events taken, by route", ["route"], registry=registry
        )
        self.written = Counter(
            "clearline_cot_written",
            "CoT events written out, by state",
            ["state"],
            registry=registry,
        )
        self.refusals = Counter(
            "clearline_cot_refusals",
            "CoT connections refused or closed by the node, by port and reason",
            ["listener", "reason"],
            registry=registry,
        )
        self._refusals_logged: dict[tuple[str, str], tuple[float, int]] = {}

    # -- start ----------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        config = self.node.config
        tls = self._tls_context()
        for i, url in enumerate(self.settings.listen):
            scheme, host, port = split_url(url)
            try:
                if scheme in ("tcp", "tls"):
                    bound = await self._listen(url, tls if scheme == "tls" else None, True)
                    self.ports.setdefault(scheme, bound)
                else:
                    transport, _ = await loop.create_datagram_endpoint(
                        lambda: _Datagrams(self), local_addr=(host, port)
                    )
                    self.ports.setdefault("udp", transport.get_extra_info("sockname")[1])
                    self.node.spawn(_hold_open(transport))
            except OSError as exc:
                raise setting_error(
                    config, ("tak", "listen"), f"cannot listen on {url} ({i}): {exc.strerror}"
                ) from None
        if self.settings.out is not None:
            scheme, _, _ = split_url(self.settings.out)
            try:
                bound = await self._listen(
                    self.settings.out, tls if scheme == "tls" else None, False
                )
            except OSError as exc:
                raise setting_error(
                    config, ("tak", "out"), f"cannot listen on {self.settings.out}: {exc.strerror}"
                ) from None
            self.ports["out"] = bound
        if self.settings.cot_url is not None:
            # Built before anything is spawned: an unusable file stops the node at start.
            client_tls = self._tls_client_context()
            self.node.spawn(self._dial_forever(self.settings.cot_url, client_tls))
        self.node.spawn(self._route_forever())
        # Subscribed before the link state is read, so no change falls between the two.
        queue = self._subscribe()
        self._write_link(self.node.gate.context.link.value)
        self.node.spawn(self._follow_events(queue))
        self.node.spawn(self._sweep_forever())
        log.info("CoT: %s", " ".join(f"{k}={v}" for k, v in self.ports.items()))

    def _tls_context(self) -> ssl.SSLContext | None:
        """The server side of the `tls://` ports: the node's certificate, and client
        certificates required and checked against `tls_client_ca`."""
        settings, config = self.settings, self.node.config
        if settings.tls_cert is None or settings.tls_key is None or settings.tls_client_ca is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.verify_mode = ssl.CERT_REQUIRED
        try:
            context.load_cert_chain(config.path(settings.tls_cert), config.path(settings.tls_key))
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise setting_error(
                config,
                ("tak", "tls_cert"),
                f"cannot use {settings.tls_cert} with {settings.tls_key} as the CoT ports' "
                f"certificate and key: {exc}",
            ) from None
        try:
            context.load_verify_locations(config.path(settings.tls_client_ca))
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise setting_error(
                config,
                ("tak", "tls_client_ca"),
                f"cannot read {settings.tls_client_ca} as PEM certificates: {exc}",
            ) from None
        return context

    async def _listen(self, url: str, tls: ssl.SSLContext | None, taking_in: bool) -> int:
        """Bind `url` (each address its host names) and accept on it, as the peer port
        does; the port taken."""
        scheme, host, port = split_url(url)
        loop = asyncio.get_running_loop()
        found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        sockets: list[socket.socket] = []
        try:
            for family, *_, address in dict.fromkeys((f, a) for f, *_, a in found):
                sockets.append(socket.create_server(address, family=family))
                sockets[-1].setblocking(False)
        except OSError:
            for sock in sockets:
                sock.close()
            raise
        bound = int(sockets[0].getsockname()[1])
        listener = _Listener(f"{scheme}://{host}:{bound}", tls, taking_in)
        self.listeners[listener.url] = listener
        for sock in sockets:
            self.node.spawn(self._accept_forever(listener, sock))
        return bound

    async def _accept_forever(self, listener: _Listener, sock: socket.socket) -> None:
        try:
            await accept_forever(
                sock,
                asyncio.Event(),  # never set: the node cancels this task when it stops
                lambda connection, peer: self.node.spawn(
                    self._accepted(listener, connection, peer)
                ),
                lambda exc: self.refuse(listener.url, "accept-failed", why=exc.strerror or exc),
            )
        finally:
            sock.close()

    async def _accepted(self, listener: _Listener, connection: socket.socket, peer: str) -> None:
        """One connection to a port: under its caps, through its TLS handshake if it has
        one, then read (a `listen` port) or written to (`out`) until it closes."""
        source = peer.rsplit(":", 1)[0]
        settings = self.settings
        caps = (source, settings.max_connections, settings.per_source)
        reason = CONNECTIONS_OVER.get(listener.connections.full(*caps))
        if reason is None and listener.tls is not None:
            reason = HANDSHAKES_OVER.get(
                listener.handshakes.take(
                    source, settings.max_handshakes, settings.max_handshakes_per_source
                )
            )
        if reason is not None:
            self.refuse(listener.url, reason, peer)
            connection.close()
            return
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=READ_BYTES)
        try:
            async with asyncio.timeout(TLS_HANDSHAKE_S if listener.tls is not None else None):
                transport, protocol = await loop.connect_accepted_socket(
                    lambda: asyncio.StreamReaderProtocol(reader), connection, ssl=listener.tls
                )
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            if listener.tls is None:
                reason = "accept-failed"
            else:
                reason = "tls-timeout" if isinstance(exc, TimeoutError) else "tls-failed"
            self.refuse(listener.url, reason, peer, tls_reason(exc))
            connection.close()
            return
        finally:
            if listener.tls is not None:
                listener.handshakes.give_back(source)
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        reason = CONNECTIONS_OVER.get(listener.connections.take(*caps))  # a handshake takes time
        if reason is not None:
            self.refuse(listener.url, reason, peer)
            transport.abort()
            return
        try:
            if listener.taking_in:
                closed = await self._read_cot(reader, settings.idle_s or None)
                if closed is not None:
                    self.refuse(listener.url, closed, peer)
            else:
                await self._keep(reader, writer, listener.url)
        finally:
            listener.connections.give_back(source)
            transport.abort()

    def refuse(self, listener: str, reason: str, peer: str = "", why: object = "") -> None:
        """Count a connection refused or closed; log it, at most once a REFUSAL_LOG_S for
        each port and reason."""
        self.refusals.labels(listener=listener, reason=reason).inc()
        key = (listener, reason)
        logged, since = self._refusals_logged.get(key, (-REFUSAL_LOG_S, 0))
        now = time.monotonic()
        if now - logged < REFUSAL_LOG_S:
            self._refusals_logged[key] = (logged, since + 1)
            return
        self._refusals_logged[key] = (now, 0)
        more = f" (and {since} more since the last one logged)" if since else ""
        detail = f" ({why})" if why else ""
        who = f" {peer}" if peer else ""
        log.warning("CoT %s: refused or closed%s: %s%s%s", listener, who, reason, detail, more)

    # -- in -------------------------------------------------------------------------------

    def skip(self, reason: str, n: int = 1) -> None:
        self.tally.add(reason, n)
        self.skipped.labels(reason=reason if reason in cot.REASONS else "malformed").inc(n)

    def take(self, data: bytes | cot.Skipped) -> str | None:
        """One event's bytes (or why the splitter dropped them): parsed and queued; why it
        was skipped, if it was."""
        parsed = data if isinstance(data, cot.Skipped) else cot.parse(data, self.max_bytes)
        if isinstance(parsed, cot.Skipped):
            self.skip(parsed.reason)
            return parsed.reason
        try:
            self.queue.put_nowait(parsed)
        except asyncio.QueueFull:
            self.skip("queue-full")
            return "queue-full"
        return None

    @property
    def max_bytes(self) -> int:
        return self.settings.max_event_bytes

    def _rate(self) -> TokenBucket:
        return TokenBucket(self.settings.events_per_s, 2 * self.settings.events_per_s)

    async def _read_cot(
        self, reader: asyncio.StreamReader, idle_s: float | None = None
    ) -> str | None:
        """Take the CoT a TCP connection carries until it closes: None, or why it is to be
        closed (`idle`: nothing came for `idle_s`; `not-cot`: MAX_NOT_COT items in a row
        were not CoT)."""
        splitter = cot.StreamSplitter(self.max_bytes, max_run=MAX_NOT_COT)
        bucket = self._rate()
        run = 0
        skipped: Tally[str] = Tally()
        try:
            while True:
                try:
                    async with asyncio.timeout(idle_s):
                        data = await reader.read(READ_BYTES)
                except TimeoutError:
                    return "idle"
                if not data:
                    return None
                for item in splitter.feed(data):
                    if isinstance(item, cot.Skipped):
                        skipped[item.reason] += 1  # counted at once, never paced
                        run += 1
                        continue
                    # Over its rate, a TCP sender is read more slowly: its own buffers fill,
                    # not ours, and nothing it sent in order is lost.
                    if not bucket.take(1):
                        self._skip_all(skipped)
                        while not bucket.take(1):
                            await asyncio.sleep(1 / self.settings.events_per_s)
                    run = run + 1 if self.take(item) in NOT_COT else 0
                    if run >= MAX_NOT_COT:
                        break
                self._skip_all(skipped)
                if run >= MAX_NOT_COT or splitter.gave_up:
                    return "not-cot"
                await asyncio.sleep(0)
        except (ConnectionError, OSError):
            return None
        finally:
            self._skip_all(skipped)

    def _skip_all(self, skipped: Tally[str]) -> None:
        for reason, n in skipped.items():
            self.skip(reason, n)
        skipped.clear()

    # -- routing --------------------------------------------------------------------------

    async def _route_forever(self) -> None:
        while True:
            batch = [await self.queue.get()]
            if self.settings.batch_ms:
                # A swarm's tracks arrive as a burst: wait for the rest of it, then ask once.
                await asyncio.sleep(self.settings.batch_ms / 1000)
            while len(batch) < MAX_ROUTED and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            try:
                self.route(batch, wall_us())
            except Exception:  # the ingest must outlive any one batch
                log.exception("CoT: routing a batch of %d failed", len(batch))

    def route(self, events: Iterable[cot.CotEvent], now: int) -> None:
        published: list[OwnAsset] = []
        tracks: dict[str, TrackReport] = {}
        for event in events:
            if own_output(event.uid):
                self.skip("own-output")  # ours, sent back (a TAK server repeats to all)
                continue
            routed = route(self.mapping, event, now)
            if isinstance(routed, cot.Skipped):
                self.skip(routed.reason)
            elif isinstance(routed, Withdraw):
                self.skip("stale")
                self._withdraw(routed.asset_id)
            elif isinstance(routed, Own):
                self.routed.labels(route=f"own-{routed.share}").inc()
                self._remember(self.fed, routed.record.asset_id, (event.stale_us, routed.record))
                if routed.share == "telemetry":
                    published.append(OwnAsset(routed.record, routed.intent))
                else:
                    self.node.registry.publish(OwnAsset(routed.record, routed.intent))
            elif isinstance(routed, Foreign):
                self.routed.labels(route="foreign").inc()
                uid = routed.track.track_id
                self._remember(self.tracks, uid, event)
                last = self.asked.get(uid)
                if uid in self.asking or (
                    last is not None and now - last < self.settings.requery_s * 1e6
                ):
                    continue
                tracks[uid] = routed.track
        if published:
            self.node.publish(published)
        if tracks:
            if self._batches >= MAX_ASKING:
                self.skip("queue-full", len(tracks))
                return
            for uid in tracks:
                self._remember(self.asked, uid, now)
            self.asking.update(tracks)
            self.node.spawn(self._ask(list(tracks.values())))

    def _remember(self, table: OrderedDict[str, Any], key: str, value: Any) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > self.settings.max_tracks:
            old, gone = table.popitem(last=False)
            if table is self.fed:
                # Forgotten means no longer watched for staleness: no longer answered for.
                self._withdraw(old, gone)

    def _withdraw(self, asset_id: str, fed: tuple[int, Any] | None = None) -> None:
        fed = fed or self.fed.pop(asset_id, None)
        if fed is None:
            return
        current = self.node.registry.get(asset_id)
        # Only what CoT put there: an asset published since through the API stays.
        if current is not None and current.record == fed[1]:
            del self.node.registry.assets[asset_id]
            self.routed.labels(route="own-withdrawn").inc()

    async def _ask(self, tracks: list[TrackReport]) -> None:
        self._batches += 1
        try:
            for start in range(0, len(tracks), BATCH_TRACKS):
                chunk = tracks[start : start + BATCH_TRACKS]
                async for index, outcome in self.node.clarify_many(chunk):
                    track = chunk[index]
                    self.asking.discard(track.track_id)
                    if outcome.outcome == "not_sent":
                        self.asked.pop(track.track_id, None)  # asked again at its next update
                    self._write_outcome(track.track_id, outcome)
        finally:
            self._batches -= 1
            self.asking.difference_update(t.track_id for t in tracks)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            now = wall_us()
            for asset_id in [a for a, (stale, _) in self.fed.items() if stale <= now]:
                self._withdraw(asset_id)
            for action, (_target, until) in list(self.holds.items()):
                if until <= now:
                    self._release(action, "deadline")

    # -- out ------------------------------------------------------------------------------

    def _subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=10_000)
        self.node.subscribers.add(queue)
        return queue

    async def _follow_events(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        """The node's events, as an event-stream reader gets them; re-subscribed if the node
        drops this reader for falling behind (what was missed is not written out)."""
        while True:
            try:
                while queue in self.node.subscribers or not queue.empty():
                    try:
                        # Not wait_for: on 3.11 it can swallow a cancellation that comes
                        # as the queue yields, and the node's shutdown would wait on this.
                        async with asyncio.timeout(1):
                            event = await queue.get()
                    except TimeoutError:
                        continue
                    try:
                        self.on_event(event)
                    except Exception:
                        log.exception("CoT: writing event %s failed", event.get("kind"))
            finally:
                self.node.subscribers.discard(queue)
            log.warning("CoT: fell behind the node's events; some were not written out")
            queue = self._subscribe()

    def on_event(self, event: Mapping[str, Any]) -> None:
        kind = event.get("kind")
        if kind == "link":
            self._write_link(str(event["state"]))
        elif kind == "query":
            track = str(event["track"])
            self._write_track(track, {"state": "open", "query_seq": event.get("query_seq")})
        elif kind == "clarification":
            track = str(event["track"])
            if track not in self.asking:
                elapsed = event.get("elapsed_us")
                attrs: dict[str, object] = {
                    "state": event.get("outcome"),
                    "query_seq": event.get("query_seq"),
                    "elapsed_ms": None if elapsed is None else round(elapsed / 1000, 1),
                    "reason": event.get("reason") or None,
                }
                said = event.get("answer")
                if said:
                    attrs.update(
                        claim=said.get("claim"),
                        side=self.node.peer_side,
                        mission=said.get("mission"),
                        intent=said.get("intent"),
                        armed=said.get("armed"),
                        asset=said.get("asset_id"),
                    )
                self._write_track(track, attrs)
            for action, (target, _) in list(self.holds.items()):
                if target == track:
                    self._release(action, f"clarification {event.get('outcome')}")
        elif kind == "decision":
            action = str(event["action"])
            if event.get("verdict") == "hold" and event.get("until_us"):
                target = event.get("target")
                self.holds[action] = (target, int(event["until_us"]))
                self._write_hold(action, target, "held", str(event.get("reason", "")))
            elif action in self.holds:
                self._release(action, f"decided: {event.get('verdict')}")

    def _write_outcome(self, track: str, outcome: Outcome) -> None:
        answer = outcome.answer
        attrs: dict[str, object] = {
            "state": outcome.outcome,
            "query_seq": outcome.query_seq,
            "elapsed_ms": None
            if outcome.elapsed_us is None
            else round(outcome.elapsed_us / 1e3, 1),
            "reason": outcome.reason or None,
        }
        if answer is not None:
            attrs.update(
                claim=answer.claim.value,
                side=self.node.peer_side,
                mission=answer.mission.value if answer.mission else None,
                intent=answer.intent.value if answer.intent else None,
                armed=answer.armed,
                asset=answer.asset_id,
            )
        self._write_track(track, attrs)

    def _write_track(self, track: str, attrs: dict[str, object]) -> None:
        seen = self.tracks.get(track)
        point = cot.point_of(seen) if seen is not None else cot.NO_POINT
        type_ = seen.type if seen is not None else TRACK_TYPE_UNKNOWN
        label = [track]
        if attrs.get("claim"):
            said = [
                attrs.get("side"),
                attrs.get("claim"),
                attrs.get("mission"),
                attrs.get("intent"),
            ]
            label.append(", ".join(str(s) for s in said if s))
        else:
            label.append(str(attrs.get("state")))
        if attrs.get("elapsed_ms") is not None:
            label.append(f"({attrs['elapsed_ms']} ms)")
        detail: list[tuple[str, Mapping[str, object]]] = [
            ("clearline", {"asker": self.node.side, "track": track, **attrs}),
            ("contact", {"callsign": " ".join(label)[:120]}),
        ]
        if seen is not None:
            detail.append(("link", {"uid": track, "type": type_, "relation": "p-p"}))
        self._write(TRACK_UID.format(track=track), type_, point, detail, str(attrs["state"]))

    def _write_link(self, state: str) -> None:
        node = self.node
        detail = [
            ("clearline", {"link": state, "side": node.side, "peer": node.peer_side}),
            ("contact", {"callsign": f"hotline {node.side}-{node.peer_side} {state}"}),
        ]
        self._write(LINK_UID.format(side=node.side), LINK_TYPE, cot.NO_POINT, detail, state)

    def _write_hold(self, action: str, target: Any, state: str, reason: str) -> None:
        seen = self.tracks.get(str(target)) if target else None
        point = cot.point_of(seen) if seen is not None else cot.NO_POINT
        until = self.holds.get(action, (None, None))[1]
        detail = [
            (
                "clearline",
                {
                    "hold": state,
                    "action": action,
                    "target": target,
                    "until_us": until,
                    "reason": reason[:200],
                },
            ),
            ("contact", {"callsign": f"{action} {state}" + (f" ({target})" if target else "")}),
        ]
        uid = HOLD_UID.format(side=self.node.side, action=action)
        self._write(uid, HOLD_TYPE, point, detail, state)

    def _release(self, action: str, why: str) -> None:
        held = self.holds.pop(action, None)
        if held is not None:
            self._write_hold(action, held[0], "released", why)

    def _write(
        self,
        uid: str,
        type_: str,
        point: tuple[float, float, float, float, float],
        detail: Iterable[tuple[str, Mapping[str, object]]],
        state: str,
    ) -> None:
        now = wall_us()
        data = cot.to_xml(
            uid, type_, now, now + self.settings.out_stale_s * 1_000_000, point, detail
        )
        self._remember(self.latest, uid, data)
        self.written.labels(state=state).inc()
        for writer in list(self.readers):
            self._send(writer, data)

    def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        transport = writer.transport
        if transport.is_closing():
            self.readers.discard(writer)
        elif transport.get_write_buffer_size() > self.settings.out_buffer_bytes:
            self.readers.discard(writer)
            transport.abort()  # too far behind to catch up: it reconnects and gets `latest`
            self.refuse(self._reader_of.get(writer, "out"), "behind")
        else:
            writer.write(data)

    async def _keep(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        name: str,
        first: bytes = b"",
        take_in: bool = False,
    ) -> None:
        """Write to a reader (on the port or at the address `name`) until it goes:
        `first`, what is on the map now, then each change. What it sends is taken in as
        CoT with `take_in`, else read and dropped (a map's pings, its own position)."""
        try:
            if first:
                writer.write(first)
                await writer.drain()
                await asyncio.sleep(PRESENCE_PAUSE_S)
            self.readers.add(writer)
            self._reader_of[writer] = name
            for data in list(self.latest.values()):
                self._send(writer, data)
            if take_in:
                closed = await self._read_cot(reader)
                if closed is not None:
                    self.refuse(name, closed)
            else:
                while await reader.read(READ_BYTES):
                    pass
        except (ConnectionError, OSError):
            pass
        finally:
            self.readers.discard(writer)
            self._reader_of.pop(writer, None)
            writer.transport.abort()

    def _presence(self) -> bytes:
        node = self.node
        now = wall_us()
        detail = [
            ("clearline", {"node": node.side, "peer": node.peer_side}),
            ("contact", {"callsign": f"clearline {node.side}"}),
        ]
        uid = NODE_UID.format(side=node.side)
        stale = now + self.settings.out_stale_s * 1_000_000
        return cot.to_xml(uid, NODE_TYPE, now, stale, cot.NO_POINT, detail)

    def _tls_client_context(self) -> ssl.SSLContext | None:
        """The client side of a `tls://` `cot_url`: the node's certificate, and the TAK
        server's checked against `cot_url_cafile`."""
        settings, config = self.settings, self.node.config
        if settings.cot_url_cert is None or settings.cot_url_key is None:
            return None
        try:
            context = ssl.create_default_context(cafile=config.path(settings.cot_url_cafile or ""))
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise setting_error(
                config,
                ("tak", "cot_url_cafile"),
                f"cannot read {settings.cot_url_cafile} as PEM certificates: {exc}",
            ) from None
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.check_hostname = settings.cot_url_check_hostname
        try:
            context.load_cert_chain(
                config.path(settings.cot_url_cert), config.path(settings.cot_url_key)
            )
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise setting_error(
                config,
                ("tak", "cot_url_cert"),
                f"cannot use {settings.cot_url_cert} with {settings.cot_url_key} as the "
                f"node's TAK client certificate and key: {exc}",
            ) from None
        return context

    async def _dial_forever(self, url: str, tls: ssl.SSLContext | None = None) -> None:
        _, host, port = split_url(url)
        wait = REDIAL_S[0]
        while True:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(
                        host,
                        port,
                        ssl=tls,
                        server_hostname=host if tls is not None else None,
                        ssl_handshake_timeout=TLS_HANDSHAKE_S if tls is not None else None,
                    ),
                    10,
                )
            except (OSError, TimeoutError) as exc:
                # ssl.SSLError is an OSError: a refused certificate is retried like any dial.
                log.warning("CoT: cannot reach the TAK server at %s: %s", url, exc)
            else:
                wait = REDIAL_S[0]
                started = time.monotonic()
                log.info("CoT: connected to the TAK server at %s", url)
                await self._keep(reader, writer, url, self._presence(), self.settings.cot_url_in)
                log.warning("CoT: the TAK server at %s closed the connection", url)
                if time.monotonic() - started > REDIAL_S[1]:
                    continue
            await asyncio.sleep(wait)
            wait = min(REDIAL_S[1], wait * 2)


class _Datagrams(asyncio.DatagramProtocol):
    """A UDP port: each datagram one event (XML or TAK Protocol mesh), one rate for all."""

    def __init__(self, service: CotService) -> None:
        self.service = service
        self.bucket = service._rate()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.bucket.take(1):
            self.service.skip("rate-limited")
            return
        self.service.take(data)


async def _hold_open(transport: asyncio.BaseTransport) -> None:
    try:
        await asyncio.Event().wait()
    finally:
        transport.close()


async def start_cot(node: Node) -> CotService | None:
    """The node's CoT listeners and output, if its configuration has a `[tak]` section."""
    settings = node.config.tak
    if settings is None:
        return None
    service = CotService(node, settings)
    await service.start()
    return service
