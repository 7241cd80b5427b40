"""One side's hotline endpoint: the Session, the gate's holds, the registry's answers, the log.

The Session speaks the protocol; the endpoint is what every user of the protocol
needs around it, written once: asking about a track (with retries, and again when
the link comes back), holding the gate per query while one is open, answering the
peer's queries from one's own registry under the disclosure policy, re-sending the
Hello until the peer shows it has one, and listing every signed message to log.

It is driven like the Session (sans-I/O, as aioquic's connection is): bytes and
`now` in; bytes, events, log entries and the next deadline out. The node's link,
the simulator's episode, the demo's scene and the deterministic simulation test are
thin adapters around it, so the simulator runs the node's own glue.

Asks and queries. An *ask* is the caller's wish to clear up one track; a *query* is
one signed Query message on the wire. An ask sends a query as soon as the link is
up; if the query expires, a retry is a new query; if the link goes down, a
*persistent* ask waits and asks again when the link is back, a one-shot ask ends.
Each open query holds the gate against its track until its answer or deadline.

Swarms. Asks made together (`ask_many`), or waiting together for the link, go out as
few Queries as the peer's `ready` allows (up to 256 tracks each); the peer's Answers
clears them track by track, and each track's hold is released by its own answer.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice, repeat
from typing import Protocol

from clearline.doctrine.registry import (
    Disclosure,
    OwnAsset,
    PlaceGrid,
    disclose,
    place_of,
    truthful_answer,
)
from clearline.errors import LocalProtocolError
from clearline.gate import Gate
from clearline.protocol import codec
from clearline.protocol.events import (
    ClarificationAnswered,
    ClarificationExpired,
    Closed,
    CloseReason,
    Event,
    HandshakeComplete,
    LinkState,
    LinkStateChanged,
    MessageReceived,
    MessageSent,
)
from clearline.protocol.messages import (
    Answer,
    Answers,
    Body,
    Hello,
    Message,
    Micros,
    Query,
    TrackReport,
)
from clearline.protocol.session import Session, SessionConfig
from clearline.protocol.signing import Signer, Verifier

HELLO_RETRY_FIRST_US = 250_000
"""First Hello re-send, if the peer has shown nothing in-session by then; then doubling."""


Matcher = Callable[[TrackReport], OwnAsset | None]
"""The own asset an observed track may be, if any (`doctrine.registry.Nearest`)."""


class Registry(Protocol):
    """One's own assets as they are now: what answers to the peer's queries come from."""

    def matcher(self, now: Micros, tolerance_m: float) -> Matcher:
        """Matches tracks against one's own assets where they are at `now`: the nearest
        within `tolerance_m`, as `doctrine.registry.match` chooses."""
        ...


DEFAULT_MAX_ASSETS = 20_000
"""Own assets a registry holds: the most recently published."""


@dataclass
class AssetRegistry:
    """Own assets as the side's systems last published them (the node's registry): the
    `max_assets` most recently published, so that a feed of ever-new ids cannot grow it
    without end (`evicted` counts the rest).

    Answers come from a grid of the assets' places (`PlaceGrid`), brought up to date when
    the peer asks with what was published since it last asked. `assets` is kept in the
    order last published, so what was published since is its tail: a feed pays a few
    dictionary operations a record (done in C, a read at a time), and a question the
    assets whose values changed since the last one and the cells around each track,
    however many assets there are."""

    assets: dict[str, OwnAsset | bytes] = field(default_factory=dict)
    """By id, in the order last published: the asset, or what `build` makes it from (a
    feed's record, not built until something needs it: most of a fast feed's records are
    replaced before they are)."""
    max_assets: int = DEFAULT_MAX_ASSETS
    build: Callable[[str, bytes], OwnAsset] | None = None
    """Makes an asset of an id and what `publish_unbuilt` was given for it."""
    evicted: int = 0
    _grid: PlaceGrid[str, OwnAsset] = field(default_factory=PlaceGrid)
    _published: int = 0
    """Records published since the grid was last brought up to date: the ids published
    since are among that many at the end of `assets`."""

    def get(self, key: str) -> OwnAsset | None:
        """The asset published last as `key`, built if it was not (and kept built)."""
        held = self.assets.get(key)
        if held is None or isinstance(held, OwnAsset):
            return held
        assert self.build is not None, "publish_unbuilt needs a registry with `build`"
        asset = self.build(key, held)
        self.assets[key] = asset  # in place: its place in the order is unchanged
        return asset

    def matcher(self, now: Micros, tolerance_m: float) -> Matcher:
        assets, grid = self.assets, self._grid
        recent = min(self._published, len(assets))
        self._published = 0
        tail = list(islice(reversed(assets), recent))
        for key in reversed(tail):
            if grid.item(key) is not assets[key]:
                asset = self.get(key)
                assert asset is not None
                grid.put(key, *place_of(asset.record), asset)
        if len(grid) > len(assets):  # some were removed from `assets` directly
            for key in [k for k in grid if k not in assets]:
                grid.remove(key)

        def current(asset: OwnAsset) -> bool:
            return assets.get(asset.record.asset_id) is asset

        return grid.matcher(tolerance_m, current)

    def publish(self, asset: OwnAsset) -> None:
        self.publish_many((asset,))

    def publish_many(self, assets: Iterable[OwnAsset]) -> None:
        batch = assets if isinstance(assets, list | tuple) else list(assets)
        keys = [asset.record.asset_id for asset in batch]
        # An asset published again as the very object the grid holds is news all the same
        # (it is the most recently published among equals): the grid lets go of it, and
        # the next question puts it back in its new place.
        grid = self._grid
        if len(grid):
            grid.remove_many([k for k, a in zip(keys, batch, strict=True) if grid.item(k) is a])
        self._publish(keys, batch)

    def publish_unbuilt(self, keys: Sequence[str], made_of: Sequence[bytes]) -> None:
        """Assets by id, each as what `build` makes it from."""
        self._publish(keys, made_of)

    def _publish(self, keys: Sequence[str], values: Sequence[OwnAsset | bytes]) -> None:
        if len(keys) != len(values):
            raise ValueError(f"{len(keys)} ids and {len(values)} assets: one asset an id")
        registry = self.assets
        # Each id to the end, in the order published (the last of an id published twice
        # in one call wins, at the place of its last), all in C rather than a record at a
        # time from Python.
        _consume(map(registry.pop, keys, repeat(None)))
        if len(set(keys)) == len(keys):
            registry.update(zip(keys, values, strict=True))
        else:
            for key, value in zip(keys, values, strict=True):
                registry.pop(key, None)
                registry[key] = value
        self._published += len(keys)
        excess = len(registry) - self.max_assets
        if excess > 0:
            gone = list(islice(registry, excess))
            _consume(map(registry.pop, gone))
            self._grid.remove_many(gone)
            self.evicted += excess


_consume = deque[object](maxlen=0).extend
"""Runs an iterator to its end, keeping nothing."""


CoverStory = Callable[[int, OwnAsset | None, Answer], Answer]
"""(query seq, the asset the truth names, the truthful answer) -> the answer sent. The
simulator's dishonest counterpart uses it; a node answers truthfully."""


