"""Receive path: what taking in one signed message costs, crypto apart, and an episode's rate.

Run by hand:  .venv/bin/python bench/recv.py [--base REV] [--blocks N] [--json]

With ``--base REV`` every figure is also measured for `codec.py` as it was at
git revision REV, loaded beside the current one in the same process (the rest
of the package is shared, so only the codec differs), and the two are timed in
alternating blocks so that other work on the machine falls on both alike.
Figures go to docs/performance.md with the machine and the date.

Times are CPU microseconds per call (`time.process_time`), the median of the
blocks; message figures are for the published test vectors (docs/protocol.md);
episode rates are episode-arms per second of the canonical scenario on one core
with the keyed-hash stand-in signer, as in `clearline bench sim`.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import cbor2

from clearline.protocol import codec, vectors
from clearline.protocol.messages import message_from_wire
from clearline.protocol.signing import Ed25519Signer, KeyRing
from clearline.sim.benchmark import CANONICAL
from clearline.sim.episode import Episode, Prepared
from clearline.sim.outcomes import ARMS
from clearline.sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]


def load_codec(revision: str) -> ModuleType:
    """`clearline.protocol.codec` as it was at `revision`, as a separate module."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{revision}:src/clearline/protocol/codec.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    spec = importlib.util.spec_from_loader("clearline.protocol._codec_base", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    exec(compile(source, f"{revision}:codec.py", "exec"), module.__dict__)
    return module


def timed(fns: dict[str, Callable[[], object]], calls: int, blocks: int) -> dict[str, float]:
    """Median CPU microseconds per call of each function, blocks alternating between them."""
    for fn in fns.values():
        for _ in range(max(1, calls // 10)):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(blocks):
        for name, fn in fns.items():
            start = time.process_time()
            for _ in range(calls):
                fn()
            times[name].append((time.process_time() - start) / calls * 1e6)
    return {name: statistics.median(values) for name, values in times.items()}


class AcceptAll:
    """A verifier that takes every signature: `verify` with the crypto left out."""

    def __init__(self, kid: bytes) -> None:
        self.kid = kid

    def verify(self, data: bytes, signature: bytes) -> bool:
        return True


def message_figures(
    vector: vectors.Vector, versions: dict[str, ModuleType], blocks: int
) -> dict[str, float]:
    signer = Ed25519Signer.from_label(vector.signer_label)
    verifier = signer.verifier()
    ring, no_crypto = KeyRing(), KeyRing()
    ring.add(vector.message.side, verifier)
    no_crypto.add(vector.message.side, AcceptAll(signer.kid))
    cose = codec.sign(vector.message, signer)
    envelope = codec.parse_envelope(cose)
    signed, payload = envelope.signed_bytes(), envelope.payload
    decoded = cbor2.loads(payload)
    figures = timed(
        {"ed25519_verify_us": lambda: verifier.verify(signed, envelope.signature)}, 300, blocks
    )
    figures |= timed({"typed_decode_us": lambda: message_from_wire(decoded)}, 2000, blocks)
    per_version: dict[str, Callable[[ModuleType], Callable[[], object]]] = {
        "verify_us": lambda c: lambda: c.verify(cose, ring),
        "non_crypto_us": lambda c: lambda: c.verify(cose, no_crypto),
        "parse_envelope_us": lambda c: lambda: c.parse_envelope(cose),
        "sig_structure_us": lambda c: lambda: c.sig_structure(envelope.protected, payload),
        "decode_payload_us": lambda c: lambda: c.decode_payload(payload),
    }
    for figure, make in per_version.items():
        calls = 300 if figure == "verify_us" else 2000
        got = timed({side: make(module) for side, module in versions.items()}, calls, blocks)
        figures |= {f"{figure}.{side}": value for side, value in got.items()}
    return figures


@contextlib.contextmanager
def codec_of(module: ModuleType) -> Iterator[None]:
    """Let the simulator sign and verify with `module`'s functions for a while."""
    saved = codec.sign, codec.verify
    codec.sign, codec.verify = module.sign, module.verify
    try:
        yield
    finally:
        codec.sign, codec.verify = saved


def episode_figures(
    versions: dict[str, ModuleType], episodes: int, blocks: int
) -> dict[str, float]:
    prepared = Prepared.build(load_scenario(CANONICAL), "keyed-hash")
    rates: dict[str, list[float]] = {side: [] for side in versions}
    outcomes: dict[str, list[object]] = {side: [] for side in versions}
    for block in range(-1, blocks):  # block -1 warms up
        for side, module in versions.items():
            with codec_of(module):
                start = time.process_time()
                rows = [
                    Episode(prepared, arm, episode, 1).run().row()
                    for episode in range(episodes)
                    for arm in ARMS
                ]
                elapsed = time.process_time() - start
            if block >= 0:
                rates[side].append(len(rows) / elapsed)
                outcomes[side] = rows
    figures = {f"episode_arms_per_s.{side}": statistics.median(r) for side, r in rates.items()}
    first = next(iter(outcomes.values()))
    figures["same_outcomes"] = float(all(repr(rows) == repr(first) for rows in outcomes.values()))
    return figures


def main(argv: list[str]) -> dict[str, object]:
    versions = {"head": codec}
    base = argv[argv.index("--base") + 1] if "--base" in argv else None
    if base is not None:
        versions = {"base": load_codec(base), "head": codec}
    blocks = int(argv[argv.index("--blocks") + 1]) if "--blocks" in argv else 9
    results: dict[str, object] = {
        "machine": f"{platform.processor() or platform.machine()}",
        "python": platform.python_version(),
        "cbor2": importlib.metadata.version("cbor2"),
        "base": base,
    }
    for vector in vectors.build():
        figures = message_figures(vector, versions, blocks)
        results |= {f"{vector.name}.{k}": round(v, 2) for k, v in figures.items()}
    results |= {k: round(v, 1) for k, v in episode_figures(versions, 100, blocks).items()}
    return results


if __name__ == "__main__":
    figures = main(sys.argv[1:])
    if "--json" in sys.argv:
        print(json.dumps(figures))
    else:
        for name, value in figures.items():
            print(f"{name:48} {value:>12}")
