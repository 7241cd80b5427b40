"""One name, one number format and one colour scale for every view of the results."""

from __future__ import annotations

import pytest

from clearline.sim.display import (
    LABELS,
    SCALE,
    format_estimate,
    heat_colour,
    ink_on,
    label,
    param_label,
    payload,
    sig,
)
from clearline.sim.stats import COUNTS, MEANS, MEDIANS, PROPORTIONS


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.28499999, "0.285"),
        (0.29, "0.290"),
        (0.012, "0.0120"),
        (0.09996, "0.100"),
        (476.5, "477"),
        (12_345.0, "12,300"),
        (999.6, "1,000"),
        (-0.7412, "-0.741"),
        (0.0, "0"),
        (1.125, "1.13"),  # a binary-exact half rounds away from zero, as in JavaScript
        (None, "-"),
    ],
)
def test_three_significant_figures_never_in_exponent_form(value: float | None, text: str) -> None:
    assert sig(value) == text


def test_estimates_show_their_interval_and_counts_stay_whole() -> None:
    assert format_estimate({"estimate": 0.285, "low": 0.22695, "high": 0.35115}) == (
        "0.285 [0.227, 0.351]"
    )
    assert format_estimate({"estimate": 1234.0, "low": 1234.0, "high": 1234.0}) == "1,234"
    assert format_estimate({"estimate": 2.5, "low": None, "high": None}) == "2.50"
    assert format_estimate({"estimate": None, "low": None, "high": None}) == "-"


def test_every_summary_quantity_has_a_human_name() -> None:
    names = [*PROPORTIONS, *COUNTS, *MEDIANS, *(f"mean_{n}" for n in MEANS)]
    for name in names:
        assert name in LABELS, name
        assert "_" not in label(name)
    assert label("some_new_count") == "Some new count"
    assert label("mean_new_thing") == "Mean new thing"


def test_the_scale_is_viridis_and_tells_zero_from_029() -> None:
    matplotlib = pytest.importorskip("matplotlib")
    from matplotlib.colors import to_rgb

    viridis = matplotlib.colormaps["viridis"]
    for i in range(101):
        ours = to_rgb(heat_colour(i / 100))
        theirs = viridis(i / 100)[:3]
        assert max(abs(a - b) for a, b in zip(ours, theirs, strict=True)) < 6 / 255, i
    assert heat_colour(0) == SCALE[0] and heat_colour(1) == SCALE[-1]
    zero, low = to_rgb(heat_colour(0)), to_rgb(heat_colour(0.29))
    assert sum(abs(a - b) for a, b in zip(zero, low, strict=True)) > 0.4
    assert ink_on(heat_colour(0)) == "#ffffff" and ink_on(heat_colour(1)) == "#000000"


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("sides.US.human.decision.median_s", "US human decision: median (s)"),
        (
            "sides.US.model.confusion.recon_swarm.strike_package",
            "US model: P(recon swarm read as strike package)",
        ),
        ("network.one_way_ms", "Network: one way (ms)"),
        ("hotline.heartbeat_s", "Hotline: heartbeat (s)"),
        ("sides.PRC.analog.answer_probability", "PRC analog: answer probability"),
        ("third_party.rate_per_hour", "Third party: rate (per hour)"),
        ("sides.PRC.assets.0.count", "PRC assets #0: count"),
        ("seed", "Seed"),
    ],
)
def test_a_setting_is_shown_by_a_human_name(path: str, shown: str) -> None:
    assert param_label(path) == shown
    assert "_" not in shown


def test_the_console_gets_the_names_of_the_settings_it_shows() -> None:
    names = payload(["network.one_way_ms"])["param_labels"]
    assert names == {"network.one_way_ms": "Network: one way (ms)"}
    assert payload()["param_labels"] == {}
