"""A real TAK server, run from outside as the nodes are: FreeTAKServer, from PyPI.

It is installed once into a virtual environment of its own, pinned by
takserver-constraints.txt (beside this file): its pins (protobuf 3.18, cryptography 36)
cannot share one with clearline's. Each server is started in a folder of its own, on free
loopback ports, and is ready once it has routed a CoT event from one client to another;
it is ended with its whole process group (it runs a dozen processes).

FreeTAKServer 2.2.1 keeps three databases in /opt/fts whatever it is told (its persistence
path is fixed when it is imported), so it needs to be able to write there.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from pathlib import Path

from clearline.errors import TakServerError
from clearline.lab.nodes import end_process, in_child, track
from clearline.tak import cot

REQUIREMENT = "FreeTAKServer==2.2.1"
MODULE = "FreeTAKServer.controllers.services.FTS"
FIXED_FOLDER = Path("/opt/fts")
"""Where FreeTAKServer 2.2.1 writes whatever it is configured to do."""
START_TIMEOUT_S = 120.0
"""From the process's start to a routed event: about 16 s on an idle machine of 2 cores."""
INSTALL_TIMEOUT_S = 900.0
PORTS = (
    "cot",
    "ssl_cot",
    "data_package",
    "ssl_data_package",
    "api",
    "federation",
    "routing_subscriber",
    "routing_publisher",
    "routing_server",
    "integration_puller",
    "integration_publisher",
)
"""Every port the server listens on or binds, each given a free one."""


def constraints() -> Path:
    """The pinned constraints file, as installed with the package."""
    return Path(str(resources.files("clearline.lab").joinpath("takserver-constraints.txt")))


