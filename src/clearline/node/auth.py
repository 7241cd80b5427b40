"""Who may call the local API, from where, and how much they may send.

One ASGI middleware, `Guard`, in front of the whole app (API and console), checks
each request in this order:

1. The Host header names this node (`[api] hosts`, each with or without the API's
   port): otherwise 421. A web page that reaches the API through DNS rebinding
   sends its own name, and is refused.
2. A state-changing request (anything but GET, HEAD, OPTIONS) that carries an
   Origin header must come from one of the node's own origins (http://HOST:PORT):
   otherwise 403. The console sign-in is the exception (the demo signs in from a
   file:// page); it changes nothing but a session.
3. The route's role, from `ROUTE_ROLES` (the one table of who may call what):
   a bearer token of that role or above, else 401 (none, or not a token of this
   node) or 403 (too weak). A console session cookie stands for the observer role,
   on GET and HEAD only: it never authorizes a POST, so no cross-site request can
   act through it. Bearer tokens are never sent by a browser on its own.
4. The body: a Content-Length over `[limits] max_body_bytes` is refused with 413
   before anything is read; a body without one is counted as it is read and
   refused the moment it passes the limit.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import cookie_parser
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clearline.node.config import LOOPBACK_NAMES
from clearline.node.tokens import Caller, Role, TokenSet

ROUTE_ROLES: dict[tuple[str, str], Role | None] = {
    ("GET", "/v1/policy"): Role.OBSERVER,
    ("GET", "/v1/link"): Role.OBSERVER,
    ("GET", "/v1/clarifications"): Role.OBSERVER,
    ("GET", "/v1/events"): Role.OBSERVER,
    ("GET", "/v1/events/stream"): Role.OBSERVER,
    ("GET", "/v1/history"): Role.OBSERVER,
    ("GET", "/v1/log"): Role.OBSERVER,
    ("GET", "/v1/log/checkpoints"): Role.OBSERVER,
    ("GET", "/v1/log/proof/{index}"): Role.OBSERVER,
    ("GET", "/v1/log/tiles/checkpoint"): Role.OBSERVER,
    ("GET", "/v1/log/tiles/tile/{path:path}"): Role.OBSERVER,
    ("GET", "/v1/approvals/pending"): Role.OBSERVER,
    ("GET", "/metrics"): Role.OBSERVER,
    ("GET", "/openapi.json"): Role.OBSERVER,
    ("GET", "/docs"): Role.OBSERVER,
    ("GET", "/docs/oauth2-redirect"): Role.OBSERVER,
    ("GET", "/redoc"): Role.OBSERVER,
    ("POST", "/v1/observations"): Role.SENSOR,
    ("POST", "/v1/observations/batch"): Role.SENSOR,
    ("POST", "/v1/telemetry"): Role.SENSOR,
    ("POST", "/v1/actions"): Role.OPERATOR,
    ("POST", "/v1/log/checkpoint"): Role.OPERATOR,
    # The console's static files (the page holds no data: it fetches it with a session),
    # the redirect to it, and signing in and out.
    ("GET", "/"): None,
    ("GET", "/console"): None,
    ("POST", "/console/login"): None,
    ("POST", "/console/logout"): None,
}
"""(method, route path) -> the least role that may call it; None: no credential needed.
A request that matches no route here (an unknown path or method) needs the observer role."""

UNLISTED = Role.OBSERVER
NO_ORIGIN_CHECK = frozenset({("POST", "/console/login")})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_TTL_S = 8 * 3600
MAX_SESSIONS = 32
REALM = "clearline"


class Sessions:
    """Console sessions: random ids (only their hashes kept), expiring, at most `cap` of them
    (signing in past the cap ends the oldest)."""

    def __init__(
        self,
        ttl_s: float = SESSION_TTL_S,
        cap: int = MAX_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.cap = cap
        self._clock = clock
        self._live: OrderedDict[bytes, tuple[float, str]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._live)

    @staticmethod
    def _key(session_id: str) -> bytes:
        return hashlib.sha256(session_id.encode("utf-8", "replace")).digest()

    def _purge(self, now: float) -> None:
        while self._live:
            key, (expires, _) = next(iter(self._live.items()))
            if expires > now:
                break
            del self._live[key]

    def create(self, name: str) -> str:
        """A new session for the token named `name`; returns its id (the cookie's value)."""
        now = self._clock()
        self._purge(now)
        while len(self._live) >= self.cap:
            self._live.popitem(last=False)
        session_id = secrets.token_urlsafe(32)
        self._live[self._key(session_id)] = (now + self.ttl_s, name)
        return session_id

    def get(self, session_id: str) -> str | None:
        """The token name a live session was opened with, or None."""
        now = self._clock()
        self._purge(now)
        entry = self._live.get(self._key(session_id))
        return entry[1] if entry is not None else None

    def end(self, session_id: str) -> None:
        self._live.pop(self._key(session_id), None)


def _has_port(name: str) -> bool:
    return name.rpartition("]")[2].count(":") == 1 if name.startswith("[") else ":" in name


@dataclass
class Access:
    """What the guard checks against: this node's tokens, sessions, names and limits."""

    tokens: TokenSet
    hosts: tuple[str, ...] = LOOPBACK_NAMES
    max_body_bytes: int = 1024 * 1024
    side: str = "?"
    sessions: Sessions = field(default_factory=Sessions)
    _by_port: dict[int, tuple[frozenset[str], frozenset[str]]] = field(default_factory=dict)

    def names(self, port: int) -> tuple[frozenset[str], frozenset[str]]:
        """(Host header values accepted, Origin header values accepted) for the API's port."""
        cached = self._by_port.get(port)
        if cached is None:
            with_port = {h if _has_port(h) else f"{h}:{port}" for h in self.hosts}
            hosts = frozenset({*self.hosts, *with_port})
            origins = frozenset(f"http://{h}" for h in with_port)
            cached = self._by_port[port] = (hosts, origins)
        return cached

    @staticmethod
    def cookie_name(port: int) -> str:
        """Per port: browsers keep one cookie jar per host name, whatever the port."""
        return f"clearline_console_{port}"


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int, size: int | None = None) -> None:
        got = f"is {size} bytes" if size is not None else "goes past the limit"
        super().__init__(
            413,
            f"the request body {got}; this node reads at most {limit} bytes "
            "([limits] max_body_bytes)",
        )


