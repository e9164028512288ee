"""How real curves leave the PALM form beyond the observed budgets: the extrapolation discrepancy.

A PALM posterior knows only its own curve. Beyond the last observed budget ``B_last`` its
forecast is widened, on the logit scale, by a discrepancy whose form is fixed here and whose
coefficients are either set by hand (:meth:`CurvePrior.brownian`, the original random walk in
log budget) or learned from a library of fully observed curves (:func:`palm_bayes.learn_prior`)::

    logit A_true(B) = logit A_palm(B) + drift + scale * e

    d      = log(B / B_last)                       (0 inside the observed budgets)
    drift  = d * (w_0 + w_slope * z_slope + w_level * z_level) + w_gain * gain
    scale  = exp(a_0 + a_level * z_level + a_slope * z_slope + a_seeds * log(n / n_ref))
             * d ** a_power
    gain   = median logit A_palm(B) - median logit A_palm(B_last)

``n`` is the number of seeds per budget of the curve and ``n_ref`` that of the pilots the prior
was learned from (``a_seeds`` is learned when the library's pilots had several seed counts,
else 0): a prior learned on 3-seed pilots also absorbs their noise, too much for curves
measured with many seeds. ``z_slope`` and ``z_level`` are the standardised slope (logit
accuracy per e-fold of labels) and level (logit accuracy) at the end of the observed curve.
Priors learned here take them from the posterior median curve (``palm_slope``: its slope from
``B_last`` to ``1.5 B_last``; ``palm_level``: its value at ``B_last``), so that two curves
whose posteriors agree get the same discrepancy; older priors took them from the raw seed-mean
data (``end_slope`` over the last three budgets and ``last_logit``, :func:`prefix_features`),
where the noise of three seeds told identical strategies apart. ``w_gain`` says how much of the
further gain PALM promises real curves deliver (``-0.3``: 30% less), ``w_slope`` how much of
the recent slope carries on. ``e`` is one Student-t (``nu`` degrees of freedom) shock per
posterior draw and curve, shared by all its budgets (a path), and correlated with correlation
``rho`` between curves on the same dataset: two strategies on one dataset leave the PALM form
together (a dataset that keeps improving lifts both), which is what makes ``P(A beats B)``
honest far beyond the pilot.

Every coefficient comes as a set of posterior draws; each forecast draw uses one of them, so the
uncertainty of the learned part flows into the answers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from palm_bayes.data.contract import atomic_write
from palm_bayes.errors import PalmInputError

__all__ = [
    "CurvePrior",
    "prefix_features",
    "DRIFT_TERMS",
    "SCALE_TERMS",
    "POSTERIOR_FEATURES",
    "SLOPE_RATIO",
    "load_prior",
]

DRIFT_TERMS = ("w_0", "w_slope", "w_level", "w_gain")
SCALE_TERMS = ("a_0", "a_power", "a_level", "a_slope")
_FORMAT = "palm-bayes-curve-prior/1"
#: (slope, level) features of priors learned from posterior curves, and of older priors.
POSTERIOR_FEATURES = ("palm_slope", "palm_level")
DATA_FEATURES = ("end_slope", "last_logit")
#: ``palm_slope`` is the posterior median curve's slope from ``B_last`` to this times ``B_last``.
SLOPE_RATIO = 1.5
#: Accuracies are clipped to [CLIP, 1 - CLIP] before the logit (LCDB has curves at 1.0).
CLIP = 0.002


def logit(p: Any, clip: float = CLIP) -> Any:
    """``log(p / (1 - p))`` of accuracies clipped to ``[clip, 1 - clip]``."""
    q = np.clip(p, clip, 1 - clip)
    return np.log(q) - np.log1p(-q)


#: Clipping of forecast paths (finer than the features': a target of 0.999 stays 0.999).
PATH_CLIP = 1e-9


@dataclass
class CurvePrior:
    """The extrapolation discrepancy of PALM forecasts (see the module docstring).

    Attributes
    ----------
    drift, scale : numpy.ndarray
        Draws x 4 coefficients (:data:`DRIFT_TERMS`, :data:`SCALE_TERMS`).
    rho : numpy.ndarray
        Draws of the correlation of the shocks of two curves on the same dataset.
    nu : float
        Degrees of freedom of the Student-t shocks (``inf``: Normal).
    feature_mean, feature_sd : dict
        Standardisation of the (slope, level) features: ``palm_slope`` and ``palm_level``
        (posterior curve), or ``end_slope`` and ``last_logit`` (raw data) for older priors.
    meta : dict
        Provenance: what it was learned from, when, with which settings.
    seed_scale : numpy.ndarray, optional
        Draws of ``a_seeds`` (None: the scale does not depend on the seed count).
    seed_ref : float
        ``n_ref``, the seeds per budget at which ``a_seeds`` has no effect.
    seed_offsets : bool
        Add the pilot's seed offset (:mod:`palm_bayes.priors.seed_offsets`) at every budget, inside
        the observed ones too.
    """

    drift: np.ndarray
    scale: np.ndarray
    rho: np.ndarray
    nu: float = np.inf
    feature_mean: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(POSTERIOR_FEATURES, 0.0)
    )
    feature_sd: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(POSTERIOR_FEATURES, 1.0)
    )
    meta: dict[str, Any] = field(default_factory=dict)
    seed_scale: np.ndarray | None = None
    seed_ref: float = 3.0
    seed_offsets: bool = False

    def __post_init__(self) -> None:
        self.drift = np.atleast_2d(np.asarray(self.drift, dtype=float))
        self.scale = np.atleast_2d(np.asarray(self.scale, dtype=float))
        self.rho = np.atleast_1d(np.asarray(self.rho, dtype=float))
        n = self.drift.shape[0]
        if self.drift.shape != (n, 4) or self.scale.shape != (n, 4) or self.rho.shape != (n,):
            raise PalmInputError(
                "a curve prior needs drift and scale draws of shape (n, 4) and rho of shape (n,)"
            )
        if np.any(~np.isfinite(self.drift)) or np.any(~np.isfinite(self.scale)):
            raise PalmInputError("a curve prior's coefficients must be finite")
        if np.any((self.rho < 0) | (self.rho >= 1)):
            raise PalmInputError("a curve prior's rho must lie in [0, 1)")
        if self.seed_scale is not None:
            self.seed_scale = np.atleast_1d(np.asarray(self.seed_scale, dtype=float))
            if self.seed_scale.shape != (n,) or not np.all(np.isfinite(self.seed_scale)):
                raise PalmInputError("a curve prior's seed_scale needs n finite draws")
            if not self.seed_ref > 0:
                raise PalmInputError("a curve prior's seed_ref must be positive")

    # ------------------------------------------------------------------ construction
    @classmethod
    def brownian(cls, sd: float) -> CurvePrior:
        """The fixed random walk ``sd * sqrt(log(B / B_last)) * N(0, 1)`` (``sd = 0``: none)."""
        if not (np.isfinite(sd) and sd >= 0):
            raise PalmInputError(f"extrapolation sd must be >= 0, got {sd!r}")
        log_sd = np.log(sd) if sd > 0 else -np.inf
        return cls(
            drift=np.zeros((1, 4)),
            scale=np.array([[log_sd if sd > 0 else 0.0, 0.5, 0.0, 0.0]]),
            rho=np.zeros(1),
            meta={"kind": "brownian", "sd": float(sd)},
        )

    @property
    def is_zero(self) -> bool:
        """True for the discrepancy that trusts the PALM form exactly."""
        return self.meta.get("kind") == "brownian" and self.meta.get("sd") == 0.0

    @property
    def n_draws(self) -> int:
        """Number of coefficient draws."""
        return int(self.rho.size)

    # ------------------------------------------------------------------ I/O
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (see :meth:`save`)."""
        return {
            "format": _FORMAT,
            "drift_terms": list(DRIFT_TERMS),
            "scale_terms": list(SCALE_TERMS),
            "drift": self.drift.round(6).tolist(),
            "scale": self.scale.round(6).tolist(),
            "rho": self.rho.round(6).tolist(),
            "nu": None if not np.isfinite(self.nu) else float(self.nu),
            "feature_mean": self.feature_mean,
            "feature_sd": self.feature_sd,
            "meta": self.meta,
            **(
                {"seed_scale": self.seed_scale.round(6).tolist(), "seed_ref": self.seed_ref}
                if self.seed_scale is not None
                else {}
            ),
            **({"seed_offsets": True} if self.seed_offsets else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CurvePrior:
        """The prior from :meth:`to_dict`'s output, checked."""
        if data.get("format") != _FORMAT:
            raise PalmInputError(f"not a palm-bayes curve prior (format {data.get('format')!r})")
        if data.get("drift_terms") != list(DRIFT_TERMS) or data.get("scale_terms") != list(
            SCALE_TERMS
        ):
            raise PalmInputError("this curve prior was made for another discrepancy form")
        return cls(
            drift=np.array(data["drift"]),
            scale=np.array(data["scale"]),
            rho=np.array(data["rho"]),
            nu=np.inf if data.get("nu") is None else float(data["nu"]),
            feature_mean=dict(data["feature_mean"]),
            feature_sd=dict(data["feature_sd"]),
            meta=dict(data.get("meta", {})),
            seed_scale=None if data.get("seed_scale") is None else np.array(data["seed_scale"]),
            seed_ref=float(data.get("seed_ref", 3.0)),
            seed_offsets=bool(data.get("seed_offsets", False)),
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write the prior as JSON (atomically)."""
        text = json.dumps(self.to_dict(), indent=1)
        return atomic_write(path, lambda tmp: Path(tmp).write_text(text))

    def to_json(self) -> str:
        """The prior as one JSON string (stored in a fit's attributes)."""
        return json.dumps(self.to_dict())

    def summary(self) -> pd.DataFrame:
        """Posterior mean and 90% interval of every coefficient."""
        values = {
            **{t: self.drift[:, i] for i, t in enumerate(DRIFT_TERMS)},
            **{t: self.scale[:, i] for i, t in enumerate(SCALE_TERMS)},
            "rho": self.rho,
            **({"a_seeds": self.seed_scale} if self.seed_scale is not None else {}),
        }
        return pd.DataFrame(
            {
                "mean": {k: float(np.mean(v)) for k, v in values.items()},
                "lower": {k: float(np.quantile(v, 0.05)) for k, v in values.items()},
                "upper": {k: float(np.quantile(v, 0.95)) for k, v in values.items()},
            }
        )

    def __repr__(self) -> str:
        kind = self.meta.get("kind", "learned")
        if kind == "brownian":
            return f"CurvePrior(brownian, sd={self.meta.get('sd')})"
        source = self.meta.get("source", "?")
        return (
            f"CurvePrior(learned from {self.meta.get('n_curves', '?')} curves of {source}, "
            f"{self.n_draws} draws)"
        )

    # ------------------------------------------------------------------ use
    def shocks(
        self, template: xr.DataArray, group_dim: str | None, seed: int
    ) -> tuple[xr.DataArray, xr.DataArray]:
        """Shocks ``e`` (one per draw and curve) and the coefficient draw index of each draw.

        ``template`` has dims ``(chain, draw, *curve dims)``. Curves with the same label of
        ``group_dim`` (``dataset``) share a component of their shock (correlation ``rho``); with
        ``group_dim=None`` all curves are taken to be on one dataset.
        """
        rng = np.random.default_rng(seed)
        chains, draws = template.sizes["chain"], template.sizes["draw"]
        index = xr.DataArray(
            (np.arange(chains * draws) % self.n_draws).reshape(chains, draws),
            dims=("chain", "draw"),
        )
        rho = xr.DataArray(self.rho[index.to_numpy()], dims=("chain", "draw"))
        own = xr.DataArray(self._standard(rng, template.shape), dims=template.dims)
        shared_dims = ["chain", "draw"] + ([group_dim] if group_dim in template.dims else [])
        shared_shape = [template.sizes[d] for d in shared_dims]
        shared = xr.DataArray(self._standard(rng, shared_shape), dims=shared_dims)
        e = np.sqrt(rho) * shared + np.sqrt(1 - rho) * own
        return e.transpose(*template.dims), index

    def _standard(self, rng: np.random.Generator, shape) -> np.ndarray:
        if not np.isfinite(self.nu):
            return rng.standard_normal(shape)
        # unit-variance Student-t, so that rho is the correlation of the shocks
        return rng.standard_t(self.nu, shape) * np.sqrt((self.nu - 2) / self.nu)

    def widen(
        self,
        logit_palm: xr.DataArray,
        log_ratio: xr.DataArray,
        gain: xr.DataArray,
        features: xr.Dataset,
        e: xr.DataArray,
        index: xr.DataArray,
    ) -> xr.DataArray:
        """Add the discrepancy to logit PALM draws at ``log_ratio = log(B / B_last)``."""
        d = log_ratio.clip(min=0.0)
        zs, zl = self.standardise(features)
        w = {t: xr.DataArray(self.drift[index.to_numpy(), i], dims=index.dims)
             for i, t in enumerate(DRIFT_TERMS)}  # fmt: skip
        a = {t: xr.DataArray(self.scale[index.to_numpy(), i], dims=index.dims)
             for i, t in enumerate(SCALE_TERMS)}  # fmt: skip
        drift = d * (w["w_0"] + w["w_slope"] * zs + w["w_level"] * zl) + w["w_gain"] * gain
        drift = xr.where(d > 0, drift, 0.0)
        log_scale = a["a_0"] + a["a_level"] * zl + a["a_slope"] * zs
        if self.seed_scale is not None and "n_seeds" in features:
            a_seeds = xr.DataArray(self.seed_scale[index.to_numpy()], dims=index.dims)
            ratio = np.log(features["n_seeds"].fillna(self.seed_ref) / self.seed_ref)
            log_scale = log_scale + a_seeds * ratio
        scale = xr.where(d > 0, np.exp(log_scale) * d ** a["a_power"], 0.0)
        return logit_palm + drift + scale * e

    @property
    def feature_names(self) -> tuple[str, str]:
        """The (slope, level) features this prior was learned with."""
        if POSTERIOR_FEATURES[0] in self.feature_mean:
            return POSTERIOR_FEATURES
        return DATA_FEATURES

    def standardise(self, features: Any) -> tuple[Any, Any]:
        """``(z_slope, z_level)``; a curve without features (a new member) sits at the mean.

        ``features`` holds :attr:`feature_names` (an xarray Dataset or a DataFrame).
        """
        z = [
            (features[name] - self.feature_mean[name]) / self.feature_sd[name]
            for name in self.feature_names
        ]
        return z[0].fillna(0.0), z[1].fillna(0.0)


def load_prior(path: str | os.PathLike) -> CurvePrior:
    """Read a curve prior written by :meth:`CurvePrior.save`."""
    path = Path(path)
    if not path.is_file():
        raise PalmInputError(f"no curve prior file at {path}")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PalmInputError(f"{path} is not a readable curve prior: {exc}") from None
    if not isinstance(data, dict):
        raise PalmInputError(f"{path} is not a curve prior")
    return CurvePrior.from_dict(data)


def prefix_features(curves: xr.Dataset, last_points: int = 3) -> xr.Dataset:
    """Per curve: the seed-mean ``last_logit`` and the ``end_slope`` of the observed curve.

    ``end_slope`` is the least-squares slope of logit(seed-mean accuracy) against log budget over
    the last ``last_points`` distinct budgets. Returns a Dataset over the curve dims (NaN for
    curves without data).
    """
    from palm_bayes.data.prepare import curve_dims, iter_curves

    dims = curve_dims(curves)
    coords = {d: curves[d].to_numpy() for d in dims}
    shape = tuple(len(coords[d]) for d in dims)
    slope, level = np.full(shape, np.nan), np.full(shape, np.nan)
    for labels, sub in iter_curves(curves):
        index = tuple(int(np.flatnonzero(coords[d] == labels[d])[0]) for d in dims)
        budget = sub["budget"].to_numpy().ravel()
        acc = sub["accuracy"].to_numpy().ravel()
        keep = np.isfinite(budget) & np.isfinite(acc)
        levels, inverse = np.unique(budget[keep], return_inverse=True)
        mean = np.bincount(inverse, weights=acc[keep]) / np.bincount(inverse)
        z = logit(mean)
        level[index] = z[-1]
        tail = slice(-min(last_points, levels.size), None)
        if levels[tail].size >= 2:
            slope[index] = np.polyfit(np.log(levels[tail]), z[tail], 1)[0]
    return xr.Dataset({"end_slope": (dims, slope), "last_logit": (dims, level)}, coords=coords)
