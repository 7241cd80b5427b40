"""Plain-text tables of Monte Carlo summaries, for the command line and the demo."""

from __future__ import annotations

from typing import Any

from clearline.sim.display import format_estimate, label

COLUMNS = (
    "kinetic_before_any_human",
    "time_to_first_kinetic_s",
    "false_reassurance",
    "excluded_domain_allowed",
)


def summary_table(summary: dict[str, Any]) -> str:
    arms = summary["arms"]
    rows = [
        [arm, f"{data['episodes']:,}", *(format_estimate(data["outcomes"][n]) for n in COLUMNS)]
        for arm, data in arms.items()
    ]
    head = ["Arm", "Episodes", *(label(n) for n in COLUMNS)]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        text = f"{cells[0]:<{widths[0]}}  {cells[1]:>{widths[1]}}"
        return (
            text + "".join(f"  {c:<{w}}" for c, w in zip(cells[2:], widths[2:], strict=True))
        ).rstrip()

    return "\n".join(
        [
            f"{summary['scenario']}  seed {summary['seed']}  signer {summary['signer']}  "
            f"{summary['episodes_run']:,} episode-arms in {summary['elapsed_s']} s "
            f"({summary['episodes_per_s']} /s); 95% intervals in brackets",
            "",
            line(head),
            *(line(r) for r in rows),
        ]
    )
