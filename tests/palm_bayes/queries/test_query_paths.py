"""The numpy query core gives the answers of the xarray queries it replaced, and one search.

``reference_*`` below transcribe the xarray implementation that forecasts, P(better) and
labels needed had before :mod:`palm_bayes.queries.paths` (commit ba9fd72): every operation
on named dims, recomputed per call, labels needed searched on all 257 grid points of every
draw. The core computes once per fit, only for the curves asked for, and searches only the
grid blocks where a bound of the path reaches the target; the answers must not change.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy.special import expit

import palm_bayes as pb
from palm_bayes.decisions.schedule import schedule
from palm_bayes.model.curve import labels_for_accuracy_log_lambda, palm_curve_log_lambda
from palm_bayes.priors.curve_prior import PATH_CLIP, logit
from palm_bayes.queries.forecast import curve_features, group_dim, seed_shift
from palm_bayes.queries.paths import crossing_budget, first_crossing, labels_grid, path_base


# ------------------------------------------------------------------ the old implementation
def reference_extrapolate(fit, logit_palm, log_budget, seed, pick=None):
    prior = fit.curve_prior
    if prior.is_zero:
        return logit_palm
    post, const = fit.idata.posterior, fit.idata.constant_data
    at_last = logit(
        palm_curve_log_lambda(
            const["last_budget"], post["A_max"], post["log_lambda"], post["alpha"],
            post["beta"], const["b"],
        ),
        PATH_CLIP,
    ).median(("chain", "draw"))  # fmt: skip
    e, index = prior.shocks(post["A_max"], group_dim(fit), seed)
    features = curve_features(fit)
    log_last = np.log(const["last_budget"])
    shift = seed_shift(fit, seed)
    if pick is not None:

        def sub(x):
            x = x.stack(curve=fit.curve_dims).isel(pick)
            return x.drop_vars([c for c in x.coords if "curve" in x[c].dims])

        at_last, e, features, log_last = sub(at_last), sub(e), sub(features), sub(log_last)
        shift = None if shift is None else sub(shift)
    gain = logit_palm.median(("chain", "draw")) - at_last
    widened = prior.widen(logit_palm, log_budget - log_last, gain, features, e, index)
    return widened if shift is None else widened + shift


def reference_forecast_draws(fit, budgets, seed=0):
    budget = xr.DataArray(np.asarray(budgets, float), dims="budget")
    budget = budget.assign_coords(budget=budget.values)
    post, const = fit.idata.posterior, fit.idata.constant_data
    acc = palm_curve_log_lambda(
        budget, post["A_max"], post["log_lambda"], post["alpha"], post["beta"], const["b"]
    )
    widened = expit(reference_extrapolate(fit, logit(acc, PATH_CLIP), np.log(budget), seed))
    beyond = (budget > const["last_budget"]) | fit.curve_prior.seed_offsets
    acc = xr.where((acc > 0) & beyond, widened, acc)
    return acc.transpose("chain", "draw", *fit.curve_dims, "budget")


def reference_first_crossing(path, log_budgets, target):
    logit_target = logit(target, PATH_CLIP)
    reached = path >= logit_target
    i1 = reached.argmax("grid_point").clip(min=1)
    i0 = i1 - 1
    l0, l1 = path.isel(grid_point=i0), path.isel(grid_point=i1)
    b0, b1 = log_budgets.isel(grid_point=i0), log_budgets.isel(grid_point=i1)
    w = ((logit_target - l0) / (l1 - l0)).clip(0.0, 1.0).fillna(1.0)
    return xr.where(reached.any("grid_point"), np.exp(b0 + w * (b1 - b0)), np.inf)


def reference_labels_needed_draws(fit, target, max_budget=None, seed=0):
    post, const = fit.idata.posterior, fit.idata.constant_data
    target = xr.DataArray(target)
    shift = seed_shift(fit, seed)
    inside = target if shift is None else expit(logit(target, PATH_CLIP) - shift)
    closed = labels_for_accuracy_log_lambda(
        inside, post["A_max"], post["log_lambda"], post["alpha"], post["beta"], const["b"]
    ).clip(min=0.0)
    last = const["last_budget"]
    horizon = 100.0 * last if max_budget is None else xr.full_like(last, float(max_budget))
    if fit.curve_prior.is_zero:
        return np.ceil(xr.where(closed <= horizon, closed, np.inf).where(const["fitted"]))
    grid = xr.DataArray(np.linspace(0.0, 1.0, 257), dims="grid_point")
    log_last = np.log(last)
    log_budgets = log_last + grid * (np.log(np.maximum(horizon, last)) - log_last)
    acc = palm_curve_log_lambda(
        np.exp(log_budgets), post["A_max"], post["log_lambda"], post["alpha"], post["beta"],
        const["b"],
    )  # fmt: skip
    path = reference_extrapolate(fit, logit(acc, PATH_CLIP), log_budgets, seed)
    beyond = reference_first_crossing(path, log_budgets, target)
    out = np.ceil(xr.where(closed <= last, closed, beyond))
    return out.where(const["fitted"]).transpose("chain", "draw", *fit.curve_dims)


# ------------------------------------------------------------------ fits
@pytest.fixture(scope="module")
def real_fit(two_strategy_fit_dir):
    """The shared small real fit (2 strategies, 3 seeds), with the shipped learned prior."""
    return pb.PalmFit.from_netcdf(two_strategy_fit_dir / "fit.nc")


@pytest.fixture(scope="module")
def drawn_fit():
    """A hand-built posterior with spread draws (3 strategies), under the shipped prior."""
    from conftest import spread_hand_built_fit

    return spread_hand_built_fit(seed=1)


PRIORS = {
    "shipped": lambda fit: fit,
    "brownian": lambda fit: fit.with_prior(pb.CurvePrior.brownian(0.4)),
    "zero": lambda fit: fit.with_prior(pb.CurvePrior.brownian(0.0)),
}


@pytest.mark.parametrize("prior", sorted(PRIORS))
@pytest.mark.parametrize("which", ["real_fit", "drawn_fit"])
def test_forecast_draws_and_prob_better_are_the_old_answers(which, prior, request):
    fit = PRIORS[prior](request.getfixturevalue(which))
    budgets = [60.0, 200.0, 350.0, 900.0, 5000.0]
    for seed in (0, 3):
        new = fit.forecast_draws(budgets, seed=seed)
        old = reference_forecast_draws(fit, budgets, seed=seed)
        # the same arithmetic in another order of array layouts: numpy's SIMD exp/log may
        # round the last bit differently on strided and contiguous arrays
        np.testing.assert_allclose(new.to_numpy(), old.to_numpy(), rtol=0, atol=1e-12)
        assert new.dims == old.dims
    a, b = ({"strategy": s} for s in fit.idata.posterior["strategy"].to_numpy()[:2])
    p = fit.prob_better(a, b, 900.0, seed=3)
    old = reference_forecast_draws(fit, [900.0], seed=3)
    da, db = old.sel(a, drop=True), old.sel(b, drop=True)
    expected = ((da > db) + 0.5 * (da == db)).mean(("chain", "draw")).squeeze("budget")
    np.testing.assert_allclose(p.to_numpy(), expected.to_numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("prior", sorted(PRIORS))
@pytest.mark.parametrize("which", ["real_fit", "drawn_fit"])
def test_labels_needed_draws_are_the_old_answers(which, prior, request):
    fit = PRIORS[prior](request.getfixturevalue(which))
    for target, max_budget, seed in ((0.86, None, 0), (0.8, 3000.0, 2), (0.9, None, 1)):
        new = fit.labels_needed_draws(target, max_budget=max_budget, seed=seed)
        old = reference_labels_needed_draws(fit, target, max_budget=max_budget, seed=seed)
        np.testing.assert_array_equal(new.to_numpy(), old.to_numpy())


def test_answers_survive_a_save_and_load(real_fit, tmp_path):
    before = real_fit.labels_needed_draws(0.86), real_fit.forecast_draws([900.0])
    real_fit.to_netcdf(tmp_path / "fit.nc")
    loaded = pb.PalmFit.from_netcdf(tmp_path / "fit.nc")
    after = loaded.labels_needed_draws(0.86), loaded.forecast_draws([900.0])
    for x, y in zip(before, after, strict=True):
        np.testing.assert_array_equal(x.to_numpy(), y.to_numpy())


def test_a_new_prior_is_not_answered_from_the_old_cache(drawn_fit):
    first = drawn_fit.forecast_draws([5000.0])
    path_base(drawn_fit)  # built and kept
    other = drawn_fit.with_prior(pb.CurvePrior.brownian(0.0))
    assert path_base(other) is not path_base(drawn_fit)
    assert not np.array_equal(other.forecast_draws([5000.0]), first)


# ------------------------------------------------------------------ one first-crossing search
def test_first_crossing_interpolates_and_says_never():
    path = np.array([[0.0, 1.0, 3.0], [2.0, 3.0, 4.0], [0.0, 0.5, 0.4], [np.nan] * 3])
    at = np.log([100.0, 200.0, 400.0])
    found = first_crossing(path, at, np.array([2.0, 1.0, 1.0, 0.0]))
    np.testing.assert_allclose(found[:2], [(at[1] + at[2]) / 2, at[0]])
    assert np.isinf(found[2:]).all()


def test_schedule_labels_needed_and_advise_search_the_same_way(drawn_fit):
    """On the same draws and budgets, the three find the same first crossing."""
    fit = drawn_fit.select({"strategy": ["a", "c"]})
    target = 0.87
    need = fit.labels_needed_draws(target, seed=0)
    # labels needed's own grid beyond the last budget, handed to the schedule's search
    log_budgets = labels_grid(path_base(fit), None).log_budgets[0]
    budgets = np.exp(log_budgets)
    paths = fit.forecast_draws(budgets, seed=0).squeeze(["dataset", "embedding"])
    searched = crossing_budget(paths.to_numpy(), budgets, target)  # (chain, draw, strategy)
    beyond = need.squeeze(["dataset", "embedding"]).to_numpy() > budgets[0]
    assert beyond.mean() > 0.5
    # forecast draws go through expit and back: equal up to rounding, then whole labels
    np.testing.assert_allclose(np.ceil(searched * (1 - 1e-12))[beyond], need.squeeze(
        ["dataset", "embedding"]).to_numpy()[beyond], rtol=0, atol=1)  # fmt: skip
    # the schedule's table: its single strategies' median labels on a fine grid
    plan = schedule(
        fit,
        ["a", "c"],
        objective="labels_to_target",
        target=target,
        budget_range=(50.0, 4000.0),
        grid_points=300,
    )
    table = plan.table.set_index("plan")
    for name in ("a", "c"):
        median = float(fit.labels_needed(target)["median"].sel(strategy=name).squeeze())
        assert table.loc[name, "median"] == pytest.approx(median, rel=0.01)
    advice = pb.advise(fit, target, reference=None)
    np.testing.assert_array_equal(
        advice.table["labels_median"].to_numpy(), fit.labels_needed(target)["median"].to_numpy()
    )
