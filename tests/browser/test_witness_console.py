"""A split view on screen: both nodes' consoles show, in red, that the witness holds another
root for a size of US's log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.node.harness import wait_until
from tests.node.witnesses import forked, judged


@pytest.mark.slow
def test_both_consoles_show_the_split_view_in_red(
    browser: Any, screenshots: Path, tmp_path: Path
) -> None:
    with forked(tmp_path) as fork:
        for node in (fork.us, fork.prc):
            judged(node, "US", fork.size)
            wait_until(lambda n=node: n.events("split-view"), 20, f"{node.side}: no split view")
        context = browser.new_context(viewport={"width": 1000, "height": 900})
        page = context.new_page()
        for node in (fork.us, fork.prc):
            page.goto(f"{node.api}/console/")
            page.wait_for_selector("body[data-ready=true]", timeout=20_000)
            page.fill('#signin input[name="token"]', node.token("observer"))
            page.click('#signin button[type="submit"]')
            page.wait_for_selector("body[data-signed-in=true]", timeout=20_000)
            panel = page.locator(f"section[data-side={node.side}]")
            witness = panel.locator('[data-field="witness"]')
            witness.filter(has_text="SPLIT VIEW").wait_for(timeout=20_000)
            assert witness.get_attribute("class") == "bad"
            assert f"US's log at size {fork.size}" in witness.inner_text()
            held = panel.locator('[data-field="checkpoints"] span[data-side="US"]')
            held.filter(has_text="SPLIT VIEW").wait_for(timeout=20_000)
            assert held.get_attribute("data-quorum") == "not-met"
            assert held.get_attribute("class") == "bad"
            page.screenshot(path=str(screenshots / f"console-split-view-{node.side}.png"))
        context.close()
