"""Run `python -m clearline ARGS` for many ARGS, each in its own process, quickly.

Reads a JSON list of argument lists on stdin; writes a JSON list of {"code", "stdout",
"stderr"} on stdout. The interpreter and the command line are loaded once, then each run
is a fork of this process that runs clearline's __main__ as `python -m clearline` does: an
exception nobody handles prints its traceback on stderr as the interpreter would. A fresh
interpreter per run costs most of a second (the command tree imports the simulator), which
over a hundred runs is minutes on a shared machine.
"""

from __future__ import annotations

import json
import os
import runpy
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

import clearline.cli  # noqa: F401  (loaded once, before the forks)

TIMEOUT_S = 60.0


def child(args: list[str], out: int, err: int) -> None:
    os.dup2(out, 1)
    os.dup2(err, 2)
    sys.argv = ["clearline", *args]
    code = 0
    try:
        runpy.run_module("clearline", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def run_one(args: list[str], folder: Path) -> dict[str, object]:
    out_path, err_path = folder / "out", folder / "err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        pid = os.fork()
        if pid == 0:
            child(args, out.fileno(), err.fileno())
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            code = "timeout"
            break
        time.sleep(0.005)
    return {
        "code": code,
        "stdout": out_path.read_text(errors="replace"),
        "stderr": err_path.read_text(errors="replace"),
    }


def main() -> None:
    cases = json.load(sys.stdin)
    with tempfile.TemporaryDirectory() as tmp:
        results = [run_one(args, Path(tmp)) for args in cases]
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
