"""The console in a real browser: the live scene on screen, and a simulation result plotted."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from clearline.lab.nodes import end_process
from clearline.sim.curves import survival_curves
from clearline.sim.display import (
    PROBABILITY_AXIS,
    PROBABILITY_TICKS,
    SCALE,
    format_estimate,
    heat_colour,
    sig,
)
from clearline.sim.montecarlo import run
from clearline.sim.scenario import load_scenario
from clearline.sim.sweep import Axis, sweep
from tests.node.harness import (
    SIGHTING,
    SWARM,
    NodeProcess,
    make_keys,
    running,
    start_node,
    wait_until,
    write_config,
)

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _read_until(process: subprocess.Popen[str], pattern: str, timeout: float = 60) -> list[str]:
    """Lines printed by `process` up to and including the first matching `pattern`."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                break
            continue
        seen.append(line.rstrip("\n"))
        if re.search(pattern, line):
            return seen
    raise AssertionError(f"no line matching {pattern!r} in:\n" + "\n".join(seen))


@dataclass
class Demo:
    process: subprocess.Popen[str]
    page: str
    """The demo's sign-in page (a file: URL)."""
    us_api: str
    prc_api: str
    keys: Path

    def observer(self, side: str) -> dict[str, str]:
        token = (self.keys / f"{side}.api-token.observer").read_text().strip()
        return {"Authorization": f"Bearer {token}"}

    def tokens(self) -> list[str]:
        return [p.read_text().strip() for p in self.keys.glob("*.api-token.*")]


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "clearline",
            "demo",
            "--out",
            str(tmp_path),
            "--headless",
            "--pause",
            "4",
            "--duration",
            "10",
            "--episodes",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENV,
        start_new_session=True,
    )
    try:
        lines = _read_until(process, r"console: ")
        apis = next(line for line in lines if "US API" in line)
        us_api, prc_api = re.findall(r"http://127\.0\.0\.1:\d+", apis)[:2]
        found = re.search(r"console: open (file://\S+)", lines[-1])
        assert found, lines[-1]
        yield Demo(process, found.group(1), us_api, prc_api, tmp_path / "keys")
    finally:
        end_process(process, group=True)  # the demo and the nodes it started


