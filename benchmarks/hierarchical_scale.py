"""Scale of the hierarchical fit: simulated strategies x datasets, 3 seeds, 15 rounds.

Fits ``hierarchy=("strategy", "dataset")`` to curves drawn from a crossed hierarchy and prints
wall time, worst r_hat, share of divergent transitions and how often the 90% HDIs of the group
effects cover their true values. One curve per dataset is observed for its first
``--partial-rounds`` rounds only; for those curves the pooled forecast at the last budget is
compared with independent fits of the same short curves (error, 90% coverage and width against
the true PALM curve).

    python benchmarks/hierarchical_scale.py --strategies 10 --datasets 20
"""

from __future__ import annotations

import argparse
import time

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr
from _common import covers, print_table

import palm_bayes as pb
from palm_bayes.model.simulate import simulate_hierarchy


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--strategies", type=int, default=10)
    parser.add_argument("--datasets", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--draws", type=int, default=None, help="default: pb.fit's (2000)")
    parser.add_argument("--tune", type=int, default=None, help="default: pb.fit's (2000)")
    parser.add_argument("--target-accept", type=float, default=None)
    parser.add_argument("--partial-rounds", type=int, default=4)
    args = parser.parse_args()
    sampler = dict(draws=args.draws, tune=args.tune)
    if args.target_accept is not None:
        sampler["target_accept"] = args.target_accept
    strategies = [f"s{i:02d}" for i in range(args.strategies)]
    curves = simulate_hierarchy(
        args.datasets, strategies, np.arange(1, args.rounds + 1) * 100.0, rng=args.seed
    )
    # one curve per dataset (strategies in turn) keeps only its first rounds
    short = xr.zeros_like(curves["true_A_max"], dtype=bool)
    for d in range(args.datasets):
        short[d, d % args.strategies] = True
    keep = ~short | (curves["step"] < args.partial_rounds)
    curves["accuracy"] = curves["accuracy"].where(keep)
    curves["budget"] = curves["budget"].where(keep)
    start = time.perf_counter()
    fit = pb.fit(curves, hierarchy=("strategy", "dataset"), seed=args.seed, **sampler)
    seconds = time.perf_counter() - start
    partial = curves.where(short.broadcast_like(curves["accuracy"]))
    partial["n_test"] = curves["n_test"]
    alone = pb.fit(partial, seed=args.seed, progress=False, **sampler)
    diverging = fit.idata.sample_stats["diverging"]
    hdi = az.hdi(fit.idata.posterior[["effect_strategy", "effect_dataset"]], hdi_prob=0.9)
    cover = {}
    for name in ("effect_strategy", "effect_dataset"):
        truth = curves[f"true_{name}"]
        # compare centred truths: the fit's effects sum to zero over the levels
        truth = truth - truth.mean(truth.dims[0])
        inside = covers(hdi[name].sel(hdi="lower"), truth, hdi[name].sel(hdi="higher"))
        cover[name] = float(inside.mean())
    free = list(fit.free_vars)
    rhat = az.rhat(fit.idata.posterior[free])
    worst = max(free, key=lambda v: float(rhat[v].max()))
    row = {
        "curves": int(fit.idata.constant_data["fitted"].sum()),
        "seconds (compile + sample)": round(seconds, 1),
        "max r_hat": round(float(fit.diagnostics()["r_hat_max"].max()), 4),
        "worst free variable (its r_hat)": f"{worst} ({float(rhat[worst].max()):.4f})",
        "divergent share": float(diverging.mean()),
        "leapfrog steps per draw": float(fit.idata.sample_stats["n_steps"].mean()),
        "90% HDI covers strategy effects": cover["effect_strategy"],
        "90% HDI covers dataset effects": cover["effect_dataset"],
    }
    print(pd.Series(row).to_string())
    last = float(curves["budget"].max())
    truth = pb.palm_curve(
        last,
        curves["true_A_max"],
        curves["true_delta"],
        curves["true_alpha"],
        curves["true_beta"],
        curves.attrs["labels_per_round"],
    )
    rows = {}
    for name, f in (("pooled", fit), ("independent", alone)):
        fc = f.forecast([last]).sel(budget=last).squeeze("embedding", drop=True)
        fc, t = fc.where(short), truth.where(short)
        rows[name] = {
            "MAE": float(abs(fc["median"] - t).mean()),
            "90% coverage": float(covers(fc["lower"], t, fc["upper"]).sum() / short.sum()),
            "90% width": float((fc["upper"] - fc["lower"]).mean()),
        }
    print(
        f"\ncurves seen for {args.partial_rounds} of {args.rounds} rounds, forecast at {last:.0f}:"
    )
    print_table(pd.DataFrame(rows).T)


if __name__ == "__main__":
    main()
