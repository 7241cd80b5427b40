"""CoT parsing: XML and TAK Protocol v1, the stream splitter, and what never gets through.

Property tests: any bytes give an event or a Skipped with a known reason, never an
exception, and a splitter never holds more than one event's cap plus one fed chunk.
"""

from __future__ import annotations

import time

import pytest
import takproto
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clearline.tak import cot

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


def event_xml(
    uid: str = "PRC-RS-7",
    type_: str = "a-f-A-M-F-Q",
    stale: str = "2026-01-01T00:05:00Z",
    point: str = '<point lat="24.1" lon="122.4" hae="1500" ce="10" le="10"/>',
    detail: str = '<detail><track course="95" speed="60"/><contact callsign="RS7"/></detail>',
) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<event version="2.0" uid="{uid}" '
        f'type="{type_}" how="m-g" time="2026-01-01T00:00:00Z" start="2026-01-01T00:00:00Z" '
        f'stale="{stale}">{point}{detail}</event>'
    ).encode()


def stream(xml: bytes) -> bytes:
    return bytes(takproto.xml2proto(xml, takproto.TAKProtoVer.STREAM))


def mesh(xml: bytes) -> bytes:
    return bytes(takproto.xml2proto(xml, takproto.TAKProtoVer.MESH))


EXPECTED = cot.CotEvent(
    "PRC-RS-7",
    "a-f-A-M-F-Q",
    "m-g",
    T0,
    T0,
    T0 + 300_000_000,
    24.1,
    122.4,
    1500.0,
    10.0,
    10.0,
    95.0,
    60.0,
    "RS7",
)


@pytest.mark.parametrize("encode", [lambda x: x, stream, mesh], ids=["xml", "stream", "mesh"])
def test_each_encoding_gives_the_same_event(encode: object) -> None:
    assert cot.parse(encode(event_xml())) == EXPECTED  # type: ignore[operator]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'<!DOCTYPE e [<!ENTITY a "aaaaaaaaaa">]><event>&a;</event>', "dtd-refused"),
        (b'<!DOCTYPE e SYSTEM "file:///etc/passwd"><event/>', "dtd-refused"),
        (b"<event uid='x'><point", "malformed"),
        (b"<feature/>", "not-an-event"),
        (b"<event>" + b"<a>" * 20 + b"</a>" * 20 + b"</event>", "too-complex"),
        (b"<event>" + b"<x/>" * 600 + b"</event>", "too-complex"),
        (event_xml(uid=""), "bad-uid"),
        (event_xml(type_="a f"), "bad-type"),
        (event_xml(stale="yesterday"), "bad-time"),
        (event_xml(stale="2026-02-30T00:00:00Z"), "bad-time"),
        (event_xml(point='<point lat="91" lon="0"/>'), "bad-point"),
        (event_xml(point='<point lat="nan" lon="0"/>'), "bad-point"),
        (event_xml(point=""), "bad-point"),
        (b"<event>" + b" " * cot.MAX_EVENT_BYTES + b"</event>", "oversized"),
        (b"\xbf\x02\xbf\x0a\x00", "bad-header"),
        (b"\xbf\x05\x0a\x03", "bad-header"),
        (b"\xbf\x01\xbf\xff\xff\xff", "malformed"),
        (b"\xbf\x01\xbf", "not-an-event"),
    ],
)
def test_bad_events_are_skipped_with_their_reason(data: bytes, reason: str) -> None:
    parsed = cot.parse(data)
    assert isinstance(parsed, cot.Skipped)
    assert parsed.reason == reason, parsed


def test_a_billion_laughs_is_refused_before_any_expansion() -> None:
    entities = "".join(
        f'<!ENTITY l{i} "{"&l" + str(i - 1) + ";" * 10 if i else "lol"}">' for i in range(10)
    )
    bomb = f"<!DOCTYPE event [{entities}]><event uid='&l9;'/>".encode()
    assert cot.parse(bomb) == cot.Skipped(
        "dtd-refused", "document type declarations are not accepted"
    )


CLEARLINE = (
    '<detail><clearline asker="US" track="T-0417" state="answered" elapsed_ms="113.2" '
    'claim="ours" side="PRC"/><contact callsign="T-0417 PRC"/><link uid="T-0417"/></detail>'
)


@pytest.mark.parametrize("encode", [lambda x: x, stream, mesh], ids=["xml", "stream", "mesh"])
def test_the_clearline_element_is_read_from_each_encoding(encode: object) -> None:
    """A node's `<clearline>` detail, as sent: in XML, and in a TakMessage's xmlDetail (the
    detail elements with no protobuf field), read by the same parser."""
    parsed = cot.parse(encode(event_xml(detail=CLEARLINE)))  # type: ignore[operator]
    assert isinstance(parsed, cot.CotEvent)
    assert dict(parsed.clearline) == {
        "asker": "US",
        "track": "T-0417",
        "state": "answered",
        "elapsed_ms": "113.2",
        "claim": "ours",
        "side": "PRC",
    }
    assert parsed.callsign == "T-0417 PRC"
    assert parsed.link == "T-0417"


