"""Serving the console: static files (vendored, no CDN) inside the node, or standalone.

`mount(app, access)` adds the console to a node's local API app at /console/
(the live view of that node; `?nodes=URL,URL` shows two nodes side by side),
with its sign-in: `POST /console/login` takes an API token in a form body and
sets an HttpOnly, SameSite=Strict cookie for a server-side session that reads
as the observer role, on GET only (node/auth.py). `results_app` is `clearline
console --results DIR`: the same page plus the simulation view of a `sim run`
or `sim sweep` results folder, or the sensitivity view of a `sim sensitivity` one.
"""

from __future__ import annotations

import html
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import FastAPI, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from clearline.node.auth import Access, api_port
from clearline.node.config import LOOPBACK_NAMES

STATIC = Path(str(resources.files("clearline.console").joinpath("static")))
LOGIN_BODY_MAX = 16 * 1024
CHAIN_MAX = 8
RESULTS = (("sensitivity", "sensitivity.json"), ("sweep", "sweep.json"), ("run", "summary.json"))
"""What a results folder can hold, looked for in this order."""


def origin_pattern(hosts: tuple[str, ...]) -> str:
    """Origins on any port of the node's own names (those given without a port)."""
    names = "|".join(re.escape(h) for h in hosts if h.rpartition("]")[2].count(":") == 0)
    return rf"^http://({names})(:\d+)?$"


def _login_hop(value: str) -> str | None:
    """`value` if it is the console sign-in of a node on this machine, else None."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    host = parts.netloc.rsplit(":", 1)[0].lower() if port else parts.netloc.lower()
    if (
        parts.scheme != "http"
        or host not in LOOPBACK_NAMES
        or parts.path != "/console/login"
        or parts.query
        or parts.fragment
        or parts.username is not None
    ):
        return None
    return value


def _next_page(value: str | None) -> str:
    """A page of this console to land on after signing in (never another site)."""
    if not value or "\\" in value or not value.startswith("/console/"):
        return "/console/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or "//" in parts.path:
        return "/console/"
    return value


def mount(app: FastAPI, access: Access) -> None:
    """The console at /console/ with its sign-in, and cross-origin reads, with the console
    session, for consoles on the node's own names at other ports (the demo shows both nodes
    on one page)."""
    app.add_middleware(
        CORSMiddleware,
        allow_origin_regex=origin_pattern(access.hosts),
        allow_methods=["GET"],
        allow_credentials=True,
    )

    @app.post("/console/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        """Sign in with any API token of this node (form field `token`, which may repeat: the
        first of this node's is used); the session reads as the observer role. `next` is the
        console page to land on; `chain` (repeated) lists other nodes' sign-in URLs on this
        machine to pass the same form on to (307), in order, before landing."""
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            return JSONResponse(
                {"detail": "expected a form (application/x-www-form-urlencoded) with `token`"},
                status_code=415,
            )
        body = await request.body()
        if len(body) > LOGIN_BODY_MAX:
            return JSONResponse(
                {"detail": f"a sign-in form is at most {LOGIN_BODY_MAX} bytes"}, status_code=413
            )
        try:
            form = parse_qs(body.decode("utf-8", "replace"), max_num_fields=2 * CHAIN_MAX + 8)
        except ValueError:
            return JSONResponse({"detail": "too many form fields"}, status_code=400)
        caller = None
        for token in form.get("token", [])[:CHAIN_MAX]:
            caller = access.tokens.check(token.strip())
            if caller is not None:
                break
        if caller is None:
            side = html.escape(access.side)
            return HTMLResponse(
                "<!doctype html><meta charset=utf-8><title>clearline console: not signed in"
                f"</title><p>That is not one of the {side} node's API tokens. "
                '<a href="/console/">Back to the console</a></p>',
                status_code=401,
            )
        port = api_port(request.scope)
        own = f"http://{request.headers.get('host', '').lower()}/console/login"
        chain = [hop for hop in form.get("chain", [])[:CHAIN_MAX] if _login_hop(hop)]
        later = chain[chain.index(own) + 1 :] if own in chain else chain
        if later:
            response: Response = RedirectResponse(later[0], status_code=307)
        else:
            response = RedirectResponse(_next_page(form.get("next", [None])[0]), status_code=303)
        response.set_cookie(
            access.cookie_name(port),
            access.sessions.create(caller.name),
            max_age=int(access.sessions.ttl_s),
            path="/",
            httponly=True,
            samesite="strict",
        )
        return response

    @app.post("/console/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        """End this browser's console session."""
        name = access.cookie_name(api_port(request.scope))
        session = request.cookies.get(name)
        if session is not None:
            access.sessions.end(session)
        response = RedirectResponse("/console/", status_code=303)
        response.delete_cookie(name, path="/", httponly=True, samesite="strict")
        return response

    app.mount("/console", StaticFiles(directory=STATIC, html=True), name="console")

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/console/")


def results_page(results: Path | None) -> str:
    """The console page that shows `results`: a sensitivity study has its own."""
    if results is None:
        return ""
    return "sensitivity.html" if (results / "sensitivity.json").exists() else "sim.html"


def results_app(results: Path | None) -> FastAPI:
    app = FastAPI(title="clearline console", docs_url=None, redoc_url=None, openapi_url=None)
    folder = results

    def need() -> Path:
        if folder is None:
            raise HTTPException(404, "no results folder: clearline console --results DIR")
        return folder

    @app.get("/results/summary")
    async def summary() -> dict[str, Any]:
        """The results, with how to show them (`display`: names, axes, colours), which the
        HTML report uses too."""
        from clearline.sim.display import payload

        where = need()
        for kind, name in RESULTS:
            if (where / name).exists():
                data = json.loads((where / name).read_text())
                settings = data.get("axes", []) + data.get("params", [])
                paths = [s["path"] for s in settings if isinstance(s, dict) and "path" in s]
                return {"kind": kind, "data": data, "display": payload(paths)}
        raise HTTPException(404, f"{where} has neither summary.json nor sweep.json")

    @app.get("/results/survival")
    async def survival() -> dict[str, Any]:
        episodes = need() / "episodes.parquet"
        if not episodes.exists():
            raise HTTPException(404, f"no {episodes}")
        from clearline.sim.curves import survival_curves

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
        return RedirectResponse(f"/console/{results_page(folder)}")

    return app
