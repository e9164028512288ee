"""Self-calibration from the pilot's own backtests, and the undecided band of comparisons."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import palm_bayes as pb
from palm_bayes.inference.self_calibration import (
    MIN_BUDGETS,
    MIN_RATIO,
    SelfCalibration,
    backtest_pilot,
    calibrate_prior,
    grid_least_squares,
    update_prior,
)
from palm_bayes.model.curve import palm_curve_log_lambda
from palm_bayes.priors.shipped import default_prior
from palm_bayes.queries.decided import decided_span, is_undecided

B = 50.0
WALK = pb.CurvePrior.brownian(0.3)


def cases_with(m: float, rho: float, groups: int, size: int = 2, seed: int = 0) -> pd.DataFrame:
    """Backtest residuals drawn from the random walk 0.3 sqrt(d), scaled by m, correlation rho."""
    rng = np.random.default_rng(seed)
    d = np.log(2.0)
    sd = m * 0.3 * np.sqrt(d)
    rows = []
    for g in range(groups):
        shared = rng.standard_normal()
        for k in range(size):
            e = np.sqrt(rho) * shared + np.sqrt(1 - rho) * rng.standard_normal()
            rows.append(
                {"curve": f"{g}|{k}", "group": str(g), "origin": 100.0, "d": d,
                 "residual": sd * e, "noise_var": 1e-6, "n_seeds": 3.0, "palm_level": 1.0,
                 "palm_slope": 0.1, "gain": 0.0, "observed": 0.8, "forecast": 0.8}
            )  # fmt: skip
    return pd.DataFrame(rows)


@pytest.mark.parametrize("m", [0.7, 2.0, 4.0])
def test_the_update_recovers_a_known_discrepancy_scale(m):
    _, post = update_prior(cases_with(m, 0.0, groups=60), WALK)
    assert post["m"]["lower"] <= m <= post["m"]["upper"]
    assert post["m"]["mean"] == pytest.approx(m, rel=0.35)


def test_the_update_learns_that_rankings_cross_from_many_pairs():
    # the library says curves leave PALM together (rho 0.94); 60 pairs say they do not
    library = default_prior()
    cross, _ = update_prior(cases_with(1.0, 0.0, groups=60), library)
    together, _ = update_prior(cases_with(1.0, 0.94, groups=60, seed=1), library)
    assert np.mean(cross.rho) < 0.3
    assert np.mean(together.rho) > 0.8


def test_thin_evidence_stays_near_the_library_prior_and_wide():
    library = default_prior()
    thin = cases_with(1.0, 0.0, groups=1).assign(residual=0.0)  # one pair that agreed
    prior, post = update_prior(thin, library)
    # neither pinned to "rankings cross" nor to the library's rho: both stay possible
    assert post["rho"]["lower"] <= 0.25 and post["rho"]["upper"] >= 0.9
    assert 0.5 <= post["m"]["mean"] <= 1.6
    assert 0.3 < np.mean(prior.rho >= 0.9) < 0.8


def test_grid_least_squares_recovers_a_palm_curve():
    x = np.arange(1, 9, dtype=float)
    y = palm_curve_log_lambda(x, 0.9, np.log(0.3), 0.0, 0.8)
    a_max, log_lam, alpha, beta = grid_least_squares(x, y, np.ones_like(x))
    ahead = palm_curve_log_lambda(np.array([16.0, 32.0]), a_max, log_lam, alpha, beta)
    truth = palm_curve_log_lambda(np.array([16.0, 32.0]), 0.9, np.log(0.3), 0.0, 0.8)
    np.testing.assert_allclose(ahead, truth, atol=0.01)


def test_backtests_of_palm_curves_have_small_residuals():
    params = {"a": dict(A_max=0.9, delta=0.3, alpha=0.0, beta=0.9),
              "b": dict(A_max=0.85, delta=0.2, alpha=0.0, beta=0.8)}  # fmt: skip
    curves = pb.simulate_curves(
        params, np.arange(1, 11) * B, seeds=3, noise=0.0005, n_test=10**7, rng=0
    )
    cases = backtest_pilot(pb.load_curves(curves))
    assert set(cases["curve"].str.split("|").str[1]) == {"a", "b"}
    assert (cases["target"] == 10 * B).all() and (cases["d"] >= np.log(MIN_RATIO)).all()
    assert cases["residual"].abs().max() < 0.1


def test_laplace_backtests_carry_the_posterior_spread():
    # the Bayesian refit at an earlier origin is less sure of the target than at a later one,
    # and the truth lies within the refits' own spread
    params = {"a": dict(A_max=0.9, delta=0.1, alpha=0.0, beta=0.8)}
    curves = pb.load_curves(
        pb.simulate_curves(params, np.arange(1, 16) * B, seeds=3, noise=0.01, rng=1)
    )
    cases = backtest_pilot(curves).sort_values("origin")
    lsq = backtest_pilot(curves, forecaster="least_squares")
    assert (lsq["forecast_var"] == 0).all() and len(lsq) == len(cases) >= 2
    assert (cases["forecast_var"] > 0).all()
    assert cases["forecast_var"].iloc[0] > cases["forecast_var"].iloc[-1]
    sd = np.sqrt(cases["forecast_var"] + cases["noise_var"])
    assert (cases["residual"].abs() < 3 * sd).all()
    with pytest.raises(pb.PalmInputError, match="forecaster must be"):
        backtest_pilot(curves, forecaster="lstsq")


def test_the_refits_own_spread_is_not_counted_as_discrepancy():
    # residuals as large as m = 3 would imply, but explained by the refits' own posterior
    # spread: the update must not widen the discrepancy for them
    big = cases_with(3.0, 0.0, groups=60)
    explained = big.assign(forecast_var=(3.0**2 - 1.0) * (0.3**2) * np.log(2.0))
    _, unexplained_post = update_prior(big, WALK)
    _, explained_post = update_prior(explained, WALK)
    assert unexplained_post["m"]["mean"] > 2.0
    assert explained_post["m"]["mean"] == pytest.approx(1.0, abs=0.4)


def test_a_pilot_too_short_to_backtest_keeps_the_library_prior():
    params = {"a": dict(A_max=0.9, delta=0.05, alpha=0.0, beta=0.9)}
    curves = pb.load_curves(pb.simulate_curves(params, [50, 100, 150, 200], seeds=3, rng=0))
    prior, info = calibrate_prior(curves, default_prior())
    assert info.status == "too short"
    assert prior.to_json() == default_prior().to_json()
    assert "too short" in info.describe() and f"needs {MIN_BUDGETS}" in info.describe()


def test_describe_states_the_backtest_in_words():
    info = SelfCalibration(
        "calibrated", n_curves=5, n_backtests=15, ratio=2.0, mae=0.021, pairs_total=10,
        pairs_changed=4, posterior={"m": {"mean": 1.5, "lower": 1.0, "upper": 2.8},
                                    "rho": {"mean": 0.4, "lower": 0.0, "upper": 0.94},
                                    "g": {"mean": 0.7, "lower": 0.0, "upper": 1.0}},
    )  # fmt: skip
    text = info.describe()
    assert "forecasts 2.0x ahead missed by 0.021 on average" in text
    assert "4 of 10 pairs changed order inside the pilot" in text
    assert SelfCalibration.from_json(info.to_json()) == info


# ------------------------------------------------------------------ undecided comparisons
RANDOM = dict(A_max=0.85, delta=0.1, alpha=0.0, beta=1.0)


def test_prob_better_and_win_matrix_mark_the_undecided_band(known_fit):
    a_max = np.array([0.9] * 35 + [0.8] * 15 + [0.9] * 35 + [0.8] * 15)  # wins in 70%
    fit = known_fit({"random": RANDOM, "better": RANDOM | {"A_max": a_max}}, b=B)
    p = fit.prob_better({"strategy": "better"}, {"strategy": "random"}, [100.0, 400.0])
    assert p["undecided"].all()
    wm = fit.win_matrix([400.0]).squeeze()
    assert bool(wm["undecided"].sel(strategy="better", opponent="random"))
    assert is_undecided(0.2) and is_undecided(0.8) and not is_undecided(0.81)


def test_decided_span_on_a_grid():
    p = xr.DataArray([[0.95, 0.9, 0.7, 0.95], [0.5, 0.9, 0.9, 0.9], [0.1, 0.05, 0.0, 0.15]],
                     dims=("pair", "budget"), coords={"budget": [1.0, 2.0, 4.0, 8.0]})  # fmt: skip
    span = decided_span(p)
    np.testing.assert_array_equal(span.to_numpy(), [2.0, np.nan, 8.0])
    assert span.attrs["horizon"] == 8.0


def test_decided_up_to_on_a_hand_built_posterior(known_fit):
    # a saturates at 0.8 early; b rises slowly to A_max spread over 0.78-1.0: a leads at
    # first (decided), then the comparison enters the band as b catches up
    fast = dict(A_max=0.8, delta=0.5, alpha=0.0, beta=1.0)
    a_max = np.linspace(0.78, 1.0, 100)
    fit = known_fit({"fast": fast, "slow": dict(A_max=a_max, delta=0.1, alpha=0.0, beta=1.0)})
    span = fit.decided_up_to().squeeze()
    grid = 200.0 * np.geomspace(1.0, 10.0, 25)
    slow = [pb.palm_curve(g, a_max, 0.1, 0.0, 1.0, b=B) for g in grid]
    fast_at = [pb.palm_curve(g, **fast, b=B) for g in grid]
    p = np.array([np.mean(f > s) for f, s in zip(fast_at, slow, strict=True)])
    first = int(np.flatnonzero((p >= 0.2) & (p <= 0.8))[0])
    assert first > 0
    assert float(span.sel(strategy="fast", opponent="slow")) == pytest.approx(grid[first - 1])
    assert np.isnan(float(span.sel(strategy="fast", opponent="fast")))


def test_hand_built_fits_say_self_calibration_is_off(known_fit):
    fit = known_fit({"random": RANDOM})
    assert fit.self_calibration is None
    assert fit.describe().endswith("Self-calibration: off (the curve prior as given)")


@pytest.mark.slow
def test_palm_fit_calibrates_by_default_and_says_so(two_strategy_fit_dir):
    fit = pb.PalmFit.from_netcdf(two_strategy_fit_dir / "fit.nc")
    info = fit.self_calibration
    assert info is not None and info.status == "calibrated"
    assert "Self-calibration: on this pilot, forecasts" in fit.describe()
    library = pb.CurvePrior.from_dict(
        __import__("json").loads(fit.idata.posterior.attrs["library_prior"])
    )
    assert library.meta.get("self_calibrated") is None
    assert fit.curve_prior.meta["self_calibrated"] == "grid"


@pytest.mark.slow
def test_palm_compare_marks_undecided_and_decided_up_to(two_strategy_fit_dir, capsys):
    import json

    from palm_bayes.cli import main

    args = ["compare", str(two_strategy_fit_dir), "--a", "strategy=good", "--b", "strategy=poor"]
    assert main([*args, "--budget", "400", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["prob_better"] > 0.9 and row["undecided"] is False
    fit = pb.PalmFit.from_netcdf(two_strategy_fit_dir / "fit.nc")
    span = fit.decided_up_to().sel(strategy="good", opponent="poor").squeeze()
    assert row["decided_up_to"] == pytest.approx(float(span))
    assert main([*args, "--budget", "400"]) == 0
    out = capsys.readouterr().out
    assert "decided_up_to" in out and "undecided: True: P lies in [0.2, 0.8]" in out


def test_backtest_likelihood_is_the_joint_normal_of_each_block():
    # the rank-one shortcut against scipy's dense multivariate Normal, block by block
    from scipy.stats import multivariate_normal

    from palm_bayes.inference.self_calibration import _loglik, _prior_terms

    cases = cases_with(1.5, 0.6, groups=3, size=4, seed=2)
    cases["noise_var"] = np.linspace(1e-4, 1e-2, len(cases))
    m, rho, g = np.array([0.7, 2.0]), np.array([0.0, 0.85]), np.array([1.0, 0.5])
    got = _loglik(cases, WALK, m, rho, g)
    drift, scale = _prior_terms(WALK, cases)
    for k in range(2):
        want = 0.0
        for _, block in cases.groupby(["group", "origin"]):
            i = block.index.to_numpy()
            s = m[k] * scale[i]
            corr = rho[k] + (1 - rho[k]) * np.eye(i.size)
            cov = s[:, None] * corr * s[None, :] + np.diag(cases["noise_var"].to_numpy()[i])
            want += multivariate_normal(g[k] * drift[i], cov).logpdf(block["residual"])
        assert got[k] == pytest.approx(want, rel=1e-10)


def test_pairs_changed_order_counts_crossings_inside_the_pilot():
    from palm_bayes.inference.self_calibration import pairs_changed_order

    def curve(strategy, budgets, accuracy):
        return pd.DataFrame(
            {"dataset": "d", "strategy": strategy, "seed": 0, "budget": budgets,
             "accuracy": accuracy}
        )  # fmt: skip

    same = [10, 20, 30, 40]
    frame = pd.concat(
        [
            curve("a", same, [0.50, 0.60, 0.65, 0.70]),  # ahead at 20, behind at 40
            curve("b", same, [0.50, 0.55, 0.70, 0.80]),
            curve("c", same, [0.40, 0.50, 0.60, 0.65]),  # behind a and b throughout
            curve("e", [10, 20, 40, 80], [0.5, 0.7, 0.75, 0.9]),  # other budgets: common 10-40
        ]
    )
    total, changed = pairs_changed_order(pb.load_curves(frame))
    # a-b cross; e is ahead of a and c at 20 and at 40, of b at 20 but behind it at 40
    assert (total, changed) == (6, 2)