def test_the_clearline_element_and_the_link_are_bounded_and_optional() -> None:
    many = " ".join(f'a{i}="{i}"' for i in range(100))
    parsed = cot.parse(event_xml(detail=f"<detail><clearline {many}/></detail>"))
    assert isinstance(parsed, cot.CotEvent)
    assert len(parsed.clearline) == cot.MAX_CLEARLINE_ATTRIBUTES
    assert EXPECTED.clearline == ()  # an event without one
    assert EXPECTED.link is None
    bad = cot.parse(event_xml(detail='<detail><link uid="a&#10;b"/></detail>'))
    assert isinstance(bad, cot.CotEvent) and bad.link is None


def test_a_bad_xml_detail_in_a_takmessage_is_ignored_not_fatal() -> None:
    message = takproto.parse_proto(mesh(event_xml()))
    for detail in ("</detail></event><event>", "<clearline", '<!DOCTYPE x []><clearline a="1"/>'):
        message.cotEvent.detail.xmlDetail = detail
        parsed = cot.parse(cot.MESH_HEADER + message.SerializeToString())
        assert isinstance(parsed, cot.CotEvent)
        assert parsed.clearline == ()


def test_bad_optional_parts_are_dropped_not_fatal() -> None:
    parsed = cot.parse(
        event_xml(
            detail='<detail><track course="720" speed="-1"/><contact callsign="a&#10;b"/></detail>'
        )
    )
    assert isinstance(parsed, cot.CotEvent)
    assert (parsed.course, parsed.speed, parsed.callsign) == (None, None, None)


def test_times_read_as_cot_writes_them() -> None:
    assert cot.parse_time("2026-01-01T00:00:00Z") == T0
    assert cot.parse_time("2026-01-01T00:00:00.25Z") == T0 + 250_000
    assert cot.parse_time("2026-01-01T08:00:00+08:00") == T0
    assert cot.parse_time("2026-01-01T00:00:00") == T0
    assert cot.format_time(T0 + 250_000) == "2026-01-01T00:00:00.250Z"
    for bad in ("", "2026-13-01T00:00:00Z", "2026-01-01 00:00:00Z", "2026-01-01T24:00:00Z"):
        assert cot.parse_time(bad) is None
    # Before 1970 in UTC, though written as 1970: no record can carry a negative time.
    assert cot.parse_time("1970-01-01T00:00:00+23:59") is None
    assert cot.parse_time("1970-01-01T00:00:00-00:01") == 60_000_000


@given(st.integers(0, 253_402_300_799_999_999))
def test_format_and_parse_time_agree(us: int) -> None:
    assert cot.parse_time(cot.format_time(us)) == us - us % 1000


def test_what_is_written_reads_back() -> None:
    written = cot.to_xml(
        "T-1.clearline",
        "a-h-A",
        T0,
        T0 + 60_000_000,
        (24.1, 122.4, 0.0, 10.0, 10.0),
        [("clearline", {"claim": "ours", "note": 'say "<hi>"\n&'}), ("contact", {"callsign": "x"})],
    )
    parsed = cot.parse(written)
    assert isinstance(parsed, cot.CotEvent)
    assert (parsed.uid, parsed.type, parsed.stale_us, parsed.callsign) == (
        "T-1.clearline",
        "a-h-A",
        T0 + 60_000_000,
        "x",
    )


def test_the_splitter_cuts_mixed_streams_at_any_boundary() -> None:
    xml = event_xml()
    data = xml + b"\n" + stream(xml) + xml + b"junk" + xml
    for size in (1, 7, 64, len(data)):
        splitter = cot.StreamSplitter()
        out: list[bytes | cot.Skipped] = []
        for i in range(0, len(data), size):
            out += splitter.feed(data[i : i + size])
        events = [cot.parse(o) for o in out if isinstance(o, bytes)]
        assert events == [EXPECTED] * 4
        assert {o.reason for o in out if isinstance(o, cot.Skipped)} == {"malformed"}
        assert splitter.buffered == 0


def test_the_splitter_drops_oversized_events_and_carries_on() -> None:
    splitter = cot.StreamSplitter(4096)
    huge_xml = b"<event>" + b"x" * 10_000 + b"</event>"
    huge_frame = b"\xbf\xa0\x9c\x01" + b"\x00" * 20_000  # 20,000-byte frame
    out: list[bytes | cot.Skipped] = []
    for part in (huge_xml, huge_frame, event_xml()):
        for i in range(0, len(part), 1000):
            out += splitter.feed(part[i : i + 1000])
            assert splitter.buffered <= 4096 + 1000
    assert [o.reason for o in out if isinstance(o, cot.Skipped)] == ["oversized", "oversized"]
    assert [cot.parse(o) for o in out if isinstance(o, bytes)] == [EXPECTED]


