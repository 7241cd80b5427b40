"""Telemetry and Bulk payloads written and read without the generic field tables.

A Telemetry message carries hundreds of asset records, and the generic path
(`messages.message_to_wire`, cbor2's canonical encoder; on receipt cbor2's decoder,
the determinism check and `StructCodec`) costs some tens of microseconds a record.
Here the same bytes are written out directly, and read back by matching each record
against the one byte layout deterministic encoding leaves it (`_RECORD`), which also
checks the shortest integer forms and the enumerations in the same pass. A Bulk
message's columns cost the generic path little a record, but its fixed costs (walking
the ids for the determinism check, the field tables) are most of a message's: it is
written out directly too, and read with cbor2 and checked by writing it out again.

Both are fast paths, never the definition: `encode` returns None and `decode`
returns None for anything they do not handle (a value out of range, a layout they
do not match), and the caller then takes the generic path, which accepts the same
messages and names what is wrong with the others. The tests hold both to the
generic path byte for byte and value for value.

`BulkBuffer` holds records waiting to be sent column by column, and cuts them into
Bulk bodies that each fit one frame: what the node sends.
"""

from __future__ import annotations

import re
import struct
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from enum import StrEnum
from itertools import accumulate
from typing import Final

import cbor2

from clearline.errors import MessageError
from clearline.protocol.constants import (
    MAX_ASSETS_PER_BULK,
    MAX_ASSETS_PER_TELEMETRY,
    MAX_FRAME_SIZE,
    MAX_ID_LENGTH,
    PROTOCOL_VERSION,
    SESSION_ID_SIZE,
)
from clearline.protocol.messages import (
    BULK_COLUMNS,
    BULK_RECORD_SIZE,
    Area,
    AssetKind,
    AssetRecord,
    AutonomyMode,
    Bulk,
    IdListCodec,
    Message,
    MessageType,
    Mission,
    Position,
    Telemetry,
)

_ID = re.compile(rf"[A-Za-z0-9._:/-]{{1,{MAX_ID_LENGTH}}}")
_SIDE = re.compile(r"[A-Z][A-Z0-9_-]{0,15}")
_MICROS_MAX: Final = (1 << 63) - 1
_LAT, _LON, _ALT = Position.LAT, Position.LON, Position.ALT
_RADIUS_MAX: Final = 40_000_000

_B: Final = struct.Struct(">BB")
_H: Final = struct.Struct(">BH")
_I: Final = struct.Struct(">BI")
_Q: Final = struct.Struct(">BQ")
_SMALL: Final = tuple(bytes((i,)) for i in range(256))


def _int(value: int) -> bytes:
    """The shortest CBOR encoding of an integer in the 64-bit range (RFC 8949 §4.2.1)."""
    major = 0
    if value < 0:
        major, value = 0x20, -1 - value
    if value < 24:
        return _SMALL[major | value]
    if value < 0x100:
        return _B.pack(major | 24, value)
    if value < 0x10000:
        return _H.pack(major | 25, value)
    if value < 0x100000000:
        return _I.pack(major | 26, value)
    return _Q.pack(major | 27, value)


def _text(value: bytes) -> bytes:
    """A text string's head and bytes (ASCII here, so characters are bytes)."""
    n = len(value)
    return (_SMALL[0x60 | n] if n < 24 else _B.pack(0x78, n)) + value


def _key(name: str) -> bytes:
    return _text(name.encode())


def _enum_bytes(enum: type[StrEnum]) -> dict[object, bytes]:
    return {member: _text(member.value.encode()) for member in enum}


_KIND = _enum_bytes(AssetKind)
_MISSION = _enum_bytes(Mission)
_AUTONOMY = _enum_bytes(AutonomyMode)
_RECORD_HEAD = b"\xa7" + _key("at")
_ID_KEY = _key("id")
_POS_KEY = _key("pos") + b"\x83"
_AREA_KEY = _key("area") + b"\xa2" + _key("c") + b"\x83"
_R_KEY = _key("r")
_KIND_KEY = _key("kind")
_ARMED = {False: _key("armed") + b"\xf4", True: _key("armed") + b"\xf5"}
_MISSION_KEY = _key("mission")
_AUTONOMY_KEY = _key("autonomy")


def _position(p: object) -> bytes | None:
    if type(p) is not Position:
        return None
    lat, lon, alt = p.lat_e6, p.lon_e6, p.alt_m
    if not (
        type(lat) is int
        and type(lon) is int
        and type(alt) is int
        and _LAT.low <= lat <= _LAT.high
        and _LON.low <= lon <= _LON.high
        and _ALT.low <= alt <= _ALT.high
    ):
        return None
    return _int(lat) + _int(lon) + _int(alt)


