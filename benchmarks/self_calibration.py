"""Self-calibration on held-out curves: shipped prior vs pilot-calibrated priors vs random walk.

Every dataset of a test bed is cut into a pilot (``--pilot-seeds`` seeds, budgets up to
``--cut`` times the final budget), fitted once (``calibrate=False``), and the same posterior is
queried with four curve priors:

``shipped``
    the LCDB prior as it ships (no self-calibration);
``grid``
    the shipped prior updated by the pilot's own backtests (Bayesian refits by Laplace), grid
    posterior over (scale, rho, drift weight) (the default of ``pb.fit``);
``grid_lsq``
    the same update with least-squares refits in the backtests (the earlier default);
``stack``
    stacking of three whole priors (library, "rankings cross", wide) by backtest likelihood;
``brownian``
    the fixed random walk (``prior="brownian"``, sd 0.3).

Truth: the mean over all seeds of the full curve. Scores per bed and prior: Brier score of
P(A beats B) for every pair of curves on a dataset at 1x, 2x, 5x the pilot's last budget and at
the final budget, the number of confident answers (P > 0.9 or < 0.1) and the share right;
forecast MAE at the final budget (and least squares', and the pilot's last value's), 90%
interval coverage, and the proper scores of the forecast (CRPS, log density of the truth),
next to the least-squares curve families of ``curve_families.py`` (POW3, POW4, MMF4, WBL4,
EXP3, log-power, PALM; Gaussian predictives) fitted to the pilot's seed means; seconds of the
fit and of the self-calibration.

Beds: ``--curves FILES`` (each file one dataset, e.g. ``tabular_al_library.py`` output),
``--lcdb N`` (N LCDB datasets drawn with ``--seed``; the shipped prior was learned on LCDB, so
this bed is in-sample for it) or ``--simulate N`` (late-crossing simulations: strategies whose
ranking changes after the pilot). Rows are appended to ``<out>_pairs.csv`` and
``<out>_curves.csv``; ``--score`` aggregates them into
``benchmarks/results/self_calibration.json``, or with ``--results NAME`` into the flat tables of
``benchmarks/results/NAME.json`` (one row per bed, cut, pilot seeds, prior and distance) that
report pages render.

    python benchmarks/self_calibration.py --bed tabular --curves tabular_al/*.nc --out sc
    python benchmarks/self_calibration.py --score sc_*
    python benchmarks/self_calibration.py --score lc_cut0.2 lc_cut0.4 --results late_crossing
"""

from __future__ import annotations

import argparse
import glob
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from _results import write_results
from curve_families import FAMILIES, fit_family
from proper_scores import crps_draws, crps_gaussian, log_score_draws, log_score_gaussian

import palm_bayes as pb
from palm_bayes.data.contract import atomic_write, truncate
from palm_bayes.data.load import curves_to_frame, load_curves
from palm_bayes.inference.self_calibration import calibrate_prior
from palm_bayes.priors.shipped import default_prior

RESULTS = Path(__file__).parent / "results" / "self_calibration.json"
#: The self-calibration designs compared (name -> calibrate_prior keywords).
DESIGNS = {
    "grid": {"design": "grid"},
    "grid_lsq": {"design": "grid", "forecaster": "least_squares"},
    "stack": {"design": "stack"},
}
#: Names of the priors in the flat results tables.
PRIOR_NAMES = {
    "grid": "self-calibrated (default)",
    "grid_lsq": "self-calibrated, least-squares backtests",
    "stack": "stacked priors",
    "shipped": "shipped LCDB prior",
    "brownian": "random walk",
    "least_squares": "PALM least squares (point)",
    "last_value": "pilot's last value (point)",
    **{f"family:{name}": f"{name.upper()} least squares (Gaussian)" for name in FAMILIES},
}


def simulate_late_crossing(n: int, seed: int, seeds: int = 20) -> list[xr.Dataset]:
    """Datasets of 4 strategies whose curves leave PALM after the pilot, in different directions.

    Each strategy's logit accuracy is a PALM curve plus ``k * max(0, log(B / B0))**1.5`` with
    its own ``k`` (sd 0.35) and ``B0`` near the pilot's end, plus a dataset-wide ``k``: rankings
    of close strategies change after the pilot in about half of the datasets. Seeds add Normal
    noise (sd 0.01-0.025) in accuracy. Budgets 20, 40, ..., 600.
    """
    rng = np.random.default_rng(seed)
    budgets = np.arange(20, 601, 20, dtype=float)
    out = []
    for k in range(n):
        a_max = rng.uniform(0.75, 0.97)
        shared = rng.normal(0, 0.2)
        noise = rng.uniform(0.01, 0.025)
        rows = []
        for s in range(4):
            delta, beta = rng.uniform(0.02, 0.12), rng.uniform(0.5, 1.0)
            acc = pb.palm_curve(budgets, a_max - rng.uniform(0, 0.05), delta, 0.0, beta, b=20.0)
            z = np.log(acc) - np.log1p(-acc)
            start = rng.uniform(80, 200)
            bend = np.maximum(0.0, np.log(budgets / start)) ** 1.5
            z = z + (shared + rng.normal(0, 0.35)) * bend
            mean = 1 / (1 + np.exp(-z))
            for r in range(seeds):
                y = np.clip(mean + rng.normal(0, noise, budgets.size), 0.0, 1.0)
                rows.append(
                    pd.DataFrame(
                        {"budget": budgets, "accuracy": y, "seed": r, "strategy": f"s{s}",
                         "step": np.arange(budgets.size), "n_test": 2000.0}
                    )
                )  # fmt: skip
        frame = pd.concat(rows, ignore_index=True).assign(dataset=f"sim{seed}-{k}", embedding="x")
        out.append(load_curves(frame))
    return out


