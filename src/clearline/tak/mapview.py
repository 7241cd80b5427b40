"""What a TAK map shows of the CoT a TAK server sends it, with no I/O: the picture behind
`clearline tak map` (clearline.tak.mapserver serves it; docs/tak.md).

`Picture` keeps the latest event of each uid until its `stale` time and turns what it
keeps into markers: uid, callsign, affiliation from the CoT type (friendly, hostile,
neutral, unknown, as MIL-STD-2525 frames them), position and course, and, on a track a
clearline node asked about, the hotline's state read from the `<clearline>` element of
the node's clarification event (`TRACK.clearline`). It also keeps the clearline events
(clarifications, gate holds, the link) in the order they came, and fits an
equirectangular view, with its graticule and scale bar, to the markers.

Everything here is fed by whoever can reach the TAK server, so nothing raises on what
comes in (`cot.parse` returns an event or why not) and memory is bounded: at most
`max_markers` uids are kept (the least recently updated is dropped first), at most
`max_log` clearline events are listed, and only the `<clearline>` attributes named in
CLEARLINE_ATTRIBUTES are kept, each cut to MAX_VALUE_CHARS.
"""

from __future__ import annotations

import math
import re
from collections import Counter, OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from clearline.tak import cot

DEFAULT_MAX_MARKERS: Final = 2000
DEFAULT_MAX_LOG: Final = 200
MAX_VALUE_CHARS: Final = 80
WIDTH: Final = 1000
"""The map's drawing size in the page's units (the page scales it to fit)."""
HEIGHT: Final = 680
MARGIN: Final = 0.25
"""Space left around the markers, as a share of their spread on each side."""
MIN_SPAN_KM: Final = 40.0
"""The smallest area shown across: one marker alone is shown with this much around it."""
KM_PER_DEGREE: Final = 111.32
"""Along the equator (and along a meridian, near enough for a scale bar)."""

AFFILIATIONS: Final = {"f": "friendly", "h": "hostile", "n": "neutral", "u": "unknown"}
_AFFILIATION_OF: Final = {
    "f": "f",  # friend
    "a": "f",  # assumed friend
    "h": "h",  # hostile
    "s": "h",  # suspect
    "j": "h",  # joker
    "k": "h",  # faker
    "n": "n",  # neutral
    "u": "u",  # unknown
    "p": "u",  # pending
    "o": "u",  # none specified
}
DIMENSIONS: Final = {
    "A": "air",
    "G": "ground",
    "S": "sea surface",
    "U": "subsurface",
    "P": "space",
    "F": "special forces",
}
CLEARLINE_ATTRIBUTES: Final = frozenset(
    {
        # a clarification
        "asker",
        "track",
        "state",
        "query_seq",
        "elapsed_ms",
        "reason",
        "claim",
        "side",
        "mission",
        "intent",
        "armed",
        "asset",
        # a gate hold
        "hold",
        "action",
        "target",
        "until_us",
        # the link, and a node's presence
        "link",
        "peer",
        "node",
    }
)
NOT_ON_THE_MAP: Final = ("t-", "b-t-")
"""Types of events that are not things on the map: tasking and control (`t-`: deletes,
pings) and text (`b-t-`: GeoChat, as FreeTAKServer greets a client that joins)."""
DELETE: Final = "t-x-d-d"
"""A TAK server's (or client's) delete: the uid in its `<link>` leaves the map. FreeTAKServer
sends one for a client that disconnects."""
CLAIMS: Final = {"ours": "ours", "not_ours": "not ours", "decline": "declined to say"}

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def affiliation(type_: str) -> str | None:
    """`f`, `h`, `n` or `u` from an atom's CoT type (its second field: `a-f-A` is friendly
    air, `a-h-A` hostile air). An assumed friend counts as friendly; suspect, joker and
    faker as hostile; pending and none as unknown, as MIL-STD-2525 frames them. None for a
    type that is not an atom (`b-...`, `t-...`): not a unit."""
    parts = type_.split("-")
    if len(parts) < 2 or parts[0] != "a":
        return None
    return _AFFILIATION_OF.get(parts[1].lower(), "u")


