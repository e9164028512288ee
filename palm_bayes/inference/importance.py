"""Independent PALM posteriors of many curves at once: mode, Laplace proposal, PSIS.

For a batch of curves (one compiled :mod:`~palm_bayes.inference.batch_density`):

1. each curve's posterior mode on the unconstrained scale, by damped Newton steps taken for
   all curves at once (the Hessian by differences of the exact gradient);
2. proposals from a multivariate Student-t around the mode with the inverse negative Hessian
   as scale (the Laplace approximation with heavier tails), then a second Student-t fitted to
   the importance-weighted draws of the first; the draws of both are weighted by the exact log
   density over the two-component mixture (deterministic-mixture weights);
3. Pareto-smoothed importance sampling (:func:`arviz.psislw`) per curve, and ``chains *
   draws`` draws resampled from the smoothed weights (systematic resampling, shuffled).

Each curve's Pareto ``k`` and the effective sample size of its weights say whether the draws
can be trusted; :func:`palm_bayes.palm_fit.fit` samples the curves that fail (``k > 0.7``,
no mode found, a Hessian that is not negative definite) with NUTS instead. Randomness is
drawn per curve from ``seed_k``, so a curve's draws do not depend on the other curves.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from palm_bayes.inference.batch_density import BatchDensity, batch_density
from palm_bayes.model.batched import stack_model_data
from palm_bayes.model.single import palm_from_identified

__all__ = ["importance_sample", "laplace_draws", "PARETO_K_MAX", "MIN_ESS"]

#: Curves whose smoothed weights have a larger Pareto ``k`` are sampled with NUTS.
PARETO_K_MAX = 0.7
#: ... and so are those whose weights have fewer effective draws than this.
MIN_ESS = 200
#: Proposal draws per curve and stage.
PROPOSAL_DRAWS = 1000
#: Degrees of freedom of the Student-t proposals.
PROPOSAL_DF = 4.0
#: Adaptive stages (each draws ``PROPOSAL_DRAWS`` per curve).
STAGES = 5
#: Proposal scales are the fitted ones times this factor (wider than the target).
SCALE_INFLATION = 1.5
#: Rows per call of the compiled density when weighting draws.
CHUNK_ROWS = 100_000


def importance_sample(
    datas: Sequence[Mapping[str, Any]],
    priors: Mapping[str, Any],
    *,
    chains: int,
    draws: int,
    seeds: Sequence[int],
    proposal_draws: int = PROPOSAL_DRAWS,
) -> dict[str, np.ndarray]:
    """Posterior draws of independent curves by importance sampling from Laplace proposals.

    Parameters
    ----------
    datas : sequence of mapping
        :func:`~palm_bayes.data.prepare.model_data` of each curve.
    priors : mapping
        Merged priors (:func:`~palm_bayes.model.single.merge_priors`).
    chains, draws : int
        The draws are returned as ``(curve, chains, draws)`` (independent, resampled).
    seeds : sequence of int
        One seed per curve.
    proposal_draws : int
        Proposal draws per curve and stage.

    Returns
    -------
    dict
        ``(curve, chain, draw)`` arrays of the free variables and the PALM parameters, and per
        curve ``pareto_k``, ``ess`` (effective draws of the smoothed weights), ``ok`` (usable:
        mode found, ``k <= PARETO_K_MAX`` and ``ess >= MIN_ESS``), ``converged``.
    """
    density = batch_density(priors)
    batch = stack_model_data(datas)
    n, p = len(datas), len(density.value_names)
    mode, converged = find_modes(density, batch, _start(density, batch))
    hess = density.hessian(mode, batch)
    scale, definite = _laplace_scale(hess)
    ok = converged & definite
    scale[~ok] = np.eye(p)  # placeholder proposals for curves that go to NUTS anyway
    mode[~np.isfinite(mode)] = 0.0
    rngs = [np.random.default_rng(int(s)) for s in seeds]

    # adaptive importance sampling: each stage's Student-t is fitted to the weighted draws of
    # all stages so far; the draws of all stages are weighted over the equal mixture of them
    means, scales = [mode], [scale * SCALE_INFLATION**2]
    proposals = np.empty((n, 0, p))
    log_p = np.empty((n, 0))
    components = np.empty((0, n, 0))  # log density of each proposal component at each draw
    for stage in range(STAGES):
        new = _draw_t(rngs, means[-1], scales[-1], proposal_draws)
        # the older components at the new draws, then the newest component at all draws
        old = [_log_t(new, m, c) for m, c in zip(means[:-1], scales[:-1], strict=True)]
        old_at_new = np.stack(old) if old else np.empty((0, n, proposal_draws))
        components = np.concatenate([components, old_at_new], axis=2)
        proposals = np.concatenate([proposals, new], axis=1)
        components = np.concatenate(
            [components, _log_t(proposals, means[-1], scales[-1])[None]], axis=0
        )
        log_p = np.concatenate([log_p, _log_p(density, batch, new)], axis=1)
        log_q = np.logaddexp.reduce(components, axis=0) - np.log(len(means))
        log_w = log_p - log_q
        if stage < STAGES - 1:
            mean, cov = _weighted_moments(proposals, log_w, means[-1], scales[-1])
            means.append(mean)
            scales.append(cov * SCALE_INFLATION**2)
    log_w = np.where(np.isfinite(log_w), log_w, -np.inf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        smoothed, pareto_k = _psis(log_w)
    weights = np.exp(smoothed - smoothed.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    ess = 1.0 / np.sum(weights**2, axis=1)
    pareto_k = np.where(np.isfinite(pareto_k), pareto_k, np.inf)
    ok &= (pareto_k <= PARETO_K_MAX) & (ess >= MIN_ESS)

    total = chains * draws
    picked = np.stack(
        [proposals[k, _systematic(rngs[k], weights[k], total)] for k in range(n)]
    )  # (curve, total, p)
    out = _outputs(density, picked.reshape(n * total, p), batch, total)
    out = {name: v.reshape(n, chains, draws) for name, v in out.items()}
    out |= {"pareto_k": pareto_k, "ess": ess, "ok": ok, "converged": converged}
    return out


def laplace_draws(
    datas: Sequence[Mapping[str, Any]], priors: Mapping[str, Any], *, draws: int, seed: int
) -> dict[str, np.ndarray]:
    """Draws from each curve's Laplace approximation of its posterior (no importance weights).

    The mode and the inverse negative Hessian on the unconstrained scale, as the first stage of
    :func:`importance_sample`; cheap enough to be run on many truncated copies of a pilot.

    Returns
    -------
    dict
        ``(curve, draws)`` arrays of the free variables and PALM parameters, and per curve
        ``ok``: the mode was found and the Hessian is negative definite.
    """
    density = batch_density(priors)
    batch = stack_model_data(datas)
    n, p = len(datas), len(density.value_names)
    mode, converged = find_modes(density, batch, _start(density, batch))
    cov, definite = _laplace_scale(density.hessian(mode, batch))
    ok = converged & definite & np.all(np.isfinite(mode), axis=1)
    cov[~ok] = np.eye(p)
    mode[~ok] = 0.0
    z = np.random.default_rng(seed).standard_normal((n, draws, p))
    theta = mode[:, None, :] + np.einsum("kij,kmj->kmi", np.linalg.cholesky(cov), z)
    out = _outputs(density, theta.reshape(n * draws, p), batch, draws)
    return {name: v.reshape(n, draws) for name, v in out.items()} | {"ok": ok}


def _start(density: BatchDensity, batch: Mapping[str, np.ndarray]) -> np.ndarray:
    """A starting point per curve from the data (middle accuracy and slope, small noise)."""
    mask = batch["budget_mask"] > 0
    log_x = np.log(batch["x"])
    y = np.clip(batch["mean_accuracy"], 0.01, 0.99)
    count = mask.sum(axis=1)
    mean_lx = (log_x * mask).sum(axis=1) / count
    mean_y = (y * mask).sum(axis=1) / count
    dx = (log_x - mean_lx[:, None]) * mask
    slope = (dx * (y - mean_y[:, None])).sum(axis=1) / np.maximum((dx**2).sum(axis=1), 1e-12)
    start = {
        "logit_mid_accuracy": np.log(mean_y / (1 - mean_y)),
        "logit_headroom": np.zeros(len(count)),
        "log_mid_slope": np.log(np.clip(slope, 1e-3, 1.0)),
        "offset": np.zeros(len(count)),
        "noise_log__": np.full(len(count), np.log(0.01)),
    }
    zeros = np.zeros(len(count))
    return np.stack([start.get(name, zeros) for name in density.value_names], axis=1)


def find_modes(
    density: BatchDensity,
    batch: Mapping[str, np.ndarray],
    theta: np.ndarray,
    *,
    max_iter: int = 100,
    tol: float = 1e-8,
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's posterior mode by damped Newton steps with a backtracking line search.

    Returns the modes and whether each converged (Newton decrement below ``tol``).
    """
    theta = theta.copy()
    lp, grad = density.logp_grad(theta, batch)
    active = np.isfinite(lp)
    converged = np.zeros(len(theta), dtype=bool)
    for _ in range(max_iter):
        if not active.any():
            break
        idx = np.flatnonzero(active)
        sub = {k: v[idx] for k, v in batch.items()}
        hess = density.hessian(theta[idx], sub)
        vals, vecs = np.linalg.eigh(-hess)
        vals = np.maximum(np.abs(vals), 1e-3)
        g = grad[idx]
        coef = np.einsum("kji,kj->ki", vecs, g) / vals
        step = np.einsum("kij,kj->ki", vecs, coef)
        decrement = np.einsum("ki,ki->k", g, step)
        norm = np.linalg.norm(step, axis=1)
        step *= np.minimum(1.0, 3.0 / np.maximum(norm, 1e-300))[:, None]
        done = decrement < tol
        converged[idx[done]] = True
        t = np.ones(len(idx))
        moving = ~done
        new_theta, new_lp, new_grad = theta[idx].copy(), lp[idx].copy(), g.copy()
        for _ in range(30):
            if not moving.any():
                break
            m = np.flatnonzero(moving)
            cand = theta[idx[m]] + t[m, None] * step[m]
            lp_c, g_c = density.logp_grad(cand, {k: v[m] for k, v in sub.items()})
            accept = np.isfinite(lp_c) & (lp_c >= lp[idx[m]] + 1e-4 * t[m] * decrement[m])
            new_theta[m[accept]], new_lp[m[accept]], new_grad[m[accept]] = (
                cand[accept], lp_c[accept], g_c[accept]
            )  # fmt: skip
            moving[m[accept]] = False
            t[m[~accept]] *= 0.5
        stuck = moving  # no step increased the density: at the mode up to rounding
        converged[idx[stuck]] = decrement[stuck] < 1e-4
        theta[idx], lp[idx], grad[idx] = new_theta, new_lp, new_grad
        active[idx[done | stuck]] = False
    return theta, converged


