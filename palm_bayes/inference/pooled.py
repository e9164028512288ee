"""Hierarchical PALM: partial pooling of curve parameters across datasets, strategies, ...

Every curve ``c`` (one combination of the id dims; seeds are replicates) has four unconstrained
parameters ``theta_c`` (:data:`PARAMS`): the data-identified parameters of the independent model
(:mod:`palm_bayes.model.single`), taken at one reference budget ``x_ref`` (in rounds of the common
``b``) shared by all curves, so that they mean the same for every curve:

``logit_ref_accuracy``
    ``logit A(x_ref)``: the accuracy at the reference budget.
``logit_headroom``
    logit of the reachable share of the headroom ``1 - A(x_ref)``: sets ``A_max``.
``log_ref_slope``
    ``log dA/dlog B`` at ``x_ref``: the accuracy gained per e-fold of labels there.
``offset``
    ``log1p(alpha / x_first)``: the onset, ``alpha > -x_first``.

``x_ref`` is the median of the curves' geometric mid budgets (raised to a curve's first budget
where that lies beyond it). Sampling ``A_max, delta, alpha, beta`` (or their logs) directly
gave tree depths of ~1,000 leapfrog steps per draw; this parametrisation samples like the
independent model.

They are pooled with additive, non-centred group effects, one per dim named in ``hierarchy``::

    theta_c = mu + sum_g sigma_g * z_g[level_g(c)] + sigma_curve * z_curve[c]

so ``hierarchy=("strategy",)`` gives every strategy its population of curves (over datasets),
and ``("strategy", "dataset")`` adds crossed dataset effects (a hard dataset lowers the
``A_max`` of every strategy). The priors (:data:`HIERARCHICAL_PRIORS`) are Normal on ``mu`` and
HalfNormal on the group scales ``sigma_g`` and the curve scale ``sigma_curve``; the curve scale
of ``logit_A_max`` is wide, so a curve's asymptote is mostly its own data's business while
shapes and onsets borrow strength. The likelihood is the one of the independent model
(:mod:`palm_bayes.model.single`): seed means and seed spread per budget, with a seed-to-seed
``noise``
per curve.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import arviz as az
import numpy as np
import pymc as pm
import xarray as xr
from tqdm.auto import tqdm

from palm_bayes.data.prepare import CurveStats
from palm_bayes.errors import PalmInputError
from palm_bayes.inference.health import EarlyWarnings
from palm_bayes.inference.sampling import compile_model, run_nutpie
from palm_bayes.model.likelihood import palm_likelihood
from palm_bayes.model.single import (
    DEFAULT_PRIORS,
    PARAMS,
    palm_from_identified,
    palm_from_theta,
    palm_mean,
)

__all__ = [
    "HIERARCHICAL_PRIORS",
    "check_hierarchy",
    "free_vars",
    "hierarchical_data",
    "create_hierarchical_model",
    "sample_hierarchical",
    "new_member_posterior",
]


#: Default priors of the hierarchical model, per unconstrained parameter: ``mu ~ N(mu, sigma)``
#: for the population mean, ``sigma_<dim> ~ HalfNormal(group_sd)`` for each pooled dim and
#: ``sigma_curve ~ HalfNormal(curve_sd)`` for curves within their groups. ``noise`` and
#: ``extrapolation`` are as in :data:`palm_bayes.DEFAULT_PRIORS`.
HIERARCHICAL_PRIORS: dict[str, dict[str, float]] = {
    # accuracy at the reference budget: spread over (0, 1)
    "logit_ref_accuracy": {"mu": 0.0, "sigma": 1.5, "group_sd": 1.0, "curve_sd": 0.5},
    # reachable headroom (A_max): curves keep much of their own (curve_sd wide)
    "logit_headroom": {"mu": 0.0, "sigma": 1.5, "group_sd": 1.0, "curve_sd": 1.0},
    # slope per e-fold of labels at the reference: median 0.05
    "log_ref_slope": {"mu": -3.0, "sigma": 1.5, "group_sd": 0.7, "curve_sd": 0.5},
    # onset: alpha = x_first * expm1(offset)
    "offset": {"mu": 0.0, "sigma": 1.0, "group_sd": 0.5, "curve_sd": 0.3},
    "noise": {"sigma": 0.05, "floor": 0.001},
    "extrapolation": {"sd": 0.3},
}

#: Extra options of ``nutpie.sample`` for the joint model.
NUTPIE_OPTIONS: dict[str, Any] = {}

#: 1 where the curve-level deviation is sampled centred, 0 where non-centred (order of PARAMS).
CENTRED_PARAMS = np.array([1.0, 0.0, 1.0, 0.0])
#: The same for the group effects of a dim with at least ``MANY_LEVELS`` levels (as for curves).
GROUP_CENTRED_PARAMS = CENTRED_PARAMS
#: A dim with fewer levels has all four effects non-centred: its scale is weakly identified
#: and centred effects form a funnel with it (the shipped 3 x 3 example: 43-57 divergent
#: transitions in 8,000 draws centred, none non-centred); with many levels the scale is well
#: identified and centred accuracy and slope effects mix better (200 simulated curves of 10
#: strategies x 20 datasets: r_hat 1.006-1.010 centred, 1.012 non-centred, and 70% slower).
MANY_LEVELS = 8


def group_centring(n_levels: int) -> np.ndarray:
    """1 where a dim's effect is sampled centred, 0 where non-centred (order of PARAMS)."""
    return GROUP_CENTRED_PARAMS if n_levels >= MANY_LEVELS else np.zeros(len(PARAMS))


