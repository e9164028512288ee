"""Figures: observed curves with posterior forecast bands, and P(A beats B) against budget."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from palm_bayes.data.prepare import iter_curves
from palm_bayes.model.curve import palm_curve

if TYPE_CHECKING:
    from palm_bayes.palm_fit import PalmFit

__all__ = ["plot_fit", "plot_prob_better", "new_figure", "log_budget_axis"]


def new_figure(**options: Any) -> Figure:
    """A figure outside pyplot, drawn by Agg: the user's backend and open figures stay as they are.

    ``options`` go to :class:`matplotlib.figure.Figure` (``figsize``, ``layout``, ...).
    """
    fig = Figure(**options)
    FigureCanvasAgg(fig)
    return fig


def plot_fit(
    fit: PalmFit,
    *,
    budgets: Sequence[float] | None = None,
    hdi_prob: float = 0.9,
    lsq: xr.Dataset | None = None,
    selection: Mapping[str, Any] | None = None,
    truth: xr.Dataset | None = None,
) -> Figure:
    """One panel per curve: seeds, seed mean, posterior median and HDI band, least squares.

    Parameters
    ----------
    fit : PalmFit
    budgets : sequence of float, optional
        Forecast grid (default: log-spaced from the first observed budget to 3x the last).
    hdi_prob : float
        Probability of the band.
    lsq : xarray.Dataset, optional
        :func:`palm_bayes.fit_least_squares` output, drawn dashed.
    selection : mapping, optional
        Only curves with these labels, e.g. ``{"dataset": "cifar10"}``.
    truth : xarray.Dataset, optional
        Full curves (e.g. the held-out rest of a pilot) drawn as hollow markers.
    """
    curves = fit.curves
    items = [
        (labels, sub)
        for labels, sub in iter_curves(curves)
        if all(labels.get(k) == v for k, v in (selection or {}).items())
    ]
    if not items:
        raise ValueError("no curve matches the selection")
    n = len(items)
    cols = min(3, n)
    rows = int(np.ceil(n / cols))
    fig = new_figure(figsize=(4.6 * cols, 3.4 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    const = fit.idata.constant_data
    for ax, (labels, sub) in zip(axes.ravel(), items, strict=False):
        first = float(const["first_budget"].sel(labels))
        last = float(const["last_budget"].sel(labels))
        end = 3 * last
        if truth is not None:
            end = max(end, float(truth.sel(labels)["budget"].max()))
        grid = np.asarray(budgets) if budgets is not None else np.geomspace(first, end, 60)
        fc = fit.select(labels).forecast(grid, hdi_prob=hdi_prob).sel(labels).squeeze()
        _draw_observed(ax, sub, None if truth is None else truth.sel(labels))
        _draw_forecast(ax, grid, fc, hdi_prob, None if lsq is None else lsq.sel(labels))
        ax.axvline(last, color="0.5", ls=":", lw=1)
        log_budget_axis(ax)
        ax.set_title(
            " / ".join(str(v) for v in labels.values() if v not in ("default", "none")), fontsize=9
        )
        ax.set_xlabel("labels (budget)")
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    axes.ravel()[0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def _draw_observed(ax: Any, sub: xr.Dataset, full: xr.Dataset | None) -> None:
    """The seeds and their mean of one curve, and its held-out rest when given."""
    if full is not None:
        ax.plot(
            full["budget"].max("seed"),
            full["accuracy"].mean("seed"),
            "o",
            mfc="none",
            color="0.35",
            ms=4,
            label="held out (seed mean)",
        )
    ax.plot(
        sub["budget"].values.ravel(),
        sub["accuracy"].values.ravel(),
        ".",
        color="tab:blue",
        alpha=0.12,
        ms=3,
    )
    ax.plot(
        sub["budget"].max("seed"),
        sub["accuracy"].mean("seed"),
        "o",
        color="tab:blue",
        ms=4,
        label="observed (seed mean)",
    )


def _draw_forecast(
    ax: Any, grid: np.ndarray, fc: xr.Dataset, hdi_prob: float, lsq: xr.Dataset | None
) -> None:
    """The posterior median and HDI band on ``grid``, and the least-squares curve when given."""
    ax.fill_between(
        grid, fc["lower"], fc["upper"], color="tab:orange", alpha=0.3, label=f"{hdi_prob:.0%} HDI"
    )
    ax.plot(grid, fc["median"], color="tab:orange", label="posterior median")
    if lsq is not None and bool(lsq["success"]):
        params = [float(lsq[k]) for k in ("A_max", "delta", "alpha", "beta", "b")]
        ax.plot(grid, palm_curve(grid, *params), "--", color="tab:green", label="least squares")


def plot_prob_better(
    fit: PalmFit,
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    budgets: Sequence[float],
) -> Figure:
    """P(a beats b) against budget, one line per combination of the remaining dims."""
    p = fit.prob_better(a, b, list(budgets))
    others = [d for d in p.dims if d != "budget"]
    stacked = p.stack(curve=others) if others else p.expand_dims(curve=[""])
    named = [d for d in others if p.sizes[d] > 1]  # not a lone embedding=none in every label
    fig = new_figure(figsize=(6, 3.6))
    ax = fig.subplots()
    for i in range(stacked.sizes["curve"]):
        line = stacked.isel(curve=i)
        label = " / ".join(str(line[d].item()) for d in named) if named else None
        ax.plot(line["budget"], line, marker=".", label=label)
    ax.axhline(0.5, color="0.5", ls=":")
    log_budget_axis(ax)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("labels (budget)")
    ax.set_ylabel(f"P({_fmt(a)} beats {_fmt(b)})")
    if named:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _fmt(selection: Mapping[str, Any]) -> str:
    return ", ".join(str(v) for v in selection.values())


def log_budget_axis(ax) -> None:
    """Log-scaled budget axis with plain numbers and no crowded minor labels."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    ax.set_xscale("log")
    low, high = ax.get_xlim()
    wide = high / max(low, 1e-12) > 300  # 1-2-5 labels would collide over many decades
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0,) if wide else (1.0, 2.0, 5.0)))
    formatter = ScalarFormatter()
    formatter.set_scientific(False)
    ax.xaxis.set_major_formatter(formatter)
    ax.xaxis.set_minor_formatter(NullFormatter())
