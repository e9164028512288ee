"""Helpers the benchmark scripts share: interval coverage, prefix cuts, table printing.

The scripts run as ``python benchmarks/<name>.py``, which puts this folder first on
``sys.path``: ``from _common import ...`` then works without any path edits.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from palm_bayes.data.prepare import iter_curves

__all__ = ["covers", "in_prefix", "print_table", "split_curves"]


def covers(lower: Any, truth: Any, upper: Any) -> Any:
    """Elementwise ``lower <= truth <= upper`` (False where any side is NaN).

    Works on numbers, numpy arrays, pandas Series and xarray objects (broadcast by the
    library's rules); the share of True values is the interval's coverage.
    """
    return (lower <= truth) & (truth <= upper)


def in_prefix(budget: Any, largest: Any, prefix: float) -> Any:
    """The budgets a forecaster may see: those ``<= prefix * largest`` (the prefix cut)."""
    return budget <= prefix * largest


def split_curves(curves: xr.Dataset, prefix: float) -> tuple[xr.Dataset, pd.DataFrame]:
    """The training prefix of every curve, and per-curve truths.

    ``train`` keeps the points with budget ``<= prefix * largest budget`` of their curve. The
    truth table has one row per curve: its largest budget, the seed-mean accuracy there
    (``truth``), the last seed mean in the prefix (``last``), the prefix length
    (``n_prefix``), and a labels-needed target: ``tau``, the seed mean at the budget nearest
    half the largest, and ``true_labels``, the first budget whose seed mean reaches it.
    """
    largest = curves["budget"].max(("seed", "step"))
    train = curves.where(in_prefix(curves["budget"], largest, prefix))
    train["n_test"] = curves["n_test"]
    rows = []
    for labels, sub in iter_curves(curves):
        mean = sub["accuracy"].mean("seed")
        budgets = sub["budget"].max("seed")
        frame = pd.DataFrame({"budget": budgets.values, "acc": mean.values}).dropna()
        bmax = frame["budget"].max()
        pre = frame[in_prefix(frame["budget"], bmax, prefix)]
        half = frame.iloc[(frame["budget"] - bmax / 2).abs().argmin()]
        # a target of exactly 0 or 1 has no labels-needed answer: leave those curves out of it
        usable = 0 < half["acc"] < 1
        reached = frame[frame["acc"] >= half["acc"]]["budget"].min() if usable else np.nan
        rows.append(
            labels
            | {
                "largest": bmax,
                "truth": frame[frame["budget"] == bmax]["acc"].iloc[0],
                "last": pre["acc"].iloc[-1] if len(pre) else np.nan,
                "n_prefix": len(pre),
                "tau": half["acc"] if usable else np.nan,
                "true_labels": reached,
            }
        )
    return train, pd.DataFrame(rows)


def print_table(frame: pd.DataFrame | pd.Series, digits: int | None = 3, **kwargs: Any) -> None:
    """Print a result table rounded to ``digits`` (None: as is), 200 characters wide."""
    pd.set_option("display.width", 200)
    print((frame if digits is None else frame.round(digits)).to_string(**kwargs))
