"""Write examples/lcdb_curves.nc: 9 real LCDB learning curves (3 datasets x 3 learners).

Run: python examples/make_lcdb_examples.py [--csv PATH]  (default: palm_bayes.data.lcdb cache)
"""

import argparse
from pathlib import Path

from palm_bayes.data.contract import save_curves
from palm_bayes.data.lcdb import lcdb_curves

DATASETS = [3, 44, 60]  # kr-vs-kp, spambase, waveform-5000 (OpenML ids)
LEARNERS = ["LogisticRegression", "SVC_rbf", "RandomForestClassifier"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--csv", default=None, help="LCDB database-accuracy.csv")
    parser.add_argument("--out", default=Path(__file__).with_name("lcdb_curves.nc"))
    args = parser.parse_args()
    curves = lcdb_curves(args.csv, openml_ids=DATASETS, learners=LEARNERS, min_budgets=10)
    curves.attrs["note"] = "strategy holds the LCDB learner (passive learning curves)"
    print(save_curves(curves, args.out), dict(curves.sizes))


if __name__ == "__main__":
    main()