#: Curve-level posterior variables, stored with the curve dims.
CURVE_VARS = ("A_max", "delta", "alpha", "beta", "log_lambda", "noise", "z_curve")


def check_hierarchy(stats: CurveStats, hierarchy: Sequence[str] | str) -> tuple[str, ...]:
    """Validate a hierarchy spec against the prepared curves' dims; return it as a tuple."""
    if isinstance(hierarchy, str):
        hierarchy = [h.strip() for h in hierarchy.split(",") if h.strip()]
    hierarchy = tuple(hierarchy)
    dims = stats.dims
    if not hierarchy:
        raise PalmInputError("hierarchy names no dimension; use e.g. ('strategy',)")
    if len(set(hierarchy)) != len(hierarchy):
        raise PalmInputError(f"hierarchy {list(hierarchy)} repeats a dimension")
    for dim in hierarchy:
        if dim == "seed":
            raise PalmInputError(
                "seeds are replicate observations of their curve, not a level of the hierarchy"
            )
        if dim not in dims:
            raise PalmInputError(
                f"hierarchy: unknown dimension {dim!r}; the curves are identified by {list(dims)}"
            )
        if stats.coords[dim].size < 2:
            raise PalmInputError(
                f"hierarchy: dimension {dim!r} has a single level ({stats.coords[dim].tolist()}); "
                "pooling needs at least two"
            )
    return hierarchy


def hierarchical_data(stats: CurveStats, hierarchy: Sequence[str]) -> dict[str, Any]:
    """Concatenate the prepared curves' sufficient statistics into one set of arrays.

    ``stats`` is prepared with one common ``b`` (``prepare_curves(..., common_b=True)``).

    Returns
    -------
    dict
        Per observation (curve x budget): ``x, mean_accuracy, n_seeds, inv_n_test,
        curve_index``; replicated ones: ``rep_index, rep_sq_dev``; per curve (in the order of
        ``stats``' ``curve`` dim): ``x_first``, ``x_ref``, ``level_<dim>``; and the scalar
        ``x_ref_common``.
    """
    parts = stats.datas
    if len(parts) < 2:
        raise PalmInputError("a hierarchical fit needs at least two curves with data")
    sizes = np.array([p["x"].size for p in parts])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    cat = {k: np.concatenate([p[k] for p in parts]) for k in ("x", "mean_accuracy", "n_seeds")}
    cat["inv_n_test"] = np.concatenate([p["inv_n_test"] for p in parts])
    cat["curve_index"] = np.repeat(np.arange(len(parts)), sizes).astype("int64")
    cat["rep_index"] = np.concatenate(
        [p["rep_index"] + s for p, s in zip(parts, starts, strict=True)]
    ).astype("int64")
    cat["rep_sq_dev"] = np.concatenate([p["rep_sq_dev"] for p in parts])
    x_first = np.array([p["x_first"] for p in parts])
    x_ref = float(np.exp(np.median(np.log([p["x_mid"] for p in parts]))))
    cat["x_first"] = x_first
    cat["x_ref"] = np.maximum(x_ref, x_first)
    cat["x_ref_common"] = x_ref
    for dim in hierarchy:
        levels = stats.coords[dim].tolist()
        labels = stats.constants[dim].to_numpy().tolist()
        cat[f"level_{dim}"] = np.array([levels.index(lab) for lab in labels], dtype="int64")
    return cat


