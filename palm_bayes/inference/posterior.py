"""The posterior of PALM curves: an InferenceData with its metadata, I/O and selections.

:class:`PalmPosterior` holds what :func:`palm_bayes.fit` sampled and nothing more: the
InferenceData, the priors and curve dims it was made with, the observed curves, reading and
writing, and selections. The queries are functions over it (:mod:`palm_bayes.queries.forecast`,
:mod:`palm_bayes.queries.labels_needed`); :class:`palm_bayes.PalmFit` adds them as methods.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import arviz as az
import xarray as xr

from palm_bayes.data.contract import atomic_write
from palm_bayes.errors import PalmInputError
from palm_bayes.inference.sampling import FREE_VARS
from palm_bayes.inference.self_calibration import SelfCalibration
from palm_bayes.model.single import DEFAULT_PRIORS
from palm_bayes.priors.curve_prior import CurvePrior, load_prior
from palm_bayes.priors.seed_offsets import seed_offsets
from palm_bayes.priors.shipped import default_prior

__all__ = ["FORMAT", "PalmPosterior", "resolve_prior"]

#: The ``format`` attr of a fit's posterior.
FORMAT = "palm-bayes-fit/1"


def resolve_prior(
    prior: CurvePrior | str | os.PathLike | None,
    priors: Mapping[str, Mapping[str, float]] | None,
) -> CurvePrior:
    """The curve prior a fit uses (see :func:`fit`'s ``prior``)."""
    entry = (priors or {}).get("extrapolation", {})
    explicit_sd = entry.get("sd") if isinstance(entry, Mapping) else None
    if isinstance(prior, CurvePrior):
        return prior
    if prior is None:
        if explicit_sd is not None:
            return CurvePrior.brownian(float(explicit_sd))
        return default_prior()
    if isinstance(prior, str) and prior == "brownian":
        sd = DEFAULT_PRIORS["extrapolation"]["sd"] if explicit_sd is None else explicit_sd
        return CurvePrior.brownian(float(sd))
    if isinstance(prior, str | os.PathLike):
        return load_prior(prior)
    raise PalmInputError(
        f"prior must be a CurvePrior, a prior file or 'brownian', got {type(prior).__name__}"
    )


class PalmPosterior:
    """Posterior of PALM curves: InferenceData, metadata, I/O and selections.

    Parameters
    ----------
    idata : arviz.InferenceData
        As made by :func:`palm_bayes.fit` (or read by :meth:`from_netcdf`).
    """

    def __init__(self, idata: az.InferenceData):
        attrs = idata.posterior.attrs
        if attrs.get("format") != FORMAT:
            raise PalmInputError(
                "this InferenceData was not written by palm_bayes.fit "
                f"(format {attrs.get('format')!r})"
            )
        self.idata = idata
        self.priors: dict = json.loads(attrs["priors"])
        self.curve_dims: tuple[str, ...] = tuple(json.loads(attrs["curve_dims"]))
        self.hierarchy: tuple[str, ...] = tuple(json.loads(attrs.get("hierarchy", "[]")))
        self.free_vars: tuple[str, ...] = tuple(
            json.loads(attrs.get("free_vars", json.dumps(FREE_VARS)))
        )
        self._seed_offsets: xr.Dataset | None = None

    @property
    def curve_prior(self) -> CurvePrior:
        """The curve prior (extrapolation discrepancy) of this fit's forecasts."""
        text = self.idata.posterior.attrs.get("curve_prior")
        if text is None:  # fits made before learned priors: the extrapolation random walk
            return CurvePrior.brownian(float(self.priors["extrapolation"]["sd"]))
        return CurvePrior.from_dict(json.loads(text))

    def with_prior(self, prior: CurvePrior | str | os.PathLike) -> Self:
        """The same posterior queried with another curve prior (no resampling).

        Examples
        --------
        >>> fit.with_prior("brownian").prob_better(a, b, 5000)  # doctest: +SKIP
        """
        idata = self.idata.copy()
        idata.posterior = idata.posterior.copy()
        idata.posterior.attrs["curve_prior"] = resolve_prior(prior, None).to_json()
        for stale in ("self_calibration", "library_prior"):  # the prior is now the one given
            idata.posterior.attrs.pop(stale, None)
        return type(self)(idata)

    @property
    def self_calibration(self) -> SelfCalibration | None:
        """What the backtests inside the pilot showed (None: fitted with ``calibrate=False``)."""
        text = self.idata.posterior.attrs.get("self_calibration")
        return None if text is None else SelfCalibration.from_json(text)

    @property
    def noise_floor(self) -> float:
        """The accuracy-precision floor of the likelihood (0 for fits made before it existed)."""
        return float(self.priors.get("noise", {}).get("floor", 0.0))

    def __repr__(self) -> str:
        n = int(self.idata.constant_data["fitted"].sum())
        sizes = {d: self.idata.posterior.sizes[d] for d in ("chain", "draw")}
        pooled = f", pooled over {list(self.hierarchy)}" if self.hierarchy else ""
        return f"{type(self).__name__}({n} curves over {list(self.curve_dims)}{pooled}, {sizes})"

    def describe(self) -> str:
        """In plain words: what was fitted, how, how it was sampled, and its self-calibration."""
        sizes = self.idata.posterior.sizes
        n = int(self.idata.constant_data["fitted"].sum())

        def plural(word: str) -> str:
            return word[:-1] + "ies" if word.endswith("y") else word + "s"

        parts = [
            f"{sizes[d]} {plural(d)}" if sizes[d] > 1 else f"{d} {self.idata.posterior[d].item()}"
            for d in self.curve_dims
            if sizes[d] > 1 or str(self.idata.posterior[d].item()) not in ("none", "default")
        ]
        seeds = self.curves.sizes.get("seed", 0)
        how = f"pooled over {' and '.join(self.hierarchy)}" if self.hierarchy else "independently"
        text = (
            f"{n} curve{'s' * (n != 1)} ({', '.join(parts)}; up to {seeds} seeds each), "
            f"fitted {how}; {sizes['chain']} chains x {sizes['draw']} draws"
        )
        calibration = self.self_calibration
        if calibration is None:
            return text + ". Self-calibration: off (the curve prior as given)"
        return text + ". Self-calibration: " + calibration.describe()

    # ------------------------------------------------------------------ data access
    @property
    def curves(self) -> xr.Dataset:
        """The observed curves the fit was made on (curves contract)."""
        if "observed_data" not in self.idata.groups():
            raise PalmInputError("this fit holds no observed curves (a population of new members)")
        return (
            self.idata.observed_data.to_dataset()
            if hasattr(self.idata.observed_data, "to_dataset")
            else self.idata.observed_data
        )

    def seed_offsets(self) -> xr.Dataset | None:
        """Per curve, the sd and correlation of the seed mean's offset (None without data).

        See :mod:`palm_bayes.priors.seed_offsets`; computed once per fit.
        """
        if "observed_data" not in self.idata.groups():
            return None
        if self._seed_offsets is None:
            self._seed_offsets = seed_offsets(self.curves)
        return self._seed_offsets

    @property
    def b(self) -> xr.DataArray:
        """Labels per round ``b`` used for each curve."""
        return self.idata.constant_data["b"]

    def check_selection(self, selection: Mapping[str, Any], name: str) -> dict:
        """``selection`` as a dict, checked against the curve dims and labels."""
        if not isinstance(selection, Mapping):
            raise PalmInputError(f"{name} must be a mapping such as {{'strategy': 'random'}}")
        post = self.idata.posterior
        for dim, label in selection.items():
            if dim not in self.curve_dims:
                raise PalmInputError(
                    f"{name}: unknown dimension {dim!r}; "
                    f"the curves are identified by {list(self.curve_dims)}"
                )
            known = post[dim].to_numpy().tolist()
            if label not in known:
                raise PalmInputError(f"{name}: unknown {dim} {label!r}; known: {known}")
        return dict(selection)

    _check_selection = check_selection  # the name before it was public

    def select(self, selection: Mapping[str, Any]) -> Self:
        """The fit restricted to the curves with these labels (a label or a list per dim).

        Examples
        --------
        >>> fit.select({"strategy": ["random", "typiclust"]})  # doctest: +SKIP
        """
        lists = {d: list(v) if isinstance(v, list | tuple) else [v] for d, v in selection.items()}
        for dim, labels in lists.items():
            for label in labels:
                self.check_selection({dim: label}, "selection")
        return type(self)(self.idata.sel(**lists))

    # ------------------------------------------------------------------ persistence
    def to_netcdf(self, path: str | Path) -> Path:
        """Write the fit atomically (a temporary file renamed over ``path``)."""
        return atomic_write(path, lambda tmp: self.idata.to_netcdf(tmp, engine="h5netcdf"))

    @classmethod
    def from_netcdf(cls, path: str | Path) -> Self:
        """Read a fit written by :meth:`to_netcdf`, checking that it is one."""
        path = Path(path)
        if not path.is_file():
            raise PalmInputError(f"no fit file at {path}")
        try:
            idata = az.from_netcdf(path, engine="h5netcdf")
        except Exception as exc:  # noqa: BLE001 - report any reader failure plainly
            raise PalmInputError(f"{path} is not a readable netCDF fit: {exc}") from exc
        if "posterior" not in idata.groups():
            raise PalmInputError(f"{path} holds no posterior; was it written by PalmFit.to_netcdf?")
        for group in idata.groups():  # into memory: lazy variables re-read the file per access
            getattr(idata, group).load()
        return cls(idata)
