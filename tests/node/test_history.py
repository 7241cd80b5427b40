"""What a restarted node reads back from its log, for a swarm's query."""

from __future__ import annotations

from clearline.config import default_policy
from clearline.gate.authority import empty_roster
from clearline.node.history import read_back
from clearline.protocol.signing import Ed25519Signer
from tests.hotline.test_endpoint import MS, T0, _swarm, make_wire


def test_a_swarm_query_reads_back_as_one_clarification_per_track_with_its_answer() -> None:
    wire = make_wire()
    wire.us.ask_many(_swarm(3), T0 + 10 * MS)
    wire.pump(T0 + 65 * MS)
    logged = wire.us.log_entries()
    assert [e.message.type.value for e in logged][-2:] == ["query", "answers"]
    newest_first = list(reversed(list(enumerate(e.cose for e in logged))))
    result = read_back(
        newest_first, Ed25519Signer.from_label("US").kid, "US", default_policy(), empty_roster("US")
    )
    ended = [e for e in result.events if e["kind"] == "clarification"]
    assert [e["track"] for e in ended] == ["T-0417", "T-0001", "T-0002"]
    assert {e["outcome"] for e in ended} == {"answered"}
    assert [e["answer"]["claim"] for e in ended] == ["ours", "not_ours", "not_ours"]
    assert ended[0]["answer"]["intent"] == "withdrawing"
