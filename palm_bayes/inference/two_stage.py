"""The hierarchical PALM in two stages: every curve alone, then the population on its draws.

The joint NUTS fit of :mod:`palm_bayes.inference.pooled` samples every curve's parameters and
the population together; its cost grows with the curves (80 LCDB curves: ~18 minutes on two
cores). The same posterior can be reached in three cheaper steps (the two-stage "recycling"
of independent posteriors of Lunn, Barrett, Sweeting & Richardson, *Applied Statistics* 2013):

1. **Each curve alone.** Every curve's posterior of ``theta_c`` (the hierarchical model's four
   parameters at the common reference budget) and its ``noise`` under a wide Normal prior
   ``p0`` (per parameter, the spread the hierarchical priors give a curve:
   ``sqrt(sigma^2 + sum_g group_sd^2 + curve_sd^2)``), sampled like an independent fit
   (importance sampling, NUTS where it fails). The curves' draws ``theta_cs`` stand for their
   likelihoods: ``p(y_c | theta) ~ p(theta | y_c) / p0(theta)``.
2. **The population.** ``mu``, the group effects and ``sigma_curve`` by NUTS, each curve's
   likelihood of them estimated from its draws:
   ``p(y_c | population) ~ mean_s N(theta_cs | m_c, sigma_curve) / p0(theta_cs)`` with
   ``m_c`` the curve's population mean. A model of a few dozen parameters, whatever the
   number of curves.
3. **The curves again.** For every population draw, each curve's parameters are one of its own
   draws, picked with weights ``N(theta_cs | m_c, sigma_curve) / p0(theta_cs)``: a draw of
   the curve's full conditional under the pooled prior, with its exact likelihood.

Both importance steps are exact as the draws per curve grow; the effective number of draws
behind each curve (``two_stage_ess``, the median over population draws) says how well they
do. Where a curve's own data say much less than the population (a pooled scale far below the
curve's posterior spread), few draws carry the weight: the fit warns, and the joint NUTS fit
(``method="nuts"``) is then the one to trust.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from palm_bayes.data.prepare import CurveStats
from palm_bayes.errors import SamplingWarning
from palm_bayes.inference.pooled import (
    CENTRED_PARAMS,
    hierarchical_data,
    population_mean,
    prior_vector,
)
from palm_bayes.inference.sampling import compile_model, run_nutpie, sample_curves
from palm_bayes.model.single import PARAMS

__all__ = ["sample_two_stage", "first_stage_priors", "MIN_CURVE_ESS"]

#: How stage 1 samples the curves (see :func:`~palm_bayes.inference.sampling.sample_curves`).
FIRST_STAGE_METHOD = "nuts"
#: Stage-1 draws per curve (4 chains x this / 4).
FIRST_STAGE_DRAWS = 4000
#: Stage-1 tuning draws per chain (a posterior of five parameters; nutpie's default is 300).
FIRST_STAGE_TUNE = 500
#: A curve whose stage-3 weights have fewer effective draws than this (median over the
#: population draws) is reported in a ``SamplingWarning``.
MIN_CURVE_ESS = 30
#: Stage-1 draws per curve that estimate its likelihood of each population draw (for the
#: correction of stage 2; evenly spaced over the chains). All of them: with 1,000 the
#: corrected population of the simulated 18-curve example had r_hat 1.04, with 4,000 1.010.
LIKELIHOOD_DRAWS = FIRST_STAGE_DRAWS
#: Stage 2 samples this many times the draws asked for; the correction resamples them down.
OVERSAMPLE = 3
#: Above this Pareto ``k`` the correction of the population draws is not trusted (a warning).
PARETO_K_MAX = 0.7
#: Names of the stage-1 (independent model) parameters, in the order of ``PARAMS``.
FIRST_STAGE_NAMES = ("logit_mid_accuracy", "logit_headroom", "log_mid_slope", "offset")
#: Population draws per block when picking the curves' draws (bounds the memory).
BLOCK = 1000


def first_stage_priors(
    priors: Mapping[str, Mapping[str, float]], n_dims: int
) -> dict[str, dict[str, float]]:
    """The wide Normal prior ``p0`` of stage 1, as priors of the independent model.

    Per parameter ``N(mu, sqrt(sigma^2 + n_dims * group_sd^2 + curve_sd^2))``: the spread of a
    curve's parameter under the hierarchical priors (``E[s^2] = sd^2`` for ``s ~
    HalfNormal(sd)``); the ``noise`` prior is the hierarchical model's.
    """
    out: dict[str, dict[str, float]] = {}
    for name, param in zip(FIRST_STAGE_NAMES, PARAMS, strict=True):
        p = priors[param]
        var = p["sigma"] ** 2 + n_dims * p["group_sd"] ** 2 + p["curve_sd"] ** 2
        out[name] = {"mu": float(p["mu"]), "sigma": float(np.sqrt(var))}
    out["noise"] = dict(priors["noise"])
    return out


def sample_two_stage(
    stats: CurveStats,
    hierarchy: Sequence[str],
    priors: Mapping[str, Mapping[str, float]],
    *,
    chains: int,
    draws: int,
    tune: int,
    target_accept: float,
    seed: int,
    cores: int,
    progress: bool,
) -> tuple[xr.Dataset, xr.Dataset, xr.Dataset]:
    """The hierarchical PALM of the prepared curves in two stages (see the module docstring).

    Returns the same three datasets as :func:`~palm_bayes.inference.pooled.sample_hierarchical`
    (``sample_stats`` are those of the stage-2 NUTS run); among the constants, per curve
    ``two_stage_ess`` and ``first_stage_divergences``, and the Pareto ``k`` and effective share
    of the correction of the population draws (``population_pareto_k``,
    ``population_ess_share``).
    """
    data = hierarchical_data(stats, hierarchy)
    levels = {dim: stats.coords[dim].tolist() for dim in hierarchy}
    n = len(stats.datas)
    start = time.perf_counter()

    # stage 1: every curve alone, at the common reference budget, under the wide prior p0
    p0 = first_stage_priors(priors, len(hierarchy))
    at_ref = replace(
        stats, datas=[d | {"x_mid": x} for d, x in zip(stats.datas, data["x_ref"], strict=True)]
    )
    first, first_stats, _ = sample_curves(
        at_ref, p0, chains=4, draws=FIRST_STAGE_DRAWS // 4, tune=FIRST_STAGE_TUNE,
        target_accept=0.99, seed=seed, cores=cores, progress=progress, method=FIRST_STAGE_METHOD,
    )  # fmt: skip
    theta = np.stack(
        [first[name].transpose("curve", "chain", "draw").to_numpy() for name in FIRST_STAGE_NAMES],
        axis=-1,
    ).reshape(n, -1, len(PARAMS))
    log_p0 = _log_normal(theta, p0)

    # stage 2: the population, each curve's likelihood estimated from its own draws
    summaries = gaussian_likelihoods(theta, p0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = _population_model(data, hierarchy, levels, priors, *summaries)
        compiled = compile_model(model, initial_points=_initial_points(theta, hierarchy, priors))
    trace = run_nutpie(
        compiled, progress=progress, desc=f"population of {n} curves", chains=chains,
        draws=OVERSAMPLE * draws, tune=tune, seed=seed, target_accept=target_accept, cores=cores,
    )  # fmt: skip
    post = trace.posterior

    # stage 3: each curve's draw for every population draw
    mean = post["mu"].to_numpy()[:, :, None, :]
    for dim in hierarchy:
        mean = mean + post[f"effect_{dim}"].to_numpy()[:, :, data[f"level_{dim}"], :]
    scale = post["sigma_curve"].to_numpy()
    rng = np.random.default_rng([seed, 2])
    mean, scale = mean.reshape(-1, n, len(PARAMS)), scale.reshape(-1, len(PARAMS))
    # the population draws reweighted from the Gaussian likelihoods to the stage-1 draws'
    every = np.linspace(0, theta.shape[1] - 1, LIKELIHOOD_DRAWS).astype(int)
    log_lik = _curve_likelihoods(theta[:, every], log_p0[:, every], mean, scale)
    log_ratio = np.sum(log_lik - _gaussian_log_lik(*summaries, mean, scale), axis=1)
    keep, pareto_k, share = _correction(log_ratio, chains, draws, rng)
    mean, scale = mean[keep], scale[keep]
    picked, ess = _pick(theta, log_p0, mean, scale, rng)
    seconds = time.perf_counter() - start

    posterior, sample_stats = _population_outputs(
        first, theta, picked.reshape(n, chains, draws), post, trace.sample_stats, keep,
        mean, scale, hierarchy,
    )  # fmt: skip
    constant = stats.constants[["x_first", "first_budget", "last_budget", "n_test"]].assign(
        x_ref=("curve", data["x_ref"]),
        fitted=("curve", np.ones(n, dtype=bool)),
        sampling_seconds=("curve", np.full(n, seconds / n)),
        two_stage_ess=("curve", ess),
        first_stage_divergences=("curve", first_stats["diverging"].sum(("chain", "draw")).data),
        x_ref_common=data["x_ref_common"],
        population_pareto_k=pareto_k,
        population_divergences=int(trace.sample_stats["diverging"].sum()),
        population_ess_share=share,
        total_seconds=seconds,
    )
    _warn_thin(stats, ess, pareto_k)
    return posterior, sample_stats, constant


def _population_outputs(
    first, theta, pick, post, trace_stats, keep, mean, scale, hierarchy
) -> tuple[xr.Dataset, xr.Dataset]:
    """Posterior and sample stats of the kept population draws and each curve's picked draw."""
    n, chains, draws = pick.shape
    shape = (chains, draws, n)
    out = {}
    for name in ("A_max", "delta", "alpha", "beta", "log_lambda", "noise"):
        values = first[name].transpose("curve", "chain", "draw").to_numpy().reshape(n, -1)
        out[name] = (("chain", "draw", "curve"), np.moveaxis(_take(values, pick), 0, -1))
    th = np.moveaxis(_take(theta, pick), 0, 2)  # (chain, draw, curve, param)
    m = mean.reshape(*shape, len(PARAMS))
    s = scale.reshape(chains, draws, 1, len(PARAMS))
    z = CENTRED_PARAMS * th + (1 - CENTRED_PARAMS) * (th - m) / s
    out["z_curve"] = (("chain", "draw", "curve", "param"), z)
    for name in ("mu", "sigma_curve") + tuple(
        f"{kind}_{dim}" for dim in hierarchy for kind in ("sigma", "effect", "z")
    ):
        values = post[name].to_numpy()
        flat = values.reshape(-1, *values.shape[2:])[keep]
        out[name] = (post[name].dims, flat.reshape(chains, draws, *values.shape[2:]))
    chain_draw = {"chain": np.arange(chains), "draw": np.arange(draws)}
    posterior = xr.Dataset(out, coords=chain_draw | {"param": list(PARAMS)})
    sample_stats = xr.Dataset(
        {
            name: (
                ("chain", "draw"),
                trace_stats[name].to_numpy().ravel()[keep].reshape(chains, draws),
            )
            for name in ("diverging", "n_steps", "step_size")
        },
        coords=chain_draw,
    )
    return posterior, sample_stats


