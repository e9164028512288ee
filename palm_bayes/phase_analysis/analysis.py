"""Phases of active learning: where the mechanism behind a dataset's risk curve changes.

The mechanism-driven theory of AL phase transitions (Machnio, Nielsen & Mehdipour Ghazi, 2026)
explains ``risk = 1 - accuracy`` by operational proxies recorded every round (empirical risk
reduction, label and feature discrepancy, geometric coverage, model complexity, a confidence
term) and looks for budgets where that explanation changes: segments of log budget, shared by
all strategies of a dataset, inside which risk is linear in the standardised proxies.

The reference finds the segments by dynamic programming and picks their number by BIC, a point
answer. Here the boundaries are parameters of a PyMC model (ordered through a Dirichlet on the
segment lengths, with a smooth switch between segments so that NUTS can move them), with their
posterior and HDIs, and the number of boundaries is chosen by PSIS-LOO. The reference's DP + BIC
is kept as :func:`dp_bic_phases`: a baseline and the sampler's starting point.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from palm_bayes.data.contract import PROXIES
from palm_bayes.errors import PalmInputError

__all__ = [
    "PROXIES",
    "MAX_SEGMENTATIONS",
    "PhaseAnalysis",
    "count_segmentations",
    "dp_bic_phases",
    "phase_table",
    "phases",
]

#: The reference's JSON of a global phase analysis; marks a complete ``palm phases`` folder.
PHASES_FILE = "global_phase_analysis.json"
_REFERENCE_RECORDS = {"method", "seed", "annotation_budget", "test_accuracy"}
_MIN_SEGMENT_POINTS = 8


# --------------------------------------------------------------------------- the data
def phase_table(
    source: Any, *, proxies: Sequence[str] | None = None, dataset: str | None = None
) -> pd.DataFrame:
    """Risk and proxies per strategy and budget, averaged over seeds (the pooled records).

    Parameters
    ----------
    source : path, xarray.Dataset or pandas.DataFrame
        A curves file written by ``al-runner`` (``.nc``; the proxies are variables on the dims
        of ``accuracy``), a long table (``.csv`` or DataFrame) with ``budget``, ``accuracy``,
        the proxies and any of ``dataset``, ``strategy``, ``embedding``, ``seed``, or the
        reference's ``mechanistic_proxy_records.csv`` (``method, seed, episode,
        annotation_budget, test_accuracy, ...``). In the reference's records a row's
        ``annotation_budget`` is one round ahead of its ``test_accuracy``: each accuracy is
        moved to the previous row's budget, next to the proxies of the labelled set it was
        trained on.
    proxies : sequence of str, optional
        Proxy columns to use; by default those of :data:`PROXIES` present in ``source``.
    dataset : str, optional
        Which dataset to analyse when ``source`` holds several.

    Returns
    -------
    pandas.DataFrame
        Columns ``strategy, budget, risk, seeds`` and the proxies, sorted by budget; rows
        where a proxy is undefined (the first round has no risk reduction) are dropped.
    """
    frame = _read(source)
    if "dataset" in frame:
        names = sorted(frame["dataset"].dropna().astype(str).unique())
        if dataset is None and len(names) > 1:
            raise PalmInputError(
                f"the curves hold {len(names)} datasets ({', '.join(names)}); phases are "
                "found per dataset: choose one with dataset= / --dataset"
            )
        if dataset is not None:
            if dataset not in names:
                raise PalmInputError(f"no dataset {dataset!r}; the curves hold {names}")
            frame = frame[frame["dataset"].astype(str) == dataset]
    if proxies is None:
        proxies = [p for p in PROXIES if p in frame]
        if not proxies:
            raise PalmInputError(
                "the curves hold no proxy variables (expected some of "
                f"{', '.join(PROXIES)}); record them with al-runner (they are on by default)"
            )
    proxies = list(proxies)
    missing = [c for c in ["budget", "accuracy", *proxies] if c not in frame]
    if missing:
        raise PalmInputError(f"the curves lack the column(s) {missing}")
    keys = [c for c in ("strategy", "embedding") if c in frame and frame[c].nunique() > 1]
    frame = frame.copy()
    frame["strategy"] = (
        frame[keys].astype(str).agg(" ".join, axis=1) if keys else frame.get("strategy", "all")
    )
    values = frame[["budget", "accuracy", *proxies]].apply(pd.to_numeric, errors="coerce")
    frame[values.columns] = values
    frame = frame.dropna(subset=["budget", "accuracy", *proxies])
    if (frame["accuracy"] > 1.5).all():
        frame["accuracy"] = frame["accuracy"] / 100.0
    if not frame["accuracy"].between(0, 1).all():
        raise PalmInputError("accuracies must be fractions in [0, 1] (or all percentages)")
    frame["risk"] = 1.0 - frame["accuracy"]
    seeds = frame["seed"] if "seed" in frame else 0
    frame = frame.assign(seeds=seeds)
    pooled = frame.groupby(["strategy", "budget"], sort=False).agg(
        risk=("risk", "mean"), seeds=("seeds", "nunique"), **{p: (p, "mean") for p in proxies}
    )
    pooled = pooled.reset_index().sort_values(["budget", "strategy"], kind="stable")
    return pooled.reset_index(drop=True)


def _read(source: Any) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        frame = source.copy()
    elif isinstance(source, xr.Dataset):
        frame = _dataset_frame(source)
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.exists():
            raise PalmInputError(f"no such file: {path}")
        if path.suffix == ".nc":
            from palm_bayes.data.contract import read_netcdf

            frame = _dataset_frame(read_netcdf(path))
        elif path.suffix == ".csv":
            frame = pd.read_csv(path)
        else:
            raise PalmInputError(f"{path}: expected a curves .nc file or a .csv table")
    else:
        raise PalmInputError(f"cannot read phases from a {type(source).__name__}")
    if _REFERENCE_RECORDS <= set(frame.columns):
        frame = _align_reference_records(frame)
    return frame.rename(columns={"method": "strategy"})


def _dataset_frame(ds: xr.Dataset) -> pd.DataFrame:
    if "accuracy" not in ds or "budget" not in ds:
        raise PalmInputError("the curves Dataset lacks 'budget' or 'accuracy'")
    names = [v for v in ds.data_vars if ds[v].dims == ds["accuracy"].dims]
    return ds[names].to_dataframe().reset_index()


def _align_reference_records(frame: pd.DataFrame) -> pd.DataFrame:
    """Put each reference accuracy at the budget it was measured at (one round earlier)."""
    order = ["method", "seed", "episode"] if "episode" in frame else ["method", "seed"]
    frame = frame.sort_values(order + ["annotation_budget"], kind="stable").copy()
    nxt = frame.groupby(["method", "seed"], sort=False)["test_accuracy"].shift(-1)
    frame["accuracy"] = nxt  # the accuracy of the model trained on this row's labelled set
    frame["budget"] = frame["annotation_budget"]
    return frame.drop(columns=["test_accuracy", "annotation_budget"]).dropna(subset=["accuracy"])


def _standardise(matrix: np.ndarray) -> np.ndarray:
    sd = matrix.std(axis=0, ddof=1) if len(matrix) > 1 else np.ones(matrix.shape[1])
    sd = np.where(np.isfinite(sd) & (sd > 1e-12), sd, 1.0)
    return (matrix - matrix.mean(axis=0)) / sd


# --------------------------------------------------------------------------- DP + BIC baseline
def _segment_sse(z: np.ndarray, y: np.ndarray, standardise: bool) -> float:
    if standardise:
        z = _standardise(z)
    design = np.column_stack([np.ones(len(y)), z])
    ridge = np.eye(design.shape[1]) * 1e-6
    ridge[0, 0] = 0.0
    coef = np.linalg.solve(design.T @ design + ridge, design.T @ y)
    return float(np.sum((y - design @ coef) ** 2)), coef


def dp_bic_phases(
    table: pd.DataFrame,
    proxies: Sequence[str] | None = None,
    *,
    max_segments: int = 6,
    min_segment_points: int = _MIN_SEGMENT_POINTS,
    segments: int | None = None,
    standardise: bool = True,
) -> dict[str, Any]:
    """The reference's global segmentation: exact dynamic programming, count chosen by BIC.

    Segments are runs of whole budgets (all strategies of a budget fall in one segment); in
    each, risk is regressed on the (segment-standardised) proxies. Returns a dict in the
    reference's ``global_phase_analysis.json`` layout (``features, segment_count,
    breakpoints, bic, sse, coefficients``); ``segments`` fixes the count instead of BIC.
    """
    proxies = list(proxies or [p for p in PROXIES if p in table])
    z = table[proxies].to_numpy(float)
    y = table["risk"].to_numpy(float)
    budgets = table["budget"].to_numpy(float)
    starts = np.flatnonzero(np.r_[True, np.diff(budgets) > 0])  # first row of each budget
    ends = np.r_[starts[1:], len(y)]
    n_groups = len(starts)
    min_points = max(int(min_segment_points), len(proxies) + 2)
    sse = np.full((n_groups + 1, n_groups + 1), np.inf)
    for i in range(n_groups):
        for j in range(i + 1, n_groups + 1):
            rows = slice(starts[i], ends[j - 1])
            if ends[j - 1] - starts[i] >= min_points:
                sse[i, j] = _segment_sse(z[rows], y[rows], standardise)[0]
    counts = [segments] if segments else range(1, int(max_segments) + 1)
    best = None
    for count in counts:
        cost = np.full((count + 1, n_groups + 1), np.inf)
        prev = np.zeros((count + 1, n_groups + 1), dtype=int)
        cost[0, 0] = 0.0
        for c in range(1, count + 1):
            for j in range(1, n_groups + 1):
                totals = cost[c - 1, :j] + sse[:j, j]
                prev[c, j] = int(np.argmin(totals))
                cost[c, j] = totals[prev[c, j]]
        if not np.isfinite(cost[count, n_groups]):
            continue
        cuts, j = [], n_groups
        for c in range(count, 0, -1):
            j = prev[c, j]
            cuts.append(j)
        cuts = sorted(cuts)[1:]  # the first segment starts at group 0
        total = float(cost[count, n_groups])
        n = len(y)
        bic = float(n * np.log(max(total, 1e-12) / n) + count * (len(proxies) + 1) * np.log(n))
        if best is None or bic < best[0]:
            best = (bic, total, count, cuts)
    if best is None:
        raise PalmInputError(
            f"too few pooled records ({len(y)}) for segments of >= {min_points} points"
        )
    bic, total, count, cuts = best
    bounds = [0, *cuts, n_groups]
    coefficients = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        rows = slice(starts[a], ends[b - 1])
        coefficients.append([float(v) for v in _segment_sse(z[rows], y[rows], standardise)[1]])
    return {
        "features": proxies,
        "segment_count": int(count),
        "breakpoints": [float(budgets[starts[c]]) for c in cuts],
        "bic": bic,
        "sse": total,
        "coefficients": coefficients,
    }


# --------------------------------------------------------------------------- exact posterior
@dataclass
class _Prior:
    """Conjugate prior: ``b | s2 ~ N(m0, s2 V0)`` per segment, one ``s2 ~ InvGamma(a0, b0)``."""

    mean_risk: float
    scale: float  # prior sd of a coefficient, in units of the noise sd
    a0: float = 1.0
    b0: float = 1e-6

    def moments(self, p: int) -> tuple[np.ndarray, np.ndarray]:
        m0 = np.zeros(p + 1)
        m0[0] = self.mean_risk
        v0 = np.full(p + 1, self.scale**2)
        v0[0] = 1e4  # a flat intercept
        return m0, v0


def _segment_terms(z, y, prior: _Prior, rows: slice):
    """Posterior pieces of one segment: ``log|Vn| - log|V0|``, the quadratic form, mn, Vn."""
    x = np.column_stack([np.ones(rows.stop - rows.start), z[rows]])
    m0, v0 = prior.moments(z.shape[1])
    precision = x.T @ x + np.diag(1.0 / v0)
    vn = np.linalg.inv(precision)
    mn = vn @ (x.T @ y[rows] + m0 / v0)
    quad = float(y[rows] @ y[rows] + m0 @ (m0 / v0) - mn @ precision @ mn)
    logdet = float(-np.linalg.slogdet(precision)[1] - np.log(v0).sum())
    return logdet, max(quad, 0.0), mn, vn


def _segmentations(n_groups: int, k: int, ok: np.ndarray) -> np.ndarray:
    """All cut positions ``(S, k)`` (group indices that start a new segment).

    Only segmentations whose segments ``[start, stop)`` all satisfy ``ok[start, stop]``;
    built segment by segment, so inadmissible prefixes are never listed.
    """
    cuts = np.zeros((1, 0), dtype=int)
    last = np.zeros(1, dtype=int)
    for _ in range(k):
        parts = [cuts[ok[last, c] & (last < c)] for c in range(1, n_groups)]
        ends = [np.full(len(part), c) for c, part in zip(range(1, n_groups), parts, strict=True)]
        cuts = np.column_stack([np.concatenate(parts), np.concatenate(ends)])
        last = cuts[:, -1]
    cuts = cuts[ok[last, n_groups]]
    return cuts[np.lexsort(cuts.T[::-1])] if k else cuts  # lexicographic, as combinations


def count_segmentations(n_groups: int, k: int, ok: np.ndarray) -> int:
    """How many admissible segmentations with ``k`` cuts there are (a DP: none is listed)."""
    ways = np.zeros(n_groups + 1, dtype=object)  # python ints: counts can exceed int64
    ways[0] = 1
    for _ in range(k + 1):
        nxt = np.zeros(n_groups + 1, dtype=object)
        for j in range(1, n_groups + 1):
            nxt[j] = sum(int(ways[i]) for i in range(j) if ok[i, j] and ways[i])
        ways = nxt
    return int(ways[n_groups])


#: Most segmentations one count of boundaries may weigh exactly (time and memory grow with it).
MAX_SEGMENTATIONS = 2_000_000


def _exact_posterior(z, y, starts, ends, k, prior, min_points, draws, rng):
    """Posterior of k boundaries (exact over all segmentations) and draws of the rest."""
    from scipy.special import gammaln, logsumexp

    n_groups, n, p = len(starts), len(y), z.shape[1]
    ok = np.zeros((n_groups + 1, n_groups + 1), dtype=bool)
    logdet = np.zeros_like(ok, dtype=float)
    quad = np.zeros_like(ok, dtype=float)
    for i in range(n_groups):
        for j in range(i + 1, n_groups + 1):
            if ends[j - 1] - starts[i] >= min_points:
                ok[i, j] = True
                logdet[i, j], quad[i, j] = _segment_terms(
                    z, y, prior, slice(starts[i], ends[j - 1])
                )[:2]
    total = count_segmentations(n_groups, k, ok)
    if total > MAX_SEGMENTATIONS:
        return total  # too many to weigh: the caller stops here
    cuts = _segmentations(n_groups, k, ok)
    if not len(cuts):
        return None
    edges = np.column_stack([np.zeros(len(cuts), int), cuts, np.full(len(cuts), n_groups)])
    a, b = edges[:, :-1], edges[:, 1:]
    a_n = prior.a0 + n / 2
    b_n = prior.b0 + 0.5 * quad[a, b].sum(axis=1)
    log_ml = (
        0.5 * logdet[a, b].sum(axis=1)
        + prior.a0 * np.log(prior.b0)
        - a_n * np.log(b_n)
        + gammaln(a_n)
        - gammaln(prior.a0)
        - 0.5 * n * np.log(2 * np.pi)
    )
    log_prior = -np.log(len(cuts))  # every admissible segmentation equally likely
    evidence = float(logsumexp(log_ml) + log_prior)
    weights = np.exp(log_ml - logsumexp(log_ml))
    pick = rng.choice(len(cuts), size=draws, p=weights)
    out = {
        "cut": np.zeros((draws, k), int),
        "intercept": np.zeros((draws, k + 1)),
        "coef": np.zeros((draws, k + 1, p)),
        "noise": np.zeros(draws),
        "mean": np.zeros((draws, n)),
    }
    cache: dict[tuple[int, int], tuple] = {}
    for d, s in enumerate(pick):
        s2 = 1.0 / rng.gamma(a_n, 1.0 / b_n[s])
        out["noise"][d] = np.sqrt(s2)
        out["cut"][d] = cuts[s]
        for seg, (i, j) in enumerate(zip(a[s], b[s], strict=True)):
            if (i, j) not in cache:
                rows = slice(starts[i], ends[j - 1])
                _, _, mn, vn = _segment_terms(z, y, prior, rows)
                cache[(i, j)] = (rows, mn, np.linalg.cholesky(vn))
            rows, mn, chol = cache[(i, j)]
            beta = mn + np.sqrt(s2) * chol @ rng.standard_normal(p + 1)
            out["intercept"][d, seg] = beta[0]
            out["coef"][d, seg] = beta[1:]
            out["mean"][d, rows] = beta[0] + z[rows] @ beta[1:]
    out["evidence"] = evidence
    return out


def _to_idata(out, y, budgets, starts, proxies):
    import arviz as az

    k = out["cut"].shape[1]
    first = budgets[starts]
    noise = out["noise"]
    ll = -0.5 * ((y[None] - out["mean"]) / noise[:, None]) ** 2 - np.log(
        noise[:, None] * np.sqrt(2 * np.pi)
    )
    posterior = {
        "intercept": out["intercept"][None],
        "coef": out["coef"][None],
        "noise": noise[None],
    }
    if k:
        posterior["boundary"] = first[out["cut"]][None]
        posterior["boundary_after"] = first[out["cut"] - 1][None]
    idata = az.from_dict(
        posterior=posterior,
        log_likelihood={"risk": ll[None]},
        observed_data={"risk": y},
        coords={"segment": np.arange(1, k + 2), "proxy": proxies, "cut": np.arange(1, k + 1)},
        dims={
            "intercept": ["segment"],
            "coef": ["segment", "proxy"],
            "boundary": ["cut"],
            "boundary_after": ["cut"],
            "risk": ["record"],
        },
    )
    idata.posterior.attrs["log_evidence"] = out["evidence"]
    return idata


def _mean_draws(z: np.ndarray, budgets: np.ndarray, post: xr.Dataset) -> np.ndarray:
    """Posterior draws of the mean risk ``(sample, n)`` of every record."""
    stacked = post.stack(sample=("chain", "draw"))
    a = stacked["intercept"].transpose("sample", "segment").to_numpy()
    b = stacked["coef"].transpose("sample", "segment", "proxy").to_numpy()
    if "boundary" in stacked:
        cut = stacked["boundary"].transpose("sample", "cut").to_numpy()
        segment = (budgets[None, :, None] >= cut[:, None, :]).sum(-1)
    else:
        segment = np.zeros((a.shape[0], len(budgets)), int)
    rows = np.arange(a.shape[0])[:, None]
    return a[rows, segment] + np.einsum("np,snp->sn", z, b[rows, segment])


# --------------------------------------------------------------------------- the analysis
@dataclass
class PhaseAnalysis:
    """Posterior phase analysis of one dataset (see :func:`phases`)."""

    table: pd.DataFrame
    proxies: list[str]
    fits: dict[int, Any]
    loo: pd.DataFrame
    n_boundaries: int
    baseline: dict[str, Any]
    hdi_prob: float = 0.9
    notes: list[str] = field(default_factory=list)
    standardised: bool = True

    @property
    def idata(self):
        """The chosen model's InferenceData."""
        return self.fits[self.n_boundaries]

    def boundaries(self, n_boundaries: int | None = None) -> pd.DataFrame:
        """Boundaries in labels, one row each.

        ``median``: the first budget of the new phase (posterior median); ``(low, high]``: the
        credible interval (the phase changes after ``low`` and by ``high``); ``p_median``: the
        posterior probability of the median's gap.
        """
        import arviz as az

        k = self.n_boundaries if n_boundaries is None else n_boundaries
        columns = ["boundary", "median", "low", "high", "p_median"]
        if not k:
            return pd.DataFrame(columns=columns)
        post = self.fits[k].posterior
        first = post["boundary"].stack(sample=("chain", "draw")).transpose("cut", "sample")
        after = post["boundary_after"].stack(sample=("chain", "draw")).transpose("cut", "sample")
        rows = []
        for c in range(k):
            values = first.to_numpy()[c]
            hdi = az.hdi(values, hdi_prob=self.hdi_prob)
            median = float(np.quantile(values, 0.5, method="inverted_cdf"))
            low = float(after.to_numpy()[c][values == hdi[0]][0])
            rows.append([c + 1, median, low, float(hdi[1]), float(np.mean(values == median))])
        return pd.DataFrame(rows, columns=columns)

    def coefficients(self) -> pd.DataFrame:
        """Per-segment intercept and proxy coefficients (posterior mean and HDI)."""
        import arviz as az

        post = self.idata.posterior
        rows = []
        for var in ("intercept", "coef"):
            mean = post[var].mean(("chain", "draw"))
            hdi = az.hdi(post[var], hdi_prob=self.hdi_prob)[var]
            for index in np.ndindex(mean.shape):
                term = self.proxies[index[1]] if var == "coef" else "intercept"
                h = hdi.to_numpy()[index]
                rows.append(
                    {
                        "segment": int(index[0]) + 1,
                        "term": term,
                        "mean": float(mean.to_numpy()[index]),
                        "hdi_low": float(h[0]),
                        "hdi_high": float(h[1]),
                    }
                )
        return pd.DataFrame(rows)

    def reference_json(self) -> dict[str, Any]:
        """The reference's ``global_phase_analysis.json``, filled from the posterior."""
        bounds = self.boundaries()
        coef = self.coefficients()
        wide = coef.pivot(index="segment", columns="term", values="mean")
        wide = wide[["intercept", *self.proxies]]
        return {
            "features": self.proxies,
            "segment_count": self.n_boundaries + 1,
            "breakpoints": [float(v) for v in bounds["median"]],
            "breakpoint_interval": bounds[["low", "high"]].to_numpy().tolist(),
            "hdi_prob": self.hdi_prob,
            "coefficients": wide.to_numpy().tolist(),
            "coefficients_scale": "proxies standardised over all pooled records"
            if self.standardised
            else "proxies on their own scales (not standardised)",
            "selected_by": "PSIS-LOO",
            "baseline_dp_bic": self.baseline,
            "notes": self.notes,
        }

    def plot(self):
        """Risk (data, posterior fit) and standardised proxies by budget, phases shaded."""
        from palm_bayes.report.figures import new_figure

        table = self.table
        budgets = table["budget"].to_numpy(float)
        z = _standardise(table[self.proxies].to_numpy(float))
        mean = np.median(_mean_draws(z, budgets, self.idata.posterior), axis=0)
        fig = new_figure(figsize=(8, 6.5))
        top, bottom = fig.subplots(2, 1, sharex=True)
        for name, rows in table.groupby("strategy", sort=False):
            (line,) = top.plot(rows["budget"], rows["risk"], "o", ms=3.5, label=str(name))
            top.plot(rows["budget"], mean[rows.index], "-", color=line.get_color(), lw=1.2)
        top.set_ylabel("risk = 1 - accuracy")
        top.legend(fontsize=8, title="strategy (dots: data, lines: posterior median fit)")
        per_budget = pd.DataFrame(z, columns=self.proxies).groupby(table["budget"].to_numpy())
        for name, values in per_budget.mean().items():
            bottom.plot(values.index, values.to_numpy(), "-", lw=1.4, label=name)
        bottom.set_ylabel("proxy (standardised)")
        bottom.set_xlabel("labels (log scale)")
        bottom.set_xscale("log")
        bottom.legend(fontsize=7, ncol=2)
        bounds = self.boundaries()
        for ax in (top, bottom):
            for _, row in bounds.iterrows():
                ax.axvspan(row["low"], row["high"], color="0.6", alpha=0.3, lw=0)
                ax.axvline(row["median"], color="0.25", ls="--", lw=1)
        top.set_title(
            f"{self.n_boundaries + 1} phase(s): boundaries (dashed) with "
            f"{self.hdi_prob:.0%} credible intervals (grey)"
        )
        fig.tight_layout()
        return fig

    def write(self, out: str | os.PathLike) -> Path:
        """Write the reference's JSON/CSV, boundaries, coefficients, LOO and the plot."""
        from palm_bayes.data.files import atomic_folder

        out = Path(out)
        with atomic_folder(out) as tmp:
            self.table.to_csv(tmp / "pooled_phase_records.csv", index=False)
            self.boundaries().to_csv(tmp / "phase_boundaries.csv", index=False)
            self.coefficients().to_csv(tmp / "phase_coefficients.csv", index=False)
            self.loo.to_csv(tmp / "phase_loo.csv")
            self.plot().savefig(tmp / "phases.png", dpi=110)
            (tmp / PHASES_FILE).write_text(json.dumps(self.reference_json(), indent=2) + "\n")
        return out