def dimension(type_: str) -> str | None:
    """The battle dimension of an atom's type (its third field: `a-h-A` is air), or None."""
    parts = type_.split("-")
    if len(parts) < 3 or parts[0] != "a":
        return None
    return DIMENSIONS.get(parts[2].upper())


def _clean(value: str) -> str:
    return _CONTROL.sub("", value)[:MAX_VALUE_CHARS]


def clearline_detail(event: cot.CotEvent) -> dict[str, str]:
    """The `<clearline>` attributes a map shows, cleaned: known names only, no control
    characters, each value at most MAX_VALUE_CHARS."""
    return {k: _clean(v) for k, v in event.clearline if k in CLEARLINE_ATTRIBUTES}


def kind_of(detail: Mapping[str, str]) -> str | None:
    """What a clearline event is about: `clarification`, `hold`, `link`, `node`; None if
    the event carries no `<clearline>` element (or none a map knows)."""
    if "track" in detail and "state" in detail:
        return "clarification"
    if "hold" in detail and "action" in detail:
        return "hold"
    if "link" in detail:
        return "link"
    if "node" in detail:
        return "node"
    return None


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def badge(detail: Mapping[str, str]) -> tuple[str, str]:
    """A clarification's state as a map's badge shows it: a headline (`answered: PRC, ours,
    reconnaissance, withdrawing`) and a line of timing and detail (`113.2 ms after the
    query, unarmed, PRC-RS-7`)."""
    state = detail.get("state", "")
    reason = detail.get("reason")
    query = f"query {detail['query_seq']}" if "query_seq" in detail else "query"
    elapsed = _number(detail.get("elapsed_ms"))
    if state == "answered":
        said = [detail.get("side"), CLAIMS.get(detail.get("claim", ""), detail.get("claim"))]
        said += [detail.get("mission"), detail.get("intent")]
        head = "answered: " + ", ".join(part for part in said if part)
        line = [f"{elapsed:.1f} ms after the query" if elapsed is not None else query]
        armed = {"true": "armed", "false": "unarmed"}.get(detail.get("armed", ""))
        line += [part for part in (armed, detail.get("asset")) if part]
        return head, ", ".join(line)
    if state == "open":
        return f"asked: {query} on the wire", f"no answer yet (asked by {detail.get('asker', '?')})"
    if state == "expired":
        return "expired: no answer by the deadline", reason or query
    if state == "not_sent":
        return "not sent", reason or "the hotline was not up"
    return f"hotline: {state or '?'}", reason or query


def hold_text(detail: Mapping[str, str]) -> str:
    text = f"gate {detail.get('hold', '?')}: {detail.get('action', '?')}"
    return f"{text} ({detail['reason']})" if detail.get("reason") else text


def link_text(detail: Mapping[str, str]) -> str:
    side, peer = detail.get("side", "?"), detail.get("peer", "?")
    return f"hotline {side}-{peer}: {detail.get('link', '?')}"


def _log_text(kind: str, uid: str, detail: Mapping[str, str]) -> str:
    if kind == "clarification":
        head, line = badge(detail)
        return f"{detail.get('track', uid)} {head} ({line})"
    if kind == "hold":
        return f"{hold_text(detail)} against {detail.get('target', '?')}"
    if kind == "link":
        return link_text(detail)
    return f"clearline node {detail.get('node', '?')} joined (peer {detail.get('peer', '?')})"


def _signature(kind: str, detail: Mapping[str, str]) -> str:
    """What makes a clearline event new for the log: the same state sent again (a server
    replaying it, a node reconnecting) is not listed twice."""
    keys = {
        "clarification": ("state", "query_seq", "claim"),
        "hold": ("hold", "action"),
        "link": ("link",),
        "node": ("node",),
    }[kind]
    return "|".join([kind, *(detail.get(k, "") for k in keys)])


def placed(event: cot.CotEvent) -> bool:
    """Whether the event has a position: CoT writes `0,0` with an unknown circular error for
    something with none (a client's presence, a hotline link)."""
    return not (event.lat == 0 and event.lon == 0 and event.ce >= cot.UNKNOWN_ERROR)