@pytest.mark.slow
def test_live_view_shows_the_scene_as_the_nodes_report_it(
    browser: Any, screenshots: Path, demo: Demo
) -> None:
    process, us_api, prc_api = demo.process, demo.us_api, demo.prc_api
    sign_in = Path(demo.page.removeprefix("file://"))
    assert sign_in.stat().st_mode & 0o777 == 0o600, "the page holds tokens: owner only"
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    # One step: the page signs in to both nodes (a form post, passed on from PRC to US) and
    # lands on the side-by-side view.
    page.goto(demo.page)
    page.wait_for_url(f"{us_api}/console/**", timeout=20_000)
    page.wait_for_selector("body[data-ready=true]", timeout=20_000)
    us = page.locator("section[data-side=US]")
    prc = page.locator("section[data-side=PRC]")
    assert us.locator('[data-field="link"]').inner_text() == "UP"
    assert prc.locator('[data-field="link"]').inner_text() == "UP"
    # The anomaly appears, is held while queried, and is cleared: all on screen.
    us.locator('tr[data-verdict="hold"]').wait_for(timeout=20_000)
    answered = us.locator('tr[data-state="answered"]')
    answered.wait_for(timeout=20_000)
    us.locator('tr[data-verdict="allow"]').first.wait_for(timeout=20_000)
    assert "intercept-uncrewed" in us.locator('tr[data-verdict="hold"]').inner_text()
    # The human decision of the scene shows who approved it; the unsigned claim was denied.
    approved = us.locator('tr[data-verdict="allow"]', has_text="us-duty-1")
    approved.wait_for(timeout=20_000)
    assert "posture" in approved.inner_text()
    assert "authorizations" in us.locator('tr[data-verdict="deny"]').first.inner_text()
    assert us.locator(".rung.current").get_attribute("data-rung") == "posture"
    # Both sides' policy and roster hashes, each panel with its peer's as the peer showed it.
    us_link = httpx.get(f"{us_api}/v1/link", headers=demo.observer("US")).json()
    assert us.locator('[data-field="roster-hash"]').get_attribute("title") == us_link["roster_hash"]
    assert (
        prc.locator('[data-field="peer-roster-hash"]').get_attribute("title")
        == us_link["roster_hash"]
    )
    assert "us-duty-1, us-duty-2" in us.locator('[data-field="officers"]').inner_text()
    assert "nothing awaits" in us.locator('tbody[data-field="pending"]').inner_text()
    # Each side sends a signed checkpoint at the end of the scene (with a consistency proof
    # from its previous one when there is one); each panel shows the verdict on the peer's.
    peer_view = us.locator('[data-field="checkpoints"] span[data-side="PRC"][data-consistency]')
    peer_view.wait_for(timeout=15_000)
    assert peer_view.get_attribute("data-consistency") in ("first", "consistent")
    # ... cosigned by the demo's witness, counted against this side's own copy of its key.
    assert peer_view.get_attribute("data-quorum") == "met"
    assert "quorum 1" in us.locator('[data-field="witness"]').inner_text()
    assert us.locator('[data-field="kinetic"]').inner_text() == "none"
    # The numbers on screen are the node's own.
    shown_ms = float(answered.locator(".clarification-ms").inner_text())
    events = httpx.get(
        f"{us_api}/v1/events", params={"limit": 10_000}, headers=demo.observer("US")
    ).json()["events"]
    clarification = next(e for e in events if e["kind"] == "clarification")
    assert shown_ms == round(clarification["elapsed_us"] / 1000, 1)
    assert shown_ms >= 110.0, "the demo's path adds 55 ms each way"
    answers_in = [
        e
        for e in events
        if e["kind"] == "message" and e["type"] == "answer" and e["direction"] == "received"
    ]
    page.locator("section[data-side=US] select[data-field=filter-kind]").select_option("answer")
    rows = us.locator('tbody[data-field="messages"] tr')
    assert rows.count() == len(answers_in) == 1
    assert rows.first.get_attribute("data-kind") == "answer"
    prc_events = httpx.get(
        f"{prc_api}/v1/events", params={"limit": 10_000}, headers=demo.observer("PRC")
    ).json()["events"]
    answers_out = [
        e
        for e in prc_events
        if e["kind"] == "message" and e["type"] == "answer" and e["direction"] == "sent"
    ]
    page.locator("section[data-side=PRC] select[data-field=filter-kind]").select_option("answer")
    assert prc.locator('tbody[data-field="messages"] tr').count() == len(answers_out) == 1
    # An inclusion proof, checked in the browser with WebCrypto.
    us.locator('input[data-field="proof-index"]').fill("3")
    us.locator('button[data-action="verify"]').click()
    result = us.locator('[data-field="proof-result"]')
    page.wait_for_function(
        "el => el.dataset.verified !== undefined", arg=result.element_handle(), timeout=10_000
    )
    assert result.get_attribute("data-verified") == "true", result.inner_text()
    page.screenshot(path=str(screenshots / "console-live.png"), full_page=True)
    # Thousands of messages: the page keeps and lists a bounded number.
    counts = page.evaluate(
        """() => {
            const view = window.consoleViews[0];
            for (let i = 0; i < 5000; i++) {
                view.apply({kind: "message", direction: "received", type: "heartbeat",
                            seq: 100000 + i, at: Date.now() * 1000, verified: true});
            }
            view.field("filter-kind").value = "";
            view.renderMessages();
            return [view.messages.length, view.field("messages").children.length];
        }"""
    )
    assert counts == [2000, 300]
    # A change in the peer's roster turns its hash red and says what changed.
    page.evaluate(
        """() => {
            const view = window.consoleViews.find((v) => v.root.dataset.side === "PRC");
            view.apply({kind: "peer-authority-changed", what: "roster", before: "aa".repeat(32),
                        after: "bb".repeat(32), seen_in: "hello"});
        }"""
    )
    changed = prc.locator('[data-field="peer-roster-hash"].changed')
    changed.wait_for(timeout=5_000)
    assert "CHANGED" in prc.locator('[data-field="authority-note"]').inner_text()
    assert prc.locator('[data-field="peer-policy-hash"].changed').count() == 0
    assert any("/v1/events/stream" in u for u in urls)
    for token in demo.tokens():
        assert not any(token in u for u in urls), "a token travelled in a URL"
    cookies = {c["name"]: c for c in context.cookies()}
    for api in (us_api, prc_api):
        cookie = cookies[f"clearline_console_{api.rsplit(':', 1)[1]}"]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    context.close()
    assert process.wait(timeout=60) == 0


