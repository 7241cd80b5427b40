"""Serving the console: static files (vendored, no CDN) inside the node, or standalone.

`mount(app, access)` adds the console to a node's local API app at /console/
(the live view of that node; `?nodes=URL,URL` shows two nodes side by side).
`results_app` is `clearline console --results DIR`: the same page plus the
simulation view of a `sim run` or `sim sweep` results folder.
"""

from __future__ import annotations

import json
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from clearline.node.auth import Access

STATIC = Path(str(resources.files("clearline.console").joinpath("static")))


def origin_pattern(hosts: tuple[str, ...]) -> str:
    """Origins on any port of the node's own names (those given without a port)."""
    names = "|".join(re.escape(h) for h in hosts if h.rpartition("]")[2].count(":") == 0)
    return rf"^http://({names})(:\d+)?$"


def mount(app: FastAPI, access: Access) -> None:
    """The console at /console/, and cross-origin reads for consoles on the node's own names
    at other ports (the demo shows both nodes on one page)."""
    app.add_middleware(
        CORSMiddleware,
        allow_origin_regex=origin_pattern(access.hosts),
        allow_methods=["GET"],
        allow_credentials=True,
    )

    app.mount("/console", StaticFiles(directory=STATIC, html=True), name="console")

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/console/")


def survival_curves(episodes: Path, points: int = 200) -> dict[str, Any]:
    """P(no kinetic act yet) by time, per arm, on a log time grid, from episodes.parquet."""
    import numpy as np
    import pyarrow.parquet as pq

    table = pq.read_table(episodes, columns=["arm", "first_kinetic_s", "ended_s"]).to_pandas()
    finite = table["first_kinetic_s"].dropna()
    top = max(1.0, float(finite.max()) if len(finite) else 1.0, float(table["ended_s"].max()))
    grid = np.logspace(-1, math.log10(top), points)
    curves: dict[str, list[float]] = {}
    for arm, group in table.groupby("arm", sort=False):
        times = group["first_kinetic_s"].to_numpy()
        happened = np.sort(times[~np.isnan(times)])
        alive = 1.0 - np.searchsorted(happened, grid, side="right") / max(1, len(times))
        curves[str(arm)] = [round(float(v), 6) for v in alive]
    return {"t": [round(float(t), 6) for t in grid], "arms": curves}


def results_app(results: Path | None) -> FastAPI:
    app = FastAPI(title="clearline console", docs_url=None, redoc_url=None, openapi_url=None)
    folder = results

    def need() -> Path:
        if folder is None:
            raise HTTPException(404, "no results folder: clearline console --results DIR")
        return folder

    @app.get("/results/summary")
    async def summary() -> dict[str, Any]:
        where = need()
        if (where / "sweep.json").exists():
            return {"kind": "sweep", "data": json.loads((where / "sweep.json").read_text())}
        if (where / "summary.json").exists():
            return {"kind": "run", "data": json.loads((where / "summary.json").read_text())}
        raise HTTPException(404, f"{where} has neither summary.json nor sweep.json")

    @app.get("/results/survival")
    async def survival() -> dict[str, Any]:
        episodes = need() / "episodes.parquet"
        if not episodes.exists():
            raise HTTPException(404, f"no {episodes}")
        return survival_curves(episodes)

    @app.get("/results/report")
    async def report() -> FileResponse:
        where = need()
        page = where / "report.html"
        if not page.exists():
            from clearline.sim.report import write_report

            write_report(where)
        return FileResponse(page)

    app.mount("/console", StaticFiles(directory=STATIC, html=True), name="console")

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/console/sim.html" if folder is not None else "/console/")

    return app
