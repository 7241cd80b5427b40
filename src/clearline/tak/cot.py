"""Cursor-on-Target events in and out, with no I/O: XML, TAK Protocol v1 protobuf, streams.

Everything here meets bytes from whoever can reach a TAK port, so nothing raises on
bad input: a parse returns a `CotEvent` or a `Skipped` with one of `REASONS`, and
`Tally` counts those by reason. Memory is bounded by `max_event_bytes` per event
(checked before any parser runs) and, in `StreamSplitter`, per connection.

XML goes through expat with document type declarations refused outright: CoT has no
use for a DTD, and refusing it is what rules out entity expansion (billion laughs,
external entities) whatever the expat version. Element count and depth are capped
too, which neither expat nor defusedxml does.
"""

from __future__ import annotations

import calendar
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from xml.parsers import expat
from xml.sax.saxutils import quoteattr

from google.protobuf.message import DecodeError
from takproto.proto import TakMessage

MAX_EVENT_BYTES: Final = 64 * 1024
"""Default cap on one event, XML or protobuf: ATAK's own events are a few KiB."""
MAX_ELEMENTS: Final = 512
MAX_DEPTH: Final = 16
MAX_UID_CHARS: Final = 256
MAX_CALLSIGN_CHARS: Final = 64
MAX_CLEARLINE_ATTRIBUTES: Final = 32
UNKNOWN_ERROR: Final = 9_999_999.0
"""CoT's value for an unknown circular or linear error (and height), in metres."""

MESH_HEADER: Final = b"\xbf\x01\xbf"
"""TAK Protocol v1 as sent over UDP (mesh): magic, version 1, magic, then the protobuf."""
MAGIC: Final = 0xBF

REASONS: Final = (
    "oversized",
    "malformed",
    "dtd-refused",
    "too-complex",
    "not-an-event",
    "bad-header",
    "bad-uid",
    "bad-type",
    "bad-time",
    "bad-point",
    "stale",
    "unmapped",
    "own-output",
    "queue-full",
    "rate-limited",
)
"""Every reason an event is skipped for; `Tally` counts nothing else."""

_TYPE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_HOW = re.compile(r"[A-Za-z0-9_.-]{0,32}")
_TIME = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)?",
    re.ASCII,
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class CotEvent:
    """One CoT event, as much of it as clearline reads. Times in microseconds since 1970."""

    uid: str
    type: str
    how: str
    time_us: int
    start_us: int
    stale_us: int
    lat: float
    lon: float
    hae: float = UNKNOWN_ERROR
    ce: float = UNKNOWN_ERROR
    le: float = UNKNOWN_ERROR
    course: float | None = None
    speed: float | None = None
    """Metres per second, as CoT's <track speed> has it."""
    callsign: str | None = None
    clearline: tuple[tuple[str, str], ...] = ()
    """The attributes of `<detail><clearline>` (what a node writes: docs/tak.md), as sent:
    names and values unchecked, at most MAX_CLEARLINE_ATTRIBUTES of them."""
    link: str | None = None
    """The uid of `<detail><link>` (the first), if it is one a uid may be: what a delete
    (`t-x-d-d`) removes, or the track a clarification is about."""


@dataclass(frozen=True, slots=True)
class Skipped:
    reason: str
    detail: str = ""


Parsed = CotEvent | Skipped


class Tally:
    """Skipped events by reason: one counter per entry of REASONS, never more keys."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def add(self, reason: str, n: int = 1) -> None:
        self._counts[reason if reason in REASONS else "malformed"] += n

    def __getitem__(self, reason: str) -> int:
        return self._counts[reason]

    def as_dict(self) -> dict[str, int]:
        return {r: self._counts[r] for r in REASONS if self._counts[r]}

    @property
    def total(self) -> int:
        return sum(self._counts.values())


# -- times ---------------------------------------------------------------------------------


def parse_time(text: str) -> int | None:
    """An xs:dateTime as CoT writes it (`2026-05-01T12:00:00.5Z`) in microseconds, or None."""
    m = _TIME.fullmatch(text.strip())
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    if not (1970 <= year <= 9999 and 1 <= month <= 12 and hour < 24 and minute < 60):
        return None
    if not (1 <= day <= calendar.monthrange(year, month)[1] and second <= 60):
        return None
    fraction = m.group(7) or ""
    micros = int((fraction + "000000")[:6])
    offset = 0
    zone = m.group(8)
    if zone and zone != "Z":
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            return None
        offset = (hours * 60 + minutes) * 60 * (1 if zone[0] == "+" else -1)
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)) - offset
    return seconds * 1_000_000 + micros


def format_time(us: int) -> str:
    """Microseconds since 1970 as CoT's UTC xs:dateTime, to the millisecond."""
    seconds, micros = divmod(us, 1_000_000)
    days, rest = divmod(seconds, 86_400)
    year, month, day = _civil_from_days(days)
    hour, rest = divmod(rest, 3600)
    minute, second = divmod(rest, 60)
    return (
        f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}."
        f"{micros // 1000:03d}Z"
    )


