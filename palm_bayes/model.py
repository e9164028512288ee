"""The PyMC model of one PALM learning curve, parametrised for clean NUTS sampling.

A short prefix of a learning curve pins down the accuracy and the slope in the middle of the
observed budgets well, and the asymptote badly. Sampling ``A_max, delta, alpha, beta`` directly
gives banana-shaped posteriors (r_hat up to 2.8 and thousands of divergences on real curves), so
the model samples what the data identify and derives the PALM parameters from them:

``mid_accuracy``
    ``A(x_mid)``, the accuracy at the geometric middle ``x_mid`` of the observed ``x = B / b``.
``headroom``
    the share of the headroom ``1 - mid_accuracy`` that is reachable: ``A_max = mid_accuracy +
    headroom * (1 - mid_accuracy)``.
``mid_slope``
    ``dA / dlog B`` at ``x_mid``: the accuracy gained per e-fold of labels.
``offset``
    ``eta = log1p(alpha / x_first)``, so ``alpha = x_first * expm1(eta) > -x_first`` and the curve
    is defined at every observed budget.

With ``g(x) = log(-log(1 - A(x) / A_max)) = log(lambda) + beta * log(x + alpha)`` (the PALM curve
is linear in ``log(x + alpha)`` on this scale) the PALM parameters follow in closed form.
Observations are every seed's accuracy at every budget (replicates of the same curve), with a
Student-t likelihood whose scale combines the binomial test-set noise ``A (1 - A) / n_test`` and a
seed-to-seed term ``noise``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from palm_bayes.errors import PalmInputError

__all__ = ["DEFAULT_PRIORS", "merge_priors", "create_palm_model", "model_data"]

#: Default priors, each a Normal on the unconstrained scale named in the key (``noise`` is the
#: sigma of a HalfNormal). Weakly informative for accuracies in [0, 1]: see the module docstring.
DEFAULT_PRIORS: dict[str, dict[str, float]] = {
    # logit(mid_accuracy): Normal(0, 1.5) spreads mass over the whole of (0, 1).
    "logit_mid_accuracy": {"mu": 0.0, "sigma": 1.5},
    # logit(headroom share): median A_max halfway between the mid accuracy and 1.
    "logit_headroom": {"mu": 0.0, "sigma": 1.5},
    # log(dA / dlog B): median 0.05 accuracy per e-fold of labels, from ~0.002 to ~1 (2 sd).
    "log_mid_slope": {"mu": -3.0, "sigma": 1.5},
    # eta = log1p(alpha / x_first): alpha = 0 at the centre.
    "offset": {"mu": 0.0, "sigma": 1.0},
    # seed-to-seed / model noise in accuracy units (HalfNormal sigma).
    "noise": {"sigma": 0.05},
    # Student-t degrees of freedom of the likelihood (robust to outlying seeds).
    "nu": {"value": 5.0},
    # Model discrepancy beyond the last observed budget (used by forecasts, not by sampling):
    # logit(A_true(B)) = logit(A_palm(B)) + sd * sqrt(log(B / B_last)) * eps, eps ~ N(0, 1),
    # a Brownian motion in log budget. 0.3 was calibrated on LCDB curves (90% interval coverage
    # of 5x extrapolations); set 0 to trust the PALM form exactly.
    "extrapolation": {"sd": 0.3},
}

#: Entries of the prior configuration that are not part of the PyMC model.
FORECAST_ONLY_PRIORS = ("extrapolation",)


def merge_priors(priors: Mapping[str, Mapping[str, float]] | None = None) -> dict:
    """Return ``DEFAULT_PRIORS`` updated with the user's entries (per key, per field).

    Examples
    --------
    >>> merge_priors({"noise": {"sigma": 0.02}})["noise"]
    {'sigma': 0.02}
    """
    merged = {key: dict(value) for key, value in DEFAULT_PRIORS.items()}
    for key, value in (priors or {}).items():
        if key not in merged:
            raise PalmInputError(f"unknown prior {key!r}; known priors: {sorted(merged)}")
        unknown = set(value) - set(merged[key])
        if unknown:
            raise PalmInputError(
                f"prior {key!r} has unknown fields {sorted(unknown)}; it takes {sorted(merged[key])}"
            )
        merged[key].update({field: float(v) for field, v in value.items()})
    return merged


def model_data(budget: np.ndarray, accuracy: np.ndarray, b: float, n_test: np.ndarray | float):
    """Arrays fed to the model for one curve (flattened over seeds, NaNs dropped)."""
    budget = np.asarray(budget, dtype=float).ravel()
    accuracy = np.asarray(accuracy, dtype=float).ravel()
    n_test = np.broadcast_to(np.asarray(n_test, dtype=float), np.shape(accuracy)).ravel()
    keep = np.isfinite(budget) & np.isfinite(accuracy)
    x = budget[keep] / b
    log_x = np.log(np.unique(x))
    inv_n = np.where(np.isfinite(n_test[keep]) & (n_test[keep] > 0), 1.0 / n_test[keep], 0.0)
    return {
        "x": x,
        "y": accuracy[keep],
        "inv_n_test": inv_n,
        "x_first": np.float64(np.exp(log_x[0])),
        "x_mid": np.float64(np.exp(0.5 * (log_x[0] + log_x[-1]))),
    }


def create_palm_model(data: Mapping[str, Any], priors: Mapping | None = None) -> pm.Model:
    """Build the PyMC model of one PALM curve.

    Parameters
    ----------
    data : mapping
        Output of :func:`model_data`: ``x`` (budget / b), ``y`` (accuracy), ``inv_n_test``,
        ``x_first``, ``x_mid``. They become ``pm.Data`` so one compiled model serves every curve.
    priors : mapping, optional
        Overrides of :data:`DEFAULT_PRIORS`.

    Returns
    -------
    pymc.Model
        Free variables ``logit_mid_accuracy, logit_headroom, log_mid_slope, offset, noise``;
        deterministics ``A_max, delta, log_lambda, alpha, beta, mid_accuracy, mid_slope``.
    """
    p = merge_priors(priors)
    with pm.Model() as model:
        x = pm.Data("x", data["x"])
        y = pm.Data("y", data["y"])
        inv_n = pm.Data("inv_n_test", data["inv_n_test"])
        x_first = pm.Data("x_first", data["x_first"])
        x_mid = pm.Data("x_mid", data["x_mid"])

        z_mid = pm.Normal("logit_mid_accuracy", **p["logit_mid_accuracy"])
        z_head = pm.Normal("logit_headroom", **p["logit_headroom"])
        log_slope = pm.Normal("log_mid_slope", **p["log_mid_slope"])
        eta = pm.Normal("offset", **p["offset"])
        noise = pm.HalfNormal("noise", sigma=p["noise"]["sigma"])

        mid_acc = pm.Deterministic("mid_accuracy", pm.math.sigmoid(z_mid))
        a_max = pm.Deterministic("A_max", mid_acc + pm.math.sigmoid(z_head) * (1 - mid_acc))
        pm.Deterministic("mid_slope", pt.exp(log_slope))
        alpha = pm.Deterministic("alpha", x_first * pt.expm1(eta))

        # share of A_max reached at x_mid, on the complementary log-log scale
        log_q = pt.log(mid_acc) - pt.log(a_max)  # log(q), q = mid_acc / A_max < 1
        log1m_q = pt.log1mexp(log_q)  # log(1 - q)
        g_mid = pt.log(-log1m_q)
        # dA/dlog x = A_max (1 - q) (-log(1 - q)) * beta * x / (x + alpha)
        log_shifted_mid = pt.log(x_mid + alpha)
        log_beta = log_slope - pt.log(a_max) - log1m_q - g_mid + log_shifted_mid - pt.log(x_mid)
        beta = pm.Deterministic("beta", pt.exp(log_beta))
        log_lam = pm.Deterministic("log_lambda", g_mid - beta * log_shifted_mid)
        pm.Deterministic("delta", -pt.expm1(-pt.exp(log_lam)))

        log_z = log_lam + beta * pt.log(x + alpha)
        mu = a_max * -pt.expm1(-pt.exp(log_z))
        scale = pt.sqrt(mu * (1 - mu) * inv_n + noise**2)
        pm.StudentT("accuracy", nu=p["nu"]["value"], mu=mu, sigma=scale, observed=y, shape=x.shape)
    return model
