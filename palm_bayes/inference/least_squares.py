"""The paper's least-squares PALM fit: the baseline, and a point estimate for quick looks.

Machnio et al. fit PALM with ``scipy.optimize.curve_fit`` on ``x = B / b`` with bounds
``A_max in [0, 1]`` (``[0, 100]`` for percent), ``delta in [0, 1]``, ``alpha in [-1000, 1000]``
and ``beta in [0, 100]``. Fits that end on a bound are flagged: their parameters are not
identified by the data.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr
from scipy.optimize import OptimizeWarning, curve_fit

from palm_bayes.data.load import load_curves
from palm_bayes.data.prepare import curve_dims, iter_curves
from palm_bayes.data.prepare import labels_per_round as _labels_per_round
from palm_bayes.errors import PalmInputError
from palm_bayes.model.curve import palm_curve

__all__ = ["fit_curve_least_squares", "fit_least_squares", "PAPER_BOUNDS"]

PARAMS = ("A_max", "delta", "alpha", "beta")
#: The paper's bounds for (A_max, delta, alpha, beta) on fractional accuracies.
PAPER_BOUNDS = ((0.0, 0.0, -1000.0, 0.0), (1.0, 1.0, 1000.0, 100.0))
_STARTS = ((0.1, 0.0, 1.0), (0.01, 0.0, 0.5), (0.3, 1.0, 1.5), (0.05, 2.0, 0.8))


def fit_curve_least_squares(
    budget: np.ndarray,
    accuracy: np.ndarray,
    b: float,
    *,
    percent: bool = False,
    init: Mapping[str, float] | None = None,
    bounds: Mapping[str, tuple[float, float]] | None = None,
) -> dict[str, Any]:
    """Least-squares PALM fit of one curve (all seeds' points, NaNs dropped).

    Several starting points are tried and the lowest squared error is kept; the result is
    deterministic. A fit that fails from every start gives NaNs and ``success=False``.
    ``init`` (e.g. ``{"delta": 0.5, "beta": 1.0}``, like the reference's ``--init_*``) is tried
    first, its missing entries taken from the default start; ``bounds`` replaces the paper's
    bounds of the named parameters (e.g. ``{"alpha": (-5, 5), "beta": (0, 3)}``, like
    ``--alpha_lo/--alpha_hi/--beta_hi``).

    Returns
    -------
    dict
        ``A_max, delta, alpha, beta, at_bound, success, rmse``.

    Examples
    --------
    >>> B = np.arange(1, 11) * 100.0
    >>> acc = palm_curve(B, 0.9, 0.2, 0.5, 1.1, b=100)
    >>> round(fit_curve_least_squares(B, acc, 100.0)["A_max"], 3)
    0.9
    """
    budget = np.asarray(budget, dtype=float).ravel()
    accuracy = np.asarray(accuracy, dtype=float).ravel()
    keep = np.isfinite(budget) & np.isfinite(accuracy)
    x, y = budget[keep] / b, accuracy[keep]
    scale = 100.0 if percent else 1.0
    lower, upper = np.array(PAPER_BOUNDS[0]), np.array(PAPER_BOUNDS[1])
    upper[0] = scale
    for name, (lo, hi) in (bounds or {}).items():
        k = _param_index(name)
        if not lo < hi:
            raise PalmInputError(f"least-squares bounds of {name}: low {lo} must be < high {hi}")
        lower[k], upper[k] = lo, hi
    lower[2] = max(lower[2], -float(x.min()) + 1e-9)  # the curve must be defined at the data
    if not lower[2] < upper[2]:
        raise PalmInputError(
            f"least-squares bounds of alpha: the curve must be defined at the first budget "
            f"(alpha > {-float(x.min()):g} rounds), but alpha's upper bound is {upper[2]:g}"
        )

    def model(x, a_max, delta, alpha, beta):
        return palm_curve(x, a_max, delta, alpha, beta, 1.0)

    best, best_sse = None, np.inf
    top = float(np.max(y)) if y.size else 0.5
    starts = [[min(top * 1.05, scale), *start] for start in _STARTS]
    if init:
        first = list(starts[0])
        for name, value in init.items():
            first[_param_index(name)] = float(value)
        starts.insert(0, first)
    for start in starts:
        p0 = np.clip(start, lower + 1e-9, upper - 1e-9)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", (OptimizeWarning, RuntimeWarning))
                params, _ = curve_fit(model, x, y, p0=p0, bounds=(lower, upper), maxfev=20000)
        except (RuntimeError, ValueError):
            continue
        sse = float(np.sum((model(x, *params) - y) ** 2))
        if np.isfinite(sse) and sse < best_sse:
            best, best_sse = params, sse
    if best is None:
        return dict.fromkeys(PARAMS, np.nan) | {"at_bound": False, "success": False, "rmse": np.nan}
    span = upper - lower
    at_bound = bool(np.any((best - lower < 1e-4 * span) | (upper - best < 1e-4 * span)))
    result = dict(zip(PARAMS, map(float, best), strict=True))
    return result | {"at_bound": at_bound, "success": True, "rmse": np.sqrt(best_sse / y.size)}


def _param_index(name: str) -> int:
    if name not in PARAMS:
        raise PalmInputError(f"unknown PALM parameter {name!r}; use one of {list(PARAMS)}")
    return PARAMS.index(name)


def fit_least_squares(
    curves: Any,
    *,
    labels_per_round: float | None = None,
    init: Mapping[str, float] | None = None,
    bounds: Mapping[str, tuple[float, float]] | None = None,
) -> xr.Dataset:
    """Least-squares PALM fit of every curve.

    Parameters
    ----------
    curves : xarray.Dataset, DataFrame or path
        Anything :func:`palm_bayes.load_curves` reads.
    labels_per_round : float, optional
        The normaliser ``b`` (default: as in :func:`palm_bayes.fit`).
    init, bounds : mapping, optional
        A start value and bounds per parameter (see :func:`fit_curve_least_squares`).

    Returns
    -------
    xarray.Dataset
        ``A_max, delta, alpha, beta, rmse, b`` (NaN for curves without data) and ``at_bound``,
        ``success`` over the curve dims.
    """
    curves = load_curves(curves, labels_per_round=labels_per_round)
    dims = curve_dims(curves)
    b = _labels_per_round(curves)
    shape = tuple(curves.sizes[d] for d in dims)
    out = {name: np.full(shape, np.nan) for name in PARAMS + ("rmse",)}
    flags = {name: np.zeros(shape, dtype=bool) for name in ("at_bound", "success")}
    coords = {d: curves[d].to_numpy() for d in dims}
    for labels, sub in iter_curves(curves):
        index = tuple(int(np.flatnonzero(coords[d] == labels[d])[0]) for d in dims)
        res = fit_curve_least_squares(
            sub["budget"].to_numpy(),
            sub["accuracy"].to_numpy(),
            float(b.sel(labels)),
            init=init,
            bounds=bounds,
        )
        for name in out:
            out[name][index] = res[name]
        for name in flags:
            flags[name][index] = res[name]
    ds = xr.Dataset({k: (dims, v) for k, v in (out | flags).items()}, coords=coords)
    ds["b"] = b.transpose(*dims)
    return ds
