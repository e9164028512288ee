"""The main job on the shipped example curves: a pilot, its forecasts, and the decisions.

Every learner's curve is cut to a pilot (budgets up to 20% of the largest), PALM is fitted to the
pilot, and the script answers what an AL team asks after a pilot, checking each answer against the
held-out rest of the real curve:

* where will each curve be at the largest budget (posterior median and 90% HDI)?
* which learner wins at the largest budget on each dataset, and how sure are we?
* how many labels does each need to reach a target accuracy?

Outputs (in --out): fit.nc, forecast.csv, prob_better.csv, labels_needed.csv, summary.csv,
fit.png, report.html.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import pandas as pd

import palm_bayes as pb
from palm_bayes.report.figures import plot_fit
from palm_bayes.report.html import write_report
from palm_bayes.report.tables import tidy

EXAMPLE = Path(__file__).with_name("lcdb_curves.nc")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--curves", default=EXAMPLE, help="curves file (default: LCDB examples)")
    parser.add_argument("--out", default="demo-output", help="output folder")
    parser.add_argument("--pilot", type=float, default=0.2, help="pilot share of the budget")
    parser.add_argument("--target", type=float, default=0.9, help="target accuracy")
    parser.add_argument(
        "--compare-budget", type=float, default=2000.0, help="budget at which learners are compared"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pd.set_option("display.width", 200)

    curves = pb.load_curves(args.curves)
    largest = curves["budget"].max(("seed", "step"))
    pilot = curves.where(curves["budget"] <= args.pilot * largest)
    pilot["n_test"] = curves["n_test"]
    print(
        f"{len(curves.dataset) * len(curves.strategy)} curves; pilot = budgets <= "
        f"{args.pilot:.0%} of each curve's largest"
    )

    fit = pb.fit(pilot, seed=args.seed)
    fit.to_netcdf(out / "fit.nc")
    budget = args.compare_budget

    # 1. forecasts at each curve's largest budget vs the held-out truth
    fc = fit.forecast(np.unique(largest), hdi_prob=0.9).sel(budget=largest)
    truth = curves["accuracy"].where(curves["budget"] == largest).mean(("seed", "step"))
    table = fc.assign(truth=truth).to_dataframe().reset_index()
    table["inside_90"] = (table["lower"] <= table["truth"]) & (table["truth"] <= table["upper"])
    table = table.drop(columns=["embedding"])
    table.to_csv(out / "forecast.csv", index=False)
    print("\nForecast at each curve's largest budget from its pilot (truth held out):")
    print(tidy(table).to_string(index=False))
    print(
        f"MAE {np.abs(table['median'] - table['truth']).mean():.3f}, "
        f"90% HDI covers the truth for {table['inside_90'].sum()}/{len(table)} curves"
    )

    # 2. pairwise P(row beats column) at the largest budget, per dataset
    rows = []
    for a, b in itertools.permutations(curves.strategy.values.tolist(), 2):
        p = fit.prob_better({"strategy": a}, {"strategy": b}, budget=budget)
        for dataset in p.dataset.values:
            rows.append(
                {
                    "dataset": dataset,
                    "a": a,
                    "b": b,
                    "P(a beats b)": float(p.sel(dataset=dataset).squeeze()),
                }
            )
    wins = pd.DataFrame(rows)
    wins.to_csv(out / "prob_better.csv", index=False)
    print(f"\nP(a beats b) at {budget:.0f} labels:")
    print(
        wins.pivot_table(index=["dataset", "a"], columns="b", values="P(a beats b)")
        .round(2)
        .to_string()
    )

    # 3. labels needed for the target
    need = fit.labels_needed(args.target, hdi_prob=0.9).to_dataframe().reset_index()
    need = need.drop(columns=["embedding"])
    need.to_csv(out / "labels_needed.csv", index=False)
    print(f"\nLabels needed to reach accuracy {args.target} (90% interval):")
    print(tidy(need).to_string(index=False))
    print("  (whole labels, rounded up; inf: not reached within 100x the pilot's last budget)")

    summary = fit.summary().to_dataframe().reset_index()
    summary.to_csv(out / "summary.csv", index=False)
    diag = fit.diagnostics()
    print(
        f"\nSampler: max r_hat {float(diag['r_hat_max'].max()):.3f}, "
        f"{int(diag['divergences'].sum())} divergent transitions, "
        f"{float(diag['seconds'].sum()):.1f} s sampling"
    )

    fig = plot_fit(fit, lsq=pb.fit_least_squares(pilot), truth=curves)
    fig.savefig(out / "fit.png", dpi=110)
    write_report(fit, out / "report.html", target=args.target)
    print(f"\nWrote {', '.join(sorted(p.name for p in out.iterdir()))} to {out}/")


if __name__ == "__main__":
    main()