def prior_vector(priors: Mapping[str, Mapping[str, float]]):
    """``field -> array over PARAMS`` of the hierarchical priors."""
    return lambda field: np.array([priors[p][field] for p in PARAMS])


def population_mean(
    data: Mapping[str, Any],
    hierarchy: Sequence[str],
    levels: Mapping[str, Sequence[Any]],
    priors: Mapping[str, Mapping[str, float]],
    *,
    centred_groups: bool = True,
):
    """Inside a model: ``mu`` and the group effects; returns each curve's population mean.

    The ``(curve, param)`` tensor ``mu + sum_g effect_g[level_g(c)]`` (see the module
    docstring); the curve-level deviations are added by the caller. ``centred_groups=False``
    samples every group effect non-centred (see :func:`group_centring` for the default).
    """
    vec = prior_vector(priors)
    mu = pm.Normal("mu", mu=vec("mu"), sigma=vec("sigma"), dims="param")
    theta = mu[None, :]
    for dim in hierarchy:
        scale = pm.HalfNormal(f"sigma_{dim}", sigma=vec("group_sd"), dims="param")
        # effects sum to zero over the levels, so ``mu`` is the mean over the levels and
        # not traded against a shift of all effects (that ridge gave r_hat ~1.03);
        # centred or not by the number of levels (see group_centring)
        centred = group_centring(len(levels[dim]) if centred_groups else 0)[:, None]
        z = pm.ZeroSumNormal(
            f"z_{dim}", sigma=scale[:, None] * centred + (1 - centred), dims=("param", dim)
        )
        effect = pm.Deterministic(
            f"effect_{dim}",
            (centred * z + (1 - centred) * z * scale[:, None]).T,
            dims=(dim, "param"),
        )
        theta = theta + effect[data[f"level_{dim}"]]
    return theta


def create_hierarchical_model(
    data: Mapping[str, Any],
    hierarchy: Sequence[str],
    levels: Mapping[str, Sequence[Any]],
    priors: Mapping[str, Mapping[str, float]],
) -> pm.Model:
    """Build the PyMC model of all curves with pooled parameters (see the module docstring)."""
    vec = prior_vector(priors)
    n_curves = int(data["x_first"].size)
    coords = {"param": list(PARAMS), "curve": np.arange(n_curves)}
    coords |= {dim: list(levels[dim]) for dim in hierarchy}
    with pm.Model(coords=coords) as model:
        theta = population_mean(data, hierarchy, levels, priors)
        scale_c = pm.HalfNormal("sigma_curve", sigma=vec("curve_sd"), dims="param")
        # centred where each curve's data pin the parameter down (accuracy and slope at the
        # reference), non-centred where they do not (headroom, onset): no funnel either way
        centred = CENTRED_PARAMS
        raw = pm.Normal(
            "z_curve",
            mu=theta * centred,
            sigma=scale_c * centred + (1 - centred),
            dims=("curve", "param"),
        )
        theta = centred * raw + (1 - centred) * (theta + raw * scale_c)
        noise = pm.HalfNormal("noise", sigma=priors["noise"]["sigma"], dims="curve")

        palm = palm_from_identified(
            theta[:, 0], theta[:, 1], theta[:, 2], theta[:, 3], data["x_first"], data["x_ref"]
        )
        for name in ("A_max", "delta", "alpha", "beta", "log_lambda"):
            pm.Deterministic(name, palm[name], dims="curve")
        a_max, alpha, beta, log_lam = (palm[k] for k in ("A_max", "alpha", "beta", "log_lambda"))

        ci = data["curve_index"]
        mu = palm_mean(data["x"], a_max[ci], log_lam[ci], beta[ci], alpha[ci])
        palm_likelihood(
            mu,
            noise[ci],
            data["mean_accuracy"],
            data["n_seeds"],
            data["inv_n_test"],
            data["rep_index"],
            data["rep_sq_dev"],
            priors["noise"].get("floor", DEFAULT_PRIORS["noise"]["floor"]),
        )
    return model


