"""Queries of a PALM posterior: forecasts, comparisons, populations, summaries, diagnostics.

Functions over a :class:`palm_bayes.inference.posterior.PalmPosterior` (any
:class:`palm_bayes.PalmFit`),
returning xarray objects with named dims; the methods of :class:`palm_bayes.PalmFit` of the same
names call them. Every forecast draw is computed by the numpy core of
:mod:`palm_bayes.queries.paths` (on arrays cached once per fit), and every predictive draw goes
through :func:`palm_bayes.model.likelihood.predictive_draws`.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypeVar

import arviz as az
import numpy as np
import xarray as xr

from palm_bayes.errors import PalmInputError
from palm_bayes.inference.pooled import new_member_posterior
from palm_bayes.inference.posterior import PalmPosterior
from palm_bayes.model.curve import palm_curve_log_lambda
from palm_bayes.model.likelihood import predictive_draws
from palm_bayes.priors.curve_prior import (
    DATA_FEATURES,
    SLOPE_RATIO,
    logit,
    prefix_features,
)
from palm_bayes.priors.seed_offsets import offset_shocks
from palm_bayes.queries.decided import mark_undecided
from palm_bayes.queries.draws import as_budget, check_prob, summarise_draws
from palm_bayes.queries.paths import expected_paths, path_base

__all__ = [
    "FORECAST_CHUNK_VALUES",
    "SUMMARY_VARS",
    "bare_curves",
    "curve_features",
    "diagnostics",
    "forecast",
    "forecast_draws",
    "forecast_draws_of",
    "group_dim",
    "maybe_population",
    "population",
    "prob_better",
    "seed_shift",
    "summary",
    "worst_per_curve",
]

F = TypeVar("F", bound=PalmPosterior)

SUMMARY_VARS = ("A_max", "delta", "alpha", "beta", "noise")
#: Forecast summaries are computed a slice of budgets at a time, with at most about this many
#: posterior values (chains x draws x curve cells x budgets) in memory per slice.
FORECAST_CHUNK_VALUES = 4_000_000


def curve_features(fit: PalmPosterior) -> xr.Dataset:
    """The slope and level features of the curve prior, per curve.

    From the posterior median curve at the last observed budget (priors learned with
    ``palm_slope``/``palm_level``) or from the raw data (older priors); NaN for a population
    of new curves, which then sit at the features' mean.
    """
    post, const = fit.idata.posterior, fit.idata.constant_data
    names = fit.curve_prior.feature_names
    if "observed_data" not in fit.idata.groups():
        nan = xr.full_like(post["A_max"].isel(chain=0, draw=0, drop=True), np.nan)
        return xr.Dataset(dict.fromkeys(names, nan))
    if names == DATA_FEATURES:
        return prefix_features(fit.curves)
    at = xr.DataArray([1.0, SLOPE_RATIO], dims="at")
    acc = palm_curve_log_lambda(
        const["last_budget"] * at, post["A_max"], post["log_lambda"], post["alpha"],
        post["beta"], const["b"],
    )  # fmt: skip
    z = logit(acc).median(("chain", "draw"))
    level, ahead = z.isel(at=0, drop=True), z.isel(at=1, drop=True)
    features = xr.Dataset({names[0]: (ahead - level) / np.log(SLOPE_RATIO), names[1]: level})
    if "seed" in fit.curves.dims:  # seeds per budget (the prior's scale may use it)
        seeds = fit.curves["accuracy"].notnull().sum("seed")
        features["n_seeds"] = seeds.where(seeds > 0).median("step")
    return features


def group_dim(fit: PalmPosterior) -> str | None:
    """The dim whose curves share the prior's shocks (``dataset``), if the fit has it."""
    return "dataset" if "dataset" in fit.curve_dims else None


def seed_shift(fit: PalmPosterior, seed: int) -> xr.DataArray | None:
    """The seed offset of each curve per draw (logit), when the curve prior adds it.

    Dims ``(chain, draw, *curve dims)``; ``None`` when the prior has no ``seed_offsets`` or
    the fit holds no observed curves. Depends on ``seed`` alone, like the prior's shocks.
    """
    offsets = fit.seed_offsets() if fit.curve_prior.seed_offsets else None
    if offsets is None:
        return None
    return offset_shocks(offsets, fit.idata.posterior["A_max"], group_dim(fit), seed)


