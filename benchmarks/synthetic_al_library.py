"""A library of active-learning curves on synthetic tabular data, for learning or testing priors.

Six ``make_classification`` problems (2-6 classes, 4-15 informative features, class separation
0.6-1.6, 0-8% flipped labels; 3,000 points, 80/20 split), each run by ``al-runner`` with
random, margin, entropy and coreset sampling (TypiClust too on the first), the linear learner,
20 rounds of 10 labels and 10 seeds. Real AL dynamics (real strategies, real retraining) on data
that needs no download: what ``decision_calibration.py --curves`` and ``learn.adapt_prior``
were measured on besides digits and Fashion-MNIST.

    python benchmarks/synthetic_al_library.py --out al_library/   # ~4 min per problem, 2 cores
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import make_classification


def problems(seed: int = 7, n: int = 6) -> list[dict]:
    """The make_classification settings (drawn once from ``seed``)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(8):  # drawn for eight; the first n are run
        out.append(
            dict(
                n_samples=3000, n_features=20, n_informative=int(rng.integers(4, 16)),
                n_redundant=2, n_classes=int(rng.integers(2, 7)),
                class_sep=float(rng.uniform(0.6, 1.6)), flip_y=float(rng.uniform(0, 0.08)),
                n_clusters_per_class=int(rng.integers(1, 3)), random_state=k,
            )
        )  # fmt: skip
    return out[:n]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="al_library")
    parser.add_argument("--problems", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for k, spec in enumerate(problems(n=args.problems)):
        X, y = make_classification(**spec)
        data = out / f"syn{k}.npz"
        np.savez(data, X=X.astype(np.float32), y=y)
        strategies = "random,margin,entropy,coreset" + (",typiclust" if k == 0 else "")
        command = [
            sys.executable, "-m", "al_runner.cli", "run", "--dataset", "features",
            "--data-root", str(data), "--strategies", strategies, "--learner", "linear",
            "--rounds", "20", "--labels-per-round", "10", "--seeds", str(args.seeds),
            "--out", str(out / f"syn{k}.nc"),
        ]  # fmt: skip
        print(f"problem {k}: {spec}", flush=True)
        subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
