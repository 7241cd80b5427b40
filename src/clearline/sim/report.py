"""`clearline sim report DIR`: figures and one self-contained HTML page.

For a run (summary.json + episodes.parquet): the probability of a kinetic act
before any human decision, by arm, with its interval; survival curves of the
time to the first kinetic act; escalation-score distributions. For a sweep
(sweep.json): one heatmap per arm of that probability over the first two swept
parameters, each cell labelled with its estimate and interval, on the viridis
scale with its colour key. For a sensitivity study (sensitivity.json):
sensitivity_report.py.

Each figure is written as a PNG beside the page and drawn in the page as SVG with its
text kept as text, so the page's numbers can be read (and tested) in a browser. Names,
numbers, axes and colours come from display.py, as the console's do.
"""

from __future__ import annotations

import html
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pyarrow.parquet as pq
from matplotlib.colors import LinearSegmentedColormap

from clearline.sim.curves import survival_curves
from clearline.sim.display import (
    ARM_COLOURS,
    PROBABILITY_AXIS,
    PROBABILITY_TICKS,
    SCALE,
    format_estimate,
    heat_colour,
    ink_on,
    label,
    param_label,
    sig,
)

ARM_STYLES = {"none": "-", "analog": "--", "hotline": ":", "hotline+gate": "-", "gate": "-."}
HEAT = LinearSegmentedColormap.from_list("clearline", list(SCALE))
KINETIC = "kinetic_before_any_human"
PAD = 0.02
"""Room above and below [0, 1] on probability axes, so points at 0 or 1 are not cut."""


@dataclass(frozen=True)
class Figure:
    name: str
    """The PNG's file name."""
    png: bytes
    svg: str
    alt: str


