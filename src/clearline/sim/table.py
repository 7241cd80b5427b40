"""Plain-text tables of Monte Carlo summaries, for the command line and the demo."""

from __future__ import annotations

from typing import Any


def format_estimate(o: dict[str, Any], digits: int = 3) -> str:
    if o.get("estimate") is None:
        return "-"
    est = o["estimate"]
    if o.get("low") is None or o["low"] == o["high"]:
        return f"{est:.{digits}g}" if digits else f"{est:g}"
    return f"{est:.{digits}f} [{o['low']:.{digits}f}, {o['high']:.{digits}f}]"


def summary_table(summary: dict[str, Any]) -> str:
    lines = [
        f"{summary['scenario']}  seed {summary['seed']}  signer {summary['signer']}  "
        f"{summary['episodes_run']} episode-arms in {summary['elapsed_s']} s "
        f"({summary['episodes_per_s']} /s)",
        "",
        f"{'arm':<13} {'episodes':>8}  {'P(kinetic before human) [95%]':<30} "
        f"{'median t first kinetic s':<28} {'P(false reassurance)':<24} excluded allowed",
    ]
    for arm, data in summary["arms"].items():
        o = data["outcomes"]
        kinetic = format_estimate(o["kinetic_before_human"])
        first = format_estimate(o["time_to_first_kinetic_s"], 2)
        reassured = format_estimate(o["false_reassurance"])
        allowed = int(o["excluded_domain_allowed"]["estimate"])
        lines.append(
            f"{arm:<13} {data['episodes']:>8}  {kinetic:<30} {first:<28} {reassured:<24} {allowed}"
        )
    return "\n".join(lines)
