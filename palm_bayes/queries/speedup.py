"""The speed-up factor: the fraction of labels a strategy needs to match a reference's accuracy.

Kath, Gouvêa & Sonntag (2026, "The Speed-up Factor: A Quantitative Multi-Iteration Active
Learning Performance Metric", TMLR; arXiv:2602.13359) report an AL strategy by the fraction of
samples it needs to match random sampling's performance, summarised over many AL iterations
(more stable across rounds than the accuracy at one budget). Here it is a posterior quantity:
every posterior draw of the curves gives one value, and the summary is its median and an
equal-tailed credible interval.

Definitions (per posterior draw; ``A_ref`` is the reference's expected accuracy curve and
``n_s(a)`` the whole labels strategy ``s`` needs to reach accuracy ``a``, as in
:func:`palm_bayes.queries.labels_needed.labels_needed_draws`):

* at a reference budget ``B``: ``r_s(B) = n_s(A_ref(B)) / B``, the fraction of the reference's
  ``B`` labels that ``s`` needs for the same accuracy;
* over a budget range (the multi-iteration factor): the geometric mean of ``r_s(B)`` over
  ``grid_points`` equally spaced budgets ``B_1..B_m`` of the range,
  ``exp(mean_i log r_s(B_i))`` (equal spacing in labels weighs every AL round alike);
* at an accuracy level ``a``: ``n_s(a) / n_ref(a)``.

A factor below 1 means fewer labels than the reference (0.5: half the labels, a 2x speed-up);
``inf`` means ``s`` does not reach the accuracy within ``max_budget``. At an accuracy level the
reference does not reach, the factor is 0 where ``s`` does and undefined (NaN, left out of the
summary) where neither does. The reference's own factor is 1 by definition.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from palm_bayes.errors import PalmInputError
from palm_bayes.queries.draws import check_prob
from palm_bayes.queries.labels_needed import labels_needed_draws
from palm_bayes.queries.rankings import check_strategy_dim

if TYPE_CHECKING:
    from palm_bayes.palm_fit import PalmFit

__all__ = ["labels_ratio", "speedup", "speedup_draws", "summarise_ratio"]

_SAMPLES = ("chain", "draw")


def speedup_draws(
    fit: PalmFit,
    reference: str = "random",
    *,
    accuracy: float | Sequence[float] | None = None,
    budgets: float | Sequence[float] | None = None,
    budget_range: tuple[float, float] | None = None,
    grid_points: int = 20,
    max_budget: float | None = None,
    dim: str = "strategy",
    seed: int = 0,
) -> xr.DataArray:
    """Posterior draws of the speed-up factor (see the module docstring for the definition).

    Give at most one of ``accuracy`` (factor per accuracy level, dim ``accuracy``),
    ``budgets`` (per reference budget, dim ``budget``) and ``budget_range`` (one
    multi-iteration factor; default: the observed range of the fit).

    Returns
    -------
    xarray.DataArray
        Dims ``(chain, draw, *curve dims)`` plus ``accuracy`` or ``budget`` when given.
    """
    check_strategy_dim(fit, dim)
    fit.check_selection({dim: reference}, "speedup reference")
    if sum(x is not None for x in (accuracy, budgets, budget_range)) > 1:
        raise PalmInputError("give one of accuracy=, budgets= or budget_range=, not several")
    if accuracy is not None:
        levels = np.atleast_1d(np.asarray(accuracy, dtype=float))
        if levels.ndim != 1 or not np.all((levels > 0) & (levels < 1)):
            raise PalmInputError(f"accuracy levels must lie in (0, 1), got {levels.tolist()}")
        need = xr.concat(
            [labels_needed_draws(fit, float(a), max_budget=max_budget, seed=seed) for a in levels],
            xr.DataArray(levels, dims="accuracy", coords={"accuracy": levels}),
        )
        return labels_ratio(need, dim, reference)
    const = fit.idata.constant_data
    if budgets is not None:
        grid = np.atleast_1d(np.asarray(budgets, dtype=float))
    else:
        lo, hi = budget_range or (
            float(const["first_budget"].min()),
            float(const["last_budget"].max()),
        )
        if not hi > lo > 0:
            raise PalmInputError(f"budget_range must satisfy 0 < low < high, got {(lo, hi)}")
        if int(grid_points) < 2:
            raise PalmInputError(f"grid_points must be at least 2, got {grid_points}")
        grid = np.linspace(lo, hi, int(grid_points))
    if grid.ndim != 1 or not np.all(np.isfinite(grid) & (grid > 0)):
        raise PalmInputError(f"budgets must be positive numbers, got {grid.tolist()}")
    reached = fit.forecast_draws(grid, seed=seed).sel({dim: reference}, drop=True)
    ratios = []
    for i, b in enumerate(grid):
        target = reached.isel(budget=i, drop=True)
        need = labels_needed_draws(fit, target, max_budget=max_budget, seed=seed)
        ratios.append(need / b)
    ratio = xr.concat(ratios, xr.DataArray(grid, dims="budget", coords={"budget": grid}))
    if budgets is None:
        with np.errstate(divide="ignore"):
            ratio = np.exp(np.log(ratio).mean("budget"))
    return _reference_is_one(ratio, dim, reference)


def labels_ratio(need: xr.DataArray, dim: str, reference: str) -> xr.DataArray:
    """Draws of ``need / need[reference]``: the factor at one accuracy (reference: 1).

    ``need`` holds draws of the labels needed for one accuracy per strategy (``inf``: not
    reached); the ratio is ``inf`` where only the reference reaches it, 0 where only the
    strategy does, NaN where neither does.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = need / need.sel({dim: reference}, drop=True)
    return _reference_is_one(ratio, dim, reference)


