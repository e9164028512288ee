"""TypiClust against the reference clustering (scikit-learn, as the authors' code) on digits.

Runs al_runner's loop (cold start: TypiClust also picks the first labels) with

* ``typiclust``: al_runner's TypiClust (k-means++ seeding + faiss Lloyd, seeded per round);
* ``typiclust-ref``: the same selection with the reference code's clustering,
  ``KMeans(n_clusters)`` up to 50 clusters and ``MiniBatchKMeans(n_clusters, batch_size=5000)``
  above (seeded from the round's generator instead of unseeded);
* ``typiclust-sq``: al_runner's TypiClust with the code's squared-distance typicality;

over several seeds, then prints mean test accuracy per budget, the mean over all budgets,
and the k-means inertia of al_runner's clustering relative to the reference's.

    python benchmarks/typiclust_reference.py --seeds 5 --rounds 10 --budget 20
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from al_runner.datasets import dataset_features, load_dataset
from al_runner.experiment.loop import RunConfig, representation, run_experiment
from al_runner.knn import kmeans_pp
from al_runner.strategies import STRATEGIES
from al_runner.strategies.typiclust import TypiClust


def reference_clusters(x: np.ndarray, n_clusters: int, seed: int) -> np.ndarray:
    """The TypiClust reference code's k-means (scikit-learn defaults), seeded."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if n_clusters <= 50:
        km = KMeans(n_clusters=n_clusters, random_state=seed)
    else:
        km = MiniBatchKMeans(n_clusters=n_clusters, batch_size=5000, random_state=seed)
    return km.fit(x).labels_.astype(np.int64)


class ReferenceTypiClust(TypiClust):
    """TypiClust with the reference code's scikit-learn clustering."""

    name = "typiclust-ref"
    cluster_fn = staticmethod(reference_clusters)


class SquaredTypiClust(TypiClust):
    """TypiClust with the reference code's squared-distance typicality."""

    name = "typiclust-sq"

    def __init__(self, **kwargs) -> None:
        super().__init__(typicality="squared", **kwargs)


def inertia(x: np.ndarray, labels: np.ndarray) -> float:
    """Sum of squared distances to the cluster means."""
    total = 0.0
    for c in np.unique(labels):
        part = x[labels == c].astype(np.float64)
        total += float(((part - part.mean(axis=0)) ** 2).sum())
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--learner", default="linear")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=20)
    parser.add_argument("--initial", default="cold", choices=("cold", "random"))
    args = parser.parse_args(argv)
    for cls in (ReferenceTypiClust, SquaredTypiClust):
        STRATEGIES[cls.name] = cls
    names = ["typiclust", "typiclust-ref", "typiclust-sq"]
    data = load_dataset(args.dataset)
    cfg = RunConfig(
        args.dataset,
        names,
        learner=args.learner,
        rounds=args.rounds,
        labels_per_round=args.budget,
        initial=args.initial,
        seeds=list(range(args.seeds)),
        device="cpu",
    )
    t0 = time.perf_counter()
    curves = run_experiment(cfg, data=data, progress=False)
    acc = curves["accuracy"].squeeze(["dataset", "embedding"])  # (strategy, seed, step)
    budgets = curves["budget"].isel(dataset=0, embedding=0, strategy=0, seed=0).to_numpy()
    print(
        f"# {args.dataset}, {args.learner}, initial={args.initial}, {args.seeds} seeds, "
        f"{time.perf_counter() - t0:.0f} s"
    )
    print("| budget | " + " | ".join(names) + " | ours - ref |")
    print("|---:|" + "---:|" * (len(names) + 1))
    mean = acc.mean("seed")
    for i, b in enumerate(budgets):
        row = [float(mean.sel(strategy=n)[i]) for n in names]
        print(
            f"| {int(b)} | " + " | ".join(f"{v:.3f}" for v in row) + f" | {row[0] - row[1]:+.3f} |"
        )
    overall = acc.mean(["seed", "step"])
    row = [float(overall.sel(strategy=n)) for n in names]
    per_seed = acc.mean("step")
    diff = (per_seed.sel(strategy=names[0]) - per_seed.sel(strategy=names[1])).to_numpy()
    print(
        f"| {int(budgets[0])}-{int(budgets[-1])} | "
        + " | ".join(f"{v:.4f}" for v in row)
        + f" | {row[0] - row[1]:+.4f} (seed sd {diff.std(ddof=1):.4f}) |"
    )
    x = representation(dataset_features(data, "train"))
    print()
    print("| clusters | inertia ours / reference (mean over seeds) | min | max |")
    print("|---:|---:|---:|---:|")
    for n_clusters in budgets:
        ratios = [
            kmeans_pp(x, int(n_clusters), s)[1]
            / inertia(x, reference_clusters(x, int(n_clusters), s))
            for s in range(args.seeds)
        ]
        print(
            f"| {int(n_clusters)} | {np.mean(ratios):.4f} | {min(ratios):.4f} | {max(ratios):.4f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