def _log_normal(theta: np.ndarray, p0: Mapping[str, Mapping[str, float]]) -> np.ndarray:
    """``log p0(theta)`` over the last axis (up to a constant)."""
    mu = np.array([p0[k]["mu"] for k in FIRST_STAGE_NAMES])
    sd = np.array([p0[k]["sigma"] for k in FIRST_STAGE_NAMES])
    return -0.5 * np.sum(((theta - mu) / sd) ** 2, axis=-1)


def gaussian_likelihoods(
    theta: np.ndarray, p0: Mapping[str, Mapping[str, float]]
) -> tuple[np.ndarray, np.ndarray]:
    """Each curve's likelihood of ``theta`` as a Gaussian: its draws' moments over ``p0``.

    A Normal posterior ``N(m, S)`` under the Normal prior ``N(m0, S0)`` comes from the Normal
    likelihood of precision ``S^-1 - S0^-1`` (eigenvalues floored at ``1e-4``: a direction the
    data do not inform gets a variance of 10^4). Returns its means ``(curve, param)`` and
    covariances ``(curve, param, param)``.
    """
    m0 = np.array([p0[k]["mu"] for k in FIRST_STAGE_NAMES])
    prior_precision = np.diag(1.0 / np.array([p0[k]["sigma"] for k in FIRST_STAGE_NAMES]) ** 2)
    means, covs = [], []
    for draws in theta:
        post_precision = np.linalg.inv(np.cov(draws, rowvar=False))
        values, vectors = np.linalg.eigh(post_precision - prior_precision)
        values = np.maximum(values, 1e-4)
        cov = (vectors / values) @ vectors.T
        means.append(cov @ (post_precision @ draws.mean(axis=0) - prior_precision @ m0))
        covs.append(cov)
    return np.array(means), np.array(covs)


