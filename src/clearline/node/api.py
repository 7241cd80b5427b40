"""The node's local API, for its own side's systems: HTTP + JSON, server-sent events, metrics.

Bound to loopback by default, and guarded (node/auth.py): the Host header must
name the node, every call needs a bearer token of the role `ROUTE_ROLES` names,
cross-origin POSTs are refused, and request bodies are bounded. The OpenAPI
description is served at /openapi.json and published in docs/openapi.json (a
test keeps it current).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import gzip
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field

from clearline import __version__
from clearline.doctrine.registry import OwnAsset
from clearline.errors import LogStoreError
from clearline.gate import ProposedAction
from clearline.log import merkle, tiles
from clearline.log.note import signed_checkpoint
from clearline.node.auth import Access, Guard, document, uncovered
from clearline.node.history import answer_view
from clearline.node.node import Outcome, OutcomeKind
from clearline.node.tokens import TokenSet
from clearline.protocol.messages import (
    Actor,
    Answer,
    AssetKind,
    AssetRecord,
    AutonomyMode,
    Intent,
    Mission,
    Position,
    TrackReport,
)

Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:/-]{1,64}$")]

MAX_BATCH_OBSERVATIONS = 1024
"""Observations one batch call takes (a swarm larger than this is sent in several)."""
SHOWN_ERRORS = 20
"""A 422 lists at most this many validation errors."""
SHOWN_INPUT = 120
"""Characters of an offending input a 422 echoes back."""
TILES = "/v1/log/tiles"
"""The C2SP tlog-tiles prefix of this node's log."""
IMMUTABLE = "private, max-age=31536000, immutable"
"""A tile at a path never changes (a partial one is a prefix of what the full one will
be); private, because only this side's observers may read it."""
CHECKPOINT_CACHE = "no-cache"
"""The checkpoint moves on: C2SP asks that it not be cached beyond a few seconds."""


def _accepts_gzip(header: str) -> bool:
    """Whether an Accept-Encoding header names gzip without refusing it (q=0)."""
    for item in header.split(","):
        coding, *params = (part.strip() for part in item.split(";"))
        if coding.lower() != "gzip":
            continue
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    return float(value) > 0
                except ValueError:
                    return False
        return True
    return False


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Where(_In):
    lat: float = Field(ge=-90, le=90, description="degrees")
    lon: float = Field(ge=-180, le=180, description="degrees")
    alt_m: int = Field(default=0, ge=-12_000, le=1_000_000)

    def position(self) -> Position:
        return Position(round(self.lat * 1e6), round(self.lon * 1e6), self.alt_m)


class Observation(_In):
    """A track one of our systems flagged: ask the peer about it."""

    track_id: Ident
    position: Where
    looks_like: AssetKind = AssetKind.UNKNOWN
    count: int = Field(default=1, ge=1, le=100_000)
    heading_deg: int | None = Field(default=None, ge=0, le=359)
    speed_mps: int | None = Field(default=None, ge=0, le=100_000)
    ttl_ms: int | None = Field(default=None, ge=10, le=3_600_000)


class AnswerOut(BaseModel):
    claim: str
    mission: str | None
    armed: bool | None
    intent: str | None
    asset_id: str | None
    position: dict[str, float | int] | None


class ClarificationOut(BaseModel):
    query_seq: int | None
    outcome: OutcomeKind
    elapsed_ms: float | None
    answer: AnswerOut | None
    logged_index: int | None = Field(
        description="log index of the peer's signed answer, returned only once it is committed"
    )
    reason: str


class ObservationBatch(_In):
    """A swarm: many tracks flagged at once, asked about together."""

    observations: list[Observation] = Field(min_length=1, max_length=MAX_BATCH_OBSERVATIONS)
    ttl_ms: int | None = Field(default=None, ge=10, le=3_600_000)


class BatchItemOut(ClarificationOut):
    index: int = Field(description="position of the observation in the request")
    track_id: str