def initial_points(
    data: Mapping[str, Any], hierarchy: Sequence[str], priors: Mapping[str, Mapping[str, float]]
) -> dict[str, np.ndarray]:
    """Data-driven starting values: each curve's logit accuracy and log slope at ``x_ref``.

    The accuracy is interpolated on the logit scale against ``log x`` (held constant beyond the
    observed budgets), the slope is the curve's mean gain per e-fold of labels.
    """
    ci, log_x = data["curve_index"], np.log(data["x"])
    acc = np.clip(data["mean_accuracy"], 0.02, 0.98)
    n = int(data["x_first"].size)
    theta = np.zeros((n, len(PARAMS)))
    for c in range(n):
        own = ci == c
        lx, a = log_x[own], acc[own]
        theta[c, 0] = np.interp(np.log(data["x_ref"][c]), lx, np.log(a / (1 - a)))
        gain = (a[-1] - a[0]) / max(lx[-1] - lx[0], 1e-9)
        theta[c, 2] = np.log(np.clip(gain, 1e-3, 0.5))
    centred = CENTRED_PARAMS
    mu = np.array([priors[p]["mu"] for p in PARAMS])
    mu = np.where(centred > 0, theta.mean(axis=0), mu)
    points = {"mu": mu, "z_curve": theta * centred, "noise": np.full(n, 0.02)}
    points["sigma_curve"] = np.array([priors[p]["curve_sd"] for p in PARAMS]) / 2
    for dim in hierarchy:
        points[f"sigma_{dim}"] = np.array([priors[p]["group_sd"] for p in PARAMS]) / 2
    return points


def free_vars(hierarchy: Sequence[str]) -> list[str]:
    """The variables a pooled fit samples on the unconstrained scale (its diagnostics)."""
    return ["mu", "sigma_curve", "z_curve", "noise"] + [
        f"{kind}_{dim}" for dim in hierarchy for kind in ("sigma", "z")
    ]