def _population_model(data, hierarchy, levels, priors, means, covs) -> pm.Model:
    """Stage 2: the hierarchical model with each curve's Gaussian likelihood.

    The curve-level parameters are sampled as in the joint model (centred where the data pin
    them down: accuracy and slope at the reference); each curve's likelihood is a quadratic
    form, so a gradient costs microseconds. The group effects are non-centred: centred ones
    formed a funnel with their scale on 80 LCDB curves (5-49 divergent transitions, none
    non-centred).
    """
    precisions = np.linalg.inv(covs)
    centred = CENTRED_PARAMS
    coords = {"param": list(PARAMS), "curve": np.arange(len(means))}
    coords |= {dim: list(levels[dim]) for dim in hierarchy}
    with pm.Model(coords=coords) as model:
        mean = population_mean(data, hierarchy, levels, priors, centred_groups=False)
        scale = pm.HalfNormal("sigma_curve", sigma=prior_vector(priors)("curve_sd"), dims="param")
        raw = pm.Normal(
            "z_curve",
            mu=mean * centred,
            sigma=scale * centred + (1 - centred),
            dims=("curve", "param"),
        )
        theta = centred * raw + (1 - centred) * (mean + raw * scale)
        residual = means - theta
        quadratic = pt.sum(residual[:, :, None] * pt.as_tensor(precisions) * residual[:, None, :])
        pm.Potential("curve_likelihood", -0.5 * quadratic)
    return model