def _civil_from_days(days: int) -> tuple[int, int, int]:
    # Howard Hinnant's days-to-civil: exact for the proleptic Gregorian calendar, no clock.
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (y + 1 if m <= 2 else y), m, d


# -- building an event from either encoding ---------------------------------------------------


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _build(
    uid: Any,
    type_: Any,
    how: Any,
    times: tuple[int | None, int | None, int | None],
    point: tuple[Any, Any, Any, Any, Any],
    course: Any = None,
    speed: Any = None,
    callsign: Any = None,
    clearline: Mapping[str, str] | None = None,
    link: Any = None,
) -> Parsed:
    if not _is_uid(uid):
        return Skipped("bad-uid", "missing, too long or with control characters")
    if not isinstance(type_, str) or not _TYPE.fullmatch(type_):
        return Skipped("bad-type", "expected a CoT type such as a-f-A-M-F-Q")
    how = how if isinstance(how, str) and _HOW.fullmatch(how) else ""
    time_us, start_us, stale_us = times
    if time_us is None or stale_us is None:
        return Skipped("bad-time", "time and stale are required xs:dateTime values")
    if start_us is None:
        start_us = time_us
    lat, lon, hae, ce, le = (_number(v) for v in point)
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return Skipped("bad-point", "point lat/lon missing or out of range")
    course_deg = _number(course)
    if course_deg is not None and not 0 <= course_deg <= 360:
        course_deg = None
    speed_mps = _number(speed)
    if speed_mps is not None and not 0 <= speed_mps <= 100_000:
        speed_mps = None
    if not isinstance(callsign, str) or not 0 < len(callsign) <= MAX_CALLSIGN_CHARS:
        callsign = None
    elif _CONTROL.search(callsign):
        callsign = None  # a label for a map: a line break in it is someone's trick
    return CotEvent(
        uid,
        type_,
        how,
        time_us,
        start_us,
        stale_us,
        lat,
        lon,
        UNKNOWN_ERROR if hae is None or abs(hae) > UNKNOWN_ERROR else hae,
        UNKNOWN_ERROR if ce is None or not 0 <= ce <= UNKNOWN_ERROR else ce,
        UNKNOWN_ERROR if le is None or not 0 <= le <= UNKNOWN_ERROR else le,
        course_deg,
        speed_mps,
        callsign,
        tuple(list((clearline or {}).items())[:MAX_CLEARLINE_ATTRIBUTES]),
        link if _is_uid(link) else None,
    )


def _is_uid(uid: Any) -> bool:
    return isinstance(uid, str) and 0 < len(uid) <= MAX_UID_CHARS and not _CONTROL.search(uid)


# -- XML ---------------------------------------------------------------------------------------


