"""Typed hotline messages: an envelope (`Message`) around one body per kind.

Times are integer microseconds since the Unix epoch (`Micros`); positions are
integer micro-degrees and metres. Nothing on the wire is a float, so every
implementation encodes the same value to the same bytes.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Final

from clearline.errors import MessageError
from clearline.protocol.constants import (
    HASH_SIZE,
    KID_SIZE,
    MAX_APPROVAL_SIZE,
    MAX_APPROVALS,
    MAX_ASSETS_PER_BULK,
    MAX_ASSETS_PER_TELEMETRY,
    MAX_COSIGNATURE_SIZE,
    MAX_COSIGNATURES,
    MAX_ID_LENGTH,
    MAX_PROOF_NODES,
    MAX_TEXT_LENGTH,
    MAX_TRACKS_PER_QUERY,
    NONCE_SIZE,
    PROTOCOL_VERSION,
    SESSION_ID_SIZE,
    SIGNATURE_SIZE,
)

if TYPE_CHECKING:
    from numpy.typing import NDArray

from clearline.protocol.fields import (
    BoolCodec,
    BytesCodec,
    EnumCodec,
    Field,
    IntCodec,
    ListCodec,
    StructCodec,
    Structure,
    TextCodec,
    require,
)

Micros = int
"""Microseconds since the Unix epoch (or, in the simulator, since the run began)."""

SIDE_PATTERN = r"[A-Z][A-Z0-9_-]{0,15}"

MICROS = IntCodec(0, (1 << 63) - 1)
UINT = IntCodec()
SIDE = TextCodec(16, SIDE_PATTERN)
IDENT = TextCodec(MAX_ID_LENGTH, r"[A-Za-z0-9._:/-]+")
TEXT = TextCodec(MAX_TEXT_LENGTH)
HASH = BytesCodec(size=HASH_SIZE)
PROOF = ListCodec(HASH, MAX_PROOF_NODES)


class MessageType(StrEnum):
    HELLO = "hello"
    HEARTBEAT = "heartbeat"
    READY = "ready"
    """The liveness proof: the first message each side signs in a new session."""
    TELEMETRY = "telemetry"
    BULK = "bulk"
    """Telemetry's records column by column: what a node sends."""
    QUERY = "query"
    ANSWER = "answer"
    ANSWERS = "answers"
    """The answers to a Query that named several tracks, one per track, in its order."""
    NOTICE = "notice"
    HOLD = "hold"
    RELEASE = "release"
    CHECKPOINT = "checkpoint"
    RECEIPT = "receipt"
    DECISION = "decision"
    """A local record of a gate decision: logged and signed, never sent to the peer."""
    APPROVAL = "approval"
    """An officer's signed approval of a human decision: carried inside a Decision, never sent."""


class AssetKind(StrEnum):
    RECON_SWARM = "recon_swarm"
    STRIKE_PACKAGE = "strike_package"
    INTERCEPTOR = "interceptor"
    UNCREWED_AIRCRAFT = "uncrewed_aircraft"
    CREWED_AIRCRAFT = "crewed_aircraft"
    SURFACE_VESSEL = "surface_vessel"
    SUBMARINE = "submarine"
    BALLISTIC_MISSILE = "ballistic_missile"
    CRUISE_MISSILE = "cruise_missile"
    SATELLITE = "satellite"
    CYBER_ACTOR = "cyber_actor"
    GROUND_UNIT = "ground_unit"
    UNKNOWN = "unknown"


class Mission(StrEnum):
    RECONNAISSANCE = "reconnaissance"
    STRIKE = "strike"
    DEFENCE = "defence"
    PATROL = "patrol"
    TRANSIT = "transit"
    EXERCISE = "exercise"
    TEST = "test"
    ELECTRONIC_WARFARE = "electronic_warfare"
    UNKNOWN = "unknown"


class AutonomyMode(StrEnum):
    HUMAN_IN_LOOP = "human_in_loop"
    HUMAN_ON_LOOP = "human_on_loop"
    AUTONOMOUS = "autonomous"


class Claim(StrEnum):
    OURS = "ours"
    NOT_OURS = "not_ours"
    DECLINE = "decline"


