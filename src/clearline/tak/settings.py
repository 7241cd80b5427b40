"""The node's `[tak]` section: where CoT comes in, where it goes out, and the bounds.

Addresses are written as pytak's COT_URL is (`tcp://host:port`, `udp://host:port`), so
that TAK users recognise them. Port 0 takes any free port (the ready file names it).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

CotUrl = Annotated[str, Field(pattern=r"^(tcp|tls|udp)://[^\s:/]+:\d{1,5}$")]
StreamUrl = Annotated[str, Field(pattern=r"^(tcp|tls)://[^\s:/]+:\d{1,5}$")]


def split_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a validated CoT URL."""
    scheme, rest = url.split("://", 1)
    host, port = rest.rsplit(":", 1)
    return scheme, host, int(port)


class TakSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    mapping: str
    """The mapping file (YAML), relative to the configuration file."""
    listen: tuple[CotUrl, ...] = Field(default=(), max_length=8)
    """Where TAK clients send CoT: `tcp://127.0.0.1:8087` (XML events or TAK Protocol
    stream framing), `tls://0.0.0.0:8089` (the same, over TLS, from clients holding a
    certificate `tls_client_ca` signed), `udp://127.0.0.1:8087` (one event a datagram,
    XML or mesh)."""
    out: StreamUrl | None = None
    """Where TAK clients connect to read the hotline's state as CoT (`tcp://` or `tls://`)."""
    tls_cert: str | None = None
    """The node's certificate chain (PEM) for its `tls://` ports, relative to the
    configuration file."""
    tls_key: str | None = None
    """The private key (PEM) of `tls_cert`."""
    tls_client_ca: str | None = None
    """The certificates (PEM) that sign the TAK clients allowed on `tls://` ports: a client
    without a certificate they sign is refused during the handshake, as a TAK server does."""
    cot_url: StreamUrl | None = None
    """A TAK server to send the same CoT to, as a client of it (redialled if it drops):
    `tcp://host:8087`, or `tls://host:8089` with `cot_url_cert`, `cot_url_key` and
    `cot_url_cafile` (pytak's PYTAK_TLS_CLIENT_CERT, _KEY and _CAFILE)."""
    cot_url_cert: str | None = None
    """The node's client certificate (PEM) for a `tls://` `cot_url`, relative to the
    configuration file; the TAK server's CA must have signed it."""
    cot_url_key: str | None = None
    """The private key (PEM) of `cot_url_cert`."""
    cot_url_cafile: str | None = None
    """The certificates (PEM) that sign the TAK server's certificate."""
    cot_url_check_hostname: bool = True
    """Whether the server's certificate must name the host in `cot_url` (pytak's
    PYTAK_TLS_DONT_CHECK_HOSTNAME, inverted); its signature is checked either way."""
    cot_url_in: bool = False
    """Also take in what the TAK server at `cot_url` sends (its clients' CoT), as from a
    `listen` port; the node's own events coming back from it are skipped."""
    max_connections: int = Field(default=32, ge=1, le=10_000)
    """TCP (and TLS) connections at once to each `listen` port, and readers of `out` at
    once; one more is closed at once (and counted)."""
    max_connections_per_source: int | None = Field(default=None, ge=1, le=10_000)
    """The same, from one source address; by default a quarter of `max_connections`."""
    max_handshakes: int = Field(default=128, ge=1, le=100_000)
    """Connections to each `tls://` port still in their TLS handshake at once; one more is
    closed at once (as the peer port's `[limits] max_handshakes`)."""
    max_handshakes_per_source: int = Field(default=16, ge=1, le=100_000)
    """The same, from one source address."""
    idle_s: float = Field(default=120, ge=0, le=86_400)
    """A connection to a `listen` port that has sent nothing for this long is closed (TAK
    clients ping a server they stay connected to); 0: never. Readers of `out` are not
    timed out: a map that only listens sends nothing."""
    max_event_bytes: int = Field(default=64 * 1024, ge=512, le=1024 * 1024)
    events_per_s: int = Field(default=2000, ge=1, le=1_000_000)
    """Per connection (and per UDP port); a burst of twice this passes."""
    queue: int = Field(default=8192, ge=16, le=1_000_000)
    """Events parsed and waiting for the node; past this they are dropped and counted."""
    batch_ms: int = Field(default=20, ge=0, le=10_000)
    """Foreign tracks arriving within this long of each other are asked about together."""
    requery_s: float = Field(default=30, ge=0, le=86_400)
    """A track asked about is not asked again for this long, however often it is seen."""
    max_tracks: int = Field(default=10_000, ge=1, le=1_000_000)
    """Tracks and CoT-fed own assets remembered (for positions and staleness)."""
    out_stale_s: int = Field(default=300, ge=1, le=86_400)
    """How long a CoT event the node writes stays on a map."""
    out_buffer_bytes: int = Field(default=1024 * 1024, ge=4096, le=256 * 1024 * 1024)
    """A reader further behind than this is disconnected, not buffered for."""

    @property
    def per_source(self) -> int:
        """`max_connections_per_source`, or its default."""
        return self.max_connections_per_source or max(1, self.max_connections // 4)

    @model_validator(mode="after")
    def _in_needs_a_server(self) -> TakSettings:
        if self.cot_url_in and self.cot_url is None:
            raise ValueError("cot_url_in = true needs cot_url (the TAK server to read)")
        return self

    @model_validator(mode="after")
    def _tls_client_needs_its_files(self) -> TakSettings:
        files = {
            "cot_url_cert": self.cot_url_cert,
            "cot_url_key": self.cot_url_key,
            "cot_url_cafile": self.cot_url_cafile,
        }
        missing = [name for name, value in files.items() if value is None]
        tls = self.cot_url is not None and self.cot_url.startswith("tls://")
        if tls and missing:
            raise ValueError(f"cot_url {self.cot_url} needs {', '.join(missing)} (PEM files)")
        if not tls and len(missing) < len(files):
            raise ValueError(
                "cot_url_cert, cot_url_key and cot_url_cafile are for a tls:// cot_url; "
                f"cot_url is {self.cot_url or 'not set'}"
            )
        return self

    @model_validator(mode="after")
    def _tls_needs_its_files(self) -> TakSettings:
        urls = [*self.listen, *([self.out] if self.out is not None else [])]
        tls = [url for url in urls if url.startswith("tls://")]
        files = {
            "tls_cert": self.tls_cert,
            "tls_key": self.tls_key,
            "tls_client_ca": self.tls_client_ca,
        }
        missing = [name for name, value in files.items() if value is None]
        if tls and missing:
            raise ValueError(f"{tls[0]} needs {', '.join(missing)} (PEM files)")
        if not tls and len(missing) < len(files):
            raise ValueError(
                "tls_cert, tls_key and tls_client_ca are for tls:// ports; none is set"
            )
        return self
