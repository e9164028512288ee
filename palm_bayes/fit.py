"""Fit PALM to every curve of a curves Dataset and query the posterior.

:func:`fit` samples one independent Bayesian PALM per curve (a curve is one combination of the
id dims except ``seed``: seeds are replicate observations of the same curve) and returns a
:class:`PalmFit`, a thin wrapper of an :class:`arviz.InferenceData` whose query methods return
xarray objects with named dims.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import arviz as az
import numpy as np
import xarray as xr
from scipy.special import expit
from tqdm.auto import tqdm

from palm_bayes.curve import labels_for_accuracy_log_lambda, palm_curve_log_lambda
from palm_bayes.data import curve_dims, decreasing_curves, iter_curves, load_curves
from palm_bayes.data import labels_per_round as _labels_per_round
from palm_bayes.discrepancy import (
    DATA_FEATURES,
    PATH_CLIP,
    SLOPE_RATIO,
    CurvePrior,
    load_prior,
    logit,
    prefix_features,
)
from palm_bayes.errors import PalmInputError
from palm_bayes.hierarchy import (
    HIERARCHICAL_PRIORS,
    check_hierarchy,
    new_member_posterior,
    sample_hierarchical,
)
from palm_bayes.io_utils import atomic_write
from palm_bayes.likelihood import predictive_draws
from palm_bayes.model import DEFAULT_PRIORS, merge_priors, model_data
from palm_bayes.prior_library import default_prior
from palm_bayes.sampling import FREE_VARS, PALM_VARS, sample_curve
from palm_bayes.summaries import as_budget as _as_budget
from palm_bayes.summaries import check_prob as _check_prob
from palm_bayes.summaries import summarise_draws as _summarise

__all__ = ["fit", "PalmFit"]

SUMMARY_VARS = ("A_max", "delta", "alpha", "beta", "noise")
_FORMAT = "palm-bayes-fit/1"
#: Forecast summaries are computed a slice of budgets at a time, with at most about this many
#: posterior values (chains x draws x curve cells x budgets) in memory per slice.
FORECAST_CHUNK_VALUES = 4_000_000


def fit(
    curves: Any,
    *,
    hierarchy: Sequence[str] | str | None = None,
    priors: Mapping[str, Mapping[str, float]] | None = None,
    prior: CurvePrior | str | os.PathLike | None = None,
    labels_per_round: float | None = None,
    seed: int = 0,
    chains: int = 4,
    draws: int | None = None,
    tune: int | None = None,
    target_accept: float | None = None,
    cores: int | None = None,
    progress: bool = True,
) -> PalmFit:
    """Fit PALM to every curve: independently, or pooled across groups of curves.

    Parameters
    ----------
    curves : xarray.Dataset, pandas.DataFrame or path
        Anything :func:`palm_bayes.load_curves` reads.
    hierarchy : sequence of str or str, optional
        Id dims whose levels pool the curve parameters, e.g. ``("strategy",)`` or
        ``("strategy", "dataset")`` (or ``"strategy,dataset"``); see
        :mod:`palm_bayes.hierarchy`. ``None`` (default): one independent PALM per curve.
    priors : mapping, optional
        Overrides of :data:`palm_bayes.model.DEFAULT_PRIORS` (independent fits) or of
        :data:`palm_bayes.hierarchy.HIERARCHICAL_PRIORS` (hierarchical fits).
    prior : CurvePrior, path or "brownian", optional
        How forecasts leave the PALM form beyond the observed budgets (see
        :mod:`palm_bayes.discrepancy`): a prior from :func:`palm_bayes.learn_prior`, a file it
        was saved to, or ``"brownian"`` for the fixed random walk of the ``extrapolation``
        prior. By default the prior learned from LCDB that ships with palm_bayes; when
        ``priors`` sets ``extrapolation`` explicitly, that random walk.
    labels_per_round : float, optional
        The normaliser ``b``; by default the curves' ``labels_per_round`` attribute or each
        curve's median budget step (hierarchical fits use one ``b`` for all curves, the median
        of those, so that parameters are comparable across curves).
    seed : int
        Random seed (curve ``k`` of an independent fit is sampled with ``seed + k``).
    chains, draws, tune, target_accept, cores
        NUTS settings (nutpie). ``draws`` and ``tune`` default to 1,000 each for independent
        fits and 2,000 each for hierarchical ones (their group scales need them for r_hat <=
        1.01); ``target_accept`` to 0.99 for independent fits (short prefixes have curved
        posteriors); for hierarchical ones to 0.98 below 50 curves (at 0.95 the shipped 9-curve
        example had 0-2 divergent transitions in 8,000 draws) and 0.95 from 50 curves on (mixing
        per second matters more there); ``cores`` to ``min(chains, os.cpu_count())``.
    progress : bool
        Show a progress bar over curves.

    Returns
    -------
    PalmFit

    Examples
    --------
    >>> import palm_bayes as pb
    >>> curves = pb.load_curves("examples/lcdb_curves.nc")  # doctest: +SKIP
    >>> fit = pb.fit(curves, seed=0)  # doctest: +SKIP
    >>> fit.forecast([1000, 5000]).median  # doctest: +SKIP
    """
    curves = load_curves(curves, min_budgets=4 if hierarchy is None else 2)
    falling = decreasing_curves(curves)
    if falling:
        warnings.warn(
            f"{len(falling)} curve(s) fall as labels are added ({', '.join(falling[:3])}); PALM "
            "describes rising curves and will extrapolate them upward: check these curves "
            "(accuracy vs. error rate, a broken learner) before trusting their forecasts",
            UserWarning,
            stacklevel=2,
        )
    dims = curve_dims(curves)
    b = (
        _labels_per_round(curves)
        if labels_per_round is None
        else _constant_b(curves, labels_per_round)
    )
    cores = cores or min(chains, os.cpu_count() or 1)
    if target_accept is None:
        target_accept = 0.99 if hierarchy is None else _pooled_target_accept(curves)
    default_draws = 1000 if hierarchy is None else 2000
    draws = default_draws if draws is None else draws
    tune = default_draws if tune is None else tune
    sampler = {
        "chains": chains,
        "draws": draws,
        "tune": tune,
        "target_accept": target_accept,
        "seed": seed,
    }
    curve_prior = resolve_prior(prior, priors)
    if hierarchy is not None:
        short = (curves["budget"].max("seed").notnull().sum("step") < 4) & curves[
            "accuracy"
        ].notnull().any(("seed", "step"))
        if bool(short.any()):
            warnings.warn(
                f"{int(short.sum())} curve(s) have fewer than 4 budgets: their four PALM "
                "parameters come mostly from the pooling, and the sampler may mix slowly "
                "(check fit.diagnostics(); more rounds per curve help most)",
                UserWarning,
                stacklevel=2,
            )
        pooled = _fit_hierarchical(
            curves, check_hierarchy(curves, hierarchy), priors, b, sampler, cores, progress
        )
        pooled.idata.posterior.attrs["curve_prior"] = curve_prior.to_json()
        return pooled
    merged = merge_priors(priors)

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

    items = list(iter_curves(curves))
    if not items:
        raise PalmInputError("no curve has any observed point")
    for k, (labels, sub) in enumerate(
        tqdm(items, desc="PALM fits", unit="curve", disable=not progress)
    ):
        index = tuple(int(np.flatnonzero(coords[d] == labels[d])[0]) for d in dims)
        b_k = float(b.sel(labels))
        n_test = sub["n_test"].broadcast_like(sub["accuracy"]) if "n_test" in sub else np.inf
        data = model_data(
            sub["budget"].to_numpy(), sub["accuracy"].to_numpy(), b_k, np.asarray(n_test)
        )
        draws_k = sample_curve(
            data,
            merged,
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
        seconds[index] = draws_k["seconds"]
        budgets = sub["budget"].to_numpy()
        const["x_first"][index] = data["x_first"]
        const["x_mid"][index] = data["x_mid"]
        const["first_budget"][index] = np.nanmin(budgets)
        const["last_budget"][index] = np.nanmax(budgets)
        if "n_test" in sub:
            const["n_test"][index] = float(np.nanmedian(np.asarray(n_test, dtype=float)))
        fitted[index] = True

    sample_dims = ("chain", "draw", *dims)
    sample_coords = {"chain": np.arange(chains), "draw": np.arange(draws), **coords}
    posterior = xr.Dataset({n: (sample_dims, v) for n, v in post.items()}, coords=sample_coords)
    sample_stats = xr.Dataset({"diverging": (sample_dims, diverging)}, coords=sample_coords)
    constant = xr.Dataset(
        {n: (dims, v) for n, v in const.items()}
        | {"b": b.transpose(*dims), "fitted": (dims, fitted), "sampling_seconds": (dims, seconds)},
        coords=coords,
    )
    attrs = _attrs(merged, dims, sampler, [], FREE_VARS)
    attrs["curve_prior"] = curve_prior.to_json()
    return _palm_fit(posterior, sample_stats, constant, curves, attrs)


#: Pooled fits of fewer curves than this sample with ``target_accept=0.98``, larger ones 0.95.
SMALL_POOLED_FIT = 50


def _pooled_target_accept(curves: xr.Dataset) -> float:
    """Smaller steps for small pooled fits, more draws per second for large ones.

    On the shipped 9 curves, 0.95 left 0-2 divergent transitions in 8,000 draws and 0.98
    none; on 200 simulated curves 0.98 took 84% longer and mixed the curve scale worse (r_hat
    1.016 against 1.006-1.010 at 0.95).
    """
    with_data = curves["accuracy"].notnull().any([d for d in ("seed", "step") if d in curves.dims])
    return 0.98 if int(with_data.sum()) < SMALL_POOLED_FIT else 0.95


def resolve_prior(
    prior: CurvePrior | str | os.PathLike | None,
    priors: Mapping[str, Mapping[str, float]] | None,
) -> CurvePrior:
    """The curve prior a fit uses (see :func:`fit`'s ``prior``)."""
    explicit_sd = (priors or {}).get("extrapolation", {}).get("sd")
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


def _palm_fit(posterior, sample_stats, constant, curves, attrs) -> PalmFit:
    """Assemble the InferenceData of a fit (posterior attrs describe the model)."""
    observed = curves[["budget", "accuracy"] + (["n_test"] if "n_test" in curves else [])]
    idata = az.InferenceData(
        posterior=posterior,
        sample_stats=sample_stats,
        constant_data=constant,
        observed_data=observed,
    )
    idata.posterior.attrs.update(attrs)
    return PalmFit(idata)


def _attrs(priors, dims, sampler, hierarchy, free_vars) -> dict[str, str]:
    return {
        "format": _FORMAT,
        "priors": json.dumps(priors, sort_keys=True),
        "curve_dims": json.dumps(list(dims)),
        "hierarchy": json.dumps(list(hierarchy)),
        "free_vars": json.dumps(list(free_vars)),
        "sampler": json.dumps({"name": "nutpie"} | sampler),
        "palm_bayes_version": _version(),
    }


def _fit_hierarchical(curves, hierarchy, priors, b, sampler, cores, progress) -> PalmFit:
    """Sample the pooled model of all curves at once and wrap it in a PalmFit."""
    merged = merge_priors(priors, HIERARCHICAL_PRIORS)
    dims = curve_dims(curves)
    b_common = float(b.median())
    posterior, sample_stats, const, seconds = sample_hierarchical(
        curves,
        b_common,
        hierarchy,
        merged,
        cores=cores,
        progress=progress,
        **sampler,
    )
    coords = {d: curves[d].to_numpy() for d in dims}
    fitted = const.pop("fitted")
    x_ref = const.pop("x_ref_common")
    constant = xr.Dataset(
        {n: (dims, v) for n, v in const.items()}
        | {
            "b": (dims, np.full(fitted.shape, b_common)),
            "fitted": (dims, fitted),
            "sampling_seconds": (dims, np.where(fitted, seconds / max(fitted.sum(), 1), np.nan)),
            "x_ref_common": x_ref,
            "total_seconds": seconds,
        },
        coords=coords,
    )
    free = ["mu", "sigma_curve", "z_curve", "noise"] + [
        f"{kind}_{dim}" for dim in hierarchy for kind in ("sigma", "z")
    ]
    attrs = _attrs(merged, dims, sampler, hierarchy, free)
    return _palm_fit(posterior, sample_stats, constant, curves, attrs)


def _constant_b(curves: xr.Dataset, value: float) -> xr.DataArray:
    if not np.isfinite(value) or value <= 0:
        raise PalmInputError(f"labels_per_round must be a positive number, got {value!r}")
    dims = curve_dims(curves)
    return xr.DataArray(
        np.full(tuple(curves.sizes[d] for d in dims), float(value)),
        dims=dims,
        coords={d: curves[d] for d in dims},
    )


def _version() -> str:
    from palm_bayes import __version__

    return __version__


class PalmFit:
    """Posterior of PALM curves with forecasting, comparison and labels-needed queries.

    Parameters
    ----------
    idata : arviz.InferenceData
        As made by :func:`fit` (or read by :meth:`from_netcdf`).
    """

    def __init__(self, idata: az.InferenceData):
        attrs = idata.posterior.attrs
        if attrs.get("format") != _FORMAT:
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

    @property
    def curve_prior(self) -> CurvePrior:
        """The extrapolation discrepancy of this fit's forecasts (:mod:`palm_bayes.discrepancy`)."""
        text = self.idata.posterior.attrs.get("curve_prior")
        if text is None:  # fits made before learned priors: the extrapolation random walk
            return CurvePrior.brownian(float(self.priors["extrapolation"]["sd"]))
        return CurvePrior.from_dict(json.loads(text))

    def with_prior(self, prior: CurvePrior | str | os.PathLike) -> PalmFit:
        """The same posterior queried with another curve prior (no resampling).

        Examples
        --------
        >>> fit.with_prior("brownian").prob_better(a, b, 5000)  # doctest: +SKIP
        """
        idata = self.idata.copy()
        idata.posterior = idata.posterior.copy()
        idata.posterior.attrs["curve_prior"] = resolve_prior(prior, None).to_json()
        return PalmFit(idata)

    def _prefix_features(self) -> xr.Dataset:
        """The slope and level features of the curve prior, per curve.

        From the posterior median curve at the last observed budget (priors learned with
        ``palm_slope``/``palm_level``) or from the raw data (older priors); NaN for a population
        of new curves, which then sit at the features' mean.
        """
        post, const = self.idata.posterior, self.idata.constant_data
        names = self.curve_prior.feature_names
        if "observed_data" not in self.idata.groups():
            nan = xr.full_like(post["A_max"].isel(chain=0, draw=0, drop=True), np.nan)
            return xr.Dataset(dict.fromkeys(names, nan))
        if names == DATA_FEATURES:
            return prefix_features(self.curves)
        at = xr.DataArray([1.0, SLOPE_RATIO], dims="at")
        acc = palm_curve_log_lambda(
            const["last_budget"] * at, post["A_max"], post["log_lambda"], post["alpha"],
            post["beta"], const["b"],
        )  # fmt: skip
        z = logit(acc).median(("chain", "draw"))
        level, ahead = z.isel(at=0, drop=True), z.isel(at=1, drop=True)
        features = xr.Dataset({names[0]: (ahead - level) / np.log(SLOPE_RATIO), names[1]: level})
        if "seed" in self.curves.dims:  # seeds per budget (the prior's scale may use it)
            seeds = self.curves["accuracy"].notnull().sum("seed")
            features["n_seeds"] = seeds.where(seeds > 0).median("step")
        return features

    def _group_dim(self) -> str | None:
        return "dataset" if "dataset" in self.curve_dims else None

    def _extrapolate(
        self,
        logit_palm: xr.DataArray,
        log_budget: xr.DataArray,
        seed: int,
        pick: Mapping[str, Any] | None = None,
    ) -> xr.DataArray:
        """The one forecast-draw path beyond the observed budgets (forecasts, labels needed).

        ``logit_palm`` holds logit PALM draws at budgets ``exp(log_budget)``, over the curve
        dims or, with ``pick`` (``{"curve": positions}``), over those curves of the stacked
        ``curve`` dim. The discrepancy of :attr:`curve_prior` is added where a budget lies
        beyond its curve's last observed one; the shocks depend on ``seed`` alone, so every
        query made with one seed sees the same paths.
        """
        prior = self.curve_prior
        if prior.is_zero:
            return logit_palm
        post, const = self.idata.posterior, self.idata.constant_data
        at_last = logit(
            palm_curve_log_lambda(
                const["last_budget"],
                post["A_max"],
                post["log_lambda"],
                post["alpha"],
                post["beta"],
                const["b"],
            ),
            PATH_CLIP,
        ).median(("chain", "draw"))
        e, index = prior.shocks(post["A_max"], self._group_dim(), seed)
        features = self._prefix_features()
        log_last = np.log(const["last_budget"])
        if pick is not None:

            def sub(x):
                return _bare_curves(x.stack(curve=self.curve_dims).isel(pick))

            at_last, e, features, log_last = sub(at_last), sub(e), sub(features), sub(log_last)
        gain = logit_palm.median(("chain", "draw")) - at_last
        return prior.widen(logit_palm, log_budget - log_last, gain, features, e, index)

    @property
    def noise_floor(self) -> float:
        """The accuracy-precision floor of the likelihood (0 for fits made before it existed)."""
        return float(self.priors.get("noise", {}).get("floor", 0.0))

    def __repr__(self) -> str:
        n = int(self.idata.constant_data["fitted"].sum())
        sizes = {d: self.idata.posterior.sizes[d] for d in ("chain", "draw")}
        pooled = f", pooled over {list(self.hierarchy)}" if self.hierarchy else ""
        return f"PalmFit({n} curves over {list(self.curve_dims)}{pooled}, {sizes})"

    def describe(self) -> str:
        """One sentence in plain words: what was fitted, how, and how it was sampled."""
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
        return (
            f"{n} curve{'s' * (n != 1)} ({', '.join(parts)}; up to {seeds} seeds each), "
            f"fitted {how}; {sizes['chain']} chains x {sizes['draw']} draws"
        )

    def population(self, new: str | Iterable[str], *, seed: int = 0) -> PalmFit:
        """The fit of a new, unseen member of the ``new`` dims (hierarchical fits only).

        ``fit.population("dataset")`` holds, for every other id label (e.g. each strategy),
        the posterior of the curve on a new dataset drawn from the fitted dataset population;
        its queries integrate over that population. Its dims are the curve dims minus ``new``.

        Examples
        --------
        >>> fit.population("dataset").forecast([2000])  # doctest: +SKIP
        """
        if not self.hierarchy:
            raise PalmInputError(
                "population queries need a hierarchical fit: pb.fit(curves, hierarchy=(...))"
            )
        new = (new,) if isinstance(new, str) else tuple(new)
        posterior, constants = new_member_posterior(
            self.idata, self.hierarchy, self.curve_dims, new, seed=seed
        )
        kept = [d for d in self.curve_dims if d not in new]
        posterior.attrs.update(
            self.idata.posterior.attrs
            | {"curve_dims": json.dumps(kept), "population_of_new": json.dumps(list(new))}
        )
        posterior.attrs["free_vars"] = json.dumps([])
        sample_stats = xr.Dataset({"diverging": self.idata.sample_stats["diverging"]})
        return PalmFit(
            az.InferenceData(
                posterior=posterior, sample_stats=sample_stats, constant_data=constants
            )
        )

    def _maybe_population(self, new, seed: int) -> PalmFit:
        return self if new is None else self.population(new, seed=seed)

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

    @property
    def b(self) -> xr.DataArray:
        """Labels per round ``b`` used for each curve."""
        return self.idata.constant_data["b"]

    def _check_selection(self, selection: Mapping[str, Any], name: str) -> dict:
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

    # ------------------------------------------------------------------ forecasts
    def forecast_draws(
        self,
        budgets: Any,
        *,
        kind: Literal["expected", "predictive"] = "expected",
        seed: int = 0,
    ) -> xr.DataArray:
        """Posterior draws of the accuracy at ``budgets``.

        ``kind="expected"`` is the curve itself (the accuracy averaged over seeds and test
        sets); ``"predictive"`` adds the noise of one new run. Beyond each curve's last observed
        budget the PALM form is widened by the model discrepancy of the ``extrapolation`` prior.

        Returns
        -------
        xarray.DataArray
            Dims ``(chain, draw, *curve_dims, budget)``.
        """
        if kind not in ("expected", "predictive"):
            raise PalmInputError(f"kind must be 'expected' or 'predictive', got {kind!r}")
        budget = _as_budget(budgets)
        post, const = self.idata.posterior, self.idata.constant_data
        acc = palm_curve_log_lambda(
            budget, post["A_max"], post["log_lambda"], post["alpha"], post["beta"], const["b"]
        )
        rng = np.random.default_rng(seed + 1)
        widened = expit(self._extrapolate(logit(acc, PATH_CLIP), np.log(budget), seed))
        acc = xr.where((acc > 0) & (budget > const["last_budget"]), widened, acc)
        if kind == "predictive":
            acc = predictive_draws(acc, post["noise"], const["n_test"], self.noise_floor, rng)
        return acc.transpose("chain", "draw", *self.curve_dims, "budget").rename("accuracy")

    def forecast(
        self,
        budgets: Any,
        *,
        hdi_prob: float = 0.9,
        kind: Literal["expected", "predictive"] = "expected",
        new: str | Iterable[str] | None = None,
        seed: int = 0,
    ) -> xr.Dataset:
        """Forecast the accuracy at ``budgets`` with a highest-density interval.

        Works from partial curves too: budgets beyond the observed ones are extrapolations
        (with the extrapolation discrepancy, see :meth:`forecast_draws`). With ``new``
        (hierarchical fits), the forecast is for a new member of those dims, e.g.
        ``new="dataset"``: the curve of each strategy on an unseen dataset (see
        :meth:`population`).

        Returns
        -------
        xarray.Dataset
            Variables ``median, mean, lower, upper`` with dims ``(*curve_dims, budget)``.

        Examples
        --------
        >>> fc = fit.forecast([500, 2000], hdi_prob=0.9)  # doctest: +SKIP
        >>> fc.sel(strategy="random").median  # doctest: +SKIP
        """
        _check_prob(hdi_prob, "hdi_prob")
        source = self._maybe_population(new, seed)
        budget = _as_budget(budgets)
        # draws x curve grid x budgets can outgrow memory (hundreds of curves, many budgets):
        # summarise a slice of budgets at a time; every slice sees the same extrapolation draws
        per_budget = source.idata.posterior["A_max"].size
        step = max(1, FORECAST_CHUNK_VALUES // max(per_budget, 1))
        parts = [
            _summarise(source.forecast_draws(budget[k : k + step], kind=kind, seed=seed), hdi_prob)
            for k in range(0, budget.size, step)
        ]
        return parts[0] if len(parts) == 1 else xr.concat(parts, "budget")

    def prob_better(
        self,
        a: Mapping[str, Any],
        b: Mapping[str, Any],
        budget: Any,
        *,
        kind: Literal["expected", "predictive"] = "expected",
        new: str | Iterable[str] | None = None,
        seed: int = 0,
    ) -> xr.DataArray:
        """Posterior probability that curve(s) ``a`` are more accurate than ``b`` at ``budget``.

        ``a`` and ``b`` select curves by label, e.g. ``{"strategy": "typiclust"}``; the
        probability is computed for every combination of the remaining dims. With ``new``
        (hierarchical fits, e.g. ``new="dataset"``) it is the probability on a new member of
        the population: how likely ``a`` beats ``b`` on an unseen dataset like these.

        Examples
        --------
        >>> fit.prob_better({"strategy": "a"}, {"strategy": "b"}, budget=2000)  # doctest: +SKIP
        """
        if new is not None:
            return self.population(new, seed=seed).prob_better(a, b, budget, kind=kind, seed=seed)
        a = self._check_selection(a, "a")
        b = self._check_selection(b, "b")
        draws = self.forecast_draws(budget, kind=kind, seed=seed)
        da, db = draws.sel(a, drop=True), draws.sel(b, drop=True)
        wins = (da > db).astype(float) + 0.5 * (da == db)
        valid = da.notnull() & db.notnull()
        p = wins.where(valid).mean(("chain", "draw"))
        if np.ndim(budget) == 0:
            p = p.squeeze("budget", drop=True)
        return p.rename("prob_better")

    def labels_needed(
        self,
        target: float | xr.DataArray,
        *,
        hdi_prob: float = 0.9,
        max_budget: float | None = None,
        new: str | Iterable[str] | None = None,
        seed: int = 0,
    ) -> xr.Dataset:
        """Posterior of the number of labels needed to reach ``target`` accuracy.

        ``new`` (hierarchical fits): for a new member of those dims (see :meth:`population`).

        Up to a curve's last observed budget this is the closed-form PALM inverse; beyond it,
        the first budget at which a posterior draw of the forecast (with its extrapolation
        discrepancy) reaches the target, searched up to ``max_budget`` (default 100 x the last
        observed budget). Draws that never reach it count as ``inf``, so the interval is the
        equal-tailed one (its upper end is ``inf`` when more than ``(1 - hdi_prob) / 2`` of the
        draws do not reach the target).

        Returns
        -------
        xarray.Dataset
            ``median, lower, upper`` (labels, rounded up to whole labels) and ``p_reachable``
            (probability of reaching the target within ``max_budget``), dims ``curve_dims``.
        """
        _check_prob(hdi_prob, "hdi_prob")
        target = xr.DataArray(target) if not isinstance(target, xr.DataArray) else target
        tv = target.to_numpy()
        bad = ~np.isfinite(tv) | (tv <= 0) | (tv >= 1)
        if np.any(bad):
            shown = ", ".join(f"{v:g}" for v in np.unique(tv[bad])[:5])
            raise PalmInputError(
                f"target accuracy must lie in (0, 1); {int(bad.sum())} of {tv.size} targets do "
                f"not ({shown})"
            )
        if new is not None:
            return self.population(new, seed=seed).labels_needed(
                target, hdi_prob=hdi_prob, max_budget=max_budget, seed=seed
            )
        draws = self.labels_needed_draws(target, max_budget=max_budget, seed=seed)
        q = (1 - hdi_prob) / 2
        finite = np.isfinite(draws)
        fitted = self.idata.constant_data["fitted"]
        out = xr.Dataset(
            {
                "median": draws.quantile(0.5, ("chain", "draw"), method="inverted_cdf").drop_vars(
                    "quantile"
                ),
                "lower": draws.quantile(q, ("chain", "draw"), method="inverted_cdf").drop_vars(
                    "quantile"
                ),
                "upper": draws.quantile(1 - q, ("chain", "draw"), method="inverted_cdf").drop_vars(
                    "quantile"
                ),
                "p_reachable": finite.mean(("chain", "draw")).where(fitted),
            }
        )
        return out.where(fitted)

    def labels_needed_draws(
        self, target: float | xr.DataArray, *, max_budget: float | None = None, seed: int = 0
    ) -> xr.DataArray:
        """Posterior draws of the labels needed for ``target`` (``inf``: not within max_budget).

        Labels are whole numbers: each draw is rounded up to the next integer.
        """
        post, const = self.idata.posterior, self.idata.constant_data
        target = xr.DataArray(target) if not isinstance(target, xr.DataArray) else target
        # a target array may carry labels the fit does not have (e.g. curves without data)
        target = target.reindex({d: post[d] for d in target.dims if d in self.curve_dims})
        closed = labels_for_accuracy_log_lambda(
            target, post["A_max"], post["log_lambda"], post["alpha"], post["beta"], const["b"]
        ).clip(min=0.0)
        last = const["last_budget"]
        horizon = 100.0 * last if max_budget is None else xr.full_like(last, float(max_budget))
        if self.curve_prior.is_zero:
            return np.ceil(xr.where(closed <= horizon, closed, np.inf).where(const["fitted"]))
        # beyond the last budget: search each draw's forecast path on a log grid, a few
        # fitted curves at a time (draws x grid x curves can be large)
        fitted = np.flatnonzero(const["fitted"].stack(curve=self.curve_dims))
        grid = xr.DataArray(np.linspace(0.0, 1.0, 257), dims="grid_point")
        log_last = np.log(last)
        log_budgets = log_last + grid * (np.log(np.maximum(horizon, last)) - log_last)
        stacked = {
            name: value.stack(curve=self.curve_dims)
            for name, value in {
                "A_max": post["A_max"],
                "log_lambda": post["log_lambda"],
                "alpha": post["alpha"],
                "beta": post["beta"],
                "b": const["b"],
                "log_budgets": log_budgets,
                "target": target.broadcast_like(const["b"]),
            }.items()
        }
        chunks = []
        for k in range(0, fitted.size, 16):
            pick = {"curve": fitted[k : k + 16]}
            p = {name: _bare_curves(value.isel(pick)) for name, value in stacked.items()}
            acc = palm_curve_log_lambda(
                np.exp(p["log_budgets"]), p["A_max"], p["log_lambda"], p["alpha"], p["beta"], p["b"]
            )
            path = self._extrapolate(logit(acc, PATH_CLIP), p["log_budgets"], seed, pick)
            chunks.append(_first_crossing(path, p["log_budgets"], p["target"]))
        index = const["fitted"].stack(curve=self.curve_dims)["curve"].isel(curve=fitted)
        beyond = xr.concat(chunks, "curve").assign_coords(curve=index).unstack("curve")
        beyond = beyond.reindex({d: post[d] for d in self.curve_dims})
        out = np.ceil(xr.where(closed <= last, closed, beyond))
        return out.where(const["fitted"]).transpose("chain", "draw", *self.curve_dims)

    def select(self, selection: Mapping[str, Any]) -> PalmFit:
        """The fit restricted to the curves with these labels (a label or a list per dim).

        Examples
        --------
        >>> fit.select({"strategy": ["random", "typiclust"]})  # doctest: +SKIP
        """
        lists = {d: list(v) if isinstance(v, list | tuple) else [v] for d, v in selection.items()}
        for dim, labels in lists.items():
            for label in labels:
                self._check_selection({dim: label}, "selection")
        return PalmFit(self.idata.sel(**lists))

    # ------------------------------------------------------------------ decisions
    def advise(self, target: float, **kwargs: Any):
        """Which strategy to continue with: see :func:`palm_bayes.advise.advise`."""
        from palm_bayes.advise import advise

        return advise(self, target, **kwargs)

    def crossover(self, a: str, b: str, **kwargs: Any) -> xr.Dataset:
        """Budget at which ``b`` overtakes ``a``: see :func:`palm_bayes.advise.crossover`."""
        from palm_bayes.advise import crossover

        return crossover(self, a, b, **kwargs)

    def aubc(self, budget_range: tuple[float, float] | None = None, **kwargs: Any) -> xr.Dataset:
        """Normalised area under the budget curve: see :func:`palm_bayes.advise.aubc`."""
        from palm_bayes.advise import aubc

        return aubc(self, budget_range, **kwargs)

    def win_matrix(self, budgets: Any, **kwargs: Any) -> xr.DataArray:
        """Pairwise P(row beats column): see :func:`palm_bayes.advise.win_matrix`."""
        from palm_bayes.advise import win_matrix

        return win_matrix(self, budgets, **kwargs)

    # ------------------------------------------------------------------ diagnostics
    def summary(self, *, hdi_prob: float = 0.9) -> xr.Dataset:
        """PALM parameters with HDIs and sampler diagnostics, per curve.

        Returns
        -------
        xarray.Dataset
            ``mean, sd, lower, upper, r_hat, ess_bulk`` with dims ``(parameter, *curve_dims)``
            and ``divergences`` with dims ``curve_dims``.
        """
        _check_prob(hdi_prob, "hdi_prob")
        post = self.idata.posterior[list(SUMMARY_VARS)]
        hdi = az.hdi(post, hdi_prob=hdi_prob)
        out = xr.Dataset(
            {
                "mean": post.mean(("chain", "draw")).to_array("parameter"),
                "sd": post.std(("chain", "draw")).to_array("parameter"),
                "lower": hdi.sel(hdi="lower", drop=True).to_array("parameter"),
                "upper": hdi.sel(hdi="higher", drop=True).to_array("parameter"),
                "r_hat": az.rhat(post).to_array("parameter"),
                "ess_bulk": az.ess(post, method="bulk").to_array("parameter"),
            }
        )
        out["divergences"] = self.idata.sample_stats["diverging"].sum(("chain", "draw"))
        return out.where(self.idata.constant_data["fitted"])

    def diagnostics(self) -> xr.Dataset:
        """Per-curve sampler health.

        Worst r_hat and bulk ESS of the sampled variables, divergent transitions, seconds.
        """
        post = self.idata.posterior[list(self.free_vars)]
        fitted = self.idata.constant_data["fitted"]
        dims = list(self.curve_dims)

        out = xr.Dataset(
            {
                "r_hat_max": _worst(az.rhat(post), fitted, dims, "max"),
                "ess_bulk_min": _worst(az.ess(post, method="bulk"), fitted, dims, "min"),
                "divergences": self.idata.sample_stats["diverging"].sum(("chain", "draw")),
                "seconds": self.idata.constant_data["sampling_seconds"],
            }
        )
        return out.where(fitted)

    # ------------------------------------------------------------------ persistence
    def to_netcdf(self, path: str | Path) -> Path:
        """Write the fit atomically (a temporary file renamed over ``path``)."""
        return atomic_write(path, lambda tmp: self.idata.to_netcdf(tmp, engine="h5netcdf"))

    @classmethod
    def from_netcdf(cls, path: str | Path) -> PalmFit:
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
        idata.load() if hasattr(idata, "load") else None
        return cls(idata)


def _worst(values: xr.Dataset, fitted: xr.DataArray, dims: list[str], how: str) -> xr.DataArray:
    """Per curve, the worst value over its own variables and (pooled fits) the shared ones."""
    reduce = np.nanmax if how == "max" else np.nanmin
    parts = []
    for value in values.data_vars.values():
        other = [d for d in value.dims if d not in dims]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows of unfitted curves
            reduced = value.reduce(reduce, dim=other) if other else value
        parts.append(reduced.broadcast_like(fitted))
    stacked = xr.concat(parts, "variable")
    return stacked.max("variable") if how == "max" else stacked.min("variable")


def _bare_curves(x: xr.DataArray | xr.Dataset):
    """Drop the stacked ``curve`` index: pieces of one selection align by position."""
    return x.drop_vars([c for c in x.coords if "curve" in x[c].dims])


def _first_crossing(path: xr.DataArray, log_budgets: xr.DataArray, target: xr.DataArray):
    """First budget on the grid where a draw's forecast path (logit) reaches the target."""
    logit_target = logit(target, PATH_CLIP)
    reached = path >= logit_target
    i1 = reached.argmax("grid_point").clip(min=1)
    i0 = i1 - 1
    l0, l1 = path.isel(grid_point=i0), path.isel(grid_point=i1)
    b0, b1 = log_budgets.isel(grid_point=i0), log_budgets.isel(grid_point=i1)
    w = ((logit_target - l0) / (l1 - l0)).clip(0.0, 1.0).fillna(1.0)
    found = np.exp(b0 + w * (b1 - b0))
    return xr.where(reached.any("grid_point"), found, np.inf)