def encode_record(record: AssetRecord) -> bytes | None:
    """One AssetRecord's deterministic CBOR, or None if it is not valid as it stands."""
    at = record.at
    asset_id = record.asset_id
    if (
        type(record) is not AssetRecord
        or type(at) is not int
        or not 0 <= at <= _MICROS_MAX
        or type(asset_id) is not str
        or _ID.fullmatch(asset_id) is None
        or type(record.armed) is not bool
    ):
        return None
    # By type, not by value: a plain string equal to a member is not the member.
    if (
        type(record.kind) is not AssetKind
        or type(record.mission) is not Mission
        or type(record.autonomy) is not AutonomyMode
    ):
        return None
    kind, mission = _KIND[record.kind], _MISSION[record.mission]
    autonomy = _AUTONOMY[record.autonomy]
    area = record.area
    if area is None:
        point = _position(record.position)
        if point is None:
            return None
        where = _POS_KEY + point
    else:
        if record.position is not None or type(area) is not Area:
            return None
        point = _position(area.center)
        radius = area.radius_m
        if point is None or type(radius) is not int or not 1 <= radius <= _RADIUS_MAX:
            return None
        where = _AREA_KEY + point + _R_KEY + _int(radius)
    return b"".join(
        (
            _RECORD_HEAD,
            _int(at),
            _ID_KEY,
            _text(asset_id.encode()),
            where,
            _KIND_KEY,
            kind,
            _ARMED[record.armed],
            _MISSION_KEY,
            mission,
            _AUTONOMY_KEY,
            autonomy,
        )
    )


RECORD_MAX_POINT: Final = 182 - MAX_ID_LENGTH
"""The most bytes a record at a point encodes to, less its id's (every field at its longest)."""
RECORD_MAX_AREA: Final = 193 - MAX_ID_LENGTH
"""The same for a record over an area."""
BULK_OVERHEAD: Final = 272
"""The most a Bulk message's frame holds besides its records' own bytes: the COSE_Sign1,
the payload's envelope, and the body's keys and heads (every field at its longest)."""
BULK_RECORD_MAX: Final = BULK_RECORD_SIZE + 2
"""The most a Bulk record takes besides its id's characters (the id's head is 1 or 2)."""


class BulkBuffer:
    """Records waiting to be sent, column by column, cut into Bulk bodies when sent."""

    __slots__ = ("_columns", "_ids")

    def __init__(self) -> None:
        self._ids: list[str] = []
        self._columns = [bytearray() for _ in BULK_COLUMNS]

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, ids: Sequence[str], columns: Sequence[bytes | bytearray]) -> None:
        """Records already checked: their ids, and their columns in `BULK_COLUMNS` order."""
        self._ids += ids
        for held, data in zip(self._columns, columns, strict=True):
            held += data

    def add_records(self, records: Iterable[AssetRecord]) -> None:
        records = tuple(records)
        if records:
            body = Bulk.of(records)
            self.add(body.ids, body.columns())

    def extend(self, other: BulkBuffer) -> None:
        self.add(other._ids, other._columns)

    def take(self, frame_size: int = MAX_FRAME_SIZE) -> list[Bulk]:
        """Everything held, in order, as bodies each sure to fit one frame (by each record's
        longest encoding) and none over MAX_ASSETS_PER_BULK; the buffer is left empty."""
        ids, columns = self._ids, self._columns
        self._ids, self._columns = [], [bytearray() for _ in BULK_COLUMNS]
        budget = frame_size - BULK_OVERHEAD
        ends = list(accumulate(map(len, ids)))
        bodies, start, before = [], 0, 0
        while start < len(ids):
            # The records start..i take at most ends[i] - before + (i - start + 1) * most.
            offset = BULK_RECORD_MAX * (1 - start) - before
            candidates = range(start, min(len(ids), start + MAX_ASSETS_PER_BULK))
            fits = bisect_right(
                candidates,
                budget,
                key=lambda i, offset=offset: ends[i] + i * BULK_RECORD_MAX + offset,  # type: ignore[misc]
            )
            stop = start + max(1, fits)
            bodies.append(
                Bulk(
                    tuple(ids[start:stop]),
                    *(
                        bytes(data[start * c.width : stop * c.width])
                        for c, data in zip(BULK_COLUMNS, columns, strict=True)
                    ),
                )
            )
            start, before = stop, ends[stop - 1]
        return bodies


def _array_head(n: int) -> bytes:
    return _SMALL[0x80 | n] if n < 24 else (_B.pack(0x98, n) if n < 0x100 else _H.pack(0x99, n))


