"""Calibration when PALM is the true model: coverage of HDIs on simulated AL curves.

Draws N curves with random PALM parameters (AL-like: 3 seeds, 10 rounds of b labels, test sets of
2,000), fits each on its first `--rounds` rounds and reports how often the 50% and 90% HDIs of
the expected curve cover the truth inside the observed rounds and at 2x / 5x the last observed
budget, and how often the labels-needed interval covers the true labels for a reachable target.
Writes the numbers to ``benchmarks/results/simulated_calibration.json`` (the report page's data).

    python benchmarks/simulated_calibration.py --n-curves 60
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import xarray as xr
from _common import covers, print_table
from _results import write_results

import palm_bayes as pb
from palm_bayes.model.curve import labels_for_accuracy, palm_curve


def draw_params(rng: np.random.Generator, n: int) -> dict[str, dict[str, float]]:
    out = {}
    for i in range(n):
        out[f"c{i:03d}"] = dict(
            A_max=rng.uniform(0.6, 0.98),
            delta=rng.uniform(0.03, 0.4),
            alpha=rng.uniform(-0.5, 3.0),
            beta=rng.uniform(0.5, 1.6),
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n-curves", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--b", type=float, default=100.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    params = draw_params(rng, args.n_curves)
    budgets = np.arange(1, args.rounds + 1) * args.b
    curves = pb.simulate_curves(params, budgets, seeds=3, n_test=2000, noise=0.01, rng=rng)
    start = time.perf_counter()
    fit = pb.fit(curves, seed=args.seed)
    seconds = time.perf_counter() - start
    last = budgets[-1]
    check = np.concatenate([budgets, [2 * last, 5 * last]])
    true = xr.Dataset({k: curves[f"true_{k}"] for k in ("A_max", "delta", "alpha", "beta")})
    truth = palm_curve(
        xr.DataArray(check, dims="budget", coords={"budget": check}),
        true["A_max"],
        true["delta"],
        true["alpha"],
        true["beta"],
        args.b,
    )
    rows = []
    for prob in (0.5, 0.9):
        fc = fit.forecast(check, hdi_prob=prob).squeeze(["dataset", "embedding"], drop=True)
        inside = covers(fc["lower"], truth, fc["upper"])
        rows.append(
            {
                "interval": f"{prob:.0%} HDI",
                "observed rounds": float(inside.sel(budget=budgets).mean()),
                "2x last budget": float(inside.sel(budget=2 * last).mean()),
                "5x last budget": float(inside.sel(budget=5 * last).mean()),
            }
        )
    # labels needed for a target reached by 3x the last budget
    target = palm_curve(3 * last, true["A_max"], true["delta"], true["alpha"], true["beta"], args.b)
    need_true = labels_for_accuracy(
        target, true["A_max"], true["delta"], true["alpha"], true["beta"], args.b
    )
    need = fit.labels_needed(
        target.expand_dims(dataset=curves.dataset, embedding=curves.embedding), hdi_prob=0.9
    )
    need = need.squeeze(["dataset", "embedding"], drop=True)
    covered = covers(need["lower"], need_true, need["upper"])
    diag = fit.diagnostics()
    table = pd.DataFrame(rows).set_index("interval")
    print_table(table)
    print(
        f"labels needed (target = true accuracy at 3x the last budget): 90% interval covers the "
        f"truth for {float(covered.mean()):.2f} of curves; median |log(pred/true)| "
        f"{float(np.abs(np.log(need['median'] / need_true)).median()):.3f}"
    )
    print(
        f"{args.n_curves} curves in {seconds:.1f} s; r_hat <= 1.01 for "
        f"{float((diag['r_hat_max'] <= 1.01).mean()):.2f}; divergences "
        f"{int(diag['divergences'].sum())}"
    )
    path = write_results(
        "simulated_calibration",
        {
            "n_curves": args.n_curves,
            "rounds": args.rounds,
            "seconds": round(seconds, 1),
            "rows": rows,
            "labels_needed_coverage": float(covered.mean()),
            "labels_needed_median_abs_log_ratio": float(
                np.abs(np.log(need["median"] / need_true)).median()
            ),
            "share_r_hat_ok": float((diag["r_hat_max"] <= 1.01).mean()),
            "divergences": int(diag["divergences"].sum()),
        },
    )
    print(f"written: {path}")


if __name__ == "__main__":
    main()
