"""The local API is authenticated and bounded: a real node refuses what it must, and says why."""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from clearline.node.api import build_app
from clearline.node.auth import ROUTE_ROLES, UNLISTED, Access, Sessions, uncovered
from clearline.node.tokens import Role, TokenSet
from tests.node.harness import (
    NUCLEAR_BY_NAME,
    SWARM,
    NodeProcess,
    make_keys,
    running,
    start_node,
    wait_until,
    write_config,
)

STREAMS = 3


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """One PRC node (listening, no peer needed), with a small event-stream cap."""
    folder = tmp_path_factory.mktemp("auth")
    make_keys(folder, "US", "PRC")
    extra = f"[limits]\nmax_event_streams = {STREAMS}"
    started = start_node(write_config(folder, "PRC", "US", listen=True, extra=extra))
    with running(started):
        yield started


def _port(node: NodeProcess) -> int:
    return int(node.api.rsplit(":", 1)[1])


def _log_size(node: NodeProcess) -> int:
    with node.client("observer") as client:
        size: int = client.get("/v1/log").json()["size"]
    return size


def _logged_since(node: NodeProcess, size: int) -> int:
    """How many entries were logged since the log had `size`: log one more and read its
    index. The log writer takes entries in order, so whatever a refused request might have
    queued would come before it, however late; no waiting and hoping."""
    action_id = f"barrier-{next(_BARRIERS)}"
    with node.client("operator") as client:
        barrier = client.post(
            "/v1/actions", json={"action_id": action_id, "rung": "monitor", "domain": "air"}
        ).json()
    index: int = barrier["logged_index"]
    return index - size


_BARRIERS = itertools.count()


def _decisions(node: NodeProcess) -> list[dict[str, object]]:
    return node.events("decision")


def _example_path(path: str) -> str:
    return path.replace("{index}", "0")


def test_an_unauthenticated_nuclear_action_is_refused_and_never_logged(node: NodeProcess) -> None:
    before = _log_size(node)
    response = httpx.post(f"{node.api}/v1/actions", json=NUCLEAR_BY_NAME)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer realm="clearline"')
    assert response.json() == {
        "detail": "this call needs a bearer token with the operator role "
        "(Authorization: Bearer TOKEN); none was presented"
    }
    for header in ("Bearer not-a-token", "Basic dXM6cGFzcw==", "Bearer"):
        refused = httpx.post(
            f"{node.api}/v1/actions", json=NUCLEAR_BY_NAME, headers={"Authorization": header}
        )
        assert refused.status_code == 401, header
        assert "error=" in refused.headers["www-authenticate"]
    assert _logged_since(node, before) == 0
    assert not any(d.get("action") == "a2" for d in _decisions(node))


def test_a_foreign_host_header_is_refused(node: NodeProcess) -> None:
    """DNS rebinding: a page on evil.example that resolves to 127.0.0.1 sends its own name."""
    port = _port(node)
    with node.client("observer") as client:
        for host in ("evil.example", f"evil.example:{port}", f"localhost.evil.example:{port}"):
            refused = client.get("/v1/link", headers={"Host": host})
            assert refused.status_code == 421, host
            assert "is not a name of this node's API" in refused.json()["detail"]
            assert "[api] hosts" in refused.json()["detail"]
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "localhost"):
            assert client.get("/v1/link", headers={"Host": host}).status_code == 200, host
        assert client.get("/v1/link", headers={"Host": "localhost:1"}).status_code == 421
    # Even the console's static files and sign-in answer only to the node's names.
    page = httpx.get(f"{node.api}/console/", headers={"Host": "evil.example"})
    assert page.status_code == 421