class ActionIn(_In):
    action_id: Ident
    actor: Actor = Actor.AUTONOMOUS
    rung: Ident
    domain: Ident
    target: Ident | None = None
    approvals: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9+/=_-]{1,1400}$")]] = Field(
        default_factory=list,
        max_length=10,
        description="officers' signed approvals, base64 COSE_Sign1 (`clearline officer "
        "approve`); an act is human only if they verify against the roster",
    )

    def approval_bytes(self) -> tuple[bytes, ...]:
        out = []
        for i, text in enumerate(self.approvals):
            try:
                # Standard or URL-safe alphabet, padding optional: what officers paste varies.
                standard = text.replace("-", "+").replace("_", "/").rstrip("=")
                out.append(base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True))
            except (binascii.Error, ValueError):
                raise HTTPException(
                    422, f"approvals[{i}]: expected base64 of an approval's COSE_Sign1"
                ) from None
        return tuple(out)


class DecisionOut(BaseModel):
    verdict: str
    rule: str
    reason: str
    until_us: int | None
    logged_index: int


class AssetIn(_In):
    asset_id: Ident
    kind: AssetKind
    mission: Mission
    armed: bool
    autonomy: AutonomyMode = AutonomyMode.AUTONOMOUS
    intent: Intent = Intent.TRANSITING
    position: Where


class TelemetryIn(_In):
    assets: list[AssetIn] = Field(min_length=1, max_length=256)


def _answer_out(answer: Answer | None) -> AnswerOut | None:
    return None if answer is None else AnswerOut(**answer_view(answer))


def _clarification_out(outcome: Outcome) -> ClarificationOut:
    return ClarificationOut(
        query_seq=outcome.query_seq,
        outcome=outcome.outcome,
        elapsed_ms=outcome.elapsed_us / 1000 if outcome.elapsed_us is not None else None,
        answer=_answer_out(outcome.answer),
        logged_index=outcome.logged_index,
        reason=outcome.reason,
    )


def _clip(value: Any) -> Any:
    """`value`, or the start of its JSON text if that is long: errors must not echo whole inputs."""
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        # Not JSON as it stands (bytes of a non-JSON body, NaN, infinity): shown as text.
        text = repr(value)
        value = text
    if len(text) <= SHOWN_INPUT:
        return value
    return f"{text[:SHOWN_INPUT]}... ({len(text)} characters)"


def validation_errors(errors: list[Any]) -> list[dict[str, Any]]:
    """Validation errors as a 422 shows them: at most SHOWN_ERRORS, each input clipped."""
    shown: list[dict[str, Any]] = []
    for error in errors[:SHOWN_ERRORS]:
        item = {k: v for k, v in dict(error).items() if k in ("type", "loc", "msg")}
        if "input" in error:
            item["input"] = _clip(error["input"])
        if error.get("ctx"):
            item["ctx"] = {str(k): _clip(v) for k, v in dict(error["ctx"]).items()}
        shown.append(item)
    if len(errors) > SHOWN_ERRORS:
        shown.append(
            {
                "type": "more",
                "loc": [],
                "msg": f"{len(errors) - SHOWN_ERRORS} more errors not shown",
            }
        )
    return shown


STREAM_POLL_S = 0.5
"""How often an idle event stream looks whether the node has let its reader go."""
STREAM_KEEP_ALIVE_S = 15
"""An idle event stream sends a comment this often, so that proxies keep it open."""


class _EventStream(StreamingResponse):
    """An SSE response that gives its subscriber slot back however it ends, even if the client
    goes away before the first event."""

    def __init__(self, node: Any, queue: asyncio.Queue[dict[str, Any]], body: Any) -> None:
        super().__init__(body, media_type="text/event-stream")
        self._node = node
        self._queue = queue

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._node.subscribers.discard(self._queue)


