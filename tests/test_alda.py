"""ALDA parity: the reference advisor's rule, on its own kinds of situations.

Each scenario is a set of PALM curves (10 labels per round, 30 rounds, 3 seeds) whose targets lie
inside the observed budgets. ``alda_least_squares`` gives the reference's answer (least-squares
fits, one pick); ``advise(rule="alda")`` gives the probability that each strategy is that pick.
``pytest tests/test_alda.py -s`` prints the README's table.
"""

from __future__ import annotations

import numpy as np
import pytest

import palm_bayes as pb
from palm_bayes.advise import alda_least_squares

pytestmark = pytest.mark.slow

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
        lsq = alda_least_squares(pb.fit_least_squares(curves), TARGET, TOLERANCE, eta).iloc[0]
        fit = pb.fit(curves, seed=k, **SAMPLER)
        # the horizon is the observed range: parity with a rule that only trusts the fit
        advice = fit.advise(
            TARGET, rule="alda", target_tolerance=TOLERANCE, eta=eta, max_budget=BUDGETS[-1],
            reference=None,
        )  # fmt: skip
        cheapest = fit.advise(TARGET, eta=eta, max_budget=BUDGETS[-1], reference=None)
        out[name] = (lsq, advice, cheapest)
    return out


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_reference_rule_on_least_squares(answers, name):
    lsq, _, _ = answers[name]
    params, _, expected, fallback = SCENARIOS[name]
    assert lsq["pick"] == expected
    assert bool(lsq["fallback"]) is fallback
    if not fallback:  # whole rounds, within one round of the true curve's
        assert abs(lsq["labels"] - _truth(params[expected], TARGET)) <= 10


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


def test_percent_targets_and_bad_rules():
    curves = pb.simulate_curves(
        {"a": dict(A_max=0.95, delta=0.1, alpha=0.0, beta=1.0)}, BUDGETS, seeds=2, rng=0
    )
    fit = pb.fit(curves, **SAMPLER)
    as_percent = fit.advise(80, rule="alda", target_tolerance=5, max_budget=300).table
    as_fraction = fit.advise(0.8, rule="alda", target_tolerance=0.05, max_budget=300).table
    assert as_percent["labels_median"].equals(as_fraction["labels_median"])
    with pytest.raises(pb.PalmInputError, match="unknown rule 'fastest'"):
        fit.advise(0.8, rule="fastest")


def test_print_readme_table(answers):
    lines = ['| scenario | reference (least squares) | palm_bayes `rule="alda"` |']
    for name, (lsq, advice, _) in answers.items():
        table = advice.table.squeeze(["dataset", "embedding"], drop=True)
        pick = advice.recommendation.iloc[0]["strategy"]
        column = "p_fallback_pick" if SCENARIOS[name][3] else "p_pick"
        p = float(table[column].sel(strategy=pick))
        ref = f"{lsq['pick']}" + (" (fallback)" if lsq["fallback"] else f", {lsq['labels']:.0f}")
        ours = f"{pick}, P = {p:.2f}" + ("" if SCENARIOS[name][3] else "")
        lines.append(f"| {name} | {ref} | {ours} |")
    print("\n" + "\n".join(lines))
