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


PER_SIDE = (
    ("kinetic_before_own_human_{x}", "P({side} kinetic before {side}'s own human)"),
    ("fired_first_{x}", "P({side} fired first)"),
    ("mean_escalation_score_{x}", "Mean escalation score, {side}"),
)
"""Per side, named by the side: `_a` is the first side the scenario lists, `_b` the second."""


def summary_table(summary: dict[str, Any]) -> str:
    arms = summary["arms"]
    table = _table(
        ["Arm", "Episodes", *(label(n) for n in COLUMNS)],
        [
            [arm, f"{data['episodes']:,}", *(format_estimate(data["outcomes"][n]) for n in COLUMNS)]
            for arm, data in arms.items()
        ],
    )
    sides = summary.get("sides")
    lines = [
        f"{summary['scenario']}  seed {summary['seed']}  signer {summary['signer']}  "
        f"{summary['episodes_run']:,} episode-arms in {summary['elapsed_s']} s "
        f"({summary['episodes_per_s']} /s); 95% intervals in brackets",
        "",
        *table,
    ]
    if sides:
        columns = [
            (name.format(x=x), head.format(side=sides[x]))
            for name, head in PER_SIDE
            for x in ("a", "b")
        ]
        present = [(n, h) for n, h in columns if all(n in d["outcomes"] for d in arms.values())]
        if present:
            lines += [
                "",
                *_table(
                    ["Arm", *(h for _, h in present)],
                    [
                        [arm, *(format_estimate(d["outcomes"][n]) for n, _ in present)]
                        for arm, d in arms.items()
                    ],
                    numbers_from=1,
                ),
            ]
    return "\n".join(lines)


def _table(head: list[str], rows: list[list[str]], numbers_from: int = 2) -> list[str]:
    """Columns padded to their widest cell; the first left-aligned, then right-aligned up to
    `numbers_from`, the rest left-aligned."""
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        text = f"{cells[0]:<{widths[0]}}" + "".join(
            f"  {c:>{w}}"
            for c, w in zip(cells[1:numbers_from], widths[1:numbers_from], strict=True)
        )
        return (
            text
            + "".join(
                f"  {c:<{w}}"
                for c, w in zip(cells[numbers_from:], widths[numbers_from:], strict=True)
            )
        ).rstrip()

    return [line(head), *(line(r) for r in rows)]
