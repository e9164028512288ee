"""Closed loop: single strategies -> phases and a posterior schedule -> run it -> compare.

1. al_runner runs the single strategies (cold start, several seeds) and records the proxies;
2. `pb.phases` finds the phase boundaries from the proxies, which give the reference's
   hard-switch schedule (first > second at boundary 1 > third at boundary 2);
3. PALM is fitted to a pilot (the first part of each single curve) and `pb.schedule` chooses
   the switch budgets that maximise the posterior mean accuracy over the whole budget;
4. al_runner runs both schedules with the same seeds, and the realised mean accuracy over the
   budget (AUBC) of every plan is compared with the single strategies and with the predicted
   gain.

    python examples/schedule_experiment.py --dataset digits --out schedule-output
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

import palm_bayes as pb
from al_runner.datasets import load_dataset
from al_runner.experiment.loop import RunConfig, run_experiment


def realised_aubc(curves, strategy: str) -> np.ndarray:
    """Mean accuracy over the budget range, one value per seed."""
    sel = curves.sel(strategy=strategy).isel(dataset=0, embedding=0)
    budget = sel["budget"].to_numpy()
    acc = sel["accuracy"].to_numpy()
    span = budget[:, -1] - budget[:, 0]
    return np.trapezoid(acc, budget, axis=-1) / span


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--learner", default="linear")
    parser.add_argument("--embedding", default="raw")
    parser.add_argument("--candidates", default="typiclust,coreset,margin")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--budget", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--pilot", type=float, default=0.4, help="pilot share of the budget")
    parser.add_argument("--out", default="schedule-output")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    candidates = args.candidates.split(",")
    data = load_dataset(args.dataset, args.data_root)
    base = dict(
        learner=args.learner, rounds=args.rounds, labels_per_round=args.budget, initial="cold",
        seeds=list(range(args.seeds)), embedding=args.embedding, data_root=args.data_root,
    )  # fmt: skip

    print("1/4 single strategies")
    singles = run_experiment(
        RunConfig(args.dataset, [*candidates, "random"], **base), out / "singles.nc", data=data
    )

    print("2/4 phases from the recorded proxies")
    analysis = pb.phases(out / "singles.nc", max_boundaries=2)
    analysis.write(out / "phases")
    bounds = [int(round(b / args.budget) * args.budget) for b in analysis.boundaries()["median"]]
    phase_stages = None
    if len(bounds) == 2 and len(candidates) == 3:
        phase_stages = candidates
    elif len(bounds) == 1:
        phase_stages = [candidates[0], candidates[-1]]

    print("3/4 PALM on the pilot and the posterior schedule")
    final = int(singles["budget"].max())
    first = int(singles["budget"].min())
    pilot = singles.where(singles["budget"] <= args.pilot * final)
    curves = pb.load_curves(pilot.dropna("step", how="all")[["budget", "accuracy", "n_test"]])
    fit = pb.fit(curves, seed=0, progress=False)
    plan = pb.schedule(fit, candidates, budget_range=(first, final), round_to=args.budget, seed=0)
    print(plan.describe())
    phase_plan = None
    if phase_stages:  # the reference's hard switch at the phase boundaries, as predicted
        phase_plan = pb.schedule(
            fit,
            phase_stages,
            budget_range=(first, final),
            switches=bounds,
            round_to=args.budget,
            seed=0,
        )
        print(phase_plan.describe())
    phase_spec = phase_plan.spec if phase_plan else None
    print("4/4 running the schedules")
    plans = {"posterior": plan.spec}
    if phase_spec:
        plans["phases"] = phase_spec
    to_run = sorted({s for s in plans.values() if ">" in s})
    results = singles
    if to_run:
        ran = run_experiment(
            RunConfig(args.dataset, to_run, proxies=False, **base),
            out / "schedules.nc",
            data=data,
        )
        import xarray as xr

        results = xr.concat(
            [singles.drop_vars([v for v in singles.data_vars if v not in ran.data_vars]), ran],
            "strategy",
        )

    rows = []
    for name in [str(s) for s in results["strategy"].to_numpy()]:
        values = realised_aubc(results, name)
        rows.append({
            "plan": name, "aubc_mean": values.mean(),
            "aubc_se": values.std(ddof=1) / np.sqrt(values.size),
            "final_accuracy": float(results.sel(strategy=name)["accuracy"].isel(step=-1).mean()),
        })  # fmt: skip
    table = pd.DataFrame(rows).sort_values("aubc_mean", ascending=False)
    best_single = table[~table["plan"].str.contains(">")].iloc[0]
    realised = {}
    best_runs = realised_aubc(results, best_single["plan"])
    for label, spec in plans.items():
        # same seeds, same pre-switch selections: the per-seed differences are paired
        diff = realised_aubc(results, spec) - best_runs
        realised[label] = {
            "schedule": spec,
            "aubc": float(table.loc[table["plan"] == spec, "aubc_mean"].iloc[0]),
            "gain_vs_best_single": float(diff.mean()),
            "gain_se_paired": float(diff.std(ddof=1) / np.sqrt(diff.size)),
        }
    summary = {
        "dataset": args.dataset,
        "learner": args.learner,
        "seeds": args.seeds,
        "labels": [first, final],
        "pilot_labels": int(args.pilot * final),
        "phase_boundaries": analysis.boundaries().to_dict("records"),
        "posterior_plan": {
            "schedule": plan.spec,
            "predicted_gain": plan.gain,
            "p_beats_best_single": plan.p_beats_best_single,
            "predicted_best_single": plan.best_single,
        },
        "phase_plan": None
        if phase_plan is None
        else {
            "schedule": phase_plan.spec,
            "predicted_gain": phase_plan.gain,
            "p_beats_best_single": phase_plan.p_beats_best_single,
        },
        "realised_best_single": best_single["plan"],
        "realised": realised,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    table.to_csv(out / "aubc.csv", index=False)
    print(table.round(4).to_string(index=False))
    print(json.dumps(summary["realised"], indent=2, default=float))
    _plot(results, plans, out / "schedules.png", args.dataset)


def _plot(results, plans: dict[str, str], path: Path, dataset: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for name in [str(s) for s in results["strategy"].to_numpy()]:
        sel = results.sel(strategy=name).isel(dataset=0, embedding=0)
        style = "-" if ">" in name else ":"
        label = name + "".join(f"  [{k}]" for k, v in plans.items() if v == name)
        ax.plot(
            sel["budget"].mean("seed"), sel["accuracy"].mean("seed"), style, lw=1.8, label=label
        )
    ax.set_xlabel("labels")
    ax.set_ylabel(f"test accuracy (mean over {results.sizes['seed']} seeds)")
    ax.set_title(f"{dataset}: single strategies (dotted) and schedules (solid)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