def _figure(fig: Any, name: str, alt: str) -> Figure:
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=110, bbox_inches="tight")
    svg = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": name}):
        fig.savefig(svg, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = svg.getvalue()
    return Figure(name, png.getvalue(), text[text.index("<svg") :], alt)


def _tick(value: float) -> str:
    return f"{value:g}"


def _probability_axis(ax: Any, axis: str = "y") -> None:
    low, high = PROBABILITY_AXIS
    ticks = list(PROBABILITY_TICKS)
    if axis == "y":
        ax.set_ylim(low - PAD, high + PAD)
        ax.set_yticks(ticks, [_tick(t) for t in ticks])
    else:
        ax.set_xlim(low - PAD, high + PAD)
        ax.set_xticks(ticks, [_tick(t) for t in ticks])


def whisker(
    ax: Any,
    x: float,
    y: float,
    low: float,
    high: float,
    colour: str,
    *,
    horizontal: bool = False,
    marker: str = "o",
    filled: bool = True,
    legend: str | None = None,
) -> Any:
    """A point with its interval, vertical (or `horizontal`): caps wider than the point, so a
    narrow interval still shows."""
    at = x if horizontal else y
    spread = [[at - low], [high - at]]
    return ax.errorbar(
        [x],
        [y],
        **({"xerr": spread} if horizontal else {"yerr": spread}),
        fmt=marker,
        markersize=5,
        capsize=7,
        capthick=1.6,
        elinewidth=1.6,
        color=colour,
        markerfacecolor=colour if filled else "white",
        zorder=3,
        label=legend,
    )


def kinetic_by_arm(summary: dict[str, Any]) -> Figure:
    arms = list(summary["arms"])
    fig, ax = plt.subplots(figsize=(1.5 * len(arms) + 1.2, 3.6))
    for i, arm in enumerate(arms):
        o = summary["arms"][arm]["outcomes"][KINETIC]
        est, low, high = o["estimate"] or 0.0, o["low"] or 0.0, o["high"] or 0.0
        colour = ARM_COLOURS.get(arm, "black")
        whisker(ax, i, est, low, high, colour)
        note = ax.annotate(
            f"{sig(est)}\n[{sig(low)}, {sig(high)}]",
            (i, high),
            textcoords="offset points",
            xytext=(0, 6),
            ha="center",
            va="bottom",
            fontsize=8,
        )
        note.set_gid(f"estimate-{arm}")
    ax.set_xticks(range(len(arms)), arms)
    ax.set_xlim(-0.5, len(arms) - 0.5)
    _probability_axis(ax)
    ax.set_ylabel(label(KINETIC))
    ax.set_title(f"{summary['scenario']}: {label(KINETIC)}, 95% Wilson intervals", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return _figure(fig, "kinetic_before_any_human.png", f"{label(KINETIC)} by arm")


def survival(episodes: Path, summary: dict[str, Any]) -> Figure:
    curves = survival_curves(episodes)
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for arm in summary["arms"]:
        if arm not in curves["arms"]:
            continue
        ax.step(
            curves["t"],
            curves["arms"][arm],
            where="post",
            label=arm,
            color=ARM_COLOURS.get(arm, "black"),
            linestyle=ARM_STYLES.get(arm, "-"),
            linewidth=1.8,
        )
    ax.set_xscale("log")
    ax.set_xlim(curves["t"][0], curves["t"][-1])
    _probability_axis(ax)
    ax.set_xlabel("Seconds since the episode began")
    ax.set_ylabel("P(no kinetic act yet)")
    ax.set_title("Time to the first kinetic act", fontsize=10)
    legend = ax.legend(
        title="Arm", fontsize=8, title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1)
    )
    legend.set_gid("legend-survival")
    ax.grid(alpha=0.3)
    return _figure(fig, "time_to_first_kinetic.png", "Time to the first kinetic act, by arm")


def escalation(episodes: Path, summary: dict[str, Any]) -> Figure:
    table = pq.read_table(episodes, columns=["arm", "escalation_score"]).to_pandas()
    arms = list(summary["arms"])
    data = [table.loc[table["arm"] == arm, "escalation_score"].to_numpy() for arm in arms]
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    ax.boxplot(data, tick_labels=arms, showfliers=False, whis=(5, 95))
    for i, arm in enumerate(arms, start=1):
        o = summary["arms"][arm]["outcomes"]["mean_escalation_score"]
        if o["estimate"] is None:
            continue
        low = o["low"] if o["low"] is not None else o["estimate"]
        high = o["high"] if o["high"] is not None else o["estimate"]
        whisker(ax, i + 0.25, o["estimate"], low, high, ARM_COLOURS.get(arm, "black"), marker="D")
    ax.set_ylabel("Escalation score (sum of rung scores)")
    ax.set_title(
        "Escalation score per episode: box 25-75%, whiskers 5-95%;\n"
        "beside it, the mean with its 95% bootstrap interval",
        fontsize=10,
    )
    ax.grid(axis="y", alpha=0.3)
    return _figure(fig, "escalation_score.png", "Escalation score per episode, by arm")


def heatmap(sweep: dict[str, Any], arm: str, outcome: str = KINETIC) -> Figure:
    axes = sweep["axes"]
    xs = axes[0]["values"]
    ys = axes[1]["values"] if len(axes) > 1 else [None]
    grid = np.full((len(ys), len(xs)), np.nan)
    fig, ax = plt.subplots(figsize=(1.5 * len(xs) + 2.6, 0.9 * len(ys) + 1.8))
    for cell in sweep["cells"]:
        settings = cell["settings"]
        x = xs.index(settings[axes[0]["path"]])
        y = ys.index(settings[axes[1]["path"]]) if len(axes) > 1 else 0
        o = cell["arms"][arm][outcome]
        if o["estimate"] is None:
            continue
        grid[y, x] = o["estimate"]
        text = ax.text(
            x,
            y,
            f"{sig(o['estimate'])}\n[{sig(o['low'])}, {sig(o['high'])}]",
            ha="center",
            va="center",
            fontsize=8,
            color=ink_on(heat_colour(o["estimate"])),
        )
        text.set_gid(f"cell-{x}-{y}")
    low, high = PROBABILITY_AXIS
    image = ax.imshow(grid, vmin=low, vmax=high, cmap=HEAT, origin="lower", aspect="auto")
    ax.set_xticks(range(len(xs)), [str(v) for v in xs])
    ax.set_xlabel(param_label(axes[0]["path"]))
    if len(axes) > 1:
        ax.set_yticks(range(len(ys)), [str(v) for v in ys])
        ax.set_ylabel(param_label(axes[1]["path"]))
    else:
        ax.set_yticks([])
    ax.set_title(f"{arm}: {label(outcome)}", fontsize=10)
    key = fig.colorbar(image, ax=ax, ticks=list(PROBABILITY_TICKS))
    key.ax.set_yticklabels([_tick(t) for t in PROBABILITY_TICKS])
    key.set_label(label(outcome))
    key.ax.set_gid("colour-key")
    name = f"heatmap_{arm.replace('+', '_')}.png"
    return _figure(fig, name, f"{label(outcome)} over the sweep, arm {arm}")


TABLE = [
    KINETIC,
    "any_kinetic",
    "false_reassurance",
    "nuclear_use",
    "excluded_domain_allowed",
    "forged_accepted",
    "time_to_first_kinetic_s",
    "time_to_first_human_s",
    "mean_escalation_score",
]


def cell(o: dict[str, Any]) -> str:
    """A table cell: the estimate, and its interval on a second line."""
    text = format_estimate(o)
    estimate, _, interval = text.partition(" ")
    if not interval:
        return f'<td class="num">{html.escape(text)}</td>'
    return f'<td class="num">{html.escape(estimate)}<br><small>{html.escape(interval)}</small></td>'


def _table(summary: dict[str, Any]) -> str:
    head = "".join(f"<th>{html.escape(label(n))}</th>" for n in TABLE)
    rows = []
    for arm, data in summary["arms"].items():
        cells = "".join(cell(data["outcomes"].get(name, {})) for name in TABLE)
        rows.append(
            f'<tr data-arm="{html.escape(arm)}"><th>{html.escape(arm)}</th>'
            f'<td class="num">{data["episodes"]:,}</td>{cells}</tr>'
        )
    return (
        f'<table id="arms"><tr><th>{label("arm")}</th><th>{label("episodes")}</th>{head}</tr>'
        f"{''.join(rows)}</table><p class=note>95% intervals below each estimate: Wilson for "
        "probabilities, bootstrap for medians and means; counts are exact.</p>"
    )


def _img(figure: Figure) -> str:
    """The figure drawn inline as SVG, with a link to its PNG."""
    return (
        f'<figure data-figure="{html.escape(figure.name)}" role="img" '
        f'aria-label="{html.escape(figure.alt)}">{figure.svg}'
        f'<figcaption>{html.escape(figure.alt)} (<a href="{html.escape(figure.name)}">PNG</a>)'
        "</figcaption></figure>"
    )


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; max-width: 1360px; margin: 1.5em auto;
        padding: 0 1em; }}