def _laplace_scale(hess: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse negative Hessians, and whether each is positive definite."""
    vals, vecs = np.linalg.eigh(-hess)
    definite = np.all(np.isfinite(vals), axis=1) & (vals.min(axis=1) > 0)
    vals = np.where(definite[:, None], vals, 1.0)
    cov = np.einsum("kij,kj,klj->kil", vecs, 1.0 / vals, vecs)
    return cov, definite


def _draw_t(rngs, mean: np.ndarray, cov: np.ndarray, m: int) -> np.ndarray:
    """``m`` multivariate Student-t draws per curve, ``(curve, m, p)``."""
    n, p = mean.shape
    chol = np.linalg.cholesky(cov)
    out = np.empty((n, m, p))
    for k, rng in enumerate(rngs):
        z = rng.standard_normal((m, p))
        scale = np.sqrt(PROPOSAL_DF / rng.chisquare(PROPOSAL_DF, size=m))
        out[k] = mean[k] + (z @ chol[k].T) * scale[:, None]
    return out


def _log_t(x: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Log density of the multivariate Student-t proposals at ``x`` ``(curve, m, p)``."""
    from scipy.special import gammaln

    p = mean.shape[1]
    chol = np.linalg.cholesky(cov)
    inv_chol = np.linalg.inv(chol)
    sol = np.matmul(x - mean[:, None, :], np.swapaxes(inv_chol, 1, 2))
    maha = np.sum(sol**2, axis=-1)
    log_det = np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2)), axis=1)
    nu = PROPOSAL_DF
    const = gammaln((nu + p) / 2) - gammaln(nu / 2) - 0.5 * p * np.log(nu * np.pi)
    return const - log_det[:, None] - 0.5 * (nu + p) * np.log1p(maha / nu)


