"""Global sensitivity studies: validated against a closed form, resumable, and strict about
what they are asked.

The validation scenario is the closed-form one of test_closed_form.py in the `none`
arm: a reconnaissance swarm misread as a strike package with probability p, a
lognormal autonomous reaction (median m, sigma 1) from the sighting, and the
commander's decision exactly 20 s after it. Kinetic before human happens iff the
misreading happens and the reaction beats the commander:

    P = p * Phi(ln(20 / m))

The PRC commander's delay is the inert parameter: the PRC commander is alerted
only by a US act, so always decides after the first kinetic act, and cannot move
this probability (while it does change what happens later in the episode).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from clearline.cli import main
from clearline.errors import StudyError
from clearline.sim import salib
from clearline.sim.scenario import LoadedScenario, parse_scenario
from clearline.sim.sensitivity import (
    Param,
    Study,
    make_study,
    read_points,
    resolve,
    run_study,
    summary_table,
)
from tests.sim.test_closed_form import BASE

MISREAD = "sides.US.model.confusion.recon_swarm.strike_package"
REACTION = "sides.US.doctrine.reaction.median_s"
INERT = "sides.PRC.human.decision.median_s"
HUMAN_S = 20.0
PARAMS = (f"{MISREAD}=0.05:0.95", f"{REACTION}=1:200:log", f"{INERT}=5:600:log")


def _scenario() -> LoadedScenario:
    text = BASE.format(policy="", p=0.5, reaction=5.0, sigma=1.0, loss=0.0)
    return parse_scenario(text, "closed-form.yaml", Path.cwd())


def _phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def _closed_form(settings: dict[str, float | int]) -> float:
    return float(settings[MISREAD]) * _phi(math.log(HUMAN_S / float(settings[REACTION])))


def _exact_indices() -> dict[str, dict[str, float]]:
    """The true Sobol indices of p * g(m), g(m) = Phi(ln(20 / m)), p uniform on
    [0.05, 0.95] and ln m uniform on [0, ln 200], independent: for a product,
    V = E[p^2] E[g^2] - E[p]^2 E[g]^2, S1_p = Var p E[g]^2 / V, ST_p = Var p E[g^2] / V
    (and the same with p and g exchanged)."""
    mean_p, var_p = 0.5, 0.9**2 / 12
    n = 200_000
    log_m = (np.arange(n) + 0.5) / n * math.log(200.0)
    g = np.array([_phi(math.log(HUMAN_S) - x) for x in log_m[:: n // 20_000]])
    mean_g, mean_g2 = float(g.mean()), float((g * g).mean())
    var_g = mean_g2 - mean_g**2
    mean_p2 = var_p + mean_p**2
    total = mean_p2 * mean_g2 - (mean_p * mean_g) ** 2
    return {
        MISREAD: {"S1": var_p * mean_g**2 / total, "ST": var_p * mean_g2 / total},
        REACTION: {"S1": var_g * mean_p**2 / total, "ST": var_g * mean_p2 / total},
        INERT: {"S1": 0.0, "ST": 0.0},
    }


def _study(**kwargs: Any) -> tuple[LoadedScenario, Study]:
    loaded = _scenario()
    options = {"arms": ["none"], "seed": 5, **kwargs}
    return loaded, make_study(loaded, [Param.parse(p) for p in PARAMS], **options)


# -- validation -----------------------------------------------------------------------

SEED = 11
BASE_SAMPLES = 64
EPISODES = 100


@pytest.mark.slow
def test_sobol_indices_of_the_simulator_match_the_closed_form(tmp_path: Path) -> None:
    """320 points x 100 episodes: the simulator's indices against the same estimator on the
    closed form, evaluated exactly at the same points (so the two differ only by the
    simulator's Monte Carlo noise), each within the other's 95% interval; the inert
    parameter's total index is zero. The closed form's own estimates are checked against
    the true indices, which checks the sampling (log ranges included) end to end."""
    loaded, study = _study(base_samples=BASE_SAMPLES, episodes=EPISODES, seed=SEED)
    result = run_study(loaded, study, out=tmp_path, executor="process", workers=2)
    sim = result.summary["outputs"][0]
    assert (sim["arm"], sim["quantity"]) == ("none", "kinetic_before_any_human")

    unit = study.unit_sample()
    exact = np.array([_closed_form(study.settings(row)) for row in unit])
    cf = salib.sobol_indices(study.names, exact, 1000, 0.95, SEED)
    truth = _exact_indices()
    report = []
    for i, name in enumerate(study.names):
        for index in ("S1", "ST"):
            s = sim["indices"][name][index]
            c, c_half = float(cf[index][i]), float(cf[f"{index}_conf"][i])
            report.append(
                f"{name} {index}: simulator {s['estimate']:.3f} [{s['low']:.3f}, "
                f"{s['high']:.3f}], closed form {c:.3f} [{c - c_half:.3f}, {c + c_half:.3f}], "
                f"true {truth[name][index]:.3f}"
            )
    where = f"seed {SEED}:\n" + "\n".join(report)
    print(where)
    for i, name in enumerate(study.names):
        for index in ("S1", "ST"):
            s = sim["indices"][name][index]
            c, c_half = float(cf[index][i]), float(cf[f"{index}_conf"][i])
            assert s["low"] <= c <= s["high"], where
            assert c - c_half <= s["estimate"] <= c + c_half, where
            assert c - c_half <= truth[name][index] <= c + c_half, where
            # Both estimators see the same points, so what separates them is the
            # simulator's noise alone (100 episodes a point, common random numbers): a few
            # hundredths, far inside intervals that are mostly the estimator's own.
            assert abs(s["estimate"] - c) < 0.1, where
    # Common random numbers: the inert parameter changes no episode's outcome, so every
    # point differing only by it gives the same estimate, and its indices are exactly zero.
    st = sim["indices"][INERT]["ST"]
    assert st["low"] <= 0.0 <= st["high"], where
    assert abs(st["estimate"]) < 1e-9, where
    assert sim["indices"][MISREAD]["ST"]["low"] > 0.1, where
    assert sim["indices"][REACTION]["ST"]["low"] > 0.1, where
    # The simulator at each point against the closed form: binomial noise only.
    estimates = read_points(tmp_path)["p_kinetic_before_any_human[none]"].to_numpy()
    z = (estimates - exact) / np.sqrt(np.maximum(exact * (1 - exact), 1e-4) / EPISODES)
    assert float(np.mean(z)) == pytest.approx(0.0, abs=0.5), where


def test_morris_ranks_the_inert_parameter_last(tmp_path: Path) -> None:
    loaded, study = _study(method="morris", base_samples=10, episodes=40, seed=3)
    result = run_study(loaded, study, out=tmp_path, executor="serial", resamples=200)
    found = result.summary["outputs"][0]["indices"]
    mu_star = {name: found[name]["mu_star"]["estimate"] for name in study.names}
    assert min(mu_star, key=lambda n: mu_star[n]) == INERT, f"seed 3: {mu_star}"
    assert mu_star[INERT] == 0.0
    assert mu_star[MISREAD] > 0.05 and mu_star[REACTION] > 0.05, f"seed 3: {mu_star}"
    assert "mu*" in summary_table(result.summary)


# -- resuming -------------------------------------------------------------------------


def _frame(folder: Path) -> list[tuple[object, ...]]:
    frame = read_points(folder).drop(columns=["seconds"])
    return [tuple(row) for row in frame.itertuples(index=False)]


def test_an_interrupted_study_resumes_without_running_a_point_twice(tmp_path: Path) -> None:
    loaded, study = _study(base_samples=8, episodes=10, arms=["none", "hotline"])
    total = 8 * (3 + 2)
    whole = run_study(loaded, study, out=tmp_path / "whole", executor="serial", resamples=100)
    assert whole.complete

    ran: list[int] = []

    def interrupt_after_eleven(point: int) -> None:
        ran.append(point)
        if len(ran) == 11:
            raise KeyboardInterrupt

    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        run_study(
            loaded,
            study,
            out=out,
            executor="serial",
            batch=30,
            on_point=interrupt_after_eleven,
        )
    assert sorted(read_points(out)["point"]) == sorted(ran)
    first = list(ran)

    again: list[int] = []
    resumed = run_study(
        loaded, study, out=out, executor="serial", resamples=100, on_point=again.append
    )
    assert resumed.complete
    assert resumed.summary["run"]["points_run"] == total - len(first)
    assert sorted(first + again) == list(range(total))
    assert _frame(out) == _frame(tmp_path / "whole")
    assert resumed.summary["outputs"] == whole.summary["outputs"]
    # Run once more: nothing is left to run, and the analysis is the same.
    done = run_study(loaded, study, out=out, executor="serial", resamples=100)
    assert done.summary["run"]["points_run"] == 0
    assert done.summary["outputs"] == whole.summary["outputs"]


@pytest.mark.parametrize(
    "executor", ["process", pytest.param("dask-local", marks=pytest.mark.slow)]
)
def test_every_executor_gives_the_serial_study(tmp_path: Path, executor: str) -> None:
    loaded, study = _study(base_samples=4, episodes=8, arms=["none", "hotline"])
    serial = run_study(loaded, study, out=tmp_path / "serial", executor="serial", resamples=50)
    other = run_study(
        loaded, study, out=tmp_path / executor, executor=executor, workers=2, resamples=50
    )
    assert other.summary["run"]["workers"] == 2
    assert _frame(tmp_path / executor) == _frame(tmp_path / "serial")
    assert other.summary["outputs"] == serial.summary["outputs"]


def test_max_points_runs_a_study_in_slices(tmp_path: Path) -> None:
    loaded, study = _study(base_samples=4, episodes=5)
    first = run_study(loaded, study, out=tmp_path, executor="serial", max_points=7)
    assert not first.complete
    assert first.summary["points_done"] == 7
    assert not (tmp_path / "sensitivity.json").exists()
    assert "7 of 20 points done" in summary_table(first.summary)
    rest = run_study(loaded, study, out=tmp_path, executor="serial", resamples=50)
    assert rest.complete
    assert rest.summary["run"]["points_run"] == 13
    assert list(rest.points()["point"]) == list(range(20))


def test_a_folder_holding_another_study_is_refused(tmp_path: Path) -> None:
    loaded, study = _study(base_samples=4, episodes=5)
    run_study(loaded, study, out=tmp_path, executor="serial", max_points=3)
    _, other = _study(base_samples=4, episodes=5, seed=6)
    with pytest.raises(StudyError, match=r"holds another study \(seed 5 there, 6 here\)"):
        run_study(loaded, other, out=tmp_path, executor="serial")
    _, wider = _study(base_samples=8, episodes=5)
    with pytest.raises(StudyError, match="base_samples 4 there, 8 here"):
        run_study(loaded, wider, out=tmp_path, executor="serial")


def test_the_paired_difference_is_per_point_arm_minus_none(tmp_path: Path) -> None:
    loaded, study = _study(base_samples=4, episodes=20, arms=["none", "hotline"])
    result = run_study(loaded, study, out=tmp_path, executor="serial", resamples=50)
    points = result.points()
    difference = (
        points["p_kinetic_before_any_human[hotline]"] - points["p_kinetic_before_any_human[none]"]
    )
    output = next(o for o in result.summary["outputs"] if o["quantity"] == "difference_vs_none")
    assert output["arm"] == "hotline"
    assert output["mean"] == pytest.approx(float(difference.mean()), abs=1e-6)
    assert (
        points["kinetic_before_any_human[none]"] == points["p_kinetic_before_any_human[none]"] * 20
    ).all()


# -- parameters -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("network.loss", "no '='"),
        ("=0:1", "no PATH"),
        ("network..loss=0:1", "empty part"),
        ("network.loss=0.1", "1 part(s)"),
        ("network.loss=0:1:log:x", "4 part(s)"),
        ("network.loss=a:1", "LOW 'a' is not a number"),
        ("network.loss=0:true", "HIGH 'true' is not a number"),
        ("network.loss=0:inf", "not finite"),
        ("network.loss=nan:1", "not finite"),
        ("network.loss=0:1:lin", "only 'log' may follow"),
        ("network.loss=0.5:0.5", "LOW 0.5 must be below HIGH 0.5"),
        ("network.one_way_ms=0:300:log", "log range needs LOW above 0"),
    ],
)
def test_bad_parameter_forms_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(StudyError, match=None) as info:
        Param.parse(text)
    assert message in str(info.value)
    assert text in str(info.value)


def test_ranges_read_as_numbers() -> None:
    assert Param.parse(" network.one_way_ms = 1e1 : 3e2 : log ") == Param(
        "network.one_way_ms", 10.0, 300.0, log=True
    )
    assert Param.parse("network.loss=0:0.1").spec == "network.loss=0:0.1"


def test_parameters_are_checked_against_the_scenario() -> None:
    loaded = _scenario()
    with pytest.raises(StudyError, match="named twice"):
        resolve(loaded, [Param.parse("network.loss=0:0.1"), Param.parse("network.loss=0:0.2")])
    with pytest.raises(StudyError, match="yes/no setting"):
        resolve(loaded, [Param.parse("sides.US.doctrine.notice_trust=0:1")])
    with pytest.raises(StudyError, match="a group of settings"):
        resolve(loaded, [Param.parse("network=0:1")])
    with pytest.raises(StudyError, match="less than or equal to 1"):
        resolve(loaded, [Param.parse("network.loss=0:2")])
    with pytest.raises(StudyError, match="whole numbers"):
        resolve(loaded, [Param.parse("sides.US.doctrine.query_retries=0:2.5")])


def test_integer_settings_are_rounded_with_each_value_equally_likely() -> None:
    (param,) = resolve(_scenario(), [Param.parse("sides.US.doctrine.query_retries=0:3")])
    assert param.integer
    values = [param.value(u) for u in (np.arange(4000) + 0.5) / 4000]
    assert all(isinstance(v, int) for v in values)
    assert [values.count(k) for k in range(4)] == [1000, 1000, 1000, 1000]
    (logged,) = resolve(_scenario(), [Param.parse("sides.US.doctrine.query_retries=1:10:log")])
    assert {logged.value(0.0), logged.value(1.0)} == {1, 10}
    (floating,) = resolve(_scenario(), [Param.parse(f"{REACTION}=1:100:log")])
    assert not floating.integer
    assert floating.value(0.5) == pytest.approx(10.0)


def test_sobol_needs_a_power_of_two() -> None:
    with pytest.raises(StudyError, match="power of two"):
        _study(base_samples=48)


# -- the command ----------------------------------------------------------------------


def _scenario_file(tmp_path: Path) -> Path:
    path = tmp_path / "closed-form.yaml"
    path.write_text(BASE.format(policy="", p=0.5, reaction=5.0, sigma=1.0, loss=0.0))
    return path


def test_the_command_runs_a_study_and_prints_its_indices(tmp_path: Path) -> None:
    args = ["sim", "sensitivity", str(_scenario_file(tmp_path))]
    for p in PARAMS:
        args += ["--param", p]
    args += ["--base-samples", "4", "--episodes", "10", "--arms", "none,hotline"]
    args += ["--executor", "serial", "--resamples", "50", "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "P(kinetic before any human): hotline minus none" in result.stdout
    assert f"clearline sim report {tmp_path / 'out'}" in result.stdout
    again = CliRunner().invoke(main, [*args, "--json"])
    assert again.exit_code == 0, again.output
    data = json.loads(again.stdout)
    assert data["run"]["points_run"] == 0
    assert data == {
        **json.loads((tmp_path / "out" / "sensitivity.json").read_text()),
        "run": data["run"],
        "out": str(tmp_path / "out"),
    }


@pytest.mark.parametrize(
    ("param", "expected"),
    [
        ("network.loss=0:2:lg", "error: --param 2 of 2: 'network.loss=0:2:lg': 'lg' after HIGH"),
        ("network.loss", "error: --param 2 of 2: 'network.loss': no '='"),
        ("network.loss=0:2", "network.loss: Input should be less than or equal to 1"),
        ("network.bogus=0:2", "network.bogus: Extra inputs are not permitted"),
    ],
)
def test_a_bad_param_is_one_located_line_without_a_traceback(
    tmp_path: Path, param: str, expected: str
) -> None:
    args = ["sim", "sensitivity", str(_scenario_file(tmp_path)), "--param", PARAMS[0]]
    args += ["--param", param, "--base-samples", "4", "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("method", ["sobol", "morris"])
def test_the_report_draws_every_arm_with_its_indices(tmp_path: Path, method: str) -> None:
    loaded, study = _study(method=method, base_samples=4, episodes=10, arms=["none", "hotline"])
    run_study(loaded, study, out=tmp_path, executor="serial", resamples=50)
    result = CliRunner().invoke(main, ["sim", "report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "report.html").read_text()
    for arm in ("none", "hotline"):
        png = tmp_path / f"sensitivity_{arm}.png"
        assert png.read_bytes().startswith(b"\x89PNG")
        assert f'aria-label="sensitivity indices for {arm}"' in page
    assert "P(kinetic before any human): hotline minus none" in page
    assert ("total ST" if method == "sobol" else "mu*") in page