def summarise_ratio(ratio: xr.DataArray, hdi_prob: float = 0.9) -> dict[str, xr.DataArray]:
    """``median, lower, upper`` (equal-tailed) of factor draws, NaN draws left out."""
    q = (1 - hdi_prob) / 2

    def quantile(p):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN: undefined everywhere
            out = ratio.quantile(p, _SAMPLES, method="inverted_cdf", skipna=True)
        return out.drop_vars("quantile")

    return {"median": quantile(0.5), "lower": quantile(q), "upper": quantile(1 - q)}


def _reference_is_one(ratio: xr.DataArray, dim: str, reference: str) -> xr.DataArray:
    is_ref = ratio[dim] == reference
    last = [d for d in ("budget", "accuracy") if d in ratio.dims]
    order = [*_SAMPLES, *[d for d in ratio.dims if d not in (*_SAMPLES, *last)], *last]
    return xr.where(is_ref & ratio.notnull(), 1.0, ratio).transpose(*order).rename("speedup")


def speedup(
    fit: PalmFit,
    reference: str = "random",
    *,
    accuracy: float | Sequence[float] | None = None,
    budgets: float | Sequence[float] | None = None,
    budget_range: tuple[float, float] | None = None,
    grid_points: int = 20,
    hdi_prob: float = 0.9,
    max_budget: float | None = None,
    dim: str = "strategy",
    seed: int = 0,
) -> xr.Dataset:
    """Posterior of the speed-up factor of every strategy against ``reference``.

    The factor is the fraction of the reference's labels a strategy needs for the same
    accuracy (Kath et al. 2026): below 1 is faster. By default one multi-iteration factor over
    the observed budget range (the geometric mean over ``grid_points`` equally spaced
    budgets); ``budgets=`` gives it per reference budget, ``accuracy=`` per accuracy level.
    See :mod:`palm_bayes.queries.speedup` for the exact definitions.

    Parameters
    ----------
    fit : PalmFit
    reference : str
        The ``dim`` label to match (random sampling).
    accuracy, budgets, budget_range, grid_points
        Where the factor is taken (at most one of the first three).
    hdi_prob : float
        Mass of the equal-tailed interval (``lower``, ``upper``).
    max_budget : float, optional
        Search horizon of the labels needed (default 100 x the last observed budget).
    dim : str
        The curve dim that holds the strategies.
    seed : int
        Seed of the extrapolation draws.

    Returns
    -------
    xarray.Dataset
        ``median, lower, upper`` (over the draws where the factor is defined), ``p_faster``
        (P(factor < 1)), ``p_matches`` (P(the strategy reaches the reference's accuracy within
        the horizon)) and ``p_defined``, over the curve dims (and ``accuracy``/``budget``).

    Examples
    --------
    >>> fit.speedup("random").sel(strategy="typiclust")["median"]  # doctest: +SKIP
    >>> fit.speedup("random", accuracy=[0.8, 0.9])  # doctest: +SKIP
    """
    check_prob(hdi_prob, "hdi_prob")
    draws = speedup_draws(
        fit,
        reference,
        accuracy=accuracy,
        budgets=budgets,
        budget_range=budget_range,
        grid_points=grid_points,
        max_budget=max_budget,
        dim=dim,
        seed=seed,
    )
    defined = draws.notnull()
    with np.errstate(invalid="ignore"):
        out = xr.Dataset(
            {
                **summarise_ratio(draws, hdi_prob),
                "p_faster": (draws < 1).sum(_SAMPLES) / defined.sum(_SAMPLES),
                "p_matches": np.isfinite(draws).mean(_SAMPLES),
                "p_defined": defined.mean(_SAMPLES),
            }
        )
    out.attrs.update(reference=reference, hdi_prob=hdi_prob)
    return out.where(fit.idata.constant_data["fitted"])
