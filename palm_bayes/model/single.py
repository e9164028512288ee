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
Every seed's accuracy at a budget is a replicate measurement of the same curve, Normal around
``A(B)`` with variance ``A (1 - A) / n_test + 1 / (12 n_test^2) + noise^2`` (binomial test-set
noise, quantisation, seed-to-seed variation). The model uses the exact sufficient statistics of
that (per-budget seed mean and sum of squares), so its cost grows with budgets, not seeds.

The model is only trusted inside the observed budgets: forecasts beyond the last one add the
``extrapolation`` discrepancy (see :meth:`palm_bayes.PalmFit.forecast_draws`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pymc as pm
import xarray as xr

from palm_bayes.errors import PalmInputError
from palm_bayes.model.curve import backend
from palm_bayes.model.likelihood import palm_likelihood

__all__ = [
    "DEFAULT_PRIORS",
    "default_priors",
    "merge_priors",
    "priors_to_json",
    "is_prior_object",
    "SAMPLED_PRIORS",
    "sampled_variable",
    "create_palm_model",
    "palm_mean",
]

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
    # seed-to-seed / model noise in accuracy units (HalfNormal sigma), plus a floor: reported
    # accuracies are never exact (a noiseless curve would otherwise pin the noise at 0 and the
    # posterior to a needle that NUTS crawls along)
    "noise": {"sigma": 0.05, "floor": 0.001},
    # Model discrepancy beyond the last observed budget (used by forecasts, not by sampling):
    # logit(A_true(B)) = logit(A_palm(B)) + sd * sqrt(log(B / B_last)) * eps, eps ~ N(0, 1),
    # a Brownian motion in log budget. 0.3 was calibrated on LCDB curves (90% interval coverage
    # of 5x extrapolations); set 0 to trust the PALM form exactly.
    "extrapolation": {"sd": 0.3},
}


def default_priors() -> dict[str, dict[str, float]]:
    """A copy of :data:`DEFAULT_PRIORS` to change and pass as ``priors=`` (the defaults stay).

    Examples
    --------
    >>> priors = default_priors()
    >>> priors["noise"]["sigma"] = 0.02
    >>> DEFAULT_PRIORS["noise"]["sigma"]
    0.05
    """
    return copy.deepcopy(DEFAULT_PRIORS)


#: Entries of the prior configuration that are not part of the PyMC model.
FORECAST_ONLY_PRIORS = ("extrapolation",)


#: The sampled variables of the independent model: their priors may be ``Prior`` objects.
SAMPLED_PRIORS = ("logit_mid_accuracy", "logit_headroom", "log_mid_slope", "offset", "noise")


def is_prior_object(value: Any) -> bool:
    """Whether ``value`` is a ``pymc_extras.prior.Prior`` (or anything that behaves like one)."""
    return callable(getattr(value, "create_variable", None)) and callable(
        getattr(value, "to_dict", None)
    )


def merge_priors(
    priors: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Mapping[str, float]] | None = None,
) -> dict:
    """Return ``defaults`` (``DEFAULT_PRIORS``) updated with the user's entries (per field).

    An entry of a sampled variable (:data:`SAMPLED_PRIORS`) of the independent model may also
    be a :class:`pymc_extras.prior.Prior`, which replaces the default family, e.g.
    ``{"logit_headroom": Prior("StudentT", mu=0, sigma=1.5, nu=4)}`` (``noise`` keeps its
    ``floor``; its family must be positive). It is stored as ``{"prior": Prior, ...}``.

    Examples
    --------
    >>> merge_priors({"noise": {"sigma": 0.02}})["noise"]
    {'sigma': 0.02, 'floor': 0.001}
    """
    defaults = DEFAULT_PRIORS if defaults is None else defaults
    merged = {key: dict(value) for key, value in defaults.items()}
    for key, value in (priors or {}).items():
        if key not in merged:
            raise PalmInputError(f"unknown prior {key!r}; known priors: {sorted(merged)}")
        if is_prior_object(value):
            value = {"prior": value}
        if isinstance(value, Mapping) and "prior" in value:
            merged[key] = _merge_prior_object(key, value, merged[key], defaults)
            continue
        unknown = set(value) - set(merged[key])
        if unknown:
            raise PalmInputError(
                f"prior {key!r} has unknown fields {sorted(unknown)}; "
                f"it takes {sorted(merged[key])}"
            )
        merged[key].update({field: float(v) for field, v in value.items()})
    return merged