@dataclass(slots=True)
class Entry:
    event: cot.CotEvent
    detail: dict[str, str]
    kind: str | None
    signature: str | None
    received_us: int


@dataclass(frozen=True, slots=True)
class LogLine:
    time_us: int
    """The event's own `time`."""
    received_us: int
    uid: str
    kind: str
    text: str


class Picture:
    """The latest CoT event of each uid, until its `stale` time; bounded (module docstring)."""

    def __init__(
        self, max_markers: int = DEFAULT_MAX_MARKERS, max_log: int = DEFAULT_MAX_LOG
    ) -> None:
        if max_markers < 1 or max_log < 1:
            raise ValueError("max_markers and max_log must be at least 1")
        self.max_markers = max_markers
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self.log: deque[LogLine] = deque(maxlen=max_log)
        self.skipped = cot.Tally()
        self.counts: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, uid: object) -> bool:
        return uid in self._entries

    def get(self, uid: str) -> cot.CotEvent | None:
        entry = self._entries.get(uid)
        return entry.event if entry is not None else None

    def feed(self, items: Iterable[bytes | cot.Skipped], now_us: int) -> None:
        """What a `cot.StreamSplitter` made of the server's bytes: each event parsed and
        added; each refusal counted by its reason."""
        for item in items:
            parsed = cot.parse(item) if isinstance(item, bytes) else item
            if isinstance(parsed, cot.Skipped):
                self.skipped.add(parsed.reason)
            else:
                self.add(parsed, now_us)

    def add(self, event: cot.CotEvent, now_us: int) -> bool:
        """Keep `event` as its uid's latest (True), unless an event of a later `time` is kept
        already. An event past its `stale` time is not kept, and takes the uid off the map;
        so does a delete (`t-x-d-d`) that links to it. No event of a NOT_ON_THE_MAP type is
        kept."""
        self.counts["events"] += 1
        if event.type.startswith(NOT_ON_THE_MAP):
            # A tasking or control message (a delete, a ping) or a chat message.
            gone = self._entries.get(event.link) if event.link is not None else None
            if event.type == DELETE and gone is not None and gone.event.time_us <= event.time_us:
                del self._entries[gone.event.uid]
                self.counts["deleted"] += 1
            else:
                self.counts["not_on_the_map"] += 1
            return False
        kept = self._entries.get(event.uid)
        if kept is not None and event.time_us < kept.event.time_us:
            self.counts["older"] += 1
            return False
        if event.stale_us <= now_us:
            self.counts["stale"] += 1
            if kept is not None:
                del self._entries[event.uid]
            return False
        detail = clearline_detail(event)
        kind = kind_of(detail)
        signature = _signature(kind, detail) if kind is not None else None
        if kind is not None and (kept is None or kept.signature != signature):
            text = _log_text(kind, event.uid, detail)
            self.log.append(LogLine(event.time_us, now_us, event.uid, kind, text))
        self._entries[event.uid] = Entry(event, detail, kind, signature, now_us)
        self._entries.move_to_end(event.uid)
        while len(self._entries) > self.max_markers:
            self._entries.popitem(last=False)
            self.counts["evicted"] += 1
        return True

    def expire(self, now_us: int) -> int:
        """Drop what is past its `stale` time; how many were dropped."""
        gone = [uid for uid, e in self._entries.items() if e.event.stale_us <= now_us]
        for uid in gone:
            del self._entries[uid]
        self.counts["expired"] += len(gone)
        return len(gone)

    def snapshot(self, now_us: int) -> dict[str, Any]:
        """What the map shows now, as JSON: markers placed in a WIDTH x HEIGHT view fitted to
        them, what has no position, the hotline link, the clearline events in order."""
        self.expire(now_us)
        entries = list(self._entries.values())
        by_uid = {e.event.uid: e for e in entries}
        # Track uid -> the clarification drawn as its badge: its node's (`TRACK.clearline`)
        # before any other event that names the same track.
        clarified: dict[str, Entry] = {}
        holds: dict[str, list[str]] = {}
        for e in entries:
            if e.kind == "clarification" and e.detail["track"] in by_uid:
                track = by_uid[e.detail["track"]]
                if track.kind is None and placed(track.event):
                    own = e.event.uid == f"{track.event.uid}.clearline"
                    if own or track.event.uid not in clarified:
                        clarified[track.event.uid] = e
            elif e.kind == "hold" and e.detail.get("hold") == "held":
                holds.setdefault(e.detail.get("target", ""), []).append(hold_text(e.detail))
        shown: list[Entry] = []
        unplaced: list[dict[str, Any]] = []
        links: list[dict[str, Any]] = []
        for e in entries:
            if e.kind == "link":
                links.append({"uid": e.event.uid, "text": link_text(e.detail), "detail": e.detail})
            elif e.kind == "clarification" and clarified.get(e.detail["track"]) is e:
                continue  # drawn as its track's badge
            elif e.kind == "hold":
                continue  # drawn on its target while held; listed in the log
            elif placed(e.event):
                shown.append(e)
            else:
                unplaced.append(_unplaced(e))
        view = fit_view([(e.event.lat, e.event.lon) for e in shown])
        markers = [
            _marker(e, clarified.get(e.event.uid), holds, view)
            for e in sorted(shown, key=lambda e: e.event.uid)
        ]
        return {
            "now": cot.format_time(now_us),
            "view": view.as_json(),
            "markers": markers,
            "unplaced": sorted(unplaced, key=lambda u: str(u["uid"])),
            "links": sorted(links, key=lambda link: link["uid"]),
            "log": [
                {
                    "time": cot.format_time(line.time_us),
                    "received": cot.format_time(line.received_us),
                    "uid": line.uid,
                    "kind": line.kind,
                    "text": line.text,
                }
                for line in self.log
            ],
            "counts": {"kept": len(self._entries), **self.counts},
            "skipped": self.skipped.as_dict(),
            "max_markers": self.max_markers,
        }


