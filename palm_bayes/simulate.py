"""Simulated PALM curves with known parameters (for tests, calibration studies and examples)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from palm_bayes.curve import palm_curve

__all__ = ["simulate_curves", "simulate_hierarchy"]


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


def simulate_hierarchy(
    n_datasets: int,
    strategies: Sequence[str],
    budgets: Sequence[float],
    *,
    mu: Sequence[float] = (0.8, 0.5, -2.5, 0.0),
    sigma_strategy: Sequence[float] = (0.3, 0.4, 0.2, 0.1),
    sigma_dataset: Sequence[float] = (0.6, 0.5, 0.2, 0.1),
    sigma_curve: Sequence[float] = (0.1, 0.2, 0.1, 0.05),
    seeds: int = 3,
    n_test: int = 2000,
    noise: float = 0.01,
    rng: np.random.Generator | int | None = 0,
) -> xr.Dataset:
    """Simulate curves of several strategies on several datasets from a crossed hierarchy.

    The unconstrained parameters of :mod:`palm_bayes.hierarchy` (``logit_ref_accuracy,
    logit_headroom, log_ref_slope, offset``) are ``mu + strategy effect + dataset effect +
    curve deviation``, each effect Normal with the given per-parameter scales; ``b`` is the
    first budget step and the reference budget the geometric middle of ``budgets``.

    Returns
    -------
    xarray.Dataset
        Curves (dims dataset, strategy, embedding, seed, step) with ``true_A_max, true_delta,
        true_alpha, true_beta`` over ``(dataset, strategy)``, ``true_theta`` over ``(dataset,
        strategy, param)`` and the true ``effect_strategy``, ``effect_dataset`` and ``mu``.
    """
    from palm_bayes.hierarchy import PARAMS, palm_from_theta

    rng = np.random.default_rng(rng)
    budgets = np.asarray(budgets, dtype=float)
    b = float(np.diff(budgets)[0])
    x = budgets / b
    x_ref = float(np.exp(0.5 * (np.log(x[0]) + np.log(x[-1]))))
    strategies = list(strategies)
    eff_s = rng.normal(size=(len(strategies), 4)) * np.asarray(sigma_strategy)
    eff_d = rng.normal(size=(n_datasets, 4)) * np.asarray(sigma_dataset)
    dev = rng.normal(size=(n_datasets, len(strategies), 4)) * np.asarray(sigma_curve)
    theta = np.asarray(mu) + eff_s[None] + eff_d[:, None] + dev
    truth = palm_from_theta(theta, x[0], x_ref)
    truth = {k: truth[k] for k in ("A_max", "delta", "alpha", "beta")}
    parts = []
    for d in range(n_datasets):
        params = {
            s: {k: float(v[d, i]) for k, v in truth.items()} for i, s in enumerate(strategies)
        }
        parts.append(
            simulate_curves(
                params,
                budgets,
                seeds=seeds,
                n_test=n_test,
                noise=noise,
                labels_per_round=b,
                dataset=f"d{d:02d}",
                rng=rng,
            ).drop_vars([f"true_{k}" for k in truth])
        )
    ds = xr.concat(parts, "dataset", data_vars="all", coords="minimal", join="outer")
    ds["n_test"] = ((), n_test)
    ds.attrs = parts[0].attrs | {"source": "palm_bayes.simulate_hierarchy"}
    for key, value in truth.items():
        ds[f"true_{key}"] = (("dataset", "strategy"), value)
    ds["true_theta"] = (("dataset", "strategy", "param"), theta)
    ds["true_effect_strategy"] = (("strategy", "param"), eff_s)
    ds["true_effect_dataset"] = (("dataset", "param"), eff_d)
    ds["true_mu"] = (("param",), np.asarray(mu, dtype=float))
    return ds.assign_coords(param=list(PARAMS))
