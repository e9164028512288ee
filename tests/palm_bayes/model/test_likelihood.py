"""The one PALM likelihood: single-curve and pooled models score the same draws alike."""

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr
from scipy.special import expit, logit

from palm_bayes.data.load import load_curves
from palm_bayes.data.prepare import iter_curves, model_data, prepare_curves
from palm_bayes.inference.pooled import create_hierarchical_model, hierarchical_data
from palm_bayes.model.likelihood import log_likelihood
from palm_bayes.model.single import DEFAULT_PRIORS, PARAMS, create_palm_model, palm_mean
from palm_bayes.model.single import palm_from_identified as identified

FLOOR = DEFAULT_PRIORS["noise"]["floor"]
CHAINS, DRAWS = 2, 5


def _curves() -> xr.Dataset:
    rows = []
    for strategy, budgets, top in (("a", [20, 40, 60, 80, 120], 0.8), ("b", [50, 100, 150], 0.7)):
        for seed in range(3):
            for budget in budgets:
                acc = top * (1 - np.exp(-budget / 60)) + 0.01 * (seed - 1)
                rows.append((strategy, seed, budget, acc))
    frame = pd.DataFrame(rows, columns=["strategy", "seed", "budget", "accuracy"])
    return load_curves(frame, n_test=500, min_budgets=2)


def _identify(palm: dict, x_first: float, x_at: float) -> np.ndarray:
    """The data-identified parameters at ``x_at`` of PALM draws (the inverse of the model's)."""
    a_max, alpha, beta, log_lam = (palm[k] for k in ("A_max", "alpha", "beta", "log_lambda"))
    acc = palm_mean(x_at, a_max, log_lam, beta, alpha)
    q = acc / a_max
    slope = a_max * (1 - q) * -np.log1p(-q) * beta * x_at / (x_at + alpha)
    head = (a_max - acc) / (1 - acc)
    return np.stack([logit(acc), logit(head), np.log(slope), np.log1p(alpha / x_first)], -1)


def _log_lik(model: pm.Model, posterior: dict) -> xr.Dataset:
    idata = az.InferenceData(posterior=xr.Dataset(posterior))
    with model:
        return pm.compute_log_likelihood(idata, progressbar=False).log_likelihood


def test_single_and_pooled_models_give_the_same_log_likelihood():
    curves = _curves()
    b = 10.0
    stats = prepare_curves(curves, b, common_b=True)
    data = hierarchical_data(stats, ("strategy",))
    labels = [dict(zip(stats.dims, key, strict=True)) for key in stats.constants.indexes["curve"]]
    n = len(labels)
    rng = np.random.default_rng(0)
    theta = np.stack(
        [
            rng.normal(m, s, (CHAINS, DRAWS, n))
            for m, s in ((0.5, 0.3), (0, 0.5), (-3, 0.3), (0, 0.3))
        ],
        -1,
    )
    noise = rng.uniform(0.005, 0.03, (CHAINS, DRAWS, n))
    palm = identified(*np.moveaxis(theta, -1, 0), data["x_first"], data["x_ref"])
    np.testing.assert_allclose(_identify(palm, data["x_first"], data["x_ref"]), theta, atol=1e-8)

    dims = ("chain", "draw")
    zeros = np.zeros((CHAINS, DRAWS, len(PARAMS)))
    pooled_post = {
        "mu": (dims + ("param",), zeros),
        "sigma_strategy": (dims + ("param",), zeros + 1),
        "z_strategy": (dims + ("param", "strategy"), np.zeros((CHAINS, DRAWS, len(PARAMS), 2))),
        "sigma_curve": (dims + ("param",), zeros + 1),  # theta = z_curve exactly
        "z_curve": (dims + ("curve", "param"), theta),
        "noise": (dims + ("curve",), noise),
    }
    levels = {"strategy": curves["strategy"].to_numpy().tolist()}
    prior = {p: {"mu": 0.0, "sigma": 1.0, "group_sd": 1.0, "curve_sd": 1.0} for p in PARAMS}
    prior["noise"] = DEFAULT_PRIORS["noise"]
    pooled = _log_lik(create_hierarchical_model(data, ("strategy",), levels, prior), pooled_post)

    starts = np.concatenate([[0], np.cumsum(np.bincount(data["curve_index"]))])
    rep_curve = data["curve_index"][data["rep_index"]]
    for k, (lab, sub) in enumerate(iter_curves(curves)):
        assert lab == labels[k]
        one = model_data(sub["budget"].to_numpy(), sub["accuracy"].to_numpy(), b, 500.0)
        own = {name: value[..., k] for name, value in palm.items()}
        z = _identify(own, one["x_first"], one["x_mid"])
        names = ("logit_mid_accuracy", "logit_headroom", "log_mid_slope", "offset")
        post = {name: (dims, z[..., i]) for i, name in enumerate(names)}
        post["noise"] = (dims, noise[..., k])
        single = _log_lik(create_palm_model(one), post)
        np.testing.assert_allclose(
            single["accuracy"].to_numpy(),
            pooled["accuracy"].to_numpy()[..., starts[k] : starts[k + 1]],
            rtol=1e-7,
        )
        np.testing.assert_allclose(
            single["seed_spread"].to_numpy(),
            pooled["seed_spread"].to_numpy()[..., rep_curve == k],
            rtol=1e-7,
        )
        # and the numpy likelihood of PSIS-LOO sums the two terms per budget
        mu = palm_mean(
            one["x"], *(own[p][..., None] for p in ("A_max", "log_lambda", "beta", "alpha"))
        )
        ours = log_likelihood(mu, noise[..., k, None], one, FLOOR)
        total = single["accuracy"].to_numpy().copy()
        total[..., one["rep_index"]] += single["seed_spread"].to_numpy()
        np.testing.assert_allclose(ours, total, rtol=1e-6)
    assert expit(theta[..., 0]).min() > 0  # draws stayed inside (0, 1)