def lcdb_beds(n: int, seed: int, min_budgets: int = 10) -> list[xr.Dataset]:
    """``n`` LCDB datasets (all their learners), drawn at random."""
    from palm_bayes.data.lcdb import lcdb_curves

    lcdb = lcdb_curves(min_budgets=min_budgets)
    names = sorted(lcdb["dataset"].to_numpy().tolist())
    pick = np.random.default_rng(seed).choice(names, size=min(n, len(names)), replace=False)
    return [load_curves(lcdb.sel(dataset=[name])) for name in pick]


def file_beds(paths: list[str]) -> list[xr.Dataset]:
    """Each curve file is one dataset (its stem names it when it has no dataset label)."""
    out = []
    for path in paths:
        curves = load_curves(path)
        if "dataset" in curves.dims and curves.sizes["dataset"] > 1:
            out += [load_curves(curves.sel(dataset=[d])) for d in curves["dataset"].to_numpy()]
        else:
            frame = curves_to_frame(curves).assign(dataset=Path(path).stem)
            out.append(load_curves(frame.dropna(subset=["accuracy"])))
    return out


def seed_means(curves: xr.Dataset) -> pd.DataFrame:
    """Seed-mean accuracy per curve and budget."""
    frame = curves_to_frame(curves).dropna(subset=["accuracy"])
    keys = [d for d in ("dataset", "strategy", "embedding") if d in frame]
    return frame.groupby(keys + ["budget"], as_index=False)["accuracy"].mean()