def _merge_prior_object(key: str, value: Mapping, default: dict, defaults: Mapping) -> dict:
    """The entry of a ``Prior`` object (or its ``to_dict()`` form, as saved with a fit)."""
    if key not in SAMPLED_PRIORS or defaults is not DEFAULT_PRIORS:
        raise PalmInputError(
            f"prior {key!r} takes numbers ({sorted(default)}); Prior objects are accepted for "
            f"the sampled variables of independent fits: {list(SAMPLED_PRIORS)}"
        )
    prior = value["prior"]
    if isinstance(prior, Mapping):
        from pymc_extras.prior import Prior

        prior = Prior.from_dict(dict(prior))
    if not is_prior_object(prior):
        raise PalmInputError(f"prior {key!r}: expected a pymc_extras Prior, got {prior!r}")
    rest = {f: float(v) for f, v in value.items() if f != "prior"}
    unknown = set(rest) - {"floor"}
    if unknown:
        raise PalmInputError(f"prior {key!r} has unknown fields {sorted(unknown)} beside 'prior'")
    kept = {f: v for f, v in default.items() if f == "floor"}
    return kept | rest | {"prior": prior}


def priors_to_json(priors: Mapping[str, Any]) -> str:
    """The prior configuration as JSON (``Prior`` objects as their ``to_dict()``)."""
    return json.dumps(
        priors,
        sort_keys=True,
        default=lambda v: v.to_dict() if is_prior_object(v) else str(v),
    )


def _sampled(name: str, spec: Mapping[str, Any]):
    """The model variable ``name``: the user's ``Prior`` or the default family."""
    return sampled_variable(name, spec)


def sampled_variable(name: str, spec: Mapping[str, Any], dims: str | None = None):
    """The model variable ``name`` (over ``dims``): the user's ``Prior`` or the default family."""
    if "prior" in spec:
        prior = spec["prior"]
        if dims is not None:
            prior = prior.deepcopy()
            prior.dims = (dims,)
        return prior.create_variable(name)
    if name == "noise":
        return pm.HalfNormal(name, sigma=spec["sigma"], dims=dims)
    return pm.Normal(name, mu=spec["mu"], sigma=spec["sigma"], dims=dims)


def palm_from_identified(z_mid, z_head, log_slope, eta, x_first, x_mid) -> dict[str, Any]:
    """PALM parameters from the sampled, data-identified ones (numpy or PyTensor).

    ``z_mid = logit A(x_mid)``, ``z_head = logit`` of the reachable share of ``1 - A(x_mid)``,
    ``log_slope = log dA/dlog x`` at ``x_mid`` and ``eta = log1p(alpha / x_first)``; see the
    module docstring. Returns ``A_max, delta, alpha, beta, log_lambda, mid_accuracy,
    mid_slope``.
    """
    xp = backend(z_mid, z_head, log_slope, eta, x_first, x_mid)
    if xp is np:
        from scipy.special import expit

        # draws for a new member of a pooled fit can lie far out: exp may overflow to inf,
        # which is the right limit (delta -> 1, beta -> inf) and not worth a warning
        with np.errstate(over="ignore"):
            return _palm_from_identified(
                np, expit, lambda v: np.log(-np.expm1(v)), z_mid, z_head, log_slope, eta,
                x_first, x_mid,
            )  # fmt: skip
    return _palm_from_identified(
        xp, xp.sigmoid, xp.log1mexp, z_mid, z_head, log_slope, eta, x_first, x_mid
    )