_T_KEY = b"\xa7" + _key("t")
_V = _key("v") + _int(PROTOCOL_VERSION)
_SID_KEY = _key("sid")
_SEQ_KEY = _key("seq")
_BODY_KEY = _key("body") + b"\xa1" + _key("assets")
_SIDE_KEY = _key("side")
_TYPE = _key("type") + _text(MessageType.TELEMETRY.value.encode())


def _envelope_valid(message: Message) -> bool:
    """Whether a message's envelope (all but its body) is valid as it stands."""
    sid, seq, t, side = message.session_id, message.seq, message.sent_at, message.side
    return (
        type(message.version) is int
        and message.version == PROTOCOL_VERSION
        and type(sid) is bytes
        and len(sid) in (0, SESSION_ID_SIZE)
        and type(seq) is int
        and 0 <= seq < 1 << 64
        and type(t) is int
        and 0 <= t <= _MICROS_MAX
        and type(side) is str
        and _SIDE.fullmatch(side) is not None
    )


def encode(message: Message, record_bytes: Callable[[AssetRecord], bytes | None]) -> bytes | None:
    """A Telemetry message's payload, or None if anything in it is not valid as it stands.

    `record_bytes` gives each record's encoding (`encode_record`, or a cache of it)."""
    body = message.body
    if type(body) is not Telemetry or not _envelope_valid(message):
        return None
    sid, seq, t, side = message.session_id, message.seq, message.sent_at, message.side
    assets = body.assets
    if type(assets) is not tuple or not 1 <= len(assets) <= MAX_ASSETS_PER_TELEMETRY:
        return None
    parts = [_T_KEY, _int(t), _V, _SEQ_KEY, _int(seq), _SID_KEY, _SMALL[0x40 | len(sid)], sid]
    parts.append(_BODY_KEY + _array_head(len(assets)))
    for record in assets:
        data = record_bytes(record)
        if data is None:
            return None
        parts.append(data)
    parts += (_SIDE_KEY, _text(side.encode()), _TYPE)
    return b"".join(parts)


# -- building records from values already checked --------------------------------------------

_new = object.__new__


def _setters(cls: type, *names: str) -> list[Callable[[object, object], None]]:
    """The slots' own setters, which a frozen dataclass leaves in place under its __setattr__."""
    return [getattr(cls, name).__set__ for name in names]


SET_RECORD: Final = _setters(
    AssetRecord, "asset_id", "kind", "mission", "armed", "autonomy", "at", "position", "area"
)
"""AssetRecord's fields' setters in the dataclass's order, for building records in a loop."""
SET_POSITION: Final = _setters(Position, "lat_e6", "lon_e6", "alt_m")
_set_id, _set_kind, _set_mission, _set_armed, _set_autonomy, _set_at, _set_pos, _set_area = (
    SET_RECORD
)
_set_lat, _set_lon, _set_alt = SET_POSITION


def position_of(lat_e6: int, lon_e6: int, alt_m: int) -> Position:
    """`Position(lat_e6, lon_e6, alt_m)` for values already checked, built in half the time:
    a frozen dataclass's __init__ sets each field through object.__setattr__ by name."""
    p: Position = _new(Position)
    _set_lat(p, lat_e6)
    _set_lon(p, lon_e6)
    _set_alt(p, alt_m)
    return p


def record_of(
    asset_id: str,
    kind: AssetKind,
    mission: Mission,
    armed: bool,
    autonomy: AutonomyMode,
    at: int,
    position: Position | None,
    area: Area | None,
) -> AssetRecord:
    """`AssetRecord(...)` for values already checked (as `position_of`); equal to it."""
    r: AssetRecord = _new(AssetRecord)
    _set_id(r, asset_id)
    _set_kind(r, kind)
    _set_mission(r, mission)
    _set_armed(r, armed)
    _set_autonomy(r, autonomy)
    _set_at(r, at)
    _set_pos(r, position)
    _set_area(r, area)
    return r


# -- reading ---------------------------------------------------------------------------------

_UINT = (
    rb"[\x00-\x17]|\x18[\x18-\xff]|\x19(?!\x00).{2}|\x1a(?!\x00\x00).{4}"
    rb"|\x1b(?!\x00\x00\x00\x00).{8}"
)
"""An unsigned integer in its shortest form: each longer form only for values that need it."""
_INT = _UINT + rb"|[\x20-\x37]|\x38[\x18-\xff]|\x39(?!\x00).{2}|\x3a(?!\x00\x00).{4}"
"""An unsigned or negative integer (the 64-bit forms of negatives are out of every range)."""


