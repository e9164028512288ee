"""How far the seed mean of a pilot sits from the curve of all seeds: the seed offset.

A seed of an active-learning run (its initial labelled set, its split, its training noise)
shifts the whole curve, not one budget at a time, while the PALM likelihood treats the seed
mean at each budget as an independent measurement. With ``n`` seeds the pilot's seed mean
therefore carries one shared offset ``u ~ N(0, tau^2 / n)`` (logit scale) that no number of
budgets averages out. ``tau`` is estimated from the pilot itself by the one-way random-effects
ANOVA of the logit accuracies (seeds x budgets, the seed-mean curve removed), pooled over the
curves of one dataset; the correlation of two curves' offsets on one dataset (seeds that share
labels share their split and initial set) is estimated from the same residuals. Forecasts and
labels needed add the offset at every budget when the curve prior asks for it
(``CurvePrior.seed_offsets``).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from palm_bayes.data.prepare import curve_dims
from palm_bayes.priors.curve_prior import logit

__all__ = ["seed_offset_anova", "seed_offsets", "offset_shocks"]


def seed_offset_anova(y: np.ndarray) -> tuple[float, np.ndarray]:
    """``tau^2`` (variance of one seed's offset) and the seeds' mean residuals.

    ``y`` is seeds x budgets (logit accuracies; NaN where a seed has no value). The
    seed-mean curve is removed budget by budget, each seed's offset ``d_s`` is its mean
    residual, and ``tau^2 = max(0, var(d) - s_w^2 * mean(1 / m_s))`` with ``s_w^2`` the
    residual variance around the offsets and ``m_s`` the seed's budgets: the one-way
    random-effects ANOVA estimate (exact for complete tables). 0 with fewer than 2 seeds or
    budgets.
    """
    y = np.asarray(y, dtype=float)
    y = y[:, np.sum(np.isfinite(y), axis=0) >= 2] if y.ndim == 2 and y.size else y
    counts = np.sum(np.isfinite(y), axis=1) if y.size else np.zeros(len(y))
    d = np.zeros(len(y))
    keep = counts >= 2
    n = int(keep.sum())
    if n < 2:
        return 0.0, d
    resid = y[keep] - np.nanmean(y[keep], axis=0)
    offsets = np.nanmean(resid, axis=1)
    m = counts[keep]
    dof = (m.sum() - n) * (n - 1) / n
    within = np.nansum((resid - offsets[:, None]) ** 2) / dof
    between = np.sum(offsets**2) / (n - 1)
    d[keep] = offsets
    return max(0.0, between - within * float(np.mean(1.0 / m))), d


def seed_offsets(curves: xr.Dataset) -> xr.Dataset:
    """Per curve, the sd of its seed mean's offset and the offsets' correlation on its dataset.

    ``offset_sd`` is in logit units, ``offset_rho`` the correlation of two curves' offsets on
    one dataset. Seeds may miss budgets (see :func:`seed_offset_anova`). ``tau^2`` is averaged
    over the curves of a dataset (one pilot's two degrees of freedom are too few) and divided
    by each curve's seeds per budget (median). Curves with one seed get 0 (nothing to
    estimate from).
    """
    dims = curve_dims(curves)
    coords = {d: curves[d].to_numpy() for d in dims}
    shape = tuple(len(coords[d]) for d in dims)
    order = (*dims, "seed", "step")
    accuracy = curves["accuracy"].broadcast_like(curves["budget"]).transpose(*order).to_numpy()
    budget = curves["budget"].broadcast_like(curves["accuracy"]).transpose(*order).to_numpy()
    seeds = curves["seed"].to_numpy()
    tau2, n_seeds = np.full(shape, np.nan), np.zeros(shape)
    resid: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
    for index in np.ndindex(*shape):  # the curves with data, in the order of iter_curves
        keep = np.isfinite(budget[index]) & np.isfinite(accuracy[index])
        if not keep.any():
            continue
        labels, table = _seed_table(seeds, budget[index], accuracy[index], keep)
        t2, d = seed_offset_anova(logit(table))
        # seeds per budget: the seed mean's offset averages this many seeds' offsets
        tau2[index] = t2
        n_seeds[index] = float(np.median(np.isfinite(table).sum(axis=0)))
        resid[index] = (labels, d)
    group = dims.index("dataset") if "dataset" in dims else None
    pooled, rho = np.zeros(shape), np.zeros(shape)
    keys = list(resid)
    groups = {k[group] if group is not None else 0 for k in keys}
    for g in groups:
        members = [k for k in keys if (k[group] if group is not None else 0) == g]
        mean_tau2 = float(np.nanmean([tau2[k] for k in members]))
        r = _pooled_correlation([resid[k] for k in members])
        for k in members:
            pooled[k], rho[k] = mean_tau2, r
    sd = np.sqrt(pooled / np.maximum(n_seeds, 1.0)) * (n_seeds > 1)
    return xr.Dataset({"offset_sd": (dims, sd), "offset_rho": (dims, rho)}, coords=coords)


def _seed_table(
    seeds: np.ndarray, budget: np.ndarray, accuracy: np.ndarray, keep: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Seeds x budgets table of one curve's accuracies (NaN: no value; repeats averaged).

    Rows: the seeds with a value, in label order; columns: the budgets with a value, sorted.
    """
    rows, cols = np.nonzero(keep)
    levels, col = np.unique(budget[keep], return_inverse=True)
    present = np.unique(rows)
    present = present[np.argsort(seeds[present], kind="stable")]
    row = np.searchsorted(seeds[present], seeds[rows], sorter=None)
    total = np.zeros((present.size, levels.size))
    count = np.zeros((present.size, levels.size))
    np.add.at(total, (row, col), accuracy[keep])
    np.add.at(count, (row, col), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        table = np.where(count > 0, total / count, np.nan)
    return seeds[present], table


def _pooled_correlation(residuals: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Correlation of seed offsets between curves, pooled over pairs (seeds matched by label).

    ``residuals`` holds ``(seed labels, offsets)`` per curve, labels sorted. Clipped to
    [0, 0.99]; 0 when no two curves share two seeds.
    """
    cross, own = 0.0, 0.0
    for i, (la, a) in enumerate(residuals):
        for lb, b in residuals[i + 1 :]:
            _, ia, ib = np.intersect1d(la, lb, assume_unique=True, return_indices=True)
            if ia.size < 2:
                continue
            x, y = a[ia], b[ib]
            cross += float(np.sum(x * y))
            own += 0.5 * float(np.sum(x**2) + np.sum(y**2))
    return float(np.clip(cross / own, 0.0, 0.99)) if own > 0 else 0.0


def offset_shocks(
    offsets: xr.Dataset, template: xr.DataArray, group_dim: str | None, seed: int
) -> xr.DataArray:
    """One offset per posterior draw and curve (logit): ``offset_sd * e``.

    ``e`` is standard Normal, correlated with ``offset_rho`` between the curves of one
    ``group_dim`` label; ``template`` has dims ``(chain, draw, *curve dims)``.
    """
    rng = np.random.default_rng([seed, 7])
    own = xr.DataArray(rng.standard_normal(template.shape), dims=template.dims)
    shared_dims = ["chain", "draw"] + ([group_dim] if group_dim in template.dims else [])
    shared = xr.DataArray(
        rng.standard_normal([template.sizes[d] for d in shared_dims]), dims=shared_dims
    )
    rho = offsets["offset_rho"]
    e = np.sqrt(rho) * shared + np.sqrt(1 - rho) * own
    return (offsets["offset_sd"] * e).transpose(*template.dims)