class _RefusedError(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


_WANTED = {
    ("event",): "event",
    ("event", "point"): "point",
    ("event", "detail", "track"): "track",
    ("event", "detail", "contact"): "contact",
    ("event", "detail", "clearline"): "clearline",
    ("event", "detail", "link"): "link",
}


def _xml_parts(data: bytes) -> dict[str, dict[str, str]] | Skipped:
    """The attributes of the elements clearline reads, by role; expat with no DTD at all."""
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parts: dict[str, dict[str, str]] = {}
    stack: list[str] = []
    elements = 0

    def refuse_dtd(*_: object) -> None:
        raise _RefusedError("dtd-refused", "document type declarations are not accepted")

    def refuse_external(*_: object) -> int:
        raise _RefusedError("dtd-refused", "external entities are not accepted")

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal elements
        elements += 1
        if elements > MAX_ELEMENTS or len(stack) >= MAX_DEPTH:
            raise _RefusedError("too-complex", f"over {MAX_ELEMENTS} elements or {MAX_DEPTH} deep")
        if not stack and name != "event":
            raise _RefusedError("not-an-event", "the root element is not <event>")
        stack.append(name)
        role = _WANTED.get(tuple(stack))
        if role is not None and role not in parts:
            parts[role] = attrs

    def end(_name: str) -> None:
        stack.pop()

    parser.StartDoctypeDeclHandler = refuse_dtd
    parser.EntityDeclHandler = refuse_dtd
    parser.ExternalEntityRefHandler = refuse_external
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(data, True)
    except _RefusedError as exc:
        return Skipped(exc.reason, str(exc))
    except (expat.ExpatError, ValueError, LookupError, UnicodeError) as exc:
        return Skipped("malformed", f"not well-formed XML: {exc}"[:200])
    return parts


def parse_xml(data: bytes, max_event_bytes: int = MAX_EVENT_BYTES) -> Parsed:
    """One CoT event in XML."""
    if len(data) > max_event_bytes:
        return Skipped("oversized", f"{len(data)} bytes, over {max_event_bytes}")
    parts = _xml_parts(data)
    if isinstance(parts, Skipped):
        return parts
    event = parts.get("event")
    if event is None:
        return Skipped("not-an-event", "no <event> element")
    point = parts.get("point")
    if point is None:
        return Skipped("bad-point", "no <point> element")
    track = parts.get("track", {})
    times = tuple(parse_time(event.get(k, "")) for k in ("time", "start", "stale"))
    return _build(
        event.get("uid"),
        event.get("type"),
        event.get("how"),
        (times[0], times[1], times[2]),
        (point.get("lat"), point.get("lon"), point.get("hae"), point.get("ce"), point.get("le")),
        track.get("course"),
        track.get("speed"),
        parts.get("contact", {}).get("callsign"),
        parts.get("clearline"),
        parts.get("link", {}).get("uid"),
    )


# -- TAK Protocol v1 ----------------------------------------------------------------------------


def _varint(data: bytes | bytearray, start: int) -> tuple[int, int] | None:
    """(value, end) of the varint at `start`; None if incomplete; (-1, end) if over 10 bytes."""
    value = 0
    for i in range(10):
        if start + i >= len(data):
            return None
        byte = data[start + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, start + i + 1
    return -1, start + 10


def _ms(value: int) -> int | None:
    # Protobuf times are milliseconds; 0 is proto3's "absent".
    return value * 1000 if 0 < value < 253_402_300_800_000 else None


def parse_protobuf(payload: bytes) -> Parsed:
    """A TakMessage (the bytes after TAK Protocol's header)."""
    message = TakMessage()
    try:
        message.ParseFromString(payload)
    except (DecodeError, ValueError, RecursionError) as exc:
        return Skipped("malformed", f"not a TakMessage: {exc}"[:200])
    if not message.HasField("cotEvent"):
        return Skipped("not-an-event", "the TakMessage carries no cotEvent")
    e = message.cotEvent
    detail = e.detail
    extra = _xml_detail(detail.xmlDetail)
    return _build(
        e.uid,
        e.type,
        e.how,
        (_ms(e.sendTime), _ms(e.startTime), _ms(e.staleTime)),
        (e.lat, e.lon, e.hae, e.ce, e.le),
        detail.track.course if detail.HasField("track") else None,
        detail.track.speed if detail.HasField("track") else None,
        detail.contact.callsign if detail.HasField("contact") else None,
        extra.get("clearline"),
        extra.get("link", {}).get("uid"),
    )


def _xml_detail(text: str) -> dict[str, dict[str, str]]:
    """The elements clearline reads from a TakMessage's `xmlDetail` (the detail elements
    without a protobuf field of their own), through the same parser as an XML event."""
    if not text:
        return {}
    parts = _xml_parts(b"<event><detail>" + text.encode("utf-8", "replace") + b"</detail></event>")
    return {} if isinstance(parts, Skipped) else parts


def parse_tak(data: bytes, max_event_bytes: int = MAX_EVENT_BYTES) -> Parsed:
    """One TAK Protocol v1 message: mesh (0xbf 0x01 0xbf, protobuf) or stream (0xbf, varint
    length, protobuf)."""
    if len(data) > max_event_bytes:
        return Skipped("oversized", f"{len(data)} bytes, over {max_event_bytes}")
    if data[:3] == MESH_HEADER:
        return parse_protobuf(bytes(data[3:]))
    if data[:1] != bytes([MAGIC]):
        return Skipped("bad-header", "TAK Protocol starts with 0xbf")
    if data[2:3] == bytes([MAGIC]) and data[1:2] != b"\x01":
        return Skipped("bad-header", f"TAK Protocol version {data[1]} is not supported")
    found = _varint(data, 1)
    if found is None or found[0] < 0 or found[1] + found[0] != len(data):
        return Skipped("bad-header", "the stream length prefix does not match the message")
    return parse_protobuf(bytes(data[found[1] :]))


def parse(data: bytes, max_event_bytes: int = MAX_EVENT_BYTES) -> Parsed:
    """One event in whichever encoding it is: TAK Protocol if it starts with 0xbf, else XML."""
    if data[:1] == bytes([MAGIC]):
        return parse_tak(data, max_event_bytes)
    return parse_xml(data, max_event_bytes)


# -- streams ----------------------------------------------------------------------------------

_END = b"</event>"
_BLANK = b" \t\r\n\x00"


class StreamSplitter:
    """Cuts a TCP stream into single events: XML events back to back, TAK Protocol stream
    frames, or both mixed. Holds at most `max_event_bytes` plus one fed chunk."""

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self.max = max_event_bytes
        self._buf = bytearray()
        self._skip = 0
        """Bytes of an oversized protobuf frame still to drop."""
        self._resync = False
        """Dropping an oversized XML event up to its end tag."""
        self._scanned = 0
        """How far the buffer was searched for an end tag already."""

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes | Skipped]:
        """The events that `data` completes, each as its raw bytes, or why it was dropped."""
        buf = self._buf
        buf += data
        out: list[bytes | Skipped] = []
        while buf:
            if self._skip:
                n = min(self._skip, len(buf))
                del buf[:n]
                self._skip -= n
                continue
            if self._resync:
                end = buf.find(_END)
                if end < 0:
                    del buf[: max(0, len(buf) - len(_END) + 1)]
                    break
                del buf[: end + len(_END)]
                self._resync = False
                continue
            blank = len(buf) - len(buf.lstrip(_BLANK))
            if blank:
                del buf[:blank]
                self._scanned = 0
                continue
            first = buf[0]
            if first == MAGIC:
                if not self._frame(buf, out):
                    break
            elif first == ord("<"):
                if not self._xml(buf, out):
                    break
            else:
                cut = [i for i in (buf.find(b"<"), buf.find(bytes([MAGIC]))) if i > 0]
                n = min(cut) if cut else len(buf)
                out.append(Skipped("malformed", f"{n} bytes outside any event"))
                del buf[:n]
                self._scanned = 0
        return out

    def _frame(self, buf: bytearray, out: list[bytes | Skipped]) -> bool:
        found = _varint(buf, 1)
        if found is None:
            return False
        length, start = found
        if length <= 0:
            out.append(Skipped("bad-header", "a TAK Protocol frame of no length"))
            del buf[:start]
            return True
        if start + length > self.max:
            out.append(Skipped("oversized", f"a {length}-byte frame, over {self.max}"))
            taken = min(len(buf), start + length)
            del buf[:taken]
            self._skip = start + length - taken
            return True
        if len(buf) < start + length:
            return False
        out.append(bytes(buf[: start + length]))
        del buf[: start + length]
        return True

    def _xml(self, buf: bytearray, out: list[bytes | Skipped]) -> bool:
        end = buf.find(_END, max(0, self._scanned - len(_END)))
        if end < 0:
            self._scanned = len(buf)
            if len(buf) > self.max:
                out.append(Skipped("oversized", f"an XML event over {self.max} bytes"))
                del buf[: len(buf) - len(_END) + 1]
                self._resync = True
                self._scanned = 0
                return True
            return False
        end += len(_END)
        self._scanned = 0
        if end > self.max:
            out.append(Skipped("oversized", f"a {end}-byte XML event, over {self.max}"))
        else:
            out.append(bytes(buf[:end]))
        del buf[:end]
        return True


# -- writing ----------------------------------------------------------------------------------


def _attrs(values: Mapping[str, object]) -> str:
    return "".join(
        f" {k}={quoteattr(_text(v), {chr(10): '&#10;', chr(13): '&#13;', chr(9): '&#9;'})}"
        for k, v in values.items()
        if v is not None
    )


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.7f}".rstrip("0").rstrip(".")
    return _CONTROL.sub(" ", str(value))


def to_xml(
    uid: str,
    type_: str,
    now_us: int,
    stale_us: int,
    point: tuple[float, float, float, float, float],
    detail: Iterable[tuple[str, Mapping[str, object]]] = (),
    how: str = "m-g",
) -> bytes:
    """A CoT event in XML: `detail` is (element name, attributes) pairs, written in order."""
    lat, lon, hae, ce, le = point
    head = _attrs(
        {
            "version": "2.0",
            "uid": uid,
            "type": type_,
            "how": how,
            "time": format_time(now_us),
            "start": format_time(now_us),
            "stale": format_time(stale_us),
        }
    )
    where = _attrs({"lat": lat, "lon": lon, "hae": hae, "ce": ce, "le": le})
    inner = "".join(f"<{name}{_attrs(attrs)}/>" for name, attrs in detail)
    text = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<event{head}><point{where}/><detail>{inner}</detail></event>\n"
    )
    return text.encode()


def point_of(event: CotEvent) -> tuple[float, float, float, float, float]:
    return event.lat, event.lon, event.hae, event.ce, event.le


NO_POINT: Final = (0.0, 0.0, UNKNOWN_ERROR, UNKNOWN_ERROR, UNKNOWN_ERROR)
"""CoT's convention for an event about something with no known place."""
