"""`clearline demo --tak` in a real browser: the console and the TAK map view both show the
scene. The map is clearline's own TAK client on the US FreeTAKServer; the track the US node
asked about is drawn as a hostile air track with the hotline's answer as its badge."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from clearline.lab.nodes import end_process
from tests.browser.test_console import ENV, _read_until

HEADLINE = "answered: PRC, ours, reconnaissance, withdrawing"


@pytest.mark.slow
def test_the_map_view_draws_the_clarified_track_with_its_answer(
    browser: Any, screenshots: Path, tmp_path: Path, takserver_venv: Path
) -> None:
    process = subprocess.Popen(
        [
            sys.executable, "-m", "clearline", "demo", "--tak", "--tak-venv", str(takserver_venv),
            "--headless", "--episodes", "0", "--duration", "120", "--out", str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENV,
        start_new_session=True,
    )  # fmt: skip
    try:
        lines = _read_until(process, r"TAK map: open ", timeout=240)
        console = re.search(r"console: open (file://\S+)", "\n".join(lines))
        tak_map = re.search(r"TAK map: open (http://127\.0\.0\.1:\d+/) ", lines[-1])
        assert console and tak_map, lines[-3:]
        # The scene runs; the demo prints what the US map client read once it is answered.
        lines += _read_until(process, r"nodes up for the console", timeout=120)
        assert any('state="answered"' in line for line in lines), "\n".join(lines)

        page = browser.new_page(viewport={"width": 1400, "height": 800})
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.goto(tak_map.group(1))
        badge = page.locator('svg .badge[data-track="T-0417"]')
        badge.wait_for(timeout=20_000)
        assert badge.get_attribute("class") == "badge answered"
        # (SVG text: read as its text content, each line a <text> of its own)
        lines_drawn = badge.locator("text").all_text_contents()
        assert lines_drawn[0] == HEADLINE
        assert re.fullmatch(r"\d+\.\d ms after the query, unarmed, PRC-RS-7", lines_drawn[1])
        # The track itself: a hostile air frame (red), its callsign beside it, in the view.
        marker = page.locator('svg .marker[data-uid="T-0417"]')
        assert marker.locator("path.frame").get_attribute("fill") == "#ff8080"
        assert marker.locator("text.label").text_content() == "T-0417"
        box = marker.bounding_box()
        view = page.locator("svg#map").bounding_box()
        assert box is not None and view is not None
        assert view["x"] < box["x"] < view["x"] + view["width"]
        assert view["y"] < box["y"] < view["y"] + view["height"]
        # The side panel: the track with its answer, and the clearline events in order.
        assert HEADLINE in page.locator('#tracks li[data-uid="T-0417"]').inner_text()
        log = page.locator("#log li").all_inner_texts()
        asked = next(i for i, t in enumerate(log) if "T-0417 asked" in t)
        answered = next(i for i, t in enumerate(log) if "T-0417 answered" in t)
        assert asked < answered
        assert any("hotline US-PRC: up" in t for t in log)
        assert "connected to the TAK server" in page.locator("#connection").inner_text()
        assert "US map view" in page.locator("#connection").inner_text()
        assert page.locator("svg .graticule text").count() >= 6
        assert re.fullmatch(r"\d+ k?m", page.locator("svg .scalebar text").text_content() or "")
        # Nothing comes from anywhere but the map itself.
        origin = tak_map.group(1)
        assert requests and all(url.startswith(origin) for url in requests), requests
        page.screenshot(path=str(screenshots / "tak-map.png"))

        # The console shows the same scene, from the nodes.
        console_page = browser.new_page(viewport={"width": 1400, "height": 1000})
        console_page.goto(console.group(1))
        us = console_page.locator("section[data-side=US]")
        us.locator('tr[data-state="answered"]').wait_for(timeout=20_000)
        assert "T-0417" in us.locator('tr[data-state="answered"]').inner_text()
        # Closed first: a node does not stop on SIGTERM while a console holds its event
        # stream open (the console's own tests end the nodes with their process group).
        console_page.close()
        page.close()

        # Ctrl-C ends the demo's wait; it stops the nodes and both TAK servers, and exits 0.
        os.kill(process.pid, signal.SIGINT)
        rest, _ = process.communicate(timeout=120)
        assert process.returncode == 0, rest
        assert "US node stopped on SIGTERM, exit code 0" in rest
    finally:
        if process.poll() is None:
            # SIGINT first, whatever step failed: the demo stops its TAK servers (each in a
            # process group of its own, which ending the demo's group would miss).
            os.kill(process.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=60)
        end_process(process, group=True)  # and whatever of the demo's group is left
