"""Small helpers shared by the posterior queries: budgets, probabilities, draw summaries."""

from __future__ import annotations

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
    """Median, mean and HDI over chain and draw (NaN curves stay NaN)."""
    import arviz as az

    hdi = az.hdi(draws.to_dataset(name="x"), hdi_prob=hdi_prob, skipna=False)["x"]
    return xr.Dataset(
        {
            "median": draws.median(("chain", "draw")),
            "mean": draws.mean(("chain", "draw")),
            "lower": hdi.sel(hdi="lower", drop=True),
            "upper": hdi.sel(hdi="higher", drop=True),
        }
    )
