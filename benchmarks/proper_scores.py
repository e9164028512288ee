"""Proper scores of a predictive distribution for one held-out value: CRPS and log density.

Two ways a method states its forecast: a Gaussian (mean, sd), as the least-squares families of
``curve_families.py`` do, or draws (a posterior predictive sample, as palm_bayes gives).

- CRPS of a Gaussian: the closed form ``sd * (z (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi))``.
- CRPS of draws: ``E|X - y| - E|X - X'| / 2`` over the empirical distribution of the draws
  (``E|X - X'|`` from the sorted draws in O(n log n)); a point mass gives ``|x - y|``.
- Log score of draws: the log of a Gaussian kernel density of the draws at ``y`` (Silverman's
  bandwidth, floored at ``min_bandwidth`` so that near-identical draws do not give an
  unbounded density).

Lower CRPS is better; higher log density is better.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

__all__ = ["crps_draws", "crps_gaussian", "log_score_draws", "log_score_gaussian"]


def crps_gaussian(mean, sd, y) -> np.ndarray:
    """CRPS of N(mean, sd^2) at ``y`` (closed form; arrays broadcast)."""
    mean, sd, y = (np.asarray(v, float) for v in (mean, sd, y))
    z = (y - mean) / sd
    return sd * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / np.sqrt(np.pi))


def log_score_gaussian(mean, sd, y) -> np.ndarray:
    """Log density of N(mean, sd^2) at ``y``."""
    return norm.logpdf(np.asarray(y, float), np.asarray(mean, float), np.asarray(sd, float))


def crps_draws(draws, y: float) -> float:
    """CRPS of the empirical distribution of ``draws`` (1-D, NaNs dropped) at ``y``."""
    x = np.sort(np.asarray(draws, float).ravel())
    x = x[np.isfinite(x)]
    n = x.size
    if n == 0:
        return np.nan
    spread = 2.0 * np.sum((2 * np.arange(1, n + 1) - n - 1) * x) / n**2  # E|X - X'|
    return float(np.mean(np.abs(x - y)) - 0.5 * spread)


def log_score_draws(draws, y: float, min_bandwidth: float = 1e-3) -> float:
    """Log of a Gaussian kernel density of ``draws`` at ``y`` (Silverman bandwidth)."""
    x = np.asarray(draws, float).ravel()
    x = x[np.isfinite(x)]
    n = x.size
    if n == 0:
        return np.nan
    iqr = np.subtract(*np.percentile(x, [75, 25]))
    scale = min(np.std(x), iqr / 1.34) if iqr > 0 else np.std(x)
    h = max(0.9 * scale * n ** (-0.2), min_bandwidth)
    logs = norm.logpdf(y, x, h)
    top = logs.max()
    return float(top + np.log(np.mean(np.exp(logs - top))))
