"""A node's identity: an Ed25519 signing key for messages and a pinned TLS certificate.

`clearline keys init DIR --side NAME` writes, for side NAME:

    NAME.signing.key   32-byte Ed25519 seed, hex (owner-only: 0600)
    NAME.signing.pub   the public key, hex (give it to the peer)
    NAME.tls.key       TLS private key, PEM, ECDSA P-256 (0600)
    NAME.tls.crt       self-signed TLS certificate, PEM (give it to the peer)
    NAME.api-token.ROLE   a bearer token for the local API, one per role (0600)
    NAME.api-tokens.json  their SHA-256 hashes and roles: what the node loads

There are no certificate authorities: each node trusts exactly the peer
certificate and the peer signing key named in its configuration.

`clearline keys tls DIR --side NAME` replaces NAME.tls.key and NAME.tls.crt (the
previous pair kept as *.old); a running node reads them again on SIGHUP.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from clearline.errors import KeyMaterialError
from clearline.node.tokens import token_paths, write_role_tokens
from clearline.protocol.messages import SIDE_PATTERN
from clearline.protocol.signing import Ed25519Signer, Ed25519Verifier


def check_side(side: str) -> str:
    """A side's name, as the protocol allows it (it also names the key files)."""
    if not re.fullmatch(SIDE_PATTERN, side):
        raise KeyMaterialError(
            f"side {side!r}: expected an upper-case letter, then up to 15 of A-Z 0-9 _ - "
            "(e.g. US, PRC)"
        )
    return side


def _paths(folder: Path, side: str) -> dict[str, Path]:
    return {
        "signing_key": folder / f"{side}.signing.key",
        "signing_pub": folder / f"{side}.signing.pub",
        "tls_key": folder / f"{side}.tls.key",
        "tls_crt": folder / f"{side}.tls.crt",
    }


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def init_keys(
    folder: Path,
    side: str,
    hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
    days: int = 365,
    force: bool = False,
    now: dt.datetime | None = None,
) -> dict[str, Path]:
    """Create a side's keys, certificate and API tokens in `folder`; refuses to overwrite unless
    `force`."""
    check_side(side)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {**_paths(folder, side), **token_paths(folder, side)}
    existing = [p for p in paths.values() if p.exists()]
    if existing and not force:
        raise KeyMaterialError(f"{existing[0]} exists; pass --force to replace {side}'s keys")
    for p in existing:
        p.unlink()
    signer = Ed25519Signer(os.urandom(32))
    _write_private(paths["signing_key"], signer.seed.hex().encode() + b"\n")
    paths["signing_pub"].write_text(signer.public_key.hex() + "\n")

    key_pem, crt_pem = _tls_pair(side, hosts, days, now)
    _write_private(paths["tls_key"], key_pem)
    paths["tls_crt"].write_bytes(crt_pem)
    write_role_tokens(folder, side)
    return paths


def _tls_pair(
    side: str, hosts: tuple[str, ...], days: int, now: dt.datetime | None
) -> tuple[bytes, bytes]:
    """A new ECDSA P-256 TLS key and its self-signed certificate, both PEM."""
    tls_key = ec.generate_private_key(ec.SECP256R1())
    key_pem = tls_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    start = now or dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"clearline {side}")])
    alt_names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(tls_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - dt.timedelta(minutes=5))
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(tls_key, hashes.SHA256())
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def rotate_tls(
    folder: Path,
    side: str,
    hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
    days: int = 365,
    now: dt.datetime | None = None,
) -> dict[str, Path]:
    """Replace a side's TLS key and certificate with new ones, keeping the previous pair as
    NAME.tls.key.old and NAME.tls.crt.old; the signing key and API tokens are untouched.
    Each file is replaced whole (written beside it, then renamed), so that a node reading
    them on SIGHUP sees the old file or the new one, never part of either."""
    check_side(side)
    paths = _paths(folder, side)
    for what in ("tls_key", "tls_crt"):
        if not paths[what].exists():
            raise KeyMaterialError(
                f"{paths[what]} is missing: `keys init` creates a side's keys, `keys tls` "
                "replaces its TLS pair"
            )
    key_pem, crt_pem = _tls_pair(side, hosts, days, now)
    written = {}
    for what, data in (("tls_key", key_pem), ("tls_crt", crt_pem)):
        path = paths[what]
        old, new = path.with_name(path.name + ".old"), path.with_name(path.name + ".new")
        for stale in (old, new):
            stale.unlink(missing_ok=True)
        if what == "tls_key":
            _write_private(new, data)
        else:
            new.write_bytes(data)
        os.link(path, old)
        os.replace(new, path)
        written[what] = path
        written[f"{what}_old"] = old
    return written


def _read(path: Path, what: str, private: bool) -> bytes:
    try:
        info = path.stat()
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyMaterialError(f"{what} {path} is missing") from None
    except OSError as exc:
        raise KeyMaterialError(f"{what} {path} cannot be read: {exc.strerror}") from None
    if private and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyMaterialError(
            f"{what} {path} is readable by others (mode {stat.S_IMODE(info.st_mode):o}); "
            "expected 600: chmod 600 it"
        )
    return data