def _palm_from_identified(xp, sigmoid, log1mexp, z_mid, z_head, log_slope, eta, x_first, x_mid):
    mid_acc = sigmoid(z_mid)
    a_max = mid_acc + sigmoid(z_head) * (1 - mid_acc)
    alpha = x_first * xp.expm1(eta)
    # share q = A(x_mid) / A_max reached at x_mid, on the complementary log-log scale
    log_q = xp.log(mid_acc) - xp.log(a_max)
    log1m_q = log1mexp(log_q)  # log(1 - q)
    g_mid = xp.log(-log1m_q)
    # dA/dlog x = A_max (1 - q) (-log(1 - q)) * beta * x / (x + alpha)
    log_shifted_mid = xp.log(x_mid + alpha)
    log_beta = log_slope - xp.log(a_max) - log1m_q - g_mid + log_shifted_mid - xp.log(x_mid)
    beta = xp.exp(log_beta)
    log_lam = g_mid - beta * log_shifted_mid
    return {
        "mid_accuracy": mid_acc,
        "A_max": a_max,
        "mid_slope": xp.exp(log_slope),
        "alpha": alpha,
        "beta": beta,
        "log_lambda": log_lam,
        "delta": -xp.expm1(-xp.exp(log_lam)),
    }


def palm_mean(x, a_max, log_lam, beta, alpha):
    """The PALM curve at ``x = B / b`` in the sampled form (PyTensor or numpy)."""
    xp = backend(x, a_max, log_lam, beta, alpha)
    log_z = log_lam + beta * xp.log(x + alpha)
    return a_max * -xp.expm1(-xp.exp(log_z))


def create_palm_model(data: Mapping[str, Any], priors: Mapping | None = None) -> pm.Model:
    """Build the PyMC model of one PALM curve.

    Parameters
    ----------
    data : mapping
        Output of :func:`palm_bayes.data.prepare.model_data` (per-budget ``x = B / b``, seed
        mean and count, sum of squares, ``1 / n_test``, ``x_first``, ``x_mid``). They become
        ``pm.Data`` so one compiled model serves every curve.
    priors : mapping, optional
        Overrides of :data:`DEFAULT_PRIORS` (numbers, or ``Prior`` objects: see
        :func:`merge_priors`).

    Returns
    -------
    pymc.Model
        Free variables ``logit_mid_accuracy, logit_headroom, log_mid_slope, offset, noise``;
        deterministics ``A_max, delta, log_lambda, alpha, beta, mid_accuracy, mid_slope``.
    """
    p = merge_priors(priors)
    with pm.Model() as model:
        x = pm.Data("x", data["x"])
        y = pm.Data("mean_accuracy", data["mean_accuracy"])
        n_seeds = pm.Data("n_seeds", data["n_seeds"])
        inv_n = pm.Data("inv_n_test", data["inv_n_test"])
        rep_index = pm.Data("rep_index", data["rep_index"])
        rep_sq_dev = pm.Data("rep_sq_dev", data["rep_sq_dev"])
        x_first = pm.Data("x_first", data["x_first"])
        x_mid = pm.Data("x_mid", data["x_mid"])

        z_mid, z_head, log_slope, eta, noise = (_sampled(n, p[n]) for n in SAMPLED_PRIORS)

        palm = palm_from_identified(z_mid, z_head, log_slope, eta, x_first, x_mid)
        for name in ("mid_accuracy", "A_max", "mid_slope", "alpha", "beta", "log_lambda", "delta"):
            pm.Deterministic(name, palm[name])
        a_max, alpha, beta, log_lam = (palm[k] for k in ("A_max", "alpha", "beta", "log_lambda"))

        mu = palm_mean(x, a_max, log_lam, beta, alpha)
        palm_likelihood(mu, noise, y, n_seeds, inv_n, rep_index, rep_sq_dev, p["noise"]["floor"])
    return model


#: The unconstrained, data-identified parameters (order of the ``param`` dim).
PARAMS = ("logit_ref_accuracy", "logit_headroom", "log_ref_slope", "offset")


def palm_from_theta(theta: Any, x_first: float, x_ref: float) -> dict[str, Any]:
    """PALM parameters from unconstrained ``theta`` (numpy or xarray; ``param`` last/labelled)."""
    if isinstance(theta, xr.DataArray):
        parts = [theta.sel(param=p, drop=True) for p in PARAMS]
    else:
        theta = np.asarray(theta, dtype=float)
        parts = [theta[..., i] for i in range(len(PARAMS))]
    return palm_from_identified(*parts, x_first, max(x_ref, x_first))
