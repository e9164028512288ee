"""When to stop labelling: the PALM stop rule against the baseline rules, at three label costs.

Full AL runs (al_runner, ``random`` and ``margin``, ``--label-free``) on offline data held out
from everything the rule was tuned on: scikit-learn's digits (10 classes), breast cancer
(binary) and a Fashion-MNIST subset (10 classes, PCA to 30 dims), with al_runner's linear
learner (and its MLP on digits). Every round records what every baseline rule measures (the
rules' verdicts depend only on those records, so each rule's stop round is replayed exactly
from one run), the test accuracy and the label-free (5-fold CV) accuracy.

The cost of stopping after ``n`` labels is the measure of Pullar-Strecker, Dost, Frank & Wicker
(Machine Learning 2022): ``n * label_cost + (1 - accuracy(n)) * lifetime * error_cost``, with
``lifetime = 10,000`` predictions at ``error_cost = 1`` and three label costs (cheap 0.1,
moderate 1, expensive 10). The oracle stops at the round of lowest cost in hindsight; a rule
that never says stop stops at the last round. The PALM rule refits the run's curve every
``--every`` rounds from the 4th round on and stops at the first ``stop`` of
:func:`palm_bayes.decisions.stop.stop` with the matching cost model (``cost_per_label`` = the
label cost, ``value_per_point`` = 0.01 * lifetime * error_cost), on the test curve and, as a
second rule, on the label-free curve. Reported: mean cost relative to the oracle (1 = oracle)
per rule and cost setting, and the mean labels at the stop.

    python benchmarks/stopping.py --seeds 2 --rounds 14 --every 4
"""

from __future__ import annotations

import argparse
import gzip
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from al_runner.datasets import load_dataset
from al_runner.experiment.config import RunConfig
from al_runner.experiment.loop import run_experiment
from al_runner.experiment.stop_rules import STOP_RULES, RoundView, StopRule, get_stop_rule
from palm_bayes.data.contract import atomic_write

ROOT = Path(__file__).resolve().parents[1]
FMNIST = Path("/usr/share/datasets/fashion-mnist")
LIFETIME, ERROR_COST = 10_000, 1.0
LABEL_COSTS = {"cheap": 0.1, "moderate": 1.0, "expensive": 10.0}
BASELINES = {
    "stabilizing_predictions": "stabilizing_predictions",
    "classification_change": "classification_change",
    "max_confidence": "max_confidence",
    "overall_uncertainty": "overall_uncertainty",
}


class RecordAll(StopRule):
    """Measures every baseline rule each round and never stops (their verdicts are replayed)."""

    name = "record_all"
    needs_proba = True

    def __init__(self) -> None:
        self.rules = [get_stop_rule(spec) for spec in BASELINES.values()]

    def measure(self, view: RoundView) -> dict[str, float]:  # noqa: D102
        out: dict[str, float] = {}
        for rule in self.rules:
            out |= rule.measure(view)
        return out

    def update(self, view: RoundView) -> bool:  # noqa: D102
        return False


def _npz(folder: Path, name: str, x: np.ndarray, y: np.ndarray, seed: int = 0) -> Path:
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.3, random_state=seed, stratify=y)
    scale = StandardScaler().fit(xtr)
    path = folder / f"{name}.npz"
    np.savez(path, X=scale.transform(xtr), y=ytr, X_test=scale.transform(xte), y_test=yte)
    return path


def _fmnist(n: int = 4000) -> tuple[np.ndarray, np.ndarray] | None:
    images, labels = FMNIST / "train-images-idx3-ubyte.gz", FMNIST / "train-labels-idx1-ubyte.gz"
    if not (images.is_file() and labels.is_file()):
        return None
    with gzip.open(labels) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)[:n].astype(np.int64)
    with gzip.open(images) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)[:n] / 255.0
    return PCA(30, random_state=0).fit_transform(x), y


