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
    # 1970-01-01T00:00:00+01:00 is before 1970 in UTC: a time no record can carry.
    return seconds * 1_000_000 + micros if seconds >= 0 else None


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

_WS = re.compile(rb"[ \t\r\n]*")
"""What may come between events, uncounted (a NUL byte is not among it: it is junk)."""
_JUNK_END = re.compile(rb"<(?:event[ \t\r\n/>]|[?!])|\xbf")
"""Where bytes outside any event stop: where an event may start (`<event`, `<?xml`, a
comment), or TAK Protocol's magic byte."""
_ROOT = re.compile(rb"<event[ \t\r\n/>]")
_TAG = re.compile(rb"""(?:[^<>"']++|"[^"<]*+"|'[^'<]*+')*+""")
"""The inside of a start tag, quoted values whole: it stops at `>`, at a `<` (never in a
tag) or at a quote not closed yet. Possessive, so it never backtracks."""
_QUOTE_END = {ord('"'): re.compile(rb'["<]'), ord("'"): re.compile(rb"['<]")}
_BODY = re.compile(rb"</event[ \t\r\n]*>|<!--|<!\[CDATA\[|<\?")
"""In an event: its end tag, or what may hold an end tag that is not one."""
_DOCTYPE = re.compile(rb"[\[>]")
_TOKENS = (b"<!--", b"<![CDATA[", b"<?")
"""What may hold `</event>` in an event without ending it."""
_LT, _GT, _SLASH = ord("<"), ord(">"), ord("/")
_BLANKS = frozenset(b" \t\r\n")
_OUTSIDE = Skipped("malformed", "bytes outside any event")
_TEXT = Skipped("malformed", "text where an event's root element should be")
_BROKEN_TAG = Skipped("malformed", "an <event> start tag cut by a `<`")
_NOT_EVENT = Skipped("not-an-event", "an element that is not <event>, outside any event")
_NO_LENGTH = Skipped("bad-header", "a TAK Protocol frame of no length")
_LONG_LENGTH = Skipped("bad-header", "a TAK Protocol frame length over 10 bytes")
_PROLOG, _UNTIL, _DOCTYPE_DECL, _START_TAG, _BODY_TEXT = 1, 2, 3, 4, 5
"""Where the scan of an XML event stands (0: between events)."""