def _split(data: bytes, size: int, **kwargs: int) -> list[bytes | cot.Skipped]:
    splitter = cot.StreamSplitter(**kwargs)
    out: list[bytes | cot.Skipped] = []
    for i in range(0, len(data), size):
        out += splitter.feed(data[i : i + size])
    return out


@pytest.mark.parametrize(
    ("before", "skipped"),
    [
        (b'<event uid="x"/>', ["bad-point"]),  # self-closing: an event of its own
        (b"<event uid='a>b' type=\"c/>\"/>", ["bad-point"]),  # `>` and `/>` in values
        (b"<x>", ["not-an-event"]),  # unterminated: dropped up to the event, not beyond
        (b"<foo></foo>", ["not-an-event"]),
        (b"</event>", ["not-an-event"]),
        (b"\x00" * 4096, ["malformed"]),  # NUL bytes are junk, counted, not blanks
        (b"<event uid='a<b'/>", ["malformed", "not-an-event"]),  # no `<` in a tag
        (b"x<y>z</y><e/>\x00", ["malformed"]),
        (b"<?xml version='1.0'?>junk", ["malformed"]),
        (b'<!DOCTYPE e [<!ENTITY a "x">]><event uid="&a;"/>', ["dtd-refused"]),
        (b"<!-- a comment, then no event --><x/>", ["not-an-event"]),
    ],
)
def test_a_bad_item_never_swallows_the_valid_event_after_it(
    before: bytes, skipped: list[str]
) -> None:
    for size in (1, 5, 1 << 20):
        out = _split(before + b"\n" + event_xml(), size)
        parsed = [o if isinstance(o, cot.Skipped) else cot.parse(o) for o in out]
        got = [p.reason if isinstance(p, cot.Skipped) else p for p in parsed]
        assert got == [*skipped, EXPECTED], (size, out)


@pytest.mark.parametrize(
    "detail",
    [
        "<remarks><![CDATA[ </event> <event> ]]></remarks>",
        "<!-- </event> -->",
        "<?pi </event> ?>",
    ],
)
def test_an_end_tag_in_cdata_a_comment_or_an_instruction_does_not_cut_the_event(
    detail: str,
) -> None:
    xml = event_xml(detail=f"<detail>{detail}<contact callsign='RS7'/></detail>")
    for size in (1, 3, 1 << 20):
        out = _split(xml + event_xml(), size)
        assert len(out) == 2 and all(isinstance(o, bytes) for o in out), (size, out)
        first = cot.parse(out[0])  # type: ignore[arg-type]
        assert isinstance(first, cot.CotEvent) and first.callsign == "RS7"
        assert cot.parse(out[1]) == EXPECTED  # type: ignore[arg-type]


def test_whitespace_between_events_is_not_counted() -> None:
    out = _split(b" \r\n\t" + event_xml() + b"\n\n" + event_xml() + b"\r\n", 7)
    assert [cot.parse(o) for o in out] == [EXPECTED, EXPECTED]  # type: ignore[arg-type]


def test_the_splitter_gives_up_on_a_sender_that_is_not_speaking_cot() -> None:
    splitter = cot.StreamSplitter(max_run=64)
    good = splitter.feed(event_xml() + b"x\xbf\x00" * 31 + event_xml())
    assert [o for o in good if isinstance(o, bytes)] and not splitter.gave_up  # 62 in a row
    out = splitter.feed(b"x\xbf\x00" * 21845)
    assert len(out) == 64 and all(isinstance(o, cot.Skipped) for o in out)
    assert splitter.gave_up and splitter.buffered == 0
    assert splitter.feed(event_xml()) == []  # nothing more is read


def _feed_seconds(data: bytes) -> float:
    best = float("inf")
    for _ in range(3):
        splitter = cot.StreamSplitter()
        started = time.perf_counter()
        splitter.feed(data)
        best = min(best, time.perf_counter() - started)
    return best