def population(fit: F, new: str | Iterable[str], *, seed: int = 0) -> F:
    """The fit of a new, unseen member of the ``new`` dims (hierarchical fits only).

    ``fit.population("dataset")`` holds, for every other id label (e.g. each strategy),
    the posterior of the curve on a new dataset drawn from the fitted dataset population;
    its queries integrate over that population. Its dims are the curve dims minus ``new``.

    Examples
    --------
    >>> fit.population("dataset").forecast([2000])  # doctest: +SKIP
    """
    if not fit.hierarchy:
        raise PalmInputError(
            "population queries need a hierarchical fit: pb.fit(curves, hierarchy=(...))"
        )
    new = (new,) if isinstance(new, str) else tuple(new)
    posterior, constants = new_member_posterior(
        fit.idata, fit.hierarchy, fit.curve_dims, new, seed=seed
    )
    kept = [d for d in fit.curve_dims if d not in new]
    posterior.attrs.update(
        fit.idata.posterior.attrs
        | {"curve_dims": json.dumps(kept), "population_of_new": json.dumps(list(new))}
    )
    posterior.attrs["free_vars"] = json.dumps([])
    sample_stats = xr.Dataset({"diverging": fit.idata.sample_stats["diverging"]})
    return type(fit)(
        az.InferenceData(posterior=posterior, sample_stats=sample_stats, constant_data=constants)
    )


def maybe_population(fit: F, new: str | Iterable[str] | None, seed: int) -> F:
    """``fit`` itself, or with ``new`` its :func:`population` of new members."""
    return fit if new is None else population(fit, new, seed=seed)


# ------------------------------------------------------------------ forecasts
def forecast_draws(
    fit: PalmPosterior,
    budgets: Any,
    *,
    kind: Literal["expected", "predictive"] = "expected",
    seed: int = 0,
) -> xr.DataArray:
    """Posterior draws of the accuracy at ``budgets``.

    ``kind="expected"`` is the curve itself (the accuracy averaged over seeds and test
    sets); ``"predictive"`` adds the noise of one new run. Beyond each curve's last observed
    budget the PALM form is widened by the model discrepancy of the ``extrapolation`` prior.

    Returns
    -------
    xarray.DataArray
        Dims ``(chain, draw, *curve_dims, budget)``.
    """
    return forecast_draws_of(fit, budgets, kind=kind, seed=seed)


def forecast_draws_of(
    fit: PalmPosterior,
    budgets: Any,
    *,
    kind: Literal["expected", "predictive"] = "expected",
    seed: int = 0,
    box: Mapping[str, np.ndarray] | None = None,
) -> xr.DataArray:
    """:func:`forecast_draws` of a box of curves (``{dim: positions}``; other dims: all).

    The draws of a curve do not depend on which other curves are asked for: the shocks are
    drawn for all curves of the fit once per seed (:mod:`palm_bayes.queries.paths`).
    """
    if kind not in ("expected", "predictive"):
        raise PalmInputError(f"kind must be 'expected' or 'predictive', got {kind!r}")
    budget = as_budget(budgets)
    base = path_base(fit)
    # predictive noise is drawn for the whole grid at once: compute all, then cut the box
    cut = box if kind == "predictive" else None
    box = None if kind == "predictive" else box
    curves = base.positions(None if box is None else dict(box))
    with np.errstate(divide="ignore"):
        values = expected_paths(base, budget.to_numpy(), seed, curves)
    template = base.template if box is None else base.template.isel(dict(box))
    shape = (*template.shape, budget.size)
    acc = xr.DataArray(
        values.reshape(shape),
        dims=(*template.dims, "budget"),
        coords={**template.coords, "budget": budget["budget"]},
    )
    if kind == "predictive":
        post, const = fit.idata.posterior, fit.idata.constant_data
        acc = acc.transpose(*post["A_max"].dims, "budget")  # the noise's layout of old
        rng = np.random.default_rng(seed + 1)
        acc = predictive_draws(acc, post["noise"], const["n_test"], fit.noise_floor, rng)
        if cut is not None:
            acc = acc.isel(dict(cut))
    return acc.transpose("chain", "draw", *fit.curve_dims, "budget").rename("accuracy")