def _alternatives(table: dict[object, bytes]) -> bytes:
    return b"|".join(re.escape(v) for v in sorted(table.values(), key=len, reverse=True))


_BY_BYTES: dict[bytes, object] = {
    v: k for table in (_KIND, _MISSION, _AUTONOMY) for k, v in table.items()
}
_RECORD = re.compile(
    re.escape(_RECORD_HEAD)
    + rb"("
    + _UINT
    + rb")"
    + re.escape(_ID_KEY)
    + rb"([\x61-\x77]|\x78[\x18-\x40])([A-Za-z0-9._:/-]{1,64}?)("
    + re.escape(_POS_KEY)
    + rb"|"
    + re.escape(_AREA_KEY)
    + rb")("
    + _INT
    + rb")("
    + _INT
    + rb")("
    + _INT
    + rb")(?:"
    + re.escape(_R_KEY)
    + rb"("
    + _UINT
    + rb"))?"
    + re.escape(_KIND_KEY)
    + rb"("
    + _alternatives(_KIND)
    + rb")"
    + re.escape(_key("armed"))
    + rb"([\xf4\xf5])"
    + re.escape(_MISSION_KEY)
    + rb"("
    + _alternatives(_MISSION)
    + rb")"
    + re.escape(_AUTONOMY_KEY)
    + rb"("
    + _alternatives(_AUTONOMY)
    + rb")",
    re.DOTALL,
)
_HEAD = re.compile(
    re.escape(_T_KEY)
    + rb"("
    + _UINT
    + rb")"
    + re.escape(_V + _SEQ_KEY)
    + rb"("
    + _UINT
    + rb")"
    + re.escape(_SID_KEY)
    + rb"(\x40|\x50.{16})"
    + re.escape(_BODY_KEY)
    + rb"([\x81-\x97]|\x98[\x18-\xff]|\x99(?!\x00)..)",
    re.DOTALL,
)
_TAIL = re.compile(
    re.escape(_SIDE_KEY) + rb"([\x61-\x70])([A-Z][A-Z0-9_-]{0,15})" + re.escape(_TYPE) + rb"\Z"
)


def _value(data: bytes) -> int:
    """The value of an integer matched by `_UINT` or `_INT`."""
    initial = data[0]
    info = initial & 0x1F
    value = info if info < 24 else int.from_bytes(data[1:], "big")
    return -1 - value if initial & 0x20 else value


def _count(head: bytes) -> int:
    return head[0] - 0x80 if len(head) == 1 else int.from_bytes(head[1:], "big")


def decode(payload: bytes) -> Message | None:
    """The Telemetry message a payload holds, if it is one in the layout written above;
    None for anything else (another message type, or anything this does not match)."""
    head = _HEAD.match(payload)
    if head is None:
        return None
    t_bytes, seq_bytes, sid_bytes, count_bytes = head.groups()
    t = _value(t_bytes)
    count = _count(count_bytes)
    if t > _MICROS_MAX or not 1 <= count <= MAX_ASSETS_PER_TELEMETRY:
        return None
    match = _RECORD.match
    pos = head.end()
    records = []
    lat_low, lat_high, lon_low, lon_high = _LAT.low, _LAT.high, _LON.low, _LON.high
    alt_low, alt_high = _ALT.low, _ALT.high
    by_bytes = _BY_BYTES
    for _ in range(count):
        found = match(payload, pos)
        if found is None:
            return None
        groups = found.groups()
        at_b, id_head, asset_id, where, lat_b, lon_b, alt_b, radius_b = groups[:8]
        kind, armed, mission, auto = groups[8:]
        id_length = id_head[0] - 0x60 if len(id_head) == 1 else id_head[1]
        at = _value(at_b)
        lat, lon, alt = _value(lat_b), _value(lon_b), _value(alt_b)
        if (
            len(asset_id) != id_length
            or at > _MICROS_MAX
            or not lat_low <= lat <= lat_high
            or not lon_low <= lon <= lon_high
            or not alt_low <= alt <= alt_high
        ):
            return None
        point = position_of(lat, lon, alt)
        if (where == _AREA_KEY) != (radius_b is not None):
            return None
        if radius_b is None:
            position, area = point, None
        else:
            radius = _value(radius_b)
            if not 1 <= radius <= _RADIUS_MAX:
                return None
            position, area = None, Area(point, radius)
        records.append(
            record_of(
                asset_id.decode(),
                by_bytes[kind],  # type: ignore[arg-type]
                by_bytes[mission],  # type: ignore[arg-type]
                armed == b"\xf5",
                by_bytes[auto],  # type: ignore[arg-type]
                at,
                position,
                area,
            )
        )
        pos = found.end()
    tail = _TAIL.match(payload, pos)
    if tail is None:
        return None
    side_head, side = tail.groups()
    if len(side) != side_head[0] - 0x60:
        return None
    return Message(
        side.decode(),
        sid_bytes[1:],
        _value(seq_bytes),
        t,
        Telemetry(tuple(records)),
    )


