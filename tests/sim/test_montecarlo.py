"""Monte Carlo runs: the same numbers on every executor, stopping rules, data frames, sweeps."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from clearline.sim.montecarlo import run
from clearline.sim.outcomes import OUTCOME_COLUMNS
from clearline.sim.report import write_report
from clearline.sim.scenario import load_scenario
from clearline.sim.sweep import Axis, set_path, sweep


def _table(folder: Path) -> list[tuple[object, ...]]:
    """Rows with NaN spelled out, so that equal runs compare equal."""
    table = pq.read_table(folder / "episodes.parquet")
    columns = [table.column(c).to_pylist() for c in table.column_names]
    return [tuple("nan" if v != v else v for v in row) for row in zip(*columns, strict=True)]


@pytest.fixture(scope="module")
def serial_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("serial")
    run(load_scenario("recon-swarm"), episodes=300, seed=8, batch=64, executor="serial", out=out)
    return out


@pytest.mark.parametrize(
    "executor", ["process", pytest.param("dask-local", marks=pytest.mark.slow)]
)
def test_every_executor_gives_the_serial_numbers(
    serial_run: Path, tmp_path: Path, executor: str
) -> None:
    run(
        load_scenario("recon-swarm"),
        episodes=300,
        seed=8,
        batch=64,
        executor=executor,
        workers=2,
        out=tmp_path,
    )
    assert _table(tmp_path) == _table(serial_run)
    a = json.loads((tmp_path / "summary.json").read_text())
    b = json.loads((serial_run / "summary.json").read_text())
    assert a["arms"] == b["arms"]
    assert a["workers"] == 2


def test_parquet_has_one_row_per_episode_and_arm(serial_run: Path) -> None:
    table = pq.read_table(serial_run / "episodes.parquet")
    assert tuple(table.column_names) == OUTCOME_COLUMNS
    assert table.num_rows == 300 * 5
    assert sorted(set(table.column("arm").to_pylist())) == sorted(
        ["none", "analog", "hotline", "hotline+gate", "gate"]
    )


@pytest.mark.slow
def test_stopping_at_a_confidence_interval_halfwidth(tmp_path: Path) -> None:
    result = run(
        load_scenario("recon-swarm"),
        arms=["none", "hotline+gate"],
        episodes=100_000,
        ci_halfwidth=0.03,
        seed=2,
        batch=100,
        executor="serial",
        out=tmp_path,
    )
    for arm, data in result.summary["arms"].items():
        o = data["outcomes"]["kinetic_before_any_human"]
        assert (o["high"] - o["low"]) / 2 <= 0.03, arm
    n = result.summary["arms"]["none"]["episodes"]
    assert 400 <= n < 2000
    # stopping is at batch granularity: one batch fewer would not have been enough
    assert n % 100 == 0


def test_python_api_returns_data_frames(serial_run: Path) -> None:
    from clearline.sim.montecarlo import SimResult

    summary = json.loads((serial_run / "summary.json").read_text())
    result = SimResult(serial_run, summary)
    episodes = result.episodes()
    assert len(episodes) == 1500
    frame = result.summary_frame()
    row = frame[(frame.arm == "none") & (frame.outcome == "kinetic_before_any_human")]
    assert float(row.estimate.iloc[0]) == pytest.approx(
        episodes[episodes.arm == "none"].kinetic_before_any_human.mean()
    )


def test_report_renders_figures_and_page(serial_run: Path) -> None:
    page = write_report(serial_run)
    html = page.read_text()
    assert "recon-swarm" in html
    assert html.count("<figure") == html.count("<svg") == 3
    for name in (
        "kinetic_before_any_human.png",
        "time_to_first_kinetic.png",
        "escalation_score.png",
    ):
        assert (serial_run / name).stat().st_size > 5000
        assert f'href="{name}"' in html
    assert "P(kinetic before any human)" in html and "<th>kinetic_before_any_human" not in html


def test_report_on_an_empty_folder_says_what_it_needs(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"summary\.json"):
        write_report(tmp_path)


@pytest.mark.slow
def test_sweep_cells_and_heatmap(tmp_path: Path) -> None:
    axes = [
        Axis.parse("network.one_way_ms=5,300"),
        Axis.parse("sides.US.model.confusion.recon_swarm.strike_package=0.1,0.5"),
    ]
    summary = sweep(
        load_scenario("recon-swarm"),
        axes,
        out=tmp_path,
        arms=["none", "hotline"],
        episodes=200,
        seed=3,
        executor="serial",
    )
    cells = {
        tuple(c["settings"].values()): c["arms"]["none"]["kinetic_before_any_human"]["estimate"]
        for c in summary["cells"]
    }
    assert len(cells) == 4
    assert cells[(5, 0.5)] > cells[(5, 0.1)]
    hotline = {
        tuple(c["settings"].values()): c["arms"]["hotline"]["kinetic_before_any_human"]["estimate"]
        for c in summary["cells"]
    }
    # a slower path lets autonomy fire before the answer more often
    assert hotline[(300, 0.5)] > hotline[(5, 0.5)]
    page = write_report(tmp_path)
    text = page.read_text()
    assert text.count("<svg") == 2 and text.count('id="colour-key"') == 2


def test_sweep_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match="PATH=v1,v2"):
        Axis.parse("network.one_way_ms")
    data: dict[str, object] = {"a": [1, 2]}
    with pytest.raises(ValueError, match="not an index"):
        set_path(data, "a.5", 3)
    from clearline.errors import ScenarioError

    with pytest.raises(ScenarioError, match="loss"):
        sweep(
            load_scenario("recon-swarm"),
            [Axis.parse("network.loss=2.0")],
            out=Path("/nonexistent-not-created"),
            episodes=1,
            executor="serial",
        )
