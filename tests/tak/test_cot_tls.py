"""CoT over TLS with client certificates, as TAK servers take it: a client holding a
certificate the node's `tls_client_ca` signed is read; any other is refused in the
handshake, and the node goes on."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from clearline.node.keys import _tls_pair
from clearline.protocol.events import LinkState
from clearline.tak.settings import TakSettings
from tests.tak.test_cot import event_xml
from tests.tak.test_cot_service import service

FAR = "2099-01-01T00:00:00Z"


def _pair(folder: Path, name: str) -> tuple[Path, Path]:
    key, cert = _tls_pair(name, ("127.0.0.1",), 1, None)
    (folder / f"{name}.key").write_bytes(key)
    (folder / f"{name}.crt").write_bytes(cert)
    return folder / f"{name}.crt", folder / f"{name}.key"


def _client(server_crt: Path, pair: tuple[Path, Path] | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=server_crt)
    if pair is not None:
        context.load_cert_chain(*pair)
    return context


async def _send(port: int, context: ssl.SSLContext, data: bytes) -> str:
    """Connect, send, and read to the end: "read" if the node kept the connection open
    until we closed it, else why it did not."""
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"
        )
        writer.write(data)
        await writer.drain()
        try:
            got = await asyncio.wait_for(reader.read(1), 1.0)
        except TimeoutError:
            got = None  # still open: the node is reading us
        writer.close()
        return "read" if got is None else f"closed ({got!r})"
    except (ssl.SSLError, ConnectionError, OSError) as exc:
        return f"refused ({type(exc).__name__})"


def test_only_clients_with_a_certificate_the_ca_signed_are_read(tmp_path: Path) -> None:
    node_crt, _ = _pair(tmp_path, "node")
    member = _pair(tmp_path, "member")
    stranger = _pair(tmp_path, "stranger")
    (tmp_path / "clients.pem").write_bytes(member[0].read_bytes())

    async def run() -> tuple[list[str], list[str]]:
        svc, node = service(
            tmp_path,
            listen=("tls://127.0.0.1:0",),
            tls_cert="node.crt",
            tls_key="node.key",
            tls_client_ca="clients.pem",
        )
        node.gate = SimpleNamespace(context=SimpleNamespace(link=LinkState.UP))  # type: ignore[attr-defined]
        await svc.start()
        port = svc.ports["tls"]
        results = [
            await _send(port, _client(node_crt, member), event_xml("PRC-RS-7", stale=FAR)),
            await _send(port, _client(node_crt, stranger), event_xml("PRC-RS-8", stale=FAR)),
            await _send(port, _client(node_crt, None), event_xml("PRC-RS-9", stale=FAR)),
            await _send(port, _client(node_crt, member), event_xml("PRC-RS-10", stale=FAR)),
        ]
        await asyncio.sleep(0.3)
        for task in node.tasks:
            task.cancel()
        await asyncio.gather(*node.tasks, return_exceptions=True)
        published = [a.record.asset_id for batch in node.published for a in batch]
        return results, published

    results, published = asyncio.run(run())
    assert results[0] == "read" and results[3] == "read", results
    assert results[1].startswith(("refused", "closed")), results
    assert results[2].startswith(("refused", "closed")), results
    assert sorted(published) == ["PRC-RS-10", "PRC-RS-7"]


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"listen": ("tls://127.0.0.1:8089",)}, "needs tls_cert, tls_key, tls_client_ca"),
        (
            {"listen": ("tls://127.0.0.1:8089",), "tls_cert": "a.crt", "tls_key": "a.key"},
            "needs tls_client_ca",
        ),
        ({"listen": ("tcp://127.0.0.1:8087",), "tls_cert": "a.crt"}, "are for tls:// ports"),
    ],
)
def test_tls_ports_name_the_files_they_lack(settings: dict[str, object], expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        TakSettings(mapping="m.yaml", **settings)  # type: ignore[arg-type]
    assert expected in str(caught.value)


def test_the_node_dials_a_tak_server_over_tls_with_its_client_certificate(
    tmp_path: Path,
) -> None:
    """A `tls://` cot_url: the node presents its certificate and checks the server's. The
    server here is another node's tls:// port, which counts what arrives; the node's
    presence (its own uid, `own-output` there) shows the connection carried CoT. A node
    whose certificate the server does not know gets nothing through."""
    _pair(tmp_path, "node")
    member = _pair(tmp_path, "member")
    _pair(tmp_path, "stranger")
    (tmp_path / "clients.pem").write_bytes(member[0].read_bytes())

    async def run(client: str) -> int:
        server, server_node = service(
            tmp_path,
            listen=("tls://127.0.0.1:0",),
            tls_cert="node.crt",
            tls_key="node.key",
            tls_client_ca="clients.pem",
        )
        server_node.gate = SimpleNamespace(context=SimpleNamespace(link=LinkState.UP))  # type: ignore[attr-defined]
        await server.start()
        dialler, dialler_node = service(
            tmp_path,
            cot_url=f"tls://127.0.0.1:{server.ports['tls']}",
            cot_url_cert=f"{client}.crt",
            cot_url_key=f"{client}.key",
            cot_url_cafile="node.crt",
        )
        dialler_node.gate = SimpleNamespace(context=SimpleNamespace(link=LinkState.UP))  # type: ignore[attr-defined]
        await dialler.start()
        for _ in range(40):
            if server.tally["own-output"]:
                break
            await asyncio.sleep(0.05)
        for task in [*server_node.tasks, *dialler_node.tasks]:
            task.cancel()
        await asyncio.gather(*server_node.tasks, *dialler_node.tasks, return_exceptions=True)
        return server.tally["own-output"]

    assert asyncio.run(run("member")) >= 1
    assert asyncio.run(run("stranger")) == 0


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"cot_url": "tls://127.0.0.1:8089"}, "needs cot_url_cert, cot_url_key, cot_url_cafile"),
        ({"cot_url": "tcp://127.0.0.1:8087", "cot_url_cert": "a.crt"}, "are for a tls:// cot_url"),
    ],
)
def test_a_tls_cot_url_names_the_files_it_lacks(settings: dict[str, object], expected: str) -> None:
    with pytest.raises(ValidationError, match=r".") as caught:
        TakSettings(mapping="m.yaml", **settings)  # type: ignore[arg-type]
    assert expected in str(caught.value)