def load_signer(path: Path) -> Ed25519Signer:
    text = _read(path, "signing key", private=True).decode("ascii", "replace").strip()
    try:
        seed = bytes.fromhex(text)
    except ValueError:
        raise KeyMaterialError(f"signing key {path}: expected 64 hex digits") from None
    if len(seed) != 32:
        raise KeyMaterialError(f"signing key {path}: expected 32 bytes, got {len(seed)}")
    return Ed25519Signer(seed)


def load_verifier(path: Path) -> Ed25519Verifier:
    text = _read(path, "peer signing key", private=False).decode("ascii", "replace").strip()
    try:
        public = bytes.fromhex(text)
    except ValueError:
        raise KeyMaterialError(f"peer signing key {path}: expected 64 hex digits") from None
    if len(public) != 32:
        raise KeyMaterialError(f"peer signing key {path}: expected 32 bytes, got {len(public)}")
    return Ed25519Verifier(public)


def load_certificate(
    path: Path, now: dt.datetime | None = None, data: bytes | None = None
) -> x509.Certificate:
    """The certificate in `path` (or `data`, as read from it), valid at `now`."""
    if data is None:
        data = _read(path, "certificate", private=False)
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise KeyMaterialError(f"certificate {path} is not a PEM certificate: {exc}") from None
    moment = now or dt.datetime.now(dt.UTC)
    if moment > cert.not_valid_after_utc:
        raise KeyMaterialError(
            f"certificate {path} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
        )
    if moment < cert.not_valid_before_utc:
        raise KeyMaterialError(
            f"certificate {path} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        )
    return cert


def fingerprint(cert_der: bytes) -> str:
    return hashlib.sha256(cert_der).hexdigest()


@dataclass(frozen=True)
class TlsFiles:
    """A node's TLS material as read and checked at one moment: where its own certificate
    and key are, with digests of the bytes read (the key itself is not kept here), and the
    pinned peer certificate."""

    tls_key: Path
    tls_crt: Path
    peer_crt: Path
    read_digests: dict[Path, bytes]
    """SHA-256 of each of the node's own files as read and checked."""
    peer_pem: bytes
    own_fingerprint: str
    peer_fingerprint: str


def load_tls(keys_dir: Path, side: str, peer_crt: Path) -> TlsFiles:
    """Read and check a side's TLS certificate and key (valid now, and a pair) and the peer's
    pinned certificate (valid now)."""
    paths = _paths(keys_dir, side)
    own_pem = _read(paths["tls_crt"], "certificate", private=False)
    own = load_certificate(paths["tls_crt"], data=own_pem)
    key_pem = _read(paths["tls_key"], "TLS key", private=True)
    try:
        tls_key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyMaterialError(f"TLS key {paths['tls_key']} cannot be loaded: {exc}") from None
    own_public = own.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_public = tls_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if own_public != key_public:
        raise KeyMaterialError(
            f"TLS key {paths['tls_key']} does not match certificate {paths['tls_crt']}"
        )
    peer_pem = _read(peer_crt, "certificate", private=False)
    peer = load_certificate(peer_crt, data=peer_pem)
    return TlsFiles(
        paths["tls_key"],
        paths["tls_crt"],
        peer_crt,
        {
            paths["tls_crt"]: hashlib.sha256(own_pem).digest(),
            paths["tls_key"]: hashlib.sha256(key_pem).digest(),
        },
        peer_pem,
        fingerprint(own.public_bytes(serialization.Encoding.DER)),
        fingerprint(peer.public_bytes(serialization.Encoding.DER)),
    )


@dataclass(frozen=True)
class Identity:
    """What a node loads at start: its own keys, and the peer's pinned certificate and key."""

    side: str
    signer: Ed25519Signer
    tls: TlsFiles
    """As read at start; the transport reads it again on SIGHUP."""
    peer_side: str
    peer_verifier: Ed25519Verifier

    @property
    def peer_fingerprint(self) -> str:
        return self.tls.peer_fingerprint


def load_identity(
    keys_dir: Path, side: str, peer_side: str, peer_crt: Path, peer_signing_pub: Path
) -> Identity:
    signer = load_signer(_paths(keys_dir, side)["signing_key"])
    tls = load_tls(keys_dir, side, peer_crt)
    return Identity(side, signer, tls, peer_side, load_verifier(peer_signing_pub))


OFFICER_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def officer_key_paths(folder: Path, officer_id: str) -> tuple[Path, Path]:
    """Where an officer's approval key lives: ID.officer.key (0600) and ID.officer.pub."""
    return folder / f"{officer_id}.officer.key", folder / f"{officer_id}.officer.pub"


def init_officer_key(folder: Path, officer_id: str) -> tuple[Ed25519Signer, Path, Path]:
    """A new Ed25519 key for one officer's approvals; refuses to overwrite one."""
    if not OFFICER_ID_PATTERN.match(officer_id):
        raise KeyMaterialError(
            f"officer id {officer_id!r}: expected 1 to 64 of A-Z a-z 0-9 . _ : -"
        )
    key_path, pub_path = officer_key_paths(folder, officer_id)
    for path in (key_path, pub_path):
        if path.exists():
            raise KeyMaterialError(f"{path} exists; officer {officer_id} already has a key")
    folder.mkdir(parents=True, exist_ok=True)
    signer = Ed25519Signer(os.urandom(32))
    _write_private(key_path, signer.seed.hex().encode() + b"\n")
    pub_path.write_text(signer.public_key.hex() + "\n")
    return signer, key_path, pub_path
