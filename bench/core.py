"""Core benchmark: codec, Merkle and gate rates against the raw Ed25519 rate of the same run.

Run by hand:  .venv/bin/python bench/core.py [--json]
Figures go to docs/performance.md with the machine and the date.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Callable

import nacl.signing

from clearline.config import default_policy
from clearline.gate import Gate, GateContext, ProposedAction, decide
from clearline.log import merkle
from clearline.log.tree import CompactTree
from clearline.protocol import codec
from clearline.protocol.events import LinkState
from clearline.protocol.messages import Actor
from clearline.protocol.signing import Ed25519Signer, KeyRing
from clearline.protocol.vectors import build


def rate(fn: Callable[[], object], seconds: float = 1.0) -> float:
    """Calls per second, timed over at least `seconds` after a short warm-up."""
    for _ in range(100):
        fn()
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(200):
            fn()
        n += 200
    return n / elapsed


def main() -> dict[str, float]:
    key = nacl.signing.SigningKey(bytes(32))
    verify_key = key.verify_key
    data = bytes(300)
    signature = key.sign(data).signature
    results: dict[str, float] = {
        "ed25519_sign_per_s": rate(lambda: key.sign(data)),
        "ed25519_verify_per_s": rate(lambda: verify_key.verify(data, signature)),
    }
    query = next(v for v in build() if v.name == "query-us")
    signer = Ed25519Signer.from_label(query.signer_label)
    ring = KeyRing()
    ring.add("US", signer.verifier())
    cose = codec.sign(query.message, signer)
    results["message_sign_encode_per_s"] = rate(lambda: codec.sign(query.message, signer))
    results["message_verify_decode_per_s"] = rate(lambda: codec.verify(cose, ring))
    tree = CompactTree()
    leaf = merkle.leaf_hash(cose)
    results["merkle_append_per_s"] = rate(lambda: (tree.append(leaf), tree.root()))
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(100_000)]
    results["inclusion_proof_100k_per_s"] = rate(
        lambda: merkle.inclusion_proof(leaves, 77_777), 2.0
    )
    policy = default_policy()
    action = ProposedAction("a", Actor.AUTONOMOUS, "intercept-uncrewed", "air", "T-1")
    context = GateContext(LinkState.UP, {"T-1": 10**12}, (1, 2))
    results["gate_decisions_per_s"] = rate(lambda: decide(policy, action, context, 5))
    # A swarm: 4,000 clarifications open, one more opened and closed per call. The baseline is
    # what the gate did before it kept holds by target: rebuild the target -> deadline map
    # from every hold on each change.
    gate = Gate(policy)
    holds = {(f"S-{i}", ("q", i)): 10**12 for i in range(4_000)}
    for (target, key), deadline in holds.items():
        gate.open_clarification(target, deadline, key)

    def one_more() -> None:
        gate.open_clarification("T-new", 10**12, "k")
        gate.close_clarification("T-new", "k")

    def rebuild() -> dict[str, int]:
        by_target: dict[str, int] = {}
        for (target, _), deadline in holds.items():
            by_target[target] = max(deadline, by_target.get(target, deadline))
        return by_target

    results["gate_hold_open_close_4k_open_per_s"] = rate(one_more)
    results["gate_hold_rebuild_4k_open_per_s"] = rate(lambda: (rebuild(), rebuild()))
    results["gate_hold_4k_vs_rebuild"] = (
        results["gate_hold_open_close_4k_open_per_s"] / results["gate_hold_rebuild_4k_open_per_s"]
    )
    swarm_action = ProposedAction("a", Actor.AUTONOMOUS, "intercept-uncrewed", "air", "S-17")
    results["gate_decisions_4k_open_per_s"] = rate(lambda: gate.propose(swarm_action, 5))
    results["sign_encode_vs_raw_sign"] = (
        results["message_sign_encode_per_s"] / results["ed25519_sign_per_s"]
    )
    results["verify_decode_vs_raw_verify"] = (
        results["message_verify_decode_per_s"] / results["ed25519_verify_per_s"]
    )
    return results


if __name__ == "__main__":
    figures = main()
    if "--json" in sys.argv:
        print(json.dumps(figures))
    else:
        print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
        for name, value in figures.items():
            print(f"{name:32} {value:14,.2f}")