def phases(
    source: Any,
    *,
    max_boundaries: int = 5,
    proxies: Sequence[str] | None = None,
    dataset: str | None = None,
    min_segment_points: int = _MIN_SEGMENT_POINTS,
    standardise: bool = True,
    prior_scale: float = 3.0,
    draws: int = 4000,
    seed: int = 0,
    hdi_prob: float = 0.9,
    progress: bool = False,
) -> PhaseAnalysis:
    """Find the phases of a dataset's AL curves, with posterior uncertainty on the boundaries.

    For each count of boundaries ``0..max_boundaries`` the posterior is exact: every admissible
    segmentation (segments of whole budgets with at least ``min_segment_points`` records) is
    weighed by its marginal likelihood under a conjugate Normal-inverse-gamma prior (one noise
    variance; per-segment intercept and proxy coefficients ``~ N(0, (prior_scale * noise)^2)``
    on standardised proxies), and ``draws`` independent posterior draws are taken. The count
    with the best PSIS-LOO is kept (``loo`` also lists each count's log evidence; on
    simulated data the LOO choice found the true count more often than the evidence or a
    one-standard-error rule, see ``benchmarks/phase_recovery.py``). The
    reference's DP + BIC answer is kept as ``baseline``.

    Parameters
    ----------
    source
        See :func:`phase_table`.
    max_boundaries : int
        Most boundaries tried: the reference's 5 (its ``--maximum-segments 6``). A count whose
        admissible segmentations exceed :data:`MAX_SEGMENTATIONS` is not weighed (the exact
        posterior lists them all): the search stops below it, with a note.
    proxies, dataset
        See :func:`phase_table`.
    min_segment_points : int
        Fewest records in a segment (the reference's 8, and at least proxies + 2).
    standardise : bool
        Standardise each proxy over the pooled records (default). ``False`` (the reference's
        ``--no-standardize-features``): the proxies enter on their own scales, in the model
        and in the DP + BIC baseline, and the coefficient prior (``prior_scale`` x noise sd
        per unit of proxy) then depends on those scales.
    prior_scale : float
        Prior sd of a proxy coefficient in units of the noise sd.
    draws, seed
        Posterior draws and their seed.
    hdi_prob : float
        Mass of the reported credible intervals.

    Returns
    -------
    PhaseAnalysis
    """
    from tqdm.auto import tqdm

    if not (isinstance(max_boundaries, int | np.integer) and max_boundaries >= 0):
        raise PalmInputError(f"max_boundaries must be a whole number >= 0, got {max_boundaries!r}")
    table = phase_table(source, proxies=proxies, dataset=dataset)
    proxies = [c for c in table.columns if c not in ("strategy", "budget", "risk", "seeds")]
    budgets = table["budget"].to_numpy(float)
    starts = np.flatnonzero(np.r_[True, np.diff(budgets) > 0])
    ends = np.r_[starts[1:], len(budgets)]
    min_points = max(int(min_segment_points), len(proxies) + 2)
    if len(budgets) < 2 * min_points:
        raise PalmInputError(
            f"phases need at least {2 * min_points} pooled records (strategy x budget) with "
            f"every proxy recorded; got {len(budgets)}"
        )
    z = (_standardise if standardise else np.asarray)(table[proxies].to_numpy(float))
    risk = table["risk"].to_numpy(float)
    prior = _Prior(float(risk.mean()), float(prior_scale))
    baseline = dp_bic_phases(
        table,
        proxies,
        max_segments=max_boundaries + 1,
        min_segment_points=min_points,
        standardise=standardise,
    )
    rng = np.random.default_rng(seed)
    fits: dict[int, Any] = {}
    notes = []
    for k in tqdm(range(int(max_boundaries) + 1), desc="phase models", disable=not progress):
        out = _exact_posterior(z, risk, starts, ends, k, prior, min_points, draws, rng)
        if out is None:
            break  # no room for k boundaries with segments this long
        if isinstance(out, int):
            notes.append(
                f"searched up to {k - 1} boundaries: {k} would weigh {out:,} segmentations "
                f"(more than {MAX_SEGMENTATIONS:,}); raise min_segment_points to search wider"
            )
            break
        fits[k] = _to_idata(out, risk, budgets, starts, proxies)
    loo = _compare_counts(fits)
    chosen = int(loo.index[0])
    if loo.get("warning", pd.Series(False)).any():
        notes.append("PSIS-LOO flagged high Pareto k for some counts: compare them with care")
    return PhaseAnalysis(
        table, proxies, fits, loo, chosen, baseline, hdi_prob, notes, standardised=standardise
    )


def _compare_counts(fits: dict[int, Any]) -> pd.DataFrame:
    """PSIS-LOO over the numbers of boundaries (index ``boundaries``), with log evidences."""
    import warnings

    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pareto-k warnings: reported in the table
        loo = az.compare({str(k): fits[k] for k in fits}, ic="loo")
    loo.index = loo.index.astype(int)
    loo.index.name = "boundaries"
    loo["log_evidence"] = [fits[k].posterior.attrs["log_evidence"] for k in loo.index]
    return loo