def evaluate(curves: xr.Dataset, bed: str, args) -> tuple[list[dict], list[dict]]:
    """Fit one dataset's pilot and score the four priors on it."""
    pilot = load_curves(truncate(curves, args.cut, seeds=args.pilot_seeds))
    pilot = load_curves(pilot.where(pilot["accuracy"].notnull()))
    strategies = pilot["strategy"].to_numpy().tolist()
    if len(strategies) < 2:
        return [], []
    truth = seed_means(curves)
    pilot_mean = seed_means(pilot)
    dataset = str(pilot["dataset"].to_numpy()[0])
    # fits are kept: the priors can be re-scored without sampling again (--reuse)
    saved = Path(f"{args.out}_fits") / f"{bed}-{dataset}-cut{args.cut:g}-s{args.pilot_seeds}.nc"
    start = time.perf_counter()
    if saved.exists():
        fit = pb.PalmFit.from_netcdf(saved)
        fit_seconds = float(fit.idata.posterior.attrs.get("bench_fit_seconds", np.nan))
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = pb.fit(pilot, calibrate=False, chains=2, draws=args.draws, tune=args.draws,
                         progress=False, seed=args.seed)  # fmt: skip
        fit_seconds = time.perf_counter() - start
        fit.idata.posterior.attrs["bench_fit_seconds"] = fit_seconds
        saved.parent.mkdir(parents=True, exist_ok=True)
        fit.to_netcdf(saved)
    library = default_prior()
    priors, infos, cal_seconds = {"shipped": library}, {}, {}
    for name, kwargs in DESIGNS.items():
        start = time.perf_counter()
        priors[name], infos[name] = calibrate_prior(pilot, library, **kwargs)
        cal_seconds[name] = time.perf_counter() - start
    priors["brownian"] = pb.CurvePrior.brownian(0.3)
    lsq = pb.fit_least_squares(pilot)
    last = {s: float(pilot_mean[pilot_mean["strategy"] == s]["budget"].max()) for s in strategies}
    final = {s: float(truth[truth["strategy"] == s]["budget"].max()) for s in strategies}
    base, common = min(last.values()), min(final.values())
    at = {"1x": base, "2x": 2 * base, "5x": 5 * base, "final": common}
    at = {k: v for k, v in at.items() if v <= common}
    budgets = np.unique(list(at.values()) + list(final.values()))

    def true_at(s: str, b: float) -> float:
        t = truth[truth["strategy"] == s]
        return float(np.interp(np.log(b), np.log(t["budget"]), t["accuracy"]))

    curve_rows, pair_rows = [], []
    for name, prior in priors.items():
        draws = fit.with_prior(prior).forecast_draws(budgets, seed=args.seed)
        draws = draws.squeeze([d for d in ("dataset", "embedding") if d in draws.dims], drop=True)
        values = draws.stack(sample=("chain", "draw")).transpose("sample", "strategy", "budget")
        arr = values.to_numpy()
        for i, s in enumerate(strategies):
            k = int(np.flatnonzero(budgets == final[s])[0])
            x = arr[:, i, k]
            row = {
                "bed": bed, "dataset": dataset, "prior": name, "strategy": s,
                "truth": true_at(s, final[s]), "median": float(np.median(x)),
                "lower": float(np.quantile(x, 0.05)), "upper": float(np.quantile(x, 0.95)),
                "last": float(pilot_mean[pilot_mean["strategy"] == s]["accuracy"].iloc[-1]),
                "ratio": final[s] / last[s], "fit_seconds": fit_seconds,
                "calibration_seconds": cal_seconds.get(name, 0.0), "n_curves": len(strategies),
                "cut": args.cut, "pilot_seeds": args.pilot_seeds,
                "crps": crps_draws(x, true_at(s, final[s])),
                "log_score": log_score_draws(x, true_at(s, final[s])),
            }  # fmt: skip
            if name == "shipped":
                p = lsq.sel(strategy=s).squeeze(drop=True)
                params = {n: float(p[n]) for n in ("A_max", "delta", "alpha", "beta")}
                row["lsq"] = float(pb.palm_curve(final[s], b=float(p["b"]), **params))
            if name in infos:
                row["calibration"] = infos[name].describe()
            curve_rows.append(row)
        for i, a in enumerate(strategies):
            for j in range(i + 1, len(strategies)):
                b = strategies[j]
                for label, v in at.items():
                    k = int(np.flatnonzero(budgets == v)[0])
                    ta, tb = true_at(a, v), true_at(b, v)
                    if ta == tb:
                        continue
                    da, db = arr[:, i, k], arr[:, j, k]
                    p = float(np.mean(da > db) + 0.5 * np.mean(da == db))
                    pair_rows.append(
                        {"bed": bed, "dataset": dataset, "prior": name, "at": label, "a": a,
                         "b": b, "p": p, "won": float(ta > tb), "gap": abs(ta - tb),
                         "cut": args.cut, "pilot_seeds": args.pilot_seeds}
                    )  # fmt: skip
    curve_rows += family_rows(pilot_mean, strategies, final, true_at, curve_rows[0])
    return curve_rows, pair_rows


def family_rows(pilot_mean: pd.DataFrame, strategies, final, true_at, template: dict) -> list:
    """Forecast rows of the least-squares curve families (Gaussian predictives) per curve."""
    rows = []
    for s in strategies:
        mine = pilot_mean[pilot_mean["strategy"] == s]
        y = true_at(s, final[s])
        for family in FAMILIES:
            try:
                mean, sd = fit_family(family, mine["budget"], mine["accuracy"]).predict(final[s])
            except (ValueError, RuntimeError):  # too few points for the family
                continue
            mean, sd = float(mean[0]), float(sd[0])
            lower, upper = mean - 1.645 * sd, mean + 1.645 * sd
            rows.append({**template, "prior": f"family:{family}", "strategy": s, "truth": y,
                         "median": mean, "lower": lower, "upper": upper,
                         "crps": float(crps_gaussian(mean, sd, y)),
                         "log_score": float(log_score_gaussian(mean, sd, y)),
                         "lsq": np.nan, "calibration": None})  # fmt: skip
    return rows


def append_csv(rows: list[dict], path: Path) -> None:
    """Append rows to a CSV (header on creation)."""
    if rows:
        frame = pd.DataFrame(rows)
        frame.to_csv(path, mode="a", header=not path.exists(), index=False)


