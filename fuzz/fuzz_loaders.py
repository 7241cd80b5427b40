"""atheris harness: the gate-policy, scenario, node-configuration and API-tokens loaders.

    .venv/bin/python fuzz/fuzz_loaders.py -atheris_runs=100000 fuzz/corpus/loaders

Each loader must fail only with its own located InputFileError.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from clearline.errors import InputFileError
    from clearline.gate.policy import parse_policy
    from clearline.node.config import parse_node_config
    from clearline.node.tokens import parse_tokens
    from clearline.sim.scenario import parse_scenario


def test_one_input(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    for load in (
        lambda: parse_policy(text, "fuzz.yaml"),
        lambda: parse_scenario(text, "fuzz.yaml"),
        lambda: parse_node_config(text, "fuzz.toml", Path(".")),
        lambda: parse_tokens(text, "fuzz.json"),
    ):
        with contextlib.suppress(InputFileError):
            load()


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
