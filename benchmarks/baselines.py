"""Every method's forecast of held-out accuracy, with proper scores: the harness's baselines.

Used by ``decision_calibration.py --baselines``. For one fitted chunk of pilots it states, for
every method, a predictive distribution of the (seed-mean) accuracy of each curve at 1x, 2x
and 5x its pilot's last budget and at its final budget, and P(A beats B) for every pair of
curves on a dataset at 1x, 2x, 5x the pilot's last budget and at the final budget (the
budgets of ``decision_calibration.evaluate_chunk``):

- PALM Bayes with each prior (``palm:<prior>``): posterior draws of the curve
  (``forecast_draws``, kind "expected"); P(A beats B) from the joint draws.
- Each least-squares family of ``curve_families.py`` fitted to the pilot's seed means
  (``lsq:<family>``): a Gaussian; P(A beats B) = Phi(gap / sd of the gap), the two fits taken
  as independent.
- The package's least-squares PALM (``least_squares``, fitted to all the pilot's points) and
  the pilot's last seed mean (``last_value``): points only, so MAE and a hard ranking
  (P = 1, 0, or 0.5 on a tie) but no interval or proper score.

Scores (``score``): MAE of the point forecast (median of draws, Gaussian mean), 90% central
interval coverage, CRPS and log predictive density of the truth (``proper_scores.py``), and per
pair the Brier score, the confident answers (P < 0.1 or > 0.9) and the share of them right.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from curve_families import fit_family
from proper_scores import crps_draws, crps_gaussian, log_score_draws, log_score_gaussian
from scipy.stats import norm

import palm_bayes as pb

__all__ = ["FAMILY_NAMES", "chunk_rows", "horizons", "score"]

FAMILY_NAMES = ("pow3", "pow4", "mmf4", "wbl4", "exp3", "logpower3", "palm4")
#: Least-squares effort per family fit in the harness (two starts, 80 evaluations each): the
#: fits of the reported runs; ``fit_family``'s defaults try every start.
FIT_OPTIONS = {"max_nfev": 80, "starts": 2}
Z90 = float(norm.ppf(0.95))


def horizons(last: float, final: float) -> dict[str, float]:
    """Budgets 1x, 2x, 5x the pilot's last one (those not beyond ``final``) and ``final``."""
    out = {f"{k}x": k * last for k in (1, 2, 5) if k * last <= final}
    return out | {"final": final}


def _truth_at(curve: pd.DataFrame, budgets: np.ndarray) -> np.ndarray:
    lb = np.log(curve["budget"].to_numpy(float))
    return np.interp(np.log(budgets), lb, curve["truth"].to_numpy(float), np.nan, np.nan)


def _hard(a: float, b: float) -> float:
    return 1.0 if a > b else 0.0 if a < b else 0.5


