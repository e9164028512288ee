"""ALDA parity: the reference advisor's rule, on its own kinds of situations.

Each scenario is a set of PALM curves (10 labels per round, 30 rounds, 3 seeds) whose targets lie
inside the observed budgets. ``alda_least_squares`` gives the reference's answer (least-squares
fits, one pick); ``advise(rule="alda")`` gives the probability that each strategy is that pick.
The table of these scenarios in ``docs/user-guide/decisions.md`` is checked against them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import palm_bayes as pb
from palm_bayes.cli import main
from palm_bayes.data.reference import read_reference_fits
from palm_bayes.decisions.advise import alda_least_squares

pytestmark = pytest.mark.slow

DOCS = Path(__file__).resolve().parents[3] / "docs"

BUDGETS = np.arange(1, 31) * 10.0
SAMPLER = dict(draws=300, tune=300, chains=2, progress=False)
TARGET, TOLERANCE = 0.8, 0.05

#: name -> (curves, eta, the strategy ALDA must pick, whether that pick is the fallback)
SCENARIOS = {
    "feasible vs infeasible": (
        {
            "reaches": dict(A_max=0.95, delta=0.10, alpha=0.0, beta=1.0),
            "stalls": dict(A_max=0.76, delta=0.15, alpha=0.0, beta=1.0),
        },
        0.05,
        "reaches",
        False,
    ),
    "both infeasible": (
        {
            "lower": dict(A_max=0.70, delta=0.15, alpha=0.0, beta=1.0),
            "higher": dict(A_max=0.76, delta=0.10, alpha=0.0, beta=1.0),
        },
        0.05,
        "higher",
        True,
    ),
    "one method": (
        {"only": dict(A_max=0.95, delta=0.10, alpha=0.0, beta=1.0)},
        0.05,
        "only",
        False,
    ),
    "fast vs slow": (
        {
            "fast": dict(A_max=0.95, delta=0.15, alpha=0.0, beta=1.0),
            "slow": dict(A_max=0.95, delta=0.05, alpha=0.0, beta=1.0),
        },
        0.05,
        "fast",
        False,
    ),
    "cheaper but wider window vs dearer and steadier (eta 0.10)": (
        {
            "cheap_wide": dict(A_max=0.88, delta=0.06, alpha=0.0, beta=1.3),
            "steady": dict(A_max=0.94, delta=0.02, alpha=0.0, beta=1.6),
        },
        0.10,
        "steady",
        False,
    ),
}


def _truth(params: dict, tau: float) -> float:
    return float(np.ceil(float(pb.labels_for_accuracy(tau, b=10.0, **params)) / 10) * 10)


@pytest.fixture(scope="module")
def answers():
    out = {}
    for k, (name, (params, eta, _, _)) in enumerate(SCENARIOS.items()):
        curves = pb.simulate_curves(params, BUDGETS, seeds=3, noise=0.005, rng=k)
        table = alda_least_squares(pb.fit_least_squares(curves), TARGET, TOLERANCE, eta)
        lsq = table[table["selected"]].iloc[0]
        fit = pb.fit(curves, seed=k, **SAMPLER)
        # the horizon is the observed range: parity with a rule that only trusts the fit
        advice = fit.advise(
            TARGET, rule="alda", target_tolerance=TOLERANCE, cost_tolerance=eta,
            max_budget=BUDGETS[-1], reference=None,
        )  # fmt: skip
        cheapest = fit.advise(TARGET, cost_tolerance=eta, max_budget=BUDGETS[-1], reference=None)
        out[name] = (lsq, advice, cheapest)
    return out


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_reference_rule_on_least_squares(answers, name):
    lsq, _, _ = answers[name]
    params, _, expected, fallback = SCENARIOS[name]
    assert lsq["strategy"] == expected
    assert bool(lsq["fallback"]) is fallback
    if not fallback:  # whole rounds, within one round of the true curve's
        assert abs(lsq["b_abs"] - _truth(params[expected], TARGET)) <= 10


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_bayesian_alda_picks_the_same_method_with_high_probability(answers, name):
    _, advice, _ = answers[name]
    _, _, expected, fallback = SCENARIOS[name]
    table = advice.table.squeeze(["dataset", "embedding"], drop=True)
    column = "p_fallback_pick" if fallback else "p_pick"
    assert float(table[column].sel(strategy=expected)) >= 0.8, table[column].values
    row = advice.recommendation.iloc[0]
    assert row["strategy"] == expected
    assert row["verdict"] == ("fallback: target not reachable" if fallback else "recommend")
    # every draw has exactly one pick
    total = table["p_pick"].sum() + table["p_fallback_pick"].sum()
    assert float(total) == pytest.approx(1.0)


def test_cheapest_and_alda_disagree_where_the_window_matters(answers):
    name = "cheaper but wider window vs dearer and steadier (eta 0.10)"
    _, alda, cheapest = answers[name]
    assert cheapest.recommendation.iloc[0]["strategy"] == "cheap_wide"
    assert alda.recommendation.iloc[0]["strategy"] == "steady"
    table = alda.table.squeeze(["dataset", "embedding"], drop=True)
    assert float(table["p_risky"].sel(strategy="cheap_wide")) > 0.8


def test_percent_targets_and_bad_rules(known_fit):
    a_max = np.linspace(0.9, 0.99, 40)  # a spread of draws: the tables are not all ties
    fit = known_fit({"a": dict(A_max=a_max, delta=0.1, alpha=0.0, beta=1.0)}, b=10.0)
    as_percent = fit.advise(80, rule="alda", target_tolerance=5, max_budget=300).table
    as_fraction = fit.advise(0.8, rule="alda", target_tolerance=0.05, max_budget=300).table
    assert as_percent["labels_median"].equals(as_fraction["labels_median"])
    with pytest.raises(pb.PalmInputError, match="unknown rule 'fastest'"):
        fit.advise(0.8, rule="fastest")


def _documented_table() -> list[list[str]]:
    """The rows of the scenario table in the decisions guide (the cells of each row)."""
    text = (DOCS / "user-guide" / "decisions.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    start = next(i for i, row in enumerate(rows) if row.startswith("| scenario |"))
    body = rows[start + 2 : start + 2 + len(SCENARIOS)]  # after the header and the --- row
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in body]


def test_documented_table_is_what_the_scenarios_give(answers):
    documented = _documented_table()
    assert len(documented) == len(SCENARIOS)
    for (name, (lsq, advice, _)), (_, reference, ours) in zip(
        answers.items(), documented, strict=True
    ):
        # reference column: "<strategy>, <labels> labels" or "<strategy> (fallback...)"
        assert reference.split(",")[0].split(" (")[0] == lsq["strategy"], (name, reference)
        if lsq["fallback"]:
            assert "(fallback" in reference, (name, reference)
        else:
            assert reference.endswith(f", {lsq['b_abs']:.0f} labels"), (name, reference)
        # palm_bayes column: "<pick>[ (fallback)], P = <probability>"
        table = advice.table.squeeze(["dataset", "embedding"], drop=True)
        pick = advice.recommendation.iloc[0]["strategy"]
        column = "p_fallback_pick" if SCENARIOS[name][3] else "p_pick"
        stated = float(ours.rsplit("P = ", 1)[1])
        assert ours.split(",")[0].split(" (")[0] == pick, (name, ours)
        assert stated == pytest.approx(float(table[column].sel(strategy=pick)), abs=0.02), name


def _palm_output(folder, method, budget_size, y, a_max=90.0):
    folder.mkdir(parents=True)
    meta = {"dataset": "IMAGENET50", "model": "resnet50", "method": method, "episodes": len(y),
            "mode": "PALM", "budget_size": budget_size, "A_max": a_max, "delta": 0.1,
            "alpha": 0.5, "beta": 1.0}  # fmt: skip
    (folder / "palm_params.json").write_text(json.dumps(meta))
    np.save(folder / "y_avg.npy", np.asarray(y, dtype=float))
    np.save(folder / "y_fit.npy", np.asarray(y, dtype=float))


def test_reference_palm_outputs_are_read_as_curves_and_fits(tmp_path):
    y = 100 * pb.palm_curve(np.arange(1, 9) * 50.0, 0.9, 0.1, 0.5, 1.0, b=50.0)
    _palm_output(tmp_path / "out" / "random", "random", 50, y)
    _palm_output(tmp_path / "out" / "typiclust", "typiclust", 50, y + 1)
    curves = pb.load_curves(tmp_path / "out")
    assert sorted(curves["strategy"].values) == ["random", "typiclust"]
    first = curves.sel(strategy="random").squeeze()
    np.testing.assert_allclose(first["budget"].dropna("step"), np.arange(1, 9) * 50.0)
    np.testing.assert_allclose(first["accuracy"].dropna("step"), y / 100)  # percent read
    fits = read_reference_fits(tmp_path / "out")
    assert float(fits["A_max"].sel(strategy="random").squeeze()) == pytest.approx(0.9)
    assert float(fits["b"].sel(strategy="random").squeeze()) == 50
    _palm_output(tmp_path / "episodes" / "m", "m", None, y)
    with pytest.raises(pb.PalmInputError, match="episode mode"):
        pb.load_curves(tmp_path / "episodes")
    assert pb.load_curves(tmp_path / "episodes", labels_per_round=20)["budget"].max() == 160


def test_cli_writes_alda_csv_with_reference_and_posterior_columns(tmp_path, capsys):
    params = SCENARIOS["cheaper but wider window vs dearer and steadier (eta 0.10)"][0]
    curves = pb.simulate_curves(params, BUDGETS, seeds=3, noise=0.005, rng=4)
    pb.save_curves(curves, tmp_path / "c.nc")
    out = tmp_path / "alda"
    args = ["advise", str(tmp_path / "c.nc"), "--target", "80", "--rule", "alda", "--eta", "0.1",
            "--max-budget", "300", "--quiet", "--alda-csv", str(out)]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "The reference advisor's answer" in text and "ALDA picks steady" in text
    fits = pd.read_csv(out / "alda_fits.csv")
    advice = pd.read_csv(out / "alda_advice.csv")
    assert {"method", "b_abs", "deployment_window", "risky", "p_pick"} <= set(fits.columns)
    assert advice.loc[0, "selected_method"] == "steady" == advice.loc[0, "bayes_method"]
    assert advice.loc[0, "decision_reason"].startswith("risk_aware_minimum_window")
    back = read_reference_fits(out / "alda_fits.csv")  # ALDA's fits file read back
    assert sorted(back["strategy"].values) == ["cheap_wide", "steady"]
    assert float(back["A_max"].sel(strategy="steady").squeeze()) == pytest.approx(0.94, abs=0.02)
    assert main(["advise", str(tmp_path / "c.nc"), "--target", "0.8", "--alda-csv", "x"]) == 2
    assert "--rule alda" in capsys.readouterr().err