def default_venv() -> Path:
    """Where the server is installed unless told otherwise: the user's cache."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "clearline" / "takserver-venv"


def _stamp(venv: Path) -> Path:
    digest = hashlib.sha256((REQUIREMENT + "\n").encode() + constraints().read_bytes())
    return venv / f".installed-{digest.hexdigest()[:16]}"


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def installed(venv: Path) -> bool:
    """Whether `venv` holds the server as takserver-constraints.txt pins it now."""
    return _stamp(venv).exists() and venv_python(venv).exists()


def install(venv: Path, say: Callable[[str], None] = lambda _: None) -> Path:
    """The server installed in `venv` (made, or remade if its pins changed), once; the
    environment's python. TakServerError says what failed."""
    venv = venv.absolute()
    if installed(venv):
        return venv_python(venv)
    say(f"Installing {REQUIREMENT} into {venv} (pinned by {constraints().name})...")
    if venv.exists():
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    steps = [
        [_interpreter(), "-m", "venv", str(venv)],
        [str(venv_python(venv)), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        [
            str(venv_python(venv)),
            "-m",
            "pip",
            "install",
            "--quiet",
            "-c",
            str(constraints()),
            REQUIREMENT,
        ],
    ]
    for step in steps:
        try:
            done = subprocess.run(
                step,
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT_S,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TakServerError(f"cannot install {REQUIREMENT}: {' '.join(step)}: {exc}") from None
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
            raise TakServerError(
                f"cannot install {REQUIREMENT} ({' '.join(step[1:4])}... exited "
                f"{done.returncode}):\n{tail}"
            )
    _stamp(venv).touch()
    return venv_python(venv)


def _interpreter() -> str:
    """A CPython 3.11: this one, or python3.11 on PATH. The pins do not install on 3.12
    (greenlet 2.0.2 does not build there)."""
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    found = shutil.which("python3.11")
    if found is None:
        raise TakServerError(
            f"{REQUIREMENT} is pinned for CPython 3.11 (on 3.12 its greenlet 2.0.2 does not "
            f"build); this is {sys.version.split()[0]} and no python3.11 is on PATH"
        )
    return found


def cannot_run_here() -> str | None:
    """Why the server cannot run on this machine, or None."""
    where = FIXED_FOLDER if FIXED_FOLDER.exists() else FIXED_FOLDER.parent
    if not os.access(where, os.W_OK | os.X_OK):
        return (
            f"FreeTAKServer 2.2.1 writes its databases to {FIXED_FOLDER} whatever it is told "
            f"(a path fixed in its MainConfig), and {where} is not writable by this user"
        )
    return None


def free_ports(n: int) -> list[int]:
    """`n` distinct loopback ports free now (all held open together while chosen)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(n):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


@dataclass
class TakServer:
    """A running FreeTAKServer: its CoT port (TCP, XML) and its folder."""

    folder: Path
    ports: dict[str, int]
    process: subprocess.Popen[bytes]
    log: Path
    began: float
    """When the process was started (time.monotonic())."""
    started_s: float = field(default=0.0)
    """Seconds from the start of the process to the first routed event."""

    @property
    def cot_url(self) -> str:
        """The CoT port as a node's `cot_url` or pytak's COT_URL names it."""
        return f"tcp://127.0.0.1:{self.ports['cot']}"

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        """Until one client's event reaches another through it (`timeout` seconds from its
        start); stopped, and TakServerError with its log's end, if it never does."""
        try:
            _wait_routing(self, self.began + timeout)
        except BaseException:
            self.stop(grace=0)
            raise
        self.started_s = time.monotonic() - self.began

    def stop(self, grace: float = 5.0) -> int:
        """SIGTERM to its process group, SIGKILL after `grace`; reaped."""
        return end_process(self.process, grace=grace, group=True)


def _environment(folder: Path, ports: dict[str, int]) -> dict[str, str]:
    certs = folder / "certs"
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "FTS_FIRST_START": "false",  # else it asks its set-up questions on stdin
        "FTS_CONFIG_PATH": str(folder / "FTSConfig.yaml"),
        "FTS_PERSISTENCE_PATH": str(folder),
        "FTS_DB_PATH": str(folder / "FTSDataBase.db"),
        "FTS_LOGFILE_PATH": str(folder / "logs"),
        "FTS_DATAPACKAGE_PATH": str(folder / "datapackages"),
        "FTS_EXCHECK_PATH": str(folder / "excheck"),
        "FTS_EXCHECK_TEMPLATE_PATH": str(folder / "excheck" / "template"),
        "FTS_EXCHECK_CHECKLIST_PATH": str(folder / "excheck" / "checklist"),
        "FTS_CERTS_PATH": str(certs),
        "FTS_SERVER_KEYDIR": str(certs / "server.key"),
        "FTS_SERVER_PEMDIR": str(certs / "server.pem"),
        "FTS_TESTCLIENT_PEMDIR": str(certs / "Client.pem"),
        "FTS_TESTCLIENT_KEYDIR": str(certs / "Client.key"),
        "FTS_UNENCRYPTED_KEYDIR": str(certs / "server.key.unencrypted"),
        "FTS_SERVER_P12DIR": str(certs / "server.p12"),
        "FTS_CADIR": str(certs / "ca.pem"),
        "FTS_CAKEYDIR": str(certs / "ca.key"),
        "FTS_FEDERATION_CERTDIR": str(certs / "server.pem"),
        "FTS_FEDERATION_KEYDIR": str(certs / "server.key"),
        "FTS_CRLDIR": str(certs / "FTS_CRL.json"),
        "FTS_CLIENT_PACKAGES_PATH": str(certs / "clientPackages"),
        "FTS_DP_ADDRESS": "127.0.0.1",
        "FTS_USER_ADDRESS": "127.0.0.1",
        "FTS_API_ADDRESS": "127.0.0.1",
        "FTS_COT_PORT": str(ports["cot"]),
        "FTS_SSLCOT_PORT": str(ports["ssl_cot"]),
        "FTS_API_PORT": str(ports["api"]),
        "FTS_FED_PORT": str(ports["federation"]),
        "FTS_ROUTING_PROXY_SUBSCRIBE_PORT": str(ports["routing_subscriber"]),
        "FTS_ROUTING_PROXY_PUBLISHER_PORT": str(ports["routing_publisher"]),
        "FTS_ROUTING_PROXY_SERVER_PORT": str(ports["routing_server"]),
        "FTS_INTEGRATION_MANAGER_PULLER_PORT": str(ports["integration_puller"]),
        "FTS_INTEGRATION_MANAGER_PUBLISHER_PORT": str(ports["integration_publisher"]),
        "FTS_NUM_ROUTING_WORKERS": "1",
    }


