"""Sampling health of the pooled fit of the test fixture, over sampler seeds.

Fits ``hierarchy=("strategy", "dataset")`` to the curves of
``tests/palm_bayes/inference/test_hierarchy.py``
(6 datasets x 3 strategies, 3 seeds, 10 rounds, one curve cut to 4 rounds) with the tests'
sampler settings for every seed in ``--seeds`` and prints the worst r_hat, the smallest bulk
ESS, the share of divergent transitions and the wall time of each fit, then the spread: the
test's r_hat threshold is set from this table.

    python benchmarks/pooled_seed_health.py --seeds 0-9
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

import palm_bayes as pb


def fixture_curves():
    """The curves of the pooled tests (kept in step with ``test_hierarchy.py``)."""
    ds = pb.simulate_hierarchy(
        6, ["random", "margin", "typiclust"], np.arange(1, 11) * 100.0, rng=3
    )
    short = (ds["dataset"] == "d00") & (ds["strategy"] == "margin")
    keep = ~short | (ds["step"] < 4)
    ds["accuracy"] = ds["accuracy"].where(keep)
    ds["budget"] = ds["budget"].where(keep)
    return ds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", default="0-9", help="a range A-B or a list 0,3,5")
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--tune", type=int, default=500)
    args = parser.parse_args()
    if "-" in args.seeds:
        lo, hi = map(int, args.seeds.split("-"))
        seeds = list(range(lo, hi + 1))
    else:
        seeds = [int(s) for s in args.seeds.split(",")]
    curves = fixture_curves()
    rows = []
    for seed in seeds:
        start = time.perf_counter()
        fit = pb.fit(
            curves,
            hierarchy=("strategy", "dataset"),
            seed=seed,
            draws=args.draws,
            tune=args.tune,
            progress=False,
            priors={"extrapolation": {"sd": 0.0}},
        )
        diag = fit.diagnostics()
        rows.append(
            {
                "seed": seed,
                "r_hat_max": float(diag["r_hat_max"].max()),
                "ess_bulk_min": float(diag["ess_bulk_min"].min()),
                "divergent_share": float(fit.idata.sample_stats["diverging"].mean()),
                "seconds": time.perf_counter() - start,
            }
        )
        print(pd.DataFrame(rows[-1:]).round(4).to_string(index=False, header=seed == seeds[0]))
    table = pd.DataFrame(rows)
    print()
    print(table.describe().loc[["mean", "min", "max"]].round(4).to_string())


if __name__ == "__main__":
    main()
