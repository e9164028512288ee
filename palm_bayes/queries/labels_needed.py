"""Labels needed for a target accuracy: posterior draws and their summary.

Up to a curve's last observed budget the closed-form PALM inverse; beyond it, the first budget
at which a posterior forecast path (:func:`palm_bayes.queries.forecast.extrapolate`) reaches the
target.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import xarray as xr
from scipy.special import expit

from palm_bayes.errors import PalmInputError
from palm_bayes.inference.posterior import PalmPosterior
from palm_bayes.model.curve import labels_for_accuracy_log_lambda, palm_curve_log_lambda
from palm_bayes.priors.curve_prior import PATH_CLIP, logit
from palm_bayes.queries.draws import check_prob
from palm_bayes.queries.forecast import bare_curves, extrapolate, population, seed_shift
from palm_bayes.queries.targets import check_target

__all__ = ["first_crossing", "labels_needed", "labels_needed_draws"]


def labels_needed(
    fit: PalmPosterior,
    target: float | xr.DataArray,
    *,
    hdi_prob: float = 0.9,
    max_budget: float | None = None,
    new: str | Iterable[str] | None = None,
    seed: int = 0,
) -> xr.Dataset:
    """Posterior of the number of labels needed to reach ``target`` accuracy.

    ``new`` (hierarchical fits): for a new member of those dims (see :func:`population`).

    Up to a curve's last observed budget this is the closed-form PALM inverse; beyond it,
    the first budget at which a posterior draw of the forecast (with its extrapolation
    discrepancy) reaches the target, searched up to ``max_budget`` (default 100 x the last
    observed budget). Draws that never reach it count as ``inf``, so the interval is the
    equal-tailed one (its upper end is ``inf`` when more than ``(1 - hdi_prob) / 2`` of the
    draws do not reach the target).

    Returns
    -------
    xarray.Dataset
        ``median, lower, upper`` (labels, rounded up to whole labels) and ``p_reachable``
        (probability of reaching the target within ``max_budget``), dims ``curve_dims``.
    """
    check_prob(hdi_prob, "hdi_prob")
    if not isinstance(target, xr.DataArray) and np.ndim(target) == 0:
        target = check_target(fit, target)  # one typed number: refuse a likely slip
    target = xr.DataArray(target) if not isinstance(target, xr.DataArray) else target
    tv = target.to_numpy()
    bad = ~np.isfinite(tv) | (tv <= 0) | (tv >= 1)
    if np.any(bad):
        shown = ", ".join(f"{v:g}" for v in np.unique(tv[bad])[:5])
        raise PalmInputError(
            f"target accuracy must lie in (0, 1); {int(bad.sum())} of {tv.size} targets do "
            f"not ({shown})"
        )
    if new is not None:
        return labels_needed(
            population(fit, new, seed=seed),
            target,
            hdi_prob=hdi_prob,
            max_budget=max_budget,
            seed=seed,
        )
    draws = labels_needed_draws(fit, target, max_budget=max_budget, seed=seed)
    q = (1 - hdi_prob) / 2
    finite = np.isfinite(draws)
    fitted = fit.idata.constant_data["fitted"]
    out = xr.Dataset(
        {
            "median": draws.quantile(0.5, ("chain", "draw"), method="inverted_cdf").drop_vars(
                "quantile"
            ),
            "lower": draws.quantile(q, ("chain", "draw"), method="inverted_cdf").drop_vars(
                "quantile"
            ),
            "upper": draws.quantile(1 - q, ("chain", "draw"), method="inverted_cdf").drop_vars(
                "quantile"
            ),
            "p_reachable": finite.mean(("chain", "draw")).where(fitted),
        }
    )
    return out.where(fitted)


def labels_needed_draws(
    fit: PalmPosterior,
    target: float | xr.DataArray,
    *,
    max_budget: float | None = None,
    seed: int = 0,
) -> xr.DataArray:
    """Posterior draws of the labels needed for ``target`` (``inf``: not within max_budget).

    Labels are whole numbers: each draw is rounded up to the next integer.
    """
    post, const = fit.idata.posterior, fit.idata.constant_data
    target = xr.DataArray(target) if not isinstance(target, xr.DataArray) else target
    # a target array may carry labels the fit does not have (e.g. curves without data)
    target = target.reindex({d: post[d] for d in target.dims if d in fit.curve_dims})
    shift = seed_shift(fit, seed)
    # a seed offset shifts the whole curve: inside the data, shift the target the other way
    inside_target = target if shift is None else expit(logit(target, PATH_CLIP) - shift)
    closed = labels_for_accuracy_log_lambda(
        inside_target, post["A_max"], post["log_lambda"], post["alpha"], post["beta"], const["b"]
    ).clip(min=0.0)
    last = const["last_budget"]
    horizon = 100.0 * last if max_budget is None else xr.full_like(last, float(max_budget))
    if fit.curve_prior.is_zero:
        return np.ceil(xr.where(closed <= horizon, closed, np.inf).where(const["fitted"]))
    # beyond the last budget: search each draw's forecast path on a log grid, a few
    # fitted curves at a time (draws x grid x curves can be large)
    fitted = np.flatnonzero(const["fitted"].stack(curve=fit.curve_dims))
    grid = xr.DataArray(np.linspace(0.0, 1.0, 257), dims="grid_point")
    log_last = np.log(last)
    log_budgets = log_last + grid * (np.log(np.maximum(horizon, last)) - log_last)
    stacked = {
        name: value.stack(curve=fit.curve_dims)
        for name, value in {
            "A_max": post["A_max"],
            "log_lambda": post["log_lambda"],
            "alpha": post["alpha"],
            "beta": post["beta"],
            "b": const["b"],
            "log_budgets": log_budgets,
            "target": target.broadcast_like(const["b"]),
        }.items()
    }
    chunks = []
    for k in range(0, fitted.size, 16):
        pick = {"curve": fitted[k : k + 16]}
        p = {name: bare_curves(value.isel(pick)) for name, value in stacked.items()}
        acc = palm_curve_log_lambda(
            np.exp(p["log_budgets"]), p["A_max"], p["log_lambda"], p["alpha"], p["beta"], p["b"]
        )
        path = extrapolate(fit, logit(acc, PATH_CLIP), p["log_budgets"], seed, pick)
        chunks.append(first_crossing(path, p["log_budgets"], p["target"]))
    index = const["fitted"].stack(curve=fit.curve_dims)["curve"].isel(curve=fitted)
    beyond = xr.concat(chunks, "curve").assign_coords(curve=index).unstack("curve")
    beyond = beyond.reindex({d: post[d] for d in fit.curve_dims})
    out = np.ceil(xr.where(closed <= last, closed, beyond))
    return out.where(const["fitted"]).transpose("chain", "draw", *fit.curve_dims)


def first_crossing(path: xr.DataArray, log_budgets: xr.DataArray, target: xr.DataArray):
    """First budget on the grid where a draw's forecast path (logit) reaches the target."""
    logit_target = logit(target, PATH_CLIP)
    reached = path >= logit_target
    i1 = reached.argmax("grid_point").clip(min=1)
    i0 = i1 - 1
    l0, l1 = path.isel(grid_point=i0), path.isel(grid_point=i1)
    b0, b1 = log_budgets.isel(grid_point=i0), log_budgets.isel(grid_point=i1)
    w = ((logit_target - l0) / (l1 - l0)).clip(0.0, 1.0).fillna(1.0)
    found = np.exp(b0 + w * (b1 - b0))
    return xr.where(reached.any("grid_point"), found, np.inf)
