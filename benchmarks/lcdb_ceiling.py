"""How well can any prefix-only forecaster do on LCDB? A meta-learned reference for the MAE targets.

The forecast task of ``lcdb_forecast.py`` (see only budgets <= 20% of the largest, forecast the
seed-averaged accuracy at the largest), on many LCDB curves at once. Besides least squares and
the last observed value, a gradient-boosted regressor (scikit-learn, absolute-error loss) learns
the gain ``truth - last`` from prefix features of *other datasets' curves* (grouped K-fold over
OpenML datasets, so no dataset is both trained and scored). It sees what a PALM fit sees (the
last accuracies, their steps and slopes in log budget, the extrapolation distance, the test-set
size) plus, in one variant, the learner's name. It is a reference for what the prefix can tell,
not a method of the package: it has no uncertainty and needs thousands of related curves.

With ``--compare-json`` (the ``--json`` output of ``lcdb_forecast.py`` or
``lcdb_hierarchical.py``) their methods are scored on the same curves, against the same truth.

    python benchmarks/lcdb_forecast.py --n-curves 600 --seed 99 --json bayes.json
    python benchmarks/lcdb_ceiling.py --n-curves 0 --compare-json bayes.json
"""

from __future__ import annotations

import argparse
import os
from concurrent.futures import ProcessPoolExecutor
from functools import partial

import numpy as np
import pandas as pd
from _common import in_prefix, print_table
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.model_selection import GroupKFold
from tqdm import tqdm

from palm_bayes.data.lcdb import lcdb_csv_path
from palm_bayes.inference.least_squares import fit_curve_least_squares
from palm_bayes.model.curve import palm_curve

LAGS = 4


def seed_means(csv: str | None, min_budgets: int) -> pd.DataFrame:
    """Seed-averaged accuracy per (dataset, learner, budget) of the curves with enough budgets."""
    frame = pd.read_csv(
        csv or lcdb_csv_path(),
        usecols=["openmlid", "learner", "size_train", "size_test", "outer_seed", "inner_seed"]
        + ["score_test"],
    ).dropna(subset=["score_test"])
    # as palm_bayes.data.lcdb.lcdb_curves: one row per seed pair and budget
    frame = frame.drop_duplicates(["openmlid", "learner", "outer_seed", "inner_seed", "size_train"])
    frame["learner"] = frame["learner"].str.rsplit(".", n=1).str[-1]
    means = (
        frame.groupby(["openmlid", "learner", "size_train"])
        .agg(acc=("score_test", "mean"), n_test=("size_test", "median"))
        .reset_index()
    )
    sizes = means.groupby(["openmlid", "learner"])["size_train"].transform("size")
    return means[sizes >= min_budgets]


def curve_row(curve: pd.DataFrame, prefix: float) -> dict | None:
    """Prefix features, the least-squares forecast and the truth of one curve."""
    budget = curve["size_train"].to_numpy(float)
    acc = curve["acc"].to_numpy()
    largest = budget.max()
    seen = in_prefix(budget, largest, prefix)
    if seen.sum() < LAGS:
        return None
    bp, ap = budget[seen], acc[seen]
    b = float(np.median(np.diff(bp)))
    lsq = fit_curve_least_squares(bp, ap, b)
    forecast = (
        float(palm_curve(largest, lsq["A_max"], lsq["delta"], lsq["alpha"], lsq["beta"], b=b))
        if lsq["success"]
        else ap[-1]
    )
    log_b = np.log(bp[::-1][:LAGS])
    last = ap[::-1][:LAGS]
    row = {
        "truth": acc[budget == largest][0],
        "last": ap[-1],
        "lsq": forecast,
        "extrapolation": np.log(largest) - log_b[0],
        "log_budget": log_b[0],
        "log_n_test": np.log(curve["n_test"].iloc[-1]),
        "n_prefix": int(seen.sum()),
    }
    for k in range(1, LAGS):
        row[f"step{k}"] = last[k - 1] - last[k]
        row[f"slope{k}"] = (last[0] - last[k]) / (log_b[0] - log_b[k])
    return row


def grouped_predictions(
    data: pd.DataFrame, features: list[str], folds: int, seed: int
) -> np.ndarray:
    """Out-of-fold forecasts of the gradient-boosted gain model, folds grouped by dataset."""
    x = data[features].copy()
    if "learner" in features:
        x["learner"] = x["learner"].astype("category")
    gain = data["truth"] - data["last"]
    categorical = [name == "learner" for name in features]
    out = np.zeros(len(data))
    for train, test in GroupKFold(folds).split(x, gain, data["openmlid"]):
        model = HistGradientBoostingRegressor(
            loss="absolute_error",
            max_iter=300,
            learning_rate=0.05,
            categorical_features=categorical if any(categorical) else None,
            random_state=seed,
        )
        model.fit(x.iloc[train], gain.iloc[train])
        out[test] = model.predict(x.iloc[test])
    return data["last"].to_numpy() + out