@pytest.fixture
def lone_node(tmp_path: Path) -> Iterator[NodeProcess]:
    make_keys(tmp_path, "US", "PRC")
    node = start_node(write_config(tmp_path, "PRC", "US", listen=True))
    with running(node):
        yield node


@pytest.mark.slow
def test_a_swarm_is_one_row_that_expands(browser: Any, demo: Demo) -> None:
    """Three hundred tracks asked in one call go out as two queries (256 + 44): two rows,
    each counting its tracks by state; a press lists the first fifty tracks of a swarm."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(demo.page)
    page.wait_for_url(f"{demo.us_api}/console/**", timeout=20_000)
    page.wait_for_selector("body[data-ready=true]", timeout=20_000)
    sensor = (demo.keys / "US.api-token.sensor").read_text().strip()
    tracks = [
        {"track_id": f"S-{i:03d}", "position": {"lat": 10 + i / 1000, "lon": 100, "alt_m": 900}}
        for i in range(300)
    ]
    done = httpx.post(
        f"{demo.us_api}/v1/observations/batch",
        json={"observations": tracks},
        headers={"Authorization": f"Bearer {sensor}"},
        timeout=30,
    )
    assert done.status_code == 200 and '"answered": 300' in done.text.splitlines()[-1]
    us = page.locator("section[data-side=US]")
    big = us.locator('tr.swarm[data-swarm="256"][data-state="answered"]')
    big.wait_for(timeout=20_000)
    small = us.locator('tr.swarm[data-swarm="44"][data-state="answered"]')
    small.wait_for(timeout=20_000)
    assert "swarm of 256 tracks" in big.inner_text() and "256 answered" in big.inner_text()
    assert us.locator("tr.swarm-track").count() == 0
    big.dispatch_event("mousedown")
    listed = us.locator("tr.swarm-track")
    listed.nth(50).wait_for(timeout=5_000)
    assert listed.count() == 51  # fifty tracks and the line that says how many more
    assert "and 206 more" in listed.nth(50).inner_text()
    context.close()


def test_a_console_not_signed_in_shows_the_sign_in_and_no_data(
    browser: Any, screenshots: Path, lone_node: NodeProcess
) -> None:
    context = browser.new_context(viewport={"width": 1000, "height": 400})
    page = context.new_page()
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    page.goto(f"{lone_node.api}/console/")
    page.wait_for_selector("body[data-ready=true]", timeout=20_000)
    assert page.locator("#signin").is_visible()
    assert page.locator("section.node").count() == 0
    assert page.locator("#signout").is_hidden()
    assert "PRC" not in page.locator("main").inner_text()
    assert not any("/v1/events" in u or "/v1/log" in u for u in urls), urls
    page.screenshot(path=str(screenshots / "console-signin.png"))
    # A wrong token: refused, and still no data.
    page.fill('#signin input[name="token"]', "not-a-token")
    page.click('#signin button[type="submit"]')
    assert "not one of the PRC node's API tokens" in page.inner_text("body")
    # The right one (any role; the session only reads).
    page.goto(f"{lone_node.api}/console/")
    page.wait_for_selector("body[data-ready=true]", timeout=20_000)
    token = lone_node.token("sensor")
    page.fill('#signin input[name="token"]', token)
    page.click('#signin button[type="submit"]')
    page.wait_for_selector("body[data-signed-in=true]", timeout=20_000)
    assert page.locator("section[data-side=PRC]").count() == 1
    assert page.locator('section[data-side=PRC] [data-field="link"]').inner_text() in (
        "DOWN",
        "DEGRADED",
        "UP",
    )
    # The page's session reads, and cannot act (its cookie never authorizes a POST).
    status = page.evaluate(
        """async () => (await fetch("/v1/log/checkpoint", {method: "POST"})).status"""
    )
    assert status == 401
    assert not any(token in u for u in urls), "the token travelled in a URL"
    page.click('#signout button[type="submit"]')
    page.wait_for_selector("body[data-signed-in=false]", timeout=20_000)
    assert page.locator("section.node").count() == 0
    context.close()


def _pair(folder: Path) -> tuple[NodeProcess, NodeProcess]:
    prc = start_node(write_config(folder, "PRC", "US", listen=True))
    try:
        us = start_node(write_config(folder, "US", "PRC", address=f"127.0.0.1:{prc.listen}"))
    except BaseException:
        prc.kill()
        raise
    return us, prc


@pytest.fixture
def restarted(tmp_path: Path) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    """Two nodes that went through a scene (telemetry, a clarification, a held act, checkpoints
    on both sides), were stopped, and started again on the same logs."""
    make_keys(tmp_path, "US", "PRC")
    us, prc = _pair(tmp_path)
    with running(us, prc):
        us.wait_link("up")
        with prc.client("operator") as client:
            client.post("/v1/telemetry", json={"assets": [SWARM]})
            client.post("/v1/log/checkpoint")
        with us.client("operator") as client:
            client.post("/v1/observations", json=SIGHTING)
            client.post("/v1/actions", json={"action_id": "A1", "rung": "strike", "domain": "air"})
            client.post("/v1/log/checkpoint")
        assert us.stop() == 0 and prc.stop() == 0
    us, prc = _pair(tmp_path)
    with running(us, prc):
        us.wait_link("up")
        yield us, prc


def test_a_console_opened_after_a_restart_shows_what_already_happened(
    browser: Any, restarted: tuple[NodeProcess, NodeProcess]
) -> None:
    us, _ = restarted
    context = browser.new_context(viewport={"width": 1200, "height": 1600})
    page = context.new_page()
    page.goto(f"{us.api}/console/")
    page.wait_for_selector("body[data-ready=true]", timeout=20_000)
    page.fill('#signin input[name="token"]', us.token("observer"))
    page.click('#signin button[type="submit"]')
    page.wait_for_selector("body[data-signed-in=true]", timeout=20_000)
    panel = page.locator("section[data-side=US]")
    # Before the restart, read back from the log: the decision, the clarification, the
    # checkpoints of both sides, the messages.
    held = panel.locator('tbody[data-field="decisions"] tr', has_text="A1")
    held.wait_for(timeout=10_000)
    assert "strike" in held.inner_text()
    answered = panel.locator('tbody[data-field="clarifications"] tr[data-state="answered"]')
    assert answered.count() == 1 and SIGHTING["track_id"] in answered.inner_text()
    for side in ("US", "PRC"):
        shown = panel.locator(f'[data-field="checkpoints"] span[data-side="{side}"]')
        shown.wait_for(timeout=10_000)
        assert "none yet" not in shown.inner_text(), shown.inner_text()
    kinds = panel.locator('tbody[data-field="messages"] tr[data-kind="answer"]')
    assert kinds.count() == 1
    # And it follows what happens next, once.
    with us.client("operator") as client:
        client.post("/v1/actions", json={"action_id": "A2", "rung": "monitor", "domain": "air"})
    panel.locator('tbody[data-field="decisions"] tr', has_text="A2").wait_for(timeout=10_000)
    assert panel.locator('tbody[data-field="decisions"] tr').count() == 2
    context.close()


@pytest.fixture
def console_for(tmp_path: Path) -> Iterator[Any]:
    started: list[subprocess.Popen[str]] = []

    def start(results: Path) -> str:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "clearline",
                "console",
                "--results",
                str(results),
                "--port",
                "0",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=ENV,
        )
        started.append(process)
        line = _read_until(process, r"console: ", timeout=30)[-1]
        return line.split("console: ")[1].strip()

    yield start
    for process in started:
        end_process(process)


def _wait_served(url: str) -> None:
    def served() -> bool:
        try:
            return httpx.get(url).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(served, 20, f"{url} never answered")


def _rgb(colour: str) -> str:
    """A #rrggbb colour as the browser's computed style writes it."""
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