class StreamSplitter:
    """Cuts a TCP stream into single events: XML events back to back, TAK Protocol stream
    frames, or both mixed. Holds at most `max_event_bytes` plus one fed chunk, and scans
    each byte a bounded number of times however the stream is cut (no copy per item).

    An XML event is `<?xml ...?>` (optional), comments, and one `<event>` element: the
    scan follows its start tag (quoted values whole, `<event .../>` ends there), then
    looks for `</event>` outside comments, CDATA and processing instructions. Any other
    element outside an event is `not-an-event`, other bytes there (a NUL included)
    `malformed`, each up to where an event may start (`<event`, `<?`, `<!`, 0xbf): one item
    however many reads it spans. Whitespace between events is dropped.

    With `max_run`, the splitter gives up (`gave_up`, nothing more is read) once that many
    items in a row were skipped, or more than `max_event_bytes` of them outside any event
    came, with no event between: the sender is not speaking CoT.
    """

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES, max_run: int | None = None) -> None:
        self.max = max_event_bytes
        self.max_run = max_run
        self.run = 0
        """Items skipped in a row, since the last event."""
        self.junk = 0
        """Bytes outside any event since the last event."""
        self.gave_up = False
        self._buf = bytearray()
        self._skip = 0
        """Bytes of an oversized protobuf frame still to drop."""
        self._stage = 0
        """Where the XML event at the start of the buffer stands (0: none under way)."""
        self._pos = 0
        """How far that event was scanned, from its start: never scanned again."""
        self._quote = 0
        """The quote its start tag is inside, if any."""
        self._until = b""
        self._then = 0
        """In `_UNTIL`: the end of the comment, CDATA or instruction, and what comes next."""
        self._dropping = False
        """The event went over `max_event_bytes` (counted): scanned to its end, not kept."""
        self._in_junk = False
        """The last read ended in bytes outside any event (counted): more are dropped."""

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes | Skipped]:
        """The events that `data` completes, each as its raw bytes, or why it was dropped."""
        out: list[bytes | Skipped] = []
        if self.gave_up:
            return out
        buf = self._buf
        buf += data
        n = len(buf)
        i = 0  # where the item under way starts; everything before it is done with
        while i < n and not self.gave_up:
            if self._skip:
                taken = min(self._skip, n - i)
                i += taken
                self._skip -= taken
                continue
            if self._stage:
                i, done = self._xml(buf, i, out)
                if not done:
                    break
                continue
            if self._in_junk:
                i = self._junk_to(buf, i)
                if self._in_junk:
                    break  # to the end of what came
                continue
            first = buf[i]
            if first in _BLANKS:
                i = _blank_end(buf, i)
            elif first == MAGIC:
                end = self._frame(buf, i, out)
                if end is None:
                    break
                i = end
            elif first == _LT:
                self._stage, self._pos, self._dropping = _PROLOG, 0, False
            else:
                self._skipped(out, _OUTSIDE)
                i = self._junk_to(buf, i + 1, 1)
        if self.gave_up:
            buf.clear()
        else:
            del buf[:i]
        return out

    def _junk_to(self, buf: bytearray, i: int, counted: int = 0) -> int:
        """Where the bytes outside any event that go on at `i` end: where an event may
        start, or at the end of what came (then they go on in the next read)."""
        found = _JUNK_END.search(buf, i)
        if found is not None:
            end = found.start()
        else:
            end = len(buf)
            lt = buf.rfind(b"<", max(i, end - len(b"<event")))
            if lt >= 0 and b"<event".startswith(buf[lt:end]):
                end = lt  # `<eve` at the end: kept until what follows says
        self._in_junk = found is None
        self.junk += end - i + counted
        if self.max_run is not None and self.junk > self.max:
            self.gave_up = True
        return end

    def _skipped(self, out: list[bytes | Skipped], skipped: Skipped) -> None:
        out.append(skipped)
        self.run += 1
        if self.max_run is not None and self.run >= self.max_run:
            self.gave_up = True

    def _event(self, out: list[bytes | Skipped], data: bytes) -> None:
        out.append(data)
        self.run = self.junk = 0

    def _frame(self, buf: bytearray, i: int, out: list[bytes | Skipped]) -> int | None:
        """Where the TAK Protocol frame at `i` ends (taken or skipped), or None if it has
        not all come yet."""
        if i + 1 < len(buf) and buf[i + 1] < 0x80:
            length, start = buf[i + 1], i + 2  # a one-byte length: most frames, all junk
        else:
            found = _varint(buf, i + 1)
            if found is None:
                return None
            length, start = found
        if length <= 0:
            self._skipped(out, _NO_LENGTH if length == 0 else _LONG_LENGTH)
            return start
        end = start + length
        if end - i > self.max:
            self._skipped(out, Skipped("oversized", f"a {length}-byte frame, over {self.max}"))
            taken = min(len(buf), end)
            self._skip = end - taken
            return taken
        if len(buf) < end:
            return None
        self._event(out, bytes(buf[i:end]))
        return end

    def _xml(self, buf: bytearray, i: int, out: list[bytes | Skipped]) -> tuple[int, bool]:
        """Scan on the XML event that starts at `i`: (where the next item starts, True)
        once it is done with, or (where it now starts, False) if it needs more bytes."""
        n = len(buf)
        p = i + self._pos
        stage = self._stage
        while True:
            if stage == _PROLOG:
                p = _blank_end(buf, p)
                if p >= n:
                    break
                if buf[p] != _LT:
                    return self._to_junk(out, buf, i, p, _TEXT)
                if _ROOT.match(buf, p):
                    p += len(b"<event")
                    stage, self._quote = _START_TAG, 0
                elif buf.startswith(b"<?", p):
                    p, stage, self._until, self._then = p + 2, _UNTIL, b"?>", _PROLOG
                elif buf.startswith(b"<!--", p):
                    p, stage, self._until, self._then = p + 4, _UNTIL, b"-->", _PROLOG
                elif buf.startswith(b"<!", p):
                    if n - p < 4 and b"<!--".startswith(buf[p:n]):
                        break  # a comment or a declaration: not yet known
                    p, stage = p + 2, _DOCTYPE_DECL
                elif n - p <= len(b"<event") and b"<event".startswith(buf[p:n]):
                    break  # `<ev` at the end: not yet known
                else:
                    return self._to_junk(out, buf, i, p + 1, _NOT_EVENT)
            elif stage == _UNTIL:
                end = buf.find(self._until, p)
                if end < 0:
                    p = max(p, n - len(self._until) + 1)
                    break
                p, stage = end + len(self._until), self._then
            elif stage == _DOCTYPE_DECL:
                found = _DOCTYPE.search(buf, p)
                if found is None:
                    p = n
                    break
                p = found.end()
                if buf[found.start()] == _GT:
                    stage = _PROLOG
                else:  # an internal subset: to its `]>` (the parser refuses it, whole)
                    self._until, self._then, stage = b"]>", _PROLOG, _UNTIL
            elif stage == _START_TAG:
                if self._quote:
                    found = _QUOTE_END[self._quote].search(buf, p)
                    if found is None:
                        p = n
                        break
                    if buf[found.start()] == _LT:
                        return self._cut(out, i, found.start(), _BROKEN_TAG)
                    p, self._quote = found.end(), 0
                found = _TAG.match(buf, p)
                p = found.end() if found else p
                if p >= n:
                    break
                c = buf[p]
                if c == _LT:
                    return self._cut(out, i, p, _BROKEN_TAG)
                if c != _GT:
                    self._quote = c  # a quoted value that has not ended yet
                    p += 1
                    continue
                p += 1
                if buf[p - 2] == _SLASH:  # <event .../>: the whole event
                    return self._done(out, buf, i, p)
                stage = _BODY_TEXT
            else:
                found = _BODY.search(buf, p)
                if found is None:
                    p = _resume(buf, p)
                    break
                token = found.group()
                p = found.end()
                if token.startswith(b"</"):
                    return self._done(out, buf, i, p)
                self._until = (
                    b"-->" if token == b"<!--" else b"]]>" if token == b"<![CDATA[" else b"?>"
                )
                self._then, stage = _BODY_TEXT, _UNTIL
        # Needs more bytes: what is scanned is not scanned again.
        self._stage, self._pos = stage, p - i
        if n - i > self.max:
            if not self._dropping:
                self._skipped(out, Skipped("oversized", f"an XML event over {self.max} bytes"))
                self._dropping = True
            self._pos = 0
            return p, False  # what is scanned is dropped; the scan carries on to its end
        return i, False

    def _to_junk(
        self, out: list[bytes | Skipped], buf: bytearray, i: int, p: int, skipped: Skipped
    ) -> tuple[int, bool]:
        """What starts at `i` is not an event: skipped (unless counted already) with what
        follows up to where an event may start."""
        self._stage = 0
        if not self._dropping:
            self._skipped(out, skipped)
        return self._junk_to(buf, p, p - i), True

    def _cut(
        self, out: list[bytes | Skipped], i: int, end: int, skipped: Skipped
    ) -> tuple[int, bool]:
        """The bytes from `i` to `end` are not an event: skipped (or already counted)."""
        self._stage = 0
        if not self._dropping:
            self._skipped(out, skipped)
        return end, True

    def _done(
        self, out: list[bytes | Skipped], buf: bytearray, i: int, end: int
    ) -> tuple[int, bool]:
        self._stage = 0
        if self._dropping:
            pass  # counted as oversized when it went over
        elif end - i > self.max:
            self._skipped(out, Skipped("oversized", f"a {end - i}-byte XML event, over {self.max}"))
        else:
            self._event(out, bytes(buf[i:end]))
        return end, True


def _blank_end(buf: bytearray, i: int) -> int:
    found = _WS.match(buf, i)
    return found.end() if found else i


def _resume(buf: bytearray, p: int) -> int:
    """Where to search an event's body again once more bytes come: at a last `<` that may
    begin `</event>`, a comment, CDATA or an instruction, else at the end."""
    lt = buf.rfind(b"<", p)
    if lt < 0 or len(buf) - lt > 24:
        return len(buf)
    tail = bytes(buf[lt:])
    if any(t.startswith(tail) for t in _TOKENS) or (
        b"</event".startswith(tail[:7]) and not tail[7:].strip(b" \t\r\n")
    ):
        return lt
    return len(buf)


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