def _unplaced(e: Entry) -> dict[str, Any]:
    event = e.event
    return {
        "uid": event.uid,
        "callsign": event.callsign,
        "type": event.type,
        "affiliation": affiliation(event.type),
        "time": cot.format_time(event.time_us),
        "text": badge(e.detail)[0] if e.kind == "clarification" else None,
    }


def _marker(
    e: Entry, clarification: Entry | None, holds: Mapping[str, list[str]], view: View
) -> dict[str, Any]:
    event = e.event
    x, y = view.project(event.lat, event.lon)
    hotline: dict[str, Any] | None = None
    own = e if e.kind == "clarification" else clarification
    if own is not None:
        head, line = badge(own.detail)
        hotline = {
            "state": own.detail.get("state"),
            "headline": head,
            "line": line,
            "time": cot.format_time(own.event.time_us),
            "detail": own.detail,
        }
    label = e.detail.get("track") if e.kind == "clarification" else None
    return {
        "uid": event.uid,
        "callsign": label or event.callsign or event.uid,
        "type": event.type,
        "affiliation": affiliation(event.type),
        "dimension": dimension(event.type),
        "lat": event.lat,
        "lon": event.lon,
        "hae": None if event.hae >= cot.UNKNOWN_ERROR else event.hae,
        "course": event.course,
        "speed": event.speed,
        "time": cot.format_time(event.time_us),
        "stale": cot.format_time(event.stale_us),
        "x": round(x, 1),
        "y": round(y, 1),
        "hotline": hotline,
        "holds": holds.get(event.uid, []),
    }


# -- the view -------------------------------------------------------------------------------

_STEPS: Final = (
    0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5,
    1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 45.0, 90.0,
)  # fmt: skip
MAX_LINES: Final = 8
"""Graticule lines across the view, at most, each way."""


