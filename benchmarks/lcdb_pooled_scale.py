"""A pooled fit of 80 real LCDB curves: wall time per stage, sampler health, queries, accuracy.

Picks ``--datasets`` LCDB datasets (drawn with ``--seed``) that have every learner of
``--learners`` with at least 10 budgets, cuts every curve to its budgets <= ``--prefix`` of its
largest (all seeds kept) and fits them pooled over the learners
(``pb.fit(pilot, hierarchy="strategy", method=...)``: the joint NUTS fit by default,
``--method two-stage`` for :mod:`palm_bayes.inference.two_stage`). Reports the time of
the fit (compile + sample + assembly), the worst r_hat, the smallest bulk ESS and the
divergent transitions; then the time of the queries a held-out check asks for every curve
(forecast at each curve's largest budget, labels needed to reach 95% of its final accuracy)
and the forecast error and 90% coverage against the curves' own later seed means, next to
independent fits of the same pilots. Writes ``benchmarks/results/lcdb_pooled_scale.json``::

    python benchmarks/lcdb_pooled_scale.py --datasets 10
"""

from __future__ import annotations

import argparse
import time
import warnings

import arviz as az
import numpy as np
import pandas as pd
from _results import write_results
from lcdb_hierarchical import LEARNERS as HIERARCHICAL_LEARNERS

import palm_bayes as pb
from palm_bayes.data.contract import truncate
from palm_bayes.data.lcdb import lcdb_curves
from palm_bayes.data.load import curves_to_frame, load_curves

#: The six learners of the pooled LCDB comparison and two more.
LEARNERS = (*HIERARCHICAL_LEARNERS, "KNeighborsClassifier", "ExtraTreesClassifier")


def pick_curves(n_datasets: int, learners: list[str], seed: int):
    """``n_datasets`` random datasets that have every learner, full curves."""
    curves = lcdb_curves(learners=learners, min_budgets=10)
    has = curves["accuracy"].notnull().any(("seed", "step")).squeeze("embedding", drop=True)
    full = has.all("strategy").to_numpy()
    names = curves["dataset"].to_numpy()[full]
    pick = np.sort(np.random.default_rng(seed).choice(len(names), n_datasets, replace=False))
    return load_curves(curves.sel(dataset=names[pick]))


def truth_table(curves, pilot) -> pd.DataFrame:
    """Per curve: its largest budget, the seed mean there and the pilot's last budget."""
    full = curves_to_frame(curves).dropna(subset=["accuracy"])
    seen = curves_to_frame(pilot).dropna(subset=["accuracy"])
    keys = ["dataset", "strategy", "embedding"]
    means = full.groupby([*keys, "budget"])["accuracy"].mean().reset_index()
    last = means.loc[means.groupby(keys)["budget"].idxmax()].rename(
        columns={"budget": "largest", "accuracy": "truth"}
    )
    pilot_end = seen.groupby(keys)["budget"].max().rename("pilot_last").reset_index()
    return last.merge(pilot_end, on=keys)


def score(fit, truth: pd.DataFrame, method: str) -> dict:
    """Query timings and forecast accuracy of one fit over every curve."""
    start = time.perf_counter()
    fc = fit.forecast(np.unique(truth["largest"]), hdi_prob=0.9)
    forecast_seconds = time.perf_counter() - start
    errors, covered = [], []
    for _, row in truth.iterrows():
        f = fc.sel(dataset=row["dataset"], strategy=row["strategy"], embedding=row["embedding"])
        f = f.sel(budget=row["largest"])
        errors.append(abs(float(f["median"]) - row["truth"]))
        covered.append(float(f["lower"]) <= row["truth"] <= float(f["upper"]))
    start = time.perf_counter()
    fit.labels_needed(0.95 * float(truth["truth"].min()))
    labels_seconds = time.perf_counter() - start
    return {
        "method": method,
        "curves": len(truth),
        "mae": float(np.mean(errors)),
        "cover90": float(np.mean(covered)),
        "forecast_seconds": forecast_seconds,
        "labels_needed_seconds": labels_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", type=int, default=10)
    parser.add_argument("--learners", default=",".join(LEARNERS))
    parser.add_argument("--prefix", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--method", choices=("nuts", "two-stage"), default="nuts")
    parser.add_argument("--results", default="lcdb_pooled_scale")
    args = parser.parse_args()
    curves = pick_curves(args.datasets, args.learners.split(","), args.seed)
    pilot = load_curves(truncate(curves, args.prefix))
    truth = truth_table(curves, pilot)
    print(f"{len(truth)} curves, {pilot.sizes['seed']} seeds, prefix {args.prefix:g}", flush=True)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pooled = pb.fit(
            pilot, hierarchy="strategy", seed=args.seed, cores=args.cores, method=args.method
        )
    fit_seconds = time.perf_counter() - start
    post = pooled.idata.posterior
    sampler = pooled.idata.sample_stats
    r_hat, ess = az.rhat(post), az.ess(post, method="bulk")
    health = {
        "fit_seconds": fit_seconds,
        "r_hat_max": float(max(float(r_hat[v].max()) for v in r_hat.data_vars)),
        "worst_variable": max(r_hat.data_vars, key=lambda v: float(r_hat[v].max())),
        "ess_bulk_min": float(min(float(ess[v].min()) for v in ess.data_vars)),
        "divergent": int(sampler["diverging"].sum()),
        "draws": int(sampler.sizes["chain"] * sampler.sizes["draw"]),
        "warnings": sorted({str(w.message).split("\n")[0][:160] for w in caught}),
    }
    print(health, flush=True)
    rows = [score(pooled, truth, f"pooled over learners ({args.method})") | health]
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        independent = pb.fit(pilot, seed=args.seed, progress=False)
    rows.append(
        score(independent, truth, "independent") | {"fit_seconds": time.perf_counter() - start}
    )
    frame = pd.DataFrame(rows)
    print(frame.drop(columns=["warnings"], errors="ignore").to_string(index=False))
    n_learners = len(args.learners.split(","))
    data = f"LCDB, {args.datasets} datasets x {n_learners} learners (seed {args.seed})"
    meta = {"data": f"{data}, budgets <= {args.prefix:g} of each curve's largest, all seeds"}
    print(write_results(args.results, meta | {"rows": rows}))


if __name__ == "__main__":
    main()