def _initial_points(theta: np.ndarray, hierarchy, priors) -> dict[str, np.ndarray]:
    """Start at the mean and spread of the curves' stage-1 posterior means."""
    means = theta.mean(axis=1)
    vec = prior_vector(priors)
    points = {
        "mu": means.mean(axis=0),
        "sigma_curve": np.clip(means.std(axis=0), 0.05, None),
    }
    for dim in hierarchy:
        points[f"sigma_{dim}"] = vec("group_sd") / 2
    return points


def _log_weights(theta, log_p0, mean, precision) -> np.ndarray:
    """``log N(theta_s | mean_d, precision_d^-1/2) - log p0(theta_s)`` per ``(d, s)``.

    For one curve: ``theta (s, p)``, ``mean (d, p)``, ``precision (d, p)``; one matrix product
    of the draws' squares, values, a one and ``-log p0`` with the population's precisions,
    means and normalising constant.
    """
    ones = np.ones((len(theta), 1))
    features = np.concatenate([theta**2, theta, ones, -log_p0[:, None]], axis=1)
    const = 0.5 * np.sum(np.log(precision) - precision * mean**2, axis=1)
    coef = np.concatenate(
        [-0.5 * precision, precision * mean, const[:, None], np.ones((len(mean), 1))], axis=1
    )
    return coef @ features.T


def _blocks(n_draws: int):
    """Slices of at most :data:`BLOCK` population draws."""
    return (slice(lo, min(lo + BLOCK, n_draws)) for lo in range(0, n_draws, BLOCK))


def _per_curve(function, n: int) -> list:
    """``[function(c) for c in range(n)]`` on threads (numpy and BLAS release the GIL)."""
    with ThreadPoolExecutor(max_workers=min(n, os.cpu_count() or 1)) as pool:
        return list(pool.map(function, range(n)))


def _curve_likelihoods(theta, log_p0, mean, scale) -> np.ndarray:
    """Each curve's likelihood of each population draw from its stage-1 draws, ``(d, c)``.

    ``log mean_s N(theta_cs | mean_dc, scale_d) / p0(theta_cs)`` (up to a constant per curve).
    """
    n, total = theta.shape[:2]
    precision = scale**-2.0

    def one(c: int) -> np.ndarray:
        out = np.empty(len(mean))
        for rows in _blocks(len(mean)):
            log_w = _log_weights(theta[c], log_p0[c], mean[rows, c], precision[rows])
            top = log_w.max(axis=1)
            log_w -= top[:, None]
            np.exp(log_w, out=log_w)
            out[rows] = top + np.log(log_w.sum(axis=1) / total)
        return out

    return np.stack(_per_curve(one, n), axis=1)


