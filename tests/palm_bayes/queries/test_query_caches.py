"""What the query core keeps per fit answers as if it were computed afresh.

The labels-needed search keeps, per fit and horizon, the median-path gain of the whole grid
and, per query seed, the upper bound of every draw's path per grid block; forecast and
labels-needed summaries are computed by one numpy pass instead of xarray and arviz. The
answers must be those of a fresh fit, of a fit too large to keep the bounds, and of xarray
and arviz.
"""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest
import xarray as xr

import palm_bayes as pb
from palm_bayes.queries import paths
from palm_bayes.queries.draws import summarise_draws
from palm_bayes.queries.labels_needed import sample_quantiles


@pytest.fixture(scope="module")
def spread_fit():
    """A hand-built posterior with spread draws (3 strategies), under the shipped prior."""
    from conftest import spread_hand_built_fit

    return spread_hand_built_fit(seed=2)


def fresh(fit):
    """The same fit with nothing kept (a new PalmFit of the same InferenceData)."""
    return pb.PalmFit(fit.idata)


def test_kept_bounds_follow_the_seed_and_the_horizon(spread_fit):
    asked = [(0.86, None, 0), (0.86, None, 1), (0.9, 3000.0, 0), (0.84, None, 0), (0.86, None, 2)]
    for target, max_budget, seed in asked:  # seeds 0, 1, 0, 0, 2: kept, new, kept, evicted
        kept = spread_fit.labels_needed_draws(target, max_budget=max_budget, seed=seed)
        new = fresh(spread_fit).labels_needed_draws(target, max_budget=max_budget, seed=seed)
        np.testing.assert_array_equal(kept.to_numpy(), new.to_numpy())
    grid = paths.labels_grid(paths.path_base(spread_fit), None)
    assert len(grid.upper) <= paths._KEPT_SEEDS and 2 in grid.upper


def test_a_fit_too_large_to_keep_bounds_gives_the_same_answers(spread_fit, monkeypatch):
    kept = spread_fit.labels_needed_draws(0.87, seed=4)
    monkeypatch.setattr(paths, "_CACHE_VALUES", 10)  # nothing kept: bounds per search rows
    monkeypatch.setattr(paths, "_BOUND_ROWS", 97)  # and in several pieces
    bare = fresh(spread_fit)
    unkept = bare.labels_needed_draws(0.87, seed=4)
    grid = paths.labels_grid(paths.path_base(bare), None)
    assert grid.end_logit is None and not grid.upper
    np.testing.assert_array_equal(kept.to_numpy(), unkept.to_numpy())


def test_a_new_prior_gets_new_bounds(spread_fit):
    spread_fit.labels_needed_draws(0.86)  # shipped prior's grid and bounds kept
    brownian = spread_fit.with_prior(pb.CurvePrior.brownian(0.4))
    np.testing.assert_array_equal(
        brownian.labels_needed_draws(0.86).to_numpy(),
        fresh(brownian).labels_needed_draws(0.86).to_numpy(),
    )
    assert paths.path_base(brownian) is not paths.path_base(spread_fit)


def test_the_gain_is_the_median_path_on_the_whole_grid(spread_fit):
    base = paths.path_base(spread_fit)
    grid = paths.labels_grid(base, None)
    logit_palm = paths.logit(base.palm(grid.budgets, np.arange(base.n_curves)), paths.PATH_CLIP)
    median = xr.DataArray(logit_palm).median("dim_0").to_numpy()
    np.testing.assert_array_equal(grid.gain, median - base.at_last[:, None])


def draws_with_gaps() -> xr.DataArray:
    """Draws ``(chain, draw, curve, budget)`` with ties, a NaN cell and a partly NaN one."""
    rng = np.random.default_rng(0)
    values = np.round(rng.normal(size=(2, 51, 4, 3)), 1)  # odd sample count, many ties
    values[:, :, 1, 0] = np.nan
    values[0, :7, 2, 2] = np.nan
    return xr.DataArray(
        values,
        dims=("chain", "draw", "curve", "budget"),
        coords={"curve": list("wxyz"), "budget": [1.0, 2.0, 3.0]},
    )


@pytest.mark.parametrize("hdi_prob", [0.5, 0.9])
@pytest.mark.parametrize("even", [False, True])
def test_summaries_are_xarrays_and_arviz(hdi_prob, even):
    draws = draws_with_gaps()
    draws = draws.isel(draw=slice(0, 50)) if even else draws
    got = summarise_draws(draws, hdi_prob)
    hdi = az.hdi(draws.to_dataset(name="x"), hdi_prob=hdi_prob, skipna=False)["x"]
    expected = xr.Dataset(
        {
            "median": draws.median(("chain", "draw")),
            "mean": draws.mean(("chain", "draw")),
            "lower": hdi.sel(hdi="lower", drop=True),
            "upper": hdi.sel(hdi="higher", drop=True),
        }
    )
    xr.testing.assert_identical(got, expected)


def test_quantiles_are_xarrays():
    draws = draws_with_gaps()
    draws = draws.where(draws < 1.5, np.inf)  # labels needed: inf where never reached
    values = draws.to_numpy().reshape(-1, *draws.shape[2:])
    got = sample_quantiles(values, [0.5, 0.05, 0.95])
    for q, row in zip([0.5, 0.05, 0.95], got, strict=True):
        expected = draws.quantile(q, ("chain", "draw"), method="inverted_cdf")
        np.testing.assert_array_equal(row, expected.to_numpy())


@pytest.mark.parametrize("budget", [900.0, [60.0, 900.0, 5000.0]])
def test_prob_better_on_arrays_is_the_xarray_answer(spread_fit, budget, monkeypatch):
    from palm_bayes.queries import forecast

    a, b = {"strategy": "a"}, {"strategy": "c"}
    fast = spread_fit.prob_better(a, b, budget, seed=2)
    monkeypatch.setattr(forecast, "_prob_better_arrays", lambda *args: None)
    xr.testing.assert_identical(fast, spread_fit.prob_better(a, b, budget, seed=2))
