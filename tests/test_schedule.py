"""Schedules from posterior curves: the switch lands at the crossover and is worth it."""

import json

import numpy as np
import pytest

import palm_bayes as pb
from palm_bayes.cli import main
from palm_bayes.decisions.schedule import schedule
from palm_bayes.errors import PalmInputError

PARAMS = {
    "early": dict(A_max=0.80, delta=0.3, alpha=0.5, beta=0.8),  # fast start, low ceiling
    "late": dict(A_max=0.95, delta=0.05, alpha=0.0, beta=1.0),  # slow start, high ceiling
}


@pytest.fixture(scope="module")
def crossing_fit():
    curves = pb.simulate_curves(PARAMS, np.arange(10, 810, 40), seeds=3, rng=0)
    return pb.fit(curves, draws=400, tune=400, chains=2, progress=False)


def _true_crossover():
    grid = np.arange(10, 2000, 1.0)
    a = pb.palm_curve(grid, b=40, **PARAMS["early"])
    b = pb.palm_curve(grid, b=40, **PARAMS["late"])
    return grid[np.argmax(b > a)]


def test_switch_near_the_true_crossover_and_it_pays(crossing_fit):
    # a pilot to 810 labels planned to 3000: the crossover (1432) is an extrapolation
    plan = schedule(crossing_fit, ["early", "late"], budget_range=(10, 3000), round_to=10)
    assert [name for _, name in plan.stages] == ["early", "late"]
    switch = plan.stages[1][0]
    assert abs(np.log(switch / _true_crossover())) < 0.35
    assert plan.spec == f"early>late@{switch}"
    table = plan.table.set_index("plan")
    assert table.loc["schedule", "mean"] >= table[["mean"]].drop("schedule").max().iloc[0]
    assert plan.p_beats_best_single > 0.5 and plan.gain["median"] > 0


def test_given_switches_are_scored_not_chosen(crossing_fit):
    best = schedule(crossing_fit, ["early", "late"], budget_range=(10, 3000), round_to=10)
    early = schedule(
        crossing_fit, ["early", "late"], budget_range=(10, 3000), switches=[200], round_to=10
    )
    assert early.spec == "early>late@200"
    mean = {p.spec: p.table.set_index("plan").loc["schedule", "mean"] for p in (best, early)}
    assert mean[best.spec] > mean["early>late@200"]  # switching too early costs accuracy
    with pytest.raises(PalmInputError, match="increasing switch budgets"):
        schedule(crossing_fit, ["early", "late"], switches=[100, 200])
    with pytest.raises(PalmInputError, match="must lie inside"):
        schedule(crossing_fit, ["early", "late"], budget_range=(10, 3000), switches=[5000])


def test_no_switch_when_one_strategy_dominates(crossing_fit):
    plan = schedule(crossing_fit, ["early", "late"], budget_range=(10, 60), round_to=10)
    assert plan.spec == "early"  # the late strategy never catches up inside the range


def test_labels_to_target(crossing_fit):
    plan = schedule(
        crossing_fit,
        ["early", "late"],
        objective="labels_to_target",
        target=0.9,
        budget_range=(10, 5000),
        round_to=10,
    )
    table = plan.table.set_index("plan")
    assert table.loc["early", "p_reached"] < 0.3  # its ceiling is 0.80 (extrapolated)
    assert table.loc["schedule", "p_reached"] >= table.loc["late", "p_reached"] - 0.02
    assert table.loc["schedule", "median"] <= table.loc["late", "median"] + 1e-9


def test_errors_and_cli(crossing_fit, tmp_path, capsys):
    with pytest.raises(PalmInputError, match="no strategy 'nope'"):
        schedule(crossing_fit, ["early", "nope"])
    with pytest.raises(PalmInputError, match="needs a target"):
        schedule(crossing_fit, ["early", "late"], objective="labels_to_target")
    with pytest.raises(PalmInputError, match="at least two distinct"):
        schedule(crossing_fit, ["early"])
    crossing_fit.to_netcdf(tmp_path / "fit.nc")
    args = ["schedule", str(tmp_path), "--candidates", "early", "late", "--json"]
    code = main([*args, "--budget-range", "10", "3000"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    # the command gives the library's answer: switch near the true crossover, and it pays
    assert out["schedule"].startswith("early>late@")
    switch = float(out["schedule"].split("@")[1])
    assert abs(np.log(switch / _true_crossover())) < 0.35
    assert out["p_beats_best_single"] > 0.5
