"""atheris harness: Cursor-on-Target bytes as a TAK port meets them, from anyone who reaches it.

    .venv/bin/python fuzz/fuzz_cot.py -atheris_runs=200000 fuzz/corpus/cot

A parse must return an event or a Skipped with a known reason, never raise; a stream
splitter must never hold more than one event's cap plus the chunk it was fed; whatever
an event turns into under the mapping must be routable. Any exception is a finding
(atheris stops and writes the input as crash-*). docs/tak.md records the latest run.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from clearline.tak import cot
    from clearline.tak.mapping import parse_mapping, route

CAP = 4096
MAPPING = parse_mapping(
    "own:\n  - type: 'a-f-*'\n    kind: recon_swarm\n    mission: reconnaissance\n"
    "    armed: false\nforeign:\n  - type: 'a-h-*'\nignore:\n  - uid: 'ANDROID-*'\n",
    "fuzz",
)
NOW = 1_767_225_600_000_000


def _check(parsed: cot.Parsed) -> None:
    if isinstance(parsed, cot.Skipped):
        if parsed.reason not in cot.REASONS:
            raise AssertionError(f"unknown reason {parsed.reason!r}")
        return
    route(MAPPING, parsed, NOW)


def test_one_input(data: bytes) -> None:
    _check(cot.parse(data, CAP))
    splitter = cot.StreamSplitter(CAP)
    # The same bytes as a stream, cut where the input's first byte says.
    step = (data[0] if data else 1) or 1
    for start in range(0, len(data), step):
        chunk = data[start : start + step]
        for item in splitter.feed(chunk):
            _check(item if isinstance(item, cot.Skipped) else cot.parse(item, CAP))
        if splitter.buffered > CAP + len(chunk):
            raise AssertionError(f"buffered {splitter.buffered} bytes")


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
