"""Phase boundaries on simulated AL records with known boundaries: posterior vs DP + BIC.

Each case draws 1 or 2 true boundaries at random log positions (at least 4 budgets apart and
from the ends), records of 3 strategies x 5 seeds over 24-32 budgets whose mean risk is
continuous (only the way risk follows the proxies changes at a boundary), a seed noise of
0.005-0.03 and coefficient changes of size 0.01-0.03. Cases are binned by their
signal-to-noise ratio ``effect / (noise / sqrt(seeds))``. Reported per bin: how often each
method finds the true number of boundaries, how many true boundaries one of the posterior's
90% credible intervals covers (of the chosen count) and how many of the DP's breakpoints
fall in the true boundary's gap, and the false boundaries per case.

    python benchmarks/phase_recovery.py --cases 200
    python benchmarks/phase_recovery.py --cases 10 --max-boundaries 5 --json out.json

``--max-boundaries`` is the widest search (the reference searches 5, ``palm phases`` now too);
``--json`` writes the per-case rows (with seconds per analysis) atomically.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from palm_bayes.model.simulate import simulate_phase_records
from palm_bayes.phase_analysis.analysis import phases

SEEDS = 5


def one_case(rng: np.random.Generator, prior_scale: float = 3.0, max_boundaries: int = 3) -> dict:
    """Simulate one dataset, analyse it, and score both methods."""
    n_budgets = int(rng.integers(24, 33))
    budgets = np.geomspace(20, 3000, n_budgets)
    k = int(rng.integers(1, 3))
    while True:
        idx = np.sort(rng.choice(np.arange(4, n_budgets - 3), size=k, replace=False))
        if k == 1 or idx[1] - idx[0] >= 4:
            break
    truth = np.sqrt(budgets[idx - 1] * budgets[idx])  # strictly between two budgets
    noise = float(rng.uniform(0.005, 0.03))
    effect = float(rng.uniform(0.01, 0.03))
    rec = simulate_phase_records(
        truth,
        budgets=budgets,
        seeds=SEEDS,
        noise=noise,
        effect=effect,
        rng=int(rng.integers(2**31)),
    )
    t0 = time.perf_counter()
    res = phases(
        rec,
        max_boundaries=max_boundaries,
        draws=2000,
        prior_scale=prior_scale,
        seed=int(rng.integers(2**31)),
    )
    seconds = time.perf_counter() - t0
    bounds = res.boundaries()
    dp = np.asarray(res.baseline["breakpoints"])
    covered = [((bounds["low"] < t) & (t <= bounds["high"])).any() for t in truth]
    dp_hit = [bool(np.isclose(dp, budgets[i]).any()) for i in idx]
    return {
        "snr": effect / (noise / np.sqrt(SEEDS)),
        "k": k,
        "bayes_right": len(bounds) == k,
        "dp_right": len(dp) == k,
        "covered": int(sum(covered)),
        "dp_found": int(sum(dp_hit)),
        "bayes_false": max(0, len(bounds) - int(sum(covered))),
        "dp_false": max(0, len(dp) - int(sum(dp_hit))),
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prior-scale", type=float, default=3.0)
    parser.add_argument("--max-boundaries", type=int, default=3)
    parser.add_argument("--json", default=None, help="write the per-case rows here")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    cases = tqdm(range(args.cases), desc="cases")
    rows = pd.DataFrame([one_case(rng, args.prior_scale, args.max_boundaries) for _ in cases])
    if args.json:
        from palm_bayes.data.contract import atomic_write

        record = {"args": vars(args), "cases": rows.to_dict(orient="records")}
        atomic_write(args.json, lambda t: Path(t).write_text(json.dumps(record, indent=1)))
    rows["bin"] = pd.cut(rows["snr"], [0, 2, 4, np.inf], labels=["< 2", "2-4", ">= 4"])
    print(f"# {args.cases} simulated cases (seed {args.seed}, prior scale {args.prior_scale})\n")
    print(
        "| signal/noise | cases | true boundaries | right count: posterior / DP | "
        "covered by a 90% interval | found exactly by DP | false per case: posterior / DP |"
    )
    print("|---|---|---|---|---|---|---|")
    groups = [(str(b), g) for b, g in rows.groupby("bin", observed=True)] + [("all", rows)]
    for name, g in groups:
        n_true = g["k"].sum()
        print(
            f"| {name} | {len(g)} | {n_true} | {g['bayes_right'].mean():.2f} / "
            f"{g['dp_right'].mean():.2f} | {g['covered'].sum() / n_true:.2f} | "
            f"{g['dp_found'].sum() / n_true:.2f} | {g['bayes_false'].mean():.2f} / "
            f"{g['dp_false'].mean():.2f} |"
        )
    print(
        f"\nseconds per analysis ({args.max_boundaries + 1} counts of boundaries): median "
        f"{rows['seconds'].median():.2f}"
    )


if __name__ == "__main__":
    main()
