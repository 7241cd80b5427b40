"""Tools nobody here wrote, built once per run, for checking our formats against them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

GOPATH = Path("/usr/share/gocode")  # where Debian's golang-golang-x-mod-dev puts x/mod
X_MOD = GOPATH / "src/golang.org/x/mod/sumdb/note"


@pytest.fixture(scope="session")
def notecheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Go's golang.org/x/mod/sumdb/note, behind a small command (notecheck.go)."""
    go = shutil.which("go")
    if go is None or not X_MOD.is_dir():
        pytest.skip(
            "needs Go and golang.org/x/mod (Debian: apt-get install golang-go "
            "golang-golang-x-mod-dev; .ci/run installs them)"
        )
    out = tmp_path_factory.mktemp("go") / "notecheck"
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": str(GOPATH), "GOFLAGS": ""}
    env.setdefault("GOCACHE", str(tmp_path_factory.mktemp("gocache")))
    source = Path(__file__).with_name("notecheck.go")
    subprocess.run([go, "build", "-o", str(out), str(source)], check=True, env=env)
    return out