def tasks(folder: Path, with_mlp: bool = False) -> list[dict]:
    """(name, al_runner dataset, data root, learner, labels per round) of every task."""
    out = [dict(task="digits-linear", dataset="digits", root=None, learner="linear", b=10)]
    if with_mlp:
        out.append(dict(task="digits-mlp", dataset="digits", root=None, learner="mlp", b=10))
    cancer = load_breast_cancer()
    path = _npz(folder, "breast_cancer", cancer.data, cancer.target)
    out.append(dict(task="breast_cancer-linear", dataset="features", root=path, learner="linear",
                    b=4))  # fmt: skip
    fm = _fmnist()
    if fm is not None:
        path = _npz(folder, "fmnist", *fm)
        out.append(dict(task="fmnist30-linear", dataset="features", root=path, learner="linear",
                        b=20))  # fmt: skip
    return out


def run_task(
    task: dict, seeds: list[int], rounds: int, folder: Path, epochs: int | None
) -> pd.DataFrame:
    """One task's AL runs: per run and round, budget, accuracies and the baselines' records."""
    data = load_dataset(task["dataset"], None if task["root"] is None else str(task["root"]))
    cfg = RunConfig(
        task["dataset"], ["random", "margin"], learner=task["learner"], rounds=rounds,
        epochs=epochs if task["learner"] == "linear" else None,
        labels_per_round=task["b"], seeds=seeds, proxies=False, label_free=True,
        stop_when=RecordAll(),  # type: ignore[arg-type]
    )  # fmt: skip
    curves = run_experiment(cfg, folder / f"{task['task']}.nc", data=data, progress=False)
    frame = curves.drop_vars(["select_seconds", "train_seconds"], errors="ignore")
    frame = frame.squeeze(["dataset", "embedding"], drop=True).to_dataframe().reset_index()
    frame["task"] = task["task"]
    frame["b"] = task["b"]
    frame["n_test"] = int(curves["n_test"].max())
    return frame.dropna(subset=["accuracy"])


def baseline_stops(run: pd.DataFrame) -> dict[str, int]:
    """The step at which each baseline rule stops this run (the last step if never)."""
    history = {c: run[c].tolist() for c in run.columns if c.startswith("stop_") or c in
               ("accuracy", "budget", "label_free_accuracy")}  # fmt: skip
    last = len(run) - 1
    out = {}
    for name, spec in BASELINES.items():
        rule, stop = get_stop_rule(spec), last
        for step in range(len(run)):
            view = RoundView(step=step, budget=int(run["budget"].iloc[step]),
                             history={k: v[: step + 1] for k, v in history.items()})  # fmt: skip
            if rule.update(view):
                stop = step
                break
        out[name] = stop
    out["never (full budget)"] = last
    return out


def palm_stops(run: pd.DataFrame, curve: str, every: int, draws: int) -> dict[str, int]:
    """The step of the PALM rule's first ``stop`` per cost setting (last step if never)."""
    import palm_bayes as pb

    last = len(run) - 1
    stops = dict.fromkeys(LABEL_COSTS, last)
    column = "accuracy" if curve == "test" else "label_free_accuracy"
    open_ = set(LABEL_COSTS)
    seed = int(run["seed"].iloc[0])
    for step in range(3, len(run)):
        if (step - 3) % every or not open_:
            continue
        part = run.iloc[: step + 1]
        frame = pd.DataFrame({"strategy": "run", "budget": part["budget"].to_numpy(float),
                              "accuracy": part[column].to_numpy(float),
                              "n_test": int(run["n_test"].iloc[0])})  # fmt: skip
        curves = pb.load_curves(frame, labels_per_round=float(run["b"].iloc[0]))
        fit = pb.fit(curves, seed=seed * 10_007 + step, chains=2, draws=draws, tune=draws,
                     cores=1, progress=False)  # fmt: skip
        for setting in sorted(open_):
            cost = LABEL_COSTS[setting]
            out = fit.stop(cost_per_label=cost, value_per_point=0.01 * LIFETIME * ERROR_COST,
                           rounds_ahead=(1, 3), seed=seed)  # fmt: skip
            if out["verdict"].squeeze().item() == "stop":
                stops[setting] = step
                open_.discard(setting)
    return stops