class RefusalError(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


def _challenge(needed: Role | None, error: str | None = None, description: str = "") -> str:
    parts = [f'realm="{REALM}"']
    if error is not None:
        parts.append(f'error="{error}"')
    if description:
        parts.append(f'error_description="{description}"')
    if needed is not None:
        parts.append(f'scope="{needed.value}"')
    return "Bearer " + ", ".join(parts)


def route_key(routes: list[BaseRoute], scope: Scope) -> tuple[str, str] | None:
    """(method, route path) of the route that would serve the request, HEAD read as GET: the
    first whose path pattern and methods match, as the router picks it."""
    method = scope["method"]
    path = scope["path"]
    for route in routes:
        pattern = getattr(route, "path_regex", None)
        if pattern is None or not pattern.match(path):
            continue
        methods = getattr(route, "methods", None)
        if methods is None or method in methods:
            return ("GET" if method == "HEAD" else method), str(getattr(route, "path", ""))
    return None


def api_port(scope: Scope) -> int:
    """The port the request came in on (the API's own)."""
    server = scope.get("server")
    return int(server[1]) if server and server[1] is not None else 80


def needed_role(key: tuple[str, str] | None) -> Role | None:
    if key is None or key not in ROUTE_ROLES:
        return UNLISTED
    return ROUTE_ROLES[key]


class Guard:
    """The checks above, before any route runs."""

    def __init__(self, app: ASGIApp, access: Access, routes: list[BaseRoute]) -> None:
        self.app = app
        self.access = access
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})
            return
        try:
            limit = self.check(scope)
        except RefusalError as refusal:
            await _refuse(send, refusal)
            return
        await self._limited(scope, receive, send, limit)

    def check(self, scope: Scope) -> int:
        """Refuse (raise RefusalError) or return the body limit."""
        headers = _headers(scope)
        access = self.access
        port = api_port(scope)
        hosts, origins = access.names(port)
        host = headers.get("host", "").lower()
        if host not in hosts:
            shown = f"Host {host!r}" if host else "no Host header"
            raise RefusalError(
                421,
                f"{shown} is not a name of this node's API; expected one of "
                f"{', '.join(access.hosts)} (with or without :{port}); "
                "add names to [api] hosts",
            )
        key = route_key(self.routes, scope)
        if key is None and not scope["path"].endswith("/"):
            # The router answers /console with a redirect to /console/: as public as that.
            slashed = route_key(self.routes, {**scope, "path": scope["path"] + "/"})
            if slashed is not None and ROUTE_ROLES.get(slashed, UNLISTED) is None:
                key = slashed
        method = scope["method"]
        origin = headers.get("origin")
        if (
            method not in SAFE_METHODS
            and origin is not None
            and key not in NO_ORIGIN_CHECK
            and origin.lower() not in origins
        ):
            raise RefusalError(
                403,
                f"cross-origin {method} refused: Origin {origin!r} is not this node's; "
                f"expected {' or '.join(sorted(origins))}",
            )
        needed = needed_role(key)
        if needed is not None:
            caller = self.authenticate(headers, method, needed, port)
            if not caller.role.grants(needed):
                raise RefusalError(
                    403,
                    f"this call needs the {needed.value} role; "
                    f"the {caller.name} presented is {caller.role.value}",
                    {"WWW-Authenticate": _challenge(needed, "insufficient_scope")},
                )
        length = headers.get("content-length")
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                raise RefusalError(400, f"Content-Length {length[:40]!r} is not a number") from None
            if size > access.max_body_bytes:
                raise RefusalError(413, BodyTooLarge(access.max_body_bytes, size).detail)
        return access.max_body_bytes

    def authenticate(self, headers: dict[str, str], method: str, needed: Role, port: int) -> Caller:
        authorization = headers.get("authorization")
        if authorization is not None:
            scheme, _, token = authorization.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise RefusalError(
                    401,
                    "the Authorization header must be 'Bearer TOKEN'",
                    {"WWW-Authenticate": _challenge(needed, "invalid_request")},
                )
            caller = self.access.tokens.check(token.strip())
            if caller is None:
                raise RefusalError(
                    401,
                    "the bearer token presented is not one of this node's API tokens",
                    {"WWW-Authenticate": _challenge(needed, "invalid_token")},
                )
            return Caller(f"token {caller.name!r}", caller.role)
        cookie = cookie_parser(headers.get("cookie", "")).get(self.access.cookie_name(port))
        challenge = {"WWW-Authenticate": _challenge(needed)}
        if cookie is not None and method in ("GET", "HEAD"):
            name = self.access.sessions.get(cookie)
            if name is None:
                raise RefusalError(
                    401, "the console session has ended; sign in again at /console/", challenge
                )
            return Caller("console session", Role.OBSERVER)
        if cookie is not None:
            raise RefusalError(
                401,
                f"this call needs a bearer token with the {needed.value} role "
                "(Authorization: Bearer TOKEN); a console session only reads",
                challenge,
            )
        raise RefusalError(
            401,
            f"this call needs a bearer token with the {needed.value} role "
            "(Authorization: Bearer TOKEN); none was presented",
            challenge,
        )

    async def _limited(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        received = 0
        started = False

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def send_watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive_limited, send_watched)
        except BodyTooLarge as exc:
            if started:
                raise
            await _refuse(send, RefusalError(413, exc.detail))


