"""The telemetry feed: own assets as a length-prefixed binary stream, read with no I/O.

A side's own systems that do not speak CoT send the node their assets' positions as
frames on one TCP connection (docs/feed.md has the format; `clearline.node.feed`
listens):

    frame  = uint16_be(length) || type (1 byte) || body      ; length counts type and body
    token  = 0x01 || UTF-8 bearer token                       ; first, and only first
    point  = 0x02 || fixed || id                              ; an asset at a point
    area   = 0x03 || fixed || uint32_be(radius_m) || id       ; an asset somewhere in an area
    fixed  = kind, mission, autonomy, intent, armed (1 byte each)
             || uint64_be(at, µs since 1970; 0: when the node reads it)
             || int32_be(lat_e6) || int32_be(lon_e6) || int32_be(alt_m)
    id     = 1 to 64 ASCII characters of [A-Za-z0-9._:/-], the rest of the frame

Enumerations travel as their index in the order docs/protocol.md lists them.

Everything here meets bytes from whoever can reach the feed's port, so nothing raises
on bad input: a frame that is not a valid record is skipped with a reason (`REASONS`)
and the stream goes on at the next frame; only a missing or wrong token ends it.
Memory is bounded: at most one partial frame of at most `MAX_FRAME` bytes is held, and
a longer frame is skipped as its bytes arrive, never buffered.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from clearline.doctrine.registry import OwnAsset

if TYPE_CHECKING:
    from numpy.typing import NDArray
from clearline.protocol.constants import MAX_ID_LENGTH
from clearline.protocol.messages import (
    Area,
    AssetKind,
    AutonomyMode,
    Intent,
    Micros,
    Mission,
    Position,
)
from clearline.protocol.telemetry import SET_POSITION as _SET_POSITION
from clearline.protocol.telemetry import BulkBuffer, position_of, record_of

TOKEN, POINT, AREA = 0x01, 0x02, 0x03
KINDS: Final = tuple(AssetKind)
MISSIONS: Final = tuple(Mission)
AUTONOMIES: Final = tuple(AutonomyMode)
INTENTS: Final = tuple(Intent)

_FRAME = struct.Struct(">HB")
_FIXED = struct.Struct(">BBBBBQiii")
_RADIUS = struct.Struct(">I")
_POINT_HEAD: Final = _FRAME.size + _FIXED.size
"""Where a point frame's id starts."""
_FIXED_ROW: Final = [
    ("kind", "u1"),
    ("mission", "u1"),
    ("autonomy", "u1"),
    ("intent", "u1"),
    ("armed", "u1"),
    ("at", ">u8"),
    ("lat", ">i4"),
    ("lon", ">i4"),
    ("alt", ">i4"),
]
"""The fixed fields as a numpy record, for checking a run of point frames together."""
MAX_TOKEN: Final = 256
MAX_FRAME: Final = 1 + _FIXED.size + _RADIUS.size + MAX_ID_LENGTH
"""The longest frame a record can need (an area's); longer ones are skipped unread."""
_TOKEN_FRAME: Final = 1 + MAX_TOKEN

REASONS: Final = (
    "oversized",
    "empty",
    "unknown-type",
    "short",
    "bad-enum",
    "bad-armed",
    "bad-id",
    "bad-position",
    "bad-radius",
    "bad-time",
    "token-again",
)
"""Every reason a frame is skipped for."""

_ID = re.compile(rb"[A-Za-z0-9._:/-]{1,%d}" % MAX_ID_LENGTH)
_ID_BYTES = b"-./0123456789:ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
"""What an id is made of: deleting these from a valid id leaves nothing."""
_LAT, _LON, _ALT = Position.LAT, Position.LON, Position.ALT
_LAT_LOW, _LAT_HIGH, _LON_LOW, _LON_HIGH, _ALT_LOW, _ALT_HIGH = (
    _LAT.low,
    _LAT.high,
    _LON.low,
    _LON.high,
    _ALT.low,
    _ALT.high,
)
_NK, _NM, _NA, _NI = len(KINDS), len(MISSIONS), len(AUTONOMIES), len(INTENTS)
_POINT_MIN, _POINT_MAX = 1 + _FIXED.size + 1, 1 + _FIXED.size + MAX_ID_LENGTH
_MICROS_MAX: Final = (1 << 63) - 1
RECORD_AHEAD_S: Final = 60
"""A record's own time may be this far ahead of the node's clock (the two sides' clocks
must agree as closely for a Hello); later is `bad-time`."""
RECORD_BEHIND_S: Final = 3600
"""...and this far behind it: a feed carries where assets are now, and an older record
would be sent, and answered from, as if it were."""
MAX_AREA_RADIUS_M: Final = 500_000
"""The widest area a feed may declare an asset in. The protocol allows 40,000 km, but an
area that wide is matched by every track the peer asks about, and so would answer "ours"
for all of them."""
LISTED_SKIPS: Final = 64
"""Skipped frames listed one by one per read; the rest are only counted (a read of empty
frames holds 32,768 of them)."""
MIN_RUN: Final = 16
"""Point frames in a row that are checked and taken as columns; fewer are taken one by
one, which costs less than the column operations' fixed cost."""