def _log_p(density: BatchDensity, batch: Mapping[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Exact log density at draws ``x`` ``(curve, m, p)``, in chunks of rows."""
    n, m, p = x.shape
    flat = x.reshape(n * m, p)
    out = np.empty(n * m)
    curves_per_chunk = max(1, CHUNK_ROWS // m)
    for start in range(0, n, curves_per_chunk):
        stop = min(n, start + curves_per_chunk)
        rows = {k: np.repeat(v[start:stop], m, axis=0) for k, v in batch.items()}
        with np.errstate(all="ignore"):
            out[start * m : stop * m] = density.logp(flat[start * m : stop * m], rows)
    return np.where(np.isfinite(out), out, -np.inf).reshape(n, m)


def _weighted_moments(x, log_w, mode, cov):
    """Mean and covariance of the weighted draws (the Laplace ones where they are degenerate)."""
    w = np.exp(log_w - np.nanmax(np.where(np.isfinite(log_w), log_w, -np.inf), axis=1)[:, None])
    w = np.where(np.isfinite(w), w, 0.0)
    total = w.sum(axis=1)
    good = total > 0
    w = w / np.where(good, total, 1.0)[:, None]
    mean = np.einsum("km,kmp->kp", w, x)
    diff = x - mean[:, None]
    new_cov = np.einsum("km,kmp,kmq->kpq", w, diff, diff)
    ess = 1.0 / np.maximum(np.sum(w**2, axis=1), 1e-300)
    p = x.shape[2]
    vals = np.linalg.eigvalsh(new_cov)
    good &= (ess >= 5 * p) & np.all(vals > 1e-10, axis=1) & np.all(np.isfinite(mean), axis=1)
    return np.where(good[:, None], mean, mode), np.where(good[:, None, None], new_cov, cov)


def _psis(log_w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pareto-smoothed log weights and ``k`` per curve (rows)."""
    import arviz as az

    smoothed, k = az.psislw(log_w, reff=1.0)
    return np.asarray(smoothed), np.asarray(k)


def _systematic(rng: np.random.Generator, weights: np.ndarray, size: int) -> np.ndarray:
    """Systematic resampling of ``size`` indices from ``weights``, in random order."""
    positions = (rng.random() + np.arange(size)) / size
    index = np.searchsorted(np.cumsum(weights), positions)
    index = np.minimum(index, len(weights) - 1)
    return rng.permutation(index)


def _outputs(density, theta, batch, per_curve: int) -> dict[str, np.ndarray]:
    """Free variables and PALM parameters of the draws (rows ``per_curve`` per curve)."""
    out = density.constrained(theta)
    x_first = np.repeat(batch["x_first"], per_curve)
    x_mid = np.repeat(batch["x_mid"], per_curve)
    palm = palm_from_identified(
        out["logit_mid_accuracy"], out["logit_headroom"], out["log_mid_slope"], out["offset"],
        x_first, x_mid,
    )  # fmt: skip
    return out | palm