class Intent(StrEnum):
    WITHDRAWING = "withdrawing"
    HOLDING = "holding"
    TRANSITING = "transiting"
    RETURNING = "returning"
    CONTINUING = "continuing"


class NoticeKind(StrEnum):
    MALFUNCTION = "malfunction"
    EXERCISE = "exercise"
    TEST_LAUNCH = "test_launch"


class Actor(StrEnum):
    AUTONOMOUS = "autonomous"
    HUMAN = "human"


class ApprovalScope(StrEnum):
    ACTION = "action"
    """One act: exactly this action id, rung, domain and target."""
    STANDING = "standing"
    """A class of acts: any rung up to `rung`, in `domain`, toward `target` if one is named."""


class Verdict(StrEnum):
    ALLOW = "allow"
    HOLD = "hold"
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class Position:
    """A point: latitude and longitude in micro-degrees, altitude in metres."""

    lat_e6: int
    lon_e6: int
    alt_m: int = 0

    LAT: ClassVar = IntCodec(-90_000_000, 90_000_000)
    LON: ClassVar = IntCodec(-180_000_000, 180_000_000)
    ALT: ClassVar = IntCodec(-20_000, 100_000_000)


class PositionCodec:
    """A position travels as a three-element array ``[lat_e6, lon_e6, alt_m]``."""

    # Coordinates are checked with the position's path, and again with their own to name
    # a fault (as ListCodec does): no paths are written out for a valid position.

    def encode(self, value: Position, path: str) -> object:
        require(isinstance(value, Position), path, "expected a Position")
        try:
            return [
                Position.LAT.encode(value.lat_e6, path),
                Position.LON.encode(value.lon_e6, path),
                Position.ALT.encode(value.alt_m, path),
            ]
        except MessageError:
            return [
                Position.LAT.encode(value.lat_e6, f"{path}[0]"),
                Position.LON.encode(value.lon_e6, f"{path}[1]"),
                Position.ALT.encode(value.alt_m, f"{path}[2]"),
            ]

    def decode(self, obj: object, path: str) -> Position:
        require(type(obj) is list and len(obj) == 3, path, "expected [lat_e6, lon_e6, alt_m]")
        assert isinstance(obj, list)
        try:
            return Position(
                Position.LAT.decode(obj[0], path),
                Position.LON.decode(obj[1], path),
                Position.ALT.decode(obj[2], path),
            )
        except MessageError:
            return Position(
                Position.LAT.decode(obj[0], f"{path}[0]"),
                Position.LON.decode(obj[1], f"{path}[1]"),
                Position.ALT.decode(obj[2], f"{path}[2]"),
            )

    def describe(self) -> str:
        return "[lat_e6, lon_e6, alt_m]"


POSITION = PositionCodec()


@dataclass(frozen=True, slots=True)
class Area(Structure):
    center: Position
    radius_m: int

    FIELDS: ClassVar = (
        Field("center", "c", POSITION),
        Field("radius_m", "r", IntCodec(1, 40_000_000)),
    )


AREA = StructCodec(Area)


@dataclass(frozen=True, slots=True)
class AssetRecord(Structure):
    """One of the sender's own assets, as it declares it."""

    asset_id: str
    kind: AssetKind
    mission: Mission
    armed: bool
    autonomy: AutonomyMode
    at: Micros
    position: Position | None = None
    area: Area | None = None

    FIELDS: ClassVar = (
        Field("asset_id", "id", IDENT),
        Field("kind", "kind", EnumCodec(AssetKind)),
        Field("mission", "mission", EnumCodec(Mission)),
        Field("armed", "armed", BoolCodec()),
        Field("autonomy", "autonomy", EnumCodec(AutonomyMode)),
        Field("at", "at", MICROS),
        Field("position", "pos", POSITION, optional=True),
        Field("area", "area", AREA, optional=True),
    )

    def check(self, path: str) -> None:
        require(
            (self.position is None) != (self.area is None),
            path,
            "exactly one of 'pos' and 'area' must be present",
        )