# -- Bulk ---------------------------------------------------------------------------------

_BULK_ENVELOPE: Final = ("t", "v", "seq", "sid", "body", "side", "type")
_BULK_BODY: Final = tuple(
    sorted(
        ["ids", *(column.key for column in BULK_COLUMNS)],
        key=lambda key: (len(key), key.encode()),
    )
)
"""The body's keys in deterministic order: shorter first, then bytewise."""
_BULK_FIELD: Final = {
    column.key: "radius" if column.key == "r" else column.key for column in BULK_COLUMNS
}
_BULK_BODY_KEY: Final = _key("body") + _SMALL[0xA0 | len(_BULK_BODY)]
_BULK_KEYS: Final = {key: _key(key) for key in _BULK_BODY}
_BULK_TYPE: Final = _key("type") + _text(MessageType.BULK.value.encode())
_IDS: Final = IdListCodec()
_BULK_DEPTH: Final = 3
"""Map, body map, ids array: any deeper nesting is not a Bulk payload."""


def _bytes_head(n: int) -> bytes:
    if n < 24:
        return _SMALL[0x40 | n]
    return _B.pack(0x58, n) if n < 0x100 else _H.pack(0x59, n)


def _bulk_valid(message: Message) -> bool:
    """Whether a message with a Bulk body is valid as it stands (else the generic path
    says what is wrong with it)."""
    body = message.body
    if (
        type(body) is not Bulk
        or not _envelope_valid(message)
        or type(body.ids) is not tuple
        or any(type(data) is not bytes for data in body.columns())
    ):
        return False
    try:
        _IDS.encode(body.ids, "body.ids")
        body.check("body")
    except MessageError:
        return False
    return True


def _bulk_bytes(message: Message) -> bytes:
    """A valid Bulk message's payload, written out (what the generic encoder writes)."""
    body = message.body
    assert type(body) is Bulk
    sid = message.session_id
    parts = [
        _T_KEY,
        _int(message.sent_at),
        _V,
        _SEQ_KEY,
        _int(message.seq),
        _SID_KEY,
        _SMALL[0x40 | len(sid)],
        sid,
        _BULK_BODY_KEY,
    ]
    for key in _BULK_BODY:
        parts.append(_BULK_KEYS[key])
        if key == "ids":
            # cbor2 writes an array of text in its one deterministic form; it does so in C.
            parts.append(cbor2.dumps(body.ids))
        else:
            data: bytes = getattr(body, _BULK_FIELD[key])
            parts += (_bytes_head(len(data)), data)
    parts += (_SIDE_KEY, _text(message.side.encode()), _BULK_TYPE)
    return b"".join(parts)


def encode_bulk(message: Message) -> bytes | None:
    """A Bulk message's payload, or None if anything in it is not valid as it stands."""
    return _bulk_bytes(message) if _bulk_valid(message) else None


def decode_bulk(payload: bytes) -> Message | None:
    """The Bulk message a payload holds, if it is valid and in its deterministic encoding;
    None for anything else (another message type, or anything this does not take).

    cbor2 reads it (in C); the layout is then checked by writing the message out again
    and comparing bytes, which is what the generic path's determinism check does."""
    if not (payload.startswith(_T_KEY) and payload.endswith(_BULK_TYPE)):
        return None
    try:
        obj = cbor2.loads(
            payload, allow_indefinite=False, allow_duplicate_keys=False, max_depth=_BULK_DEPTH
        )
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError):
        return None
    if type(obj) is not dict or tuple(obj) != _BULK_ENVELOPE:
        return None
    body, version = obj["body"], obj["v"]
    if type(body) is not dict or tuple(body) != _BULK_BODY or type(body["ids"]) is not list:
        return None
    if type(version) is not int or version != PROTOCOL_VERSION:
        return None
    message = Message(
        obj["side"],
        obj["sid"],
        obj["seq"],
        obj["t"],
        Bulk(
            tuple(body["ids"]),
            **{field: body[key] for key, field in _BULK_FIELD.items()},
        ),
    )
    if not _bulk_valid(message) or _bulk_bytes(message) != payload:
        return None
    return message