@pytest.mark.parametrize(
    "unit", [b"x\xbf\x00", b"\xbf\x00", b" \xbf\x00", b'<event uid="1"/>', event_xml()]
)
def test_the_splitter_takes_time_linear_in_what_it_is_fed(unit: bytes) -> None:
    """A 64 KiB read of tiny items once took 0.1-0.2 s: each item copied the buffer left."""
    small, large = unit * (16 * 1024 // len(unit)), unit * (256 * 1024 // len(unit))
    ratio = _feed_seconds(large) / _feed_seconds(small)
    assert ratio < 40, f"16 times the bytes took {ratio:.0f} times as long"  # it was 100+


def test_the_splitter_drops_an_oversized_event_that_comes_a_byte_at_a_time() -> None:
    splitter = cot.StreamSplitter(1024)
    data = b'<event a="' + b"x" * 3000 + b'"><detail>' + b"y" * 3000 + b"</detail></event>"
    out: list[bytes | cot.Skipped] = []
    for i in range(len(data)):
        out += splitter.feed(data[i : i + 1])
        assert splitter.buffered <= 1025
    out += splitter.feed(event_xml())
    assert [o.reason if isinstance(o, cot.Skipped) else cot.parse(o) for o in out] == [
        "oversized",
        EXPECTED,
    ]


def test_the_tally_counts_only_known_reasons() -> None:
    tally = cot.Tally()
    tally.add("stale")
    tally.add("made-up")
    assert tally.as_dict() == {"malformed": 1, "stale": 1}
    assert tally.total == 2


# -- properties -------------------------------------------------------------------------------


def _check(parsed: cot.Parsed) -> None:
    assert isinstance(parsed, cot.CotEvent | cot.Skipped)
    if isinstance(parsed, cot.Skipped):
        assert parsed.reason in cot.REASONS


@FUZZ
@given(st.binary(max_size=2048))
def test_any_bytes_parse_or_skip(data: bytes) -> None:
    _check(cot.parse(data))
    _check(cot.parse(b"\xbf" + data))
    _check(cot.parse(b"\xbf\x01\xbf" + data))
    _check(cot.parse_xml(b"<event " + data))


def _mutations() -> st.SearchStrategy[bytes]:
    valid = [event_xml(), stream(event_xml()), mesh(event_xml())]

    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        data = bytearray(draw(st.sampled_from(valid)))
        for _ in range(draw(st.integers(1, 8))):
            at = draw(st.integers(0, len(data)))
            op = draw(st.sampled_from(["flip", "cut", "insert"]))
            if op == "flip" and at < len(data):
                data[at] ^= draw(st.integers(1, 255))
            elif op == "cut":
                del data[at : at + draw(st.integers(1, 16))]
            else:
                data[at:at] = draw(st.binary(min_size=1, max_size=16))
        return bytes(data)

    return mutate()


@FUZZ
@given(_mutations())
def test_damaged_events_parse_or_skip(data: bytes) -> None:
    _check(cot.parse(data))


_PIECES = [
    event_xml(),
    stream(event_xml()),
    b'<event uid="x"/>',
    b"<event a='>' b=\"/>\"><detail><![CDATA[</event>]]><!-- </event> --></detail></event>",
    b"<?xml version='1.0'?>",
    b"<?pi </event> ?>",
    b"<!-- c -->",
    b'<!DOCTYPE e [<!ENTITY a "x">]>',
    b"<x>",
    b"</y>",
    b"<eve",
    b"<event uid='a<",
    b"\xbf\x00",
    b"\xbf",
    b"\x00",
    b"x",
    b" \r\n",
    b"<",
    b"]]>",
    b"'",
    b'"',
    b">",
    b"/",
]


def _kinds(out: list[bytes | cot.Skipped]) -> list[str | bytes]:
    return [o.reason if isinstance(o, cot.Skipped) else o for o in out]


@FUZZ
@given(
    st.lists(st.sampled_from(_PIECES), max_size=30),
    st.lists(st.integers(1, 40), min_size=1, max_size=60),
)
def test_however_the_stream_is_cut_it_splits_the_same(pieces: list[bytes], cuts: list[int]) -> None:
    """The scan resumes where it stopped: the same events and reasons, cut anywhere."""
    data = b"".join(pieces)
    whole = cot.StreamSplitter()
    expected = _kinds(whole.feed(data))
    splitter = cot.StreamSplitter()
    out: list[bytes | cot.Skipped] = []
    at, k = 0, 0
    while at < len(data):
        size = cuts[k % len(cuts)]
        out += splitter.feed(data[at : at + size])
        at, k = at + size, k + 1
    assert _kinds(out) == expected
    assert splitter.buffered == whole.buffered


@FUZZ
@given(st.lists(st.binary(max_size=600) | _mutations(), max_size=20), st.integers(512, 2048))
def test_the_splitter_stays_bounded_and_never_raises(chunks: list[bytes], cap: int) -> None:
    splitter = cot.StreamSplitter(cap)
    for chunk in chunks:
        for item in splitter.feed(chunk):
            if isinstance(item, bytes):
                assert len(item) <= cap
                _check(cot.parse(item, cap))
            else:
                assert item.reason in cot.REASONS
        assert splitter.buffered <= cap + len(chunk)