def chunk_rows(
    fit: Any | None,
    priors: dict[str, Any],
    truths: pd.DataFrame,
    pilot_frame: pd.DataFrame,
    lsq: Any,
    seed: int = 0,
    families: tuple[str, ...] = FAMILY_NAMES,
) -> tuple[list[dict], list[dict]]:
    """Per-curve forecast rows and per-pair rows of every method for one fitted chunk.

    ``truths`` has one row per pilot curve and budget (``pilot_dataset``, ``dataset``,
    ``strategy``, ``embedding``, ``cut``, ``budget``, ``truth``) as built by
    ``decision_calibration.run``; ``pilot_frame`` the pilot's points (long format, its
    ``dataset`` the pilot label); ``lsq`` the package's least-squares fit of the chunk.
    ``fit=None`` (no PALM posterior) scores the families and the point methods only.
    """
    curve_rows, pair_rows = [], []
    for pilot_ds, group in truths.groupby("pilot_dataset"):
        embedding = group["embedding"].iloc[0]
        pilot = pilot_frame[
            (pilot_frame["dataset"] == pilot_ds) & (pilot_frame["embedding"] == embedding)
        ]
        seen = pilot.groupby("strategy")["budget"].max()
        if fit is not None:
            here = fit.idata.constant_data.sel(dataset=pilot_ds, embedding=embedding)
            fitted = [s for s in group["strategy"].unique() if bool(here["fitted"].sel(strategy=s))]
            last = {s: float(here["last_budget"].sel(strategy=s)) for s in fitted}
        else:  # no PALM fit: the families and points only
            fitted = [s for s in group["strategy"].unique() if s in seen.index]
            last = {s: float(seen[s]) for s in fitted}
        strategies = fitted
        if not strategies:
            continue
        sub = {s: group[group["strategy"] == s].sort_values("budget") for s in strategies}
        final = {s: float(sub[s]["budget"].max()) for s in strategies}
        hz = {s: horizons(last[s], final[s]) for s in strategies}
        base, common_final = min(last.values()), min(final.values())
        pair_at = {"1x": base, "2x": 2 * base, "5x": 5 * base, "final": common_final}
        pair_at = {k: v for k, v in pair_at.items() if v <= common_final}
        values = np.unique([v for h in hz.values() for v in h.values()] + list(pair_at.values()))
        index = {float(v): k for k, v in enumerate(values)}
        truth = {s: _truth_at(sub[s], values) for s in strategies}
        meta = {"dataset": group["dataset"].iloc[0], "cut": float(group["cut"].iloc[0])}

        # every method's prediction on `values`: ("draws", array[n, budgets]),
        # ("gauss", (mean, sd)) or ("point", array[budgets])
        preds: dict[str, dict[str, tuple[str, Any]]] = {}
        for name, prior in priors.items() if fit is not None else ():
            view = fit.with_prior(prior).select({"dataset": pilot_ds, "strategy": strategies})
            draws = view.forecast_draws(values, seed=seed).sel(
                dataset=pilot_ds, embedding=embedding
            )
            draws = draws.stack(sample=("chain", "draw")).transpose("sample", "strategy", "budget")
            preds[f"palm:{name}"] = {
                s: ("draws", draws.sel(strategy=s).to_numpy()) for s in strategies
            }
        preds["least_squares"], preds["last_value"] = {}, {}
        for s in strategies:
            p = lsq.sel(dataset=pilot_ds, strategy=s, embedding=embedding)
            args = {k: float(p[k]) for k in ("A_max", "delta", "alpha", "beta")}
            if all(np.isfinite(list(args.values()))):
                point = np.asarray(pb.palm_curve(values, b=float(p["b"]), **args), float)
                preds["least_squares"][s] = ("point", point)
            mine = pilot[pilot["strategy"] == s].groupby("budget")["accuracy"].mean()
            preds["last_value"][s] = ("point", np.full(values.size, float(mine.iloc[-1])))
            for family in families:
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        f = fit_family(
                            family, mine.index.to_numpy(float), mine.to_numpy(), **FIT_OPTIONS
                        )
                    preds.setdefault(f"lsq:{family}", {})[s] = ("gauss", f.predict(values))
                except (ValueError, RuntimeError, np.linalg.LinAlgError):
                    preds.setdefault(f"lsq:{family}", {})  # this curve: no forecast

        for method, by_strategy in preds.items():
            for s, (kind, payload) in by_strategy.items():
                for at, budget in hz[s].items():
                    k = index[float(budget)]
                    y = truth[s][k]
                    if not np.isfinite(y):
                        continue
                    row = meta | {"method": method, "strategy": s, "at": at, "budget": budget}
                    row["truth"] = y
                    if kind == "draws":
                        d = payload[:, k]
                        lo, med, hi = np.quantile(d, [0.05, 0.5, 0.95])
                        row |= {"point": med, "lower": lo, "upper": hi, "crps": crps_draws(d, y),
                                "log_score": log_score_draws(d, y)}  # fmt: skip
                    elif kind == "gauss":
                        m, sd = payload[0][k], payload[1][k]
                        row |= {"point": m, "lower": m - Z90 * sd, "upper": m + Z90 * sd,
                                "crps": float(crps_gaussian(m, sd, y)),
                                "log_score": float(log_score_gaussian(m, sd, y))}  # fmt: skip
                    else:
                        row["point"] = payload[k]
                    curve_rows.append(row)
            for i, a in enumerate(strategies):
                for b in strategies[i + 1 :]:
                    if a not in by_strategy or b not in by_strategy:
                        continue
                    (kind, pa), (_, pb_) = by_strategy[a], by_strategy[b]
                    for at, budget in pair_at.items():
                        k = index[float(budget)]
                        ta, tb = truth[a][k], truth[b][k]
                        if not (np.isfinite(ta) and np.isfinite(tb)) or ta == tb:
                            continue
                        if kind == "draws":
                            da, db = pa[:, k], pb_[:, k]
                            p = float(np.mean(da > db) + 0.5 * np.mean(da == db))
                        elif kind == "gauss":
                            gap = pa[0][k] - pb_[0][k]
                            p = float(norm.cdf(gap / np.hypot(pa[1][k], pb_[1][k])))
                        else:
                            p = _hard(pa[k], pb_[k])
                        pair_rows.append(
                            meta | {"method": method, "at": at, "a": a, "b": b, "p": p,
                                    "won": float(ta > tb), "gap": ta - tb}
                        )  # fmt: skip
    return curve_rows, pair_rows


def score(curves: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """One row per method, cut and distance: forecast and pair scores.

    Columns: ``curves``, ``MAE``, ``cover90``, ``crps``, ``log_score`` (mean over curves; NaN
    for point methods), ``pairs``, ``brier``, ``confident`` (P < 0.1 or > 0.9) and
    ``confident_right`` (their share right, NaN without any), ``ranking_right`` (share of pairs
    whose more likely winner won).
    """
    keys = ["method", "cut", "at"]
    c = curves.assign(
        err=(curves["point"] - curves["truth"]).abs(),
        inside=(curves["lower"] <= curves["truth"]) & (curves["truth"] <= curves["upper"]),
    )
    fc = c.groupby(keys).agg(
        curves=("err", "size"), MAE=("err", "mean"),
        cover90=("inside", "mean"), crps=("crps", "mean"), log_score=("log_score", "mean"),
    )  # fmt: skip
    fc.loc[c.groupby(keys)["lower"].apply(lambda v: v.isna().all()), "cover90"] = np.nan
    p = pairs.assign(
        sq=(pairs["p"] - pairs["won"]) ** 2,
        conf=(pairs["p"] > 0.9) | (pairs["p"] < 0.1),
        right=((pairs["p"] > 0.5) & (pairs["won"] > 0.5))
        | ((pairs["p"] < 0.5) & (pairs["won"] < 0.5)),
    )
    pc = p.groupby(keys).agg(
        pairs=("sq", "size"), brier=("sq", "mean"), confident=("conf", "sum"),
        ranking_right=("right", "mean"),
    )  # fmt: skip
    right = p[p["conf"]].groupby(keys)["right"].mean().rename("confident_right")
    order = {"1x": 0, "2x": 1, "5x": 2, "final": 3}
    out = fc.join(pc, how="outer").join(right).reset_index()
    return out.sort_values(
        ["cut", "method", "at"], key=lambda v: v.map(order) if v.name == "at" else v
    )
