"""Small helpers shared by the posterior queries: budgets, probabilities, draw summaries."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import xarray as xr

from palm_bayes.errors import PalmInputError

__all__ = ["as_budget", "check_prob", "summarise_draws"]


def as_budget(budgets: Any) -> xr.DataArray:
    """Budgets as a DataArray along ``budget`` (its own coordinate)."""
    if isinstance(budgets, xr.DataArray) and "budget" in budgets.dims:
        values = budgets.to_numpy()
    else:
        values = np.atleast_1d(np.asarray(budgets, dtype=float))
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or values.size == 0:
        raise PalmInputError("budgets must be a number or a 1-D sequence of numbers")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise PalmInputError(f"budgets must be finite and non-negative, got {values.tolist()}")
    return xr.DataArray(values, dims="budget", coords={"budget": values})


def check_prob(value: float, name: str) -> None:
    """A one-line error unless ``0 < value < 1``."""
    if not 0 < value < 1:
        raise PalmInputError(f"{name} must lie in (0, 1), got {value!r}")


def summarise_draws(draws: xr.DataArray, hdi_prob: float) -> xr.Dataset:
    """Median, mean and HDI over chain and draw (NaN curves stay NaN).

    One sort per cell gives the median (NaN skipped, as xarray's) and the HDI (arviz's
    ``hdi`` with ``skipna=False``: the narrowest interval holding ``floor(hdi_prob * n)``
    further sorted draws), with the values those functions give.
    """
    rest = [d for d in draws.dims if d not in ("chain", "draw")]
    n = draws.sizes["chain"] * draws.sizes["draw"]
    ordered = np.sort(draws.transpose(*rest, "chain", "draw").to_numpy().reshape(-1, n), axis=-1)
    middle = [n // 2 - 1, n // 2] if n % 2 == 0 else [n // 2]
    median = np.mean(ordered[:, middle], axis=-1)
    nan = np.isnan(ordered[:, -1])  # NaN sorts last
    if nan.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells: NaN
            median[nan] = np.nanmedian(ordered[nan], axis=-1)
    inc = int(np.floor(hdi_prob * n))
    if n - inc == 0:
        raise ValueError("Too few elements for interval calculation. ")
    width = np.subtract(ordered[:, inc:], ordered[:, : n - inc], dtype=np.float64)
    low = np.argmin(width, axis=-1)[:, None]
    lower = np.take_along_axis(ordered, low, -1)[:, 0]
    upper = np.take_along_axis(ordered, low + inc, -1)[:, 0]
    cell = draws.isel(chain=0, draw=0, drop=True)

    def like_cell(values: np.ndarray) -> xr.DataArray:
        return xr.DataArray(values.reshape(cell.shape), dims=cell.dims, coords=cell.coords)

    return xr.Dataset(
        {
            "median": like_cell(median),
            "mean": draws.mean(("chain", "draw")),
            "lower": like_cell(lower),
            "upper": like_cell(upper),
        }
    )
