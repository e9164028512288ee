"""Strategies side by side over the budget: crossovers, AUBC, who beats whom.

Posterior summaries of the forecast draws of a fit (:meth:`palm_bayes.PalmFit.forecast_draws`),
used by :func:`palm_bayes.decisions.advise.advise`'s report and the ``palm advise --crossover``
command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from palm_bayes.errors import PalmInputError
from palm_bayes.queries.decided import mark_undecided
from palm_bayes.queries.draws import as_budget as _as_budget
from palm_bayes.queries.draws import check_prob as _check_prob
from palm_bayes.queries.draws import summarise_draws

if TYPE_CHECKING:
    from palm_bayes.palm_fit import PalmFit

__all__ = ["check_strategy_dim", "crossover", "aubc", "decided_up_to", "win_matrix"]

_SAMPLES = ("chain", "draw")


def check_strategy_dim(fit: PalmFit, dim: str) -> None:
    """A one-line error unless ``dim`` is a curve dim with at least two labels."""
    if dim not in fit.curve_dims:
        raise PalmInputError(
            f"unknown dimension {dim!r}; the curves are identified by {list(fit.curve_dims)}"
        )
    if fit.idata.posterior.sizes[dim] < 2:
        raise PalmInputError(f"advice compares {dim}s: the fit holds only one")


def crossover(
    fit: PalmFit,
    a: str,
    b: str,
    *,
    max_budget: float | None = None,
    hdi_prob: float = 0.9,
    dim: str = "strategy",
    grid_points: int = 400,
    seed: int = 0,
) -> xr.Dataset:
    """Posterior of the budget at which ``b`` overtakes ``a``.

    Along a log grid from the smallest observed budget to ``max_budget`` (default 100x the
    largest observed budget), each posterior draw's crossover is the first budget where ``b``
    becomes more accurate than ``a`` after ``a`` led at the start.

    Returns
    -------
    xarray.Dataset
        ``median, lower, upper`` (budget, over the draws that cross), ``p_crossover`` (share of
        draws in which ``b`` overtakes ``a`` within the horizon) and ``p_b_leads_at_start``,
        over the other id dims.
    """
    check_strategy_dim(fit, dim)
    _check_prob(hdi_prob, "hdi_prob")
    for name in (a, b):
        fit.check_selection({dim: name}, "crossover")
    const = fit.idata.constant_data
    start = float(const["first_budget"].min())
    stop = float(max_budget) if max_budget is not None else 100 * float(const["last_budget"].max())
    if not stop > start:
        raise PalmInputError(f"max_budget must exceed the first budget ({start:g})")
    grid = np.geomspace(start, stop, grid_points)
    paths = fit.forecast_draws(grid, seed=seed)
    gap = paths.sel({dim: b}, drop=True) - paths.sel({dim: a}, drop=True)
    ahead = gap > 0
    a_leads = ~ahead.isel(budget=0)
    first = ahead.argmax("budget")
    crossed = ahead.any("budget") & a_leads
    i1 = first.clip(min=1)
    g0, g1 = gap.isel(budget=i1 - 1), gap.isel(budget=i1)
    log_b = xr.DataArray(np.log(grid), dims="budget")
    l0, l1 = log_b.isel(budget=i1 - 1), log_b.isel(budget=i1)
    w = (-g0 / (g1 - g0)).clip(0, 1).fillna(1.0)  # linear interpolation of the gap's zero
    budget = np.exp(l0 + w * (l1 - l0)).drop_vars("budget", errors="ignore").where(crossed)
    q = (1 - hdi_prob) / 2
    return xr.Dataset(
        {
            "median": budget.median(_SAMPLES),
            "lower": budget.quantile(q, _SAMPLES).drop_vars("quantile"),
            "upper": budget.quantile(1 - q, _SAMPLES).drop_vars("quantile"),
            "p_crossover": crossed.mean(_SAMPLES),
            "p_b_leads_at_start": (~a_leads).mean(_SAMPLES),
        },
        attrs={"a": a, "b": b, "max_budget": stop},
    ).drop_vars("budget", errors="ignore")


def aubc(
    fit: PalmFit,
    budget_range: tuple[float, float] | None = None,
    *,
    hdi_prob: float = 0.9,
    grid_points: int = 200,
    seed: int = 0,
) -> xr.Dataset:
    """Area under the budget curve, normalised by the budget range (a mean accuracy).

    ``budget_range`` defaults to the smallest first and largest last observed budget, so
    strategies are compared on the same range (extrapolated where a curve is shorter).

    Returns
    -------
    xarray.Dataset
        ``median, mean, lower, upper`` per curve.
    """
    const = fit.idata.constant_data
    lo, hi = budget_range or (
        float(const["first_budget"].min()),
        float(const["last_budget"].max()),
    )
    if not hi > lo >= 0:
        raise PalmInputError(f"budget_range must satisfy 0 <= low < high, got {(lo, hi)}")
    grid = np.linspace(lo, hi, grid_points)
    paths = fit.forecast_draws(grid, seed=seed)
    area = paths.integrate("budget") / (hi - lo)
    out = summarise_draws(area, hdi_prob)
    out.attrs["budget_range"] = (lo, hi)
    return out.where(const["fitted"])


def win_matrix(fit: PalmFit, budgets: Any, *, dim: str = "strategy", seed: int = 0) -> xr.DataArray:
    """Pairwise P(row beats column) at ``budgets``, observed or extrapolated.

    The coordinate ``undecided`` marks probabilities in [0.2, 0.8]
    (:mod:`palm_bayes.queries.decided`).

    The posterior counterpart of the BADGE paper's penalty matrix (built there from t-tests at
    observed budgets only). Dims ``(dim, "opponent", *other id dims, "budget")``; the diagonal is
    NaN.
    """
    check_strategy_dim(fit, dim)
    paths = fit.forecast_draws(_as_budget(budgets), seed=seed)
    rows = paths
    cols = paths.rename({dim: "opponent"})
    p = (rows > cols).mean(_SAMPLES) + 0.5 * (rows == cols).mean(_SAMPLES)
    same = xr.DataArray(
        np.equal.outer(paths[dim].to_numpy(), paths[dim].to_numpy()),
        dims=(dim, "opponent"),
        coords={dim: paths[dim].to_numpy(), "opponent": paths[dim].to_numpy()},
    )
    others = [d for d in p.dims if d not in (dim, "opponent", "budget")]
    p = p.where(~same).transpose(dim, "opponent", *others, "budget").rename("prob_better")
    return mark_undecided(p)


#: ``decided_up_to`` searches budgets from the pilot's last one to this many times it.
DECIDED_HORIZON = 10.0


def decided_up_to(
    fit: PalmFit,
    *,
    dim: str = "strategy",
    horizon: float = DECIDED_HORIZON,
    points: int = 25,
    seed: int = 0,
) -> xr.DataArray:
    """For each pair, the largest budget up to which P(row beats column) is decided.

    P is evaluated on ``points`` budgets spaced evenly in log from the fit's last observed
    budget (the smallest over its curves) to ``horizon`` times it; a comparison is undecided
    where P lies in [0.2, 0.8] (:data:`palm_bayes.queries.decided.UNDECIDED_BAND`). NaN: already
    undecided at the pilot's last budget; the horizon (``attrs["horizon"]``): decided all the way.

    Returns
    -------
    xarray.DataArray
        Dims ``(dim, "opponent", *other id dims)``; the diagonal is NaN.

    Examples
    --------
    >>> fit.decided_up_to().sel(strategy="margin", opponent="random")  # doctest: +SKIP
    """
    from palm_bayes.queries.decided import decided_span

    last = float(fit.idata.constant_data["last_budget"].min())
    grid = last * np.geomspace(1.0, horizon, points)
    span = decided_span(win_matrix(fit, grid, dim=dim, seed=seed).drop_vars("undecided"))
    same = np.equal.outer(span[dim].to_numpy(), span["opponent"].to_numpy())
    return span.where(~xr.DataArray(same, dims=(dim, "opponent")))
