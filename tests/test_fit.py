"""Real but small MCMC fits on simulated curves with known parameters."""

import sys

import numpy as np
import pytest
import xarray as xr

import palm_bayes as pb
from palm_bayes.model.curve import labels_for_accuracy, palm_curve
from palm_bayes.model.simulate import simulate_curves

pytestmark = pytest.mark.slow

TRUE = {
    "fast": dict(A_max=0.92, delta=0.25, alpha=0.5, beta=0.9),
    "slow": dict(A_max=0.80, delta=0.08, alpha=0.0, beta=1.1),
    "late": dict(A_max=0.88, delta=0.02, alpha=2.0, beta=1.4),
    "twin": dict(A_max=0.80, delta=0.08, alpha=0.0, beta=1.1),
}
BUDGETS = np.arange(1, 16) * 100.0
SAMPLER = dict(chains=2, draws=500, tune=500, progress=False)


@pytest.fixture(scope="module")
def curves():
    return simulate_curves(TRUE, BUDGETS, seeds=3, n_test=2000, noise=0.01, rng=3)


@pytest.fixture(scope="module")
def fitted(curves):
    return pb.fit(curves, seed=1, **SAMPLER)


def test_posterior_dims_are_the_curve_dims(fitted):
    assert fitted.curve_dims == ("dataset", "strategy", "embedding")
    post = fitted.idata.posterior
    assert post["A_max"].dims == ("chain", "draw", "dataset", "strategy", "embedding")
    assert post.sizes["chain"] == 2 and post.sizes["draw"] == 500
    assert float(fitted.b.squeeze()[0]) == 100.0


def test_sampler_is_healthy(fitted):
    diag = fitted.diagnostics()
    assert float(diag["r_hat_max"].max()) < 1.05
    assert int(diag["divergences"].sum()) <= 5
    assert float(diag["ess_bulk_min"].min()) > 100


def test_recovers_the_curve_inside_the_hdi(curves, fitted):
    fc = fitted.forecast(BUDGETS, hdi_prob=0.9)
    truth = palm_curve(
        fc["budget"],
        curves["true_A_max"],
        curves["true_delta"],
        curves["true_alpha"],
        curves["true_beta"],
        100.0,
    )
    inside = (fc["lower"] <= truth) & (truth <= fc["upper"])
    assert float(inside.mean()) >= 0.8
    assert float(np.abs(fc["median"] - truth).max()) < 0.03


def test_recovers_saturating_asymptotes(curves, fitted):
    summary = fitted.summary(hdi_prob=0.9)
    for name in ("fast", "slow"):  # curves that saturate within the observed budgets
        s = summary.sel(strategy=name, parameter="A_max").squeeze()
        true = float(curves["true_A_max"].sel(strategy=name))
        assert float(s["lower"]) <= true <= float(s["upper"]), name
    assert set(summary.data_vars) >= {"mean", "sd", "lower", "upper", "r_hat", "ess_bulk"}


def test_prob_better(fitted):
    p = fitted.prob_better({"strategy": "fast"}, {"strategy": "slow"}, budget=800)
    assert p.dims == ("dataset", "embedding")
    assert float(p.squeeze()) > 0.99
    twins = float(fitted.prob_better({"strategy": "twin"}, {"strategy": "slow"}, 800).squeeze())
    assert 0.03 < twins < 0.97  # identical true curves: no confident winner
    many = fitted.prob_better({"strategy": "fast"}, {"strategy": "slow"}, budget=[300, 3000])
    assert many.dims == ("dataset", "embedding", "budget")


def test_labels_needed_covers_the_truth(curves, fitted):
    target = 0.6  # reached within the observed budgets by both curves
    out = fitted.labels_needed(target, hdi_prob=0.9)
    for name in ("fast", "slow"):
        p = {k: float(curves[f"true_{k}"].sel(strategy=name)) for k in TRUE["fast"]}
        true = labels_for_accuracy(target, b=100.0, **p)
        row = out.sel(strategy=name).squeeze()
        assert float(row["lower"]) <= true <= float(row["upper"]), name
        assert float(row["p_reachable"]) > 0.95
    # above the true asymptote: the random walk trusts PALM's A_max (these curves are PALM
    # curves); the LCDB-learned prior expects real curves to keep rising past it
    unreachable = fitted.with_prior("brownian").labels_needed(0.97).sel(strategy="slow").squeeze()
    assert float(unreachable["p_reachable"]) < 0.2
    assert np.isinf(float(unreachable["median"]))


