"""Self-calibration: update the extrapolation discrepancy with backtests inside the user's pilot.

A curve prior learned from a library (:mod:`palm_bayes.priors.curve_prior`) says how far and how
jointly real curves leave the PALM form beyond the observed budgets. No library is right for
every kind of curve: on LCDB two learners leave it together (``rho`` 0.94, so the discrepancy
cancels in ``P(A beats B)``), while active-learning strategies often change order after the
pilot. The pilot itself is evidence. :func:`backtest_pilot` cuts every curve at earlier budgets
(rolling origins), refits the Bayesian PALM there (its Laplace approximation, all cuts in one
batch: the same priors and likelihood as the fit, milliseconds per cut), and scores the forecast
of the pilot's last budget: the logit residual of each curve against the refit's own spread,
and jointly the residuals of all curves of a dataset cut at the same budget, which say whether
rankings held.

:func:`calibrate_prior` treats these residuals as data for three multipliers of the library
prior, with the library prior as their prior:

``m``
    the discrepancy scale (``a_0 + log m``);
``rho``
    the correlation of two curves' shocks on one dataset (the library's own draws, or lower);
``g``
    how much of the library's drift applies (0: none, 1: all of it).

``design="grid"`` (the default) computes the exact posterior on a grid of ``(m, rho, g)``; its
prior puts half its mass on the library's ``rho`` and half on lower values, so a few pairs cannot
pin ``rho`` down and a pilot without evidence leaves the answers near the library's.
``design="stack"`` instead weights three whole priors (library, "rankings cross", random walk)
by their backtest likelihood. Residuals of one curve at several origins overlap, so each origin's
likelihood is tempered by the number of origins (one curve counts as one observation). The
result is a :class:`~palm_bayes.priors.curve_prior.CurvePrior` whose draws follow the posterior:
every query of the fit then integrates over it.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr
from scipy.optimize import least_squares
from scipy.special import logsumexp

from palm_bayes.data.prepare import curve_dims, iter_curves, model_data
from palm_bayes.data.prepare import labels_per_round as _labels_per_round
from palm_bayes.errors import PalmInputError
from palm_bayes.inference.importance import laplace_draws
from palm_bayes.model.curve import palm_curve_log_lambda
from palm_bayes.model.single import merge_priors
from palm_bayes.priors.curve_prior import (
    DRIFT_TERMS,
    SCALE_TERMS,
    SLOPE_RATIO,
    CurvePrior,
    logit,
)

__all__ = [
    "MIN_BUDGETS",
    "SelfCalibration",
    "backtest_pilot",
    "calibrate_prior",
    "pairs_changed_order",
    "self_calibrate",
    "update_prior",
]

#: Distinct budgets a curve needs for a backtest: 4 to refit PALM on, at least 1 to check.
MIN_BUDGETS = 5
#: A backtest forecasts at least this far (ratio of budgets) beyond its origin.
MIN_RATIO = 1.1
#: Origins are chosen with their last-budget ratio nearest these (at most one each).
ORIGIN_RATIOS = (2.0, 1.5, 3.0)
#: The grid of the scale multiplier ``m`` and its prior (log-normal, sd 0.7 in log m).
M_GRID = np.array([0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0, 5.6])
M_PRIOR_SD = 0.7
#: The grid of ``rho`` below the library's; the library's own draws get ``LIBRARY_RHO_MASS``.
RHO_GRID = np.array([0.0, 0.25, 0.5, 0.7, 0.85])
LIBRARY_RHO_MASS = 0.5
#: The grid of the drift weight ``g`` and its prior.
G_GRID = np.array([0.0, 0.5, 1.0])
G_PRIOR = np.array([0.25, 0.25, 0.5])
#: Draws of each backtest's Laplace approximation.
LAPLACE_DRAWS = 200
#: Accuracy noise floor of a seed mean (sd), so that identical seeds do not claim exactness.
NOISE_FLOOR = 0.002


@dataclass
class SelfCalibration:
    """What the backtests inside a pilot showed, and the discrepancy they led to.

    Attributes
    ----------
    status : str
        ``"calibrated"``, ``"too short"`` (no curve had enough budgets) or ``"off"``.
    design : str
        ``"grid"`` or ``"stack"``.
    n_curves, n_backtests, n_pairs : int
        Curves backtested, (curve, origin) backtests, pairs of curves cut at the same budget.
    ratio : float
        The distance (budget ratio) of the backtests reported in :attr:`mae`.
    mae : float
        Mean absolute accuracy error of the backtest forecasts ``ratio`` times ahead.
    pairs_total, pairs_changed : int
        Pairs of curves on one dataset, and those whose order changed inside the pilot
        (seed means at about half the pilot's last budget vs at its last).
    posterior : dict
        Posterior mean and 90% interval of ``m``, ``rho`` and ``g`` (grid), or the weights
        of the stacked priors.
    message : str
        A sentence for users (why it fell back, or what it found).
    """

    status: str
    design: str = "grid"
    n_curves: int = 0
    n_backtests: int = 0
    n_pairs: int = 0
    ratio: float = float("nan")
    mae: float = float("nan")
    pairs_total: int = 0
    pairs_changed: int = 0
    posterior: dict[str, Any] = field(default_factory=dict)
    message: str = ""

    def to_json(self) -> str:
        """The summary as JSON (stored in a fit's attributes)."""
        return json.dumps(asdict(self), default=float)

    @classmethod
    def from_json(cls, text: str) -> SelfCalibration:
        """The summary from :meth:`to_json`'s output."""
        return cls(**json.loads(text))

    def describe(self) -> str:
        """The backtest in words."""
        if self.status != "calibrated":
            return self.message
        parts = [
            f"on this pilot, forecasts {self.ratio:.1f}x ahead missed by "
            f"{self.mae:.3f} on average ({self.n_backtests} backtests of {self.n_curves} curves)"
        ]
        if self.pairs_total:
            parts.append(
                f"{self.pairs_changed} of {self.pairs_total} pairs changed order inside the pilot"
            )
        post = self.posterior
        if self.design == "grid" and post:
            parts.append(
                f"the extrapolation discrepancy was rescaled by {post['m']['mean']:.2f} "
                f"(90%: {post['m']['lower']:.2f}-{post['m']['upper']:.2f}) and the correlation "
                f"of two curves' departures is {post['rho']['mean']:.2f} "
                f"(90%: {post['rho']['lower']:.2f}-{post['rho']['upper']:.2f})"
            )
        elif post:
            weights = ", ".join(f"{k} {v:.2f}" for k, v in post.items())
            parts.append(f"prior weights: {weights}")
        return "; ".join(parts)


# ------------------------------------------------------------------ backtests
_BETA = np.geomspace(0.08, 3.0, 27)
_LOG_LAM = np.linspace(-12.0, 3.0, 61)
_ALPHA = np.array([-0.5, 0.0, 1.0, 4.0])  # times the first x


def grid_least_squares(
    x: np.ndarray, y: np.ndarray, weight: np.ndarray
) -> tuple[float, float, float, float]:
    """Weighted least-squares PALM fit by grid search, with ``A_max`` solved in closed form.

    ``x`` are budgets over ``b``, ``y`` seed means, ``weight`` their seed counts. On a grid of
    ``(alpha, beta, log lambda)`` ``A_max`` in ``[0, 1]`` minimises the squared error exactly;
    the best grid point is polished by one bounded least-squares run. Deterministic and a few
    milliseconds per fit (``curve_fit`` from several starts took ~0.3 s), which is what
    backtests at several origins of every curve need.

    Returns
    -------
    tuple of float
        ``(A_max, log_lambda, alpha, beta)``.
    """
    x, y, w = (np.asarray(v, dtype=float) for v in (x, y, weight))
    start = np.array(_grid_pass(x, y, w, _ALPHA * x.min(), _BETA, _LOG_LAM))
    # polish the grid's best point: Levenberg-Marquardt (MINPACK) on unbounded transforms
    a_max, log_lam, alpha, beta = start
    low = -x.min()
    theta0 = np.array([
        np.log(np.clip(a_max, 1e-4, 1 - 1e-4) / (1 - np.clip(a_max, 1e-4, 1 - 1e-4))),
        log_lam, np.log(max(alpha - low, 1e-6)), np.log(beta),
    ])  # fmt: skip
    sqrt_w = np.sqrt(w)

    def natural(theta: np.ndarray) -> tuple[float, float, float, float]:
        return (
            float(1 / (1 + np.exp(-theta[0]))), float(theta[1]),
            float(low + np.exp(theta[2])), float(np.exp(theta[3])),
        )  # fmt: skip

    def parts(theta: np.ndarray):
        a, alpha, beta = 1 / (1 + np.exp(-theta[0])), low + np.exp(theta[2]), np.exp(theta[3])
        log_s = np.log(np.maximum(x + alpha, 1e-300))
        z = np.exp(np.minimum(theta[1] + beta * log_s, 50.0))
        return a, alpha, beta, log_s, z, -np.expm1(-z)

    def resid(theta: np.ndarray) -> np.ndarray:
        a, *_, cover = parts(theta)
        return sqrt_w * (a * cover - y)

    def jac(theta: np.ndarray) -> np.ndarray:
        a, alpha, beta, log_s, z, cover = parts(theta)
        slope = a * np.exp(-z) * z  # d f / d (log z)
        columns = [
            a * (1 - a) * cover, slope, slope * beta / (x + alpha) * (alpha - low),
            slope * log_s * beta,
        ]  # fmt: skip
        return sqrt_w[:, None] * np.stack(columns, axis=1)

    sse0 = float(np.sum((sqrt_w * (palm_curve_log_lambda(x, *start) - y)) ** 2))
    with np.errstate(all="ignore"):
        try:
            polished = least_squares(resid, theta0, jac=jac, method="lm", max_nfev=200)
        except ValueError:
            return tuple(map(float, start))
    if np.all(np.isfinite(polished.x)) and np.sum(polished.fun**2) <= sse0:
        with np.errstate(over="ignore"):  # a diverging beta is refused just below
            result = natural(polished.x)
        if result[3] < 10.0:
            return result
    return tuple(map(float, start))


def _grid_pass(x, y, w, alphas, betas, log_lams):
    a, bt, ll = np.meshgrid(alphas, betas, log_lams, indexing="ij")
    a, bt, ll = a.ravel()[:, None], bt.ravel()[:, None], ll.ravel()[:, None]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        shifted = np.maximum(x[None, :] + a, 1e-12)
        f = -np.expm1(-np.exp(ll + bt * np.log(shifted)))
    amax = np.clip(np.sum(w * f * y, axis=1) / np.maximum(np.sum(w * f * f, axis=1), 1e-300), 0, 1)
    sse = np.sum(w * (amax[:, None] * f - y) ** 2, axis=1)
    k = int(np.nanargmin(sse))
    return float(amax[k]), float(ll[k, 0]), float(a[k, 0]), float(bt[k, 0])


def _curve_levels(sub: xr.Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct budgets, seed means, seed counts, and all (budget, accuracy) points."""
    budget = sub["budget"].to_numpy().ravel()
    acc = sub["accuracy"].to_numpy().ravel()
    keep = np.isfinite(budget) & np.isfinite(acc)
    budget, acc = budget[keep], acc[keep]
    levels, inverse = np.unique(budget, return_inverse=True)
    count = np.bincount(inverse, minlength=levels.size).astype(float)
    mean = np.bincount(inverse, weights=acc, minlength=levels.size) / np.maximum(count, 1)
    return levels, mean, count, np.stack([budget, acc])


def _seed_sd(points: np.ndarray, levels: np.ndarray, mean: np.ndarray) -> float:
    """Pooled within-budget sd of the accuracies (the seed-to-seed noise)."""
    k = np.searchsorted(levels, points[0])
    resid = points[1] - mean[k]
    dof = points.shape[1] - levels.size
    if dof <= 0:
        return NOISE_FLOOR
    return max(float(np.sqrt(np.sum(resid**2) / dof)), NOISE_FLOOR)


def _origins(levels: np.ndarray) -> list[int]:
    """Indices of the budgets to cut at: >= 4 budgets before, >= MIN_RATIO to the last."""
    valid = [
        k for k in range(MIN_BUDGETS - 2, levels.size - 1) if levels[-1] / levels[k] >= MIN_RATIO
    ]
    chosen: list[int] = []
    for ratio in ORIGIN_RATIOS:
        left = [k for k in valid if k not in chosen]
        if left:
            chosen.append(min(left, key=lambda k: abs(np.log(levels[-1] / levels[k] / ratio))))
    return sorted(chosen)


def backtest_pilot(
    curves: xr.Dataset,
    b: xr.DataArray | None = None,
    *,
    forecaster: Literal["laplace", "least_squares"] = "laplace",
    priors: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Rolling-origin backtests of every curve of a pilot.

    Every curve with at least :data:`MIN_BUDGETS` distinct budgets is cut at up to three
    earlier budgets (those from which its last budget lies about 2x, 1.5x and 3x ahead), PALM
    is refitted on the points up to the cut, and the seed mean at the last budget is forecast.
    ``forecaster="laplace"`` (default) refits the Bayesian model itself (the same parameter
    ``priors``) by its Laplace approximation, all backtests in one batch, so each forecast comes
    with the posterior's own spread (``forecast_var``); ``"least_squares"`` refits by weighted
    least squares (a point forecast, ``forecast_var`` 0).

    Parameters
    ----------
    curves : xarray.Dataset
        A curves Dataset (:func:`palm_bayes.load_curves`).
    b : xarray.DataArray, optional
        The normaliser per curve (default: as :func:`palm_bayes.fit` takes it).
    forecaster : {"laplace", "least_squares"}
        How each truncated curve is refitted.
    priors : mapping, optional
        Parameter priors of the Laplace refits (default: :data:`palm_bayes.DEFAULT_PRIORS`).
    seed : int
        Seed of the Laplace draws.

    Returns
    -------
    pandas.DataFrame
        One row per (curve, origin): the curve's labels, ``group`` (its dataset, or ``""``),
        ``origin`` and ``target`` budgets, ``d = log(target / origin)``, the seed mean
        ``observed`` and the forecast ``forecast`` at the target, the logit ``residual`` and
        ``forecast_var`` (the refit's logit variance at the target), ``noise_var`` (the logit
        variance of the seed mean), ``n_seeds``, and the curve prior's features of the refitted
        curve (``palm_slope``, ``palm_level``, ``gain``).
    """
    if forecaster not in ("laplace", "least_squares"):
        raise PalmInputError(
            f"backtest forecaster must be 'laplace' or 'least_squares', got {forecaster!r}"
        )
    jobs = _backtest_jobs(curves, _labels_per_round(curves) if b is None else b)
    if not jobs:
        return pd.DataFrame()
    if forecaster == "laplace":
        z, var = _laplace_forecasts(jobs, merge_priors(priors), seed)
    else:
        z = np.array([_lsq_forecast(job) for job in jobs])
        var = np.zeros(len(jobs))
    dims = curve_dims(curves)
    rows = []
    for job, z_k, var_k in zip(jobs, z, var, strict=True):
        if not np.all(np.isfinite(z_k)):
            continue
        labels, target, observed = job["labels"], job["target"], job["observed"]
        rows.append(
            {
                **{d: labels[d] for d in dims},
                "curve": "|".join(str(labels[d]) for d in dims),
                "group": str(labels.get("dataset", "")),
                "origin": job["origin"],
                "target": target,
                "d": float(np.log(target / job["origin"])),
                "observed": observed,
                "forecast": float(1 / (1 + np.exp(-z_k[2]))),
                "residual": float(logit(observed) - z_k[2]),
                "forecast_var": float(var_k),
                "noise_var": job["noise_var"],
                "n_seeds": job["n_seeds"],
                "palm_level": float(z_k[0]),
                "palm_slope": float((z_k[1] - z_k[0]) / np.log(SLOPE_RATIO)),
                "gain": float(z_k[2] - z_k[0]),
            }
        )
    return pd.DataFrame(rows)


def _backtest_jobs(curves: xr.Dataset, b: xr.DataArray | float) -> list[dict[str, Any]]:
    """One entry per (curve, origin): the truncated curve's points and what it forecasts."""
    jobs = []
    for labels, sub in iter_curves(curves):
        levels, mean, count, points = _curve_levels(sub)
        if levels.size < MIN_BUDGETS:
            continue
        sd = _seed_sd(points, levels, mean)
        scale = float(b.sel(labels)) if isinstance(b, xr.DataArray) else float(b)
        observed = float(mean[-1])
        p = np.clip(observed, 0.01, 0.99)
        noise_var = sd**2 / count[-1] / (p * (1 - p)) ** 2
        n_test = float(sub["n_test"].median()) if "n_test" in sub else np.inf
        for k in _origins(levels):
            jobs.append(
                {
                    "labels": labels, "levels": levels[: k + 1], "mean": mean[: k + 1],
                    "count": count[: k + 1], "points": points[:, points[0] <= levels[k]],
                    "origin": float(levels[k]), "target": float(levels[-1]), "b": scale,
                    "observed": observed, "noise_var": float(noise_var),
                    "n_seeds": float(count[-1]), "n_test": n_test,
                }
            )  # fmt: skip
    return jobs


def _forecast_budgets(job: dict[str, Any]) -> np.ndarray:
    """Budgets (over ``b``) of a backtest's features and forecast: origin, slope point, target."""
    return np.array([job["origin"], SLOPE_RATIO * job["origin"], job["target"]]) / job["b"]


def _lsq_forecast(job: dict[str, Any]) -> np.ndarray:
    """Logit least-squares forecast of one backtest at :func:`_forecast_budgets`."""
    params = grid_least_squares(job["levels"] / job["b"], job["mean"], job["count"])
    return logit(palm_curve_log_lambda(_forecast_budgets(job), *params))


def _laplace_forecasts(
    jobs: list[dict[str, Any]], priors: Mapping[str, Any], seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Median logit forecasts ``(job, 3)`` and their robust variance at the target, by Laplace.

    The variance is that of a Normal with the draws' 5%-95% range (heavy Laplace tails do not
    blow it up). Backtests whose mode was not found get NaN.
    """
    datas = [
        model_data(job["points"][0], job["points"][1], job["b"], job["n_test"]) for job in jobs
    ]
    draws = laplace_draws(datas, priors, draws=LAPLACE_DRAWS, seed=seed)
    budgets = np.stack([_forecast_budgets(job) for job in jobs])  # (job, 3)
    with np.errstate(all="ignore"):
        acc = palm_curve_log_lambda(
            budgets[:, None, :],
            *(draws[n][..., None] for n in ("A_max", "log_lambda", "alpha", "beta")),
        )
    z = logit(acc)  # (job, draw, 3)
    median = np.median(z, axis=1)
    low, high = np.quantile(z[..., 2], [0.05, 0.95], axis=1)
    var = ((high - low) / (2 * 1.6449)) ** 2
    median[~draws["ok"]] = np.nan
    return median, var


def pairs_changed_order(curves: xr.Dataset) -> tuple[int, int]:
    """Pairs of curves on one dataset, and how many changed order inside the pilot.

    Order is that of the seed means at the budget nearest half the pilot's last common budget
    and at that last budget (pairs that tie at either are not counted as changed).
    """
    by_group: dict[str, dict[bytes, list[tuple[np.ndarray, np.ndarray]]]] = {}
    for labels, sub in iter_curves(curves):
        levels, mean, _, _ = _curve_levels(sub)
        if levels.size >= 2:
            group = by_group.setdefault(str(labels.get("dataset", "")), {})
            group.setdefault(levels.tobytes(), []).append((levels, mean))
    total = changed = 0
    for same_levels in by_group.values():
        for members in same_levels.values():  # curves with the same budgets: all pairs at once
            t, c = _changed_same_levels(members[0][0], np.stack([m for _, m in members]))
            total, changed = total + t, changed + c
        for part_a, part_b in itertools.combinations(same_levels.values(), 2):
            for (la, ma), (lb, mb) in itertools.product(part_a, part_b):
                t, c = _changed_pair(la, ma, lb, mb)
                total, changed = total + t, changed + c
    return total, changed


def _half_and_end(common: np.ndarray) -> tuple[float, float]:
    """The budget nearest half the last common budget, and that last budget."""
    end = common[-1]
    return common[np.argmin(np.abs(np.log(common / (end / 2))))], end


def _changed_same_levels(levels: np.ndarray, means: np.ndarray) -> tuple[int, int]:
    """Pairs among curves with the same budgets (``means`` ``(curve, budget)``), changed."""
    n = len(means)
    half, end = _half_and_end(levels)
    if half == end:
        return n * (n - 1) // 2, 0
    at_half, at_end = means[:, levels == half][:, 0], means[:, levels == end][:, 0]
    flips = np.subtract.outer(at_half, at_half) * np.subtract.outer(at_end, at_end) < 0
    return n * (n - 1) // 2, int(np.triu(flips, k=1).sum())


def _changed_pair(la, ma, lb, mb) -> tuple[int, int]:
    """One pair of curves with different budgets: ``(counted, changed)``."""
    common = np.intersect1d(la, lb)
    if common.size < 2:
        return 0, 0
    half, end = _half_and_end(common)
    if half == end:
        return 1, 0
    diff = [ma[la == x][0] - mb[lb == x][0] for x in (half, end)]
    return 1, int(diff[0] * diff[1] < 0)


# ------------------------------------------------------------------ the update
def _prior_terms(prior: CurvePrior, cases: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The library prior's drift and scale (posterior-mean coefficients) of every backtest."""
    w = dict(zip(DRIFT_TERMS, prior.drift.mean(axis=0), strict=True))
    a = dict(zip(SCALE_TERMS, prior.scale.mean(axis=0), strict=True))
    names = prior.feature_names
    if names[0] in cases:
        zs = (cases[names[0]] - prior.feature_mean[names[0]]) / prior.feature_sd[names[0]]
        zl = (cases[names[1]] - prior.feature_mean[names[1]]) / prior.feature_sd[names[1]]
    else:  # older priors' raw-data features: the refitted curve stands in for them
        zs = (cases["palm_slope"] - prior.feature_mean[names[0]]) / prior.feature_sd[names[0]]
        zl = (cases["palm_level"] - prior.feature_mean[names[1]]) / prior.feature_sd[names[1]]
    zs, zl, d = zs.to_numpy(), zl.to_numpy(), cases["d"].to_numpy()
    drift = (
        d * (w["w_0"] + w["w_slope"] * zs + w["w_level"] * zl)
        + w["w_gain"] * cases["gain"].to_numpy()
    )
    log_scale = a["a_0"] + a["a_level"] * zl + a["a_slope"] * zs
    if prior.seed_scale is not None:
        log_scale = log_scale + prior.seed_scale.mean() * np.log(
            cases["n_seeds"].to_numpy() / prior.seed_ref
        )
    scale = np.exp(log_scale) * d ** a["a_power"]
    return drift, scale


def _loglik(
    cases: pd.DataFrame, prior: CurvePrior, m: np.ndarray, rho: np.ndarray, g: np.ndarray
) -> np.ndarray:
    """Tempered Gaussian log likelihood of the backtests at parameter points ``(m, rho, g)``.

    The curves of one group cut at one origin are jointly Normal: mean ``g * drift``, sd
    ``m * scale`` with correlation ``rho`` between curves, plus the seed-mean noise. Each
    (group, origin) block is weighted by 1 / (origins per curve). The covariance is diagonal
    plus rank one (``diag(v) + rho s s^T``), so its log determinant and quadratic form come
    from the matrix determinant lemma and Sherman-Morrison: linear in the curves of a block.
    """
    drift, scale = _prior_terms(prior, cases)
    resid = cases["residual"].to_numpy()
    noise = cases["noise_var"].to_numpy()
    if "forecast_var" in cases:
        noise = noise + cases["forecast_var"].to_numpy()
    per_curve = cases.groupby("curve")["origin"].transform("size").to_numpy()
    total = np.zeros(m.shape)
    for _, idx in cases.groupby(["group", "origin"]).indices.items():
        idx = np.asarray(idx)
        n = idx.size
        mu = g[:, None] * drift[idx][None, :]  # points x n
        s = m[:, None] * scale[idx][None, :]
        r = resid[idx][None, :] - mu
        v = (1 - rho)[:, None] * s**2 + noise[idx][None, :]  # the diagonal part
        ss, sr, rr = (np.sum(x * y / v, axis=1) for x, y in ((s, s), (s, r), (r, r)))
        lemma = 1 + rho * ss
        logdet = np.sum(np.log(v), axis=1) + np.log(lemma)
        quad = rr - rho * sr**2 / lemma
        ll = -0.5 * (quad + logdet + n * np.log(2 * np.pi))
        total += ll / np.mean(per_curve[idx])
    return total


def _grid_points(
    prior: CurvePrior, library_mass: float = LIBRARY_RHO_MASS
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The ``(m, rho, g)`` grid with its log prior; ``rho = -1`` marks the library's draws."""
    rho_values = np.concatenate([RHO_GRID, [-1.0]])
    rho_prior = np.concatenate(
        [np.full(RHO_GRID.size, (1 - library_mass) / RHO_GRID.size), [library_mass]]
    )
    m_prior = np.exp(-0.5 * (np.log(M_GRID) / M_PRIOR_SD) ** 2)
    m_prior /= m_prior.sum()
    mm, rr, gg = (x.ravel() for x in np.meshgrid(M_GRID, rho_values, G_GRID, indexing="ij"))
    pm, pr, pg = (x.ravel() for x in np.meshgrid(m_prior, rho_prior, G_PRIOR, indexing="ij"))
    return mm, rr, gg, np.log(pm * pr * pg)


def _stack_candidates(prior: CurvePrior) -> dict[str, tuple[float, float, float]]:
    """Design ``"stack"``: (m, rho, g) of the library, "rankings cross" and random-walk priors."""
    return {"library": (1.0, -1.0, 1.0), "cross": (2.0, 0.0, 0.0), "wide": (4.0, 0.0, 0.0)}


def calibrate_prior(
    curves: xr.Dataset,
    prior: CurvePrior,
    *,
    design: Literal["grid", "stack"] = "grid",
    b: xr.DataArray | None = None,
    seed: int = 0,
    n_draws: int = 1000,
    library_mass: float = LIBRARY_RHO_MASS,
    forecaster: Literal["laplace", "least_squares"] = "laplace",
    priors: Mapping[str, Any] | None = None,
) -> tuple[CurvePrior, SelfCalibration]:
    """The curve prior updated by backtests inside the pilot ``curves`` (see module docstring).

    Parameters
    ----------
    curves : xarray.Dataset
        The pilot (a curves Dataset).
    prior : CurvePrior
        The library prior (the update's prior).
    design : {"grid", "stack"}
        Grid posterior over ``(m, rho, g)``, or stacking of three fixed priors.
    b : xarray.DataArray, optional
        PALM's normaliser per curve.
    seed : int
        Seed of the draws of the updated prior.
    n_draws : int
        Draws of the updated prior.
    library_mass : float
        Grid design: the prior mass on the library's ``rho`` (see :func:`update_prior`).
    forecaster, priors
        How the backtests refit PALM, and with which parameter priors (:func:`backtest_pilot`).

    Returns
    -------
    (CurvePrior, SelfCalibration)
        The updated prior (the library prior itself when the pilot is too short) and the
        summary of the backtests.
    """
    if design not in ("grid", "stack"):
        raise PalmInputError(f"self-calibration design must be 'grid' or 'stack', got {design!r}")
    if prior.is_zero:
        return prior, SelfCalibration("off", design, message="no discrepancy to calibrate")
    cases = backtest_pilot(curves, b, forecaster=forecaster, priors=priors, seed=seed)
    total, changed = pairs_changed_order(curves)
    if cases.empty:
        longest = max((_curve_levels(s)[0].size for _, s in iter_curves(curves)), default=0)
        return prior, SelfCalibration(
            "too short",
            design,
            pairs_total=total,
            pairs_changed=changed,
            message=(
                f"the pilot is too short to backtest its own forecasts (at most {longest} "
                f"budgets per curve; self-calibration needs {MIN_BUDGETS}): the library prior "
                "is used as it is"
            ),
        )
    updated, posterior = update_prior(
        cases, prior, design=design, seed=seed, n_draws=n_draws, library_mass=library_mass
    )
    near2 = cases.loc[(cases["d"] - np.log(2.0)).abs().groupby(cases["curve"]).idxmin()]
    summary = SelfCalibration(
        "calibrated",
        design,
        n_curves=int(cases["curve"].nunique()),
        n_backtests=len(cases),
        n_pairs=int(
            sum(n * (n - 1) // 2 for n in cases.groupby(["group", "origin"]).size().to_numpy())
        ),
        ratio=float(np.exp(near2["d"].median())),
        mae=float((near2["forecast"] - near2["observed"]).abs().mean()),
        pairs_total=total,
        pairs_changed=changed,
        posterior=posterior,
    )
    return updated, summary


def update_prior(
    cases: pd.DataFrame,
    prior: CurvePrior,
    *,
    design: Literal["grid", "stack"] = "grid",
    seed: int = 0,
    n_draws: int = 1000,
    library_mass: float = LIBRARY_RHO_MASS,
) -> tuple[CurvePrior, dict[str, Any]]:
    """The curve prior updated by backtest residuals (the table of :func:`backtest_pilot`).

    Returns the updated prior (its draws follow the posterior over ``(m, rho, g)``, or over
    the stacked priors) and a summary of that posterior: mean and 90% interval of ``m``,
    ``rho`` and ``g`` (grid), or the weight of each stacked prior. ``library_mass``: the
    grid prior's mass on the library's ``rho`` (the rest is spread evenly over lower values).
    """
    if not 0 < library_mass < 1:
        raise PalmInputError(f"library_mass must lie in (0, 1), got {library_mass!r}")
    if design == "grid":
        mm, rr, gg, log_prior = _grid_points(prior, library_mass)
    else:
        candidates = _stack_candidates(prior)
        mm, rr, gg = (np.array(v) for v in zip(*candidates.values(), strict=True))
        log_prior = np.log(np.full(mm.size, 1.0 / mm.size))
    lib_rho = float(np.mean(prior.rho))
    ll = _loglik(cases, prior, mm, np.where(rr < 0, lib_rho, rr), gg)
    log_post = log_prior + ll
    weights = np.exp(log_post - logsumexp(log_post))
    rng = np.random.default_rng(seed)
    pick = rng.choice(mm.size, size=n_draws, p=weights)
    rows = np.arange(n_draws) % prior.n_draws
    drift = prior.drift[rows] * gg[pick][:, None]
    scale = prior.scale[rows].copy()
    scale[:, 0] += np.log(mm[pick])
    rho = np.where(rr[pick] < 0, prior.rho[rows], rr[pick])
    updated = CurvePrior(
        drift=drift,
        scale=scale,
        rho=rho,
        nu=prior.nu,
        feature_mean=dict(prior.feature_mean),
        feature_sd=dict(prior.feature_sd),
        meta=dict(prior.meta) | {"self_calibrated": design},
        seed_scale=None if prior.seed_scale is None else prior.seed_scale[rows],
        seed_ref=prior.seed_ref,
        seed_offsets=prior.seed_offsets,
    )
    if design == "grid":
        posterior = {
            name: _summary(values, weights)
            for name, values in (("m", mm), ("rho", np.where(rr < 0, lib_rho, rr)), ("g", gg))
        }
    else:
        posterior = {k: float(w) for k, w in zip(_stack_candidates(prior), weights, strict=True)}
    return updated, posterior


def _summary(values: np.ndarray, weights: np.ndarray) -> dict[str, float]:
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    lower = values[order][np.searchsorted(cum, 0.05)]
    upper = values[order][min(np.searchsorted(cum, 0.95), values.size - 1)]
    return {"mean": float(np.sum(values * weights)), "lower": float(lower), "upper": float(upper)}


def self_calibrate(
    curves: Any, prior: CurvePrior, *, design: Literal["grid", "stack"] = "grid", seed: int = 0
) -> tuple[CurvePrior, SelfCalibration]:
    """:func:`calibrate_prior` on anything :func:`palm_bayes.load_curves` reads.

    Examples
    --------
    >>> import palm_bayes as pb
    >>> from palm_bayes.inference.self_calibration import self_calibrate
    >>> curves = pb.simulate_curves(
    ...     {"a": dict(A_max=0.9, delta=0.3, alpha=0.0, beta=0.8)}, budgets=[4, 8, 12, 16]
    ... )
    >>> prior, info = self_calibrate(curves, pb.CurvePrior.brownian(0.3))
    >>> info.status
    'too short'
    """
    from palm_bayes.data.load import load_curves

    return calibrate_prior(load_curves(curves), prior, design=design, seed=seed)


def fit_attrs(
    curves: xr.Dataset,
    prior: CurvePrior,
    *,
    calibrate: bool,
    b: xr.DataArray | None = None,
    seed: int = 0,
    priors: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """The posterior attrs :func:`palm_bayes.fit` stores about the curve prior.

    ``curve_prior`` (the prior every query uses: calibrated on the pilot when ``calibrate``),
    and with ``calibrate`` also ``library_prior`` (the prior before the update) and
    ``self_calibration`` (:class:`SelfCalibration` as JSON).
    """
    if not calibrate:
        return {"curve_prior": prior.to_json()}
    updated, summary = calibrate_prior(curves, prior, b=b, seed=seed, priors=priors)
    return {
        "curve_prior": updated.to_json(),
        "library_prior": prior.to_json(),
        "self_calibration": summary.to_json(),
    }
