"""The log as C2SP tlog-tiles over the node's API: the checkpoint note, hash tiles and entry
bundles of a running node, their caching headers, and clear refusals. (tests/interop has a
client nobody here wrote read and verify the same.)"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clearline.log import merkle, tiles
from clearline.log.note import NoteKey, TreeHead, parse_note, verify_note
from clearline.node.keys import load_signer
from tests.node.harness import (
    NodeProcess,
    make_keys,
    running,
    seed_log,
    start_node,
    write_config,
)

RECORDS = 600
TILES = "/v1/log/tiles"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """A PRC node (no peer) whose log holds 600 signed records when it starts."""
    folder = tmp_path_factory.mktemp("tiles")
    make_keys(folder, "US", "PRC")
    seed_log(folder, "PRC", RECORDS)
    started = start_node(write_config(folder, "PRC", "US", listen=True))
    with running(started):
        yield started
    started.stop()


def _checkpoint(node: NodeProcess) -> tuple[TreeHead, httpx.Response]:
    with node.client() as client:
        response = client.get(f"{TILES}/checkpoint")
    assert response.status_code == 200, response.text
    note = parse_note(response.text)
    head = TreeHead.parse(note.text)
    public = load_signer(node.keys / f"{node.side}.signing.key").public_key
    assert [v.key.name for v in verify_note(note, [NoteKey(head.origin, public)])] == [head.origin]
    return head, response


def test_the_checkpoint_is_the_latest_signed_one_as_a_c2sp_note(node: NodeProcess) -> None:
    head, response = _checkpoint(node)
    assert head.size == RECORDS - 1  # the seeded log's checkpoint covers what precedes it
    assert head.origin.startswith("clearline/PRC/")
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    with node.client("operator") as client:
        index = client.post("/v1/log/checkpoint").json()["index"]
    with node.client() as client:
        own = client.get("/v1/log/checkpoints").json()["PRC"][-1]
    later, _ = _checkpoint(node)
    assert (later.size, later.root.hex()) == (index, own["root"]) == (own["size"], own["root"])
    assert later.origin == head.origin


def _get(node: NodeProcess, path: str, **headers: str) -> httpx.Response:
    with node.client() as client:
        return client.get(f"{TILES}/tile/{path}", headers=headers)


def test_tiles_and_bundles_rebuild_the_checkpoint_root(node: NodeProcess) -> None:
    head, _ = _checkpoint(node)
    size = head.size
    leaves = b""
    for n in range(tiles.full_tiles(size, 0) + 1):
        width = min(256, size - n * 256)
        path = tiles.tile_path(0, n, width)
        tile = _get(node, f"0/{path.split('/', 1)[1]}")
        assert tile.status_code == 200, tile.text
        assert tile.headers["content-type"] == "application/octet-stream"
        assert tile.headers["cache-control"] == "private, max-age=31536000, immutable"
        bundle = _get(node, path.replace("0/", "entries/", 1))
        assert bundle.status_code == 200, bundle.text
        entries = tiles.parse_entry_bundle(bundle.content)
        assert b"".join(merkle.leaf_hash(e) for e in entries) == tile.content
        leaves += tile.content
    hashes = [leaves[i : i + 32] for i in range(0, len(leaves), 32)]
    assert len(hashes) == size
    assert merkle.root_hash(hashes) == head.root
    level1 = _get(node, f"1/000.p/{size // 256}")
    assert level1.status_code == 200
    assert level1.content == b"".join(
        merkle.root_hash(hashes[i : i + 256]) for i in range(0, size - 255, 256)
    )


def test_bundles_are_gzipped_for_a_client_that_takes_it(node: NodeProcess) -> None:
    with node.client() as client:
        raw = client.get(f"{TILES}/tile/entries/000", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in raw.headers
        request = client.build_request("GET", f"{TILES}/tile/entries/000")
        request.headers["Accept-Encoding"] = "gzip"
        zipped = client.send(request, stream=True)
        body = zipped.read()  # httpx decodes it
        zipped.close()
    assert zipped.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers["vary"]
    assert body == raw.content
    assert len(gzip.compress(raw.content)) < len(raw.content)


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("0/001/", "not a tile path"),
        ("0/1", "not a tile path"),
        ("0/x000/001", "canonical"),
        ("0/000.p/256", "width is 1 to 255"),
        ("64/000", "above 63"),
        ("data/000", "not a tile path"),
        ("0/999", "does not have tile 0/999 (yet)"),
        ("entries/002.p/255", "does not have tile entries/002.p/255"),
        ("3/000.p/1", "does not have tile 3/000.p/1"),
    ],
)
def test_bad_or_absent_tiles_are_clear_404s(node: NodeProcess, path: str, says: str) -> None:
    response = _get(node, path)
    assert response.status_code == 404
    assert says in response.json()["detail"]
    assert "immutable" not in response.headers.get("cache-control", "")


def test_tiles_need_the_observer_token(node: NodeProcess) -> None:
    for path in (f"{TILES}/checkpoint", f"{TILES}/tile/0/000"):
        refused = httpx.get(f"{node.api}{path}")
        assert refused.status_code == 401
        assert "observer role" in refused.json()["detail"]


def test_nothing_is_served_past_what_the_log_holds(node: NodeProcess, tmp_path: Path) -> None:
    with node.client() as client:
        size = client.get("/v1/log").json()["size"]
    last = size // 256
    assert _get(node, f"0/{last:03d}.p/{size % 256}").status_code == 200
    assert _get(node, f"0/{last:03d}.p/{size % 256 + 1}").status_code == 404
