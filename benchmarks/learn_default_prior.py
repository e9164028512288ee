"""Learn the curve prior that ships with palm_bayes, from all LCDB curves with >= 10 budgets.

Every curve is cut into 3-seed pilots at 10%, 20% and 40% of its final budget; each pilot is
fitted and scored against the curve's later seed means (``palm_bayes.learn.prior``); the discrepancy
coefficients are fitted to all those cases. Writes ``palm_bayes/priors/lcdb.json`` and, with
``--cases-out``, the (forecast, truth) cases, so that benchmarks can learn from a subset of
datasets without refitting the pilots. Prints the time and the coefficients.

    python benchmarks/learn_default_prior.py --cases-out lcdb_cases.pkl
"""

from __future__ import annotations

import argparse
import time
import warnings

import pandas as pd

import palm_bayes as pb
from palm_bayes.data.lcdb import lcdb_curves
from palm_bayes.learn.prior import forecast_cases, prefix_cases
from palm_bayes.priors.shipped import DEFAULT_PRIOR_PATH


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default=str(DEFAULT_PRIOR_PATH))
    parser.add_argument("--cases-out", default=None, help="save the forecast cases (pickle)")
    parser.add_argument("--cases", default=None, help="reuse saved cases (skip the pilot fits)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workers", type=int, default=None, help="spread each chunk's pilot fits over Ray tasks"
    )
    parser.add_argument(
        "--processes", type=int, default=None, help="share the chunks among worker processes"
    )
    args = parser.parse_args()
    start = time.perf_counter()
    if args.cases:
        cases = pd.read_pickle(args.cases)
    else:
        lcdb = lcdb_curves(min_budgets=10)
        pilots, truths = prefix_cases(lcdb, (0.1, 0.2, 0.4), 3)
        print(f"{pilots.sizes['dataset']} pilot datasets, {len(truths)} future points")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sampler = {} if args.workers is None else {"workers": args.workers}
            cases = forecast_cases(
                pilots, truths, seed=args.seed, sampler=sampler, processes=args.processes
            )
        if args.cases_out:
            cases.to_pickle(args.cases_out)
    fitted = time.perf_counter()
    prior = pb.learn_prior(
        None, cases=cases, seed=args.seed, source=f"LCDB ({cases['dataset'].nunique()} datasets)"
    )
    prior.meta["license"] = "LCDB (Mohr et al. 2022) is MIT-licensed"
    prior.save(args.out)
    seconds = time.perf_counter() - fitted
    print(f"{prior}: pilot fits {fitted - start:.0f} s, coefficients {seconds:.0f} s")
    print(prior.summary().round(3).to_string())
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
