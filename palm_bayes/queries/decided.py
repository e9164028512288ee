"""When a comparison is decided: probabilities outside the undecided band, and up to which budget.

A probability that ``A`` beats ``B`` between 0.2 and 0.8 (:data:`UNDECIDED_BAND`) is reported
as *undecided*: on curves whose rankings change after the pilot, answers in this band were right
little more often than a coin, and calling them decisions invites acting on noise.
:func:`mark_undecided` adds a boolean ``undecided`` coordinate to a probability (what
``prob_better`` and ``win_matrix`` return); :func:`decided_span` turns probabilities over a grid of
budgets into the largest budget up to which a comparison stays decided.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["UNDECIDED_BAND", "decided_span", "is_undecided", "mark_undecided"]

#: Probabilities in ``[low, high]`` are undecided.
UNDECIDED_BAND = (0.2, 0.8)


def is_undecided(p: xr.DataArray | np.ndarray | float) -> xr.DataArray | np.ndarray | bool:
    """True where ``p`` lies in :data:`UNDECIDED_BAND` (False for NaN).

    Examples
    --------
    >>> bool(is_undecided(0.75)), bool(is_undecided(0.85))
    (True, False)
    """
    low, high = UNDECIDED_BAND
    return (p >= low) & (p <= high)


def mark_undecided(p: xr.DataArray) -> xr.DataArray:
    """``p`` with a boolean coordinate ``undecided`` over its dims (see :func:`is_undecided`)."""
    marked = p.assign_coords(undecided=(p.dims, np.asarray(is_undecided(p.to_numpy()))))
    marked.attrs["undecided_band"] = list(UNDECIDED_BAND)
    return marked


def decided_span(p: xr.DataArray, dim: str = "budget") -> xr.DataArray:
    """The largest budget up to which ``p`` (over an increasing grid ``dim``) stays decided.

    Scanning ``dim`` upward from its first value, the answer is the last budget before the
    first undecided (or missing) probability: NaN when the comparison is already undecided at
    the first budget, the grid's last budget when it is decided all the way (the attribute
    ``horizon`` gives it, so that a reader can tell "decided up to the horizon" apart).

    Examples
    --------
    >>> p = xr.DataArray([0.95, 0.9, 0.7, 0.95], dims="budget", coords={"budget": [1, 2, 4, 8]})
    >>> float(decided_span(p))
    2.0
    """
    grid = p[dim].to_numpy().astype(float)
    bad = (is_undecided(p) | p.isnull()).transpose(..., dim).to_numpy()
    first = np.where(bad.any(axis=-1), bad.argmax(axis=-1), grid.size)
    span = np.where(first > 0, grid[np.maximum(first - 1, 0)], np.nan)
    dims = [d for d in p.dims if d != dim]
    out = xr.DataArray(span, dims=dims, coords={d: p[d] for d in dims if d in p.coords})
    out.attrs["horizon"] = float(grid[-1])
    return out.rename("decided_up_to")