def test_a_cross_origin_post_never_acts(node: NodeProcess) -> None:
    """A body-less cross-origin POST /v1/log/checkpoint: refused whatever it carries."""
    before = _log_size(node)
    port = _port(node)
    for origin in ("http://evil.example", f"http://localhost:{port + 1}", "null"):
        bare = httpx.post(f"{node.api}/v1/log/checkpoint", headers={"Origin": origin})
        assert bare.status_code == 403, origin
        assert "cross-origin POST refused" in bare.json()["detail"]
        with node.client("operator") as client:
            armed = client.post("/v1/log/checkpoint", headers={"Origin": origin})
        assert armed.status_code == 403, origin
    assert _logged_since(node, before) == 0, "a refused checkpoint was recorded"
    with node.client("operator") as client:
        own = client.post("/v1/log/checkpoint", headers={"Origin": f"http://localhost:{port}"})
        assert own.status_code == 200, own.text
        assert client.post("/v1/log/checkpoint").status_code == 200, "no Origin: not a browser"


def test_every_route_is_in_the_table_and_refuses_the_uncredentialed(node: NodeProcess) -> None:
    app = build_app(None)
    assert uncovered(app.router.routes) == []
    walked = 0
    for route in app.router.routes:
        path = str(getattr(route, "path", ""))
        for method in sorted((getattr(route, "methods", None) or {"GET"}) - {"HEAD"}):
            needed = ROUTE_ROLES[(method, path)]
            url = f"{node.api}{_example_path(path)}"
            if needed is None:
                assert path in ("/", "/console", "/console/login", "/console/logout")
                continue
            walked += 1
            refused = httpx.request(method, url, timeout=10)
            assert refused.status_code == 401, (method, path, refused.text)
            assert refused.headers["www-authenticate"].startswith("Bearer ")
            assert refused.headers["content-type"] == "application/json"
            detail = refused.json()["detail"]
            assert f"needs a bearer token with the {needed.value} role" in detail
            for weaker in Role:
                if weaker.grants(needed):
                    continue
                with node.client(weaker.value) as client:
                    weak = client.request(method, _example_path(path), json={})
                assert weak.status_code == 403, (method, path, weaker, weak.text)
                assert weak.json() == {
                    "detail": f"this call needs the {needed.value} role; the token "
                    f"{weaker.value!r} presented is {weaker.value}"
                }
                assert "insufficient_scope" in weak.headers["www-authenticate"]
            if method == "GET" and path != "/v1/events/stream":
                with node.client(needed.value) as client:
                    allowed = client.get(_example_path(path))
                assert allowed.status_code in (200, 404), (path, allowed.status_code)
    assert walked >= 17
    # Paths the table does not name still need a credential.
    assert httpx.get(f"{node.api}/v1/nothing-here").status_code == 401
    assert httpx.delete(f"{node.api}/v1/actions").status_code == 401
    with node.client("observer") as client:
        assert client.get("/v1/nothing-here").status_code == 404
    assert UNLISTED is Role.OBSERVER
    # The console page itself holds no data: it is served to anyone on the node's names.
    assert httpx.get(f"{node.api}/console/").status_code == 200
    to_console = httpx.get(f"{node.api}/console", follow_redirects=False)
    assert to_console.status_code == 307
    assert to_console.headers["location"].endswith("/console/")


def test_the_published_description_names_each_role() -> None:
    schema = build_app(None).openapi()
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    actions = schema["paths"]["/v1/actions"]["post"]
    assert actions["security"] == [{"bearer": []}]
    assert actions["description"].endswith("Needs the operator role.")
    assert schema["paths"]["/v1/telemetry"]["post"]["description"].endswith("sensor role.")
    assert schema["paths"]["/v1/link"]["get"]["description"].endswith("observer role.")


def _raw_post(node: NodeProcess, head: str, chunks: Iterator[bytes]) -> tuple[bytes, int]:
    """Send `head` then `chunks` until the node answers or hangs up; (response, bytes sent)."""
    sent = 0
    with socket.create_connection(("127.0.0.1", _port(node)), timeout=20) as sock:
        sock.sendall(head.encode())
        sock.setblocking(False)
        reply = b""
        for chunk in chunks:
            with contextlib.suppress(BlockingIOError):
                reply += sock.recv(65536)
            if reply:
                break
            try:
                sock.setblocking(True)
                sock.sendall(chunk)
                sock.setblocking(False)
                sent += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        sock.setblocking(True)
        with contextlib.suppress(ConnectionResetError, TimeoutError):
            while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
                data = sock.recv(65536)
                if not data:
                    break
                reply += data
    return reply, sent


