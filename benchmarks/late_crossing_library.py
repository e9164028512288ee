"""A late-crossing test bed: pool-based AL curves whose rankings change after the pilot.

The setting in which the shipped prior's P(A beats B) was found confidently wrong (issue 26):
binary tabular problems, margin sampling in which the model that SELECTS the queries and the
model that is EVALUATED differ (logistic regression, an RBF SVM, a random forest), plus random
sampling; 1 label per round from 20 starting labels until 80% of a small pool is labelled; many
repetitions for the truth. Every problem (the binary datasets of ``tabular_al_library.py``:
scikit-learn's breast cancer and digits, two-moons, two make_classification problems and two
Fashion-MNIST pairs when ``/usr/share/datasets/fashion-mnist`` is installed) is split ONCE into
a fixed pool (``--pool`` points) and a fixed test set (up to ``--test`` points); a repetition
(seed) draws its own starting labels (both classes present), random order and forest seed.

Queries do not depend on the evaluated model, so one labelling trajectory per query rule
(random, margin by LR, margin by SVM) is scored by several models. The strategies of a
dataset are ``random-<model>`` and ``margin_<query>-<model>``: seven curves, 21 pairs (the
forest, the costly model, only scores the LR-margin trajectory).
Accuracy is recorded at every budget up to 40 labels and every ``--every`` labels after
(the AL rounds themselves stay at one label each).

Written in the curves contract (one netCDF: dims dataset, strategy, seed, step). Never learn
or tune anything on these curves: they are a held-out test bed.

    python benchmarks/late_crossing_library.py --out benchmarks/data/late_crossing.nc
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.datasets import make_circles, make_classification, make_moons
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from tabular_al_library import _fmnist_pair, datasets

from palm_bayes.data.contract import save_curves
from palm_bayes.data.load import load_curves

#: The models (cheap settings: small pools, one label per round).
MODELS = {
    "lr": lambda seed: LogisticRegression(C=1.0, solver="liblinear"),
    "svm": lambda seed: SVC(C=1.0, kernel="rbf", gamma="scale"),
    "rf": lambda seed: RandomForestClassifier(n_estimators=10, random_state=seed, n_jobs=1),
}
#: Query rule -> the models that evaluate its trajectory.
TRAJECTORIES = {
    "random": ("lr", "svm"),
    "margin_lr": ("lr", "svm", "rf"),
    "margin_svm": ("svm", "lr"),
}
START = 20
DENSE_UNTIL = 40


#: The held-out bed's problems (``--bed held-out``); the others are for development.
HELD_OUT = ("digits_odd", "moons", "cls0", "cls1", "fmnist_shirt_tshirt")


def dev_datasets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Development problems of the same kind, none of them in the held-out bed.

    Designs are compared and tuned on these (``--bed dev``), never on :data:`HELD_OUT`.
    """
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    settings = ((0.7, 8), (0.4, 5), (1.0, 4), (0.6, 10))
    for k, (sep, informative) in enumerate(settings, start=2):
        out[f"cls{k}"] = make_classification(
            n_samples=2000, n_features=20, n_informative=informative, n_redundant=2,
            class_sep=sep, flip_y=0.03, n_clusters_per_class=2, random_state=10 + k,
        )  # fmt: skip
    out["moons_noisy"] = make_moons(n_samples=1500, noise=0.45, random_state=1)
    out["circles"] = make_circles(n_samples=1500, noise=0.2, factor=0.5, random_state=2)
    pairs = {
        "fmnist_pullover_coat": (2, 4),
        "fmnist_shirt_pullover": (6, 2),
        "fmnist_coat_shirt": (4, 6),
    }
    for name, (a, b) in pairs.items():
        pair = _fmnist_pair(a, b)
        if pair is not None:
            out[name] = pair
    return {k: (StandardScaler().fit_transform(x), np.asarray(y)) for k, (x, y) in out.items()}


def strategies() -> list[str]:
    """The strategy labels, ``<query rule>-<evaluated model>``."""
    return [f"{q}-{m}" for q, models in TRAJECTORIES.items() for m in models]


def record_budgets(final: int, every: int) -> np.ndarray:
    """Budgets at which accuracy is recorded: each one up to 40, then every ``every``, and final."""
    dense = np.arange(START, min(DENSE_UNTIL, final) + 1)
    sparse = np.arange(DENSE_UNTIL + every, final + 1, every)
    return np.unique(np.concatenate([dense, sparse, [final]]))


