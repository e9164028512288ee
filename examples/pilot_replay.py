"""Replay a pilot: how the advice changes as rounds come in, next to the least-squares advisor.

For N = 4 ... all rounds of a curves file, fits PALM to the first N rounds and asks
``fit.advise(target)``; the least-squares advisor of the reference code (ALDA) answers from
``fit_least_squares`` on the same rounds: among the strategies whose fitted A_max exceeds the
target, the one with the fewest labels ``B(target)``.

    python examples/pilot_replay.py demo-output/al/curves.nc --target 0.9
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

import palm_bayes as pb


def least_squares_pick(curves, target: float) -> tuple[str, float]:
    """ALDA's point-estimate answer: the cheapest feasible strategy and its labels."""
    lsq = pb.fit_least_squares(curves).squeeze(drop=True)
    need = {
        str(s): float(
            pb.labels_for_accuracy(
                target,
                *(float(lsq[k].sel(strategy=s)) for k in ("A_max", "delta", "alpha", "beta")),
                b=float(lsq["b"].sel(strategy=s)),
            )
        )
        for s in lsq["strategy"].to_numpy()
    }
    feasible = {s: n for s, n in need.items() if np.isfinite(n)}
    if not feasible:
        return "none feasible", np.inf
    best = min(feasible, key=feasible.get)
    return best, feasible[best]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("curves")
    parser.add_argument("--target", type=float, default=0.9)
    parser.add_argument("--first", type=int, default=4)
    args = parser.parse_args()
    full = pb.load_curves(args.curves)
    rows = []
    for n in range(args.first, full.sizes["step"] + 1):
        pilot = full[["budget", "accuracy"]].where(full["step"] < n).dropna("step", how="all")
        if "n_test" in full:
            pilot["n_test"] = full["n_test"]
        fit = pb.fit(pilot, seed=0, progress=False)
        row = fit.advise(args.target).recommendation.iloc[0]
        pick, labels = least_squares_pick(pilot, args.target)
        rows.append(
            {
                "rounds": n,
                "labels so far": int(pilot["budget"].max()),
                "PALM-Bayes verdict": row["verdict"],
                "strategy": row["strategy"],
                "P(cheapest)": round(float(row["probability"]), 2),
                "least squares pick": pick,
                "its labels": round(labels),
            }
        )
        print(rows[-1], flush=True)
    pd.set_option("display.width", 200)
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
