"""Fit PALM to every curve of a curves Dataset and query the posterior.

:func:`fit` samples one independent Bayesian PALM per curve (a curve is one combination of the
id dims except ``seed``: seeds are replicate observations of the same curve) or a pooled one
(:mod:`palm_bayes.inference.pooled`) and returns a :class:`PalmFit`: the InferenceData with its
metadata and I/O (:class:`palm_bayes.inference.posterior.PalmPosterior`) and methods that call the
query
functions of :mod:`palm_bayes.queries.forecast` and :mod:`palm_bayes.queries.labels_needed`.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import arviz as az
import xarray as xr

from palm_bayes.data.load import load_curves
from palm_bayes.data.prepare import CurveStats, prepare_curves
from palm_bayes.errors import PalmInputError, SamplingWarning
from palm_bayes.inference.distributed import sample_on_ray
from palm_bayes.inference.health import sampling_problems
from palm_bayes.inference.pooled import (
    HIERARCHICAL_PRIORS,
    check_hierarchy,
    free_vars,
    sample_hierarchical,
)
from palm_bayes.inference.posterior import FORMAT, PalmPosterior, resolve_prior
from palm_bayes.inference.sampling import FREE_VARS, sample_curves
from palm_bayes.inference.self_calibration import fit_attrs
from palm_bayes.inference.two_stage import sample_two_stage
from palm_bayes.model.single import merge_priors, priors_to_json
from palm_bayes.priors.curve_prior import CurvePrior
from palm_bayes.queries import forecast as queries
from palm_bayes.queries import labels_needed as labels

__all__ = ["fit", "PalmFit"]


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
    method: Literal["importance", "nuts", "two-stage"] | None = None,
    calibrate: bool = True,
    workers: int | None = None,
) -> PalmFit:
    """Fit PALM to every curve: independently, or pooled across groups of curves.

    Parameters
    ----------
    curves : xarray.Dataset, pandas.DataFrame or path
        Anything :func:`palm_bayes.load_curves` reads.
    hierarchy : sequence of str or str, optional
        Id dims whose levels pool the curve parameters, e.g. ``("strategy",)`` or
        ``("strategy", "dataset")`` (or ``"strategy,dataset"``); see
        :mod:`palm_bayes.inference.pooled`. ``None`` (default): one independent PALM per curve.
    priors : mapping, optional
        Overrides of :data:`palm_bayes.model.single.DEFAULT_PRIORS` (independent fits) or of
        :data:`palm_bayes.inference.pooled.HIERARCHICAL_PRIORS` (hierarchical fits).
    prior : CurvePrior, path or "brownian", optional
        How forecasts leave the PALM form beyond the observed budgets (see
        :mod:`palm_bayes.priors.curve_prior`): a prior from :func:`palm_bayes.learn_prior`, a file
        it was saved to, or ``"brownian"`` for the fixed random walk of the ``extrapolation``
        prior. Default: the LCDB prior shipped with palm_bayes (the random walk when ``priors``
        sets ``extrapolation``).
    labels_per_round : float, optional
        The normaliser ``b``; by default the curves' ``labels_per_round`` attribute or each
        curve's median budget step (hierarchical fits use one ``b`` for all curves, the median
        of those, so that parameters are comparable across curves).
    seed : int
        Random seed (curve ``k`` of an independent fit is sampled with ``seed + k``).
    chains, draws, tune, target_accept, cores
        NUTS settings (nutpie). ``draws`` and ``tune`` default to 1,000 each for independent
        fits, 2,000 each for hierarchical ones (their group scales mix slowly);
        ``target_accept`` to 0.99 for independent fits (curved posteriors of short prefixes),
        0.98 for hierarchical ones below 50 curves and 0.95 from 50 curves on (mixing per
        second matters more there); ``cores`` to ``min(chains, os.cpu_count())``.
    progress : bool
        Show a progress bar.
    method : {"importance", "nuts", "two-stage"}, optional
        ``"importance"`` (default for independent fits): all curves at once, importance
        sampling with Pareto-smoothed weights, NUTS where that fails (Pareto ``k`` > 0.7; see
        :mod:`palm_bayes.inference.importance`). ``"nuts"``: every curve with NUTS (nutpie);
        for pooled fits (their default) one joint model. ``"two-stage"`` (pooled fits): each
        curve alone, then the population on the curves' draws
        (:mod:`palm_bayes.inference.two_stage`; minutes instead of tens of minutes at ~100).
    calibrate : bool
        Self-calibration (default on): backtest the pilot's own forecasts and update the curve
        prior's discrepancy (scale, drift, correlation between curves) with what they show
        (:mod:`palm_bayes.inference.self_calibration`); a pilot too short to backtest keeps
        the prior as it is, and says so in :meth:`PalmFit.describe`. ``False``: the prior as
        given.
    workers : int, optional
        Independent fits only: sample chunks of curves in this many Ray tasks of this
        process's Ray session (a new local one if none; ``ray.init(address=...)`` first for a
        cluster); same draws (:mod:`palm_bayes.inference.distributed`; extra ``sweep``).

    Returns
    -------
    PalmFit

    Examples
    --------
    >>> fit = pb.fit(pb.load_curves("examples/lcdb_curves.nc"), seed=0)  # doctest: +SKIP
    >>> fit.forecast([1000, 5000]).median  # doctest: +SKIP
    """
    method = _method(method, hierarchy)
    pooled = hierarchy is not None
    curves = load_curves(curves, min_budgets=2 if pooled else 4)  # load
    stats = prepare_curves(curves, labels_per_round, common_b=pooled)  # prepare
    _warn_falling(stats.falling)
    if pooled:
        _warn_short(curves)
        hierarchy = check_hierarchy(stats, hierarchy)
    cores = cores or min(chains, os.cpu_count() or 1)
    sampler = _sampler_settings(curves, hierarchy, chains, draws, tune, target_accept, seed)
    curve_prior = resolve_prior(prior, priors)
    prior_attrs = fit_attrs(
        curves, curve_prior, calibrate=calibrate, b=stats.b, seed=seed,
        priors=None if pooled else priors,
    )  # fmt: skip
    merged = merge_priors(priors, HIERARCHICAL_PRIORS if pooled else None)  # build
    options = {"cores": cores, "progress": progress} | sampler
    sampled = _sample(stats, hierarchy, merged, method, workers, options)  # sample
    attrs = _attrs(merged, stats.dims, sampler, hierarchy or (), method) | prior_attrs
    result = _palm_fit(stats, *sampled, curves, attrs)  # assemble
    _warn_problems(result, pooled=pooled, **sampler)
    return result


def _sample(stats, hierarchy, merged, method, workers, options) -> tuple:
    """One pooled model, or independent curves here or over Ray tasks."""
    if hierarchy is not None:
        if workers is not None:
            raise PalmInputError(
                "workers spreads independent fits over Ray; a pooled fit is one model "
                "(drop workers, or fit without hierarchy)"
            )
        if method == "two-stage":
            return sample_two_stage(stats, hierarchy, merged, **options)
        return sample_hierarchical(stats, hierarchy, merged, **options)
    if workers is not None:
        return sample_on_ray(stats, merged, workers=workers, method=method, **options)
    return sample_curves(stats, merged, method=method, **options)


def _warn_falling(falling: list[str]) -> None:
    """Warn about curves that fall as labels are added (PALM extrapolates them upward)."""
    if falling:
        warnings.warn(
            f"{len(falling)} curve(s) fall as labels are added ({', '.join(falling[:3])}); PALM "
            "describes rising curves and will extrapolate them upward: check these curves "
            "(accuracy vs. error rate, a broken learner) before trusting their forecasts",
            UserWarning,
            stacklevel=3,
        )


def _warn_short(curves: xr.Dataset) -> None:
    """Warn about curves of fewer than 4 budgets in a pooled fit."""
    short = (curves["budget"].max("seed").notnull().sum("step") < 4) & curves[
        "accuracy"
    ].notnull().any(("seed", "step"))
    if bool(short.any()):
        warnings.warn(
            f"{int(short.sum())} curve(s) have fewer than 4 budgets: their four PALM "
            "parameters come mostly from the pooling, and the sampler may mix slowly "
            "(check fit.diagnostics(); more rounds per curve help most)",
            UserWarning,
            stacklevel=3,
        )


def _sampler_settings(
    curves: xr.Dataset,
    hierarchy: Any,
    chains: int,
    draws: int | None,
    tune: int | None,
    target_accept: float | None,
    seed: int,
) -> dict[str, Any]:
    """The sampler keywords, with the defaults of independent and pooled fits filled in."""
    if target_accept is None:
        target_accept = 0.99 if hierarchy is None else _pooled_target_accept(curves)
    default_draws = 1000 if hierarchy is None else 2000
    return {
        "chains": chains,
        "draws": default_draws if draws is None else draws,
        "tune": default_draws if tune is None else tune,
        "target_accept": target_accept,
        "seed": seed,
    }


def _warn_problems(result: PalmFit, *, pooled: bool, **sampler: Any) -> None:
    """Warn (``SamplingWarning``, in plain words) when sampling went wrong."""
    idata = result.idata
    for line in sampling_problems(
        idata.posterior,
        idata.sample_stats,
        idata.constant_data,
        json.loads(idata.posterior.attrs["free_vars"]),
        pooled=pooled,
        target_accept=sampler["target_accept"],
        draws=sampler["draws"],
        tune=sampler["tune"],
    ):
        warnings.warn(line, SamplingWarning, stacklevel=3)


def _method(method: str | None, hierarchy) -> str:
    """The sampling method: importance sampling for independent fits, NUTS for pooled ones."""
    if method is None:
        return "nuts" if hierarchy is not None else "importance"
    if method not in ("importance", "nuts", "two-stage"):
        raise PalmInputError(f"method must be 'importance', 'nuts' or 'two-stage', got {method!r}")
    if method == "importance" and hierarchy is not None:
        raise PalmInputError(
            "method='importance' is for independent fits; pooled fits use 'nuts' or 'two-stage'"
        )
    if method == "two-stage" and hierarchy is None:
        raise PalmInputError(
            "method='two-stage' is for pooled fits (name a hierarchy); independent fits use "
            "'importance' or 'nuts'"
        )
    return method


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


def _palm_fit(stats, posterior, sample_stats, constant, curves, attrs) -> PalmFit:
    """Assemble the InferenceData of a fit: per-curve values onto the curve grid, and attrs."""
    const = _on_grid(stats, constant).assign(
        b=stats.b.transpose(*stats.dims)
        if stats.b_model is None
        else xr.full_like(stats.b.transpose(*stats.dims), stats.b_model)
    )
    observed = curves[["budget", "accuracy"] + (["n_test"] if "n_test" in curves else [])]
    idata = az.InferenceData(
        posterior=_on_grid(stats, posterior, last={"z_curve": "param"}),
        sample_stats=_on_grid(stats, sample_stats),
        constant_data=const,
        observed_data=observed,
    )
    idata.posterior.attrs.update(attrs)
    return PalmFit(idata)


def _on_grid(stats: CurveStats, stacked: xr.Dataset, last=None) -> xr.Dataset:
    """The variables over the stacked ``curve`` dim laid onto the curve grid, the rest kept."""
    per_curve = [name for name in stacked.data_vars if "curve" in stacked[name].dims]
    if not per_curve:
        return stacked
    grid = stats.assemble(stacked[per_curve], last=last)
    return grid.assign({n: stacked[n].variable for n in stacked.data_vars if n not in per_curve})


def _attrs(priors, dims, sampler, hierarchy, method) -> dict[str, str]:
    """The posterior attrs that describe the model and how it was sampled."""
    free = free_vars(hierarchy) if hierarchy else list(FREE_VARS)
    how = {"name": "nutpie"} | ({"method": method} if method != "nuts" else {})
    return {
        "format": FORMAT,
        "priors": priors_to_json(priors),
        "curve_dims": json.dumps(list(dims)),
        "hierarchy": json.dumps(list(hierarchy)),
        "free_vars": json.dumps(free),
        "sampler": json.dumps(how | sampler),
        "palm_bayes_version": _version(),
    }


def _version() -> str:
    from palm_bayes.data.contract import VERSION

    return VERSION


class PalmFit(PalmPosterior):
    """Posterior of PALM curves with forecasting, comparison and labels-needed queries.

    A thin object: the InferenceData, its metadata and I/O (:class:`PalmPosterior`), and
    methods that call the query functions (:mod:`palm_bayes.queries.forecast`,
    :mod:`palm_bayes.queries.labels_needed`, :mod:`palm_bayes.decisions.advise`) with it.

    Parameters
    ----------
    idata : arviz.InferenceData
        As made by :func:`fit` (or read by :meth:`from_netcdf`).
    """

    # ------------------------------------------------------------------ queries
    def population(self, new: str | Iterable[str], *, seed: int = 0) -> PalmFit:
        """The fit of a new member of the ``new`` dims (``queries.forecast.population``).

        Examples
        --------
        >>> fit.population("dataset").forecast([2000])  # doctest: +SKIP
        """
        return queries.population(self, new, seed=seed)

    def forecast_draws(
        self,
        budgets: Any,
        *,
        kind: Literal["expected", "predictive"] = "expected",
        seed: int = 0,
    ) -> xr.DataArray:
        """Posterior draws of the accuracy: :func:`palm_bayes.queries.forecast.forecast_draws`."""
        return queries.forecast_draws(self, budgets, kind=kind, seed=seed)

    def forecast(
        self,
        budgets: Any,
        *,
        hdi_prob: float = 0.9,
        kind: Literal["expected", "predictive"] = "expected",
        new: str | Iterable[str] | None = None,
        seed: int = 0,
    ) -> xr.Dataset:
        """Forecast the accuracy with an HDI: :func:`palm_bayes.queries.forecast.forecast`.

        Examples
        --------
        >>> fc = fit.forecast([500, 2000], hdi_prob=0.9)  # doctest: +SKIP
        >>> fc.sel(strategy="random").median  # doctest: +SKIP
        """
        return queries.forecast(self, budgets, hdi_prob=hdi_prob, kind=kind, new=new, seed=seed)

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
        """P(``a`` more accurate than ``b`` at ``budget``) (``queries.forecast.prob_better``).

        Examples
        --------
        >>> fit.prob_better({"strategy": "a"}, {"strategy": "b"}, budget=2000)  # doctest: +SKIP
        """
        return queries.prob_better(self, a, b, budget, kind=kind, new=new, seed=seed)

    def labels_needed(
        self,
        target: float | xr.DataArray,
        *,
        hdi_prob: float = 0.9,
        max_budget: float | None = None,
        new: str | Iterable[str] | None = None,
        seed: int = 0,
    ) -> xr.Dataset:
        """Labels needed for ``target`` accuracy (``queries.labels_needed.labels_needed``)."""
        return labels.labels_needed(
            self, target, hdi_prob=hdi_prob, max_budget=max_budget, new=new, seed=seed
        )

    def labels_needed_draws(
        self, target: float | xr.DataArray, *, max_budget: float | None = None, seed: int = 0
    ) -> xr.DataArray:
        """Draws of the labels needed (``queries.labels_needed.labels_needed_draws``)."""
        return labels.labels_needed_draws(self, target, max_budget=max_budget, seed=seed)

    def summary(self, *, hdi_prob: float = 0.9) -> xr.Dataset:
        """PALM parameters with HDIs and diagnostics (``queries.forecast.summary``)."""
        return queries.summary(self, hdi_prob=hdi_prob)

    def diagnostics(self) -> xr.Dataset:
        """Per-curve sampler health: :func:`palm_bayes.queries.forecast.diagnostics`."""
        return queries.diagnostics(self)

    def _prefix_features(self) -> xr.Dataset:
        return queries.curve_features(self)

    # ------------------------------------------------------------------ decisions
    def advise(self, target: float, **kwargs: Any):
        """Which strategy to continue with: see :func:`palm_bayes.decisions.advise.advise`."""
        from palm_bayes.decisions.advise import advise

        return advise(self, target, **kwargs)

    def stop(self, **kwargs: Any) -> xr.Dataset:
        """Stop, continue or switch, per strategy: see :func:`palm_bayes.decisions.stop.stop`.

        Examples
        --------
        >>> fit.stop(cost_per_label=1.0, value_per_point=500.0)["verdict"]  # doctest: +SKIP
        """
        from palm_bayes.decisions.stop import stop

        return stop(self, **kwargs)

    def crossover(self, a: str, b: str, **kwargs: Any) -> xr.Dataset:
        """Budget at which ``b`` overtakes ``a`` (see ``queries.rankings.crossover``)."""
        from palm_bayes.queries.rankings import crossover

        return crossover(self, a, b, **kwargs)

    def aubc(self, budget_range: tuple[float, float] | None = None, **kwargs: Any) -> xr.Dataset:
        """Normalised area under the budget curve: see :func:`palm_bayes.queries.rankings.aubc`."""
        from palm_bayes.queries.rankings import aubc

        return aubc(self, budget_range, **kwargs)

    def speedup(self, reference: str = "random", **kwargs: Any) -> xr.Dataset:
        """Speed-up factor against ``reference``: :func:`palm_bayes.queries.speedup.speedup`.

        Examples
        --------
        >>> fit.speedup("random")["median"]  # doctest: +SKIP
        """
        from palm_bayes.queries.speedup import speedup

        return speedup(self, reference, **kwargs)

    def decided_up_to(self, **kwargs: Any) -> xr.DataArray:
        """Per pair, the largest budget up to which P(row beats column) is decided.

        See :func:`palm_bayes.queries.rankings.decided_up_to`.
        """
        from palm_bayes.queries.rankings import decided_up_to

        return decided_up_to(self, **kwargs)

    def win_matrix(self, budgets: Any, **kwargs: Any) -> xr.DataArray:
        """Pairwise P(row beats column): see :func:`palm_bayes.queries.rankings.win_matrix`."""
        from palm_bayes.queries.rankings import win_matrix

        return win_matrix(self, budgets, **kwargs)