@dataclass(frozen=True, slots=True)
class QuerySent:
    ask: int
    track_id: str
    query_seq: int
    deadline: Micros
    retry: int
    """0 for the first query of an ask, then 1, 2, ..."""


@dataclass(frozen=True, slots=True)
class Cleared:
    """The peer answered a query about the track: its signed claim, verified."""

    ask: int
    track_id: str
    query_seq: int
    answer: Answer
    elapsed_us: Micros
    cose: bytes
    """The answer's exact signed bytes (also among the log entries)."""


@dataclass(frozen=True, slots=True)
class Unresolved:
    """An ask ended without an answer: its queries (and retries) expired, or the link is
    down and the ask was one-shot."""

    ask: int
    track_id: str
    query_seq: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class Waiting:
    """A persistent ask's query ended with its link; the ask is asked again when the link is
    back up."""

    ask: int
    track_id: str
    query_seq: int


@dataclass(frozen=True, slots=True)
class Answered:
    """We answered a peer's query (one event per track it named)."""

    query_seq: int
    answer: Answer
    matched: OwnAsset | None
    item: int = 0


EndpointEvent = QuerySent | Cleared | Unresolved | Waiting | Answered


@dataclass(frozen=True, slots=True)
class LogEntry:
    """A signed message to keep, in the order it was sent or received."""

    cose: bytes
    message: Message
    sent: bool