@dataclass(frozen=True, slots=True)
class TrackReport(Structure):
    """What the asker's sensors saw."""

    track_id: str
    position: Position
    observed_at: Micros
    looks_like: AssetKind
    count: int = 1
    heading_deg: int | None = None
    speed_mps: int | None = None

    FIELDS: ClassVar = (
        Field("track_id", "id", IDENT),
        Field("position", "pos", POSITION),
        Field("observed_at", "at", MICROS),
        Field("looks_like", "looks", EnumCodec(AssetKind)),
        Field("count", "count", IntCodec(1, 1_000_000)),
        Field("heading_deg", "hdg", IntCodec(0, 359), optional=True),
        Field("speed_mps", "spd", IntCodec(0, 100_000), optional=True),
    )


@dataclass(frozen=True, slots=True)
class Hello(Structure):
    nonce: bytes
    peer_side: str
    peer_kid: bytes
    policy_hash: bytes
    heartbeat_us: int
    roster_hash: bytes = bytes(HASH_SIZE)

    FIELDS: ClassVar = (
        Field("nonce", "nonce", BytesCodec(size=NONCE_SIZE)),
        Field("peer_side", "peer", SIDE),
        Field("peer_kid", "peer_kid", BytesCodec(size=KID_SIZE)),
        Field("policy_hash", "policy", HASH),
        Field("heartbeat_us", "hb", IntCodec(1_000, 3_600_000_000)),
        Field("roster_hash", "roster", HASH),
    )


@dataclass(frozen=True, slots=True)
class Heartbeat(Structure):
    """Keeps the link alive; echoes the peer's latest heartbeat so it can measure the round trip."""

    echo_seq: int | None = None
    echo_hold_us: int | None = None

    FIELDS: ClassVar = (
        Field("echo_seq", "echo", UINT, optional=True),
        Field("echo_hold_us", "held", MICROS, optional=True),
    )

    def check(self, path: str) -> None:
        require(
            (self.echo_seq is None) == (self.echo_hold_us is None),
            path,
            "'echo' and 'held' come together or not at all",
        )


@dataclass(frozen=True, slots=True)
class Telemetry(Structure):
    assets: tuple[AssetRecord, ...]

    FIELDS: ClassVar = (
        Field("assets", "assets", ListCodec(StructCodec(AssetRecord), MAX_ASSETS_PER_TELEMETRY, 1)),
    )


@dataclass(frozen=True, slots=True)
class BulkColumn:
    """One column of a Bulk body: its key, the width of each record's value (big-endian,
    two's complement where `low` is negative), and the values allowed."""

    key: str
    width: int
    low: int
    high: int

    @property
    def dtype(self) -> str:
        return f">{'i' if self.low < 0 else 'u'}{self.width}"

    def values(self, data: bytes) -> NDArray[Any]:
        """The column's values as an array (its length already a multiple of the width)."""
        import numpy  # here: the command line does not pay its import for every command

        return numpy.frombuffer(data, self.dtype)

    def pack(self, values: Sequence[int]) -> bytes:
        """Values (already in range) as the column's bytes."""
        import numpy

        return numpy.asarray(values, self.dtype).tobytes()


RECORD_KINDS: Final = tuple(AssetKind)
"""Enumerations travel in a Bulk (and a feed) as their index in the order listed here, the
order docs/protocol.md lists them in."""
RECORD_MISSIONS: Final = tuple(Mission)
RECORD_AUTONOMIES: Final = tuple(AutonomyMode)
RADIUS_MAX: Final = 40_000_000
BULK_COLUMNS: Final = (
    BulkColumn("at", 8, 0, (1 << 63) - 1),
    BulkColumn("lat", 4, Position.LAT.low, Position.LAT.high),
    BulkColumn("lon", 4, Position.LON.low, Position.LON.high),
    BulkColumn("alt", 4, Position.ALT.low, Position.ALT.high),
    BulkColumn("r", 4, 0, RADIUS_MAX),
    BulkColumn("kind", 1, 0, len(RECORD_KINDS) - 1),
    BulkColumn("mission", 1, 0, len(RECORD_MISSIONS) - 1),
    BulkColumn("autonomy", 1, 0, len(RECORD_AUTONOMIES) - 1),
    BulkColumn("armed", 1, 0, 1),
)
"""A Bulk body's columns in its dataclass's order (`r` is `radius`): 0 for a point."""
BULK_RECORD_SIZE: Final = sum(column.width for column in BULK_COLUMNS)
_HIGH_BIT_CLEAR: Final = bytes(range(0x80))
_BELOW: Final = {n: bytes(range(n)) for n in range(1, 17)}
"""The bytes a 1-byte column may hold, by how many values it has: deleting them leaves
nothing of a valid column."""


