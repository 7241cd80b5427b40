"""What every view of simulation results shares: the command line's tables, the console and
the HTML report show each quantity under one human name, with numbers to three significant
figures, on one axis, and sweeps on one colour scale.

The console receives all of it from `payload()` (with the summary it shows), so it never
keeps a second copy. Pure: no imports beyond the standard library.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

DIGITS = 3

LABELS: dict[str, str] = {
    "kinetic_before_any_human": "P(kinetic before any human)",
    "kinetic_before_own_human_a": "P(first side kinetic before its own human)",
    "kinetic_before_own_human_b": "P(second side kinetic before its own human)",
    "fired_first_a": "P(first side fired first)",
    "fired_first_b": "P(second side fired first)",
    "any_kinetic": "P(any kinetic act)",
    "nuclear_use": "P(nuclear use)",
    "false_reassurance": "P(false reassurance)",
    "cleared_by_hotline": "P(cleared by the hotline)",
    "excluded_domain_unguarded": "P(excluded domain reached unguarded)",
    "excluded_domain_allowed": "Excluded-domain acts allowed",
    "excluded_domain_attempts": "Excluded-domain attempts",
    "forged_accepted": "Forged messages accepted",
    "forged_injected": "Forged messages injected",
    "time_to_first_kinetic_s": "Median s to the first kinetic act",
    "time_to_first_human_s": "Median s to the first human decision",
    "reassurance_delay_s": "Median s of a false reassurance",
    "mean_escalation_score": "Mean escalation score",
    "mean_escalation_score_a": "Mean escalation score, first side",
    "mean_escalation_score_b": "Mean escalation score, second side",
    "mean_kinetic_actions": "Mean kinetic acts",
    "mean_peak_rung_a": "Mean peak rung, first side",
    "mean_peak_rung_b": "Mean peak rung, second side",
    "mean_messages_sent": "Mean hotline messages sent",
    "mean_messages_lost": "Mean hotline messages lost",
    "difference_vs_none": "Difference against none (paired)",
    "arm": "Arm",
    "episodes": "Episodes",
}
"""Summary name -> what a reader sees. The outcomes' names in files stay as they are."""

PROBABILITY_AXIS = (0.0, 1.0)
PROBABILITY_TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)
"""Every probability is drawn on [0, 1] with these ticks, wherever it is drawn."""

SCALE = (
    "#440154",
    "#471365",
    "#482475",
    "#463480",
    "#414487",
    "#3b528b",
    "#355f8d",
    "#2f6c8e",
    "#2a788e",
    "#25848e",
    "#21918c",
    "#1e9c89",
    "#22a884",
    "#2fb47c",
    "#44bf70",
    "#5ec962",
    "#7ad151",
    "#9bd93c",
    "#bddf26",
    "#dfe318",
    "#fde725",
)
"""Viridis at 0, 0.05, ..., 1 (perceptually uniform, readable in grey and by the common colour
blindnesses): the colour of a probability in a heatmap, interpolated linearly between stops."""

ARM_COLOURS = {
    "none": "#b2182b",
    "analog": "#ef8a62",
    "hotline": "#67a9cf",
    "hotline+gate": "#2166ac",
    "gate": "#7f7f7f",
}


def label(name: str) -> str:
    """The human name of a summary quantity (never its snake_case key)."""
    if name in LABELS:
        return LABELS[name]
    text = name.replace("_", " ")
    return text[:1].upper() + text[1:]


_UNITS = (
    ("_per_hour", "per hour"),
    ("_per_min", "per minute"),
    ("_mps", "m/s"),
    ("_ms", "ms"),
    ("_s", "s"),
    ("_m", "m"),
)


def _words(part: str) -> str:
    return f"#{part}" if part.isdigit() else part.replace("_", " ")


def param_label(path: str) -> str:
    """The human name of a scenario setting named by its path, as sweeps and sensitivity
    studies take it: `sides.US.human.decision.median_s` is "US human decision: median (s)",
    `sides.US.model.confusion.recon_swarm.strike_package` is "US model: P(recon swarm read
    as strike package)". The path itself stays beside it wherever it is needed to repeat
    the study."""
    parts = path.split(".")
    who = ""
    if len(parts) > 2 and parts[0] == "sides":
        who, parts = parts[1], parts[2:]
    if "confusion" in parts[:-2]:
        at = parts.index("confusion")
        truth, reading = parts[at + 1], parts[at + 2]
        context = [*parts[:at], *parts[at + 3 :]]
        name, unit = f"P({_words(truth)} read as {_words(reading)})", ""
    else:
        context, last, unit = parts[:-1], parts[-1], ""
        for suffix, unit_name in _UNITS:
            if last.endswith(suffix) and len(last) > len(suffix):
                last, unit = last[: -len(suffix)], unit_name
                break
        name = _words(last)
    subject = " ".join([who, *(_words(p) for p in context)]).strip()
    text = f"{subject}: {name}" if subject else name
    text = text[:1].upper() + text[1:]
    return f"{text} ({unit})" if unit else text


def sig(value: float | None, digits: int = DIGITS) -> str:
    """`value` to `digits` significant figures, never in exponent form: 0.285, 0.0120,
    477, 12,300. Halves round away from zero, as JavaScript's toPrecision does, so the
    console (charts.js) writes the same text."""
    if value is None or math.isnan(value):
        return "-"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if value == 0:
        return "0"
    exact = Decimal(value)
    rounded = exact.quantize(Decimal(1).scaleb(exact.adjusted() - digits + 1), ROUND_HALF_UP)
    decimals = max(0, digits - 1 - rounded.adjusted())
    return f"{rounded:,.{decimals}f}"


def format_estimate(o: dict[str, Any]) -> str:
    """`estimate [low, high]`, or the estimate alone when it has no interval or is exact (an
    exact whole number, as a count, in full)."""
    estimate = o.get("estimate")
    if estimate is None:
        return "-"
    low, high = o.get("low"), o.get("high")
    if low is not None and low == high and float(estimate).is_integer():
        return f"{int(estimate):,}"
    if low is None or high is None or low == high:
        return sig(estimate)
    return f"{sig(estimate)} [{sig(low)}, {sig(high)}]"


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def heat_colour(value: float) -> str:
    """The scale's colour for a probability (clamped to [0, 1])."""
    place = min(1.0, max(0.0, value)) * (len(SCALE) - 1)
    i = min(int(place), len(SCALE) - 2)
    t = place - i
    a, b = _rgb(SCALE[i]), _rgb(SCALE[i + 1])
    mixed = (round(x + (y - x) * t) for x, y in zip(a, b, strict=True))
    return "#" + "".join(f"{c:02x}" for c in mixed)


def ink_on(colour: str) -> str:
    """Black or white, whichever reads better on `colour` (WCAG relative luminance)."""

    def linear(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in _rgb(colour))
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return "#000000" if luminance > 0.179 else "#ffffff"


def payload(paths: Iterable[str] = ()) -> dict[str, Any]:
    """What the console needs to draw as the report does, with the human names of the
    settings in `paths` (a sweep's axes, a study's parameters)."""
    return {
        "labels": LABELS,
        "param_labels": {path: param_label(path) for path in paths},
        "digits": DIGITS,
        "probability_axis": list(PROBABILITY_AXIS),
        "probability_ticks": list(PROBABILITY_TICKS),
        "scale": list(SCALE),
        "arm_colours": ARM_COLOURS,
    }