@dataclass(frozen=True, slots=True)
class Skipped:
    """A frame that was not taken: its place in the stream (0 = the first), why, and what."""

    frame: int
    reason: str
    detail: str

    def line(self) -> str:
        return f"frame {self.frame} skipped: {self.reason}: {self.detail}"


@dataclass(frozen=True, slots=True)
class Run:
    """Point records read together and taken whole: their ids, each one's fixed fields as
    framed (its time 0 replaced by the time read), and their columns as the peer is sent
    them (`BULK_COLUMNS` order). Records are built from the fixed fields only when
    something needs them (`asset_of`): most of a fast feed's never are."""

    ids: list[str]
    fixed: list[bytes]
    columns: tuple[bytes, ...]


@dataclass(slots=True)
class Batch:
    """What one read gave: the records taken, the frames skipped, and whether to hang up."""

    pieces: list[list[OwnAsset] | Run] = field(default_factory=list)
    """The records taken, in order: built ones (frame by frame), and runs."""
    taken: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    """The first LISTED_SKIPS frames skipped; `skips` counts all of them by reason."""
    skips: dict[str, int] = field(default_factory=dict)
    refused: str | None = None
    """Why the stream ends here (a missing or wrong token); nothing after it is read."""

    @property
    def records(self) -> list[OwnAsset]:
        """Every record taken, in order, built (a run's are built here)."""
        out: list[OwnAsset] = []
        for piece in self.pieces:
            if isinstance(piece, Run):
                out += map(asset_of, piece.ids, piece.fixed)
            else:
                out += piece
        return out

    def columns(self) -> BulkBuffer:
        """The records taken, column by column, as the peer is sent them."""
        out = BulkBuffer()
        for piece in self.pieces:
            if isinstance(piece, Run):
                out.add(piece.ids, piece.columns)
            else:
                out.add_records(asset.record for asset in piece)
        return out

    def take(self, asset: OwnAsset) -> None:
        if not self.pieces or isinstance(self.pieces[-1], Run):
            self.pieces.append([])
        self.pieces[-1].append(asset)  # type: ignore[union-attr]
        self.taken += 1

    def skip(self, frame: int, reason: str, detail: str) -> None:
        self.skips[reason] = self.skips.get(reason, 0) + 1
        if len(self.skipped) < LISTED_SKIPS:
            self.skipped.append(Skipped(frame, reason, detail))


def point_frame(
    asset_id: str,
    kind: AssetKind,
    mission: Mission,
    armed: bool,
    position: Position,
    at: Micros = 0,
    autonomy: AutonomyMode = AutonomyMode.AUTONOMOUS,
    intent: Intent = Intent.TRANSITING,
    radius_m: int | None = None,
) -> bytes:
    """One record as a frame (an area's if `radius_m` is given): what a feed sends."""
    fixed = _FIXED.pack(
        KINDS.index(kind),
        MISSIONS.index(mission),
        AUTONOMIES.index(autonomy),
        INTENTS.index(intent),
        int(armed),
        at,
        position.lat_e6,
        position.lon_e6,
        position.alt_m,
    )
    body = fixed + (b"" if radius_m is None else _RADIUS.pack(radius_m)) + asset_id.encode()
    kind_byte = POINT if radius_m is None else AREA
    return _FRAME.pack(1 + len(body), kind_byte) + body


def token_frame(token: str) -> bytes:
    data = token.encode()
    return _FRAME.pack(1 + len(data), TOKEN) + data


