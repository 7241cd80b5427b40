"""The console's sensitivity view in a real browser: the indices plotted are the study's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from clearline.sim.display import param_label
from clearline.sim.scenario import load_scenario
from clearline.sim.sensitivity import Param, make_study, run_study
from tests.browser.test_console import (
    ENV,
    _fits,
    _headers_are_human,
    _read_until,
    _wait_served,
    _whiskers_show,
)

PARAMS = (
    "sides.US.model.confusion.recon_swarm.strike_package=0.05:0.6",
    "sides.US.doctrine.reaction.median_s=0.2:20:log",
    "network.one_way_ms=10:300:log",
)


@pytest.mark.slow
def test_sensitivity_view_plots_each_index_with_its_interval(
    browser: Any, screenshots: Path, tmp_path: Path
) -> None:
    loaded = load_scenario("recon-swarm")
    study = make_study(
        loaded,
        [Param.parse(p) for p in PARAMS],
        base_samples=8,
        episodes=20,
        arms=["none", "hotline"],
        seed=4,
    )
    out = tmp_path / "study"
    summary = run_study(loaded, study, out=out, executor="serial", resamples=200).summary
    process = subprocess.Popen(
        [sys.executable, "-m", "clearline", "console", "--results", str(out), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENV,
    )
    try:
        url = _read_until(process, r"console: ", timeout=30)[-1].split("console: ")[1].strip()
        assert url.endswith("/console/sensitivity.html")
        _wait_served(url)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.wait_for_selector("body[data-ready=true]", timeout=20_000)
        none = next(o for o in summary["outputs"] if o["arm"] == "none")
        for name in study.names:
            for index in ("S1", "ST"):
                expected = none["indices"][name][index]
                point = page.locator(
                    f'svg[data-output="none/kinetic_before_any_human"] '
                    f'circle[data-param="{name}"][data-index="{index}"]'
                )
                assert float(point.get_attribute("data-estimate")) == expected["estimate"]
        chart = page.locator('svg[data-output="none/kinetic_before_any_human"]')
        for name in study.names:  # each parameter by its human name, its path on hover
            row = chart.locator(f'text.param[data-param="{name}"]')
            assert row.locator("title").text_content() == f"{param_label(name)} ({name})"
        legend = chart.locator("text.legend")
        assert legend.all_text_contents() == ["first-order S1", "total ST"]
        points = len(study.names)
        assert _whiskers_show(
            page, 'svg[data-output="none/kinetic_before_any_human"] g.whisker'
        ) == (
            2 * points + 2  # each parameter's S1 and ST, and the legend's two glyphs
        )
        # the legend works: clicking "total ST" hides the ST whiskers, clicking again shows them
        shown = 'g.whisker[data-index="ST"]:visible'
        assert chart.locator(shown).count() == points
        chart.locator('.legend-item[data-index="ST"]').click()
        assert chart.locator(shown).count() == 0
        assert chart.locator('g.whisker[data-index="S1"]:visible').count() == points
        chart.locator('.legend-item[data-index="ST"]').click()
        assert chart.locator(shown).count() == points
        assert page.locator('svg[data-output="hotline/difference_vs_none"]').count() == 1
        _fits(page)
        page.screenshot(path=str(screenshots / "console-sensitivity.png"), full_page=True)
        page.goto(url.split("/console/")[0] + "/results/report", timeout=60_000)
        assert page.locator('figure[aria-label="sensitivity indices for hotline"]').count() == 1
        report_legend = page.locator('g[id="legend-none-kinetic_before_any_human"]').text_content()
        assert "first-order S1" in report_legend and "total ST" in report_legend
        _headers_are_human(page, "table tr:first-child th")  # (rows are the paths given)
        _fits(page)
        page.screenshot(path=str(screenshots / "report-sensitivity.png"), full_page=True)
        page.close()
    finally:
        process.kill()
        process.wait()