@functools.cache
def _four_byte_bounds() -> tuple[NDArray[Any], NDArray[Any]]:
    """The 4-byte columns' bounds, as a column of lows and one of highs (`r`, unsigned,
    is read as signed: a value past 2**31 reads negative, below its low of 0)."""
    import numpy

    fours = BULK_COLUMNS[1:5]
    assert all(column.width == 4 for column in fours)
    low = numpy.array([[column.low] for column in fours], dtype=numpy.int64)
    high = numpy.array([[column.high] for column in fours], dtype=numpy.int64)
    return low, high


class IdListCodec:
    """Asset ids, 1 to MAX_ASSETS_PER_BULK of them: checked together (joined and matched
    once), and one by one only to name the one at fault."""

    _ONE = rf"[A-Za-z0-9._:/-]{{1,{MAX_ID_LENGTH}}}"
    _JOINED = re.compile(rf"{_ONE}(?: {_ONE})*")

    def encode(self, value: Sequence[str], path: str) -> object:
        return list(self._checked(value, path))

    def decode(self, obj: object, path: str) -> tuple[str, ...]:
        require(type(obj) is list, path, f"expected {self.describe()}")
        assert isinstance(obj, list)
        return tuple(self._checked(obj, path))

    def _checked(self, items: Sequence[str], path: str) -> Sequence[str]:
        n = len(items) if isinstance(items, list | tuple) else -1
        require(
            1 <= n <= MAX_ASSETS_PER_BULK,
            path,
            f"expected {self.describe()}, got {n if n >= 0 else type(items).__name__}",
        )
        if set(map(type, items)) == {str}:
            joined = " ".join(items)
            if self._JOINED.fullmatch(joined) is not None and joined.count(" ") == n - 1:
                return items
        for i, item in enumerate(items):
            IDENT.decode(item, f"{path}[{i}]")
        raise AssertionError("unreachable: a list that fails as a whole fails in one item")

    def describe(self) -> str:
        return f"array of 1 to {MAX_ASSETS_PER_BULK} asset ids ({IDENT.describe()})"