table {{ border-collapse: collapse; font-size: 13px; max-width: 100%; }}
td, th {{ border: 1px solid #ccc; padding: 4px 6px; vertical-align: top; }}
th {{ text-align: left; font-weight: 600; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
td small {{ color: #555; white-space: nowrap; }}
figure {{ display: inline-block; margin: 1em 1em 0 0; max-width: 100%; }}
figure svg {{ max-width: 100%; height: auto; background: #fff; }}
.note {{ color: #555; font-size: 13px; }}
@media (prefers-color-scheme: dark) {{
  body {{ background: #111; color: #eee; }} td small, .note {{ color: #aaa; }} }}
</style></head><body>
<h1>{title}</h1>
<p>{meta}</p>
{body}
</body></html>
"""


def _write(folder: Path, figures: list[Figure]) -> None:
    for figure in figures:
        (folder / figure.name).write_bytes(figure.png)


def write_report(folder: Path) -> Path:
    """Render figures (PNG) and report.html into `folder`; returns the page's path."""
    folder = Path(folder)
    if (folder / "sensitivity.json").exists():
        from clearline.sim.sensitivity_report import write_sensitivity_report

        return write_sensitivity_report(folder)
    if (folder / "sweep.json").exists():
        return _sweep_report(folder)
    summary_path = folder / "summary.json"
    episodes = folder / "episodes.parquet"
    if not summary_path.exists() or not episodes.exists():
        raise FileNotFoundError(
            f"{folder} holds neither summary.json + episodes.parquet (from `sim run`), "
            "sweep.json (from `sim sweep`) nor sensitivity.json (from `sim sensitivity`)"
        )
    summary = json.loads(summary_path.read_text())
    figures = [
        kinetic_by_arm(summary),
        survival(episodes, summary),
        escalation(episodes, summary),
    ]
    _write(folder, figures)
    meta = (
        f"seed {summary['seed']}, signer {summary['signer']}, "
        f"{summary['episodes_run']:,} episode-arms in {summary['elapsed_s']} s"
    )
    body = _table(summary) + "".join(_img(f) for f in figures)
    page = folder / "report.html"
    page.write_text(
        PAGE.format(title=html.escape(f"clearline: {summary['scenario']}"), meta=meta, body=body)
    )
    return page


def _sweep_report(folder: Path) -> Path:
    sweep = json.loads((folder / "sweep.json").read_text())
    figures = [heatmap(sweep, arm) for arm in sweep["arms"]]
    _write(folder, figures)
    axes = ", ".join(
        f"{param_label(a['path'])} ({a['path']}) in {a['values']}" for a in sweep["axes"]
    )
    meta = (
        f"{axes}; {sweep['episodes_per_cell']:,} episodes per cell and arm, seed {sweep['seed']}, "
        f"signer {sweep['signer']}"
    )
    page = folder / "report.html"
    page.write_text(
        PAGE.format(
            title=html.escape(f"clearline sweep: {sweep['scenario']}"),
            meta=html.escape(meta),
            body="".join(_img(f) for f in figures),
        )
    )
    return page