def split_problem(x: np.ndarray, y: np.ndarray, pool: int, test: int):
    """The fixed pool and test set of one problem (stratified, the same for every seed)."""
    n_test = min(test, len(y) - pool)
    x_pool, x_rest, y_pool, y_rest = train_test_split(
        x, y, train_size=pool, random_state=0, stratify=y
    )
    return x_pool, y_pool, x_rest[:n_test], y_rest[:n_test]


def _margin(clf, x: np.ndarray) -> np.ndarray:
    if hasattr(clf, "decision_function"):
        return np.abs(clf.decision_function(x))
    proba = clf.predict_proba(x)
    return np.abs(proba[:, 1] - proba[:, 0])


def run_seed(problem, seed: int, final: int, every: int) -> pd.DataFrame:
    """Every trajectory of one repetition, scored on the fixed test set at the recorded budgets."""
    x_pool, y_pool, x_test, y_test = problem
    rng = np.random.default_rng(seed)
    while True:
        start = rng.choice(len(y_pool), size=START, replace=False)
        if np.unique(y_pool[start]).size == 2:
            break
    records = set(record_budgets(final, every).tolist())
    rows = []
    for query, evaluated in TRAJECTORIES.items():
        labelled = np.zeros(len(y_pool), bool)
        labelled[start] = True
        order = list(start)
        query_model = None if query == "random" else query.split("_", 1)[1]
        while True:
            n = len(order)
            fitted = {}
            if query_model is not None:
                fitted[query_model] = MODELS[query_model](seed).fit(x_pool[order], y_pool[order])
            if n in records:
                for m in evaluated:
                    clf = fitted.get(m)
                    if clf is None:
                        clf = MODELS[m](seed).fit(x_pool[order], y_pool[order])
                    acc = float((clf.predict(x_test) == y_test).mean())
                    rows.append((f"{query}-{m}", seed, n, acc))
            if n >= final:
                break
            free = np.flatnonzero(~labelled)
            if query_model is None:
                new = int(rng.choice(free))
            else:  # smallest margin, random ties (forest votes)
                score = _margin(fitted[query_model], x_pool[free]) + 1e-9 * rng.random(free.size)
                new = int(free[np.argmin(score)])
            labelled[new] = True
            order.append(new)
    frame = pd.DataFrame(rows, columns=["strategy", "seed", "budget", "accuracy"])
    frame["step"] = frame.groupby("strategy").cumcount()
    return frame.assign(n_test=len(y_test))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="benchmarks/data/late_crossing.nc")
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--pool", type=int, default=180)
    parser.add_argument("--test", type=int, default=300)
    parser.add_argument("--labelled", type=float, default=0.8, help="share of the pool at the end")
    parser.add_argument("--every", type=int, default=8, help="record every k labels after 40")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument(
        "--bed",
        choices=("held-out", "dev"),
        default="held-out",
        help="the held-out problems, or the development problems (tune only on these)",
    )
    parser.add_argument("--only", nargs="+", default=None, help="these datasets only")
    parser.add_argument(
        "--parts", default=None, help="keep each dataset's curves here and reuse them (resume)"
    )
    args = parser.parse_args()
    begin = time.perf_counter()
    if args.bed == "dev":
        problems = dev_datasets()
    else:
        problems = {k: v for k, v in datasets().items() if k in HELD_OUT}
    names = args.only or list(problems)
    final = int(args.labelled * args.pool)
    frames = []
    parts = Path(args.parts) if args.parts else None
    for name in names:
        part = parts / f"{name}.pkl" if parts else None
        if part is not None and part.is_file():
            frames.append(pd.read_pickle(part))
            continue
        problem = split_problem(*problems[name], args.pool, args.test)
        jobs = [delayed(run_seed)(problem, s, final, args.every) for s in range(args.seeds)]
        frame = pd.concat(Parallel(n_jobs=args.jobs)(jobs), ignore_index=True)
        if part is not None:
            part.parent.mkdir(parents=True, exist_ok=True)
            frame.assign(dataset=name, embedding="raw").to_pickle(part)
        frames.append(frame.assign(dataset=name, embedding="raw"))
        means = frame[frame["budget"] == final].groupby("strategy")["accuracy"].mean()
        print(
            f"{name}: {len(problems[name][1])} points, {time.perf_counter() - begin:.0f} s",
            means.round(3).to_dict(),
            flush=True,
        )
    curves = load_curves(pd.concat(frames, ignore_index=True))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_curves(curves, out)
    print(f"wrote {out} in {time.perf_counter() - begin:.0f} s")


if __name__ == "__main__":
    main()
