"""`clearline sim report DIR` for a sensitivity study (sensitivity.json): per arm, each
parameter's indices with their interval whiskers, and the same as tables.

One figure per arm: P(kinetic before any human) in that arm, and beside it the
paired difference against `none` (for every arm but `none`). Parameters keep the
order the study named them in, in every panel, so panels can be compared by eye.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from clearline.sim.display import ARM_COLOURS, label, param_label, sig
from clearline.sim.report import PAGE, Figure, _figure, _img, _write, cell, whisker

MARKERS = {
    "sobol": (("S1", "first-order S1", "o", True), ("ST", "total ST", "s", False)),
    "morris": (("mu_star", "mu*", "o", True), ("sigma", "sigma", "D", False)),
}


def _panel(ax: Any, summary: dict[str, Any], output: dict[str, Any] | None, colour: str) -> None:
    names = [p["path"] for p in summary["params"]]
    rows = range(len(names))
    ax.set_yticks(list(rows), [param_label(n) for n in names], fontsize=7)
    ax.set_ylim(len(names) - 0.5, -0.5)  # the first parameter named on top
    ax.axvline(0.0, color="#666666", linewidth=0.8)
    ax.grid(axis="x", alpha=0.3)
    if output is None:
        ax.set_title("not in this study", fontsize=9)
        return
    quantity = label(output["quantity"])
    ax.set_title(
        f"{quantity}\nmean {sig(output['mean'])} ({sig(output['min'])} to {sig(output['max'])})",
        fontsize=9,
    )
    found = output["indices"]
    if found is None:
        ax.text(
            0.5,
            0.5,
            "the same at every point:\nno index",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=9,
        )
        return
    method = summary["method"]
    for k, (key, name_of_index, marker, filled) in enumerate(MARKERS[method]):
        offset = -0.15 if k == 0 else 0.15
        for row, name in zip(rows, names, strict=True):
            o = found[name][key]
            if o["estimate"] is None:
                continue
            est = o["estimate"]
            low = o["low"] if o["low"] is not None else est
            high = o["high"] if o["high"] is not None else est
            whisker(
                ax,
                est,
                row + offset,
                low,
                high,
                colour,
                horizontal=True,
                marker=marker,
                filled=filled,
                legend=name_of_index if row == 0 else None,
            )
    if method == "sobol":
        ax.set_xlabel("Sobol index (share of the output's variance), 95% interval")
        ax.set_xlim(min(-0.05, ax.get_xlim()[0]), max(1.05, ax.get_xlim()[1]))
    else:
        ax.set_xlabel("Change in probability per move of the parameter")
    ax.legend(fontsize=7, loc="best", framealpha=0.9).set_gid(
        f"legend-{output['arm']}-{output['quantity']}"
    )


def figure(summary: dict[str, Any], arm: str) -> Figure:
    outputs = {(o["arm"], o["quantity"]): o for o in summary["outputs"]}
    panels = [outputs.get((arm, "kinetic_before_any_human"))]
    if arm != "none" and "none" in summary["arms"]:
        panels.append(outputs.get((arm, "difference_vs_none")))
    height = 1.2 + 0.45 * len(summary["params"])
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5.2 * len(panels) + 2.2, height), sharey=True, squeeze=False
    )
    colour = ARM_COLOURS.get(arm, "black")
    for ax, output in zip(axes[0], panels, strict=True):
        _panel(ax, summary, output, colour)
    fig.suptitle(f"{summary['scenario']}, arm {arm}: {summary['method']}", fontsize=10)
    fig.tight_layout()
    name = f"sensitivity_{arm.replace('+', '_')}.png"
    return _figure(fig, name, f"sensitivity indices for {arm}")


def _tables(summary: dict[str, Any]) -> str:
    sobol = summary["method"] == "sobol"
    keys = ("S1", "ST") if sobol else ("mu_star", "sigma")
    heads = ("first-order S1", "total ST") if sobol else ("mu*", "sigma")
    parts = []
    for output in summary["outputs"]:
        parts.append(f"<h3>{html.escape(output['label'])}</h3>")
        found = output["indices"]
        if found is None:
            parts.append(f"<p>{html.escape(output['note'])}</p>")
            continue
        rows = "".join(
            f"<tr><th>{html.escape(name)}</th>{''.join(cell(found[name][k]) for k in keys)}</tr>"
            for name in found
        )
        head = "".join(f"<th>{h}</th>" for h in heads)
        parts.append(f"<table><tr><th>Parameter</th>{head}</tr>{rows}</table>")
    return "".join(parts)


def write_sensitivity_report(folder: Path) -> Path:
    summary = json.loads((folder / "sensitivity.json").read_text())
    figures = [figure(summary, arm) for arm in summary["arms"]]
    _write(folder, figures)
    params = ", ".join(
        f"{param_label(p['path'])} ({p['path']}) in [{p['low']:g}, {p['high']:g}]"
        f"{' (log)' if p['log'] else ''}"
        f"{' (integer)' if p['integer'] else ''}"
        for p in summary["params"]
    )
    meta = (
        f"{params}; {summary['points']} points x {summary['episodes']} episodes per arm, "
        f"seed {summary['seed']}, signer {summary['signer']}. " + " ".join(summary["notes"])
    )
    page = folder / "report.html"
    page.write_text(
        PAGE.format(
            title=html.escape(f"clearline sensitivity: {summary['scenario']}"),
            meta=html.escape(meta),
            body="".join(_img(f) for f in figures) + _tables(summary),
        )
    )
    return page
