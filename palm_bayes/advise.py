"""Decisions from a PALM posterior: which strategy to continue with, when to switch, summaries.

The reference PALM advisor (ALDA) answers from least-squares point estimates: is the target
feasible (``A_max >= tau``), the labels needed ``B(tau)``, the deployment window
``W = B(tau + dtau) - B(tau - dtau)``, the cost-competitive set within a relative tolerance
``eta`` of the cheapest, and the member of that set with the smallest ``W``. Here every one of
those is a posterior quantity, computed draw by draw from the same forecast paths that
:meth:`palm_bayes.PalmFit.labels_needed` uses (extrapolation discrepancy included).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from palm_bayes.errors import PalmInputError
from palm_bayes.fit import PalmFit, _as_budget, _check_prob

__all__ = ["Advice", "advise", "crossover", "aubc", "win_matrix"]

_SAMPLES = ("chain", "draw")


@dataclass
class Advice:
    """The advisor's answer.

    Attributes
    ----------
    table : xarray.Dataset
        Per strategy (and any other id dims): ``p_reachable``, ``labels_median``,
        ``labels_lower``, ``labels_upper``, ``window_median``, ``p_cheapest``,
        ``p_within_eta``, ``expected_saved`` (labels saved against the reference, over the
        draws where both reach the target).
    recommendation : pandas.DataFrame
        One row per combination of the other id dims: ``verdict`` (``recommend``,
        ``not enough evidence yet`` or ``target not reachable``), ``strategy``,
        ``probability`` and a plain-language ``reason``.
    """

    table: xr.Dataset
    recommendation: pd.DataFrame

    def __str__(self) -> str:
        frame = self.table.to_dataframe().reset_index().dropna(subset=["p_reachable"])
        return (
            frame.round(3).to_string(index=False)
            + "\n\n"
            + "\n".join(self.recommendation["reason"].tolist())
        )


def _strategy_dim(fit: PalmFit, dim: str) -> None:
    if dim not in fit.curve_dims:
        raise PalmInputError(
            f"unknown dimension {dim!r}; the curves are identified by {list(fit.curve_dims)}"
        )
    if fit.idata.posterior.sizes[dim] < 2:
        raise PalmInputError(f"advice compares {dim}s: the fit holds only one")


def advise(
    fit: PalmFit,
    target: float,
    *,
    target_tolerance: float = 0.01,
    eta: float = 0.1,
    max_budget: float | None = None,
    reference: str | None = "random",
    threshold: float = 0.7,
    dim: str = "strategy",
    seed: int = 0,
) -> Advice:
    """Which strategy reaches ``target`` accuracy with the fewest labels, with probabilities.

    Parameters
    ----------
    fit : PalmFit
        A fit holding several strategies (along ``dim``).
    target : float
        Target accuracy in (0, 1).
    target_tolerance : float
        ``dtau`` of the deployment window ``W = B(target + dtau) - B(target - dtau)``.
    eta : float
        Relative cost tolerance: a strategy is cost-competitive in a draw when it needs at
        most ``(1 + eta)`` times the labels of that draw's cheapest.
    max_budget : float, optional
        Search horizon for labels needed (default 100x each curve's last observed budget).
    reference : str, optional
        Strategy to count labels saved against (skipped when the fit has none of that name).
    threshold : float
        Smallest P(cheapest) that earns a recommendation; below it the verdict is
        "not enough evidence yet".

    Returns
    -------
    Advice

    Examples
    --------
    >>> advice = pb.advise(fit, target=0.85)  # doctest: +SKIP
    >>> print(advice)  # doctest: +SKIP
    """
    _strategy_dim(fit, dim)
    _check_prob(target, "target")
    _check_prob(threshold, "threshold")
    if not 0 < target_tolerance < min(target, 1 - target):
        raise PalmInputError(
            f"target_tolerance must be positive and keep target +- tolerance inside (0, 1), "
            f"got {target_tolerance!r}"
        )
    if eta < 0:
        raise PalmInputError(f"eta must be >= 0, got {eta!r}")
    fitted = fit.idata.constant_data["fitted"]
    draws = {
        name: fit.labels_needed_draws(tau, max_budget=max_budget, seed=seed)
        for name, tau in (
            ("need", target),
            ("low", target - target_tolerance),
            ("high", target + target_tolerance),
        )
    }
    need = draws["need"].where(fitted.broadcast_like(draws["need"]), np.inf)
    reachable = np.isfinite(need)
    window = (draws["high"] - draws["low"]).where(np.isfinite(draws["high"]))
    cheapest = need.min(dim)
    some = np.isfinite(cheapest)
    quantile = {
        name: draws["need"].quantile(q, _SAMPLES, method="inverted_cdf").drop_vars("quantile")
        for name, q in (("labels_median", 0.5), ("labels_lower", 0.05), ("labels_upper", 0.95))
    }
    table = xr.Dataset(
        {
            "p_reachable": reachable.mean(_SAMPLES),
            **quantile,
            "window_median": window.fillna(np.inf)
            .quantile(0.5, _SAMPLES, method="inverted_cdf")
            .drop_vars("quantile"),
            "p_cheapest": ((need == cheapest) & some).mean(_SAMPLES),
            "p_within_eta": ((need <= (1 + eta) * cheapest) & some).mean(_SAMPLES),
        }
    )
    labels = fit.idata.posterior[dim].to_numpy().tolist()
    if reference is not None and reference in labels:
        ref = need.sel({dim: reference})
        both = reachable & np.isfinite(ref)
        table["expected_saved"] = (ref - need).where(both).mean(_SAMPLES)
    table = table.where(fitted)
    table.attrs.update(
        {"target": target, "target_tolerance": target_tolerance, "eta": eta, "threshold": threshold}
    )
    return Advice(table, _recommend(table, dim, target, threshold, eta))


def _recommend(
    table: xr.Dataset, dim: str, target: float, threshold: float, eta: float
) -> pd.DataFrame:
    others = [d for d in table.dims if d != dim]
    stacked = table.stack(group=others) if others else table.expand_dims(group=[0])
    rows = []
    for g in range(stacked.sizes["group"]):
        part = stacked.isel(group=g)
        where = {d: part[d].item() for d in others}
        # name the group by the dims that tell groups apart (not a lone embedding=none)
        label = ", ".join(f"{d}={v}" for d, v in where.items() if table.sizes[d] > 1)
        prefix = f"[{label}] " if label else ""
        p_cheapest = part["p_cheapest"].fillna(-1)
        best = part[dim].to_numpy()[int(np.argmax(p_cheapest.to_numpy()))]
        p_best = float(part["p_cheapest"].sel({dim: best}))
        competitive = [
            str(s)
            for s, p in zip(part[dim].to_numpy(), part["p_within_eta"].to_numpy(), strict=True)
            if np.isfinite(p) and p >= threshold
        ]
        if float(part["p_reachable"].max()) < 0.5:
            verdict, reason = (
                "target not reachable",
                f"{prefix}No strategy reaches {target:.3g} with probability >= 0.5 within the "
                "search horizon; lower the target or collect more rounds.",
            )
        elif p_best >= threshold:
            need = part.sel({dim: best})
            verdict, reason = (
                "recommend",
                f"{prefix}Continue with {best}: P(cheapest to reach {target:.3g}) = {p_best:.2f}; "
                f"median {float(need['labels_median']):.0f} labels (90% interval "
                f"{float(need['labels_lower']):.0f}-{float(need['labels_upper']):.0f}).",
            )
        else:
            verdict, reason = (
                "not enough evidence yet",
                f"{prefix}Not enough evidence yet: the likeliest cheapest, {best}, has "
                f"P = {p_best:.2f} < {threshold:.2f}. Cost-competitive within {eta:.0%}: "
                f"{', '.join(competitive) or 'none with enough probability'}. "
                "Label another round and ask again.",
            )
        rows.append(
            where | {"verdict": verdict, dim: best, "probability": p_best, "reason": reason}
        )
    return pd.DataFrame(rows)


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
    _strategy_dim(fit, dim)
    _check_prob(hdi_prob, "hdi_prob")
    for name in (a, b):
        fit._check_selection({dim: name}, "crossover")
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
    from palm_bayes.fit import _summarise

    out = _summarise(area, hdi_prob)
    out.attrs["budget_range"] = (lo, hi)
    return out.where(const["fitted"])


def win_matrix(fit: PalmFit, budgets: Any, *, dim: str = "strategy", seed: int = 0) -> xr.DataArray:
    """Pairwise P(row beats column) at ``budgets``, observed or extrapolated.

    The posterior counterpart of the BADGE paper's penalty matrix (built there from t-tests at
    observed budgets only). Dims ``(dim, "opponent", *other id dims, "budget")``; the diagonal is
    NaN.
    """
    _strategy_dim(fit, dim)
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
    return p.where(~same).transpose(dim, "opponent", *others, "budget").rename("prob_better")