def score(prefixes: list[str]) -> dict:
    """Aggregate the CSVs of ``prefixes`` into the results dict."""
    pairs = pd.concat([pd.read_csv(f) for p in prefixes for f in glob.glob(f"{p}_pairs.csv")])
    curves = pd.concat([pd.read_csv(f) for p in prefixes for f in glob.glob(f"{p}_curves.csv")])
    out: dict = {}
    for bed, g in pairs.groupby("bed"):
        entry: dict = {"pairs": {}, "forecasts": {}}
        for (prior, at), h in g.groupby(["prior", "at"]):
            conf = (h["p"] > 0.9) | (h["p"] < 0.1)
            right = (h["p"] > 0.5) == (h["won"] > 0.5)
            undecided = (h["p"] >= 0.2) & (h["p"] <= 0.8)
            entry["pairs"].setdefault(prior, {})[at] = {
                "n": len(h),
                "brier": float(((h["p"] - h["won"]) ** 2).mean()),
                "confident": int(conf.sum()),
                "confident_right": float(right[conf].mean()) if conf.any() else None,
                "undecided_share": float(undecided.mean()),
                "decided_right": float(right[~undecided].mean()) if (~undecided).any() else None,
            }
        c = curves[curves["bed"] == bed]
        ref = c[c["prior"] == "shipped"]
        for prior, h in c.groupby("prior"):
            entry["forecasts"][prior] = {
                "n": len(h),
                "mae": float((h["median"] - h["truth"]).abs().mean()),
                "cover90": float(((h["lower"] <= h["truth"]) & (h["truth"] <= h["upper"])).mean()),
                "crps": float(h["crps"].mean()) if "crps" in h else None,
                "log_score": float(h["log_score"].mean()) if "log_score" in h else None,
            }
        for point, column in (("least_squares", "lsq"), ("last_value", "last")):
            mae = float((ref[column] - ref["truth"]).abs().mean())
            # the CRPS of a point forecast is its absolute error
            entry["forecasts"][point] = {"mae": mae, "crps": mae}
        per_dataset = ref.drop_duplicates("dataset")
        entry["datasets"] = int(per_dataset.shape[0])
        entry["curves"] = int(len(ref))
        entry["fit_seconds_per_curve"] = float(
            (per_dataset["fit_seconds"] / per_dataset["n_curves"]).mean()
        )
        grid = c[c["prior"] == "grid"].drop_duplicates("dataset")
        entry["calibration_seconds_per_curve"] = float(
            (grid["calibration_seconds"] / grid["n_curves"]).mean()
        )
        out[bed] = entry
    return out


def flat_results(prefixes: list[str]) -> dict[str, list[dict]]:
    """One row per (bed, cut, pilot seeds, prior, distance), and per method for the forecasts."""
    rows, forecasts = [], []
    for prefix in prefixes:
        setting = pd.read_csv(f"{prefix}_curves.csv").iloc[0]
        keys = {"cut": float(setting["cut"]), "pilot_seeds": int(setting["pilot_seeds"])}
        for bed, entry in score([prefix]).items():
            for prior, by_at in entry["pairs"].items():
                for at, x in by_at.items():
                    rows.append(
                        {"bed": bed, **keys, "prior": PRIOR_NAMES.get(prior, prior), "at": at,
                         "pairs": x["n"], "brier": x["brier"], "confident": x["confident"],
                         "confident_right": x["confident_right"],
                         "undecided_share": x["undecided_share"]}
                    )  # fmt: skip
            for method, x in entry["forecasts"].items():
                forecasts.append(
                    {"bed": bed, **keys, "method": PRIOR_NAMES.get(method, method),
                     "mae_final": x["mae"], "cover90_final": x.get("cover90"),
                     "crps_final": x.get("crps"), "log_score_final": x.get("log_score")}
                )  # fmt: skip
    return {"rows": rows, "forecasts": forecasts}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bed", default=None, help="name of the bed in the results")
    parser.add_argument("--curves", nargs="+", default=None)
    parser.add_argument("--lcdb", type=int, default=0)
    parser.add_argument("--simulate", type=int, default=0)
    parser.add_argument("--cut", type=float, default=0.2)
    parser.add_argument("--pilot-seeds", type=int, default=3)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="self_calibration")
    parser.add_argument("--score", nargs="+", default=None, metavar="PREFIX")
    parser.add_argument("--results", default=None, help="with --score: write results/NAME.json")
    args = parser.parse_args()
    if args.score and args.results:
        print(write_results(args.results, flat_results(args.score)))
        return
    if args.score:
        results = score(args.score)
        text = json.dumps(results, indent=1)
        atomic_write(RESULTS, lambda tmp: Path(tmp).write_text(text))
        print(text)
        return
    if args.curves:
        beds = file_beds(args.curves)
    elif args.lcdb:
        beds = lcdb_beds(args.lcdb, args.seed)
    else:
        beds = simulate_late_crossing(args.simulate, args.seed)
    for k, curves in enumerate(beds):
        start = time.perf_counter()
        try:
            c, p = evaluate(curves, args.bed, args)
        except pb.PalmInputError as err:  # e.g. a pilot with fewer than 4 budgets
            print(f"{k + 1}/{len(beds)} skipped: {err}", flush=True)
            continue
        append_csv(c, Path(f"{args.out}_curves.csv"))  # remove old CSVs before re-scoring
        append_csv(p, Path(f"{args.out}_pairs.csv"))
        print(f"{k + 1}/{len(beds)} {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
