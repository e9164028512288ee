"""The per-curve preparation of a fit, once: sufficient statistics over a stacked ``curve`` dim.

:func:`prepare_curves` reads every curve with data once and returns a :class:`CurveStats`: the
normaliser ``b``, each curve's per-budget sufficient statistics (:func:`model_data`, what the
models read), its constants (first and last budget, ``x_first``, ``x_mid``, ``n_test``) over a
``curve`` dim that carries the curve labels as a MultiIndex, and the falling curves.
:meth:`CurveStats.assemble` lays anything over that ``curve`` dim onto the full curve grid (an
xarray unstack), for independent and pooled fits alike. The per-curve views every other stage
uses live here too: :func:`curve_dims`, :func:`iter_curves`, :func:`labels_per_round` and
:func:`decreasing_curves`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from palm_bayes.data.contract import CURVE_DIMS
from palm_bayes.errors import PalmInputError

__all__ = [
    "CurveStats",
    "prepare_curves",
    "model_data",
    "curve_dims",
    "iter_curves",
    "labels_per_round",
    "decreasing_curves",
]

#: Fill values of the curve grid where a curve has no data (NaN for the rest).
FILL = {"diverging": False, "fitted": False, "nuts_fallback": False}
#: The per-curve constants of :attr:`CurveStats.constants`.
CONSTANTS = ("x_first", "x_mid", "first_budget", "last_budget", "n_test")


@dataclass(frozen=True)
class CurveStats:
    """Every curve with data, prepared once for the models, the sampler and the assembly.

    Attributes
    ----------
    dims : tuple of str
        The curve dims (the id dims but ``seed``).
    coords : dict
        The labels of each curve dim: the full curve grid.
    b : xarray.DataArray
        Labels per round of every curve of the grid (the curves' own).
    b_model : float or None
        The one ``b`` all model data use (pooled fits), or None (each curve its own).
    datas : list of dict
        :func:`model_data` of each curve with data, in ``curve`` order.
    constants : xarray.Dataset
        :data:`CONSTANTS` over ``curve`` (a MultiIndex of the curve dims' labels).
    falling : list of str
        The curves whose seed-mean accuracy falls with the budget.
    """

    dims: tuple[str, ...]
    coords: dict[str, np.ndarray]
    b: xr.DataArray
    b_model: float | None
    datas: list[dict[str, Any]]
    constants: xr.Dataset
    falling: list[str]

    def assemble(self, stacked: xr.Dataset, *, last: Mapping[str, str] | None = None) -> xr.Dataset:
        """Values over the stacked ``curve`` dim (numbered or labelled) onto the full grid.

        Curves without data get NaN (``False`` for flags, :data:`FILL`); dims come out as
        ``(..., *dims)``, or ``(..., *dims, last[name])`` for the variables named in ``last``.
        """
        if "curve" not in stacked.indexes:
            stacked = stacked.drop_vars("curve", errors="ignore").assign_coords(
                self.constants.coords
            )
        fill = {name: FILL.get(name, np.nan) for name in stacked.data_vars}
        grid = stacked.unstack("curve", fill_value=fill).reindex(self.coords, fill_value=fill)
        other = [d for d in stacked.dims if d != "curve"]
        grid = grid.transpose(*other, *self.dims)
        for name, dim in (last or {}).items():
            if name in grid:
                grid[name] = grid[name].transpose(..., *self.dims, dim)
        return grid


def prepare_curves(
    curves: xr.Dataset, labels_per_round: float | None = None, *, common_b: bool = False
) -> CurveStats:
    """Prepare every curve with data once (see the module docstring).

    ``labels_per_round`` sets one ``b`` for all curves; by default the curves'
    ``labels_per_round`` attribute or each curve's median budget step. With ``common_b``
    (pooled fits) the model data of all curves use the median ``b``, so that parameters mean
    the same for every curve.
    """
    dims = curve_dims(curves)
    coords = {d: curves[d].to_numpy() for d in dims}
    b = _per_curve_b(curves, dims, coords, labels_per_round)
    b_model = float(b.median()) if common_b else None
    labels, datas = [], []
    const: dict[str, list[float]] = {n: [] for n in CONSTANTS}
    for label, sub in iter_curves(curves):
        b_k = float(b.sel(label)) if b_model is None else b_model
        n_test = sub["n_test"].broadcast_like(sub["accuracy"]) if "n_test" in sub else np.inf
        data = model_data(
            sub["budget"].to_numpy(), sub["accuracy"].to_numpy(), b_k, np.asarray(n_test)
        )
        budgets = sub["budget"].to_numpy()
        const["x_first"].append(data["x_first"])
        const["x_mid"].append(data["x_mid"])
        const["first_budget"].append(np.nanmin(budgets))
        const["last_budget"].append(np.nanmax(budgets))
        const["n_test"].append(
            float(np.nanmedian(np.asarray(n_test, dtype=float))) if "n_test" in sub else np.nan
        )
        labels.append(tuple(label[d] for d in dims))
        datas.append(data)
    if not datas:
        raise PalmInputError("no curve has any observed point")
    index = pd.MultiIndex.from_tuples(labels, names=list(dims))
    curve = xr.Coordinates.from_pandas_multiindex(index, "curve")
    constants = xr.Dataset({n: ("curve", np.asarray(v, dtype=float)) for n, v in const.items()})
    return CurveStats(
        dims=dims,
        coords=coords,
        b=b,
        b_model=b_model,
        datas=datas,
        constants=constants.assign_coords(curve),
        falling=decreasing_curves(curves),
    )


def _per_curve_b(curves, dims, coords, value: float | None) -> xr.DataArray:
    """``b`` of every curve: ``value`` for all, or :func:`labels_per_round`'s."""
    if value is None:
        return labels_per_round(curves)
    if not np.isfinite(value) or value <= 0:
        raise PalmInputError(f"labels_per_round must be a positive number, got {value!r}")
    return xr.DataArray(
        np.full(tuple(curves.sizes[d] for d in dims), float(value)),
        dims=dims,
        coords={d: curves[d] for d in dims},
    )


def curve_dims(curves: xr.Dataset) -> tuple[str, ...]:
    """The dims that identify a curve: the id dims except ``seed`` (seeds are replicates)."""
    return tuple(d for d in CURVE_DIMS if d in curves.dims)


def labels_per_round(curves: xr.Dataset) -> xr.DataArray:
    """Labels per round ``b`` of every curve.

    The ``labels_per_round`` attribute when set, otherwise the median positive budget step of
    each curve over its seeds.
    """
    dims = curve_dims(curves)
    if "labels_per_round" in curves.attrs:
        value = float(curves.attrs["labels_per_round"])
        return xr.full_like(curves["budget"].isel(seed=0, step=0, drop=True), value).rename("b")
    steps = curves["budget"].diff("step")
    steps = steps.where(steps > 0)
    return steps.median(("seed", "step"), skipna=True).transpose(*dims).rename("b")


def iter_curves(curves: xr.Dataset) -> Iterator[tuple[dict[str, Any], xr.Dataset]]:
    """Yield ``({dim: label}, curve)`` for every curve with data (dims ``seed, step``)."""
    dims = curve_dims(curves)
    has_data = curves["accuracy"].notnull().any(("seed", "step")).transpose(*dims).to_numpy()
    for index in itertools.product(*(range(curves.sizes[d]) for d in dims)):
        if has_data[index]:
            labels = {d: curves[d].to_numpy()[i].tolist() for d, i in zip(dims, index, strict=True)}
            yield labels, curves.isel(dict(zip(dims, index, strict=True)))


def decreasing_curves(curves: xr.Dataset) -> list[str]:
    """Curves whose seed-mean accuracy falls with the budget (least-squares trend in log budget).

    PALM describes curves that rise towards an asymptote; fitted to a falling curve it still
    extrapolates upward, so such curves deserve a word before sampling.
    """
    found = []
    for labels, sub in iter_curves(curves):
        budget = sub["budget"].to_numpy().ravel()
        acc = sub["accuracy"].to_numpy().ravel()
        keep = np.isfinite(budget) & np.isfinite(acc)
        levels, index = np.unique(budget[keep], return_inverse=True)
        if levels.size < 2:
            continue
        mean = np.bincount(index, weights=acc[keep]) / np.bincount(index)
        slope = np.polyfit(np.log(levels), mean, 1)[0]
        if slope < 0:
            found.append(" ".join(f"{d}={v}" for d, v in labels.items()))
    return found


def model_data(budget: np.ndarray, accuracy: np.ndarray, b: float, n_test: np.ndarray | float):
    """Per-budget sufficient statistics of one curve, fed to the compiled model.

    Replicate seeds at one budget are summarised by their count, mean and sum of squared
    deviations (exact for the Normal seed noise of the model), so the cost of a gradient grows
    with the number of budgets, not with seeds x budgets.
    """
    accuracy = np.asarray(accuracy, dtype=float)
    n_test = np.broadcast_to(np.asarray(n_test, dtype=float), accuracy.shape).ravel()
    budget = np.broadcast_to(np.asarray(budget, dtype=float), accuracy.shape).ravel()
    accuracy = accuracy.ravel()
    keep = np.isfinite(budget) & np.isfinite(accuracy)
    budget, accuracy, n_test = budget[keep], accuracy[keep], n_test[keep]
    levels, index = np.unique(budget, return_inverse=True)
    count = np.bincount(index).astype(float)
    mean = np.bincount(index, weights=accuracy) / count
    sq_dev = np.bincount(index, weights=(accuracy - mean[index]) ** 2)
    n_med = np.array([np.median(n_test[index == i]) for i in range(levels.size)])
    inv_n = np.where(np.isfinite(n_med) & (n_med > 0), 1.0 / n_med, 0.0)
    x = levels / b
    log_x = np.log(x)
    replicated = count > 1
    # seeds that agree exactly agree only to the resolution of the test set: floor the sum of
    # squares there (sd 1 / sqrt(12) test samples, or 1e-4 when n_test is unknown)
    resolution = np.where(inv_n > 0, inv_n**2 / 12, 1e-8)
    sq_dev = np.maximum(sq_dev, (count - 1) * resolution)
    return {
        "x": x,
        "mean_accuracy": mean,
        "n_seeds": count,
        "inv_n_test": inv_n,
        "rep_index": np.flatnonzero(replicated).astype("int64"),
        "rep_sq_dev": sq_dev[replicated],
        "x_first": np.float64(x[0]),
        "x_mid": np.float64(np.exp(0.5 * (log_x[0] + log_x[-1]))),
    }
