"""Closing a session ends its open clarifications and reports the link down (found by DST)."""

from __future__ import annotations

from clearline.protocol.events import ClarificationExpired, Closed, LinkState, LinkStateChanged
from clearline.protocol.messages import AssetKind, Position, Query, TrackReport
from tests.protocol.harness import T0, make_pair


def test_a_frame_error_expires_open_queries_and_reports_the_link_down() -> None:
    pair = make_pair()
    us = pair.us
    pair.drain()
    track = TrackReport("T-1", Position(0, 0, 0), T0, AssetKind.UNKNOWN)
    sent = us.send(Query(track, T0 + 5_000_000), T0 + 5)
    pair.drain()
    before = len(pair.events["US"])
    us.receive_data(b"\x00\x00\x00\x00", T0 + 10)
    pair.drain()
    events = pair.events["US"][before:]
    assert [type(e) for e in events] == [ClarificationExpired, LinkStateChanged, Closed]
    expired, link = events[0], events[1]
    assert isinstance(expired, ClarificationExpired)
    assert expired.query_seq == sent.message.seq
    assert isinstance(link, LinkStateChanged)
    assert link.current is LinkState.DOWN
    assert us.open_queries == {}
    assert us.next_deadline() is None
