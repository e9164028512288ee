"""How much better could a richer drift model forecast than the learned prior's linear drift?

The learned curve prior moves a pilot's PALM forecast by a drift that is linear in a handful of
terms (``palm_bayes.priors.curve_prior``). This script asks what a richer model of the same
(forecast, truth) cases would gain, on the cases ``benchmarks/learn_default_prior.py
--cases-out`` saved (every LCDB pilot's posterior median forecast, its features and the
seed-mean truth), with 5 folds grouped by dataset: no dataset is both learned from and scored.

Models of the logit residual ``truth - forecast``: none (the PALM posterior median), the
prior's linear terms (Huber regression), ten linear terms, and gradient-boosted trees on nine
prefix features (scikit-learn, absolute-error loss). Printed: MAE (accuracy) at each curve's
final budget per pilot cut, and relative to the linear drift.

    python benchmarks/drift_models.py --cases lcdb_cases.pkl
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import HuberRegressor
from sklearn.model_selection import GroupKFold


def design(cases: pd.DataFrame) -> pd.DataFrame:
    """Extrapolation distance, promised gain and prefix features of each case."""
    return cases.assign(
        d=np.log(cases["budget"] / cases["last_budget"]),
        gain=cases["med"] - cases["med_last"],
        last_gap=cases["last_logit"] - cases["med_last"],
        log_last=np.log(cases["last_budget"]),
    )


def linear_terms(f: pd.DataFrame) -> np.ndarray:
    """The learned prior's drift terms: d, d x slope, d x level, gain."""
    return np.column_stack([f.d, f.d * f.end_slope, f.d * f.last_logit, f.gain])


def wide_terms(f: pd.DataFrame) -> np.ndarray:
    """Ten linear terms: the prior's, plus the data-vs-fit gap, spread, curvature in d."""
    return np.column_stack([linear_terms(f), f.d * f.last_gap, f.last_gap, f.d * f.psd,
                            f.d**2, f.gain * f.d, f.d * f.med_last])  # fmt: skip


def tree_features(f: pd.DataFrame) -> np.ndarray:
    """Nine prefix features for the boosted trees."""
    cols = ["d", "end_slope", "last_logit", "gain", "last_gap", "psd", "med_last", "cut",
            "log_last"]  # fmt: skip
    return f[cols].to_numpy()


def cross_validated(cases: pd.DataFrame, folds: int, seed: int) -> dict[str, np.ndarray]:
    """Out-of-fold residual predictions of every model."""
    target = (cases["y"] - cases["med"]).to_numpy()
    out = {k: np.zeros(len(cases)) for k in ("none", "linear", "linear, 10 terms", "boosted")}
    for train, test in GroupKFold(folds).split(cases, groups=cases["dataset"]):
        a, b = cases.iloc[train], cases.iloc[test]
        for name, terms in (("linear", linear_terms), ("linear, 10 terms", wide_terms)):
            model = HuberRegressor(max_iter=500).fit(terms(a), target[train])
            out[name][test] = model.predict(terms(b))
        trees = HistGradientBoostingRegressor(
            loss="absolute_error", max_iter=300, learning_rate=0.05, max_depth=4, random_state=seed
        ).fit(tree_features(a), target[train])
        out["boosted"][test] = trees.predict(tree_features(b))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", required=True, help="pickle of learn_default_prior --cases-out")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    cases = pd.read_pickle(args.cases)
    cases = design(cases[np.isfinite(cases["y"]) & np.isfinite(cases["med"])].reset_index())
    keys = ["dataset", "strategy", "embedding", "cut"]
    final = (cases.groupby(keys)["budget"].transform("max") == cases["budget"]).to_numpy()
    truth = 1 / (1 + np.exp(-cases["y"].to_numpy()))
    rows = []
    for name, residual in cross_validated(cases, args.folds, args.seed).items():
        error = np.abs(1 / (1 + np.exp(-(cases["med"].to_numpy() + residual))) - truth)
        row = {"model": name, "MAE final": error[final].mean()}
        for cut in sorted(cases["cut"].unique()):
            row[f"cut {cut:g}"] = error[final & (cases["cut"] == cut).to_numpy()].mean()
        rows.append(row)
    table = pd.DataFrame(rows).set_index("model")
    table["vs linear"] = table["MAE final"] / table.loc["linear", "MAE final"]
    n = cases.drop_duplicates(keys).shape[0]
    print(f"{n} pilots of {cases['dataset'].nunique()} datasets, {len(cases)} cases; "
          f"{args.folds} folds grouped by dataset")  # fmt: skip
    print(table.round(4).to_string())
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