def read_results(path: str) -> pd.DataFrame:
    """Per-curve forecasts written by ``lcdb_forecast.py --json`` or ``lcdb_hierarchical.py``."""
    frame = pd.read_json(path)
    return pd.DataFrame(
        {
            "openmlid": frame["dataset"].str.removeprefix("openml-").astype(int),
            "learner": frame["strategy"],
            "method": frame["method"],
            "forecast": frame["forecast"],
        }
    )


def prefix_table(args: argparse.Namespace, extra_keys: pd.DataFrame) -> pd.DataFrame:
    """Prefix features of the chosen curves (plus ``extra_keys``), least squares in parallel."""
    means = seed_means(args.csv, args.min_budgets)
    keys = means[["openmlid", "learner"]].drop_duplicates().reset_index(drop=True)
    if args.n_curves and args.n_curves < len(keys):
        keys = keys.sample(args.n_curves, random_state=args.seed)
    keys = pd.concat([keys, extra_keys]).drop_duplicates()
    chosen = means.merge(keys).sort_values(["openmlid", "learner", "size_train"])
    keys, curves = zip(*chosen.groupby(["openmlid", "learner"]), strict=True)
    with ProcessPoolExecutor(args.workers) as pool:
        rows = list(
            tqdm(
                pool.map(partial(curve_row, prefix=args.prefix), curves, chunksize=16),
                total=len(curves),
                desc="least squares",
                unit="curve",
            )
        )
    return pd.DataFrame(
        [
            {"openmlid": openmlid, "learner": learner} | row
            for (openmlid, learner), row in zip(keys, rows, strict=True)
            if row is not None
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--csv", default=None)
    parser.add_argument("--n-curves", type=int, default=1000, help="0: every curve")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prefix", type=float, default=0.2)
    parser.add_argument("--min-budgets", type=int, default=10)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--set-size", type=int, default=40)
    parser.add_argument(
        "--compare-json",
        action="append",
        default=[],
        help="per-curve results of lcdb_forecast.py / lcdb_hierarchical.py (--json); "
        "the table is then scored on their curves (repeatable)",
    )
    parser.add_argument("--features", default=None, help="parquet cache of the prefix table")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args()

    results = [read_results(path) for path in args.compare_json]
    compared = pd.concat(results) if results else pd.DataFrame(columns=["openmlid", "learner"])
    if args.features and os.path.exists(args.features):
        data = pd.read_parquet(args.features)
        on = ["openmlid", "learner"]
        missing = (
            compared[on].drop_duplicates().merge(data[on], how="left", indicator=True)["_merge"]
            == "left_only"
        )
        if missing.any():
            raise SystemExit(
                f"{args.features} lacks {int(missing.sum())} curves of --compare-json; "
                "delete it to rebuild"
            )
    else:
        data = prefix_table(args, compared[["openmlid", "learner"]].drop_duplicates())
        if args.features:
            data.to_parquet(args.features)
    shape = ["last", "extrapolation", "log_budget", "log_n_test", "n_prefix"] + [
        f"{name}{k}" for name in ("step", "slope") for k in range(1, LAGS)
    ]
    forecasts = {
        "last observed": data["last"].to_numpy(),
        "least squares": data["lsq"].to_numpy(),
        "boosted, prefix shape": grouped_predictions(data, shape, args.folds, args.seed),
        "boosted, shape + learner": grouped_predictions(
            data, shape + ["learner"], args.folds, args.seed
        ),
    }
    errors = pd.DataFrame({k: np.abs(v - data["truth"]) for k, v in forecasts.items()})
    scored = np.ones(len(data), dtype=bool)
    for path, result in zip(args.compare_json, results, strict=True):
        for method, rows in result.groupby("method"):
            merged = data.merge(rows, on=["openmlid", "learner"], how="left")
            errors[f"{os.path.basename(path)}: {method}"] = np.abs(
                merged["forecast"] - data["truth"]
            ).to_numpy()
            scored &= merged["forecast"].notna().to_numpy()
    errors = errors[scored]  # every method on the same curves; the boosted model trained on all
    rng = np.random.default_rng(args.seed)
    size = min(args.set_size, len(errors))
    sets = pd.DataFrame(
        [errors.iloc[rng.choice(len(errors), size, replace=False)].mean() for _ in range(500)]
    )
    set_ratio = sets.div(sets["least squares"], axis=0)
    table = pd.DataFrame(
        {
            "MAE": errors.mean(),
            "median AE": errors.median(),
            "MAE / LSQ": errors.mean() / errors["least squares"].mean(),
            f"ratio, {size}-curve sets p10": set_ratio.quantile(0.1),
            "p50": set_ratio.quantile(0.5),
            "p90": set_ratio.quantile(0.9),
        }
    )
    print(
        f"trained on {len(data)} curves of {data['openmlid'].nunique()} datasets "
        f"({args.folds}-fold grouped by dataset, prefix {args.prefix:.0%}); scored on "
        f"{len(errors)} curves"
    )
    print_table(table, 4)


if __name__ == "__main__":
    main()
