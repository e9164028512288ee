"""Strategy schedules chosen from the posterior curves of single strategies.

A schedule runs ``candidates[0]`` first, switches to ``candidates[1]`` at budget ``s1``, to
``candidates[2]`` at ``s2``, ... (al_runner runs it as the strategy ``a>b@s1>c@s2``). Its
predicted curve is, draw by draw, the posterior curve of the stage active at each budget:
the assumption of the hard-switch schedules of the mechanism-driven theory of AL phases
(Machnio et al., 2026), that after a switch the accuracy follows the new strategy's curve.
It ignores that the new strategy inherits a labelled set it did not choose, which is why the
closed-loop experiment (``examples/schedule_experiment.py``) runs the schedule and compares.

The switch budgets are chosen on a grid to optimise the posterior mean objective: the area
under the budget curve (``"aubc"``, a mean accuracy over ``budget_range``) or the labels
needed to reach ``target`` (``"labels_to_target"``, posterior median). Choosing and
evaluating on the same draws makes the stated gain slightly optimistic.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from palm_bayes.errors import PalmInputError
from palm_bayes.queries.paths import crossing_budget
from palm_bayes.queries.targets import check_target

__all__ = ["SchedulePlan", "schedule", "OBJECTIVES"]

OBJECTIVES = ("aubc", "labels_to_target")


@dataclass
class SchedulePlan:
    """A chosen schedule and how it compares with the single strategies (posterior)."""

    stages: list[tuple[int, str]]
    objective: str
    table: pd.DataFrame
    best_single: str
    gain: dict[str, float]  # schedule minus best single (aubc) or labels saved (median, 90%)
    p_beats_best_single: float
    budget_range: tuple[float, float]
    target: float | None = None

    @property
    def spec(self) -> str:
        """The schedule as an al_runner strategy name, e.g. ``typiclust>margin@300``."""
        return ">".join(n if s == 0 else f"{n}@{int(s)}" for s, n in self.stages)

    def describe(self) -> str:
        """Plain-words summary."""
        unit = "in mean accuracy" if self.objective == "aubc" else "labels saved to the target"
        lo, hi = self.gain["lower"], self.gain["upper"]
        head = (
            f"schedule {self.spec}"
            if len(self.stages) > 1
            else (f"no switch pays: {self.spec} alone (of the candidates)")
        )
        return (
            f"{head}: expected gain over {self.best_single} "
            f"{self.gain['median']:+.4g} {unit} (90% interval {lo:+.4g} to {hi:+.4g}), "
            f"P(schedule beats {self.best_single}) = {self.p_beats_best_single:.2f}"
        )


def _paths(fit: Any, grid: np.ndarray, where: Mapping[str, Any] | None, seed: int):
    draws = fit.forecast_draws(grid, seed=seed)
    if where:
        draws = draws.sel(dict(where))
    extra = [d for d in draws.dims if d not in ("chain", "draw", "strategy", "budget")]
    for dim in extra:
        if draws.sizes[dim] != 1:
            raise PalmInputError(
                f"the fit has {draws.sizes[dim]} values of {dim!r}; choose one with "
                f"where={{'{dim}': ...}} / --where {dim}=..."
            )
    draws = draws.squeeze(extra, drop=True).stack(sample=("chain", "draw"))
    return draws.transpose("strategy", "sample", "budget")


def _checked_plan(
    fit: Any, candidates: Sequence[str], objective: str, target: float | None
) -> tuple[float | None, list[str]]:
    """The objective, target and candidates checked against the fit."""
    if objective not in OBJECTIVES:
        raise PalmInputError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if objective == "labels_to_target" and target is None:
        raise PalmInputError("objective 'labels_to_target' needs a target accuracy")
    if target is not None:
        target = check_target(fit, target)
    candidates = list(candidates)
    if len(candidates) < 2 or len(set(candidates)) != len(candidates):
        raise PalmInputError(f"give at least two distinct candidates, got {candidates}")
    known = list(np.asarray(fit.curves["strategy"].to_numpy()).astype(str))
    missing = [c for c in candidates if c not in known]
    if missing:
        raise PalmInputError(f"no strategy {missing[0]!r} in the fit; it has {known}")
    return target, candidates


def _best_by_aubc(
    lo: float,
    hi: float,
    grid: np.ndarray,
    cand: np.ndarray,
    acc: np.ndarray,
    index: dict[str, int],
    combos: list[tuple[int, ...]],
    all_strategies: list[str],
) -> tuple[tuple[int, ...], str, np.ndarray, list[dict]]:
    """The switch positions with the highest mean AUBC, and the best single strategy."""
    n = grid.size
    dx = np.diff(grid)
    seg = 0.5 * (cand[..., 1:] + cand[..., :-1]) * dx  # (stage, sample, interval)
    cum = np.concatenate([np.zeros(seg.shape[:2] + (1,)), np.cumsum(seg, -1)], -1)
    span = hi - lo

    def value(combo):
        edges = (0, *combo, n - 1)
        total = sum(cum[j, :, edges[j + 1]] - cum[j, :, edges[j]] for j in range(len(edges) - 1))
        return total / span

    scores = {c: value(c) for c in combos}
    best = max(scores, key=lambda c: scores[c].mean())
    singles = {s: (np.trapezoid(acc[index[s]], grid, axis=-1) / span) for s in all_strategies}
    best_single = max(singles, key=lambda s: singles[s].mean())
    diff = scores[best] - singles[best_single]
    rows = [{"plan": "schedule", "median": np.median(scores[best]), "mean": scores[best].mean()}]
    rows += [{"plan": s, "median": np.median(v), "mean": v.mean()} for s, v in singles.items()]
    return best, best_single, diff, rows


def _best_by_labels(
    lo: float,
    hi: float,
    grid: np.ndarray,
    cand: np.ndarray,
    acc: np.ndarray,
    index: dict[str, int],
    combos: list[tuple[int, ...]],
    all_strategies: list[str],
    target: float,
) -> tuple[tuple[int, ...], str, np.ndarray, list[dict]]:
    """The switch positions that reach ``target`` with the fewest median labels."""
    n = grid.size

    def path(combo):
        stage = np.searchsorted(np.asarray(combo), np.arange(n), side="right")
        return cand[stage, :, np.arange(n)].T  # (sample, budget)

    scores = {c: _labels(path(c), grid, target) for c in combos}
    # fewest median labels; ties: most often reached
    best = min(scores, key=lambda c: (np.median(scores[c]), -np.isfinite(scores[c]).mean()))
    singles = {s: _labels(acc[index[s]], grid, target) for s in all_strategies}
    best_single = min(singles, key=lambda s: np.median(singles[s]))
    a, b = scores[best], singles[best_single]
    with np.errstate(invalid="ignore"):
        diff = np.where(np.isinf(a) & np.isinf(b), 0.0, b - a)  # labels saved
    rows = [{"plan": "schedule", "median": np.median(a), "p_reached": np.isfinite(a).mean()}]
    rows += [
        {"plan": s, "median": np.median(v), "p_reached": np.isfinite(v).mean()}
        for s, v in singles.items()
    ]
    return best, best_single, diff, rows


def _labels(acc: np.ndarray, grid: np.ndarray, target: float) -> np.ndarray:
    """First budget where each path ``(..., budget)`` reaches ``target`` (inf if never).

    The search of :meth:`palm_bayes.PalmFit.labels_needed` (logit accuracy interpolated in log
    budget, :func:`palm_bayes.queries.paths.crossing_budget`), so that a schedule and labels
    needed agree on the same draws.
    """
    return crossing_budget(acc, grid, target)


def schedule(
    fit: Any,
    candidates: Sequence[str],
    *,
    objective: str = "aubc",
    target: float | None = None,
    budget_range: tuple[float, float] | None = None,
    where: Mapping[str, Any] | None = None,
    grid_points: int = 60,
    round_to: int = 1,
    switches: Sequence[float] | None = None,
    seed: int = 0,
) -> SchedulePlan:
    """Choose the switch budgets of a schedule of ``candidates`` (in this order).

    With ``switches`` the budgets are given (e.g. phase boundaries from :func:`palm_bayes.phases`)
    and the plan only predicts that schedule's gain and P(beats the best single strategy).

    Parameters
    ----------
    fit : PalmFit
        Posterior curves of at least the candidate strategies (a pilot is enough: budgets
        beyond it are extrapolated with the fit's discrepancy).
    candidates : sequence of str
        Strategies in the order they run; a stage may get no budget (skipped).
    objective : {"aubc", "labels_to_target"}
    target : float
        Target accuracy (``labels_to_target``).
    budget_range : (float, float)
        Budgets the schedule is planned over (default: the fit's observed range).
    where : mapping
        Selection of the other curve dims (dataset, embedding) when the fit has several.
    grid_points : int
        Budgets at which switches may happen (and AUBC is integrated).
    round_to : int
        Round switch budgets to multiples of this (labels per AL round).
    switches : sequence of float, optional
        Fixed switch budgets, one fewer than ``candidates``, increasing, inside the range.
    seed : int
        Seed of the extrapolation draws.

    Returns
    -------
    SchedulePlan
    """
    target, candidates = _checked_plan(fit, candidates, objective, target)
    const = fit.idata.constant_data
    lo, hi = budget_range or (float(const["first_budget"].min()), float(const["last_budget"].max()))
    if not hi > lo > 0:
        raise PalmInputError(f"budget_range must satisfy 0 < low < high, got {(lo, hi)}")
    grid = np.linspace(lo, hi, int(grid_points))
    if switches is not None:
        switches = [float(b) for b in switches]
        if len(switches) != len(candidates) - 1 or any(np.diff(switches) <= 0):
            raise PalmInputError(
                f"give {len(candidates) - 1} increasing switch budgets, got {switches}"
            )
        if not all(lo < b < hi for b in switches):
            raise PalmInputError(f"switch budgets {switches} must lie inside {(lo, hi)}")
        grid = np.union1d(grid, switches)
    paths = _paths(fit, grid, where, seed)
    all_strategies = [str(s) for s in paths["strategy"].to_numpy()]
    acc = paths.to_numpy()  # (strategy, sample, budget)
    index = {s: i for i, s in enumerate(all_strategies)}
    cand = np.stack([acc[index[c]] for c in candidates])  # (stage, sample, budget)
    n = grid.size
    # switch positions p_1 <= ... <= p_{S-1} in 0..n-1 (stage j covers grid[p_j:p_{j+1}])
    if switches is not None:
        combos = [tuple(int(np.searchsorted(grid, b)) for b in switches)]
    else:
        combos = list(itertools.combinations_with_replacement(range(n), len(candidates) - 1))
    search = (lo, hi, grid, cand, acc, index, combos, all_strategies)
    if objective == "aubc":
        best, best_single, diff, rows = _best_by_aubc(*search)
    else:
        best, best_single, diff, rows = _best_by_labels(*search, float(target))
    p_beats = float(np.mean(diff > 0) + 0.5 * np.mean(diff == 0))
    finite = diff[np.isfinite(diff)]
    gain = {
        "median": float(np.median(finite)) if finite.size else float("nan"),
        "lower": float(np.quantile(finite, 0.05)) if finite.size else float("nan"),
        "upper": float(np.quantile(finite, 0.95)) if finite.size else float("nan"),
    }
    edges = (0, *best, n - 1)
    stages: list[tuple[int, str]] = []
    for j, name in enumerate(candidates):
        if edges[j + 1] > edges[j]:  # a stage given no budget is skipped
            start = 0 if not stages else int(round(grid[edges[j]] / round_to) * round_to)
            stages.append((start, name))
    return SchedulePlan(
        stages=stages,
        objective=objective,
        table=pd.DataFrame(rows),
        best_single=best_single,
        gain=gain,
        p_beats_best_single=p_beats,
        budget_range=(lo, hi),
        target=target,
    )