class FeedReader:
    """Splits a feed into records; `check_token` says whether a token may send records."""

    __slots__ = ("_buffer", "_check_token", "_frames", "_skip", "authenticated", "refused")

    def __init__(self, check_token: Callable[[bytes], bool]) -> None:
        self._check_token = check_token
        self._buffer = b""
        self._skip = 0
        """Bytes of an oversized frame still to come, dropped as they arrive."""
        self._frames = 0
        self.authenticated = False
        self.refused: str | None = None

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes, now: Micros) -> Batch:
        """The records and skipped frames in `data` (and what came before it, unfinished);
        `now` stands in for a record's time 0."""
        batch = Batch()
        if self.refused is not None:
            batch.refused = self.refused
            return batch
        if self._skip:
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            data = data[dropped:]
        buf = self._buffer + data if self._buffer else data
        pos, end = 0, len(buf)
        header = _FRAME.size
        # Whole point frames in a row are only split here, and checked and taken together
        # (`_take_run`); anything else is read frame by frame below.
        fixed: list[bytes] = []
        ids: list[bytes] = []
        point_head, point_min, point_max = _POINT_HEAD, _POINT_MIN, _POINT_MAX
        blocks = True
        while end - pos >= header:
            if self.authenticated and end - pos > point_head:
                length = buf[pos] << 8 | buf[pos + 1]
                stop = pos + 2 + length
                if buf[pos + 2] == POINT and point_min <= length <= point_max and stop <= end:
                    if blocks and not fixed:
                        # A run of point frames all of one length (ids of one length, as a
                        # swarm's often are) is split as a block, not frame by frame.
                        consumed = self._take_block(batch, buf, pos, 2 + length, now)
                        # One block a read: what follows a block that stopped short (ids of
                        # another length) is read as one run, so that a stream changing
                        # length every few frames costs no more than a run for each block.
                        blocks = False
                        if consumed:
                            pos += consumed
                            continue
                    fixed.append(buf[pos + 3 : pos + point_head])
                    ids.append(buf[pos + point_head : stop])
                    pos = stop
                    continue
            if fixed:
                self._take_run(batch, fixed, ids, now)
                fixed, ids = [], []
            length, kind = _FRAME.unpack_from(buf, pos)
            if not self.authenticated and (length == 0 or kind != TOKEN):
                return self._refuse(batch, "the first frame must be a token frame")
            if length == 0:
                batch.skip(self._frames, "empty", "a frame of length 0")
                self._frames += 1
                pos += 2
                continue
            limit = _TOKEN_FRAME if kind == TOKEN else MAX_FRAME
            if length > limit:
                if not self.authenticated:
                    return self._refuse(batch, f"a token frame of {length} bytes, at most {limit}")
                batch.skip(self._frames, "oversized", f"{length} bytes, at most {limit}")
                self._frames += 1
                available = end - pos - 2
                if length > available:
                    self._skip = length - available
                    pos = end
                    break
                pos += 2 + length
                continue
            stop = pos + 2 + length
            if stop > end:
                break
            number = self._frames
            self._frames += 1
            if not self.authenticated:
                if not self._check_token(buf[pos + 3 : stop]):
                    return self._refuse(batch, "the token is not valid for the feed")
                self.authenticated = True
            elif kind in (POINT, AREA):
                area = kind == AREA
                split = min(stop, pos + 3 + _FIXED.size + (_RADIUS.size if area else 0))
                taken = _record(buf[pos + 3 : split], buf[split:stop], area, now)
                if isinstance(taken, OwnAsset):
                    batch.take(taken)
                else:
                    batch.skip(number, *taken)
            elif kind == TOKEN:
                batch.skip(number, "token-again", "the token is sent once, first")
            else:
                batch.skip(number, "unknown-type", f"frame type {kind}")
            pos = stop
        if fixed:
            self._take_run(batch, fixed, ids, now)
        self._buffer = buf[pos:] if pos < end else b""
        return batch

    def _take_run(self, batch: Batch, fixed: list[bytes], ids: list[bytes], now: Micros) -> None:
        """Point frames in a row, split into their fixed fields and ids: checked column by
        column, and taken together if all are valid; else one by one, to say why not (and
        one by one too if there are too few for the columns to pay)."""
        import numpy

        if len(fixed) < MIN_RUN:
            self._take_each(batch, fixed, ids, now)
            return
        block = numpy.frombuffer(b"".join(fixed), numpy.uint8).reshape(len(fixed), _FIXED.size)
        names = None
        if not b"".join(ids).translate(None, _ID_BYTES):
            names = b" ".join(ids).decode("ascii").split(" ")
        self._take_checked(batch, block, fixed, names, lambda: ids, now)

    def _take_block(self, batch: Batch, buf: bytes, pos: int, size: int, now: Micros) -> int:
        """The point frames from `pos` on that are each `size` bytes long, as far as they go:
        taken as `_take_run` takes a run, without splitting them one by one. How many bytes
        they took (0: fewer than MIN_RUN, left to the frame by frame reading)."""
        import numpy

        count = (len(buf) - pos) // size
        if count < MIN_RUN:
            return 0
        frames = numpy.frombuffer(buf, numpy.uint8, count * size, pos).reshape(count, size)
        alike = (frames[:, 0] == buf[pos]) & (frames[:, 1] == buf[pos + 1])
        alike &= frames[:, 2] == POINT
        count = count if alike.all() else int(alike.argmin())
        if count < MIN_RUN:
            return 0
        block = numpy.ascontiguousarray(frames[:count, 3:_POINT_HEAD])
        fixed: list[bytes] = block.view(f"V{_FIXED.size}").ravel().tolist()
        width = size - _POINT_HEAD
        raw_ids = numpy.ascontiguousarray(frames[:count, _POINT_HEAD:]).tobytes()
        names = None
        if not raw_ids.translate(None, _ID_BYTES):
            text = raw_ids.decode("ascii")
            names = [text[i : i + width] for i in range(0, len(text), width)]

        def ids() -> list[bytes]:
            return [raw_ids[i : i + width] for i in range(0, len(raw_ids), width)]

        self._take_checked(batch, block, fixed, names, ids, now)
        return count * size

    def _take_checked(
        self,
        batch: Batch,
        block: NDArray[Any],
        fixed: list[bytes],
        names: list[str] | None,
        ids: Callable[[], list[bytes]],
        now: Micros,
    ) -> None:
        """A run's records, as rows of their fixed fields (`block`, one row of bytes a
        record, and `fixed`, the same rows as bytes) and their `names` (None if some id is
        not made of an id's characters): taken together if all are valid, else one by one
        (`ids` gives their raw ids) to say which are not and why."""
        import numpy

        rows = block.view(_FIXED_ROW).ravel()
        at = rows["at"]
        unset = numpy.flatnonzero(at == 0)
        if len(unset):
            at = numpy.where(at == 0, numpy.uint64(now), at).astype(">u8")
            stamp = _AT.pack(now)
            for i in unset.tolist():
                fixed[i] = fixed[i][:_AT_START] + stamp + fixed[i][_AT_START + _AT.size :]
        first = self._frames
        self._frames += len(fixed)
        if names is None or not _valid_rows(block, at, now):
            self._frames = first
            self._take_each(batch, fixed, ids(), now)
            return
        columns = (
            at.tobytes(),
            rows["lat"].tobytes(),
            rows["lon"].tobytes(),
            rows["alt"].tobytes(),
            bytes(4 * len(names)),
            rows["kind"].tobytes(),
            rows["mission"].tobytes(),
            rows["autonomy"].tobytes(),
            rows["armed"].tobytes(),
        )
        batch.pieces.append(Run(names, fixed, columns))
        batch.taken += len(names)

    def _take_each(self, batch: Batch, fixed: list[bytes], ids: list[bytes], now: Micros) -> None:
        """Point frames in a row, one by one."""
        for head, raw_id in zip(fixed, ids, strict=True):
            one = _record(head, raw_id, False, now)
            if isinstance(one, OwnAsset):
                batch.take(one)
            else:
                batch.skip(self._frames, *one)
            self._frames += 1

    def _refuse(self, batch: Batch, why: str) -> Batch:
        """End the stream: nothing after a missing or wrong token is read."""
        self.refused = batch.refused = why
        self._buffer = b""
        return batch


