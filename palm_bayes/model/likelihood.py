"""The one PALM likelihood and the one predictive draw, shared by every model and query.

Every seed's accuracy at a budget is Normal around the curve ``mu`` with the variance
:func:`seed_variance`. Per budget, the seed mean is Normal with that variance over the number
of seeds, and the replicate seeds' sum of squared deviations is ``seed_var * chi2(n - 1)`` (a
Gamma): the exact sufficient statistics of :func:`palm_bayes.data.prepare.model_data`.
:func:`likelihood_terms` writes that down once (numpy or PyTensor); :func:`palm_likelihood`
adds it to a PyMC model (single curve and pooled), :func:`log_likelihood` evaluates it on
posterior draws (PSIS-LOO), and :func:`predictive_draws` draws one new run from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pymc as pm
from scipy import stats

from palm_bayes.model.curve import backend

__all__ = [
    "seed_variance",
    "likelihood_terms",
    "palm_likelihood",
    "masked_log_likelihood",
    "log_likelihood",
    "predictive_draws",
]


def seed_variance(mu, noise, inv_n, floor):
    """Variance of one seed's accuracy around the curve.

    Binomial test-set noise, quantisation of the test set, seed-to-seed (and model) noise and
    a floor for the precision to which accuracies are reported.
    """
    return mu * (1 - mu) * inv_n + inv_n**2 / 12 + noise**2 + floor**2


def likelihood_terms(mu, noise, n_seeds, inv_n, rep_index, floor) -> dict[str, Any]:
    """Parameters of the two observed distributions (numpy or PyTensor).

    Returns
    -------
    dict
        ``mean_sd`` (sd of the seed mean per budget), ``spread_alpha`` and ``spread_beta``
        (shape and rate of the Gamma of the sum of squares at the replicated budgets
        ``rep_index``).
    """
    xp = backend(mu, noise, n_seeds, inv_n)
    seed_var = seed_variance(mu, noise, inv_n, floor)
    return {
        "mean_sd": xp.sqrt(seed_var / n_seeds),
        "spread_alpha": (n_seeds[rep_index] - 1) / 2,
        "spread_beta": 1 / (2 * seed_var[..., rep_index]),
    }


def palm_likelihood(mu, noise, y, n_seeds, inv_n, rep_index, rep_sq_dev, floor) -> None:
    """Add the likelihood to the PyMC model in context (single curve and pooled models).

    Observed variables ``accuracy`` (seed means) and ``seed_spread`` (sums of squares).
    """
    terms = likelihood_terms(mu, noise, n_seeds, inv_n, rep_index, floor)
    pm.Normal("accuracy", mu=mu, sigma=terms["mean_sd"], observed=y, shape=y.shape)
    pm.Gamma(
        "seed_spread",
        alpha=terms["spread_alpha"],
        beta=terms["spread_beta"],
        observed=rep_sq_dev,
        shape=rep_index.shape,
    )


def masked_log_likelihood(
    mu, noise, y, n_seeds, inv_n, sq_dev, budget_mask, rep_mask, floor
):  # fmt: skip
    """Per-curve log-likelihood of padded ``(curve, budget)`` statistics (PyTensor).

    The same two observed distributions as :func:`palm_likelihood` (seed mean Normal, sum of
    squares Gamma), element by element, summed over the budgets where ``budget_mask`` (seed
    means) and ``rep_mask`` (replicated budgets) are 1. Masked slots must hold finite values.
    """
    import pytensor.tensor as pt

    seed_var = seed_variance(mu, noise, inv_n, floor)
    mean_ll = pm.logp(pm.Normal.dist(mu=mu, sigma=pt.sqrt(seed_var / n_seeds)), y)
    shape = pt.switch(rep_mask > 0, (n_seeds - 1) / 2, 1.0)
    spread_ll = pm.logp(pm.Gamma.dist(alpha=shape, beta=1 / (2 * seed_var)), sq_dev)
    return (budget_mask * mean_ll + rep_mask * spread_ll).sum(axis=-1)


def log_likelihood(
    mu: np.ndarray, noise: np.ndarray, data: Mapping[str, np.ndarray], floor: float
) -> np.ndarray:
    """Numpy log-likelihood per budget of one curve (both terms of a budget summed).

    ``mu`` and ``noise`` broadcast against the budgets of ``data`` (the output of
    :func:`palm_bayes.data.prepare.model_data`), e.g. ``(chain, draw, 1)`` draws.
    """
    terms = likelihood_terms(
        mu, noise, data["n_seeds"], data["inv_n_test"], data["rep_index"], floor
    )
    ll = stats.norm.logpdf(data["mean_accuracy"], loc=mu, scale=terms["mean_sd"])
    rep = data["rep_index"]
    if rep.size:
        ll[..., rep] += stats.gamma.logpdf(
            data["rep_sq_dev"], a=terms["spread_alpha"], scale=1 / terms["spread_beta"]
        )
    return ll


def predictive_draws(acc, noise, n_test, floor: float, rng: np.random.Generator):
    """One new run's accuracy around the curve draws ``acc`` (xarray), clipped to [0, 1].

    ``noise`` and ``n_test`` broadcast against ``acc`` (a missing or non-positive ``n_test``
    drops the test-set terms).
    """
    inv_n = (1.0 / n_test).where(n_test > 0, 0.0).fillna(0.0)
    scale = np.sqrt(seed_variance(acc, noise, inv_n, floor)).transpose(*acc.dims)
    return (acc + scale * rng.standard_normal(size=scale.shape)).clip(0.0, 1.0)
