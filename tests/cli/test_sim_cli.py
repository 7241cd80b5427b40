"""`clearline sim ...` and `clearline bench sim`, end to end."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from clearline.cli import main

ARMS = ["none", "analog", "hotline", "hotline+gate", "gate"]


def test_sim_run_json_is_the_machine_readable_summary_only(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "sim",
            "run",
            "recon-swarm",
            "--episodes",
            "150",
            "--seed",
            "4",
            "--json",
            "--executor",
            "serial",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["scenario"] == "recon-swarm"
    assert data["seed"] == 4
    assert list(data["arms"]) == ARMS
    for arm in ARMS:
        entry = data["arms"][arm]
        assert entry["episodes"] == 150
        outcomes = entry["outcomes"]
        for name in ("kinetic_before_any_human", "false_reassurance"):
            o = outcomes[name]
            assert 0 <= o["low"] <= o["estimate"] <= o["high"] <= 1
        assert outcomes["excluded_domain_allowed"]["estimate"] == 0
        assert "time_to_first_kinetic_s" in outcomes
    assert (
        data["arms"]["hotline+gate"]["outcomes"]["kinetic_before_any_human"]["high"]
        < data["arms"]["none"]["outcomes"]["kinetic_before_any_human"]["low"]
    )
    assert (tmp_path / "episodes.parquet").exists()
    # where the results went
    assert data["out"] == str(tmp_path)
    assert data["files"]["episodes"] == str(tmp_path / "episodes.parquet")
    assert json.loads(Path(data["files"]["summary"]).read_text())["seed"] == 4
    report = CliRunner().invoke(main, data["report_command"].split()[1:])
    assert report.exit_code == 0, report.output
    assert Path(data["report_writes"]).read_text().startswith("<!doctype html>")
    assert set(data["files"]) == {"episodes", "summary"}  # what the run itself wrote
    assert data["sides"] == {"a": "US", "b": "PRC"}


def test_sim_run_same_seed_same_bytes(tmp_path: Path) -> None:
    outputs = []
    for name in ("a", "b"):
        result = CliRunner().invoke(
            main,
            [
                "sim",
                "run",
                "mq9-collision",
                "--episodes",
                "60",
                "--json",
                "--arms",
                "none,hotline",
                "--executor",
                "serial",
                "--out",
                str(tmp_path / name),
            ],
        )
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert data.pop("out") == str(tmp_path / name)
        del data["files"], data["report_command"], data["report_writes"]
        outputs.append(json.dumps(data))
    assert outputs[0] == outputs[1]
    assert (tmp_path / "a" / "episodes.parquet").read_bytes() == (
        tmp_path / "b" / "episodes.parquet"
    ).read_bytes()


def test_sim_run_table_and_report(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "sim",
            "run",
            "deceptive-cover",
            "--episodes",
            "80",
            "--executor",
            "serial",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "P(kinetic before any human)" in result.output
    report = CliRunner().invoke(main, ["sim", "report", str(tmp_path)])
    assert report.exit_code == 0, report.output
    assert (tmp_path / "report.html").exists()


def test_sim_rejects_unknown_arms_and_scenarios() -> None:
    bad_arm = CliRunner().invoke(main, ["sim", "run", "recon-swarm", "--arms", "hotline,telepathy"])
    assert bad_arm.exit_code == 2
    assert "unknown arm 'telepathy'" in bad_arm.output
    bad_name = CliRunner().invoke(main, ["sim", "run", "no-such"])
    assert bad_name.exit_code == 2
    assert "shipped:" in bad_name.output


def test_sim_validate_reports_file_and_line(tmp_path: Path) -> None:
    ok = CliRunner().invoke(main, ["sim", "validate", "recon-swarm", "link-loss"])
    assert ok.exit_code == 0, ok.output
    assert ok.output.count("OK ") == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 2\nname: bad\ntitle: Bad\nsides:\n  US: {}\n  PRC: {}\nhorizon_s: no\n"
    )
    result = CliRunner().invoke(main, ["sim", "validate", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:7: horizon_s" in result.output


def test_sim_sweep_prints_each_cell(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "sim",
            "sweep",
            "recon-swarm",
            "--param",
            "network.one_way_ms=10,300",
            "--episodes",
            "50",
            "--arms",
            "hotline",
            "--executor",
            "serial",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "network.one_way_ms=10: hotline" in result.output
    assert "network.one_way_ms=300: hotline" in result.output
    assert (tmp_path / "sweep.json").exists()


def test_sim_list_and_schema() -> None:
    listed = CliRunner().invoke(main, ["sim", "list"])
    assert "recon-swarm" in listed.output and "mq9-collision" in listed.output
    schema = json.loads(CliRunner().invoke(main, ["sim", "schema"]).output)
    assert schema["title"] == "Scenario"


def test_bench_sim_json_prints_only_the_headline_figures() -> None:
    result = CliRunner().invoke(
        main,
        ["bench", "sim", "--json", "--episodes", "20", "--parallel-episodes", "40", "--no-dask"],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {
        "episodes_per_s",
        "simpy_episodes_per_s",
        "ratio_vs_simpy",
        "engine_share",
        "parallel_efficiency",
    }  # and dask_parallel_efficiency, without --no-dask
    assert all(isinstance(v, float) and v > 0 for v in data.values())