def _rss_kib(node: NodeProcess) -> int:
    status = Path(f"/proc/{node.process.pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])


def test_a_huge_body_is_refused_early_without_being_buffered(node: NodeProcess) -> None:
    token = node.token("sensor")
    port = _port(node)
    baseline = _rss_kib(node)
    declared = 69 * 1024 * 1024
    head = (
        f"POST /v1/telemetry HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    )
    began = time.monotonic()
    reply, sent = _raw_post(node, head, iter([b" " * 65536] * 64))
    assert reply.startswith(b"HTTP/1.1 413 "), reply[:200]
    assert sent < 8 * 1024 * 1024, "the node read on instead of refusing"
    assert time.monotonic() - began < 5
    body = json.loads(reply.split(b"\r\n\r\n", 1)[1])
    assert body["detail"].startswith(f"the request body is {declared} bytes; this node reads")
    # No Content-Length: counted as it is read, refused once past the limit.
    chunked = (
        f"POST /v1/telemetry HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    piece = b" " * 65536
    frame = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    reply, sent = _raw_post(node, chunked, iter([frame] * 256))
    assert reply.startswith(b"HTTP/1.1 413 "), reply[:200]
    assert sent < 8 * 1024 * 1024
    assert "goes past the limit" in reply.decode()
    assert _rss_kib(node) - baseline < 24 * 1024
    # Unauthenticated, the same request is refused before its size matters.
    reply, _ = _raw_post(node, head.replace(f"Authorization: Bearer {token}\r\n", ""), iter([]))
    assert reply.startswith(b"HTTP/1.1 401 ")
    with node.client("sensor") as client:
        assert client.post("/v1/telemetry", json={"assets": [SWARM]}).status_code == 200


def test_validation_errors_do_not_echo_the_input(node: NodeProcess) -> None:
    with node.client("sensor") as client:
        huge = client.post("/v1/telemetry", json={"assets": [{**SWARM, "asset_id": "X" * 500_000}]})
        assert huge.status_code == 422
        assert len(huge.content) < 4096, len(huge.content)
        error = huge.json()["detail"][0]
        assert error["loc"] == ["body", "assets", 0, "asset_id"]
        assert error["input"].startswith('"XXXX') and error["input"].endswith("characters)")
        many = client.post("/v1/telemetry", json={"assets": [{"junk": "y" * 1000}] * 200})
        assert many.status_code == 422
        assert len(many.content) < 16_384, len(many.content)
        detail = many.json()["detail"]
        assert len(detail) == 21
        assert detail[-1]["msg"].endswith("more errors not shown")


def test_event_streams_are_capped_and_give_their_slot_back(node: NodeProcess) -> None:
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(node.client("observer"))
        streams = [
            stack.enter_context(client.stream("GET", "/v1/events/stream")) for _ in range(STREAMS)
        ]
        assert all(s.status_code == 200 for s in streams)
        refused = client.get("/v1/events/stream")
        assert refused.status_code == 503
        assert "max_event_streams" in refused.json()["detail"]
        streams[0].close()

        def slot_back() -> bool:
            with client.stream("GET", "/v1/events/stream") as again:
                return again.status_code == 200

        wait_until(slot_back, 10, "a closed stream never gave its slot back")


def _login(node: NodeProcess, **form: Any) -> httpx.Response:
    return httpx.post(f"{node.api}/console/login", data=form, follow_redirects=False)


def test_console_sessions_read_only_and_never_act(node: NodeProcess) -> None:
    cookie_name = Access.cookie_name(_port(node))
    refused = _login(node, token="not-a-token")
    assert refused.status_code == 401
    assert cookie_name not in refused.cookies
    signed = _login(node, token=node.token("operator"))
    assert signed.status_code == 303
    assert signed.headers["location"] == "/console/"
    set_cookie = signed.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie and "path=/" in set_cookie
    session = signed.cookies[cookie_name]
    cookie = {"Cookie": f"{cookie_name}={session}"}
    assert httpx.get(f"{node.api}/v1/link", headers=cookie).status_code == 200
    # Even an operator's token signs in as an observer, and a session never acts.
    before = _log_size(node)
    port = _port(node)
    for path, body in (("/v1/actions", NUCLEAR_BY_NAME), ("/v1/log/checkpoint", None)):
        acted = httpx.post(
            f"{node.api}{path}",
            json=body,
            headers={**cookie, "Origin": f"http://127.0.0.1:{port}"},
        )
        assert acted.status_code == 401, path
        assert "a console session only reads" in acted.json()["detail"]
    assert _logged_since(node, before) == 0
    # Where to land: only a page of this console.
    assert _login(node, token=node.token("observer"), next="//evil.example/").headers[
        "location"
    ] == ("/console/")
    landing = "/console/?nodes=http://127.0.0.1:1,http://127.0.0.1:2"
    assert _login(node, token=node.token("observer"), next=landing).headers["location"] == landing
    # Passing the form on: only to another node's sign-in on this machine.
    here = f"{node.api}/console/login"
    other = "http://127.0.0.1:1/console/login"
    onward = _login(node, token=node.token("observer"), chain=[here, other])
    assert onward.status_code == 307 and onward.headers["location"] == other
    for elsewhere in ("http://evil.example/console/login", "https://127.0.0.1:1/console/login"):
        kept = _login(node, token=node.token("observer"), chain=[here, elsewhere])
        assert kept.status_code == 303, elsewhere
    # Signing out ends the session.
    out = httpx.post(f"{node.api}/console/logout", headers=cookie, follow_redirects=False)
    assert out.status_code == 303
    ended = httpx.get(f"{node.api}/v1/link", headers=cookie)
    assert ended.status_code == 401
    assert "session has ended" in ended.json()["detail"]
    assert httpx.post(f"{node.api}/console/login", content=b"{}").status_code == 415


def test_sessions_expire_and_are_capped() -> None:
    now = [0.0]
    sessions = Sessions(ttl_s=10, cap=3, clock=lambda: now[0])
    first = sessions.create("observer")
    assert sessions.get(first) == "observer"
    assert sessions.get("forged") is None
    others = [sessions.create("sensor") for _ in range(3)]
    assert len(sessions) == 3
    assert sessions.get(first) is None, "the oldest goes when the cap is reached"
    assert all(sessions.get(s) == "sensor" for s in others)
    now[0] = 11.0
    assert sessions.get(others[-1]) is None
    assert len(sessions) == 0


def test_allowed_names_and_origins() -> None:
    access = Access(TokenSet([]), ("127.0.0.1", "node.example", "proxy.example:443", "[::1]"))
    hosts, origins = access.names(8400)
    assert {"127.0.0.1", "127.0.0.1:8400", "node.example:8400", "[::1]:8400"} <= hosts
    assert "proxy.example:443" in hosts and "proxy.example:8400" not in hosts
    assert "127.0.0.1:8401" not in hosts
    assert origins == {
        "http://127.0.0.1:8400",
        "http://node.example:8400",
        "http://proxy.example:443",
        "http://[::1]:8400",
    }


def test_an_open_event_stream_ends_with_the_node_and_does_not_hold_it_up(
    tmp_path: Path,
) -> None:
    """A console left open in a browser keeps a stream; SIGTERM must still stop the node
    promptly, and the stream's last event says it stopped."""
    make_keys(tmp_path, "US", "PRC")
    started = start_node(write_config(tmp_path, "PRC", "US", listen=True))
    with running(started), started.client("observer") as client:
        with client.stream("GET", "/v1/events/stream", timeout=30) as stream:
            assert stream.status_code == 200
            lines = stream.iter_lines()
            assert next(lines) == ": clearline events"
            began = time.monotonic()
            assert started.stop(timeout=20) == 0
            stopped_after = time.monotonic() - began
            events = [json.loads(line[5:]) for line in lines if line.startswith("data:")]
        assert stopped_after < 10, f"the node took {stopped_after:.1f} s to stop"
        assert events and events[-1]["kind"] == "stopped", events[-3:]