_new = object.__new__
_set_record, _set_intent = (getattr(OwnAsset, name).__set__ for name in ("record", "intent"))
_AT: Final = struct.Struct(">Q")
_AT_START: Final = 5
"""Where the time starts in a record's fixed fields (after the five enumeration bytes)."""


def _valid_rows(block: NDArray[Any], at: NDArray[Any], now: Micros) -> bool:
    """Whether every row of fixed fields (`block`: one row of bytes a record) is valid,
    with `at` its times (0 already replaced)."""
    import numpy

    enumerations = block[:, :_AT_START].max(axis=0)
    places = numpy.ascontiguousarray(block[:, _PLACE_START:]).view(">i4")
    return bool(
        (enumerations < _ENUMERATION_SIZES).all()
        and at.min() >= now - RECORD_BEHIND_S * 1_000_000
        and at.max() <= now + RECORD_AHEAD_S * 1_000_000
        and (places.min(axis=0) >= _PLACE_LOW).all()
        and (places.max(axis=0) <= _PLACE_HIGH).all()
    )


_ENUMERATION_SIZES: Final = (_NK, _NM, _NA, _NI, 2)
"""How many values each enumeration byte of the fixed fields has, in order (armed: 2)."""
_PLACE_START: Final = _AT_START + _AT.size
_PLACE_LOW: Final = (_LAT_LOW, _LON_LOW, _ALT_LOW)
_PLACE_HIGH: Final = (_LAT_HIGH, _LON_HIGH, _ALT_HIGH)


