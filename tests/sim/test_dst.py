"""Deterministic simulation testing: a bounded swarm of seeds in CI, and proof the checks bite."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from clearline.cli import main
from clearline.gate import Gate, GateDecision, ProposedAction
from clearline.gate.decide import Rule
from clearline.protocol.messages import Micros, Verdict
from clearline.sim.dst import Run, run_seed
from clearline.sim.outcomes import InvariantError

CI_SEEDS = 40


def _swarm(seeds: int) -> None:
    for seed in range(seeds):
        Run(seed, 20).run()


@pytest.mark.slow
def test_a_swarm_of_seeds_keeps_every_promise() -> None:
    result = CliRunner().invoke(main, ["sim", "dst", "--seeds", str(CI_SEEDS), "--horizon", "30"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"OK {CI_SEEDS} seeds")


def test_same_seed_same_run() -> None:
    assert run_seed(7, 20) == run_seed(7, 20)


def test_a_gate_that_lets_autonomy_into_nuclear_c2_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(self: Gate, action: ProposedAction, now: Micros) -> GateDecision:
        return GateDecision(Verdict.ALLOW, Rule.WITHIN_POLICY, "broken on purpose")

    monkeypatch.setattr(Gate, "propose", broken)
    with pytest.raises(InvariantError, match=r"seed \d+.*reproduce: clearline sim dst"):
        _swarm(20)


def test_a_session_that_forgets_to_expire_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    from clearline.protocol.session import Session

    monkeypatch.setattr(Session, "_expire_queries", lambda self, now: None)
    with pytest.raises(InvariantError, match=r"after its deadline|livelock"):
        _swarm(20)