def forecast(
    fit: PalmPosterior,
    budgets: Any,
    *,
    hdi_prob: float = 0.9,
    kind: Literal["expected", "predictive"] = "expected",
    new: str | Iterable[str] | None = None,
    seed: int = 0,
) -> xr.Dataset:
    """Forecast the accuracy at ``budgets`` with a highest-density interval.

    Works from partial curves too: budgets beyond the observed ones are extrapolations
    (with the extrapolation discrepancy, see :func:`forecast_draws`). With ``new``
    (hierarchical fits), the forecast is for a new member of those dims, e.g.
    ``new="dataset"``: the curve of each strategy on an unseen dataset (see
    :func:`population`).

    Returns
    -------
    xarray.Dataset
        Variables ``median, mean, lower, upper`` with dims ``(*curve_dims, budget)``.

    Examples
    --------
    >>> fc = fit.forecast([500, 2000], hdi_prob=0.9)  # doctest: +SKIP
    >>> fc.sel(strategy="random").median  # doctest: +SKIP
    """
    check_prob(hdi_prob, "hdi_prob")
    source = maybe_population(fit, new, seed)
    budget = as_budget(budgets)
    # draws x curve grid x budgets can outgrow memory (hundreds of curves, many budgets):
    # summarise a slice of budgets at a time; every slice sees the same extrapolation draws
    per_budget = source.idata.posterior["A_max"].size
    step = max(1, FORECAST_CHUNK_VALUES // max(per_budget, 1))
    parts = [
        summarise_draws(
            forecast_draws(source, budget[k : k + step], kind=kind, seed=seed), hdi_prob
        )
        for k in range(0, budget.size, step)
    ]
    return parts[0] if len(parts) == 1 else xr.concat(parts, "budget")


def prob_better(
    fit: PalmPosterior,
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    budget: Any,
    *,
    kind: Literal["expected", "predictive"] = "expected",
    new: str | Iterable[str] | None = None,
    seed: int = 0,
) -> xr.DataArray:
    """Posterior probability that curve(s) ``a`` are more accurate than ``b`` at ``budget``.

    ``a`` and ``b`` select curves by label, e.g. ``{"strategy": "typiclust"}``; the
    probability is computed for every combination of the remaining dims. With ``new``
    (hierarchical fits, e.g. ``new="dataset"``) it is the probability on a new member of
    the population: how likely ``a`` beats ``b`` on an unseen dataset like these. The boolean
    coordinate ``undecided`` marks probabilities in [0.2, 0.8]: answers there are not
    decisions (:mod:`palm_bayes.queries.decided`).

    Examples
    --------
    >>> fit.prob_better({"strategy": "a"}, {"strategy": "b"}, budget=2000)  # doctest: +SKIP
    """
    if new is not None:
        return prob_better(population(fit, new, seed=seed), a, b, budget, kind=kind, seed=seed)
    a = fit.check_selection(a, "a")
    b = fit.check_selection(b, "b")
    fast = kind == "expected" and set(a) == set(b)
    p = _prob_better_arrays(fit, a, b, budget, seed) if fast else None
    if p is None:
        # only the curves of a and b: per dim, the labels either names (all where one does not)
        post = fit.idata.posterior
        box = {}
        for dim in set(a) & set(b):
            labels = post[dim].to_numpy().tolist()
            box[dim] = np.array(sorted({labels.index(a[dim]), labels.index(b[dim])}))
        draws = forecast_draws_of(fit, budget, kind=kind, seed=seed, box=box)
        da, db = draws.sel(a, drop=True), draws.sel(b, drop=True)
        wins = (da > db).astype(float) + 0.5 * (da == db)
        valid = da.notnull() & db.notnull()
        p = wins.where(valid).mean(("chain", "draw"))
    if np.ndim(budget) == 0:
        p = p.squeeze("budget", drop=True)
    return mark_undecided(p.rename("prob_better"))


def _prob_better_arrays(
    fit: PalmPosterior, a: dict, b: dict, budget: Any, seed: int
) -> xr.DataArray | None:
    """P(``a`` beats ``b``) of expected draws on the numpy core, ``(*other dims, budget)``.

    The xarray arithmetic of :func:`prob_better` without its alignment (win counts are
    multiples of 0.5, so the mean is exact in any order); ``None`` where the draws carry
    coordinates other than their dims (the xarray path then keeps them).
    """
    base = path_base(fit)
    if set(base.template.coords) != set(base.template.dims):
        return None
    budgets = as_budget(budget)
    post = fit.idata.posterior

    def draws(selection: dict) -> np.ndarray:
        box = {d: np.array([post[d].to_numpy().tolist().index(v)]) for d, v in selection.items()}
        with np.errstate(divide="ignore"):
            return expected_paths(base, budgets.to_numpy(), seed, base.positions(box))

    da, db = draws(a), draws(b)
    wins = (da > db).astype(float) + 0.5 * (da == db)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no valid draw: NaN
        p = np.nanmean(np.where(np.isnan(da) | np.isnan(db), np.nan, wins), axis=0)
    cell = base.template.isel(chain=0, draw=0, drop=True).isel(dict.fromkeys(a, 0), drop=True)
    return xr.DataArray(
        p.reshape(*cell.shape, budgets.size),
        dims=(*cell.dims, "budget"),
        coords={**cell.coords, "budget": budgets["budget"]},
    )


# ------------------------------------------------------------------ diagnostics
def summary(fit: PalmPosterior, *, hdi_prob: float = 0.9) -> xr.Dataset:
    """PALM parameters with HDIs and sampler diagnostics, per curve.

    Returns
    -------
    xarray.Dataset
        ``mean, sd, lower, upper, r_hat, ess_bulk`` with dims ``(parameter, *curve_dims)``
        and ``divergences`` with dims ``curve_dims``.
    """
    check_prob(hdi_prob, "hdi_prob")
    post = fit.idata.posterior[list(SUMMARY_VARS)]
    hdi = az.hdi(post, hdi_prob=hdi_prob)
    out = xr.Dataset(
        {
            "mean": post.mean(("chain", "draw")).to_array("parameter"),
            "sd": post.std(("chain", "draw")).to_array("parameter"),
            "lower": hdi.sel(hdi="lower", drop=True).to_array("parameter"),
            "upper": hdi.sel(hdi="higher", drop=True).to_array("parameter"),
            "r_hat": az.rhat(post).to_array("parameter"),
            "ess_bulk": az.ess(post, method="bulk").to_array("parameter"),
        }
    )
    out["divergences"] = fit.idata.sample_stats["diverging"].sum(("chain", "draw"))
    return out.where(fit.idata.constant_data["fitted"])


def diagnostics(fit: PalmPosterior) -> xr.Dataset:
    """Per-curve sampler health.

    Worst r_hat and bulk ESS of the sampled variables, divergent transitions, seconds; for
    curves drawn by importance sampling, the ESS of their weights and their Pareto ``k``; for
    two-stage pooled fits, the effective stage-1 draws behind each curve (``two_stage_ess``).
    """
    post = fit.idata.posterior[list(fit.free_vars)]
    fitted = fit.idata.constant_data["fitted"]
    dims = list(fit.curve_dims)

    out = xr.Dataset(
        {
            "r_hat_max": worst_per_curve(az.rhat(post), fitted, dims, "max"),
            "ess_bulk_min": worst_per_curve(az.ess(post, method="bulk"), fitted, dims, "min"),
            "divergences": fit.idata.sample_stats["diverging"].sum(("chain", "draw")),
            "seconds": fit.idata.constant_data["sampling_seconds"],
        }
    )
    const = fit.idata.constant_data
    if "nuts_fallback" in const:  # importance-sampled curves: the ESS of their weights, and k
        weighted = ~const["nuts_fallback"]
        out["ess_bulk_min"] = out["ess_bulk_min"].where(~weighted, const["importance_ess"])
        out["pareto_k"] = const["pareto_k"].where(weighted)
    if "two_stage_ess" in const:  # two-stage pooled fits: the draws behind each curve
        out["two_stage_ess"] = const["two_stage_ess"]
    return out.where(fitted)


def worst_per_curve(
    values: xr.Dataset, fitted: xr.DataArray, dims: list[str], how: str
) -> xr.DataArray:
    """Per curve, the worst value over its own variables and (pooled fits) the shared ones."""
    reduce = np.nanmax if how == "max" else np.nanmin
    parts = []
    for value in values.data_vars.values():
        other = [d for d in value.dims if d not in dims]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows of unfitted curves
            reduced = value.reduce(reduce, dim=other) if other else value
        parts.append(reduced.broadcast_like(fitted))
    stacked = xr.concat(parts, "variable")
    return stacked.max("variable") if how == "max" else stacked.min("variable")


def bare_curves(x: xr.DataArray | xr.Dataset):
    """Drop the stacked ``curve`` index: pieces of one selection align by position."""
    return x.drop_vars([c for c in x.coords if "curve" in x[c].dims])
