"""Tools nobody here wrote, built once per run, for checking our formats against them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

GOPATH = Path("/usr/share/gocode")  # where Debian's golang-golang-x-mod-dev puts x/mod
X_MOD = GOPATH / "src/golang.org/x/mod/sumdb"


def _go_build(name: str, packages: tuple[str, ...], factory: pytest.TempPathFactory) -> Path:
    """tests/interop/NAME.go built against Debian's x/mod (skipped if Go or it is missing)."""
    go = shutil.which("go")
    missing = [p for p in packages if not (X_MOD / p).is_dir()]
    if go is None or missing:
        pytest.skip(
            "needs Go and golang.org/x/mod (Debian: apt-get install golang-go "
            "golang-golang-x-mod-dev; scripts/test installs them)"
        )
    out = factory.mktemp("go") / name
    gopath = f"{Path(__file__).with_name('gopath')}:{GOPATH}"  # third-party code, then x/mod
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": gopath, "GOFLAGS": ""}
    env.setdefault("GOCACHE", str(factory.mktemp("gocache")))
    source = Path(__file__).with_name(f"{name}.go")
    subprocess.run([go, "build", "-o", str(out), str(source)], check=True, env=env)
    return out


@pytest.fixture(scope="session")
def notecheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Go's golang.org/x/mod/sumdb/note and transparency-dev/formats' cosignature verifier,
    behind a small command (notecheck.go)."""
    return _go_build("notecheck", ("note",), tmp_path_factory)


@pytest.fixture(scope="session")
def tilecheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Go's golang.org/x/mod/sumdb/tlog reading tiles over HTTP (tilecheck.go)."""
    return _go_build("tilecheck", ("note", "tlog"), tmp_path_factory)
