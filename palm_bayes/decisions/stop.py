"""When to stop labelling: a stop / continue / switch verdict per strategy, with probabilities.

For each strategy ``s`` of a fit, read as *the strategy now running* at its last observed
budget ``B0``, the posterior forecast draws (the same paths as
:meth:`palm_bayes.PalmFit.forecast` and ``prob_better``, extrapolation discrepancy included) give
the gain of the next ``k`` labels, ``k = r * b`` for ``r`` in ``rounds_ahead`` (``b`` labels per
round): ``gain = A_X(B0 + k) - A_s(B0)`` when continuing with ``X`` (``X = s``: continue;
another ``X``: switch, which follows ``X``'s curve from the same cumulative budget, as
:func:`palm_bayes.schedule` does).

The verdict maximises expected utility over the actions *stop* (utility 0) and *label r more
rounds with X*:

* with a cost model (``cost_per_label`` and ``value_per_point``, the value of one accuracy point
  over the model's use, in the spirit of Pullar-Strecker et al.'s cost measure):
  ``U = value_per_point * 100 * gain - cost_per_label * k`` (money);
* without one: ``U = gain - epsilon * r``: a round is worth buying when it adds at least
  ``epsilon`` accuracy (accuracy units).

Each action is scored at its best horizon (the ``r`` with the highest expected utility). The
verdict's ``probability`` is the share of posterior draws in which that action is the best one
(each draw at its own best horizon), and ``expected_saved`` its expected utility minus that of
the next best action.

With a ``target`` ``t``, a strategy gets ``stop`` (reason ``target reached``) only when the target
is reached *and* little is left to gain by the end of the run's budget ``B`` (``budget``; without
a budget beyond the last observed one, the largest horizon): P(accuracy now >= t) >=
``threshold`` and P(A(B) - accuracy now > ``tolerance``) <= ``gain_risk``, from the same draws
(defaults 0.7, 1 point and 0.05: with the 1-point tolerance fixed, ``gain_risk`` is the largest
of 0.3, 0.2, 0.15, 0.1 and 0.05 that stopped prematurely in at most 10% of the development
runs of ``benchmarks/stopping.py``). A strategy that has reached the target but would still
gain more than ``tolerance`` by ``B`` with a larger probability keeps its utility verdict, with
a reason that says so (``target reached, but P(gain > 1 point by B=600) = 0.45``): stopping
there would leave more than ``tolerance`` on the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Literal, NamedTuple

import numpy as np
import xarray as xr

from palm_bayes.errors import PalmInputError
from palm_bayes.queries.draws import check_prob
from palm_bayes.queries.forecast import forecast_draws
from palm_bayes.queries.targets import check_target

if TYPE_CHECKING:
    import pandas as pd

    from palm_bayes.inference.posterior import PalmPosterior

__all__ = ["stop", "stop_table", "target_stop_says"]

_SAMPLES = ("chain", "draw")


def _check_inputs(cost_per_label, value_per_point, rounds_ahead, epsilon, dim, fit):
    if (cost_per_label is None) != (value_per_point is None):
        raise PalmInputError(
            "give cost_per_label and value_per_point together (the cost model), or neither"
        )
    for name, value in (("cost_per_label", cost_per_label), ("value_per_point", value_per_point)):
        if value is not None and not (np.isfinite(value) and value >= 0):
            raise PalmInputError(f"{name} must be a number >= 0, got {value!r}")
    rounds = np.atleast_1d(np.asarray(rounds_ahead, dtype=float))
    if rounds.size == 0 or np.any(~np.isfinite(rounds)) or np.any(rounds <= 0):
        raise PalmInputError(f"rounds_ahead must be positive numbers of rounds, got {rounds_ahead}")
    if not (np.isfinite(epsilon) and epsilon >= 0):
        raise PalmInputError(f"epsilon must be an accuracy gain >= 0, got {epsilon!r}")
    if dim not in fit.curve_dims:
        raise PalmInputError(
            f"unknown dimension {dim!r}; the curves are identified by {list(fit.curve_dims)}"
        )
    return np.unique(rounds)


def stop(
    fit: PalmPosterior,
    *,
    target: float | None = None,
    cost_per_label: float | None = None,
    value_per_point: float | None = None,
    rounds_ahead: Sequence[float] = (1, 3),
    epsilon: float = 0.005,
    budget: float | None = None,
    threshold: float = 0.7,
    tolerance: float = 0.01,
    gain_risk: float = 0.05,
    hdi_prob: float = 0.9,
    dim: str = "strategy",
    kind: Literal["expected", "predictive"] = "expected",
    seed: int = 0,
) -> xr.Dataset:
    """Stop, continue or switch: the verdict per strategy, with its probability and value.

    Parameters
    ----------
    fit : PalmFit
        A fit of the strategies' curves so far (a pilot).
    target : float, optional
        Target accuracy (a fraction in (0, 1), above the observed accuracies): adds
        ``p_target_now``, ``p_target_by_budget``, ``labels_to_target`` and ``p_gain_to_budget``,
        and stops a strategy that has reached it with little left to gain by ``budget`` (see
        ``tolerance``).
    cost_per_label, value_per_point : float, optional
        The cost model: what one label costs and what one accuracy point (0.01) is worth over
        the model's use, in one currency. Without them, ``epsilon`` per round is the break-even
        gain.
    rounds_ahead : sequence of float
        Horizons in rounds of ``b`` labels (the fit's labels per round).
    epsilon : float
        Gain (accuracy, fraction) that counts: ``p_gain`` is P(gain >= epsilon).
    budget : float, optional
        The run's total label budget ``B``: of ``p_target_by_budget`` and of the gain left that
        the target stop weighs (default, and where ``B`` is not beyond a strategy's last
        observed budget: that budget plus the largest horizon).
    threshold, tolerance, gain_risk : float
        With a target, ``stop`` needs P(target reached now) >= ``threshold`` and P(gain from
        now to ``B`` > ``tolerance``) <= ``gain_risk`` (``tolerance`` 0.01: one point).
    hdi_prob : float
        Probability of the equal-tailed gain interval.
    dim : str
        The dimension of the strategies.
    kind : {"expected", "predictive"}
        Gains of the mean curve, or of one new run (noisier).
    seed : int
        Seed of the extrapolation draws (the same paths as every other query of that seed).

    Returns
    -------
    xarray.Dataset
        Dims ``(*curve_dims, rounds_ahead)``: ``gain_mean``, ``gain_lower``, ``gain_upper``,
        ``p_gain`` (continuing with the same strategy) and ``utility`` (expected, of that);
        dims ``curve_dims``: ``budget_now``, ``accuracy_now``, ``verdict`` (``stop``,
        ``continue`` or ``switch to X``), ``action`` (``stop`` or the strategy to label with),
        ``rounds`` (the verdict's horizon), ``probability``, ``expected_saved`` (its expected
        utility minus the next best action's), ``reason``; with a target also
        ``p_target_now``, ``p_target_by_budget`` and ``labels_to_target`` (median further
        labels, ``inf`` when not reached) and ``p_gain_to_budget`` (P(gain from now to ``B``
        > ``tolerance``)).

    Examples
    --------
    >>> fit.stop(cost_per_label=1.0, value_per_point=500.0)["verdict"]  # doctest: +SKIP
    """
    rounds = _check_inputs(cost_per_label, value_per_point, rounds_ahead, epsilon, dim, fit)
    target = _check_target_inputs(fit, target, threshold, hdi_prob, gain_risk, tolerance, budget)
    const = fit.idata.constant_data
    fitted = const["fitted"]
    last = const["last_budget"].where(fitted)
    b = const["b"].where(fitted)
    horizon = xr.DataArray(rounds, dims="rounds_ahead", coords={"rounds_ahead": rounds})
    ahead = (last + horizon * b).where(fitted)
    end = _end_budget(last, ahead, budget)
    grid = _budget_grid(last, ahead, end if target is not None else None)
    draws = forecast_draws(fit, grid, kind=kind, seed=seed)
    safe_last = last.fillna(grid[0])
    now = draws.sel(budget=safe_last).drop_vars("budget")
    labels = horizon * b
    utility = partial(_utility, cost_per_label, value_per_point, epsilon, horizon)

    names = fit.idata.posterior[dim].to_numpy()
    own = draws.sel(budget=ahead.fillna(grid[0])).drop_vars("budget") - now
    out = _gains(own, now, last, utility(own, labels), epsilon, hdi_prob).where(fitted)
    verdicts = [_verdict_of(s, draws, now, ahead, labels, utility, names, dim, fitted, grid)
                for s in names]  # fmt: skip
    parts = xr.concat(verdicts, dim=dim).assign_coords({dim: names})
    out = xr.merge([out, parts])
    if target is not None:
        left = draws.sel(budget=end.fillna(grid[0])).drop_vars("budget") - now
        rule = _TargetRule(target, threshold, tolerance, gain_risk, budget)
        out = _with_target(fit, out, now, left, end, rule, last, ahead)
    out.attrs.update(_settings(cost_per_label, value_per_point, epsilon, hdi_prob, target))
    out.attrs |= {"tolerance": float(tolerance), "gain_risk": float(gain_risk)}
    return out


def _utility(cost_per_label, value_per_point, epsilon, horizon, gain, k_labels) -> xr.DataArray:
    """Value of a gain for ``k_labels`` more labels (money, or the gain beyond epsilon/round)."""
    if cost_per_label is not None:
        return value_per_point * 100.0 * gain - cost_per_label * k_labels
    return gain - epsilon * horizon


def _check_target_inputs(fit, target, threshold, hdi_prob, gain_risk, tolerance, budget):
    """Refuse bad probabilities, tolerance and budget; the target, checked (or ``None``)."""
    check_prob(threshold, "threshold")
    check_prob(hdi_prob, "hdi_prob")
    check_prob(gain_risk, "gain_risk")
    if not (np.isfinite(tolerance) and tolerance >= 0):
        raise PalmInputError(f"tolerance must be an accuracy gain >= 0, got {tolerance!r}")
    if budget is not None and not (np.isfinite(budget) and budget > 0):
        raise PalmInputError(f"budget must be a positive number of labels, got {budget!r}")
    return None if target is None else check_target(fit, target)


def _end_budget(last: xr.DataArray, ahead: xr.DataArray, budget: float | None) -> xr.DataArray:
    """The budget ``B`` of the gain left that the target stop weighs.

    ``budget`` where it lies beyond a strategy's last observed budget, else that budget plus the
    largest horizon.
    """
    far = ahead.max("rounds_ahead")
    if budget is None:
        return far
    return xr.where(last < float(budget), float(budget), far).where(last.notnull())


def _budget_grid(
    last: xr.DataArray, ahead: xr.DataArray, end: xr.DataArray | None = None
) -> np.ndarray:
    """The budgets the verdict reads: every curve's last one, a few rounds ahead, the target's B."""
    parts = [last.to_numpy().ravel(), ahead.to_numpy().ravel()]
    parts += [] if end is None else [end.to_numpy().ravel()]
    grid = np.unique(np.concatenate(parts))
    grid = grid[np.isfinite(grid)]
    if grid.size == 0:
        raise PalmInputError("the fit holds no fitted curve")
    return grid


def _gains(
    own: xr.DataArray,
    now: xr.DataArray,
    last: xr.DataArray,
    utility: xr.DataArray,
    epsilon: float,
    hdi_prob: float,
) -> xr.Dataset:
    """Gain of continuing with each strategy: mean, interval, P(gain >= epsilon), utility."""
    q = (1 - hdi_prob) / 2
    return xr.Dataset(
        {
            "budget_now": last,
            "accuracy_now": now.mean(_SAMPLES),
            "gain_mean": own.mean(_SAMPLES),
            "gain_lower": own.quantile(q, _SAMPLES).drop_vars("quantile"),
            "gain_upper": own.quantile(1 - q, _SAMPLES).drop_vars("quantile"),
            "p_gain": (own >= epsilon).mean(_SAMPLES),
            "utility": utility.mean(_SAMPLES),
        }
    )


def _settings(
    cost_per_label: float | None,
    value_per_point: float | None,
    epsilon: float,
    hdi_prob: float,
    target: float | None,
) -> dict[str, float | int | str]:
    """The verdict's settings as attrs (NaN where not given)."""
    cost_model = cost_per_label is not None
    return {
        "cost_model": int(cost_model),
        "cost_per_label": np.nan if cost_per_label is None else float(cost_per_label),
        "value_per_point": np.nan if value_per_point is None else float(value_per_point),
        "epsilon": float(epsilon),
        "utility_unit": "currency" if cost_model else "accuracy",
        "hdi_prob": float(hdi_prob),
        "target": np.nan if target is None else float(target),
    }


def _verdict_of(s, draws, now, ahead, labels, utility, names, dim, fitted, grid) -> xr.Dataset:
    """The verdict of the row where ``s`` is the running strategy (over the other dims)."""
    pick = {dim: s}
    start = now.sel(pick, drop=True)
    budgets = ahead.sel(pick, drop=True).fillna(grid[0])
    k_labels = labels.sel(pick, drop=True)
    # every strategy's curve from s's budget on: (chain, draw, *others, dim, rounds_ahead)
    u = utility(draws.sel(budget=budgets).drop_vars("budget") - start, k_labels)
    u = u.where(fitted)  # unfitted options never win
    expected = u.mean(_SAMPLES)  # (*others, dim, rounds_ahead)
    best_r = expected.fillna(-np.inf).argmax("rounds_ahead")
    exp_best = expected.fillna(-np.inf).max("rounds_ahead")  # (*others, dim)
    # the options: stop (utility 0) then every strategy
    option = xr.concat(
        [xr.zeros_like(exp_best.isel({dim: 0}, drop=True)).expand_dims(option=["stop"]),
         exp_best.rename({dim: "option"}).assign_coords(option=[str(n) for n in names])],
        "option",
    )  # fmt: skip
    ranked = -np.sort(-option.transpose(..., "option").to_numpy(), axis=-1)
    winner = option.argmax("option")
    per_draw = u.fillna(-np.inf).max("rounds_ahead")  # each draw at its own best horizon
    draw_options = xr.concat(
        [xr.zeros_like(per_draw.isel({dim: 0}, drop=True)).expand_dims(option=["stop"]),
         per_draw.rename({dim: "option"}).assign_coords(option=[str(n) for n in names])],
        "option",
    )  # fmt: skip
    draw_winner = draw_options.argmax("option")
    probability = (draw_winner == winner).mean(_SAMPLES)
    saved = ranked[..., 0] - ranked[..., 1] if ranked.shape[-1] > 1 else ranked[..., 0]
    labels_opt = np.array(["stop", *[str(n) for n in names]], dtype=object)
    action = xr.apply_ufunc(lambda i: labels_opt[i], winner, vectorize=True, output_dtypes=[object])
    rounds_ahead = expected["rounds_ahead"].to_numpy()
    chosen = xr.where(winner > 0, winner - 1, 0)
    best_r_of_winner = best_r.isel({dim: chosen})
    rounds = xr.where(winner > 0, rounds_ahead[best_r_of_winner.to_numpy()], 0.0)
    verdict = xr.apply_ufunc(
        lambda a: "stop" if a == "stop" else "continue" if a == str(s) else f"switch to {a}",
        action, vectorize=True, output_dtypes=[object],
    )  # fmt: skip
    others = option.transpose(..., "option").dims[:-1]
    return xr.Dataset(
        {
            "verdict": verdict,
            "action": action,
            "rounds": rounds,
            "probability": probability,
            "expected_saved": xr.DataArray(
                saved, dims=others, coords={d: option[d] for d in others if d in option.coords}
            ),
            "best_labelling_utility": exp_best.max(dim),
            "reason": xr.full_like(verdict, "expected utility", dtype=object),
        }
    )


class _TargetRule(NamedTuple):
    """The target stop's settings."""

    target: float
    threshold: float
    tolerance: float
    gain_risk: float
    budget: float | None


def target_stop_says(
    p_now: np.ndarray | float, p_left: np.ndarray | float, threshold: float, gain_risk: float
) -> np.ndarray:
    """The target stop from its two probabilities: reached and little left to gain.

    ``p_now`` is P(accuracy now >= target), ``p_left`` P(gain from now to ``B`` > tolerance);
    ``stop`` where ``p_now >= threshold`` and ``p_left <= gain_risk`` (benchmarks replay the
    rule with this function).
    """
    return (np.asarray(p_now) >= threshold) & (np.asarray(p_left) <= gain_risk)


def _with_target(fit, out, now, left, end, rule: _TargetRule, last, ahead) -> xr.Dataset:
    """Target columns, and ``stop`` where the target is reached with little left to gain."""
    target, threshold, budget = rule.target, rule.threshold, rule.budget
    need = fit.labels_needed_draws(target)
    by = ahead.max("rounds_ahead") if budget is None else xr.full_like(last, float(budget))
    fitted = out["budget_now"].notnull()
    p_now = (now >= target).mean(_SAMPLES).where(fitted)
    p_left = (left > rule.tolerance).mean(_SAMPLES).where(fitted)
    out["p_target_now"] = p_now
    out["p_target_by_budget"] = (need <= by).mean(_SAMPLES).where(fitted)
    extra = (need - last).clip(min=0)
    out["labels_to_target"] = (
        extra.quantile(0.5, _SAMPLES, method="inverted_cdf").drop_vars("quantile").where(
            fitted)
    )  # fmt: skip
    out["p_gain_to_budget"] = p_left
    out["target_budget"] = end.where(fitted)
    reached = p_now >= threshold
    says = target_stop_says(p_now, p_left, threshold, rule.gain_risk)
    stops = xr.DataArray(says, dims=p_now.dims, coords=p_now.coords) & fitted
    out["verdict"] = xr.where(stops, "stop", out["verdict"])
    out["action"] = xr.where(stops, "stop", out["action"])
    out["rounds"] = xr.where(stops, 0.0, out["rounds"])
    out["probability"] = xr.where(stops, p_now, out["probability"])
    # what stopping gains over the best way to keep labelling (negative: the utility alone
    # would keep labelling, the target says stop)
    out["expected_saved"] = xr.where(stops, -out["best_labelling_utility"], out["expected_saved"])
    points = f"{100 * rule.tolerance:g} point" + ("" if rule.tolerance == 0.01 else "s")
    held = reached & ~stops & fitted & (out["verdict"] != "stop")
    why = xr.apply_ufunc(
        lambda p, b: f"target reached, but P(gain > {points} by B={b:g}) = {p:.2f}",
        p_left.where(held, 0.0), end.where(held, 0.0), vectorize=True, output_dtypes=[object],
    )  # fmt: skip
    out["reason"] = xr.where(stops, "target reached", xr.where(held, why, out["reason"]))
    out.attrs["budget"] = np.nan if budget is None else float(budget)
    return out


def stop_table(out: xr.Dataset) -> pd.DataFrame:
    """One row per strategy (and other dims) of a :func:`stop` result, gains per horizon.

    Columns: the id dims, ``verdict``, ``probability``, ``expected_saved``, ``rounds``,
    ``accuracy_now``, ``gain_<r>`` and ``gain_<r>_interval`` (mean and interval of the gain of
    ``r`` more rounds with the same strategy), ``p_gain_<r>`` and, with a target, its columns.
    """
    import pandas as pd

    keep = ["budget_now", "accuracy_now", "verdict", "probability", "expected_saved", "rounds"]
    keep += [v for v in ("p_target_now", "p_target_by_budget", "labels_to_target",
                         "p_gain_to_budget") if v in out]  # fmt: skip
    frame = out[keep].to_dataframe()
    frame = frame[frame["budget_now"].notnull()]
    for r in out["rounds_ahead"].to_numpy():
        part = out.sel(rounds_ahead=r)
        tag = f"{r:g}"
        frame[f"gain_{tag}"] = part["gain_mean"].to_series()
        frame[f"gain_{tag}_interval"] = [
            f"[{lo:.3f}, {hi:.3f}]"
            for lo, hi in zip(
                part["gain_lower"].to_series().reindex(frame.index),
                part["gain_upper"].to_series().reindex(frame.index),
                strict=True,
            )
        ]
        frame[f"p_gain_{tag}"] = part["p_gain"].to_series()
    return pd.DataFrame(frame.reset_index())
