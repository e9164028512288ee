"""Decisions from a PALM posterior: which strategy to continue with, when to switch, summaries.

The reference PALM advisor (ALDA) answers from least-squares point estimates: is the target
feasible (``A_max >= tau``), the labels needed ``B(tau)``, the deployment window
``W = B(tau + dtau) - B(tau - dtau)``, the cost-competitive set within a relative tolerance
(the reference's ``eta``; ``cost_tolerance`` here, as ``eta`` also names the PALM offset) of
the cheapest, and the member of that set with the smallest ``W``. Here every one of
those is a posterior quantity, computed draw by draw from the same forecast paths that
:meth:`palm_bayes.PalmFit.labels_needed` uses (extrapolation discrepancy included).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from palm_bayes.errors import PalmInputError
from palm_bayes.queries.decided import is_undecided
from palm_bayes.queries.draws import check_prob as _check_prob
from palm_bayes.queries.speedup import labels_ratio, summarise_ratio
from palm_bayes.queries.targets import check_target

if TYPE_CHECKING:
    from palm_bayes.palm_fit import PalmFit

__all__ = [
    "Advice",
    "advise",
    "alda_least_squares",
    "alda_pick",
    "resolve_cost_tolerance",
]

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


#: Decision rules of :func:`advise`, with their default ``(target_tolerance, cost_tolerance)``.
RULES = {"cheapest": (0.01, 0.10), "alda": (0.05, 0.05)}


def resolve_cost_tolerance(cost_tolerance: float | None, eta: float | None) -> float | None:
    """``cost_tolerance``, or the deprecated ``eta`` (with a DeprecationWarning) when given."""
    if eta is None:
        return cost_tolerance
    warnings.warn(
        "eta= is deprecated (eta also names the PALM offset); use cost_tolerance=",
        DeprecationWarning,
        stacklevel=3,
    )
    return eta


#: ALDA keeps the upper end of the deployment window this far below each draw's A_max.
WINDOW_CEILING_MARGIN = 0.005


def advise(
    fit: PalmFit,
    target: float,
    *,
    rule: str = "cheapest",
    target_tolerance: float | None = None,
    cost_tolerance: float | None = None,
    max_budget: float | None = None,
    reference: str | None = "random",
    threshold: float = 0.7,
    dim: str = "strategy",
    seed: int = 0,
    eta: float | None = None,
) -> Advice:
    """Which strategy to continue with to reach ``target`` accuracy, with probabilities.

    Two decision rules, each evaluated draw by draw on the posterior:

    * ``"cheapest"`` (default): the strategy that reaches the target with the fewest labels;
      the verdict names it when ``P(cheapest) >= threshold``.
    * ``"alda"``: the reference advisor's (ALDA) rule. Among the strategies that reach the
      target (feasible), those within ``cost_tolerance`` of the cheapest's labels
      (cost-competitive), pick
      the one with the smallest deployment window ``W`` (ties: fewer labels); labels are
      rounded up to whole rounds and the window's upper target is kept 0.5 points below
      A_max. When no strategy is feasible in a draw, the pick is the one with the highest
      A_max (the reference's fallback, reported as such). ``p_pick`` is the probability that
      a strategy is ALDA's pick; ``p_risky`` that it is feasible with a wider window than the
      pick.

    Parameters
    ----------
    fit : PalmFit
        A fit of one or several strategies (along ``dim``).
    target : float
        Target accuracy in (0, 1), or in percent (a value above 1, read as percent like the
        curves themselves).
    rule : {"cheapest", "alda"}
        Decision rule (see above).
    target_tolerance : float, optional
        ``dtau`` of the deployment window ``W = B(target + dtau) - B(target - dtau)`` (default
        0.01 for ``cheapest``, the reference's 0.05 = 5 points for ``alda``; in percent points
        when the target is given in percent).
    cost_tolerance : float, optional
        Relative cost tolerance (the reference's ``eta``): a strategy is cost-competitive in a
        draw when it needs at most ``(1 + cost_tolerance)`` times the labels of that draw's
        cheapest (default 0.10 for ``cheapest``, the reference's 0.05 for ``alda``).
    max_budget : float, optional
        Search horizon for labels needed (default 100x each curve's last observed budget).
    reference : str, optional
        Strategy to count labels saved against (skipped when the fit has none of that name).
    threshold : float
        Smallest P(cheapest) that earns a recommendation; below it the verdict is
        "not enough evidence yet".
    eta : float, optional
        Deprecated name of ``cost_tolerance``.

    Returns
    -------
    Advice

    Examples
    --------
    >>> advice = pb.advise(fit, target=0.85)  # doctest: +SKIP
    >>> print(advice)  # doctest: +SKIP
    """
    target, target_tolerance, cost_tolerance = _checked_settings(
        fit, rule, dim, target, target_tolerance, cost_tolerance, eta, threshold
    )
    fitted = fit.idata.constant_data["fitted"]
    draws = {
        name: fit.labels_needed_draws(tau, max_budget=max_budget, seed=seed)
        for name, tau in (
            ("need", target),
            ("low", target - target_tolerance),
            ("high", target + target_tolerance),
        )
    }
    table = _cheapest_table(fit, draws, dim, cost_tolerance, reference)
    attrs = {
        "rule": rule,
        "target": target,
        "target_tolerance": target_tolerance,
        "cost_tolerance": cost_tolerance,
        "eta": cost_tolerance,  # the name before cost_tolerance (kept for readers of attrs)
        "threshold": threshold,
    }
    if rule == "alda":
        extra = ["expected_saved", "speedup_median", "speedup_lower", "speedup_upper"]
        table = table[["p_reachable"] + [c for c in extra if c in table]]
        alda = _alda(
            fit, draws["need"], target, target_tolerance, cost_tolerance, max_budget, dim, seed
        )
        table = xr.merge([table, alda]).where(fitted)
        table.attrs.update(attrs)
        return Advice(table, mark_leans(_recommend_alda(table, dim, target, threshold)))
    table = table.where(fitted)
    table.attrs.update(attrs)
    return Advice(table, mark_leans(_recommend(table, dim, target, threshold, cost_tolerance)))


def _checked_settings(
    fit: PalmFit,
    rule: str,
    dim: str,
    target: float,
    target_tolerance: float | None,
    cost_tolerance: float | None,
    eta: float | None,
    threshold: float,
) -> tuple[float, float, float]:
    """The advisor's settings checked, with the rule's defaults: target and both tolerances."""
    if rule not in RULES:
        raise PalmInputError(f"unknown rule {rule!r}; use one of {sorted(RULES)}")
    if dim not in fit.curve_dims:
        raise PalmInputError(
            f"unknown dimension {dim!r}; the curves are identified by {list(fit.curve_dims)}"
        )
    cost_tolerance = resolve_cost_tolerance(cost_tolerance, eta)
    default_tolerance, default_cost = RULES[rule]
    typed = target
    target = check_target(fit, target, percent=True)  # percent, like percent curves
    if target != typed and target_tolerance is not None:
        target_tolerance = target_tolerance / 100
    target_tolerance = default_tolerance if target_tolerance is None else target_tolerance
    cost_tolerance = default_cost if cost_tolerance is None else cost_tolerance
    _check_prob(target, "target")
    _check_prob(threshold, "threshold")
    if not 0 < target_tolerance < min(target, 1 - target):
        raise PalmInputError(
            f"target_tolerance must be positive and keep target +- tolerance inside (0, 1), "
            f"got {target_tolerance!r}"
        )
    if cost_tolerance < 0:
        raise PalmInputError(f"cost_tolerance must be >= 0, got {cost_tolerance!r}")
    return target, target_tolerance, cost_tolerance


def _cheapest_table(
    fit: PalmFit,
    draws: dict[str, xr.DataArray],
    dim: str,
    cost_tolerance: float,
    reference: str | None,
) -> xr.Dataset:
    """Per strategy: P(reachable), labels needed, window, P(cheapest), and vs ``reference``."""
    fitted = fit.idata.constant_data["fitted"]
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
            "p_within_eta": ((need <= (1 + cost_tolerance) * cheapest) & some).mean(_SAMPLES),
        }
    )
    labels = fit.idata.posterior[dim].to_numpy().tolist()
    if reference is not None and reference in labels:
        ref = need.sel({dim: reference})
        both = reachable & np.isfinite(ref)
        table["expected_saved"] = (ref - need).where(both).mean(_SAMPLES)
        # the speed-up factor at the target (Kath et al. 2026): need / the reference's need
        factor = summarise_ratio(labels_ratio(need, dim, reference))
        table = table.assign({f"speedup_{k}": v for k, v in factor.items()})
    return table


def _alda(
    fit: PalmFit,
    need: xr.DataArray,
    target: float,
    tolerance: float,
    cost_tolerance: float,
    max_budget: float | None,
    dim: str,
    seed: int,
) -> xr.Dataset:
    """ALDA's pick, draw by draw: feasibility, cost-competitive set, smallest window."""
    const = fit.idata.constant_data
    a_max = fit.idata.posterior["A_max"]
    rounds = const["b"]
    # whole rounds, as the reference counts labels
    need = np.ceil(need / rounds - 1e-9) * rounds
    low = fit.labels_needed_draws(target - tolerance, max_budget=max_budget, seed=seed)
    high_target = np.minimum(target + tolerance, a_max - WINDOW_CEILING_MARGIN)
    high = fit.labels_needed_draws(high_target, max_budget=max_budget, seed=seed)
    low, high = (np.ceil(x / rounds - 1e-9) * rounds for x in (low, high))
    window = (high - low).clip(min=0).where(high_target >= target - tolerance)
    fitted = const["fitted"].broadcast_like(need)
    feasible = np.isfinite(need) & fitted
    candidate = feasible & np.isfinite(window)
    others = [d for d in need.dims if d not in ("chain", "draw", dim)]
    order = ("chain", "draw", *others, dim)
    cand, cost, win = (x.transpose(*order).to_numpy() for x in (candidate, need, window))
    top = a_max.where(fitted).broadcast_like(need).transpose(*order).to_numpy()
    alive = fitted.transpose(*order).to_numpy()
    competitive, picked, any_candidate, risky = alda_pick(
        cand, cost, win, top, alive, cost_tolerance
    )
    coords = {d: need[d] for d in (*others, dim)}

    def share(x: np.ndarray) -> xr.DataArray:
        return xr.DataArray(x.mean((0, 1)), dims=(*others, dim), coords=coords)

    labels = xr.DataArray(cost, dims=order, coords=coords)
    return xr.Dataset(
        {
            "p_feasible": share(feasible.transpose(*order).to_numpy()),
            "p_competitive": share(competitive),
            "p_pick": share(picked & any_candidate),
            "p_fallback_pick": share(picked & ~any_candidate),
            "p_risky": share(risky),
            **{
                name: labels.quantile(q, ("chain", "draw"), method="inverted_cdf").drop_vars(
                    "quantile"
                )
                for name, q in (
                    ("labels_median", 0.5),
                    ("labels_lower", 0.05),
                    ("labels_upper", 0.95),
                )
            },  # fmt: skip
            "window_median": window.fillna(np.inf)
            .quantile(0.5, ("chain", "draw"), method="inverted_cdf")
            .drop_vars("quantile"),
        }
    )


def alda_pick(
    candidate: np.ndarray,
    cost: np.ndarray,
    window: np.ndarray,
    a_max: np.ndarray,
    fitted: np.ndarray,
    cost_tolerance: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ALDA's selection over the last axis (the strategies), for every leading index.

    ``candidate``: feasible with a defined window; ``cost``: labels to the target; ``window``:
    W; ``a_max`` and ``fitted`` for the infeasible fallback. Returns the cost-competitive
    set, the pick (one True per leading index), whether any strategy was a candidate (False:
    the pick is the fallback) and the risky flags (candidates with a wider window than the
    pick).
    """
    b_min = np.where(candidate, cost, np.inf).min(-1, keepdims=True)
    competitive = candidate & (cost <= (1 + cost_tolerance) * b_min * (1 + 1e-9))
    # smallest window, then fewest labels
    finite_cost = np.where(np.isfinite(cost), cost, 0.0)
    scale = 1.0 + finite_cost.max(initial=0.0)
    key = np.where(competitive, np.nan_to_num(window, posinf=1e300) * scale + finite_cost, np.inf)
    any_candidate = candidate.any(-1, keepdims=True)
    fallback_key = np.where(fitted, np.nan_to_num(a_max, nan=-np.inf), -np.inf)
    pick = np.where(
        any_candidate, np.argmin(key, -1)[..., None], np.argmax(fallback_key, -1)[..., None]
    )
    picked = np.arange(candidate.shape[-1]) == pick
    picked_window = np.take_along_axis(np.where(np.isfinite(window), window, np.inf), pick, -1)
    risky = candidate & ~picked & (window > picked_window) & any_candidate
    return competitive, picked, any_candidate, risky


def alda_least_squares(
    lsq: xr.Dataset,
    target: float,
    tolerance: float = 0.05,
    cost_tolerance: float = 0.05,
    dim: str = "strategy",
    *,
    eta: float | None = None,
) -> pd.DataFrame:
    """The reference advisor's answer from least-squares PALM fits (a point estimate).

    ``lsq`` is :func:`palm_bayes.fit_least_squares` output. Returns one row per fitted curve,
    with ALDA's columns: ``feasible`` (fitted A_max reaches the target), ``b_abs`` and
    ``deployment_window`` (whole rounds), ``window_over_b_abs``, ``cost_competitive``,
    ``risky``, and ``selected`` (the pick of its group of the other id dims) and ``fallback``
    (True when the group's pick is the highest A_max because no strategy is feasible).
    ``eta`` is the deprecated name of ``cost_tolerance``.
    """
    from palm_bayes.model.curve import labels_for_accuracy

    cost_tolerance = resolve_cost_tolerance(cost_tolerance, eta)

    ok = lsq["success"].fillna(False).astype(bool)
    p = {k: lsq[k] for k in ("A_max", "delta", "alpha", "beta", "b")}

    def labels(tau):
        raw = labels_for_accuracy(tau, **p).where(ok)
        return np.ceil(raw / p["b"] - 1e-9).clip(min=0) * p["b"]

    need = labels(target).where(p["A_max"] >= target, np.inf)
    high_target = np.minimum(target + tolerance, p["A_max"] - WINDOW_CEILING_MARGIN)
    window = (labels(high_target) - labels(target - tolerance)).clip(min=0)
    window = window.where(high_target >= target - tolerance)
    others = [d for d in need.dims if d != dim]
    order = (*others, dim)
    feasible = (np.isfinite(need) & ok).transpose(*order)
    cand = (feasible & np.isfinite(window)).transpose(*order).to_numpy()
    cost, win, top = (x.transpose(*order).to_numpy() for x in (need, window, p["A_max"]))
    alive = ok.transpose(*order).to_numpy()
    competitive, picked, any_candidate, risky = alda_pick(
        cand, cost, win, top, alive, cost_tolerance
    )
    coords = {d: need[d] for d in order}

    def grid(values: np.ndarray) -> xr.DataArray:
        return xr.DataArray(values, dims=order, coords=coords)

    table = xr.Dataset(
        {
            "feasible": feasible,
            "b_abs": grid(np.where(cand, cost, np.nan)),
            "deployment_window": grid(np.where(cand, win, np.nan)),
            "cost_competitive": grid(competitive),
            "risky": grid(risky),
            "selected": grid(picked & alive.any(-1, keepdims=True)),
            "fallback": grid(np.broadcast_to(~any_candidate, picked.shape)),
        }
    )
    table["window_over_b_abs"] = table["deployment_window"] / table["b_abs"].clip(min=1e-8)
    frame = table.to_dataframe().reset_index()
    return frame[ok.transpose(*order).to_numpy().ravel()].reset_index(drop=True)


def _groups(table: xr.Dataset, dim: str):
    """``(labels, "[label] " prefix, table part)`` per combination of the other id dims."""
    others = [d for d in table.dims if d != dim]
    stacked = table.stack(group=others) if others else table.expand_dims(group=[0])
    for g in range(stacked.sizes["group"]):
        part = stacked.isel(group=g)
        where = {d: part[d].item() for d in others}
        # name the group by the dims that tell groups apart (not a lone embedding=none)
        label = ", ".join(f"{d}={v}" for d, v in where.items() if table.sizes[d] > 1)
        yield where, f"[{label}] " if label else "", part


def _recommend_alda(table: xr.Dataset, dim: str, target: float, threshold: float) -> pd.DataFrame:
    rows = []
    for where, prefix, part in _groups(table, dim):
        names = part[dim].to_numpy()
        pick = part["p_pick"].fillna(-1).to_numpy()
        fallback = part["p_fallback_pick"].fillna(-1).to_numpy()
        p_fallback = float(np.nansum(part["p_fallback_pick"].to_numpy()))
        if p_fallback >= 0.5:
            best = names[int(np.argmax(fallback))]
            p_best = float(part["p_fallback_pick"].sel({dim: best}))
            verdict = "fallback: target not reachable"
            reason = (
                f"{prefix}No strategy reaches {target:.3g} in {p_fallback:.0%} of the draws; "
                f"ALDA's fallback, the highest A_max, is {best} (P = {p_best:.2f}). Lower the "
                "target or collect more rounds."
            )
        else:
            best = names[int(np.argmax(pick))]
            p_best = float(part["p_pick"].sel({dim: best}))
            need = part.sel({dim: best})
            if p_best >= threshold:
                verdict = "recommend"
                reason = (
                    f"{prefix}ALDA picks {best} (P = {p_best:.2f}): cost-competitive with the "
                    f"smallest deployment window (median {float(need['window_median']):.0f} "
                    f"labels); median {float(need['labels_median']):.0f} labels to reach "
                    f"{target:.3g}."
                )
            else:
                verdict = "not enough evidence yet"
                reason = (
                    f"{prefix}Not enough evidence yet: ALDA's likeliest pick, {best}, has "
                    f"P = {p_best:.2f} < {threshold:.2f}. Label another round and ask again."
                )
        rows.append(
            where | {"verdict": verdict, dim: best, "probability": p_best, "reason": reason}
        )
    return pd.DataFrame(rows)


def mark_leans(recommendation: pd.DataFrame) -> pd.DataFrame:
    """Add ``undecided`` (probability in [0.2, 0.8]) and say so in the reason of a recommendation.

    A recommendation with P = 0.75 clears the default threshold but is, by the package's
    band, not a decision: its reason says it is a lean.
    """
    out = recommendation.copy()
    out["undecided"] = [bool(is_undecided(p)) for p in out["probability"]]
    lean = out["undecided"] & (out["verdict"] == "recommend")
    out.loc[lean, "reason"] = out.loc[lean, "reason"] + (
        " P lies in the undecided band [0.2, 0.8]: a lean, not a decision."
    )
    return out


def _recommend(
    table: xr.Dataset, dim: str, target: float, threshold: float, cost_tolerance: float
) -> pd.DataFrame:
    rows = []
    for where, prefix, part in _groups(table, dim):
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
                f"P = {p_best:.2f} < {threshold:.2f}. Cost-competitive within "
                f"{cost_tolerance:.0%}: "
                f"{', '.join(competitive) or 'none with enough probability'}. "
                "Label another round and ask again.",
            )
        rows.append(
            where | {"verdict": verdict, dim: best, "probability": p_best, "reason": reason}
        )
    return pd.DataFrame(rows)