@dataclass
class _Ask:
    ask: int
    track: TrackReport
    ttl_us: Micros
    retries_left: int
    persistent: bool
    asked_at: Micros
    query_seq: int | None = None
    retry: int = 0


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    session: SessionConfig
    query_ttl_us: Micros = 2_000_000
    disclosure: Disclosure = field(default_factory=Disclosure)
    hello_retry_us: Micros | None = HELLO_RETRY_FIRST_US
    """None: never re-send the Hello (a transport that cannot lose one)."""
    max_asks: int = 100_000


class Endpoint:
    """One side's end of the hotline, around one Session at a time."""

    def __init__(
        self,
        config: EndpointConfig,
        signer: Signer,
        peer_key: Verifier,
        registry: Registry,
        gate: Gate | None = None,
        cover: CoverStory | None = None,
    ) -> None:
        self.config = config
        self._signer = signer
        self._peer_key = peer_key
        self.registry = registry
        self.gate = gate
        self._cover = cover
        self.session: Session | None = None
        self._asks: dict[int, _Ask] = {}
        self._by_query: dict[int, list[int]] = {}  # query seq -> ask ids, by item
        self._next_ask = 0
        self._events: deque[Event | EndpointEvent] = deque()
        self._log: list[LogEntry] = []
        self._out = bytearray()
        self._hello_frame: bytes | None = None
        self._hello_retry_at: Micros | None = None
        self._hello_backoff: Micros = 0
        self._peer_confirmed = False
        self._generation = 0
        """Counts sessions, so a hold names the session its query belongs to."""

    # -- the link ---------------------------------------------------------------

    @property
    def link_state(self) -> LinkState:
        return self.session.link_state if self.session is not None else LinkState.DOWN

    @property
    def up(self) -> bool:
        s = self.session
        return s is not None and s.established

    def connect(self, now: Micros, nonce: bytes) -> Session:
        """A new connection: a fresh Session, our Hello queued (and re-sent until answered)."""
        if self.session is not None and not self.session.closed:
            raise LocalProtocolError("the endpoint already has an open session")
        self.session = Session(self.config.session, self._signer, self._peer_key)
        self._generation += 1
        self._hello_frame = None
        self._peer_confirmed = False
        self._hello_backoff = self.config.hello_retry_us or 0
        self._hello_retry_at = (
            now + self._hello_backoff if self.config.hello_retry_us is not None else None
        )
        self.session.start(now, nonce)
        self._drain(now)
        return self.session

    def close(self, now: Micros, detail: str = "connection ended") -> None:
        """The connection is gone (or we end it): open queries expire, one-shot asks end."""
        session = self.session
        if session is not None and not session.closed:
            session.close(now, CloseReason.LOCAL, detail)
            self._drain(now)

    def receive_data(self, data: bytes, now: Micros) -> None:
        if self.session is None:
            return
        self.session.receive_data(data, now)
        self._drain(now)

    def handle_timer(self, now: Micros) -> None:
        session = self.session
        if session is None:
            return
        if (
            self._hello_retry_at is not None
            and now >= self._hello_retry_at
            and self._hello_frame is not None
            and not session.closed
        ):
            if self._peer_confirmed:
                self._hello_retry_at = None
            else:
                self._out += self._hello_frame
                cap = self.config.session.heartbeat_interval_us
                self._hello_backoff = min(self._hello_backoff * 2, cap)
                self._hello_retry_at = now + self._hello_backoff
        if not session.closed:
            session.handle_timer(now)
        self._drain(now)

    def next_deadline(self) -> Micros | None:
        deadlines = []
        if self.session is not None and not self.session.closed:
            session_deadline = self.session.next_deadline()
            if session_deadline is not None:
                deadlines.append(session_deadline)
            if self._hello_retry_at is not None and not self._peer_confirmed:
                deadlines.append(self._hello_retry_at)
        return min(deadlines) if deadlines else None

    def data_to_send(self) -> bytes:
        if self.session is not None:
            self._out += self.session.data_to_send()
        data = bytes(self._out)
        self._out.clear()
        return data

    def next_event(self) -> Event | EndpointEvent | None:
        return self._events.popleft() if self._events else None

    def log_entries(self) -> list[LogEntry]:
        """Every signed message sent or received since the last call, in order."""
        entries, self._log = self._log, []
        return entries

    # -- what the side asks for ---------------------------------------------------

    def ask(
        self,
        track: TrackReport,
        now: Micros,
        ttl_us: Micros | None = None,
        retries: int = 0,
        persistent: bool = False,
    ) -> int | None:
        """Ask the peer about `track`; returns the ask's id (None: refused, see the event).

        A one-shot ask needs the link up now; a persistent one waits for it."""
        return self.ask_many([track], now, ttl_us, retries, persistent)[0]

    def ask_many(
        self,
        tracks: Sequence[TrackReport],
        now: Micros,
        ttl_us: Micros | None = None,
        retries: int = 0,
        persistent: bool = False,
    ) -> list[int | None]:
        """`ask` for each track, sent as few Queries as the peer takes: the ask ids, in
        order (None where the endpoint already holds `max_asks`)."""
        ids: list[int | None] = []
        fresh: list[_Ask] = []
        for track in tracks:
            if len(self._asks) >= self.config.max_asks:
                ids.append(None)
                continue
            ask = _Ask(
                self._next_ask,
                track,
                ttl_us if ttl_us is not None else self.config.query_ttl_us,
                retries,
                persistent,
                now,
            )
            self._next_ask += 1
            ids.append(ask.ask)
            if not self.up and not persistent:
                self._events.append(
                    Unresolved(ask.ask, track.track_id, None, "the hotline is not up")
                )
                continue
            self._asks[ask.ask] = ask
            fresh.append(ask)
        if self.up and fresh:
            self._query(fresh, now)
            self._drain(now)
        return ids

    def send(self, body: Body, now: Micros) -> MessageSent | None:
        """Sign and queue one message (telemetry, notice, hold, checkpoint); None if the link
        is not up."""
        if not self.up:
            return None
        assert self.session is not None
        sent = self.session.send(body, now)
        self._drain(now)
        return sent

    @property
    def busy(self) -> bool:
        """Whether the link could still change something here: asks outstanding or the
        handshake unfinished, on a session still open."""
        session = self.session
        if session is None or session.closed:
            return False
        return bool(self._asks) or not session.established or not self._peer_confirmed

    @property
    def open_asks(self) -> int:
        return len(self._asks)

    def open_queries(self) -> list[tuple[int, str, Micros]]:
        """(query seq, track id, deadline) of each query on the wire."""
        if self.session is None:
            return []
        out = []
        for seq, deadline in sorted(self.session.open_queries.items()):
            for ask_id in self._by_query.get(seq, ()):
                ask = self._asks.get(ask_id)
                out.append((seq, ask.track.track_id if ask else "?", deadline))
        return out

    # -- inside -------------------------------------------------------------------

    def _query(self, asks: Sequence[_Ask], now: Micros) -> None:
        """Send Queries for `asks`: grouped by time to live (one deadline per Query), at
        most the peer's batch per Query, a track never twice in one."""
        assert self.session is not None
        groups: dict[Micros, list[_Ask]] = {}
        for ask in asks:
            groups.setdefault(ask.ttl_us, []).append(ask)
        limit = self.session.peer_batch
        for ttl_us, group in groups.items():
            chunk: list[_Ask] = []
            named: set[str] = set()
            for ask in group:
                if len(chunk) == limit or ask.track.track_id in named:
                    self._send_query(chunk, now + ttl_us, now)
                    chunk, named = [], set()
                chunk.append(ask)
                named.add(ask.track.track_id)
            if chunk:
                self._send_query(chunk, now + ttl_us, now)

    def _send_query(self, chunk: list[_Ask], deadline: Micros, now: Micros) -> None:
        assert self.session is not None
        tracks = [a.track for a in chunk]
        query = Query(tracks[0], deadline, tuple(tracks[1:]) or None)
        seq = self.session.send(query, now).message.seq
        self._by_query[seq] = [a.ask for a in chunk]
        for ask in chunk:
            ask.query_seq = seq
            if self.gate is not None:
                self.gate.open_clarification(
                    ask.track.track_id, deadline, key=(self._generation, seq)
                )
            self._events.append(QuerySent(ask.ask, ask.track.track_id, seq, deadline, ask.retry))

    def _release(self, seq: int, item: int | None = None) -> list[_Ask]:
        """End the holds of query `seq` (of its track `item` only, if given): the asks."""
        ask_ids = self._by_query.get(seq)
        if ask_ids is None:
            return []
        if item is None:
            del self._by_query[seq]
            chosen = ask_ids
        elif 0 <= item < len(ask_ids):
            chosen = [ask_ids[item]]
            if item == len(ask_ids) - 1:
                del self._by_query[seq]  # the last item of an answer ends the query
        else:
            return []
        released = [self._asks[a] for a in chosen if a in self._asks]
        if self.gate is not None:
            for ask in released:
                self.gate.close_clarification(ask.track.track_id, key=(self._generation, seq))
        return released

    def _answer(self, seq: int, query: Query, now: Micros) -> None:
        nearest = self.registry.matcher(now, self.config.disclosure.match_tolerance_m)
        answers: list[Answer] = []
        for item, track in enumerate(query.tracks):
            found = nearest(track)
            answer = truthful_answer(seq, found)
            if self._cover is not None:
                answer = self._cover(seq, found, answer)
            answer = disclose(answer, self.config.disclosure)
            answers.append(answer)
            self._events.append(Answered(seq, answer, found, item))
        assert self.session is not None
        self.session.send(answers[0] if len(answers) == 1 else Answers(seq, tuple(answers)), now)

    def _drain(self, now: Micros) -> None:
        session = self.session
        if session is None:
            return
        answers: dict[int, bytes] = {}  # query seq -> the answer's signed bytes
        while (event := session.next_event()) is not None:
            if isinstance(event, MessageSent):
                self._log.append(LogEntry(event.cose, event.message, True))
                if isinstance(event.message.body, Hello):
                    self._hello_frame = codec.frame(event.cose)
                self._events.append(event)
            elif isinstance(event, MessageReceived):
                self._log.append(LogEntry(event.cose, event.message, False))
                if not isinstance(event.message.body, Hello):
                    self._peer_confirmed = True
                self._events.append(event)
                body = event.message.body
                if isinstance(body, Answer | Answers):
                    answers[body.query_seq] = event.cose
                elif isinstance(body, Query) and not session.closed:
                    self._answer(event.message.seq, body, now)
            elif isinstance(event, ClarificationAnswered):
                for ask in self._release(event.query_seq, event.item):
                    del self._asks[ask.ask]
                    cose = answers.get(event.query_seq, b"")
                    self._events.append(
                        Cleared(
                            ask.ask,
                            ask.track.track_id,
                            event.query_seq,
                            event.answer,
                            event.elapsed_us,
                            cose,
                        )
                    )
            elif isinstance(event, ClarificationExpired):
                self._expired(event.query_seq, now, closing=session.closed)
            elif isinstance(event, LinkStateChanged):
                if self.gate is not None:
                    self.gate.set_link(event.current)
                self._events.append(event)
                if event.current is LinkState.UP and event.previous is not LinkState.UP:
                    self._resume(now)
            elif isinstance(event, Closed):
                self._hello_retry_at = None
                self._events.append(event)
                self._drop_one_shot()
            else:
                if isinstance(event, HandshakeComplete):
                    self._resume(now)
                self._events.append(event)

    def _expired(self, seq: int, now: Micros, closing: bool) -> None:
        again: list[_Ask] = []
        for ask in self._release(seq):
            ask.query_seq = None
            if closing:
                if ask.persistent:
                    self._events.append(Waiting(ask.ask, ask.track.track_id, seq))
                else:
                    del self._asks[ask.ask]
                    self._events.append(Unresolved(ask.ask, ask.track.track_id, seq, "link lost"))
            elif ask.retries_left > 0 and self.up:
                ask.retries_left -= 1
                ask.retry += 1
                again.append(ask)
            else:
                del self._asks[ask.ask]
                self._events.append(Unresolved(ask.ask, ask.track.track_id, seq, "expired"))
        if again:
            self._query(again, now)

    def _resume(self, now: Micros) -> None:
        """The link is (back) up: every ask still unresolved and not on the wire is sent."""
        if not self.up:
            return
        waiting = [ask for ask in self._asks.values() if ask.query_seq is None]
        if waiting:
            self._query(waiting, now)

    def _drop_one_shot(self) -> None:
        for ask in list(self._asks.values()):
            if not ask.persistent:
                del self._asks[ask.ask]
                self._events.append(
                    Unresolved(ask.ask, ask.track.track_id, ask.query_seq, "link lost")
                )
            else:
                ask.query_seq = None
        self._by_query.clear()