@dataclass(frozen=True, slots=True)
class Bulk(Structure):
    """The same asset records as Telemetry, column by column: record i is the i-th id with
    the i-th value of every column. Each column is one byte string of fixed-width
    big-endian integers (`BULK_COLUMNS`), so that a receiver checks a column's range
    once rather than a record at a time, and no record is ever a map of its own."""

    ids: tuple[str, ...]
    at: bytes
    lat: bytes
    lon: bytes
    alt: bytes
    radius: bytes
    """Metres; 0: the record is at the point (lat, lon, alt); else in the area around it."""
    kind: bytes
    mission: bytes
    autonomy: bytes
    armed: bytes

    FIELDS: ClassVar = (
        Field("ids", "ids", IdListCodec()),
        *(
            Field(
                "radius" if column.key == "r" else column.key,
                column.key,
                BytesCodec(max_size=column.width * MAX_ASSETS_PER_BULK),
            )
            for column in BULK_COLUMNS
        ),
    )

    def columns(self) -> tuple[bytes, ...]:
        """The columns' bytes in `BULK_COLUMNS` order."""
        return (
            self.at,
            self.lat,
            self.lon,
            self.alt,
            self.radius,
            self.kind,
            self.mission,
            self.autonomy,
            self.armed,
        )

    def check(self, path: str) -> None:
        import numpy

        n = len(self.ids)
        columns = self.columns()
        for column, data in zip(BULK_COLUMNS, columns, strict=True):
            require(
                len(data) == column.width * n,
                f"{path}.{column.key}",
                f"expected {column.width * n} bytes ({column.width} a record, {n} records), "
                f"got {len(data)}",
            )
        # Each column's range at once, with as few calls as will do: a message's worth of
        # records costs about what one record's map would.
        at, *fours, kind, mission, autonomy, armed = columns
        valid = (
            not at[::8].translate(None, _HIGH_BIT_CLEAR)
            and not kind.translate(None, _BELOW[len(RECORD_KINDS)])
            and not mission.translate(None, _BELOW[len(RECORD_MISSIONS)])
            and not autonomy.translate(None, _BELOW[len(RECORD_AUTONOMIES)])
            and not armed.translate(None, _BELOW[2])
        )
        if valid:
            low, high = _four_byte_bounds()
            stacked = numpy.frombuffer(b"".join(fours), ">i4").reshape(4, n)
            valid = not ((stacked < low) | (stacked > high)).any()
        if not valid:
            self._name_fault(path, columns)

    def _name_fault(self, path: str, columns: Sequence[bytes]) -> None:
        """Raise for the first value out of range, by column, naming its record."""
        for column, data in zip(BULK_COLUMNS, columns, strict=True):
            values = column.values(data)
            if values.min() < column.low or values.max() > column.high:
                i, bad = next(
                    (i, v)
                    for i, v in enumerate(values.tolist())
                    if not column.low <= v <= column.high
                )
                raise MessageError(
                    f"expected integer in [{column.low}, {column.high}], got {bad}",
                    field=f"{path}.{column.key}[{i}]",
                )

    def __len__(self) -> int:
        return len(self.ids)

    def ats(self) -> NDArray[Any]:
        """Each record's `at`."""
        return BULK_COLUMNS[0].values(self.at)

    def records(self) -> tuple[AssetRecord, ...]:
        """The records, as Telemetry would carry them."""
        at, lat, lon, alt, radius, kind, mission, autonomy, armed = (
            column.values(data).tolist()
            for column, data in zip(BULK_COLUMNS, self.columns(), strict=True)
        )
        out = []
        for i, asset_id in enumerate(self.ids):
            point = Position(lat[i], lon[i], alt[i])
            r = radius[i]
            out.append(
                AssetRecord(
                    asset_id,
                    RECORD_KINDS[kind[i]],
                    RECORD_MISSIONS[mission[i]],
                    armed[i] == 1,
                    RECORD_AUTONOMIES[autonomy[i]],
                    at[i],
                    None if r else point,
                    Area(point, r) if r else None,
                )
            )
        return tuple(out)

    @classmethod
    def of(cls, records: Iterable[AssetRecord]) -> Bulk:
        """The records column by column; MessageError names the first that is not valid."""
        rows = list(records)
        try:
            points = [r.position if r.area is None else r.area.center for r in rows]
            values: list[Sequence[int]] = [
                [r.at for r in rows],
                [p.lat_e6 for p in points],  # type: ignore[union-attr]
                [p.lon_e6 for p in points],  # type: ignore[union-attr]
                [p.alt_m for p in points],  # type: ignore[union-attr]
                [0 if r.area is None else r.area.radius_m for r in rows],
                [RECORD_KINDS.index(r.kind) for r in rows],
                [RECORD_MISSIONS.index(r.mission) for r in rows],
                [RECORD_AUTONOMIES.index(r.autonomy) for r in rows],
                [int(r.armed) for r in rows],
            ]
            columns = [c.pack(v) for c, v in zip(BULK_COLUMNS, values, strict=True)]
            body = cls(tuple(r.asset_id for r in rows), *columns)
            body.check("body")
        except (MessageError, AttributeError, OverflowError, TypeError, ValueError):
            # Name the record at fault as the field tables would, else the whole.
            record_codec = StructCodec(AssetRecord)
            for i, record in enumerate(rows):
                record_codec.encode(record, f"body.assets[{i}]")
            raise MessageError("records that do not fit a bulk body", field="body") from None
        return body


@dataclass(frozen=True, slots=True)
class Query(Structure):
    """Is this track yours, and what is it doing? Identified by its own sequence number.

    `more` names further tracks (a swarm asked about at once); only to a peer whose Ready
    said it takes that many. A Query without it is byte for byte the single-track form."""

    track: TrackReport
    deadline: Micros
    more: tuple[TrackReport, ...] | None = None

    FIELDS: ClassVar = (
        Field("track", "track", StructCodec(TrackReport)),
        Field("deadline", "deadline", MICROS),
        Field(
            "more",
            "more",
            ListCodec(StructCodec(TrackReport), MAX_TRACKS_PER_QUERY - 1, 1),
            optional=True,
        ),
    )

    @property
    def tracks(self) -> tuple[TrackReport, ...]:
        return (self.track, *self.more) if self.more else (self.track,)

    def check(self, path: str) -> None:
        ids = [t.track_id for t in self.tracks]
        require(len(set(ids)) == len(ids), path, "a track is named twice in one query")