def _pick(theta, log_p0, mean, scale, rng) -> tuple[np.ndarray, np.ndarray]:
    """Stage 3: per curve and population draw, one stage-1 draw by its weight.

    Returns the picked indices ``(curve, population draw)`` and each curve's median effective
    number of draws.
    """
    n, total = theta.shape[:2]
    precision = scale**-2.0
    uniform = rng.random((n, len(mean)))  # drawn up front: the same numbers on any thread

    def one(c: int) -> tuple[np.ndarray, float]:
        picked = np.empty(len(mean), dtype=np.int64)
        curve_ess = []
        for rows in _blocks(len(mean)):
            w = _log_weights(theta[c], log_p0[c], mean[rows, c], precision[rows])
            w -= w.max(axis=1, keepdims=True)
            np.exp(w, out=w)
            cdf = np.cumsum(w, axis=1)
            u = uniform[c, rows] * cdf[:, -1]
            picked[rows] = [np.searchsorted(row, x) for row, x in zip(cdf, u, strict=True)]
            curve_ess.append(cdf[:, -1] ** 2 / np.einsum("ij,ij->i", w, w))
        return np.minimum(picked, total - 1), float(np.median(np.concatenate(curve_ess)))

    results = _per_curve(one, n)
    return np.stack([r[0] for r in results]), np.array([r[1] for r in results])


def _gaussian_log_lik(means, covs, mean, scale) -> np.ndarray:
    """Stage 2's Gaussian likelihood of each population draw, per ``(draw, curve)``.

    ``log N(means_c | mean_dc, covs_c + diag(scale_d^2))`` up to a constant: the curve-level
    parameters integrated out.
    """
    total = covs[None] + scale[:, None, :, None] ** 2 * np.eye(covs.shape[-1])
    sign, log_det = np.linalg.slogdet(total)
    residual = means[None] - mean
    solved = np.linalg.solve(total, residual[..., None])[..., 0]
    return -0.5 * (log_det + np.sum(residual * solved, axis=-1))


def _correction(
    log_ratio: np.ndarray, chains: int, draws: int, rng
) -> tuple[np.ndarray, float, float]:
    """Pareto-smoothed weights of the population draws for the exact likelihoods.

    ``log_ratio`` per draw (chain-major): the stage-1 draws' likelihood over the Gaussian one.
    Returns ``draws`` per chain resampled by their smoothed weights (indices into the flat
    draws), the Pareto ``k`` and the effective share of draws.
    """
    import arviz as az

    log_ratio = np.where(np.isfinite(log_ratio), log_ratio, -np.inf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        smoothed, k = az.psislw(log_ratio - np.nanmax(log_ratio))
    w = np.exp(smoothed - smoothed.max())
    share = float(w.sum() ** 2 / np.sum(w**2) / w.size)
    per_chain = w.size // chains
    index = []
    for chain in range(chains):
        part = w[chain * per_chain : (chain + 1) * per_chain]
        cdf = np.cumsum(part) / part.sum()
        u = (rng.random() + np.arange(draws)) / draws
        index.append(chain * per_chain + np.minimum(np.searchsorted(cdf, u), per_chain - 1))
    return np.concatenate(index), float(k), share


def _take(values: np.ndarray, pick: np.ndarray) -> np.ndarray:
    """``values[c, pick[c, ...]]`` for every curve ``c`` (extra trailing axes kept)."""
    return np.stack([values[c][pick[c]] for c in range(len(pick))])


def _warn_thin(stats: CurveStats, ess: np.ndarray, pareto_k: float) -> None:
    """Warn when some curves rest on few stage-1 draws, or the correction of stage 2 fails."""
    if pareto_k > PARETO_K_MAX:
        warnings.warn(
            f"two-stage fit: the Gaussian summaries of the curves' likelihoods are too rough "
            f"to correct (Pareto k {pareto_k:.2f} > {PARETO_K_MAX}): the population posterior "
            "is approximate; refit with method='nuts' to check it",
            SamplingWarning,
            stacklevel=4,
        )
    thin = ess < MIN_CURVE_ESS
    if thin.any():
        names = stats.constants["curve"].to_numpy()[thin][:3]
        warnings.warn(
            f"two-stage fit: {int(thin.sum())} curve(s) rest on fewer than {MIN_CURVE_ESS} "
            f"effective draws of their own posterior ({', '.join(map(str, names))}): the "
            "population pulls them far from what their data say alone; refit with "
            "method='nuts' to check them",
            SamplingWarning,
            stacklevel=4,
        )