def cost(run: pd.DataFrame, step: int, label_cost: float) -> float:
    """Pullar-Strecker et al.'s cost of stopping at ``step``."""
    row = run.iloc[step]
    return row["budget"] * label_cost + (1 - row["accuracy"]) * LIFETIME * ERROR_COST


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=14)
    parser.add_argument("--every", type=int, default=4)
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=50, help="L-BFGS iterations of linear")
    parser.add_argument("--with-mlp", action="store_true", help="add digits with the MLP")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/stopping.json"))
    args = parser.parse_args()
    t0 = time.perf_counter()
    rows, timings = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        runs = []
        for task in tasks(folder, args.with_mlp):
            t = time.perf_counter()
            runs.append(run_task(task, list(range(args.seeds)), args.rounds, folder, args.epochs))
            timings[f"al_{task['task']}"] = round(time.perf_counter() - t, 1)
            print(f"{task['task']}: AL runs {timings['al_' + task['task']]} s", flush=True)
    frame = pd.concat(runs, ignore_index=True)
    t_palm = time.perf_counter()
    for (task, strategy, seed), run in frame.groupby(["task", "strategy", "seed"]):
        run = run.sort_values("step").reset_index(drop=True)
        stops = {name: dict.fromkeys(LABEL_COSTS, s) for name, s in baseline_stops(run).items()}
        stops["palm (test curve)"] = palm_stops(run, "test", args.every, args.draws)
        stops["palm (label-free curve)"] = palm_stops(run, "label_free", args.every, args.draws)
        for setting, label_cost in LABEL_COSTS.items():
            costs = [cost(run, k, label_cost) for k in range(len(run))]
            oracle = int(np.argmin(costs))
            for rule, per_setting in stops.items():
                step = per_setting[setting]
                rows.append(dict(task=task, strategy=strategy, seed=int(seed), setting=setting,
                                 rule=rule, stop_step=step, labels=int(run["budget"][step]),
                                 cost=costs[step], oracle_cost=costs[oracle],
                                 oracle_labels=int(run["budget"][oracle]),
                                 relative_cost=costs[step] / costs[oracle],
                                 final_minus_stopped=float(run["accuracy"].iloc[-1]
                                                           - run["accuracy"][step])))  # fmt: skip
        print(f"{task}/{strategy}/{seed}: done ({time.perf_counter() - t0:.0f} s)", flush=True)
    timings["palm_decisions"] = round(time.perf_counter() - t_palm, 1)
    results = pd.DataFrame(rows)
    summary = (
        results.groupby(["setting", "rule"])
        .agg(mean_relative_cost=("relative_cost", "mean"), mean_labels=("labels", "mean"),
             share_final_gain_over_1pt=("final_minus_stopped", lambda x: float((x > 0.01).mean())))
        .reset_index()
    )  # fmt: skip
    label_free_gap = frame.assign(gap=frame["label_free_accuracy"] - frame["accuracy"]).groupby(
        ["task", "strategy"])["gap"].mean().round(4).reset_index()  # fmt: skip
    payload = {
        "what": "stop rules vs the oracle stop, cost of Pullar-Strecker et al. (2022)",
        "settings": {"lifetime": LIFETIME, "error_cost": ERROR_COST, "label_costs": LABEL_COSTS,
                     "seeds": args.seeds, "rounds": args.rounds, "every": args.every,
                     "draws": args.draws, "linear_epochs": args.epochs,
                     "with_mlp": args.with_mlp, "strategies": ["random", "margin"],
                     "baselines": list(BASELINES), "known_rules": list(STOP_RULES)},
        "summary": summary.to_dict(orient="records"),
        "label_free_minus_test_accuracy": label_free_gap.to_dict(orient="records"),
        "runs": results.to_dict(orient="records"),
        "seconds": timings | {"total": round(time.perf_counter() - t0, 1)},
    }  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(payload, indent=1)))
    pivot = summary.pivot(index="rule", columns="setting", values="mean_relative_cost")
    print(pivot[list(LABEL_COSTS)].round(3).to_string())
    print(f"wrote {out} ({payload['seconds']['total']} s)")


if __name__ == "__main__":
    main()
