"""Simulated PALM curves with known parameters (for tests, calibration studies and examples)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from palm_bayes.curve import palm_curve

__all__ = ["simulate_curves"]


def simulate_curves(
    params: Mapping[str, Mapping[str, float]],
    budgets: Sequence[float],
    *,
    seeds: int = 3,
    n_test: int = 2000,
    noise: float = 0.01,
    labels_per_round: float | None = None,
    dataset: str = "simulated",
    rng: np.random.Generator | int | None = 0,
) -> xr.Dataset:
    """Simulate AL curves of several strategies on one dataset.

    Parameters
    ----------
    params : mapping
        ``{strategy: {"A_max": ..., "delta": ..., "alpha": ..., "beta": ...}}``.
    budgets : sequence of float
        Cumulative labels at each round (shared by all strategies and seeds).
    seeds : int
        Replicate runs per strategy.
    n_test : int
        Test-set size: each accuracy is a binomial proportion on ``n_test`` samples around the
        PALM curve shifted by a seed-to-seed Normal term of sd ``noise``.
    labels_per_round : float, optional
        ``b``; defaults to the first budget step.
    rng : numpy Generator or int
        Randomness.

    Returns
    -------
    xarray.Dataset
        Curves in the contract (dims dataset, strategy, embedding, seed, step) with the true
        parameters as ``true_<name>`` variables over ``strategy``.

    Examples
    --------
    >>> ds = simulate_curves({"random": dict(A_max=0.9, delta=0.1, alpha=0.0, beta=1.0)},
    ...                      [100, 200, 300, 400, 500], seeds=2)
    >>> ds.accuracy.shape
    (1, 1, 1, 2, 5)
    """
    rng = np.random.default_rng(rng)
    budgets = np.asarray(budgets, dtype=float)
    if labels_per_round is not None:
        b = float(labels_per_round)
    else:
        b = float(np.diff(budgets)[0]) if budgets.size > 1 else float(budgets[0])
    strategies = list(params)
    acc = np.empty((len(strategies), seeds, budgets.size))
    for i, name in enumerate(strategies):
        mean = palm_curve(budgets, b=b, **params[name])
        shifted = np.clip(mean + rng.normal(0.0, noise, size=(seeds, budgets.size)), 0, 1)
        acc[i] = rng.binomial(n_test, shifted) / n_test
    dims = ("dataset", "strategy", "embedding", "seed", "step")
    ds = xr.Dataset(
        {
            "accuracy": (dims, acc[None, :, None]),
            "budget": (dims, np.broadcast_to(budgets, acc.shape)[None, :, None].copy()),
            "n_test": ((), n_test),
        },
        coords={
            "dataset": [dataset],
            "strategy": strategies,
            "embedding": ["none"],
            "seed": np.arange(seeds),
            "step": np.arange(budgets.size),
        },
        attrs={"labels_per_round": b, "source": "palm_bayes.simulate_curves"},
    )
    for key in ("A_max", "delta", "alpha", "beta"):
        ds[f"true_{key}"] = ("strategy", [float(params[s][key]) for s in strategies])
    return ds