@dataclass(frozen=True, slots=True)
class View:
    """An equirectangular view, WIDTH x HEIGHT, true to scale along its middle latitude."""

    south: float
    north: float
    west: float
    east: float
    width: int = WIDTH
    height: int = HEIGHT

    def project(self, lat: float, lon: float) -> tuple[float, float]:
        x = (lon - self.west) / (self.east - self.west) * self.width
        y = (self.north - lat) / (self.north - self.south) * self.height
        return x, y

    @property
    def km_across(self) -> float:
        middle = math.radians((self.south + self.north) / 2)
        return (self.east - self.west) * KM_PER_DEGREE * math.cos(middle)

    def graticule(self) -> dict[str, list[dict[str, Any]]]:
        lat_step = _step(self.north - self.south)
        lon_step = _step(self.east - self.west)
        lats = [
            {"value": v, "y": round(self.project(v, 0)[1], 1), "label": _label(v, lat_step, "NS")}
            for v in _multiples(self.south, self.north, lat_step)
        ]
        lons = [
            {"value": v, "x": round(self.project(0, v)[0], 1), "label": _label(v, lon_step, "EW")}
            for v in _multiples(self.west, self.east, lon_step)
        ]
        return {"lat": lats, "lon": lons}

    def scale_bar(self) -> dict[str, Any]:
        """A round distance about a fifth of the width, and its length in the view's units."""
        across = self.km_across
        target = across / 5
        exponent = math.floor(math.log10(target)) if target > 0 else 0
        unit = 10.0**exponent
        km = max((m * unit for m in (1, 2, 5) if m * unit <= target), default=unit)
        label = f"{km:g} km" if km >= 1 else f"{km * 1000:g} m"
        return {"km": km, "length": round(km / across * self.width, 1), "label": label}

    def as_json(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "south": self.south,
            "north": self.north,
            "west": self.west,
            "east": self.east,
            "graticule": self.graticule(),
            "scale": self.scale_bar(),
        }


def fit_view(
    points: list[tuple[float, float]],
    width: int = WIDTH,
    height: int = HEIGHT,
    margin: float = MARGIN,
    min_span_km: float = MIN_SPAN_KM,
) -> View:
    """The view that shows every (lat, lon) with `margin` around them, at least
    `min_span_km` across, in the width:height shape. With no points, the whole world. (A
    picture that straddles the antimeridian is shown the long way round.)"""
    if not points:
        return View(-90.0, 90.0, -180.0, 180.0, width, height)
    lats = [lat for lat, _ in points]
    lons = [lon for _, lon in points]
    middle_lat = (min(lats) + max(lats)) / 2
    middle_lon = (min(lons) + max(lons)) / 2
    squeeze = max(math.cos(math.radians(middle_lat)), 0.05)
    # In degrees of latitude, which the view draws at the same size as a degree of longitude
    # times `squeeze`: the projection's scale along its middle latitude.
    tall = max(max(lats) - min(lats), min_span_km / KM_PER_DEGREE) * (1 + 2 * margin)
    wide = max((max(lons) - min(lons)) * squeeze, min_span_km / KM_PER_DEGREE) * (1 + 2 * margin)
    if wide / tall < width / height:
        wide = tall * width / height
    else:
        tall = wide * height / width
    south, north = middle_lat - tall / 2, middle_lat + tall / 2
    if north > 90:
        south, north = south - (north - 90), 90.0
    if south < -90:
        south, north = -90.0, north + (-90 - south)
    half = wide / squeeze / 2
    return View(south, north, middle_lon - half, middle_lon + half, width, height)


def _step(span: float) -> float:
    return next((s for s in _STEPS if span / s <= MAX_LINES), _STEPS[-1])


def _multiples(low: float, high: float, step: float) -> list[float]:
    first, last = math.ceil(low / step - 1e-9), math.floor(high / step + 1e-9)
    return [round(i * step, 6) for i in range(first, min(last, first + 4 * MAX_LINES) + 1)]


def _label(value: float, step: float, hemispheres: str) -> str:
    """`24.10°N`, `122.40°E`, `0°`: as many decimals as the step has; a longitude past the
    antimeridian named as the one it is."""
    if hemispheres == "EW":
        value = (value + 180) % 360 - 180
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    if round(value, decimals) == 0:
        return f"{0:.{decimals}f}°"
    return f"{abs(value):.{decimals}f}°{hemispheres[0] if value > 0 else hemispheres[1]}"
