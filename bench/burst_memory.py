"""A node's resident memory across repeated connection bursts, with the handshake caps and
without them.

One node, held to 1,024 descriptors, takes ROUNDS bursts of 1,100 connections that never
start TLS; each burst is held 1 s, then closed. With the caps lifted, about a thousand TLS
handshakes are pending at once; with the default caps, at most 128.

Run by hand:  .venv/bin/python bench/burst_memory.py [ROUNDS] [--json]
Figures go to docs/reliability.md with the machine and the date.
"""

from __future__ import annotations

import json
import socket
import sys
import tempfile
import time
from pathlib import Path

from clearline.lab.nodes import (
    NodeProcess,
    end_process,
    make_keys,
    node_config_text,
    start_node,
    write_node_config,
)

MAX_FILES = 1024
BURST = 1100
UNCAPPED = "[limits]\nmax_handshakes = 10000\nmax_handshakes_per_source = 10000"


def rss_mib(node: NodeProcess) -> float:
    status = Path(f"/proc/{node.process.pid}/status").read_text()
    kib = int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])
    return round(kib / 1024, 1)


def bursts(folder: Path, rounds: int, extra: str) -> dict[str, object]:
    make_keys(folder, "US", "PRC")
    text = node_config_text("PRC", "US", listen=True, extra=extra)
    node = start_node(write_node_config(folder, "PRC", text), max_files=MAX_FILES)
    try:
        assert node.listen is not None
        start = rss_mib(node)
        held: list[float] = []
        after: list[float] = []
        for _ in range(rounds):
            burst = [socket.create_connection(("127.0.0.1", node.listen), 10) for _ in range(BURST)]
            time.sleep(1.0)
            held.append(rss_mib(node))
            for connection in burst:
                connection.close()
            time.sleep(2.0)  # the node closes its ends of the failed handshakes
            after.append(rss_mib(node))
        return {"start_mib": start, "held_mib": held, "after_mib": after}
    finally:
        end_process(node.process)


def main() -> None:
    rounds = int(next((a for a in sys.argv[1:] if a.isdigit()), "8"))
    results: dict[str, object] = {"rounds": rounds, "burst": BURST, "descriptor_limit": MAX_FILES}
    for name, extra in (("default_caps", ""), ("caps_lifted", UNCAPPED)):
        with tempfile.TemporaryDirectory() as folder:
            results[name] = bursts(Path(folder), rounds, extra)
            print(f"{name}: {results[name]}", file=sys.stderr)
    print(json.dumps(results, indent=None if "--json" in sys.argv else 2))


if __name__ == "__main__":
    main()
