"""Forecast benchmark on random LCDB curves: fit on the first 20% of the budget, forecast the end.

For N random LCDB curves (>= 10 budgets) per set, each method sees the points with budget <=
prefix * (largest budget) and forecasts the seed-averaged accuracy at the largest budget.
Methods: ``bayes`` (palm_bayes.fit, posterior median and 90% HDI), ``lsq`` (the paper's least
squares), ``last`` (the last observed seed mean). Labels-needed quality: the target is the seed
mean at the budget nearest half the largest; the truth is the first budget whose seed mean
reaches it.

    python benchmarks/lcdb_forecast.py --n-curves 40 --sets 3 --seed 10
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import xarray as xr
from _common import covers, print_table, split_curves

import palm_bayes as pb
from palm_bayes.data.lcdb import lcdb_curves
from palm_bayes.data.prepare import curve_dims
from palm_bayes.model.curve import labels_for_accuracy


def run_set(csv, n_curves, seed, prefix, min_budgets, methods, sampler):
    curves = lcdb_curves(csv, n_curves=n_curves, min_budgets=min_budgets, seed=seed)
    train, truth = split_curves(curves, prefix)
    skipped = int((truth["n_prefix"] < 4).sum())
    truth = truth[truth["n_prefix"] >= 4].reset_index(drop=True)
    dims = list(curve_dims(curves))
    keep = xr.zeros_like(train["accuracy"].isel(seed=0, step=0, drop=True), dtype=bool)
    for _, row in truth.iterrows():
        keep.loc[{d: row[d] for d in dims}] = True
    train = train.where(keep)
    sel = [{d: row[d] for d in dims} for _, row in truth.iterrows()]
    results = []
    if "bayes" in methods:
        start = time.perf_counter()
        fit = pb.fit(train, seed=seed, **sampler)
        seconds = time.perf_counter() - start
        fc = fit.forecast(np.unique(truth["largest"]), hdi_prob=0.9)
        tau = xr.full_like(keep, np.nan, dtype=float)
        for s, (_, row) in zip(sel, truth.iterrows(), strict=True):
            tau.loc[s] = row["tau"]
        ln = fit.labels_needed(tau.fillna(0.5), hdi_prob=0.9)
        diag = fit.diagnostics()
        for s, (_, row) in zip(sel, truth.iterrows(), strict=True):
            f = fc.sel(s).sel(budget=row["largest"])
            lab = ln.sel(s) if np.isfinite(row["tau"]) else ln.sel(s) * np.nan
            d = diag.sel(s)
            results.append(
                dict(
                    method="bayes",
                    forecast=float(f["median"]),
                    lower=float(f["lower"]),
                    upper=float(f["upper"]),
                    labels=float(lab["median"]),
                    labels_lower=float(lab["lower"]),
                    labels_upper=float(lab["upper"]),
                    r_hat=float(d["r_hat_max"]),
                    divergences=int(d["divergences"]),
                    seconds=float(d["seconds"]),
                    at_bound=np.nan,
                    **row.to_dict(),
                )
            )
        total_bayes = seconds
    if "lsq" in methods:
        start = time.perf_counter()
        lsq = pb.fit_least_squares(train)
        seconds = time.perf_counter() - start
        for s, (_, row) in zip(sel, truth.iterrows(), strict=True):
            p = lsq.sel(s)
            args = {k: float(p[k]) for k in ("A_max", "delta", "alpha", "beta")}
            b = float(p["b"])
            results.append(
                dict(
                    method="lsq",
                    forecast=float(pb.palm_curve(row["largest"], b=b, **args)),
                    labels=float(labels_for_accuracy(row["tau"], b=b, **args)),
                    at_bound=bool(p["at_bound"]),
                    seconds=seconds / len(truth),
                    **row.to_dict(),
                )
            )
    if "last" in methods:
        for _, row in truth.iterrows():
            results.append(dict(method="last", forecast=row["last"], seconds=0.0, **row.to_dict()))
    out = pd.DataFrame(results)
    out["set"] = seed
    out["skipped"] = skipped
    out["total_seconds"] = np.where(
        out["method"] == "bayes", total_bayes if "bayes" in methods else np.nan, np.nan
    )
    return out


def score(frame: pd.DataFrame) -> pd.Series:
    err = (frame["forecast"] - frame["truth"]).abs()
    res = {"curves": len(frame), "MAE": err.mean()}
    has_target = frame["true_labels"].notna()
    if "lower" in frame and frame["lower"].notna().any():
        res["cover90"] = covers(frame["lower"], frame["truth"], frame["upper"]).mean()
        res["width90"] = (frame["upper"] - frame["lower"]).mean()
        res["rhat_ok"] = (frame["r_hat"] <= 1.01).mean()
        res["no_div"] = (frame["divergences"] == 0).mean()
        res["divergences"] = frame["divergences"].sum()
        res["lab_cover90"] = covers(
            frame["labels_lower"], frame["true_labels"], frame["labels_upper"]
        )[has_target].mean()
    if frame["at_bound"].notna().any():
        res["at_bound"] = frame["at_bound"].astype(float).mean()
    if "labels" in frame and frame["labels"].notna().any():
        ratio = np.abs(np.log(np.clip(frame["labels"], 1e-9, None) / frame["true_labels"]))
        ratio = ratio[has_target]
        finite = np.isfinite(ratio)
        res["lab_med_abs_log"] = ratio[finite].median() if finite.any() else np.nan
        res["lab_unreachable"] = (~finite).mean()
    res["s_per_curve"] = frame["seconds"].mean()
    return pd.Series(res)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--csv", default=None)
    parser.add_argument("--n-curves", type=int, default=40)
    parser.add_argument("--sets", type=int, default=1)
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--prefix", type=float, default=0.2)
    parser.add_argument("--min-budgets", type=int, default=10)
    parser.add_argument("--methods", default="bayes,lsq,last")
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--target-accept", type=float, default=0.99)
    parser.add_argument("--json", default=None, help="write per-curve results here")
    args = parser.parse_args()
    methods = args.methods.split(",")
    sampler = dict(
        draws=args.draws,
        tune=args.tune,
        chains=args.chains,
        target_accept=args.target_accept,
        progress=True,
    )
    frames = [
        run_set(
            args.csv, args.n_curves, args.seed + k, args.prefix, args.min_budgets, methods, sampler
        )
        for k in range(args.sets)
    ]
    allres = pd.concat(frames, ignore_index=True)
    rows = [
        {"set": s, "method": m} | score(g).to_dict()
        for (s, m), g in allres.groupby(["set", "method"])
    ]
    rows += [
        {"set": "pooled", "method": m} | score(g).to_dict() for m, g in allres.groupby("method")
    ]
    table = pd.DataFrame(rows).set_index(["set", "method"])
    print_table(table)
    if "bayes" in methods:
        tot = allres[allres["method"] == "bayes"].groupby("set")["total_seconds"].first()
        print(f"\nbayes wall time per set (incl. compile on the first): {tot.round(1).tolist()} s")
    if args.json:
        allres.to_json(args.json, orient="records", indent=1)


if __name__ == "__main__":
    main()