def _headers_are_human(page: Any, selector: str) -> None:
    headers = [h.strip() for h in page.locator(selector).all_inner_texts()]
    assert headers, selector
    assert not [h for h in headers if "_" in h], headers


def _fits(page: Any, width: int = 1400) -> None:
    """Nothing scrolls sideways at `width` px: the page, or any table in it."""
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    overflowing = page.evaluate(
        "[...document.querySelectorAll('table')].filter("
        "t => t.parentElement.scrollWidth > t.parentElement.clientWidth + 1).length"
    )
    assert overflowing == 0


def _whiskers_show(page: Any, selector: str) -> int:
    """Every whisker's caps reach beyond its point, however narrow the interval."""
    whiskers = page.locator(selector)
    for i in range(whiskers.count()):
        g = whiskers.nth(i)
        point = g.locator("circle").bounding_box()
        for cap in g.locator("line.cap").all():
            box = cap.bounding_box()
            assert max(box["width"], box["height"]) > max(point["width"], point["height"]) + 4
    return int(whiskers.count())


@pytest.mark.slow
def test_simulation_view_plots_the_summary(
    browser: Any, screenshots: Path, tmp_path: Path, console_for: Any
) -> None:
    out = tmp_path / "run"
    result = run(load_scenario("recon-swarm"), episodes=300, seed=5, executor="serial", out=out)
    url = console_for(out)
    _wait_served(url)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]", timeout=20_000)
    for arm, data in result.summary["arms"].items():
        o = data["outcomes"]["kinetic_before_any_human"]
        point = page.locator(f'#kbh-chart circle[data-arm="{arm}"]')
        assert float(point.get_attribute("data-estimate")) == o["estimate"]
        assert float(point.get_attribute("data-low")) == o["low"]
        assert float(point.get_attribute("data-high")) == o["high"]
        assert page.locator(f'#kbh-chart text.value[data-arm="{arm}"]').text_content() == sig(
            o["estimate"]
        )
        shown = page.locator(
            f'#arms tr[data-arm="{arm}"] td[data-outcome="kinetic_before_any_human"]'
        )
        assert shown.inner_text().split("\n") == format_estimate(o).split(" ", 1)
    # the narrowest interval here is hotline+gate's [0, 0.0126]: its whisker still shows
    assert _whiskers_show(page, "#kbh-chart g.whisker") == len(result.summary["arms"])
    ticks = page.locator("#kbh-chart text.tick").all_text_contents()
    assert ticks == [f"{t:g}" for t in PROBABILITY_TICKS]
    _headers_are_human(page, "#arms th")
    assert "P(kinetic before any human)" in page.locator("#arms tr").first.inner_text()
    _fits(page)
    # the survival curves: the report's data on the report's axes, and a legend that works
    curves = survival_curves(out / "episodes.parquet")
    scales = page.evaluate(
        "(() => { const s = window.survivalPlot.scales; "
        "return [s.x.min, s.x.max, s.y.min, s.y.max]; })()"
    )
    assert scales == pytest.approx([curves["t"][0], curves["t"][-1], *PROBABILITY_AXIS])
    legend = page.locator("#survival .u-legend .u-series")
    labels = page.locator("#survival .u-legend .u-series .u-label").all_inner_texts()
    assert labels[1:] == list(result.summary["arms"])
    legend.nth(1).click()
    assert page.evaluate("window.survivalPlot.series[1].show") is False
    legend.nth(1).click()
    assert page.evaluate("window.survivalPlot.series[1].show") is True
    assert page.locator("#report-link").get_attribute("href") == "/results/report"
    page.screenshot(path=str(screenshots / "console-sim.png"), full_page=True)
    # the HTML report: the same numbers, names and axes
    page.goto(url.split("/console/")[0] + "/results/report")
    for arm, data in result.summary["arms"].items():
        o = data["outcomes"]["kinetic_before_any_human"]
        note = page.locator(f'g[id="estimate-{arm}"]').text_content()
        assert sig(o["estimate"]) in note and f"[{sig(o['low'])}, {sig(o['high'])}]" in note
    survival_legend = page.locator('g[id="legend-survival"]').text_content()
    assert all(arm in survival_legend for arm in result.summary["arms"])
    _headers_are_human(page, "#arms th")
    _fits(page)
    page.screenshot(path=str(screenshots / "report-run.png"), full_page=True)
    page.close()