def test_labels_needed_takes_per_curve_targets_with_extra_labels(fitted):
    """A target array per curve may name curves the fit lacks; they are ignored, not an error."""
    names = fitted.idata.posterior["strategy"].values.tolist()
    taus = [0.55 + 0.05 * k for k in range(len(names))]
    target = xr.DataArray(
        [*taus, 0.5], dims="strategy", coords={"strategy": [*names, "not-fitted"]}
    )
    out = fitted.labels_needed(target, hdi_prob=0.9)
    assert out["strategy"].values.tolist() == names
    for name, tau in zip(names, taus, strict=True):
        single = fitted.labels_needed(tau, hdi_prob=0.9).sel(strategy=name).squeeze()
        row = out.sel(strategy=name).squeeze()
        assert float(row["median"]) == pytest.approx(float(single["median"]), rel=1e-9)


def test_labels_needed_without_discrepancy_is_the_closed_form(fitted):
    # the module's fit queried with the zero discrepancy (no resampling: with_prior)
    fit = fitted.with_prior(pb.CurvePrior.brownian(0.0)).select({"strategy": "fast"})
    assert fit.curve_prior.is_zero
    post = fit.idata.posterior
    closed = labels_for_accuracy(
        0.85, post["A_max"], post["delta"], post["alpha"], post["beta"], 100.0
    )
    draws = fit.labels_needed_draws(0.85)
    expected = xr.where(closed <= 100 * 1500.0, np.ceil(closed.clip(min=0)), np.inf)
    np.testing.assert_allclose(draws.to_numpy(), expected.to_numpy(), rtol=1e-6)  # whole labels


def test_extrapolation_widens_with_distance(fitted):
    budgets = [1500.0, 6000.0, 30000.0]
    fc = fitted.with_prior("brownian").forecast(budgets).sel(strategy="late").squeeze()
    width = (fc["upper"] - fc["lower"]).to_numpy()
    assert width[0] < width[1] < width[2]
    # the learned prior also drifts the curve up, towards 1, where accuracy intervals narrow:
    # it widens on the logit scale
    draws = fitted.forecast_draws(budgets).sel(strategy="late").squeeze()
    z = np.log(draws) - np.log1p(-draws)
    spread = (z.quantile(0.95, ("chain", "draw")) - z.quantile(0.05, ("chain", "draw"))).to_numpy()
    assert spread[0] < spread[1] < spread[2]


def test_predictive_is_wider_than_expected(fitted):
    exp = fitted.forecast([800.0])
    pred = fitted.forecast([800.0], kind="predictive")
    assert bool(((pred["upper"] - pred["lower"]) > (exp["upper"] - exp["lower"])).all())


def test_save_and_load_round_trip(fitted, tmp_path):
    path = fitted.to_netcdf(tmp_path / "fit.nc")
    loaded = pb.PalmFit.from_netcdf(path)
    assert loaded.priors == fitted.priors
    xr.testing.assert_allclose(loaded.forecast([500.0, 5000.0]), fitted.forecast([500.0, 5000.0]))
    assert not list(tmp_path.glob(".*tmp"))


def test_queries_reject_bad_input(fitted, tmp_path):
    with pytest.raises(pb.PalmInputError, match="unknown strategy 'nope'"):
        fitted.prob_better({"strategy": "nope"}, {"strategy": "slow"}, 100)
    with pytest.raises(pb.PalmInputError, match="unknown dimension 'learner'"):
        fitted.prob_better({"learner": "x"}, {"strategy": "slow"}, 100)
    with pytest.raises(pb.PalmInputError, match="target accuracy must lie in"):
        fitted.labels_needed(1.5)
    with pytest.raises(pb.PalmInputError, match="hdi_prob"):
        fitted.forecast([100], hdi_prob=1.5)
    with pytest.raises(pb.PalmInputError, match="budgets must be finite"):
        fitted.forecast([np.nan])
    with pytest.raises(pb.PalmInputError, match="no fit file"):
        pb.PalmFit.from_netcdf(tmp_path / "missing.nc")


def test_forecast_in_budget_slices_matches_one_pass(fitted, monkeypatch):
    budgets = [300.0, 900.0, 1500.0, 4000.0, 20000.0]
    whole = fitted.forecast(budgets)
    per_budget = fitted.idata.posterior["A_max"].size
    monkeypatch.setattr(
        sys.modules["palm_bayes.queries.forecast"], "FORECAST_CHUNK_VALUES", 2 * per_budget
    )
    sliced = fitted.forecast(budgets)
    xr.testing.assert_allclose(sliced, whole)
    assert sliced["budget"].values.tolist() == budgets
