"""Learn the extrapolation discrepancy of PALM forecasts from a library of observed curves.

:func:`learn_prior` cuts every fully observed library curve into pilots (the first
``pilot_seeds`` seeds, the budgets up to each fraction in ``cuts`` of the curve's final budget),
fits the Bayesian PALM to each pilot, and compares the pilot's forecasts with what the curve
really did later (the mean over all its seeds). The coefficients of
:class:`~palm_bayes.priors.curve_prior.CurvePrior` are then fitted in PyMC to those (forecast,
truth)
pairs, with every pilot weighted as one observation however many future budgets it has; the
correlation of two curves' shocks on one dataset is the one whose P(A beats B) best predicts
which of two pilots on the same dataset and cut is ahead later (Brier score), with a bootstrap
over datasets for its uncertainty.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from tqdm.auto import tqdm

from palm_bayes.data.contract import CURVE_DIMS, truncate
from palm_bayes.data.load import curves_to_frame, load_curves
from palm_bayes.errors import PalmInputError
from palm_bayes.learn.correlation import pairwise_correlation, residual_correlation
from palm_bayes.model.curve import palm_curve_log_lambda
from palm_bayes.priors.curve_prior import (
    POSTERIOR_FEATURES,
    SLOPE_RATIO,
    CurvePrior,
    logit,
    prefix_features,
)

__all__ = [
    "learn_prior",
    "prefix_cases",
    "library_cases",
    "forecast_cases",
    "fit_discrepancy",
    "add_posterior_features",
]

_CUT_SEP = "@cut="


def prefix_cases(
    library: xr.Dataset,
    cuts: Sequence[float] = (0.1, 0.2, 0.4),
    pilot_seeds: int | None = 3,
    min_budgets: int = 4,
) -> tuple[xr.Dataset, pd.DataFrame]:
    """Pilots cut from fully observed curves, and the truths they are scored against.

    Returns
    -------
    pilots : xarray.Dataset
        Curves contract; the ``dataset`` label of a pilot is ``<dataset>@cut=<cut>``.
    truths : pandas.DataFrame
        One row per pilot and future budget: the curve ids, ``cut``, ``pilot_dataset``,
        ``budget``, ``truth`` (mean accuracy of all seeds there) and ``last_budget`` (the
        pilot's).
    """
    frame = curves_to_frame(library)
    frame = frame.dropna(subset=["budget", "accuracy"])
    keys = list(CURVE_DIMS)
    truth = frame.groupby(keys + ["budget"], as_index=False)["accuracy"].mean()
    final = frame.groupby(keys)["budget"].max().rename("final")
    truth = truth.join(final, on=keys)
    pilots, rows = [], []
    for cut in cuts:
        part = curves_to_frame(truncate(library, cut, seeds=pilot_seeds))
        part = part.dropna(subset=["budget", "accuracy"])
        distinct = part.groupby(keys)["budget"].nunique()
        ok = distinct[distinct >= min_budgets].index
        part = part.set_index(keys).loc[lambda f, ok=ok: f.index.isin(ok)].reset_index()
        last = part.groupby(keys)["budget"].max().rename("last_budget")
        future = truth.join(last, on=keys, how="inner")
        future = future[future["budget"] > future["last_budget"]]
        label_suffix = f"{_CUT_SEP}{cut:g}"
        label = part["dataset"].astype(str) + label_suffix
        pilots.append(part.assign(dataset=label))
        rows.append(
            future.assign(
                cut=cut, pilot_dataset=future["dataset"].astype(str) + f"{_CUT_SEP}{cut:g}"
            )
            .rename(columns={"accuracy": "truth"})
            .drop(columns="final")
        )
    table = pd.concat(pilots, ignore_index=True)
    if table.empty:
        raise PalmInputError(
            f"no library curve has {min_budgets} budgets below the cuts {list(cuts)} of its "
            "final budget: give longer curves or larger cuts"
        )
    return load_curves(table), pd.concat(rows, ignore_index=True)


def forecast_cases(
    pilots: xr.Dataset,
    truths: pd.DataFrame,
    *,
    chunk: int = 30,
    seed: int = 0,
    sampler: dict[str, Any] | None = None,
    progress: bool = True,
    processes: int | None = None,
) -> pd.DataFrame:
    """Fit every pilot and add its forecast and features to each truth row.

    Adds ``med`` and ``psd`` (median and half the 16-84% range of the logit PALM forecast over
    posterior draws),
    ``med_last`` (median logit at the pilot's last budget), ``n_seeds`` (seeds per budget),
    the prior's features
    ``palm_slope`` and ``palm_level`` (posterior median curve, see
    :mod:`palm_bayes.priors.curve_prior`), the raw-data ``end_slope`` and ``last_logit``, and ``y``
    (logit truth). Pilots are fitted ``chunk`` pilot datasets at a time; with ``processes``,
    the chunks are shared among that many worker processes, each of which compiles the models
    once (the chunks keep their seeds, so the cases are those of one process).
    """
    sampler = {"chains": 2, "draws": 300, "tune": 400} | dict(sampler or {})
    names = pilots["dataset"].to_numpy().tolist()
    jobs = []
    for start in range(0, len(names), chunk):
        part = pilots.sel(dataset=names[start : start + chunk])
        rows = truths[truths["pilot_dataset"].isin(part["dataset"].to_numpy().tolist())]
        jobs.append((part, rows, seed + start, sampler))
    bar = tqdm(total=len(names), desc="pilot fits", unit="dataset", disable=not progress)
    out = []
    if processes is not None and processes > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(processes, mp_context=context) as pool:
            columns = zip(*jobs, strict=True)
            for job, cases in zip(jobs, pool.map(_chunk_cases, *columns), strict=True):
                out.append(cases)
                bar.update(job[0].sizes["dataset"])
    else:
        for job in jobs:
            out.append(_chunk_cases(*job))
            bar.update(job[0].sizes["dataset"])
    bar.close()
    out = [cases for cases in out if not cases.empty]
    if not out:
        raise PalmInputError("no pilot could be fitted")
    return pd.concat(out, ignore_index=True)


def _chunk_cases(
    part: xr.Dataset, rows: pd.DataFrame, seed: int, sampler: dict[str, Any]
) -> pd.DataFrame:
    """:func:`forecast_cases` of one chunk of pilot datasets (its truth ``rows``)."""
    from palm_bayes.palm_fit import fit

    part = load_curves(part.where(part["accuracy"].notnull()))
    rows = rows[rows["pilot_dataset"].isin(part["dataset"].to_numpy().tolist())]
    with warnings.catch_warnings():  # falling pilots are part of the library too
        warnings.simplefilter("ignore")
        result = fit(part, prior=CurvePrior.brownian(0.0), seed=seed, progress=False, **sampler)
    features = prefix_features(part)
    seeds = part["accuracy"].notnull().sum("seed")
    n_seeds = seeds.where(seeds > 0).median("step")
    post, const = result.idata.posterior, result.idata.constant_data
    out = []
    for labels, group in rows.groupby(["pilot_dataset", "strategy", "embedding"]):
        sel = dict(zip(("dataset", "strategy", "embedding"), labels, strict=True))
        if not bool(const["fitted"].sel(sel)):
            continue
        draws = {
            k: post[k].sel(sel).to_numpy().ravel() for k in ("A_max", "log_lambda", "alpha", "beta")
        }
        b = float(const["b"].sel(sel))
        last = float(const["last_budget"].sel(sel))
        budgets = np.append(group["budget"].to_numpy(), [last, SLOPE_RATIO * last])
        acc = palm_curve_log_lambda(
            budgets[None, :],
            draws["A_max"][:, None],
            draws["log_lambda"][:, None],
            draws["alpha"][:, None],
            draws["beta"][:, None],
            b,
        )
        z = logit(acc)
        feats = features.sel(sel)
        at_last, ahead = np.median(z[:, -2]), np.median(z[:, -1])
        out.append(
            group.assign(
                med=np.median(z[:, :-2], axis=0),
                # a robust spread: a few draws far out on the logit scale must not
                # pass for the posterior's width
                psd=np.diff(np.quantile(z[:, :-2], [0.16, 0.84], axis=0), axis=0)[0] / 2,
                med_last=float(at_last),
                palm_slope=float((ahead - at_last) / np.log(SLOPE_RATIO)),
                palm_level=float(at_last),
                end_slope=float(feats["end_slope"]),
                last_logit=float(feats["last_logit"]),
                n_seeds=float(n_seeds.sel(sel)),
                y=logit(group["truth"].to_numpy()),
            )
        )
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def fit_discrepancy(
    cases: pd.DataFrame,
    *,
    draws: int = 500,
    seed: int = 0,
    progress: bool = False,
    features: tuple[str, str] = POSTERIOR_FEATURES,
    seed_ref: float = 3.0,
    seed_term: bool = True,
) -> tuple[np.ndarray, np.ndarray, float, dict, dict, np.ndarray | None]:
    """Fit the drift and scale coefficients (PyMC, nutpie) to forecast cases.

    ``features`` names the (slope, level) columns of ``cases`` the discrepancy depends on. With
    ``seed_term`` and pilots of several seed counts (column ``n_seeds``), the scale also depends
    on ``log(n_seeds / seed_ref)`` (coefficient ``a_seeds``).

    Returns drift draws, scale draws (both ``(n, 4)``), the shocks' degrees of freedom (``inf``:
    Normal), the feature standardisation (mean, sd) and the ``a_seeds`` draws (or None).
    """
    import pymc as pm
    import pytensor.tensor as pt

    from palm_bayes.inference.sampling import compile_model, run_nutpie

    slope, level = features
    pilots = cases.drop_duplicates(["pilot_dataset", "strategy", "embedding"])
    mean = {k: float(pilots[k].mean()) for k in features}
    sd = {k: float(pilots[k].std()) or 1.0 for k in features}
    cases = cases.dropna(subset=[*features, "med", "psd", "y"])
    d = np.log(cases["budget"] / cases["last_budget"]).to_numpy()
    zs = ((cases[slope] - mean[slope]) / sd[slope]).to_numpy()
    zl = ((cases[level] - mean[level]) / sd[level]).to_numpy()
    gain = (cases["med"] - cases["med_last"]).to_numpy()
    with_seeds = seed_term and "n_seeds" in cases and cases["n_seeds"].nunique() > 1
    seed_term = np.log(cases["n_seeds"] / seed_ref).to_numpy() if with_seeds else 0.0
    size = cases.groupby(["pilot_dataset", "strategy", "embedding"])["y"].transform("size")
    weight = (1.0 / size).to_numpy()
    with pm.Model() as model:
        w = pm.Normal("w", mu=0.0, sigma=np.array([1.0, 1.0, 1.0, 0.5]), shape=4)
        a = pm.Normal(
            "a", mu=np.array([np.log(0.3), 0.5, 0.0, 0.0]), sigma=np.array([1.0, 0.5, 0.5, 0.5]),
            shape=4,
        )  # fmt: skip
        drift = d * (w[0] + w[1] * zs + w[2] * zl) + w[3] * gain
        log_scale = a[0] + a[2] * zl + a[3] * zs
        if with_seeds:
            log_scale = log_scale + pm.Normal("a_seeds", 0.0, 0.5) * seed_term
        scale = pt.exp(log_scale) * d ** a[1]
        sigma = pt.sqrt(cases["psd"].to_numpy() ** 2 + scale**2)
        # Normal, like the posterior spread it is added to at query time (a Student-t here
        # let a tiny scale explain the outliers and gave too narrow forecast intervals)
        logp = pm.logp(
            pm.Normal.dist(mu=cases["med"].to_numpy() + drift, sigma=sigma), cases["y"].to_numpy()
        )
        pm.Potential("likelihood", (weight * logp).sum())
    compiled = compile_model(model)
    trace = run_nutpie(compiled, progress=progress, chains=2, draws=draws, tune=draws, seed=seed)
    post = trace.posterior
    w_draws = post["w"].stack(sample=("chain", "draw")).transpose("sample", ...).to_numpy()
    a_draws = post["a"].stack(sample=("chain", "draw")).transpose("sample", ...).to_numpy()
    s_draws = post["a_seeds"].stack(sample=("chain", "draw")).to_numpy() if with_seeds else None
    return w_draws, a_draws, np.inf, mean, sd, s_draws


def add_posterior_features(cases: pd.DataFrame) -> pd.DataFrame:
    """``palm_slope`` and ``palm_level`` for cases saved before they were recorded.

    The posterior median logit at ``SLOPE_RATIO x`` the last budget is interpolated (linearly
    in log budget) between ``med_last`` and the pilot's future ``med`` values.
    """
    keys = ["pilot_dataset", "strategy", "embedding"]
    rows = []
    for _, group in cases.groupby(keys, sort=False):
        last = float(group["last_budget"].iloc[0])
        at_last = float(group["med_last"].iloc[0])
        order = np.argsort(group["budget"].to_numpy())
        x = np.log(np.r_[last, group["budget"].to_numpy()[order]] / last)
        y = np.r_[at_last, group["med"].to_numpy()[order]]
        target = np.log(SLOPE_RATIO)
        if x[-1] >= target:
            ahead = float(np.interp(target, x, y))
        else:  # the future ends earlier: carry its last secant on
            ahead = at_last + (y[-1] - at_last) / x[-1] * target
        rows.append(group.assign(palm_slope=(ahead - at_last) / target, palm_level=at_last))
    return pd.concat(rows).loc[cases.index]


def library_cases(
    library: xr.Dataset,
    cuts: Sequence[float],
    settings: list[int | None],
    seed: int,
    sampler: dict[str, Any] | None,
    progress: bool,
) -> pd.DataFrame:
    """Forecast cases of pilots cut with each seed setting (pilot labels kept unique)."""
    parts = []
    for k, setting in enumerate(settings):
        pilots, truths = prefix_cases(library, cuts, setting)
        if len(settings) > 1:
            tag = f"@seeds={setting or 'all'}"
            pilots = pilots.assign_coords(dataset=[f"{d}{tag}" for d in pilots["dataset"].values])
            truths = truths.assign(pilot_dataset=truths["pilot_dataset"] + tag)
        parts.append(
            forecast_cases(pilots, truths, seed=seed + 1000 * k, sampler=sampler, progress=progress)
        )
    return pd.concat(parts, ignore_index=True)


def learn_prior(
    library: Any,
    *,
    cuts: Sequence[float] = (0.1, 0.2, 0.4),
    pilot_seeds: int | None | Sequence[int | None] = 3,
    seed: int = 0,
    draws: int = 500,
    source: str = "user library",
    sampler: dict[str, Any] | None = None,
    progress: bool = True,
    cases: pd.DataFrame | None = None,
) -> CurvePrior:
    """Learn how real curves leave the PALM form after a prefix, from fully observed curves.

    Parameters
    ----------
    library : xarray.Dataset, DataFrame or path
        Fully observed curves (anything :func:`palm_bayes.load_curves` reads), e.g. earlier
        ``al-runner sweep`` results on other datasets. Curves on the same ``dataset`` teach the
        correlation of two strategies' departures.
    cuts : sequence of float
        Pilot lengths as fractions of each curve's final budget.
    pilot_seeds : int, None or a sequence of them
        Seeds per pilot (the first ones); ``None`` for all. Several values (e.g. ``(3, None)``)
        cut pilots of each, and the learned scale then depends on the seed count (a prior
        learned on 3-seed pilots alone is too wide for curves measured with many seeds).
    seed : int
        Seed of the pilot fits, the coefficient sampler and the bootstrap.
    draws : int
        Coefficient draws per chain (2 chains).
    source : str
        What the library is, kept in the prior's provenance.
    sampler : dict, optional
        Settings of the pilot fits (default 2 chains x 300 draws after 400 tuning steps).
    progress : bool
        Progress bar over pilot fits.
    cases : DataFrame, optional
        Output of :func:`forecast_cases` from an earlier call (skips the pilot fits).

    Returns
    -------
    CurvePrior
        Pass it as ``pb.fit(curves, prior=...)``; ``.save(path)`` / ``pb.load_prior(path)``.
    """
    settings = list(pilot_seeds) if isinstance(pilot_seeds, list | tuple) else [pilot_seeds]
    if cases is None:
        cases = library_cases(load_curves(library), cuts, settings, seed, sampler, progress)
    if not set(POSTERIOR_FEATURES) <= set(cases.columns):
        cases = add_posterior_features(cases)
    ref = float(min(s for s in settings if s is not None)) if any(settings) else 3.0
    w, a, nu, mean, sd, s_draws = fit_discrepancy(
        cases, draws=draws, seed=seed, seed_ref=ref, seed_term=len(settings) > 1
    )
    prior = CurvePrior(
        drift=w,
        scale=a,
        rho=np.zeros(w.shape[0]),
        nu=nu,
        feature_mean=mean,
        feature_sd=sd,
        seed_scale=s_draws,
        seed_ref=ref,
        seed_offsets=True,
    )
    # rho: what best tells two curves of one dataset apart (the Pearson correlation of the
    # residuals, kept for inspection, is set by the few pairs that part widely)
    prior.rho = pairwise_correlation(cases, prior, w.shape[0], seed)
    pearson = float(np.mean(residual_correlation(cases, prior, 200, seed)))
    prior.meta = {
        "kind": "learned",
        "source": source,
        "n_curves": int(cases.drop_duplicates(list(CURVE_DIMS))[list(CURVE_DIMS)].shape[0]),
        "n_pilots": int(cases.drop_duplicates(["pilot_dataset", "strategy", "embedding"]).shape[0]),
        "n_datasets": int(cases["dataset"].nunique()),
        "cuts": [float(c) for c in cuts],
        "pilot_seeds": settings[0] if len(settings) == 1 else settings,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "rho_method": "pairwise Brier",
        "rho_pearson": pearson,
    }
    return prior
