"""Does pooling help a curve seen only briefly? Leave-datasets-out forecasting on LCDB.

Takes the curves of ``--learners`` learners (the ``strategy`` dim) on ``--datasets`` random
LCDB datasets that have all of them. In each fold ``--holdout`` datasets are held out: their
curves are cut to the budgets <= 20% of their largest, while the other datasets' curves stay
fully observed. Every method forecasts the seed-averaged accuracy of the held-out curves at
their largest budget:

- ``pooled``: ``pb.fit(all curves, hierarchy=("strategy", "dataset"))``;
- ``independent``: ``pb.fit`` of the held-out prefixes alone;
- ``lsq``: the paper's least squares on the prefixes; ``last``: the last observed value.

    python benchmarks/lcdb_hierarchical.py --datasets 12 --holdout 3
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from _common import covers, print_table, split_curves

import palm_bayes as pb
from palm_bayes.data.lcdb import lcdb_curves

LEARNERS = (
    "SVC_rbf",
    "LogisticRegression",
    "GradientBoostingClassifier",
    "SGDClassifier",
    "Perceptron",
    "SVC_linear",
)


def forecasts(fit: pb.PalmFit, truth: pd.DataFrame, method: str) -> list[dict]:
    """Median and 90% HDI at each held-out curve's largest budget."""
    fc = fit.forecast(np.unique(truth["largest"]), hdi_prob=0.9)
    rows = []
    for _, row in truth.iterrows():
        f = fc.sel(dataset=row["dataset"], strategy=row["strategy"], embedding=row["embedding"])
        f = f.sel(budget=row["largest"])
        rows.append(
            dict(
                method=method,
                forecast=float(f["median"]),
                lower=float(f["lower"]),
                upper=float(f["upper"]),
                **row.to_dict(),
            )
        )
    return rows


def run_fold(curves, held_out, prefix, sampler, seed, priors) -> tuple[list[dict], dict]:
    held = curves.sel(dataset=held_out)
    train_held, truth = split_curves(held, prefix)
    truth = truth[truth["n_prefix"] >= 4].reset_index(drop=True)
    train = curves.copy()
    for var in ("budget", "accuracy"):
        train[var] = train[var].copy()
        train[var].loc[{"dataset": held_out}] = train_held[var]
    rows = []
    start = time.perf_counter()
    pooled = pb.fit(
        train,
        hierarchy=("strategy", "dataset"),
        priors=priors or None,
        seed=seed,
        progress=False,
        **sampler,
    )
    seconds = {"pooled": time.perf_counter() - start}
    rows += forecasts(pooled, truth, "pooled")
    start = time.perf_counter()
    independent = pb.fit(train_held, seed=seed, progress=False, **sampler)
    seconds["independent"] = time.perf_counter() - start
    rows += forecasts(independent, truth, "independent")
    lsq = pb.fit_least_squares(train_held)
    for _, row in truth.iterrows():
        p = lsq.sel(dataset=row["dataset"], strategy=row["strategy"], embedding=row["embedding"])
        args = {k: float(p[k]) for k in ("A_max", "delta", "alpha", "beta")}
        value = float(pb.palm_curve(row["largest"], b=float(p["b"]), **args))
        rows.append(dict(method="lsq", forecast=value, **row.to_dict()))
        rows.append(dict(method="last", forecast=row["last"], **row.to_dict()))
    diag = pooled.diagnostics()
    seconds["pooled_r_hat_max"] = float(diag["r_hat_max"].max())
    seconds["pooled_divergent_share"] = float(pooled.idata.sample_stats["diverging"].mean())
    seconds["curves"] = int(pooled.idata.constant_data["fitted"].sum())
    return rows, seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--csv", default=None)
    parser.add_argument("--learners", default=",".join(LEARNERS))
    parser.add_argument("--datasets", type=int, default=12)
    parser.add_argument("--holdout", type=int, default=3)
    parser.add_argument("--prefix", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument(
        "--prior",
        action="append",
        default=[],
        metavar="NAME.FIELD=VALUE",
        help="override a hierarchical prior, e.g. logit_ref_accuracy.curve_sd=3",
    )
    parser.add_argument("--json", default=None, help="write per-curve results here")
    args = parser.parse_args()
    learners = args.learners.split(",")
    curves = lcdb_curves(args.csv, learners=learners, min_budgets=10)
    complete = curves["accuracy"].notnull().any(("seed", "step")).all(("strategy", "embedding"))
    names = curves["dataset"].to_numpy()[complete.to_numpy()]
    rng = np.random.default_rng(args.seed)
    names = rng.permutation(names)[: args.datasets]
    curves = curves.sel(dataset=sorted(names)).dropna("seed", how="all")
    sampler = dict(draws=args.draws, tune=args.tune)
    priors: dict[str, dict[str, float]] = {}
    for item in args.prior:
        key, value = item.split("=")
        name, field = key.split(".")
        priors.setdefault(name, {})[field] = float(value)
    rows, folds = [], []
    for k in range(0, len(names), args.holdout):
        held_out = list(names[k : k + args.holdout])
        fold_rows, info = run_fold(curves, held_out, args.prefix, sampler, args.seed + k, priors)
        rows += fold_rows
        folds.append(info | {"held_out": ",".join(held_out)})
        print(f"fold {len(folds)}: held out {held_out}: {info}", flush=True)
    frame = pd.DataFrame(rows)
    err = (frame["forecast"] - frame["truth"]).abs()
    inside = covers(frame["lower"], frame["truth"], frame["upper"])
    table = pd.DataFrame(
        {
            "curves": frame.groupby("method").size(),
            "MAE": err.groupby(frame["method"]).mean(),
            "median AE": err.groupby(frame["method"]).median(),
            "cover90": inside.where(frame["lower"].notna()).groupby(frame["method"]).mean(),
            "width90": (frame["upper"] - frame["lower"]).groupby(frame["method"]).mean(),
        }
    ).sort_values("MAE")
    lsq_mae = table.loc["lsq", "MAE"]
    table["MAE / lsq"] = table["MAE"] / lsq_mae
    print_table(table)
    print_table(pd.DataFrame(folds))
    if args.json:
        frame.to_json(args.json, orient="records")


if __name__ == "__main__":
    main()
