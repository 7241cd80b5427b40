"""The console's loading of a node's past and then its stream (static/follow.js), run in
Node.js: the browser tests need Chromium, this needs only `node`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

FOLLOW_JS = (
    Path(__file__).resolve().parents[2] / "src" / "clearline" / "console" / "static" / "follow.js"
)

SCRIPT = """
const { Follower } = require(process.argv[1]);
const shown = [];
const follower = new Follower((event) => shown.push(event.id));
// The stream is open before the history arrives: events 5 and 6 come first, 5 again later.
follower.receive({ id: 5 });
follower.receive({ id: 6 });
follower.load([{ id: 1 }, { id: 3 }, { id: 5 }]);
follower.receive({ id: 6 });
follower.receive({ id: 7 });
follower.receive({ id: 4 });
// A restarted node counts on from a larger id: its events are taken as new.
follower.receive({ id: 9000 });
console.log(JSON.stringify(shown));
"""


def test_history_then_stream_neither_misses_nor_repeats_an_event() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js (`node`) is not installed")
    result = subprocess.run(
        [node, "-e", SCRIPT, str(FOLLOW_JS)], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == [1, 3, 5, 6, 7, 9000]
