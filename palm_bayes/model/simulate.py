"""Simulated PALM curves with known parameters (for tests, calibration studies and examples)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from palm_bayes.model.curve import palm_curve

__all__ = ["simulate_curves", "simulate_hierarchy", "simulate_phase_records"]


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

    The unconstrained parameters of :mod:`palm_bayes.inference.pooled` (``logit_ref_accuracy,
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
    from palm_bayes.model.single import PARAMS, palm_from_theta

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


def simulate_phase_records(
    boundaries: Sequence[float] = (150.0, 700.0),
    *,
    strategies: int = 3,
    seeds: int = 5,
    budgets: Sequence[float] | None = None,
    noise: float = 0.01,
    effect: float = 0.04,
    rng: np.random.Generator | int | None = 0,
):
    """Simulate AL records whose risk follows the proxies with known phase boundaries.

    Each strategy's six proxies (named as :data:`palm_bayes.data.contract.PROXIES`) are smooth
    functions of log budget with a strategy-specific rate plus a little noise; inside each
    phase, ``risk`` is linear in the proxies (standardised over all records) with coefficients
    of size ``effect`` that change at every boundary, levelled so that the mean risk is
    continuous there (curves bend, they do not jump); accuracies get seed noise ``noise``.

    Returns
    -------
    pandas.DataFrame
        Long records ``strategy, seed, budget, accuracy, <proxies>``; the true boundaries are
        in ``attrs["true_boundaries"]``.
    """
    import pandas as pd

    from palm_bayes.data.contract import PROXIES

    rng = np.random.default_rng(rng)
    budgets = np.geomspace(20, 3000, 32) if budgets is None else np.asarray(budgets, float)
    x = np.log(budgets)
    u = (x - x.min()) / (x.max() - x.min())
    rows = []
    rates = rng.uniform(0.6, 1.6, size=(strategies, len(PROXIES)))
    shapes = [
        lambda t, r: np.exp(-2.5 * r * t),  # risk reduction fades
        lambda t, r: 0.3 * np.exp(-3 * r * t),  # label discrepancy
        lambda t, r: 0.5 / (1 + 4 * r * t),  # feature discrepancy
        lambda t, r: 0.4 * np.exp(-1.5 * r * t) + 0.05 * r,  # geometric coverage
        lambda t, r: 5 + 10 * r * t,  # model complexity grows
        lambda t, r: np.sqrt(2 * np.log(4 / 0.05) / np.exp(t * (x.max() - x.min()) + x.min())),
    ]
    proxy = np.stack(
        [
            np.stack([f(u, rates[s, j]) for j, f in enumerate(shapes)], axis=-1)
            for s in range(strategies)
        ]
    )  # (strategy, budget, proxy)
    flat = proxy.reshape(-1, len(PROXIES))
    z = ((flat - flat.mean(0)) / flat.std(0, ddof=1)).reshape(proxy.shape)
    cuts = np.log(np.asarray(boundaries, float))
    segment = np.searchsorted(cuts, x, side="right")
    coef = rng.normal(0.0, effect, size=(len(cuts) + 1, len(PROXIES)))
    coef[:, -1] += 3 * effect  # risk falls as the confidence term shrinks
    # levels make the strategies' mean risk continuous at every boundary (real curves bend,
    # they do not jump): only the way risk follows the proxies changes
    level = np.full(len(cuts) + 1, 0.25)
    mean_z = z.mean(axis=0)  # (budget, proxy)
    for c, cut in enumerate(cuts):
        zc = np.array([np.interp(cut, x, mean_z[:, j]) for j in range(len(PROXIES))])
        level[c + 1] = level[c] + zc @ (coef[c] - coef[c + 1])
    risk = level[segment][None] + np.einsum("sbp,bp->sb", z, coef[segment])
    for s in range(strategies):
        for seed in range(seeds):
            jitter = proxy[s] * (1 + rng.normal(0, 0.01, size=proxy[s].shape))
            acc = np.clip(1 - risk[s] + rng.normal(0, noise, size=len(x)), 0.0, 1.0)
            for i, budget in enumerate(budgets):
                rows.append(
                    {"strategy": f"s{s}", "seed": seed, "budget": float(budget), "accuracy": acc[i]}
                    | dict(zip(PROXIES, jitter[i], strict=True))
                )
    frame = pd.DataFrame(rows)
    frame.attrs["true_boundaries"] = [float(b) for b in boundaries]
    return frame
