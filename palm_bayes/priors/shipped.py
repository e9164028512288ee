"""The curve prior that ships with palm_bayes: learned from LCDB (MIT licence).

``palm_bayes/priors/lcdb.json`` was made by ``benchmarks/learn_default_prior.py`` from the
Learning Curve Database (Mohr et al. 2022, MIT; PyPI package ``lcdb``): all curves with at least
ten budgets, cut into 3-seed pilots at 10%, 20% and 40% of their final budgets.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from palm_bayes.model.single import DEFAULT_PRIORS
from palm_bayes.priors.curve_prior import CurvePrior, load_prior

__all__ = ["default_prior", "DEFAULT_PRIOR_PATH"]

DEFAULT_PRIOR_PATH = Path(__file__).with_name("lcdb.json")


@lru_cache(maxsize=1)
def _shipped() -> CurvePrior | None:
    return load_prior(DEFAULT_PRIOR_PATH) if DEFAULT_PRIOR_PATH.is_file() else None


def default_prior() -> CurvePrior:
    """The LCDB-learned prior, or the extrapolation random walk where it is not installed."""
    shipped = _shipped()
    if shipped is not None:
        return shipped
    return CurvePrior.brownian(DEFAULT_PRIORS["extrapolation"]["sd"])
