"""Plain-words warnings when sampling went wrong, with the change that helps.

:func:`sampling_problems` reads a fit's draws and sampler statistics and returns one sentence
per problem: divergent transitions, r_hat above 1.01, or importance weights with a Pareto ``k``
too high for their draws to be trusted. :func:`palm_bayes.fit` emits them as
:class:`palm_bayes.errors.SamplingWarning`, as PyMC warns after ``pm.sample``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import arviz as az
import numpy as np
import xarray as xr

__all__ = ["sampling_problems", "R_HAT_MAX"]

#: Chains agree when the rank-normalised r_hat of every sampled variable is at most this.
R_HAT_MAX = 1.01
#: Importance weights with a larger Pareto ``k`` give unreliable draws.
PARETO_K_MAX = 0.7


def sampling_problems(
    posterior: xr.Dataset,
    sample_stats: xr.Dataset,
    constant: xr.Dataset,
    free_vars: Sequence[str],
    *,
    pooled: bool,
    target_accept: float,
    draws: int,
    tune: int,
) -> list[str]:
    """Sentences naming what went wrong in a fit and how to refit (empty when all is well)."""
    dims = [d for d in constant["fitted"].dims]
    fitted = constant["fitted"]
    lines = []
    divergent = sample_stats["diverging"].sum(("chain", "draw"))
    higher = 0.995 if target_accept >= 0.99 else 0.99
    if pooled:
        total = int(divergent.max()) if divergent.size else 0
        if total:
            lines.append(
                f"the pooled fit had {total} divergent transition(s): the sampler met curvature "
                "it could not follow, so its intervals may be off; refit with a higher "
                f"target_accept (e.g. {higher}, now {target_accept:g}) and more tune (now {tune})"
            )
    else:
        bad = (divergent > 0) & fitted
        if bool(bad.any()):
            lines.append(
                f"{int(bad.sum())} curve(s) had divergent transitions ({_names(bad, dims)}): "
                "their intervals may be off; refit with a higher target_accept (e.g. "
                f"{higher}, now {target_accept:g}), or pool short curves (hierarchy=...)"
            )
    r_hat = _worst_r_hat(posterior, free_vars, dims, fitted)
    slow = (r_hat > R_HAT_MAX) & fitted
    if bool(slow.any()):
        what = (
            "the pooled fit has"
            if pooled
            else f"{int(slow.sum())} curve(s) ({_names(slow, dims)}) have"
        )
        lines.append(
            f"{what} r_hat up to {float(r_hat.max()):.3g} (above {R_HAT_MAX}: the chains "
            f"disagree); refit with more draws and tune (now {draws} and {tune})"
        )
    if "pareto_k" in constant:
        k = constant["pareto_k"]
        kept = k.notnull() & ~constant["nuts_fallback"]
        high = kept & (k > PARETO_K_MAX)
        if bool(high.any()):
            lines.append(
                f"{int(high.sum())} curve(s) ({_names(high, dims)}) kept importance draws with "
                f"Pareto k above {PARETO_K_MAX}: refit them with method='nuts'"
            )
    return lines


def _worst_r_hat(posterior, free_vars, dims, fitted) -> xr.DataArray:
    """The largest r_hat over each curve's sampled variables (and shared ones)."""
    sampled = posterior[[v for v in free_vars if v in posterior]]
    if sampled.sizes.get("chain", 1) < 2:
        return xr.zeros_like(fitted, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r_hat = az.rhat(sampled)
    parts = []
    for value in r_hat.data_vars.values():
        other = [d for d in value.dims if d not in dims]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            reduced = value.reduce(np.nanmax, dim=other) if other else value
        parts.append(reduced.broadcast_like(fitted))
    return xr.concat(parts, "variable").max("variable").fillna(0.0)


def _names(mask: xr.DataArray, dims: Sequence[str], most: int = 3) -> str:
    """The first few curves where ``mask`` holds, as ``dim=label`` lists."""
    if not dims:
        return "the curve"
    stacked = mask.stack(curve=list(dims))
    hits = stacked.where(stacked, drop=True)["curve"].to_numpy()[:most]
    labels = [", ".join(map(str, h)) if isinstance(h, tuple) else str(h) for h in hits]
    extra = int(mask.sum()) - len(labels)
    return "; ".join(labels) + (f" and {extra} more" if extra > 0 else "")
