"""The speed-up factor (Kath et al. 2026) on a hand-built posterior, against its closed form.

As in tests/palm_bayes/queries/test_queries_exact.py the posterior is written, not sampled
(``known_fit``, zero
extrapolation discrepancy): ``random`` is a point mass, ``better`` has A_max 0.9 in 70% of the
draws and 0.8 in 30%. The factor of a draw is then a closed-form function of the PALM inverse
(whole labels, rounded up), and the summaries are the quantiles of a two-point distribution.
"""

from __future__ import annotations

import numpy as np
import pytest

import palm_bayes as pb
from palm_bayes.cli import main

B = 50.0
RANDOM = dict(A_max=0.85, delta=0.1, alpha=0.0, beta=1.0)
A_MAX = np.array([0.9] * 35 + [0.8] * 15 + [0.9] * 35 + [0.8] * 15)  # 70% 0.9, 30% 0.8
BETTER = dict(A_max=A_MAX, delta=0.1, alpha=0.0, beta=1.0)


def labels(target, a_max):
    """Whole labels ``better`` needs for ``target`` at this A_max (inf: never)."""
    if target >= a_max:
        return np.inf
    return float(np.ceil(pb.labels_for_accuracy(target, **BETTER | {"A_max": a_max}, b=B)))


@pytest.fixture
def two(known_fit):
    return known_fit({"random": RANDOM, "better": BETTER}, b=B)


def test_per_budget_factor_is_labels_needed_over_the_reference_budget(two):
    budgets = [60.0, 130.0, 900.0]
    out = two.speedup("random", budgets=budgets).squeeze(["dataset", "embedding"])
    assert out["median"].dims == ("strategy", "budget")
    for budget in budgets:
        a = float(pb.palm_curve(budget, **RANDOM, b=B))  # random's accuracy at this budget
        hi, lo = labels(a, 0.9) / budget, labels(a, 0.8) / budget
        got = out.sel(strategy="better", budget=budget)
        assert float(got["median"]) == hi and float(got["lower"]) == hi  # 70% of the mass
        assert float(got["upper"]) == lo  # the 95% quantile falls in the 30%
        assert float(got["p_faster"]) == pytest.approx(0.7 * (hi < 1) + 0.3 * (lo < 1))
        assert float(got["p_matches"]) == pytest.approx(0.7 + 0.3 * np.isfinite(lo))
        assert float(out["median"].sel(strategy="random", budget=budget)) == 1.0
    # at 900 labels random is at 0.85 * (1 - 0.9**18) = 0.72; A_max 0.8 still reaches it, slowly
    assert float(out["upper"].sel(strategy="better", budget=900.0)) > 1


def test_range_factor_is_the_geometric_mean_over_equally_spaced_budgets(two):
    out = two.speedup("random", grid_points=7).squeeze(["dataset", "embedding"])
    grid = np.linspace(50.0, 200.0, 7)  # the observed range, the default
    accs = pb.palm_curve(grid, **RANDOM, b=B)

    def factor(a_max):
        logs = [np.log(labels(a, a_max) / g) for a, g in zip(accs, grid, strict=True)]
        return float(np.exp(np.mean(logs)))

    better = out.sel(strategy="better")
    assert float(better["median"]) == pytest.approx(factor(0.9), rel=1e-12)
    assert float(better["upper"]) == pytest.approx(factor(0.8), rel=1e-12)
    assert factor(0.9) < 1 < factor(0.8)
    assert float(better["p_faster"]) == pytest.approx(0.7)
    assert float(out["median"].sel(strategy="random")) == 1.0


def test_factor_at_accuracy_levels_with_unreachable_targets(two):
    out = two.speedup("random", accuracy=[0.7, 0.82, 0.87]).squeeze(["dataset", "embedding"])
    better = out.sel(strategy="better")
    r = float(np.ceil(pb.labels_for_accuracy(0.7, **RANDOM, b=B)))
    assert float(better["median"].sel(accuracy=0.7)) == labels(0.7, 0.9) / r
    assert float(better["upper"].sel(accuracy=0.7)) == labels(0.7, 0.8) / r
    # 0.82: above A_max in 30% of better's draws -> inf there
    assert float(better["p_matches"].sel(accuracy=0.82)) == pytest.approx(0.7)
    assert np.isinf(float(better["upper"].sel(accuracy=0.82)))
    # 0.87: random never gets there; better does in 70% of the draws (factor 0), never in 30%
    assert float(better["p_defined"].sel(accuracy=0.87)) == pytest.approx(0.7)
    assert float(better["median"].sel(accuracy=0.87)) == 0.0
    assert np.isnan(float(out["median"].sel(strategy="random", accuracy=0.87)))


def test_bad_arguments_are_one_line(two):
    with pytest.raises(pb.PalmInputError, match="unknown strategy"):
        two.speedup("margin")
    with pytest.raises(pb.PalmInputError, match="not several"):
        two.speedup(accuracy=0.7, budgets=[100.0])
    with pytest.raises(pb.PalmInputError, match=r"lie in \(0, 1\)"):
        two.speedup(accuracy=70)


def test_cli_speedup(two_strategy_fit_dir, capsys):
    assert main(["speedup", str(two_strategy_fit_dir), "--reference", "poor"]) == 0
    text = capsys.readouterr().out
    assert "Speed-up factor" in text and "good" in text
    assert main(["speedup", str(two_strategy_fit_dir), "--reference", "nope"]) == 2


def test_advice_table_carries_the_factor_at_the_target(two):
    table = two.advise(0.7).table.squeeze(["dataset", "embedding"])
    r = float(np.ceil(pb.labels_for_accuracy(0.7, **RANDOM, b=B)))
    better = table.sel(strategy="better")
    assert float(better["speedup_median"]) == labels(0.7, 0.9) / r
    assert float(better["speedup_lower"]) == labels(0.7, 0.9) / r
    assert float(better["speedup_upper"]) == labels(0.7, 0.8) / r
    assert float(table["speedup_median"].sel(strategy="random")) == 1.0
    # the same numbers as the query at that accuracy
    query = two.speedup("random", accuracy=0.7).squeeze()
    assert float(query["median"].sel(strategy="better")) == float(better["speedup_median"])
