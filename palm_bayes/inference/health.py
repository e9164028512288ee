"""Plain-words warnings when sampling went wrong, with the change that helps.

:func:`sampling_problems` reads a fit's draws and sampler statistics and returns one sentence
per problem: divergent transitions, r_hat above 1.01 (of the curves sampled by NUTS), or
importance weights with a Pareto ``k`` too high for their draws to be trusted.
:func:`palm_bayes.fit` emits them as :class:`palm_bayes.errors.SamplingWarning`, as PyMC warns
after ``pm.sample``.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import arviz as az
import numpy as np
import xarray as xr

from palm_bayes.errors import EarlySamplingWarning

__all__ = ["EarlyWarnings", "sampling_problems", "R_HAT_MAX"]

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
    # importance-sampled curves draw every chain from one weighted pool, so their chains agree
    # by construction: their Pareto k and effective draws are checked instead (below)
    sampled = fitted & constant["nuts_fallback"] if "nuts_fallback" in constant else fitted
    if bool(sampled.any()):
        r_hat = _r_hat_where(posterior, free_vars, dims, fitted, sampled)
        slow = (r_hat > R_HAT_MAX) & sampled
    else:
        slow = xr.zeros_like(fitted, dtype=bool)
    if bool(slow.any()):
        what = (
            "the pooled fit has"
            if pooled
            else f"{int(slow.sum())} curve(s) ({_names(slow, dims)}) have"
        )
        worst = float(r_hat.where(sampled).max())
        lines.append(
            f"{what} r_hat up to {worst:.3f} (above {R_HAT_MAX}: the chains disagree); refit "
            f"with more draws and tune (now {draws} and {tune})"
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


def _r_hat_where(posterior, free_vars, dims, fitted, sampled) -> xr.DataArray:
    """:func:`_worst_r_hat` of the ``sampled`` curves only (0 elsewhere)."""
    if not dims or bool(sampled.equals(fitted)):
        return _worst_r_hat(posterior, free_vars, dims, fitted)
    flat = sampled.stack(_curve=dims)
    pick = {"_curve": np.flatnonzero(flat.to_numpy())}
    part = posterior.stack(_curve=dims).isel(pick)
    r_hat = _worst_r_hat(part, free_vars, ["_curve"], flat.isel(pick))
    full = xr.zeros_like(flat, dtype=float)
    full[pick["_curve"]] = r_hat.to_numpy()
    return full.unstack("_curve").transpose(*fitted.dims).reindex_like(fitted)


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


class EarlyWarnings:
    """Watch a pooled fit while it samples and say early, once each, what will go wrong.

    Called by :func:`palm_bayes.inference.sampling.run_nutpie` with the trace so far and the
    seconds since sampling started. It warns (:class:`palm_bayes.errors.EarlySamplingWarning`, a
    :class:`~palm_bayes.errors.SamplingWarning`)

    * a quarter into tuning, when the draws left will take longer than ``patience`` seconds
      at the pace so far (leapfrog steps per draw lately, seconds per step so far): such
      posteriors are the ones that end with r_hat above 1.01 or divergences;
    * at the first divergent transition after tuning;
    * at half the draws, when r_hat of the sampled variables is already above ``r_hat_early``.

    Each message says what helps, so a person can interrupt and refit instead of waiting.
    """

    def __init__(
        self,
        n_curves: int,
        *,
        chains: int,
        tune: int,
        draws: int,
        target_accept: float,
        free_vars: Sequence[str],
        patience: float = 300.0,
        r_hat_early: float = 1.05,
    ):
        self.n_curves, self.chains, self.tune, self.draws = n_curves, chains, tune, draws
        self.target_accept, self.free_vars = target_accept, tuple(free_vars)
        self.patience, self.r_hat_early = patience, r_hat_early
        self.said: set[str] = set()

    def __call__(self, trace, seconds: float) -> None:
        """Check the trace so far (an ``arviz.InferenceData`` from ``sampler.inspect()``)."""
        if "warmup_sample_stats" not in trace.groups():
            return  # nothing sampled yet
        warmup = trace.warmup_sample_stats
        stats = trace.sample_stats if "sample_stats" in trace.groups() else None
        tuned = warmup.sizes.get("draw", 0) if stats is None else self.tune
        if "cost" not in self.said and "n_steps" in warmup and tuned >= max(1, self.tune // 4):
            self._cost(warmup["n_steps"].to_numpy(), stats, tuned, seconds)
        if stats is None:
            return  # still tuning
        if "divergent" not in self.said and "diverging" in stats:
            n = int(stats["diverging"].sum())
            if n:
                self._say(
                    "divergent",
                    f"the pooled fit of {self.n_curves} curves has {n} divergent transition(s) "
                    f"in its first {stats.sizes['draw']} draws per chain: its intervals may be "
                    "off whatever the remaining draws show. Interrupt it and refit with a higher "
                    f"target_accept (now {self.target_accept:g}), or fit the curves "
                    "independently (hierarchy=None)",
                )
        if "r_hat" not in self.said and stats.sizes.get("draw", 0) >= self.draws // 2:
            self._r_hat(trace)

    def _cost(self, n_steps: np.ndarray, stats: xr.Dataset | None, tuned: int, seconds: float):
        self.said.add("cost")
        drawn = 0 if stats is None else stats.sizes.get("draw", 0)
        total = float(np.nansum(n_steps))
        if stats is not None:
            total += float(np.nansum(stats["n_steps"].to_numpy()))
        late = n_steps[:, -max(1, n_steps.shape[1] // 4) :]
        per_draw = float(np.nanmean(late))
        left = self.chains * (max(0, self.tune - tuned) + max(0, self.draws - drawn))
        eta = seconds / max(total, 1.0) * per_draw * left
        if eta > self.patience:
            self._say(
                "cost",
                f"the pooled fit of {self.n_curves} curves is hard to sample: each draw takes "
                f"~{per_draw:.0f} leapfrog steps, so at this pace the draws left need about "
                f"{eta / 60:.0f} more minutes, and posteriors this hard often end with r_hat "
                "above 1.01 or divergent transitions. For answers now: interrupt and fit the "
                "curves independently (hierarchy=None, seconds per curve), pool fewer curves "
                "or levels, or keep fewer seeds or budgets per curve",
            )

    def _r_hat(self, trace) -> None:
        self.said.add("r_hat")
        sampled = [v for v in self.free_vars if v in trace.posterior]
        if not sampled or trace.posterior.sizes.get("chain", 1) < 2:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r_hat = az.rhat(trace.posterior[sampled])
        values = np.concatenate([r_hat[v].to_numpy().ravel() for v in sampled])
        worst = float(np.max(values[np.isfinite(values)], initial=1.0))
        if worst > self.r_hat_early:
            self._say(
                "r_hat",
                f"halfway through, the pooled fit of {self.n_curves} curves has r_hat up to "
                f"{worst:.2f}: its chains disagree and the remaining draws rarely bring that "
                "under 1.01. Interrupt it and refit with more tune, or fit the curves "
                "independently (hierarchy=None)",
            )

    def _say(self, key: str, message: str) -> None:
        self.said.add(key)
        warnings.warn(message, EarlySamplingWarning, stacklevel=_caller_level())


def _caller_level() -> int:
    """The ``stacklevel`` of the first frame outside palm_bayes (the user's call of fit)."""
    package = str(Path(__file__).resolve().parents[1])
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level
