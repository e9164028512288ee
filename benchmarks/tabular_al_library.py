"""Pool-based AL curves of scikit-learn models on binary tabular data: a held-out test bed.

The setting in which P(A beats B) was first found worse than a coin: binary tabular datasets,
margin sampling (and random sampling) with logistic regression, an RBF SVM and a random forest,
a few labels per round, many repetitions for the truth. Everything runs offline: scikit-learn's
breast cancer and digits (3 vs 8, odd vs even), Fashion-MNIST pairs when the Debian package is
installed (``/usr/share/datasets/fashion-mnist``; PCA to 30 dimensions), two-moons and
make_classification problems. Each dataset keeps 30% as its test set; every repetition draws
its own 10 starting labels (both classes present) and its own pool order. The "strategies" of
a dataset are ``<sampling>-<model>``: six curves, fifteen pairs per dataset.

Written in the curves contract (one netCDF per dataset). None of these curves was used to learn
or tune the shipped prior.

    python benchmarks/tabular_al_library.py --out tabular_al/ --seeds 20 --jobs 2
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.datasets import load_breast_cancer, load_digits, make_classification, make_moons
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from tqdm.auto import tqdm

from palm_bayes.data.contract import save_curves
from palm_bayes.data.load import load_curves

FMNIST = Path("/usr/share/datasets/fashion-mnist")
MODELS = {
    "lr": lambda seed: LogisticRegression(C=1.0, max_iter=500),
    "svm": lambda seed: SVC(C=1.0, kernel="rbf", gamma="scale"),
    "rf": lambda seed: RandomForestClassifier(n_estimators=50, random_state=seed, n_jobs=1),
}


def _fmnist_pair(a: int, b: int, n: int = 3000) -> tuple[np.ndarray, np.ndarray] | None:
    images, labels = FMNIST / "train-images-idx3-ubyte.gz", FMNIST / "train-labels-idx1-ubyte.gz"
    if not (images.is_file() and labels.is_file()):
        return None
    with gzip.open(labels) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    with gzip.open(images) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
    keep = np.flatnonzero((y == a) | (y == b))[:n]
    return PCA(30, random_state=0).fit_transform(x[keep] / 255.0), (y[keep] == b).astype(int)


def datasets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The binary problems (features standardised)."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    out["cancer"] = load_breast_cancer(return_X_y=True)
    x, y = load_digits(return_X_y=True)
    pick = (y == 3) | (y == 8)
    out["digits38"] = (x[pick], (y[pick] == 8).astype(int))
    out["digits_odd"] = (x, y % 2)
    out["moons"] = make_moons(n_samples=1500, noise=0.3, random_state=0)
    for k, sep in enumerate((0.5, 1.0)):
        out[f"cls{k}"] = make_classification(
            n_samples=2000, n_features=20, n_informative=6, n_redundant=2, class_sep=sep,
            flip_y=0.03, n_clusters_per_class=2, random_state=10 + k,
        )  # fmt: skip
    for name, (a, b) in {"fmnist_shirt_tshirt": (6, 0), "fmnist_pullover_coat": (2, 4)}.items():
        pair = _fmnist_pair(a, b)
        if pair is not None:
            out[name] = pair
    return {k: (StandardScaler().fit_transform(x), np.asarray(y)) for k, (x, y) in out.items()}


def run_one(x, y, sampling: str, model: str, seed: int, rounds: int, per_round: int, start: int):
    """One repetition: accuracy on the test split after each round of labels."""
    rng = np.random.default_rng(seed)
    x_pool, x_test, y_pool, y_test = train_test_split(
        x, y, test_size=0.3, random_state=seed, stratify=y
    )
    while True:
        labelled = rng.choice(len(y_pool), size=start, replace=False)
        if np.unique(y_pool[labelled]).size == 2:
            break
    rows = []
    for step in range(rounds):
        clf = MODELS[model](seed).fit(x_pool[labelled], y_pool[labelled])
        rows.append((step, len(labelled), float((clf.predict(x_test) == y_test).mean())))
        if step == rounds - 1:
            break
        unlabelled = np.setdiff1d(np.arange(len(y_pool)), labelled)
        if sampling == "random":
            new = rng.choice(unlabelled, size=per_round, replace=False)
        else:  # margin: smallest distance to the decision boundary
            if hasattr(clf, "decision_function"):
                margin = np.abs(clf.decision_function(x_pool[unlabelled]))
            else:
                proba = clf.predict_proba(x_pool[unlabelled])
                margin = np.abs(proba[:, 1] - proba[:, 0])
            margin = margin + 1e-9 * rng.random(margin.size)  # random ties (forest votes)
            new = unlabelled[np.argsort(margin)[:per_round]]
        labelled = np.concatenate([labelled, new])
    return pd.DataFrame(rows, columns=["step", "budget", "accuracy"]).assign(
        strategy=f"{sampling}-{model}", seed=seed, n_test=len(y_test)
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="tabular_al")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--per-round", type=int, default=10)
    parser.add_argument("--start", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--only", nargs="+", default=None, help="these datasets only")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    problems = datasets()
    names = args.only or list(problems)
    for name in tqdm(names, desc="datasets"):
        x, y = problems[name]
        # never label more than 80% of the pool (small datasets get fewer rounds)
        pool = int(0.7 * len(y))
        rounds = min(args.rounds, (int(0.8 * pool) - args.start) // args.per_round + 1)
        jobs = [
            delayed(run_one)(x, y, s, m, seed, rounds, args.per_round, args.start)
            for s in ("margin", "random") for m in MODELS for seed in range(args.seeds)
        ]  # fmt: skip
        frame = pd.concat(Parallel(n_jobs=args.jobs)(jobs), ignore_index=True)
        curves = load_curves(frame.assign(dataset=name, embedding="raw"))
        save_curves(curves, out / f"{name}.nc")
        final = frame[frame["step"] == rounds - 1].groupby("strategy")["accuracy"].mean()
        print(name, len(y), final.round(3).to_dict(), flush=True)


if __name__ == "__main__":
    main()