def test_sweep_heatmap_has_a_colour_key_and_hover_shows_the_cell(
    browser: Any, screenshots: Path, tmp_path: Path, console_for: Any
) -> None:
    out = tmp_path / "sweep"
    summary = sweep(
        load_scenario("recon-swarm"),
        [
            Axis.parse("network.one_way_ms=5,300"),
            Axis.parse("sides.US.model.confusion.recon_swarm.strike_package=0.1,0.5"),
        ],
        out=out,
        arms=["none", "hotline"],
        episodes=60,
        seed=2,
        executor="serial",
    )
    url = console_for(out)
    _wait_served(url)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]", timeout=20_000)
    cell = next(c for c in summary["cells"] if c["settings"]["network.one_way_ms"] == 300)
    o = cell["arms"]["hotline"]["kinetic_before_any_human"]
    y = cell["settings"]["sides.US.model.confusion.recon_swarm.strike_package"]
    title = f"network.one_way_ms=300, sides.US.model.confusion.recon_swarm.strike_package={y}"
    # the axes by their human names, each with the path that repeats the sweep
    caption = page.locator("p.axes").first.text_content()
    assert caption == (
        "Rows: US model: P(recon swarm read as strike package) "
        "(sides.US.model.confusion.recon_swarm.strike_package); "
        "columns: Network: one way (ms) (network.one_way_ms)"
    )
    target = page.locator(f'table.heatmap[data-arm="hotline"] td[title^="{title}"]')
    target.hover()
    assert target.get_attribute("title") == f"{title}: {format_estimate(o)}"
    assert float(target.get_attribute("data-estimate")) == o["estimate"]
    # the cell's colour is the scale's at its estimate, as the report draws it
    fill = target.evaluate("e => getComputedStyle(e).backgroundColor")
    assert fill == _rgb(heat_colour(o["estimate"]))
    # the colour key: the scale's stops from 0 to 1, ticked as the report's
    key = page.locator("#colour-key svg.colour-key")
    assert key.locator("text.tick").all_text_contents() == [f"{t:g}" for t in PROBABILITY_TICKS]
    stops = key.locator("stop").evaluate_all("s => s.map(e => e.getAttribute('stop-color'))")
    assert stops == list(SCALE)
    # the console computes colours and numbers as display.py does, so 0 and 0.29 differ
    values = [0, 0.0333, 0.29, 0.5, 1]
    colours = page.evaluate(
        "v => v.map(x => Charts.heatColour(x, " + json.dumps(SCALE) + "))", values
    )
    assert colours == [heat_colour(v) for v in values]
    assert colours[0] != colours[2]
    numbers = [0.28499999, 0.0120, 0.09996, 476.5, 12345.0, 1.125, -0.7412, 2.0]
    assert page.evaluate("v => v.map(x => Charts.sig(x))", numbers) == [sig(v) for v in numbers]
    _fits(page)
    page.screenshot(path=str(screenshots / "console-sweep.png"), full_page=True)
    # the report's heatmaps: the same scale, a colour key, each cell's numbers
    page.goto(url.split("/console/")[0] + "/results/report")
    keys = page.locator('g[id="colour-key"]')
    assert keys.count() == 2
    assert [t.strip() for t in keys.first.locator("text").all_text_contents()][:5] == [
        f"{t:g}" for t in PROBABILITY_TICKS
    ]
    x = 1  # network.one_way_ms=300
    row = [0.1, 0.5].index(y)
    assert page.locator('figure[data-figure="heatmap_hotline.png"]').locator(
        f'g[id="cell-{x}-{row}"]'
    ).text_content().split() == [sig(o["estimate"]), f"[{sig(o['low'])},", f"{sig(o['high'])}]"]
    page.screenshot(path=str(screenshots / "report-sweep.png"), full_page=True)
    page.close()
    assert json.loads((out / "sweep.json").read_text())["cells"]
