"""Target accuracies a person types: checked before any query answers them.

A target outside ``(0, 1)`` or below every accuracy the curves have already shown is almost
always a slip (a percentage typed where a fraction was meant, a sign, a target that is reached
before the first observation). The queries that take a target (labels needed, advice, schedules,
stop verdicts) call :func:`check_target` and answer such a target with one clear line instead
of a number that looks like an answer.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from palm_bayes.errors import PalmInputError
from palm_bayes.inference.posterior import PalmPosterior

__all__ = ["check_target", "lowest_observed"]


def lowest_observed(fit: PalmPosterior) -> tuple[float, float] | None:
    """The lowest observed accuracy of the fit's curves and the budget it was seen at.

    ``None`` when the fit holds no observed curves (a population of new members).
    """
    if "observed_data" not in fit.idata.groups():
        return None
    obs = fit.idata.observed_data
    acc_da, budget_da = xr.broadcast(obs["accuracy"], obs["budget"])
    acc = np.asarray(acc_da, dtype=float)
    budget = np.asarray(budget_da.transpose(*acc_da.dims), dtype=float)
    ok = np.isfinite(acc)
    if not ok.any():
        return None
    k = int(np.argmin(np.where(ok, acc, np.inf)))
    return float(acc.flat[k]), float(budget.flat[k])


def check_target(fit: PalmPosterior, target: float, *, percent: bool = False) -> float:
    """The target as a fraction, or a one-line :class:`PalmInputError` when it is a likely slip.

    Parameters
    ----------
    fit : PalmPosterior
        The fit whose observed curves the target is compared with.
    target : float
        Target accuracy, a fraction in ``(0, 1)``; with ``percent=True`` a value in
        ``(1, 100]`` is read as percent (``85`` -> ``0.85``).
    percent : bool
        Whether a percentage is accepted (``advise`` accepts one; the other queries take
        fractions only, so ``1.5`` there is refused, not read as 1.5%).

    Returns
    -------
    float
        The target as a fraction.

    Raises
    ------
    PalmInputError
        When the target is not a number, is ``<= 0`` or ``>= 1`` (beyond the percent reading),
        or lies below every observed accuracy (it was reached before the first observation,
        which is what a percentage typed as a fraction, ``1.5`` for 1.5%, usually gives).

    Examples
    --------
    >>> check_target(fit, 0.85)  # doctest: +SKIP
    0.85
    """
    try:
        value = float(target)
    except (TypeError, ValueError):
        raise PalmInputError(f"target accuracy must be a number, got {target!r}") from None
    typed = value
    if not np.isfinite(value) or value <= 0:
        raise PalmInputError(
            f"target accuracy must lie in (0, 1), got {typed:g}: accuracies are fractions "
            "such as 0.85"
        )
    if percent and 1 < value <= 100:
        value = value / 100
    elif value >= 1:
        if value == 1:
            hint = "a PALM curve stays below its ceiling A_max < 1"
        elif value > 100:
            hint = "that is above 100%"
        else:
            hint = f"a percentage? write {value / 100:g} for {typed:g}%, or 0.85 for 85%"
        raise PalmInputError(f"target accuracy must lie in (0, 1), got {typed:g} ({hint})")
    if value >= 1:
        raise PalmInputError(
            f"target accuracy must lie below 100%, got {typed:g} (a PALM curve stays below "
            "its ceiling A_max < 1)"
        )
    low = lowest_observed(fit)
    if low is not None and value < low[0]:
        read = f"{typed:g} (read as {typed:g}% = {value:g})" if typed != value else f"{value:g}"
        example = "e.g. 0.85 (or 85 for 85%)" if percent else "e.g. 0.85"
        raise PalmInputError(
            f"target accuracy {read} lies below every observed accuracy (lowest {low[0]:.3g}, "
            f"at {low[1]:g} labels): it was reached before the first observation; give a "
            f"target above the curves, {example}"
        )
    return value
