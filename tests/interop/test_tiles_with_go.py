"""A running node's log, read over HTTP as C2SP tlog-tiles by Go's golang.org/x/mod/sumdb/tlog
(tilecheck.go): the checkpoint opens, every tile and entry verifies against its size and
root, an entry's inclusion and the consistency with an older checkpoint are proved; and any
tile, bundle or checkpoint altered on the way is refused."""

from __future__ import annotations

import base64
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from clearline.log.note import NoteKey, TreeHead, log_origin, parse_note
from clearline.node.keys import load_signer
from tests.node.harness import (
    NodeProcess,
    make_keys,
    running,
    seed_log,
    start_node,
    write_config,
)

RECORDS = 700
"""Two full level-0 tiles and a partial one; a partial level-1 tile of two."""
PREFIX = "/v1/log/tiles"


@dataclass
class Served:
    node: NodeProcess
    vkey: str
    old: TreeHead
    """The checkpoint the seeded log ended with; the node has signed a later one since."""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("tiles")
    make_keys(folder, "US", "PRC")
    seed_log(folder, "PRC", RECORDS)
    signer = load_signer(folder / "keys" / "PRC.signing.key")
    vkey = NoteKey(log_origin("PRC", signer.kid), signer.public_key).vkey()
    node = start_node(write_config(folder, "PRC", "US", listen=True))
    with running(node):
        with node.client() as client:
            old = TreeHead.parse(parse_note(client.get(f"{PREFIX}/checkpoint").text).text)
        with node.client("operator") as client:
            client.post("/v1/log/checkpoint").raise_for_status()
        yield Served(node, vkey, old)
    node.stop()


def _check(
    tilecheck: Path, served: Served, prefix: str, index: int, *flags: str
) -> tuple[int, str]:
    old = f"{served.old.size}:{base64.b64encode(served.old.root).decode()}"
    done = subprocess.run(
        [
            str(tilecheck),
            "-old",
            old,
            *flags,
            prefix,
            served.node.token("observer"),
            served.vkey,
            str(index),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stdout + done.stderr


def test_go_reads_and_verifies_the_whole_log(tilecheck: Path, served: Served) -> None:
    code, out = _check(tilecheck, served, served.node.api + PREFIX, 300, "-all")
    assert code == 0, out
    lines = out.splitlines()
    origin, size, _ = lines[0].split()[1:]
    assert origin == served.vkey.split("+")[0]
    assert int(size) == RECORDS  # the node's own checkpoint, after the seeded log's
    assert f"tree {RECORDS} verified" in lines
    assert any(line.startswith("entry 300 included") for line in lines)
    assert f"entries {RECORDS} verified" in lines
    # x/mod's tiles of a 700-leaf tree: two full at level 0, its partial one at each width
    # from 1 to 188, and the partial level-1 tile at widths 1 and 2
    assert "tiles 192 verified" in lines
    assert f"consistent with {RECORDS - 1}" in lines


def test_go_proves_the_last_entry_from_the_tiles_it_needs(tilecheck: Path, served: Served) -> None:
    code, out = _check(tilecheck, served, served.node.api + PREFIX, RECORDS - 1)
    assert code == 0, out
    assert f"entry {RECORDS - 1} included" in out
    fetched = int(out.split("tiles fetched ")[1].split()[0])
    assert 0 < fetched <= 4, out  # the right edge: partial tiles at levels 0 and 1


class _Tampering(ThreadingHTTPServer):
    """Passes requests to the node, flipping one bit of the last byte of the response to
    `path`: the last hash of a tile, the last entry of a bundle, a checkpoint's newline."""

    def __init__(self, upstream: str, path: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream
        self.path = path
        self.tampered = 0


class _Handler(BaseHTTPRequestHandler):
    server: _Tampering

    def do_GET(self) -> None:
        upstream = httpx.get(
            self.server.upstream + self.path,
            headers={"Authorization": self.headers.get("Authorization", "")},
            timeout=30,
        )
        body = upstream.content
        if self.path == self.server.path and upstream.status_code == 200:
            flipped = bytearray(body)
            flipped[-1] ^= 0x01
            body = bytes(flipped)
            self.server.tampered += 1
        self.send_response(upstream.status_code)
        self.send_header("Content-Type", upstream.headers.get("content-type", ""))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.parametrize(
    ("tampered", "refusal"),
    [
        # the tree hash's tiles: x/mod's TileHashReader refuses them
        ("tile/0/002.p/188", "tree: downloaded inconsistent tile"),
        ("tile/1/000.p/2", "tree: downloaded inconsistent tile"),
        # a full tile on entry 300's path: its proof no longer leads to the root
        ("tile/0/001", "inclusion of 300: invalid transparency proof"),
        # a full tile no proof here reads: not the hashes x/mod builds from the entries
        ("tile/0/000", "tiles: tile/0/000 is not the hashes the entries give"),
        # a bundle's last entry (not the one proved): the entries no longer give the root
        ("tile/entries/001", "entries: the entries give root"),
        ("checkpoint", "checkpoint: "),
    ],
)
def test_go_refuses_what_was_altered_on_the_way(
    tilecheck: Path, served: Served, tampered: str, refusal: str
) -> None:
    proxy = _Tampering(served.node.api, f"{PREFIX}/{tampered}")
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        prefix = f"http://127.0.0.1:{proxy.server_address[1]}{PREFIX}"
        code, out = _check(tilecheck, served, prefix, 300, "-all")
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert proxy.tampered >= 1, f"{tampered} was never fetched: {out}"
    assert code == 1, out
    assert refusal in out, out
