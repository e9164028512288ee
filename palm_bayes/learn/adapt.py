"""Adapt a learned curve prior to your own curves: re-learn only the width of its discrepancy.

A whole prior learned from two or three datasets does not transfer (its drift is noise); the
width, one or two numbers, can be learned from few. See :func:`adapt_prior`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from palm_bayes.data.contract import CURVE_DIMS
from palm_bayes.data.load import load_curves
from palm_bayes.errors import PalmInputError
from palm_bayes.learn.correlation import mean_discrepancy
from palm_bayes.learn.prior import library_cases
from palm_bayes.priors.curve_prior import CurvePrior

__all__ = ["adapt_prior", "fit_scale_shift"]


def fit_scale_shift(
    cases: pd.DataFrame,
    base: CurvePrior,
    *,
    draws: int = 500,
    seed: int = 0,
    seed_ref: float = 3.0,
    seed_term: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Draws of a shift of ``base``'s log scale (and a seed-count slope) fitted to ``cases``.

    The drift stays ``base``'s (its posterior mean): only how wide the departures are is
    learned, which a few datasets can inform where a whole drift model cannot.
    """
    import pymc as pm
    import pytensor.tensor as pt

    from palm_bayes.inference.sampling import compile_model, run_nutpie

    slope, level = base.feature_names
    cases = cases.dropna(subset=[slope, level, "med", "psd", "y"])
    drift, base_scale = mean_discrepancy(cases, base, seed_term=False)
    with_seeds = seed_term and "n_seeds" in cases and cases["n_seeds"].nunique() > 1
    seed_x = np.log(cases["n_seeds"] / seed_ref).to_numpy() if with_seeds else 0.0
    size = cases.groupby(["pilot_dataset", "strategy", "embedding"])["y"].transform("size")
    weight = (1.0 / size).to_numpy()
    with pm.Model() as model:
        shift = pm.Normal("shift", 0.0, 1.0)
        log_factor = shift + (pm.Normal("a_seeds", 0.0, 0.5) * seed_x if with_seeds else 0.0)
        sigma = pt.sqrt(cases["psd"].to_numpy() ** 2 + (pt.exp(log_factor) * base_scale) ** 2)
        logp = pm.logp(
            pm.Normal.dist(mu=cases["med"].to_numpy() + drift, sigma=sigma), cases["y"].to_numpy()
        )
        pm.Potential("likelihood", (weight * logp).sum())
    compiled = compile_model(model)
    trace = run_nutpie(compiled, progress=False, chains=2, draws=draws, tune=draws, seed=seed)
    post = trace.posterior
    shift_draws = post["shift"].to_numpy().ravel()
    seed_draws = post["a_seeds"].to_numpy().ravel() if with_seeds else None
    return shift_draws, seed_draws


def adapt_prior(
    base: CurvePrior,
    library: Any,
    *,
    cuts: Sequence[float] = (0.2, 0.4),
    pilot_seeds: int | None | Sequence[int | None] = (3, None),
    seed: int = 0,
    draws: int = 500,
    source: str = "user library",
    sampler: dict[str, Any] | None = None,
    progress: bool = True,
    cases: pd.DataFrame | None = None,
) -> CurvePrior:
    """Re-learn only the width of ``base``'s discrepancy from your own fully observed curves.

    ``base`` (e.g. the shipped LCDB prior) keeps its drift and correlation; its log scale is
    shifted by an amount learned from ``library`` and, when pilots of several seed counts are
    cut (the default: 3 seeds and all seeds), made to depend on the pilot's seed count. One
    or two numbers, so a library of two or three datasets is enough, where a whole prior
    learned from it does not transfer (see the README).

    Parameters are those of :func:`learn_prior`; ``base`` is the prior to adapt.
    """
    settings = list(pilot_seeds) if isinstance(pilot_seeds, list | tuple) else [pilot_seeds]
    if base.meta.get("kind") == "brownian":
        raise PalmInputError("adapt a learned prior; a brownian prior has no drift to keep")
    if cases is None:
        cases = library_cases(load_curves(library), cuts, settings, seed, sampler, progress)
    ref = float(min(s for s in settings if s is not None)) if any(settings) else 3.0
    shift, seeds = fit_scale_shift(
        cases, base, draws=draws, seed=seed, seed_ref=ref, seed_term=len(settings) > 1
    )
    pick = np.arange(shift.size) % base.n_draws
    scale = base.scale[pick].copy()
    scale[:, 0] += shift
    n_seeds = cases.drop_duplicates(["pilot_dataset", "strategy", "embedding"])
    return CurvePrior(
        drift=base.drift[pick],
        scale=scale,
        rho=base.rho[pick],
        nu=base.nu,
        feature_mean=dict(base.feature_mean),
        feature_sd=dict(base.feature_sd),
        seed_scale=seeds,
        seed_ref=ref,
        seed_offsets=base.seed_offsets,
        meta={
            "kind": "adapted",
            "source": f"{base.meta.get('source', '?')}, width re-learned on {source}",
            "base": dict(base.meta),
            "scale_shift": [float(np.mean(shift)), *np.quantile(shift, [0.05, 0.95]).tolist()],
            "n_curves": int(cases.drop_duplicates(list(CURVE_DIMS)).shape[0]),
            "n_pilots": int(n_seeds.shape[0]),
            "n_datasets": int(cases["dataset"].nunique()),
            "cuts": [float(c) for c in cuts],
            "pilot_seeds": settings[0] if len(settings) == 1 else settings,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        },
    )