@dataclass(frozen=True, slots=True)
class Ready(Structure):
    """Signed over the new session id, so it proves the sender is live in this session (a
    Hello alone may be a copy). `batch`: the most tracks the sender takes in one Query."""

    batch: int = 1

    FIELDS: ClassVar = (Field("batch", "batch", IntCodec(1, MAX_TRACKS_PER_QUERY)),)


@dataclass(frozen=True, slots=True)
class Answer(Structure):
    query_seq: int
    claim: Claim
    mission: Mission | None = None
    armed: bool | None = None
    intent: Intent | None = None
    position: Position | None = None
    asset_id: str | None = None

    FIELDS: ClassVar = (
        Field("query_seq", "query", UINT),
        Field("claim", "claim", EnumCodec(Claim)),
        Field("mission", "mission", EnumCodec(Mission), optional=True),
        Field("armed", "armed", BoolCodec(), optional=True),
        Field("intent", "intent", EnumCodec(Intent), optional=True),
        Field("position", "pos", POSITION, optional=True),
        Field("asset_id", "asset", IDENT, optional=True),
    )

    def check(self, path: str) -> None:
        if self.claim is not Claim.OURS:
            require(
                self.mission is None
                and self.armed is None
                and self.intent is None
                and self.position is None
                and self.asset_id is None,
                path,
                f"an answer with claim {self.claim.value!r} carries no asset details",
            )


@dataclass(frozen=True, slots=True)
class Answers(Structure):
    """One answer per track of a Query that named several, in the Query's order. Each item
    is a whole Answer naming the query, so it stands alone when quoted; the one signature
    over all of them makes each attributable to the sender."""

    query_seq: int
    answers: tuple[Answer, ...]

    FIELDS: ClassVar = (
        Field("query_seq", "query", UINT),
        Field("answers", "answers", ListCodec(StructCodec(Answer), MAX_TRACKS_PER_QUERY, 2)),
    )

    def check(self, path: str) -> None:
        require(
            all(a.query_seq == self.query_seq for a in self.answers),
            path,
            "every answer must name the query the batch answers",
        )


@dataclass(frozen=True, slots=True)
class Notice(Structure):
    notice: NoticeKind
    start: Micros
    end: Micros
    text: str
    asset_id: str | None = None
    area: Area | None = None

    FIELDS: ClassVar = (
        Field("notice", "notice", EnumCodec(NoticeKind)),
        Field("start", "from", MICROS),
        Field("end", "until", MICROS),
        Field("text", "text", TEXT),
        Field("asset_id", "asset", IDENT, optional=True),
        Field("area", "area", AREA, optional=True),
    )

    def check(self, path: str) -> None:
        require(self.start <= self.end, path, "'from' must not be after 'until'")


@dataclass(frozen=True, slots=True)
class Hold(Structure):
    """The sender has paused autonomous responses toward `area` until `until`."""

    area: Area
    until: Micros
    reason: str

    FIELDS: ClassVar = (
        Field("area", "area", AREA),
        Field("until", "until", MICROS),
        Field("reason", "reason", TEXT),
    )


@dataclass(frozen=True, slots=True)
class Release(Structure):
    hold_seq: int

    FIELDS: ClassVar = (Field("hold_seq", "hold", UINT),)


