"""Sampling many PALM curves with one compiled model.

Compiling a PyMC model costs ~10 s, sampling one curve well under a second: the model is
compiled once per prior configuration and process (nutpie), and each curve's data are swapped
into the compiled model.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from palm_bayes.data.prepare import CurveStats
from palm_bayes.errors import PalmInputError
from palm_bayes.model.single import FORECAST_ONLY_PRIORS, create_palm_model, priors_to_json

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


def run_nutpie(
    compiled,
    *,
    progress: bool,
    desc: str = "sampling",
    watch: Callable[[Any, float], None] | None = None,
    **options: Any,
):
    """``nutpie.sample`` with PyMC's and nutpie's warnings silenced (we report diagnostics).

    With ``progress``, a tqdm bar counts draws (tuning included) and divergent transitions
    in any terminal or log file (nutpie's own bar shows only in notebooks and terminals).
    ``watch(trace_so_far, seconds)`` is called while the sampler runs (e.g.
    :class:`palm_bayes.inference.health.EarlyWarnings`); its warnings reach the caller.
    """
    import nutpie

    if not progress and watch is None:
        return _quiet(nutpie.sample, compiled, progress_bar=False, **options)
    sampler = _quiet(nutpie.sample, compiled, progress_bar=False, blocking=False, **options)
    total = int(options.get("chains", 6)) * (
        int(options.get("tune", 300)) + int(options.get("draws", 1000))
    )
    began = time.perf_counter()
    try:
        with tqdm(
            total=total, desc=desc, unit="draw", mininterval=1.0, disable=not progress
        ) as bar:
            pause = 1.0
            while not _wait(sampler, pause):
                start = time.perf_counter()
                so_far = _quiet(sampler.inspect)
                done, divergent = _progress(so_far)
                # reading the trace so far must not slow the sampler down much
                pause = max(1.0, 20 * (time.perf_counter() - start))
                bar.update(max(0, min(done, total) - bar.n))
                bar.set_postfix(divergences=divergent, refresh=False)
                if watch is not None:
                    watch(so_far, time.perf_counter() - began)
            trace = _quiet(sampler.wait)
            bar.set_postfix(divergences=_progress(trace)[1], refresh=False)
            bar.update(total - bar.n)
    except BaseException:
        sampler.cancel()
        raise
    return trace


def _quiet(function: Callable, *args: Any, **kwargs: Any) -> Any:
    """Call ``function`` with every warning silenced (nutpie's and PyMC's chatter)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


def _wait(sampler, seconds: float) -> bool:
    """Sleep up to ``seconds`` in short naps; whether the sampler finished meanwhile."""
    end = time.perf_counter() + seconds
    while not _finished(sampler):
        left = end - time.perf_counter()
        if left <= 0:
            return False
        time.sleep(min(0.5, left))
    return True


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
    stats: CurveStats,
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
    """Sample one independent PALM per prepared curve (curve ``k`` with ``seed + k``).

    ``method="nuts"`` samples every curve with nutpie; ``"importance"`` samples all curves at
    once by importance sampling (:mod:`palm_bayes.inference.importance`) and those whose
    Pareto ``k`` or effective sample size fail with nutpie, as ``"nuts"`` would.

    Returns
    -------
    posterior, sample_stats, constant : xarray.Dataset
        Over ``(chain, draw, curve)`` (the stacked ``curve`` dim of ``stats``; laid onto the
        curve grid by :meth:`~palm_bayes.data.prepare.CurveStats.assemble`) and, for the
        constants (``stats.constants``, ``fitted``, ``sampling_seconds`` and for importance
        sampling ``pareto_k``, ``importance_ess`` and ``nuts_fallback``, true for the curves
        sampled with NUTS), over ``curve``.
    """
    names = FREE_VARS + PALM_VARS
    datas = stats.datas
    n = len(datas)
    post = {name: np.full((chains, draws, n), np.nan) for name in names}
    diverging = np.zeros((chains, draws, n), dtype=bool)
    seconds = np.full(n, np.nan)
    extra: dict[str, np.ndarray] = {}
    nuts_curves = list(range(n))
    if method == "importance":
        from palm_bayes.inference.importance import importance_sample

        start = time.perf_counter()
        found = importance_sample(
            datas, priors, chains=chains, draws=draws, seeds=[seed + k for k in range(n)]
        )
        seconds[:] = (time.perf_counter() - start) / n
        for name in names:
            post[name][..., found["ok"]] = np.moveaxis(found[name][found["ok"]], 0, -1)
        nuts_curves = [k for k in nuts_curves if not found["ok"][k]]
        extra = {
            "pareto_k": found["pareto_k"],
            "importance_ess": found["ess"],
            "nuts_fallback": ~found["ok"],
        }
    elif method != "nuts":
        raise PalmInputError(f"method must be 'nuts' or 'importance', got {method!r}")

    for k in tqdm(nuts_curves, desc="PALM fits", unit="curve", disable=not progress):
        draws_k = sample_curve(
            datas[k],
            priors,
            chains=chains,
            draws=draws,
            tune=tune,
            target_accept=target_accept,
            seed=seed + k,
            cores=cores,
        )
        for name in names:
            post[name][..., k] = draws_k[name]
        diverging[..., k] = draws_k["diverging"]
        seconds[k] = draws_k["seconds"] + (0.0 if np.isnan(seconds[k]) else seconds[k])

    sample_dims = ("chain", "draw", "curve")
    chain_draw = {"chain": np.arange(chains), "draw": np.arange(draws)}
    posterior = xr.Dataset({name: (sample_dims, v) for name, v in post.items()}, chain_draw)
    sample_stats = xr.Dataset({"diverging": (sample_dims, diverging)}, chain_draw)
    constant = stats.constants.assign(
        {name: ("curve", v) for name, v in extra.items()}
        | {"fitted": ("curve", np.ones(n, dtype=bool)), "sampling_seconds": ("curve", seconds)}
    )
    return posterior, sample_stats, constant
