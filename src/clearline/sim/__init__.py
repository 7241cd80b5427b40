"""The simulator: the real protocol and gate under a virtual clock, in Monte Carlo.

from clearline.sim import load_scenario, run
result = run(load_scenario("recon-swarm"), episodes=10_000, seed=1)
result.summary_frame()   # arm x outcome: estimate, low, high
result.episodes()        # one row per episode and arm
"""

from clearline.sim.montecarlo import SimResult, run
from clearline.sim.outcomes import ARMS, Arm
from clearline.sim.scenario import load_scenario, shipped_scenarios
from clearline.sim.sweep import Axis, sweep

__all__ = ["ARMS", "Arm", "Axis", "SimResult", "load_scenario", "run", "shipped_scenarios", "sweep"]
