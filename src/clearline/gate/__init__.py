"""The action gate: a declarative policy and a pure `decide(action, context, now)`."""

from clearline.gate.decide import (
    Gate,
    GateContext,
    GateDecision,
    ProposedAction,
    Rule,
    decide,
)
from clearline.gate.policy import NUCLEAR_C2, Policy, parse_policy

__all__ = [
    "NUCLEAR_C2",
    "Gate",
    "GateContext",
    "GateDecision",
    "Policy",
    "ProposedAction",
    "Rule",
    "decide",
    "parse_policy",
]