@dataclass(frozen=True, slots=True)
class Checkpoint(Structure):
    """Signed tree head of the sender's log, optionally proving it extends an earlier one.

    `note_sig` is the sender's Ed25519 signature of the same tree head as a C2SP checkpoint
    note (origin `clearline/SIDE/KID`), so the receiver holds the signed note a witness
    takes; `cosigs` are witnesses' cosignature lines over that note, as they returned them."""

    size: int
    root: bytes
    policy_hash: bytes
    prev_size: int | None = None
    consistency: tuple[bytes, ...] = ()
    roster_hash: bytes = bytes(HASH_SIZE)
    note_sig: bytes | None = None
    cosigs: tuple[bytes, ...] | None = None

    FIELDS: ClassVar = (
        Field("size", "size", UINT),
        Field("root", "root", HASH),
        Field("policy_hash", "policy", HASH),
        Field("prev_size", "prev", UINT, optional=True),
        Field("consistency", "proof", PROOF),
        Field("roster_hash", "roster", HASH),
        Field("note_sig", "nsig", BytesCodec(size=SIGNATURE_SIZE), optional=True),
        Field(
            "cosigs",
            "cosigs",
            ListCodec(BytesCodec(max_size=MAX_COSIGNATURE_SIZE), MAX_COSIGNATURES, 1),
            optional=True,
        ),
    )

    def check(self, path: str) -> None:
        if self.prev_size is None:
            require(not self.consistency, path, "a proof needs 'prev'")
        else:
            require(self.prev_size <= self.size, path, "'prev' must not exceed 'size'")


@dataclass(frozen=True, slots=True)
class Receipt(Structure):
    """Proof that the peer's message `message_seq` is leaf `leaf_index` of the sender's log."""

    message_seq: int
    leaf_index: int
    tree_size: int
    root: bytes
    proof: tuple[bytes, ...]

    FIELDS: ClassVar = (
        Field("message_seq", "seq", UINT),
        Field("leaf_index", "leaf", UINT),
        Field("tree_size", "size", UINT),
        Field("root", "root", HASH),
        Field("proof", "proof", PROOF),
    )

    def check(self, path: str) -> None:
        require(self.leaf_index < self.tree_size, path, "'leaf' must be below 'size'")


@dataclass(frozen=True, slots=True)
class Decision(Structure):
    """A gate decision, kept in the deciding side's own log."""

    action_id: str
    actor: Actor
    rung: str
    domain: str
    verdict: Verdict
    rule: str
    reason: str
    policy_hash: bytes
    target: str | None = None
    until: Micros | None = None
    approvals: tuple[bytes, ...] = ()
    """The officers' approvals the gate accepted, as their exact COSE_Sign1 bytes."""
    roster_hash: bytes = bytes(HASH_SIZE)

    FIELDS: ClassVar = (
        Field("action_id", "action", IDENT),
        Field("actor", "actor", EnumCodec(Actor)),
        Field("rung", "rung", IDENT),
        Field("domain", "domain", IDENT),
        Field("verdict", "verdict", EnumCodec(Verdict)),
        Field("rule", "rule", IDENT),
        Field("reason", "reason", TEXT),
        Field("policy_hash", "policy", HASH),
        Field("target", "target", IDENT, optional=True),
        Field("until", "until", MICROS, optional=True),
        Field(
            "approvals",
            "approvals",
            ListCodec(BytesCodec(max_size=MAX_APPROVAL_SIZE), MAX_APPROVALS),
        ),
        Field("roster_hash", "roster", HASH),
    )


@dataclass(frozen=True, slots=True)
class Approval(Structure):
    """An enrolled officer's approval of a human decision, signed with the officer's own key.

    The signing side is the envelope's `side`; the officer is named by the key id. An
    ACTION approval names exactly one act; a STANDING one a class of acts for a while,
    and never one at an excluded rung or in an excluded domain (the gate refuses those).
    """

    scope: ApprovalScope
    rung: str
    domain: str
    not_before: Micros
    not_after: Micros
    action_id: str | None = None
    target: str | None = None
    officer: str | None = None

    FIELDS: ClassVar = (
        Field("scope", "scope", EnumCodec(ApprovalScope)),
        Field("rung", "rung", IDENT),
        Field("domain", "domain", IDENT),
        Field("not_before", "from", MICROS),
        Field("not_after", "until", MICROS),
        Field("action_id", "action", IDENT, optional=True),
        Field("target", "target", IDENT, optional=True),
        Field("officer", "officer", IDENT, optional=True),
    )

    def check(self, path: str) -> None:
        require(self.not_before <= self.not_after, path, "'from' must not be after 'until'")
        require(
            (self.action_id is not None) == (self.scope is ApprovalScope.ACTION),
            path,
            "an 'action' approval names its action id; a 'standing' one names none",
        )