def _headers(scope: Scope) -> dict[str, str]:
    """Request headers, names lower-cased; of a repeated header, the first."""
    out: dict[str, str] = {}
    for name, value in scope["headers"]:
        out.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return out


async def _refuse(send: Send, refusal: RefusalError) -> None:
    body = json.dumps({"detail": refusal.detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in refusal.headers.items()),
    ]
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def uncovered(routes: list[BaseRoute]) -> list[tuple[str, str]]:
    """Routes of the app that ROUTE_ROLES does not name (each must be named)."""
    missing = []
    for route in routes:
        path = str(getattr(route, "path", ""))
        methods = getattr(route, "methods", None) or {"GET"}
        for method in sorted(set(methods) - {"HEAD"}):
            if (method, path) not in ROUTE_ROLES:
                missing.append((method, path))
    return missing


def document(schema: dict[str, Any]) -> dict[str, Any]:
    """Bearer authentication and each operation's role, in the OpenAPI description."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})["bearer"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token of this node (keys init writes one per role: "
        "KEYS_DIR/SIDE.api-token.ROLE). Roles: observer (every read), sensor (observer, "
        "plus observations and telemetry), operator (sensor, plus actions and checkpoints).",
    }
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            role = ROUTE_ROLES.get((method.upper(), path), UNLISTED)
            if role is None:
                continue
            operation["security"] = [{"bearer": []}]
            note = f"Needs the {role.value} role."
            description = operation.get("description")
            operation["description"] = f"{description}\n\n{note}" if description else note
            responses = operation.setdefault("responses", {})
            responses["401"] = {"description": "no credential, or not one of this node's"}
            responses["403"] = {"description": f"the credential's role is below {role.value}"}
    return schema
