"""Sampling many PALM curves with one compiled model.

Compiling a PyMC model costs ~10 s, sampling one curve well under a second: the model is
compiled once per prior configuration and process (nutpie), and each curve's data are swapped
into the compiled model.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from palm_bayes.data.load import curve_dims, iter_curves
from palm_bayes.errors import PalmInputError
from palm_bayes.model.single import (
    FORECAST_ONLY_PRIORS,
    create_palm_model,
    model_data,
    priors_to_json,
)

__all__ = ["sample_curve", "sample_curves", "run_nutpie", "compile_model", "FREE_VARS", "PALM_VARS"]

#: Variables sampled on the unconstrained scale (their r_hat and ESS are the diagnostics).
FREE_VARS = (
    "logit_mid_accuracy",
    "logit_headroom",
    "log_mid_slope",
    "offset",
    "noise",
)
#: PALM parameters and helpers kept in the posterior.
PALM_VARS = ("A_max", "delta", "alpha", "beta", "log_lambda", "mid_accuracy", "mid_slope")

_COMPILED: dict[str, Any] = {}


def compile_model(model, **options: Any):
    """Compile a PyMC model for nutpie so that a seed gives the same draws in every process.

    PyTensor compiles with numba's fast-math flags by default, under which the log density's
    last bits depend on whether its parts were compiled in this process (and inlined) or loaded
    from PyTensor's on-disk cache; NUTS amplifies those bits into different draws. Exact IEEE
    arithmetic gives the same numbers either way (cached under keys of their own).
    """
    import nutpie
    import pytensor

    with warnings.catch_warnings(), pytensor.config.change_flags(numba__fastmath=False):
        warnings.simplefilter("ignore")
        return nutpie.compile_pymc_model(model, **options)


def _compiled_model(data: dict, priors: dict):
    """Return the nutpie-compiled model for these priors, compiling it on first use."""
    model_priors = {k: v for k, v in priors.items() if k not in FORECAST_ONLY_PRIORS}
    key = priors_to_json(model_priors)
    if key not in _COMPILED:
        _COMPILED[key] = compile_model(create_palm_model(data, model_priors))
    return _COMPILED[key]


def run_nutpie(compiled, *, progress: bool, desc: str = "sampling", **options: Any):
    """``nutpie.sample`` with PyMC's and nutpie's warnings silenced (we report diagnostics).

    With ``progress``, a tqdm bar counts draws (tuning included) and divergent transitions
    in any terminal or log file (nutpie's own bar shows only in notebooks and terminals).
    """
    import nutpie

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not progress:
            return nutpie.sample(compiled, progress_bar=False, **options)
        sampler = nutpie.sample(compiled, progress_bar=False, blocking=False, **options)
        total = int(options.get("chains", 6)) * (
            int(options.get("tune", 300)) + int(options.get("draws", 1000))
        )
        try:
            with tqdm(total=total, desc=desc, unit="draw", mininterval=1.0) as bar:
                pause = 1.0
                while not _finished(sampler):
                    time.sleep(pause)
                    start = time.perf_counter()
                    done, divergent = _progress(sampler.inspect())
                    # reading the trace so far must not slow the sampler down much
                    pause = max(1.0, 20 * (time.perf_counter() - start))
                    bar.update(max(0, min(done, total) - bar.n))
                    bar.set_postfix(divergences=divergent, refresh=False)
                trace = sampler.wait()
                bar.set_postfix(divergences=_progress(trace)[1], refresh=False)
                bar.update(total - bar.n)
        except BaseException:
            sampler.cancel()
            raise
        return trace


def _finished(sampler) -> bool:
    try:
        return bool(sampler.is_finished)
    except TimeoutError:  # nutpie 0.16 raises instead of answering False
        return False


def _progress(trace) -> tuple[int, int]:
    """Draws done over all chains (tuning included), and divergent transitions after tuning."""
    done, divergent = 0, 0
    for group in ("warmup_sample_stats", "sample_stats"):
        if group in trace.groups():
            stats = trace[group]
            done += int(stats.sizes.get("chain", 0) * stats.sizes.get("draw", 0))
    if "sample_stats" in trace.groups() and "diverging" in trace.sample_stats:
        divergent = int(trace.sample_stats["diverging"].sum())
    return done, divergent


def sample_curve(
    data: dict,
    priors: dict,
    *,
    chains: int,
    draws: int,
    tune: int,
    target_accept: float,
    seed: int,
    cores: int,
) -> dict[str, np.ndarray]:
    """Sample one curve's posterior.

    Returns
    -------
    dict
        Arrays of shape ``(chains, draws)`` for every variable in ``FREE_VARS + PALM_VARS``,
        plus ``diverging`` (bool) and ``seconds`` (wall time of this curve, a scalar).
    """
    start = time.perf_counter()
    compiled = _compiled_model(data, priors).with_data(**data)
    trace = run_nutpie(
        compiled,
        chains=chains,
        draws=draws,
        tune=tune,
        seed=seed,
        target_accept=target_accept,
        cores=cores,
        progress=False,
    )
    out = {name: trace.posterior[name].to_numpy() for name in FREE_VARS + PALM_VARS}
    out["diverging"] = trace.sample_stats["diverging"].to_numpy()
    out["seconds"] = np.float64(time.perf_counter() - start)
    return out


def sample_curves(
    curves: xr.Dataset,
    b: xr.DataArray,
    priors: dict,
    *,
    chains: int,
    draws: int,
    tune: int,
    target_accept: float,
    seed: int,
    cores: int,
    progress: bool,
    method: str = "nuts",
) -> tuple[xr.Dataset, xr.Dataset, xr.Dataset]:
    """Sample one independent PALM per curve (curve ``k`` with ``seed + k``).

    ``method="nuts"`` samples every curve with nutpie; ``"importance"`` samples all curves at
    once by importance sampling (:mod:`palm_bayes.inference.importance`) and those whose
    Pareto ``k`` or effective sample size fail with nutpie, as ``"nuts"`` would.

    Returns
    -------
    posterior, sample_stats, constant : xarray.Dataset
        Over ``(chain, draw, *curve_dims)`` (NaN where a curve has no data) and, for the
        constants (``x_first, x_mid, first_budget, last_budget, n_test, b, fitted,
        sampling_seconds``, and for importance sampling ``pareto_k``, ``importance_ess`` and
        ``nuts_fallback``, true for the curves sampled with NUTS), over the curve dims.
    """
    dims = curve_dims(curves)
    shape = tuple(curves.sizes[d] for d in dims)
    coords = {d: curves[d].to_numpy() for d in dims}
    names = FREE_VARS + PALM_VARS
    post = {n: np.full((chains, draws, *shape), np.nan) for n in names}
    diverging = np.zeros((chains, draws, *shape), dtype=bool)
    seconds = np.full(shape, np.nan)
    const = {
        n: np.full(shape, np.nan)
        for n in ("x_first", "x_mid", "first_budget", "last_budget", "n_test")
    }
    fitted = np.zeros(shape, dtype=bool)

    prepared = _prepare(curves, b, dims, coords)
    if not prepared:
        raise PalmInputError("no curve has any observed point")
    for index, data, stats in prepared:
        const["x_first"][index] = data["x_first"]
        const["x_mid"][index] = data["x_mid"]
        for name, value in stats.items():
            const[name][index] = value
        fitted[index] = True

    nuts_curves = list(range(len(prepared)))
    extra = {}
    if method == "importance":
        from palm_bayes.inference.importance import importance_sample

        start = time.perf_counter()
        found = importance_sample(
            [data for _, data, _ in prepared],
            priors,
            chains=chains,
            draws=draws,
            seeds=[seed + k for k in range(len(prepared))],
        )
        each = (time.perf_counter() - start) / len(prepared)
        extra = {n: np.full(shape, np.nan) for n in ("pareto_k", "importance_ess")}
        for k, (index, _, _) in enumerate(prepared):
            extra["pareto_k"][index] = found["pareto_k"][k]
            extra["importance_ess"][index] = found["ess"][k]
            seconds[index] = each
            if found["ok"][k]:
                for n in names:
                    post[n][(slice(None), slice(None), *index)] = found[n][k]
        nuts_curves = [k for k in nuts_curves if not found["ok"][k]]
        extra["nuts_fallback"] = np.zeros(shape, dtype=bool)
        for k in nuts_curves:
            extra["nuts_fallback"][prepared[k][0]] = True
    elif method != "nuts":
        raise PalmInputError(f"method must be 'nuts' or 'importance', got {method!r}")

    for k in tqdm(nuts_curves, desc="PALM fits", unit="curve", disable=not progress):
        index, data, _ = prepared[k]
        draws_k = sample_curve(
            data,
            priors,
            chains=chains,
            draws=draws,
            tune=tune,
            target_accept=target_accept,
            seed=seed + k,
            cores=cores,
        )
        for n in names:
            post[n][(slice(None), slice(None), *index)] = draws_k[n]
        diverging[(slice(None), slice(None), *index)] = draws_k["diverging"]
        seconds[index] = draws_k["seconds"] + (0.0 if np.isnan(seconds[index]) else seconds[index])

    sample_dims = ("chain", "draw", *dims)
    sample_coords = {"chain": np.arange(chains), "draw": np.arange(draws), **coords}
    posterior = xr.Dataset({n: (sample_dims, v) for n, v in post.items()}, coords=sample_coords)
    sample_stats = xr.Dataset({"diverging": (sample_dims, diverging)}, coords=sample_coords)
    constant = xr.Dataset(
        {n: (dims, v) for n, v in (const | extra).items()}
        | {"b": b.transpose(*dims), "fitted": (dims, fitted), "sampling_seconds": (dims, seconds)},
        coords=coords,
    )
    return posterior, sample_stats, constant


def _prepare(curves: xr.Dataset, b: xr.DataArray, dims, coords) -> list[tuple]:
    """Per curve with data: its grid index, model data and summary constants."""
    prepared = []
    for labels, sub in iter_curves(curves):
        index = tuple(int(np.flatnonzero(coords[d] == labels[d])[0]) for d in dims)
        b_k = float(b.sel(labels))
        n_test = sub["n_test"].broadcast_like(sub["accuracy"]) if "n_test" in sub else np.inf
        data = model_data(
            sub["budget"].to_numpy(), sub["accuracy"].to_numpy(), b_k, np.asarray(n_test)
        )
        budgets = sub["budget"].to_numpy()
        stats = {"first_budget": np.nanmin(budgets), "last_budget": np.nanmax(budgets)}
        if "n_test" in sub:
            stats["n_test"] = float(np.nanmedian(np.asarray(n_test, dtype=float)))
        prepared.append((index, data, stats))
    return prepared