def _arguments(ports: dict[str, int]) -> list[str]:
    loopback = "127.0.0.1"
    return [
        *("-CoTIP", loopback, "-CoTPort", str(ports["cot"])),
        *("-SSLCoTIP", loopback, "-SSLCoTPort", str(ports["ssl_cot"])),
        *("-DataPackageIP", loopback, "-DataPackagePort", str(ports["data_package"])),
        *("-SSLDataPackageIP", loopback, "-SSLDataPackagePort", str(ports["ssl_data_package"])),
        *("-RestAPIIP", loopback, "-RestAPIPort", str(ports["api"])),
        *("-AutoStart", "True"),
    ]


def launch_takserver(
    folder: Path,
    venv: Path | None = None,
    *,
    die_with_parent: bool = False,
    say: Callable[[str], None] = lambda _: None,
) -> TakServer:
    """Install (once) and start a FreeTAKServer with its files in `folder`, without waiting
    for it (`TakServer.wait_ready`): several start together this way, from one thread (a
    process started with `die_with_parent` dies with the thread that started it, not only
    with the process). TakServerError says why it could not."""
    why = cannot_run_here()
    if why is not None:
        raise TakServerError(why)
    python = install(venv or default_venv(), say)
    folder = folder.absolute()
    for sub in ("certs", "logs", "datapackages", "excheck/template", "excheck/checklist"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    ports = dict(zip(PORTS, free_ports(len(PORTS)), strict=True))
    log = folder / "takserver.log"
    began = time.monotonic()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(python), "-m", MODULE, *_arguments(ports)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=folder,
            env=_environment(folder, ports),
            start_new_session=True,
            preexec_fn=partial(in_child, die_with_parent, None),
        )
    track(process, group=True)
    return TakServer(folder, ports, process, log, began)


def start_takserver(
    folder: Path,
    venv: Path | None = None,
    *,
    timeout: float = START_TIMEOUT_S,
    die_with_parent: bool = False,
    say: Callable[[str], None] = lambda _: None,
) -> TakServer:
    """`launch_takserver`, then wait until it routes CoT between two clients."""
    server = launch_takserver(folder, venv, die_with_parent=die_with_parent, say=say)
    server.wait_ready(timeout)
    return server


def _failed(server: TakServer, why: str) -> TakServerError:
    tail = server.log.read_text(errors="replace").strip().splitlines()[-20:]
    return TakServerError(
        f"the TAK server in {server.folder} {why}; its log ends:\n" + "\n".join(tail)
    )


def _wait_routing(server: TakServer, deadline: float) -> None:
    """Until one client's event reaches another through the server."""
    while True:
        if server.process.poll() is not None:
            raise _failed(server, f"exited ({server.process.returncode})")
        if time.monotonic() > deadline:
            raise _failed(server, "did not route CoT in time")
        try:
            if _routes(server.ports["cot"], min(3.0, max(0.1, deadline - time.monotonic()))):
                return
        except OSError:
            pass
        time.sleep(0.5)


def _routes(port: int, timeout: float) -> bool:
    """Two clients announce themselves; one sends a probe; whether the other receives it."""
    now = int(time.time() * 1_000_000)
    stale = now + 60_000_000

    def event(uid: str, type_: str) -> bytes:
        detail = [("contact", {"callsign": uid})]
        return cot.to_xml(uid, type_, now, stale, cot.NO_POINT, detail)

    with contextlib.ExitStack() as stack:
        sender, receiver = (
            stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=1))
            for _ in range(2)
        )
        sender.sendall(event("clearline.probe.sender", "a-f-G-U-C"))
        receiver.sendall(event("clearline.probe.receiver", "a-f-G-U-C"))
        time.sleep(0.5)  # both known to the server before the probe
        probe = f"clearline.probe.{now}"
        sender.sendall(event(probe, "b-x-clearline-probe"))
        receiver.settimeout(0.25)
        end = time.monotonic() + timeout
        return any(probe.encode() in seen for seen in _received(receiver, end))


def _received(sock: socket.socket, end: float) -> Iterator[bytes]:
    """Everything received so far, after each read, until `end` or the peer closes."""
    data = b""
    while time.monotonic() < end:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            return
        data += chunk
        yield data
