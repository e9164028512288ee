"""Posterior queries on a hand-built posterior whose answers are known in closed form.

The fits here are not sampled: ``known_fit`` (tests/conftest.py) writes the posterior draws of
A_max, delta, alpha and beta directly, with the zero extrapolation discrepancy
(``CurvePrior.brownian(0.0)``) unless a test says otherwise. Every query is then a function of
the draws that can be written down: the tests compare to it exactly (or to quadrature / root
finding within their numerical tolerance), in milliseconds.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.optimize import brentq

import palm_bayes as pb

B = 50.0  # labels per round of every hand-built fit
RANDOM = dict(A_max=0.85, delta=0.1, alpha=0.0, beta=1.0)
#: 100 draws: A_max 0.90 in 70 of them, 0.80 in 30 (same delta, alpha, beta as RANDOM)
MIXTURE_A = np.array([0.9] * 35 + [0.8] * 15 + [0.9] * 35 + [0.8] * 15)
BETTER = dict(A_max=MIXTURE_A, delta=0.1, alpha=0.0, beta=1.0)
CURVED = dict(A_max=0.8, delta=0.2, alpha=1.5, beta=0.7)


def need(target: float, p: dict, a_max: float | None = None) -> float:
    """Whole labels to reach ``target`` at PALM parameters ``p`` (A_max replaced if given)."""
    q = p | ({"A_max": a_max} if a_max is not None else {})
    return float(np.ceil(pb.labels_for_accuracy(target, **q, b=B)))


@pytest.fixture
def two(known_fit):
    """random (point mass) and better (A_max 0.9 in 70% of the draws, 0.8 in 30%)."""
    return known_fit({"random": RANDOM, "better": BETTER}, b=B)


def test_forecast_of_a_point_mass_is_the_palm_curve(known_fit):
    fit = known_fit({"random": RANDOM, "curved": CURVED}, b=B)
    budgets = np.array([10.0, 50.0, 120.0, 200.0, 1000.0, 10_000.0])
    fc = fit.forecast(budgets).squeeze(["dataset", "embedding"])
    for name, p in (("random", RANDOM), ("curved", CURVED)):
        truth = pb.palm_curve(budgets, **p, b=B)
        for stat in ("median", "mean", "lower", "upper"):
            np.testing.assert_allclose(fc[stat].sel(strategy=name), truth, rtol=1e-12)
    draws = fit.forecast_draws(budgets)
    assert draws.dims == ("chain", "draw", "dataset", "strategy", "embedding", "budget")
    assert draws.sizes["chain"] * draws.sizes["draw"] == 8


def test_forecast_median_and_mean_of_a_mixture(two):
    budgets = [100.0, 400.0, 5000.0]
    fc = two.forecast(budgets).sel(strategy="better").squeeze()
    high = pb.palm_curve(np.array(budgets), **BETTER | {"A_max": 0.9}, b=B)
    low = pb.palm_curve(np.array(budgets), **BETTER | {"A_max": 0.8}, b=B)
    np.testing.assert_allclose(fc["median"], high, rtol=1e-12)
    np.testing.assert_allclose(fc["mean"], 0.7 * high + 0.3 * low, rtol=1e-12)
    # the 90% HDI of a 70/30 two-point posterior holds both points
    np.testing.assert_allclose(fc["lower"], low, rtol=1e-12)
    np.testing.assert_allclose(fc["upper"], high, rtol=1e-12)


@pytest.mark.parametrize("budget", [60.0, 200.0, 3000.0])
def test_prob_better_is_the_share_of_winning_draws(two, budget):
    # same delta, alpha, beta: better wins exactly in the draws where its A_max is higher
    p = two.prob_better({"strategy": "better"}, {"strategy": "random"}, budget)
    assert p.dims == ("dataset", "embedding")
    assert float(p.squeeze()) == pytest.approx(0.7, abs=1e-12)
    back = two.prob_better({"strategy": "random"}, {"strategy": "better"}, budget)
    assert float(back.squeeze()) == pytest.approx(0.3, abs=1e-12)


def test_prob_better_counts_ties_as_half(known_fit):
    a_max = np.array([0.9] * 60 + [0.85] * 20 + [0.8] * 20)
    fit = known_fit({"random": RANDOM, "tied": RANDOM | {"A_max": a_max}}, b=B)
    p = fit.prob_better({"strategy": "tied"}, {"strategy": "random"}, [100.0, 800.0])
    np.testing.assert_allclose(p.squeeze(), [0.7, 0.7], atol=1e-12)  # 0.6 + 0.5 * 0.2


def test_labels_needed_is_the_closed_form_inverse(two):
    out = two.labels_needed(0.7).squeeze(["dataset", "embedding"])
    r, hi, lo = need(0.7, RANDOM), need(0.7, BETTER, 0.9), need(0.7, BETTER, 0.8)
    assert hi < r < lo
    assert [float(out[k].sel(strategy="random")) for k in ("median", "lower", "upper")] == [r] * 3
    better = out.sel(strategy="better")
    assert (float(better["median"]), float(better["lower"]), float(better["upper"])) == (
        hi,
        hi,
        lo,
    )
    np.testing.assert_array_equal(out["p_reachable"], [1.0, 1.0])


def test_labels_needed_unreachable_and_horizon(two):
    # 0.85 is random's asymptote and above A_max in 30% of better's draws
    out = two.labels_needed(0.85).squeeze(["dataset", "embedding"])
    assert float(out["p_reachable"].sel(strategy="random")) == 0.0
    assert np.isinf(float(out["median"].sel(strategy="random")))
    assert float(out["p_reachable"].sel(strategy="better")) == pytest.approx(0.7)
    assert float(out["median"].sel(strategy="better")) == need(0.85, BETTER, 0.9)
    assert np.isinf(float(out["upper"].sel(strategy="better")))
    # a search horizon below the labels needed makes the target unreachable
    capped = two.labels_needed(0.7, max_budget=need(0.7, RANDOM) - 1).squeeze()
    assert float(capped["p_reachable"].sel(strategy="random")) == 0.0
    assert float(capped["p_reachable"].sel(strategy="better")) == pytest.approx(0.7)


def test_advise_picks_the_strategy_cheapest_in_most_draws(two):
    advice = two.advise(0.7)
    table = advice.table.squeeze(["dataset", "embedding"])
    np.testing.assert_allclose(table["p_cheapest"].sel(strategy=["better", "random"]), [0.7, 0.3])
    # labels saved against random, averaged over the draws (random is the reference)
    r, hi, lo = need(0.7, RANDOM), need(0.7, BETTER, 0.9), need(0.7, BETTER, 0.8)
    saved = 0.7 * (r - hi) + 0.3 * (r - lo)
    assert float(table["expected_saved"].sel(strategy="better")) == pytest.approx(saved)
    assert float(table["expected_saved"].sel(strategy="random")) == 0.0
    (row,) = advice.recommendation.to_dict("records")
    assert (row["verdict"], row["strategy"]) == ("recommend", "better")
    assert row["probability"] == pytest.approx(0.7)
    # the same posterior under a stricter threshold is not enough evidence
    (strict,) = two.advise(0.7, threshold=0.75).recommendation.to_dict("records")
    assert strict["verdict"] == "not enough evidence yet"
    (none,) = two.advise(0.95).recommendation.to_dict("records")
    assert none["verdict"] == "target not reachable"


def test_win_matrix_is_the_pairwise_share_of_wins(two):
    m = two.win_matrix([100.0, 2000.0]).squeeze(["dataset", "embedding"])
    assert m.dims == ("strategy", "opponent", "budget")
    np.testing.assert_allclose(m.sel(strategy="better", opponent="random"), [0.7, 0.7])
    np.testing.assert_allclose(m.sel(strategy="random", opponent="better"), [0.3, 0.3])
    assert bool(m.sel(strategy="better", opponent="better").isnull().all())


@pytest.mark.filterwarnings("ignore:All-NaN slice:RuntimeWarning")  # no draw crosses back
def test_crossover_of_a_fast_and_a_slow_curve(known_fit):
    fast = dict(A_max=0.7, delta=0.3, alpha=0.0, beta=1.0)
    slow = dict(A_max=0.9, delta=0.05, alpha=0.0, beta=1.0)
    fit = known_fit({"fast": fast, "slow": slow}, b=B)
    root = brentq(
        lambda x: pb.palm_curve(x, **slow, b=B) - pb.palm_curve(x, **fast, b=B), B, 100 * B
    )
    out = fit.crossover("fast", "slow").squeeze()
    assert float(out["p_crossover"]) == 1.0
    assert float(out["p_b_leads_at_start"]) == 0.0
    # linear interpolation of the gap's zero on a 400-point log grid
    assert float(out["median"]) == pytest.approx(root, rel=1e-3)
    assert float(fit.crossover("slow", "fast").squeeze()["p_crossover"]) == 0.0


def test_aubc_is_the_mean_accuracy_over_the_budget_range(two):
    lo, hi = 50.0, 200.0  # the observed range, the default

    def area(p):
        return quad(lambda x: pb.palm_curve(x, **p, b=B), lo, hi)[0] / (hi - lo)

    out = two.aubc().squeeze(["dataset", "embedding"])
    assert out.attrs["budget_range"] == (lo, hi)
    assert float(out["median"].sel(strategy="random")) == pytest.approx(area(RANDOM), rel=1e-4)
    mixed = 0.7 * area(BETTER | {"A_max": 0.9}) + 0.3 * area(BETTER | {"A_max": 0.8})
    assert float(out["mean"].sel(strategy="better")) == pytest.approx(mixed, rel=1e-4)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # r_hat of a point mass is 0 / 0
def test_summary_moments_of_the_draws(two):
    s = two.summary().squeeze(["dataset", "embedding"])
    a_max = s.sel(parameter="A_max")
    assert float(a_max["mean"].sel(strategy="better")) == pytest.approx(0.87)
    assert float(a_max["sd"].sel(strategy="better")) == pytest.approx(np.std(MIXTURE_A))
    assert float(a_max["mean"].sel(strategy="random")) == pytest.approx(0.85)
    assert float(s["divergences"].sum()) == 0


def test_a_discrepancy_prior_only_acts_beyond_the_last_observed_budget(two):
    """With the default random walk, observed budgets stay exact; extrapolations widen."""
    walk = two.with_prior("brownian")
    assert not walk.curve_prior.is_zero and two.curve_prior.is_zero
    inside = [50.0, 120.0, 200.0]  # 200 is the last observed budget
    np.testing.assert_allclose(
        walk.forecast(inside)["median"], two.forecast(inside)["median"], rtol=1e-12
    )
    p = walk.prob_better({"strategy": "better"}, {"strategy": "random"}, 200.0)
    assert float(p.squeeze()) == pytest.approx(0.7)
    # targets met inside the observed range: the closed form, whatever the prior
    target = 0.2  # random reaches it at ~150 labels
    closed = need(target, RANDOM)
    assert closed < 200
    assert float(walk.labels_needed(target)["median"].sel(strategy="random").squeeze()) == closed
    # beyond the last budget a point mass gets a proper interval around the PALM value
    far = walk.forecast([2000.0]).sel(strategy="random").squeeze()
    palm = float(pb.palm_curve(2000.0, **RANDOM, b=B))
    assert float(far["lower"]) < palm < float(far["upper"])
    assert float(far["upper"] - far["lower"]) > 0.02


def test_select_keeps_the_known_answers(two):
    one = two.select({"strategy": "better"})
    assert one.idata.posterior.sizes["strategy"] == 1
    fc = one.forecast([400.0])["median"].squeeze()
    assert float(fc) == pytest.approx(float(pb.palm_curve(400.0, **BETTER | {"A_max": 0.9}, b=B)))


def test_round_trip_through_netcdf_keeps_the_answers(two, tmp_path):
    back = pb.PalmFit.from_netcdf(two.to_netcdf(tmp_path / "fit.nc"))
    assert back.curve_prior.is_zero
    p = back.prob_better({"strategy": "better"}, {"strategy": "random"}, 300.0)
    assert float(p.squeeze()) == pytest.approx(0.7)
    assert back.labels_needed(0.7).equals(two.labels_needed(0.7))