def sample_hierarchical(
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
    """Compile and sample the hierarchical model of the prepared curves (nutpie).

    Returns
    -------
    posterior : xarray.Dataset
        Curve-level variables (:data:`CURVE_VARS`) over ``(chain, draw, curve[, param])``, the
        stacked ``curve`` dim of ``stats``, and group-level ``mu, sigma_<dim>, effect_<dim>,
        z_<dim>, sigma_curve``.
    sample_stats : xarray.Dataset
        ``diverging, n_steps, step_size`` over ``(chain, draw)``.
    constant : xarray.Dataset
        Per curve ``x_first, x_ref, first_budget, last_budget, n_test, fitted,
        sampling_seconds``; the scalars ``x_ref_common`` and ``total_seconds`` (compile +
        sampling wall time).
    """
    data = hierarchical_data(stats, hierarchy)
    levels = {dim: stats.coords[dim].tolist() for dim in hierarchy}
    n = len(stats.datas)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = create_hierarchical_model(data, hierarchy, levels, priors)
        # every chain starts from the curves' own rough level and slope: started from the
        # prior, chains of large fits got stuck in poor modes with a collapsed step size
        compiled = compile_model(
            model, initial_points=initial_points(data, hierarchy, priors), jitter_rvs=set()
        )
    if progress:
        tqdm.write(
            f"sampling the hierarchical PALM of {n} curves (pooled over {', '.join(hierarchy)})"
        )
    watch = EarlyWarnings(
        n,
        chains=chains,
        tune=tune,
        draws=draws,
        target_accept=target_accept,
        free_vars=free_vars(hierarchy),
    )
    trace = run_nutpie(
        compiled,
        progress=progress,
        desc=f"pooled fit of {n} curves",
        watch=watch,
        chains=chains,
        draws=draws,
        tune=tune,
        seed=seed,
        target_accept=target_accept,
        cores=cores,
        **NUTPIE_OPTIONS,
    )
    seconds = time.perf_counter() - start

    post = trace.posterior
    out = {
        name: (post[name].dims, post[name].to_numpy())
        for name in CURVE_VARS
        + ("mu", "sigma_curve")
        + tuple(f"{kind}_{dim}" for dim in hierarchy for kind in ("sigma", "effect", "z"))
    }
    chain_draw = {"chain": np.arange(chains), "draw": np.arange(draws)}
    posterior = xr.Dataset(out, coords=chain_draw | {"param": list(PARAMS)})
    sample_stats = xr.Dataset(
        {
            name: (("chain", "draw"), trace.sample_stats[name].to_numpy())
            for name in ("diverging", "n_steps", "step_size")
        },
        coords=chain_draw,
    )
    constant = stats.constants[["x_first", "first_budget", "last_budget", "n_test"]].assign(
        x_ref=("curve", data["x_ref"]),
        fitted=("curve", np.ones(n, dtype=bool)),
        sampling_seconds=("curve", np.full(n, seconds / n)),
        x_ref_common=data["x_ref_common"],
        total_seconds=seconds,
    )
    return posterior, sample_stats, constant


def new_member_posterior(
    idata: az.InferenceData,
    hierarchy: Sequence[str],
    dims: Sequence[str],
    new: Iterable[str],
    seed: int = 0,
) -> tuple[xr.Dataset, xr.Dataset]:
    """Posterior draws of the PALM parameters of a new, unseen member of the ``new`` dims.

    The group effects of the ``new`` dims are drawn afresh from their populations (shared by
    every curve of the new member: a new dataset is hard or easy for all strategies alike),
    the curve-level deviation afresh for each curve; the effects of the other pooled dims stay
    those of their labels. Other id dims keep their labels.

    Returns
    -------
    posterior : xarray.Dataset
        ``A_max, delta, alpha, beta, log_lambda, noise`` over ``(chain, draw, *kept dims)``.
    constants : xarray.Dataset
        ``b, x_first, first_budget, last_budget, n_test, fitted`` over the kept dims (the
        medians over the fitted curves; ``last_budget`` their largest).
    """
    new = tuple(new)
    for dim in new:
        if dim not in dims:
            raise PalmInputError(
                f"new: unknown dimension {dim!r}; the curves are identified by {list(dims)}"
            )
    kept = [d for d in dims if d not in new]
    post, const = idata.posterior, idata.constant_data
    rng = np.random.default_rng(seed)
    chains, draws = post.sizes["chain"], post.sizes["draw"]

    def normal(*shape_dims: tuple[str, int]) -> xr.DataArray:
        names = ["chain", "draw"] + [n for n, _ in shape_dims]
        sizes = [chains, draws] + [s for _, s in shape_dims]
        return xr.DataArray(rng.standard_normal(sizes), dims=names)

    n_param = post.sizes["param"]
    theta = post["mu"]
    for dim in hierarchy:
        if dim in new:
            theta = theta + post[f"sigma_{dim}"] * normal(("param", n_param))
        else:
            theta = theta + post[f"effect_{dim}"]
    kept_coords = {d: post[d].to_numpy() for d in kept}
    missing = [d for d in kept if d not in theta.dims]
    theta = theta.expand_dims({d: kept_coords[d] for d in missing})
    theta = theta.transpose("chain", "draw", *kept, "param")
    theta = theta + post["sigma_curve"] * xr.DataArray(
        rng.standard_normal(theta.shape), dims=theta.dims
    )
    theta = theta.assign_coords(param=list(PARAMS))
    fitted = const["fitted"]
    x_first = float(const["x_first"].where(fitted).median())
    x_ref = float(const["x_ref_common"])
    b = float(const["b"].where(fitted).median())
    palm = palm_from_theta(theta, x_first, x_ref)
    noise = post["noise"].median([d for d in dims if d in post["noise"].dims])
    posterior = xr.Dataset(
        {k: palm[k] for k in ("A_max", "delta", "alpha", "beta", "log_lambda")}
        | {"noise": noise.broadcast_like(palm["beta"])}
    ).transpose("chain", "draw", *kept)
    template = xr.DataArray(
        np.ones([len(kept_coords[d]) for d in kept]), dims=kept, coords=kept_coords
    )
    n_test = const["n_test"].where(fitted).median()
    constants = xr.Dataset(
        {
            "b": template * b,
            "x_first": template * x_first,
            "first_budget": template * float(const["first_budget"].where(fitted).min()),
            "last_budget": template * float(const["last_budget"].where(fitted).max()),
            "n_test": template * float(n_test),
            "fitted": template.astype(bool),
            "sampling_seconds": template * np.nan,
        }
    )
    return posterior, constants
