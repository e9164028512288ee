"""Labels needed for a target accuracy: posterior draws and their summary.

Up to a curve's last observed budget the closed-form PALM inverse; beyond it, the first budget
at which a posterior forecast path reaches the target (:func:`first_crossing`, the search that
schedules and advice use too). The arithmetic is :mod:`palm_bayes.queries.paths`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np
import xarray as xr

from palm_bayes.errors import PalmInputError
from palm_bayes.inference.posterior import PalmPosterior
from palm_bayes.queries.draws import check_prob
from palm_bayes.queries.forecast import population
from palm_bayes.queries.paths import first_crossing, labels_needed_paths, path_base
from palm_bayes.queries.targets import check_target

__all__ = ["first_crossing", "labels_needed", "labels_needed_draws", "sample_quantiles"]


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
    values = draws.to_numpy().reshape(-1, *draws.shape[2:])
    median, lower, upper = sample_quantiles(values, [0.5, q, 1 - q])
    curve = draws.isel(chain=0, draw=0, drop=True)
    out = xr.Dataset(
        {
            "median": curve.copy(data=median),
            "lower": curve.copy(data=lower),
            "upper": curve.copy(data=upper),
            "p_reachable": curve.copy(data=np.isfinite(values).mean(axis=0)),
        }
    )
    return out.where(fit.idata.constant_data["fitted"])


def sample_quantiles(values: np.ndarray, q: list[float]) -> np.ndarray:
    """``inverted_cdf`` quantiles over the first axis, skipping NaN like xarray: ``(q, ...)``.

    One vectorised :func:`numpy.quantile` where a column has no NaN (the values xarray's
    per-column ``nanquantile`` gives), ``nanquantile`` for the others.
    """
    out = np.quantile(values, q, axis=0, method="inverted_cdf")
    nan = np.isnan(values).any(axis=0)
    if nan.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: NaN
            out[:, nan] = np.nanquantile(values[:, nan], q, axis=0, method="inverted_cdf")
    return out


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
    post = fit.idata.posterior
    target = xr.DataArray(target) if not isinstance(target, xr.DataArray) else target
    # a target array may carry labels the fit does not have (e.g. curves without data)
    target = target.reindex({d: post[d] for d in target.dims if d in fit.curve_dims})
    base = path_base(fit)
    # a target per curve, or per draw and curve (e.g. one below each draw's A_max)
    template = base.template if {"chain", "draw"} & set(target.dims) else base.template[0, 0]
    order = [d for d in base.template.dims if d in template.dims]
    per_draw = target.broadcast_like(template).transpose(*order).to_numpy()
    per_draw = np.broadcast_to(per_draw.reshape(-1, base.n_curves), base.A_max.shape)
    values = labels_needed_paths(base, per_draw, max_budget, seed)
    out = xr.DataArray(
        values.reshape(base.template.shape),
        dims=base.template.dims,
        coords=base.template.coords,
    )
    return out.transpose("chain", "draw", *fit.curve_dims)
