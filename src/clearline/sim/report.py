"""`clearline sim report DIR`: figures and one self-contained HTML page.

For a run (summary.json + episodes.parquet): the probability of a kinetic act
before any human decision, by arm, with its interval; survival curves of the
time to the first kinetic act; escalation-score distributions. For a sweep
(sweep.json): one heatmap per arm of that probability over the first two swept
parameters, each cell labelled with its estimate and interval. For a sensitivity
study (sensitivity.json): sensitivity_report.py.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pyarrow.parquet as pq

ARM_STYLES = {"none": "-", "analog": "--", "hotline": "-.", "hotline+gate": "-", "gate": ":"}
ARM_COLOURS = {
    "none": "#b2182b",
    "analog": "#ef8a62",
    "hotline": "#67a9cf",
    "hotline+gate": "#2166ac",
    "gate": "#999999",
}


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def kinetic_by_arm(summary: dict[str, Any]) -> bytes:
    arms = list(summary["arms"])
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    for i, arm in enumerate(arms):
        o = summary["arms"][arm]["outcomes"]["kinetic_before_human"]
        est, low, high = o["estimate"] or 0.0, o["low"] or 0.0, o["high"] or 0.0
        ax.errorbar(
            [i],
            [est],
            yerr=[[est - low], [high - est]],
            fmt="o",
            capsize=6,
            color=ARM_COLOURS.get(arm, "black"),
        )
        ax.annotate(f"{est:.3f}", (i, est), textcoords="offset points", xytext=(10, 0))
    ax.set_xticks(range(len(arms)), arms)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("P(kinetic before any human decision)")
    ax.set_title(f"{summary['scenario']}: 95% Wilson intervals")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def survival(episodes: Path, summary: dict[str, Any]) -> bytes:
    table = pq.read_table(episodes, columns=["arm", "first_kinetic_s"]).to_pandas()
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    finite = table["first_kinetic_s"].dropna()
    horizon = float(finite.max()) if len(finite) else 1.0
    grid = np.logspace(-1, np.log10(max(horizon, 1.0)) + 0.05, 200)
    for arm in summary["arms"]:
        times = table.loc[table["arm"] == arm, "first_kinetic_s"].to_numpy()
        n = len(times)
        if n == 0:
            continue
        happened = np.sort(times[~np.isnan(times)])
        alive = 1.0 - np.searchsorted(happened, grid, side="right") / n
        ax.step(
            grid,
            alive,
            where="post",
            label=arm,
            color=ARM_COLOURS.get(arm, "black"),
            linestyle=ARM_STYLES.get(arm, "-"),
            linewidth=1.6,
        )
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("seconds since the episode began")
    ax.set_ylabel("P(no kinetic act yet)")
    ax.set_title("Time to the first kinetic act")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def escalation(episodes: Path, summary: dict[str, Any]) -> bytes:
    table = pq.read_table(episodes, columns=["arm", "escalation_score"]).to_pandas()
    arms = list(summary["arms"])
    data = [table.loc[table["arm"] == arm, "escalation_score"].to_numpy() for arm in arms]
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    ax.boxplot(data, tick_labels=arms, showfliers=False, whis=(5, 95))
    for i, values in enumerate(data, start=1):
        ax.scatter([i], [values.mean() if len(values) else 0], marker="D", color="black", s=12)
    ax.set_ylabel("escalation score (sum of rungs)")
    ax.set_title("Escalation score per episode (box 25-75%, whiskers 5-95%, mean)")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def heatmap(sweep: dict[str, Any], arm: str, outcome: str = "kinetic_before_human") -> bytes:
    axes = sweep["axes"]
    xs = axes[0]["values"]
    ys = axes[1]["values"] if len(axes) > 1 else [None]
    grid = np.full((len(ys), len(xs)), np.nan)
    labels: dict[tuple[int, int], str] = {}
    for cell in sweep["cells"]:
        settings = cell["settings"]
        x = xs.index(settings[axes[0]["path"]])
        y = ys.index(settings[axes[1]["path"]]) if len(axes) > 1 else 0
        o = cell["arms"][arm][outcome]
        grid[y, x] = o["estimate"] if o["estimate"] is not None else np.nan
        labels[(y, x)] = f"{o['estimate']:.3f}\n[{o['low']:.3f}, {o['high']:.3f}]"
    fig, ax = plt.subplots(figsize=(1.3 * len(xs) + 2, 0.9 * len(ys) + 1.6))
    image = ax.imshow(grid, vmin=0, vmax=1, cmap="RdYlBu_r", origin="lower", aspect="auto")
    for (y, x), text in labels.items():
        ax.text(x, y, text, ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(xs)), [str(v) for v in xs])
    ax.set_xlabel(axes[0]["path"])
    if len(axes) > 1:
        ax.set_yticks(range(len(ys)), [str(v) for v in ys])
        ax.set_ylabel(axes[1]["path"])
    else:
        ax.set_yticks([])
    ax.set_title(f"{arm}: P({outcome.replace('_', ' ')})")
    fig.colorbar(image, ax=ax)
    return _png(fig)


def _table(summary: dict[str, Any]) -> str:
    names = [
        "kinetic_before_human",
        "any_kinetic",
        "false_reassurance",
        "nuclear_use",
        "excluded_domain_allowed",
        "forged_accepted",
        "time_to_first_kinetic_s",
        "time_to_first_human_s",
        "mean_escalation_score",
    ]
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    rows = []
    for arm, data in summary["arms"].items():
        cells = []
        for name in names:
            o = data["outcomes"].get(name, {})
            est = o.get("estimate")
            if est is None:
                cells.append("<td>-</td>")
            elif o.get("low") is not None and o.get("low") != o.get("high"):
                cells.append(f"<td>{est:.4g} <small>[{o['low']:.4g}, {o['high']:.4g}]</small></td>")
            else:
                cells.append(f"<td>{est:.4g}</td>")
        rows.append(f"<tr><th>{html.escape(arm)} ({data['episodes']})</th>{''.join(cells)}</tr>")
    return f"<table><tr><th>arm (episodes)</th>{head}</tr>{''.join(rows)}</table>"


def _img(name: str, png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode()
    return (
        f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(name)}</figcaption></figure>"
    )


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; max-width: 1100px; margin: 2em auto;
        padding: 0 1em; }}
table {{ border-collapse: collapse; font-size: 13px; }}
td, th {{ border: 1px solid #ccc; padding: 4px 6px; }}
figure {{ display: inline-block; margin: 1em 1em 0 0; }} img {{ max-width: 100%; }}
@media (prefers-color-scheme: dark) {{
  body {{ background: #111; color: #eee; }} img {{ background: #fff; }} }}
</style></head><body>
<h1>{title}</h1>
<p>{meta}</p>
{body}
</body></html>
"""


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
    figures = {
        "kinetic_before_human.png": kinetic_by_arm(summary),
        "time_to_first_kinetic.png": survival(episodes, summary),
        "escalation_score.png": escalation(episodes, summary),
    }
    for name, png in figures.items():
        (folder / name).write_bytes(png)
    meta = (
        f"seed {summary['seed']}, signer {summary['signer']}, "
        f"{summary['episodes_run']} episode-arms in {summary['elapsed_s']} s"
    )
    body = _table(summary) + "".join(_img(n, p, n) for n, p in figures.items())
    page = folder / "report.html"
    page.write_text(
        PAGE.format(title=html.escape(f"clearline: {summary['scenario']}"), meta=meta, body=body)
    )
    return page


def _sweep_report(folder: Path) -> Path:
    sweep = json.loads((folder / "sweep.json").read_text())
    parts = []
    for arm in sweep["arms"]:
        png = heatmap(sweep, arm)
        name = f"heatmap_{arm.replace('+', '_')}.png"
        (folder / name).write_bytes(png)
        parts.append(_img(name, png, f"heatmap for {arm}"))
    axes = ", ".join(f"{a['path']} in {a['values']}" for a in sweep["axes"])
    meta = (
        f"{axes}; {sweep['episodes_per_cell']} episodes per cell and arm, seed {sweep['seed']}, "
        f"signer {sweep['signer']}"
    )
    page = folder / "report.html"
    page.write_text(
        PAGE.format(
            title=html.escape(f"clearline sweep: {sweep['scenario']}"),
            meta=meta,
            body="".join(parts),
        )
    )
    return page