def build_app(node: Any) -> FastAPI:
    """The API of one running `Node` (None: the app's shape only, for its OpenAPI text)."""
    from clearline.node.link import wall_us

    app = FastAPI(
        title="clearline node local API",
        version=__version__,
        description="For a side's own systems: ask the peer about tracks, put proposed actions "
        "through the gate, publish telemetry, watch the link and the log. Every call needs a "
        "bearer token (Authorization: Bearer TOKEN) of the role it names; keys init writes one "
        "per role.",
    )
    if node is not None:
        config = node.config
        access = Access(
            node.tokens, config.api.allowed_hosts(), config.limits.max_body_bytes, node.side
        )
    else:
        access = Access(TokenSet([]))
    app.add_middleware(Guard, access=access, routes=app.router.routes)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_errors(list(exc.errors()))}, status_code=422)

    @app.get("/v1/policy")
    async def policy() -> dict[str, Any]:
        """The gate policy in force: the ladder, caps and exclusions."""
        p = node.policy
        return {
            "name": p.name,
            "hash": p.hash.hex(),
            "ladder": [{"name": r.name, "score": r.score, "kinetic": r.kinetic} for r in p.ladder],
            "autonomy_cap": p.autonomy_cap,
            "fail_safe": {"degraded": p.fail_safe.degraded_cap, "down": p.fail_safe.down_cap},
            "excluded_domains": sorted(p.exclusions),
            "excluded_rungs": sorted(p.excluded_rungs, key=p.rung_index.__getitem__),
            "roster": {
                "hash": node.roster.hash.hex(),
                "side": node.roster.side,
                "officers": [
                    {"id": o.id, "public_key": o.public_key} for o in node.roster.officers
                ],
            },
        }

    @app.get("/v1/approvals/pending")
    async def pending_approvals() -> dict[str, Any]:
        """Acts the gate referred to a human, newest last: what awaits officers' approval."""
        return {"pending": list(node.pending_approval.values())}

    @app.get("/v1/link")
    async def link() -> dict[str, Any]:
        """Link state, session, last heartbeat round trip."""
        current = node.link
        session = current.session if current is not None else None
        return {
            "side": node.side,
            "peer": node.peer_side,
            "state": node.gate.context.link.value,
            "connected": current is not None,
            "session_id": session.session_id.hex() if session and session.session_id else None,
            "rtt_ms": session.rtt_us / 1000 if session and session.rtt_us is not None else None,
            "policy_hash": node.policy.hash.hex(),
            "roster_hash": node.roster.hash.hex(),
            "peer_policy_hash": node.peer_authority["policy"],
            "peer_roster_hash": node.peer_authority["roster"],
            "witness": node.witness_status(),
        }

    @app.post("/v1/observations")
    async def observe(observation: Observation, durable: bool = False) -> ClarificationOut:
        """Ask the peer about a track; returns as soon as the signed answer is verified (or the
        query expires). With `durable=true`, waits until the answer is committed to the log."""
        track = TrackReport(
            observation.track_id,
            observation.position.position(),
            wall_us(),
            observation.looks_like,
            observation.count,
            observation.heading_deg,
            observation.speed_mps,
        )
        return _clarification_out(await node.clarify(track, observation.ttl_ms, durable))

    @app.post(
        "/v1/observations/batch",
        response_class=StreamingResponse,
        responses={
            200: {
                "description": "one JSON object per line (application/x-ndjson), one per "
                "observation, as each clarification ends; a last line "
                '`{"done": true, "answered": N, "expired": N, "not_sent": N}`',
                "content": {"application/x-ndjson": {"schema": BatchItemOut.model_json_schema()}},
            }
        },
    )
    async def observe_batch(batch: ObservationBatch) -> StreamingResponse:
        """Ask the peer about many tracks at once (a swarm): sent as few Queries as the peer
        takes, each result streamed as its clarification ends."""
        now = wall_us()
        tracks = [
            TrackReport(
                o.track_id,
                o.position.position(),
                now,
                o.looks_like,
                o.count,
                o.heading_deg,
                o.speed_mps,
            )
            for o in batch.observations
        ]
        duplicated = len({t.track_id for t in tracks}) != len(tracks)
        if duplicated:
            raise HTTPException(422, "observations: a track_id appears twice in one batch")

        async def lines() -> AsyncIterator[bytes]:
            counts = {"answered": 0, "expired": 0, "not_sent": 0}
            async for ended in node.clarify_many_together(tracks, batch.ttl_ms):
                chunk = []
                for index, outcome in ended:
                    counts[outcome.outcome] += 1
                    item = {
                        "index": index,
                        "track_id": tracks[index].track_id,
                        **_clarification_out(outcome).model_dump(mode="json"),
                    }
                    chunk.append(json.dumps(item).encode() + b"\n")
                yield b"".join(chunk)
            yield json.dumps({"done": True, **counts}).encode() + b"\n"

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    @app.post("/v1/actions")
    async def act(action: ActionIn) -> DecisionOut:
        """The gate's decision on a proposed action, returned once its record is committed."""
        decision, index = await node.decide(
            ProposedAction(
                action.action_id,
                action.actor,
                action.rung,
                action.domain,
                action.target,
                action.approval_bytes(),
            )
        )
        return DecisionOut(
            verdict=decision.verdict.value,
            rule=decision.rule.value,
            reason=decision.reason,
            until_us=decision.until,
            logged_index=index,
        )

    @app.post("/v1/telemetry")
    async def telemetry(body: TelemetryIn) -> dict[str, Any]:
        """Publish our own assets: they feed the registry our answers come from."""
        now = wall_us()
        records = [
            OwnAsset(
                AssetRecord(
                    a.asset_id,
                    a.kind,
                    a.mission,
                    a.armed,
                    a.autonomy,
                    now,
                    position=a.position.position(),
                ),
                a.intent,
            )
            for a in body.assets
        ]
        sent = node.publish(records)
        return {
            "accepted": len(records),
            "sent_to_peer": sent,
            "registry": len(node.registry.assets),
        }

    @app.get("/v1/clarifications")
    async def clarifications() -> dict[str, Any]:
        """Clarifications still open, with their deadlines."""
        now = wall_us()
        return {
            "open": [
                {
                    "query_seq": q,
                    "track": track,
                    "deadline_us": d,
                    "remaining_ms": max(0, d - now) / 1000,
                }
                for q, track, d in node.endpoint.open_queries()
            ]
        }

    @app.get("/v1/events")
    async def events(limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> dict[str, Any]:
        """The most recent events, oldest first."""
        recent = list(node.events)[-limit:]
        return {"events": recent}

    @app.get("/v1/history")
    async def history() -> dict[str, Any]:
        """What already happened, oldest first: the latest messages, round trips,
        clarifications (`query` and `clarification`), gate decisions, checkpoints and changes
        of the peer's authority, kept per kind so that heartbeats never push a decision out,
        and read back from the log when the node starts (`from_log`: such a clarification has
        no measured time). Each event has an `id`, as on the stream, and ids only increase
        (across restarts too): load this, then take from GET /v1/events/stream the events
        with larger ids."""
        return {"events": node.history.events()}

    @app.get("/v1/events/stream", responses={503: {"description": "too many streams open"}})
    async def stream() -> StreamingResponse:
        """Server-sent events: every event as it happens. At most `[limits] max_event_streams`
        at once; past that, 503."""
        cap = node.config.limits.max_event_streams
        if len(node.subscribers) >= cap:
            raise HTTPException(
                503,
                f"{cap} event streams are open, the most this node serves "
                "([limits] max_event_streams); close one, or poll GET /v1/events",
            )
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)
        node.subscribers.add(queue)

        async def generate() -> AsyncIterator[bytes]:
            # The stream ends once the node lets its reader go (it fell behind, or the node
            # is stopping) and what was queued is sent: a stream open in a browser must not
            # hold the node up.
            yield b": clearline events\n\n"
            loop = asyncio.get_running_loop()
            said = loop.time()
            while queue in node.subscribers or not queue.empty():
                try:
                    async with asyncio.timeout(STREAM_POLL_S):
                        event = await queue.get()
                except TimeoutError:
                    if loop.time() - said >= STREAM_KEEP_ALIVE_S:
                        said = loop.time()
                        yield b": keep-alive\n\n"
                    continue
                said = loop.time()
                yield f"data: {json.dumps(event)}\n\n".encode()

        return _EventStream(node, queue, generate())

    @app.get("/v1/log")
    async def log_state() -> dict[str, Any]:
        """Size and root of the committed log."""
        return {"size": node.log.size, "root": node.log.root.hex(), "path": str(node.log_path)}

    @app.post("/v1/log/checkpoint")
    async def checkpoint() -> dict[str, Any]:
        """Record a signed checkpoint now and send it to the peer."""
        index = await node.checkpoint()
        return {"index": index, "size": node.log.size, "root": node.log.root.hex()}

    @app.get("/v1/log/checkpoints")
    async def checkpoints() -> dict[str, Any]:
        """The latest signed checkpoints: ours (recorded in our log) and the peer's (received)."""
        return {side: list(entries) for side, entries in node.checkpoints.items()}

    @app.get("/v1/log/proof/{index}")
    async def proof(index: int) -> dict[str, Any]:
        """Inclusion proof of entry `index` in the current tree, checked before it is served."""

        def build(store: Any) -> dict[str, Any]:
            size = store.size
            if not 0 <= index < size:
                raise HTTPException(404, f"no entry {index}; the log has {size}")
            path = store.inclusion_proof(index)
            leaf = store.leaf_hash(index)
            root = store.root()
            merkle.verify_inclusion(leaf, index, size, path, root)
            return {
                "index": index,
                "size": size,
                "leaf_hash": leaf.hex(),
                "root": root.hex(),
                "proof": [p.hex() for p in path],
            }

        result: dict[str, Any] = await node.log.call(build)
        return result

    @app.get(
        f"{TILES}/checkpoint",
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {}}, "description": "a C2SP signed note"},
            404: {"description": "no checkpoint signed yet"},
        },
    )
    async def tiles_checkpoint() -> Response:
        """C2SP tlog-tiles: this node's log as a tlog-checkpoint signed note (origin
        `clearline/SIDE/KID`, size, base64 root; an Ed25519 note signature by the log key), at
        the size of the latest checkpoint the node signed. Fetch tiles for that size below
        `/v1/log/tiles/tile/`."""
        latest = await node.log.call(lambda store: store.latest_checkpoint())
        if latest is None:
            raise HTTPException(
                404, "this log has no signed checkpoint yet: POST /v1/log/checkpoint makes one"
            )
        size, root = latest
        note = signed_checkpoint(node.side, node.identity.signer, size, root)
        return Response(
            str(note),
            media_type="text/plain; charset=utf-8",
            headers={"Cache-Control": CHECKPOINT_CACHE},
        )

    @app.get(
        f"{TILES}/tile/{{path:path}}",
        response_class=Response,
        responses={
            200: {"content": {"application/octet-stream": {}}, "description": "the tile"},
            404: {"description": "not a tile path, or a tile the log does not have yet"},
        },
    )
    async def tile(path: str, request: Request) -> Response:
        """C2SP tlog-tiles: the hash tile `<L>/<N>[.p/<W>]` (256 hashes of level L, or the
        first W of them) or the entry bundle `entries/<N>[.p/<W>]` (each entry a big-endian
        uint16 length and the exact COSE_Sign1 bytes logged), N in three-digit groups
        (`x001/234`). Every tile the log has is served, partial ones for any width it has
        reached; bundles are gzipped for a client that accepts it."""
        try:
            where = tiles.parse_tile_path(path)
        except ValueError as exc:
            raise HTTPException(404, str(exc)) from None

        def read(store: Any) -> bytes | None:
            if where.level is None:
                bundle: bytes | None = store.entry_bundle(where.index, where.width)
                return bundle
            hashes: bytes | None = store.tile(where.level, where.index, where.width)
            return hashes

        try:
            data = await node.log.call(read)
        except LogStoreError as exc:
            raise HTTPException(500, str(exc)) from None
        if data is None:
            raise HTTPException(
                404, f"the log does not have tile {path} (yet): it holds {node.log.size} entries"
            )
        headers = {"Cache-Control": IMMUTABLE}
        if where.level is None:
            headers["Vary"] = "Accept-Encoding"
            if _accepts_gzip(request.headers.get("accept-encoding", "")):
                data = await asyncio.to_thread(gzip.compress, data)
                headers["Content-Encoding"] = "gzip"
        return Response(data, media_type="application/octet-stream", headers=headers)

    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus metrics."""
        return Response(generate_latest(node.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    from clearline.console.server import mount

    mount(app, access)
    missing = uncovered(app.router.routes)
    if missing:
        raise RuntimeError(f"routes missing from auth.ROUTE_ROLES: {missing}")
    described = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document(described())
        return described()

    app.openapi = openapi  # type: ignore[method-assign]
    return app
