"""How the discrepancies of two curves on one dataset go together: the prior's ``rho``.

:func:`pairwise_correlation` (what :func:`palm_bayes.learn_prior` uses) picks the correlation
whose P(A beats B) best predicts which of two library pilots is ahead later;
:func:`residual_correlation` is the Pearson correlation of their residuals (kept for
inspection). Both read forecast cases (:func:`palm_bayes.learn.prior.forecast_cases`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from palm_bayes.priors.curve_prior import CurvePrior

__all__ = ["RHO_GRID", "mean_discrepancy", "pairwise_correlation", "residual_correlation"]

#: Correlations tried by :func:`pairwise_correlation` (finer near 1, where LCDB's optimum is).
RHO_GRID = np.r_[np.linspace(0.0, 0.9, 10), 0.92, 0.94, 0.96, 0.98, 0.99]


def mean_discrepancy(
    cases: pd.DataFrame, prior: CurvePrior, *, seed_term: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Drift and scale of ``prior`` (posterior mean coefficients) at every forecast case.

    ``seed_term=False`` leaves out the seed-count factor of the scale.
    """
    w, a = prior.drift.mean(0), prior.scale.mean(0)
    zs, zl = prior.standardise(cases)
    zs, zl = np.asarray(zs, dtype=float), np.asarray(zl, dtype=float)
    d = np.log(cases["budget"] / cases["last_budget"]).to_numpy()
    gain = (cases["med"] - cases["med_last"]).to_numpy()
    drift = d * (w[0] + w[1] * zs + w[2] * zl) + w[3] * gain
    log_scale = a[0] + a[2] * zl + a[3] * zs
    if seed_term and prior.seed_scale is not None and "n_seeds" in cases:
        ratio = np.log(cases["n_seeds"].to_numpy() / prior.seed_ref)
        log_scale = log_scale + prior.seed_scale.mean() * ratio
    return drift, np.exp(log_scale) * d ** a[1]


def residual_correlation(
    cases: pd.DataFrame, prior: CurvePrior, n_boot: int, seed: int
) -> np.ndarray:
    """Bootstrap draws (over datasets) of the correlation of two curves' shocks on one dataset.

    Each pilot's standardised residual (averaged over its future budgets) under the posterior
    mean coefficients is paired with those of the other pilots of the same dataset and cut.
    """
    drift, scale = mean_discrepancy(cases, prior)
    z = (cases["y"] - cases["med"] - drift) / np.sqrt(cases["psd"] ** 2 + scale**2)
    table = cases.assign(z=z.clip(-5, 5))
    per_pilot = table.groupby(["dataset", "pilot_dataset", "strategy"], as_index=False)["z"].mean()
    pairs = per_pilot.merge(per_pilot, on=["dataset", "pilot_dataset"], suffixes=("_a", "_b"))
    pairs = pairs[pairs["strategy_a"] < pairs["strategy_b"]]
    if pairs.empty:
        return np.zeros(n_boot)
    datasets = pairs["dataset"].unique()
    groups = {k: g for k, g in pairs.groupby("dataset")}
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    for i in range(n_boot):
        pick = pd.concat([groups[k] for k in rng.choice(datasets, datasets.size)])
        num = (pick["z_a"] * pick["z_b"]).sum()
        den = np.sqrt((pick["z_a"] ** 2).sum() * (pick["z_b"] ** 2).sum())
        out[i] = num / den if den > 0 else 0.0
    return np.clip(out, 0.0, 0.95)


def pairwise_correlation(
    cases: pd.DataFrame,
    prior: CurvePrior,
    n_boot: int,
    seed: int,
    grid: np.ndarray | None = None,
) -> np.ndarray:
    """Bootstrap draws (over datasets) of the shock correlation that best tells two curves apart.

    For every two pilots of one dataset and cut, at every future budget they share, the
    probability that the first is ahead follows from the two forecasts (posterior median plus
    drift, posterior spread and discrepancy scale) and the correlation of their shocks; the
    correlation on ``grid`` with the lowest Brier score over the resampled datasets is kept
    (each pair of pilots weighted as one observation). The Pearson correlation of the residuals
    (:func:`residual_correlation`) is driven by the few pairs that part widely and leaves most
    comparisons under-confident; this asks the question the comparisons answer.
    """
    from scipy.special import ndtr

    grid = RHO_GRID if grid is None else np.asarray(grid, dtype=float)
    drift, scale = mean_discrepancy(cases, prior)
    table = cases.assign(mean=cases["med"] + drift, s=scale)
    cols = ["dataset", "pilot_dataset", "budget", "strategy", "y", "mean", "s", "psd"]
    pairs = table[cols].merge(
        table[cols], on=["dataset", "pilot_dataset", "budget"], suffixes=("_a", "_b")
    )
    pairs = pairs[(pairs["strategy_a"] < pairs["strategy_b"]) & (pairs["y_a"] != pairs["y_b"])]
    if pairs.empty:
        return np.zeros(n_boot)
    won = (pairs["y_a"] > pairs["y_b"]).to_numpy(float)
    gap = (pairs["mean_a"] - pairs["mean_b"]).to_numpy()
    sa, sb = pairs["s_a"].to_numpy(), pairs["s_b"].to_numpy()
    base = pairs["psd_a"].to_numpy() ** 2 + pairs["psd_b"].to_numpy() ** 2 + sa**2 + sb**2
    var = np.maximum(base[:, None] - 2 * grid[None, :] * (sa * sb)[:, None], 1e-12)
    loss = (ndtr(gap[:, None] / np.sqrt(var)) - won[:, None]) ** 2
    key = pairs["pilot_dataset"] + "|" + pairs["strategy_a"] + "|" + pairs["strategy_b"]
    weight = 1.0 / key.map(key.value_counts()).to_numpy()
    per_dataset = pd.DataFrame(loss * weight[:, None]).groupby(pairs["dataset"].to_numpy()).sum()
    rng = np.random.default_rng(seed)
    names = per_dataset.index.to_numpy()
    values = per_dataset.to_numpy()
    draws = np.empty(n_boot)
    for i in range(n_boot):
        pick = rng.integers(0, names.size, names.size)
        draws[i] = grid[np.argmin(values[pick].sum(0))]
    return draws