Body = (
    Hello
    | Heartbeat
    | Ready
    | Telemetry
    | Bulk
    | Query
    | Answer
    | Answers
    | Notice
    | Hold
    | Release
    | Checkpoint
    | Receipt
    | Decision
    | Approval
)

BODY_TYPES: dict[MessageType, type[Structure]] = {
    MessageType.HELLO: Hello,
    MessageType.HEARTBEAT: Heartbeat,
    MessageType.READY: Ready,
    MessageType.TELEMETRY: Telemetry,
    MessageType.BULK: Bulk,
    MessageType.QUERY: Query,
    MessageType.ANSWER: Answer,
    MessageType.ANSWERS: Answers,
    MessageType.NOTICE: Notice,
    MessageType.HOLD: Hold,
    MessageType.RELEASE: Release,
    MessageType.CHECKPOINT: Checkpoint,
    MessageType.RECEIPT: Receipt,
    MessageType.DECISION: Decision,
    MessageType.APPROVAL: Approval,
}
TYPE_OF_BODY: dict[type[Structure], MessageType] = {cls: t for t, cls in BODY_TYPES.items()}
BODY_CODECS: dict[MessageType, StructCodec[Structure]] = {
    t: StructCodec(cls) for t, cls in BODY_TYPES.items()
}


@dataclass(frozen=True, slots=True)
class Message:
    """The signed payload: who sent what, in which session, in which order, when."""

    side: str
    session_id: bytes
    seq: int
    sent_at: Micros
    body: Body
    version: int = PROTOCOL_VERSION

    @property
    def type(self) -> MessageType:
        return TYPE_OF_BODY[type(self.body)]


ENVELOPE_KEYS = ("v", "type", "side", "sid", "seq", "t", "body")
VERSION = IntCodec(PROTOCOL_VERSION, PROTOCOL_VERSION)
SESSION_ID = BytesCodec(max_size=SESSION_ID_SIZE)
MESSAGE_TYPE = EnumCodec(MessageType)


def message_to_wire(message: Message) -> dict[str, object]:
    """The CBOR data model of a payload (before deterministic encoding), every map's keys
    in deterministic order: cbor2's plain encoder then writes the deterministic bytes."""
    kind = message.type
    sid = SESSION_ID.encode(message.session_id, "sid")
    require(len(message.session_id) in (0, SESSION_ID_SIZE), "sid", "expected 0 or 16 bytes")
    version = VERSION.encode(message.version, "v")
    side = SIDE.encode(message.side, "side")
    seq = UINT.encode(message.seq, "seq")
    sent_at = MICROS.encode(message.sent_at, "t")
    body = BODY_CODECS[kind].encode(message.body, "body")
    return {
        "t": sent_at,
        "v": version,
        "seq": seq,
        "sid": sid,
        "body": body,
        "side": side,
        "type": kind.value,
    }


_ENVELOPE_KEY_SET = frozenset(ENVELOPE_KEYS)


def message_from_wire(obj: object) -> Message:
    """Validate a decoded payload fully and build the typed Message."""
    require(isinstance(obj, dict), "payload", "expected a map")
    assert isinstance(obj, dict)
    if len(obj) != len(ENVELOPE_KEYS) or not _ENVELOPE_KEY_SET.issuperset(obj):
        for key in obj:
            require(key in ENVELOPE_KEYS, "payload", f"unknown field {key!r}")
        for key in ENVELOPE_KEYS:
            require(key in obj, key, "required field is missing")
    VERSION.decode(obj["v"], "v")
    kind = MESSAGE_TYPE.decode(obj["type"], "type")
    sid = SESSION_ID.decode(obj["sid"], "sid")
    require(len(sid) in (0, SESSION_ID_SIZE), "sid", "expected 0 or 16 bytes")
    body = BODY_CODECS[kind].decode(obj["body"], "body")
    return Message(
        side=SIDE.decode(obj["side"], "side"),
        session_id=sid,
        seq=UINT.decode(obj["seq"], "seq"),
        sent_at=MICROS.decode(obj["t"], "t"),
        body=body,  # type: ignore[arg-type]
    )