def asset_of(asset_id: str, fixed: bytes) -> OwnAsset:
    """The record a run holds as `asset_id` and its fixed fields (valid, time set)."""
    k, m, a, i, armed, when, lat, lon, alt = _FIXED.unpack(fixed)
    where: Position = _new(Position)
    _SET_POSITION[0](where, lat)
    _SET_POSITION[1](where, lon)
    _SET_POSITION[2](where, alt)
    record = record_of(
        asset_id, KINDS[k], MISSIONS[m], armed == 1, AUTONOMIES[a], when, where, None
    )
    asset: OwnAsset = _new(OwnAsset)
    _set_record(asset, record)
    _set_intent(asset, INTENTS[i])
    return asset


def _record(head: bytes, raw_id: bytes, area: bool, now: Micros) -> OwnAsset | tuple[str, str]:
    """One record frame's fixed fields (with its radius, for an area) and id, or (reason,
    detail)."""
    if not raw_id or len(head) < _FIXED.size + (_RADIUS.size if area else 0):
        size = 1 + len(head) + len(raw_id)
        return "short", f"{size} bytes, too short for a record and its id"
    kind, mission, autonomy, intent, armed, when, lat, lon, alt = _FIXED.unpack_from(head)
    if kind >= len(KINDS) or mission >= len(MISSIONS):
        return "bad-enum", f"kind {kind} or mission {mission} is out of range"
    if autonomy >= len(AUTONOMIES) or intent >= len(INTENTS):
        return "bad-enum", f"autonomy {autonomy} or intent {intent} is out of range"
    if armed > 1:
        return "bad-armed", f"armed is {armed}, not 0 or 1"
    if when and not now - RECORD_BEHIND_S * 1_000_000 <= when <= now + RECORD_AHEAD_S * 1_000_000:
        return "bad-time", (
            f"{when} is more than {RECORD_AHEAD_S} s ahead of the node's clock ({now}) "
            f"or {RECORD_BEHIND_S} s behind it"
        )
    if _ID.fullmatch(raw_id) is None:
        return "bad-id", f"{raw_id[:80]!r} is not 1 to {MAX_ID_LENGTH} of [A-Za-z0-9._:/-]"
    if not (
        _LAT.low <= lat <= _LAT.high
        and _LON.low <= lon <= _LON.high
        and _ALT.low <= alt <= _ALT.high
    ):
        return "bad-position", f"[{lat}, {lon}, {alt}] is out of range"
    point = position_of(lat, lon, alt)
    if area:
        (radius,) = _RADIUS.unpack_from(head, _FIXED.size)
        if not 1 <= radius <= MAX_AREA_RADIUS_M:
            return "bad-radius", f"radius {radius} m is not in 1..{MAX_AREA_RADIUS_M}"
        position, region = None, Area(point, radius)
    else:
        position, region = point, None
    record = record_of(
        raw_id.decode("ascii"),
        KINDS[kind],
        MISSIONS[mission],
        armed == 1,
        AUTONOMIES[autonomy],
        when or now,
        position,
        region,
    )
    # Built as record_of builds records: the values are checked, the dataclass __init__ slow.
    asset: OwnAsset = _new(OwnAsset)
    _set_record(asset, record)
    _set_intent(asset, INTENTS[intent])
    return asset
