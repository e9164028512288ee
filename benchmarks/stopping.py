"""When to stop labelling: the PALM stop rule against the baseline rules, at three label costs.

Full AL runs (al_runner, strategies ``random`` and ``margin``, ``--label-free``) on six
offline tasks none of the PALM prior was learned on: tabular binary (breast cancer with the
linear learner; a ``make_classification`` binary task with random Fourier features), tabular
multi-class (a 3-class ``make_classification`` task with the MLP), scikit-learn's digits
(linear) and a Fashion-MNIST subset (4,000 images, PCA to 30 dims; linear and random Fourier
features). Three learners: al_runner's ``linear`` and ``mlp`` and ``rff`` (a logistic
regression on 300 fixed random Fourier features, registered here).

Seeds ``0 .. dev-1`` are *development* seeds: everything tuned (the dev-tuned PALM variants'
consecutive count and probability threshold, the fixed budget) is chosen on them only. Every
reported number comes from the *held-out* seeds ``dev .. seeds-1``.

Every round records the test accuracy, the label-free accuracy (5-fold CV on the labelled set)
and what every baseline rule measures; the baselines' stop rounds are replayed from those
records (their verdicts depend on nothing else). The PALM rule is replayed the same way: at
every round from the 4th on, one independent PALM fit (importance sampling, the default) of the
run's curve so far, the verdict of :func:`palm_bayes.decisions.stop.stop` per cost setting, and
every posterior draw of the accuracy now and of the gain from now to the run's final budget,
from which the target stop (P(target reached) >= threshold and P(gain left > tolerance) <=
gain_risk) of three targets is replayed. AL runs and PALM records are cached per run (gzip JSON
under ``--cache``), so the analysis and the PALM replay can be rerun without the AL runs.

The cost of stopping after ``n`` labels is the measure of Pullar-Strecker, Dost, Frank & Wicker
(Machine Learning 2022): ``n * label_cost + (1 - accuracy(n)) * lifetime * error_cost``, with
``lifetime = 10,000`` predictions at ``error_cost = 1`` and three label costs (cheap 0.1,
moderate 1, expensive 10). The oracle stops at the round of lowest cost in hindsight; a rule
that never says stop stops at the last round.

    python benchmarks/stopping.py --seeds 25 --dev 5 --rounds 16
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import math
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer, make_classification
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from al_runner.datasets import load_dataset
from al_runner.experiment.config import RunConfig
from al_runner.experiment.loop import run_experiment
from al_runner.experiment.stop_rules import STOP_RULES, RoundView, StopRule, get_stop_rule
from al_runner.learners.base import require_torch
from al_runner.learners.models import (
    LEARNERS,
    LinearLearner,
    _standardiser,
    _TrunkHead,
    register_learner,
)
from palm_bayes.data.contract import atomic_write
from palm_bayes.decisions.stop import target_stop_says

ROOT = Path(__file__).resolve().parents[1]
FMNIST = Path("/usr/share/datasets/fashion-mnist")
LIFETIME, ERROR_COST = 10_000, 1.0
LABEL_COSTS = {"cheap": 0.1, "moderate": 1.0, "expensive": 10.0}
VALUE_PER_POINT = 0.01 * LIFETIME * ERROR_COST
BASELINES = {
    "stabilizing predictions": "stabilizing_predictions",
    "classification change": "classification_change",
    "max confidence": "max_confidence",
    "overall uncertainty": "overall_uncertainty",
}
#: Targets below the dev seeds' mean final accuracy of the task and strategy.
TARGET_OFFSETS = (0.0, 0.02, 0.05)
TARGET_THRESHOLD = 0.7  # the rule's default P(target reached) that stops
TOLERANCE = 0.01  # the rule's default gain by the run's budget that a target stop may leave
GAIN_RISK = 0.05  # the rule's default most P(gain left > tolerance) that a target stop takes
#: (tolerance, gain_risk) of the target stop compared on the dev seeds: with the issue's 1
#: point fixed, the default gain_risk is the largest whose dev premature rate (all offsets
#: pooled) is at most 10%; 1 - threshold (0.3) is the first design's.
TARGET_GRID = tuple((tol, risk) for tol in (0.005, 0.01) for risk in (0.3, 0.2, 0.15, 0.1, 0.05))
FIRST_FIT = 3  # step of the first PALM fit (the 4th round)
CONSECUTIVE = (1, 2, 3, 4)
P_STOP = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


# ---------------------------------------------------------------------- the rff learner
class RFFLearner(LinearLearner):
    """Logistic regression (L-BFGS, as ``linear``) on 300 fixed random Fourier features.

    The features approximate a Gaussian kernel of length scale ``sqrt(d)`` on the standardised
    inputs; their projection is drawn once from a fixed seed (the same for every run).
    """

    name = "rff"
    n_features = 300

    def _build(self):  # noqa: ANN202
        torch = require_torch()
        x = self._splits["train"].x
        d = x.shape[1]
        gen = torch.Generator().manual_seed(0)
        proj = torch.nn.Linear(d, self.n_features)
        with torch.no_grad():
            proj.weight.copy_(torch.randn(self.n_features, d, generator=gen) / math.sqrt(d))
            proj.bias.copy_(torch.rand(self.n_features, generator=gen) * 2 * math.pi)
        proj.requires_grad_(False)

        class Cos(torch.nn.Module):
            def forward(self, z):  # noqa: ANN001, ANN202
                return torch.cos(z) * math.sqrt(2.0)

        trunk = torch.nn.Sequential(_standardiser(x), proj, Cos()).to(x.device)
        return _TrunkHead.make(trunk, self.n_features, self.n_classes, 0.0)


if "rff" not in LEARNERS:
    register_learner("rff", RFFLearner)


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


STOP_RULES.setdefault("record_all", RecordAll)


# ---------------------------------------------------------------------- tasks
def _npz(folder: Path, name: str, x: np.ndarray, y: np.ndarray) -> Path:
    path = folder / f"{name}.npz"
    if path.is_file():
        return path
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    scale = StandardScaler().fit(xtr)
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


def tasks(folder: Path) -> list[dict]:
    """Name, al_runner dataset, data file, learner, labels per round and kind of every task."""
    folder.mkdir(parents=True, exist_ok=True)
    cancer = load_breast_cancer()
    x2, y2 = make_classification(2000, 20, n_informative=8, n_redundant=4, flip_y=0.05,
                                 class_sep=0.8, random_state=1)  # fmt: skip
    x3, y3 = make_classification(2000, 20, n_informative=10, n_classes=3, n_clusters_per_class=2,
                                 flip_y=0.03, random_state=2)  # fmt: skip
    feats = lambda name, x, y: dict(dataset="features", root=str(_npz(folder, name, x, y)))  # noqa: E731
    out = [
        dict(task="breast_cancer-linear", kind="tabular binary", learner="linear", b=4)
        | feats("breast_cancer", cancer.data, cancer.target),
        dict(task="synth2-rff", kind="tabular binary", learner="rff", b=10)
        | feats("synth2", x2, y2),
        dict(task="synth3-mlp", kind="tabular multi-class", learner="mlp", b=10)
        | feats("synth3", x3, y3),
        dict(task="digits-linear", kind="digits", learner="linear", b=10, dataset="digits",
             root=None),
    ]  # fmt: skip
    fm = _fmnist()
    if fm is None:
        print(f"Fashion-MNIST is not in {FMNIST} (apt-get install dataset-fashion-mnist): "
              "its two tasks are left out", flush=True)  # fmt: skip
    else:
        out += [
            dict(task="fmnist30-linear", kind="Fashion-MNIST", learner="linear", b=20)
            | feats("fmnist30", *fm),
            dict(task="fmnist30-rff", kind="Fashion-MNIST", learner="rff", b=20)
            | feats("fmnist30", *fm),
        ]  # fmt: skip
    return out


# ---------------------------------------------------------------------- cache
def _read(path: Path) -> object | None:
    if not path.is_file():
        return None
    with gzip.open(path, "rt") as f:
        return json.load(f)


def _write(path: Path, payload: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(gzip.compress(json.dumps(payload)
                                                                       .encode())))  # fmt: skip


# ---------------------------------------------------------------------- AL runs
def al_run(task: dict, seed: int, rounds: int, cache: Path, epochs: int | None) -> pd.DataFrame:
    """One seed of one task (both strategies): per round budget, accuracies, baseline records."""
    path = cache / f"al-r{rounds}" / task["task"] / f"seed{seed}.json.gz"
    cached = _read(path)
    if cached is None:
        data = load_dataset(task["dataset"], task["root"])
        cfg = RunConfig(
            task["dataset"], ["random", "margin"], learner=task["learner"], rounds=rounds,
            epochs=epochs if task["learner"] in ("linear", "rff") else None,
            labels_per_round=task["b"], seeds=[seed], proxies=False, label_free=True,
            stop_when="record_all",
        )  # fmt: skip
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            curves = run_experiment(cfg, Path(tmp) / "run.nc", data=data, progress=False)
        frame = curves.drop_vars(["select_seconds", "train_seconds"], errors="ignore")
        frame = frame.squeeze(["dataset", "embedding"], drop=True).to_dataframe().reset_index()
        frame["n_test"] = int(curves["n_test"].max())
        keep = [c for c in frame.columns if c in ("strategy", "seed", "step", "budget",
                "accuracy", "label_free_accuracy", "n_test") or c.startswith("stop_")]  # fmt: skip
        frame = frame[keep].dropna(subset=["accuracy"])
        cached = {"seconds": time.perf_counter() - t0, "rows": frame.to_dict(orient="list")}
        _write(path, cached)
    frame = pd.DataFrame(cached["rows"])
    frame["task"], frame["b"] = task["task"], task["b"]
    frame["al_seconds"] = cached["seconds"]
    return frame


# ---------------------------------------------------------------------- PALM records
def _pack(x: np.ndarray) -> str:
    """Posterior draws as base64 float64 (exact: the replay counts them as fit.stop does)."""
    return base64.b64encode(np.asarray(x, np.float64).tobytes()).decode()


def _unpack(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), np.float64)


def _verdicts(fit, b: float, seed: int, end: float) -> tuple[dict, np.ndarray, np.ndarray]:
    """The cost-model verdict of each setting from one set of forecast draws, the draws of the
    accuracy now and of the gain from now to the run's budget ``end``.

    One strategy: :func:`palm_bayes.decisions.stop.stop` picks ``stop`` unless some horizon's
    expected utility ``value_per_point * 100 * gain - cost_per_label * labels`` is positive, and
    its probability is the share of draws in which stopping is best (each draw at its own best
    horizon). Computing this once for the three settings (from the same draws, same seed and
    budget grid as ``fit.stop``) is 4x faster than three ``fit.stop`` calls;
    :func:`palm_records` checks the two agree on one round of every run. The target stop's
    budget ``B`` is ``end`` where it lies beyond the last observed budget, else the largest
    horizon, as ``fit.stop(budget=end)`` picks it.
    """
    from palm_bayes.queries.forecast import forecast_draws

    last = float(fit.idata.constant_data["last_budget"].to_numpy().ravel()[0])
    end = end if end > last else last + 3 * b
    grid = np.unique([last, last + b, last + 3 * b, end])  # the draws are pointwise in budget
    draws = forecast_draws(fit, grid, kind="expected", seed=seed)
    arr = draws.transpose("chain", "draw", ..., "budget").to_numpy().reshape(-1, grid.size)
    arr = arr[:, np.searchsorted(grid, [last, last + b, last + 3 * b, end])]
    gain = arr[:, 1:3] - arr[:, :1]  # (draws, horizon 1 and 3 rounds)
    labels = np.array([b, 3 * b])
    out = {}
    for setting, label_cost in LABEL_COSTS.items():
        u = VALUE_PER_POINT * 100.0 * gain - label_cost * labels
        stop = bool(u.mean(0).max() <= 0)
        out[setting] = {"stop": stop, "p_stop": float((u.max(1) <= 0).mean()),
                        "gain": float(gain[:, 0].mean())}  # fmt: skip
    return out, arr[:, 0], arr[:, 3] - arr[:, 0]


def palm_records(run: pd.DataFrame, curve: str) -> list[dict]:
    """Per step from the 4th round: the PALM verdict per cost setting and P(accuracy now).

    ``now_q`` holds the percentiles of the posterior draws of the accuracy now; on the test
    curve ``now`` and ``left`` hold every draw (base64 float64) of the accuracy now and of the
    gain from now to the run's final budget (``end``), from which the target stop of any target
    and tolerance is replayed; ``check`` (one step per run, test curve) whether ``fit.stop``
    gives the same verdicts, and ``check_target`` (that step and the last before the end) the
    same target stops.
    """
    import palm_bayes as pb

    column = "accuracy" if curve == "test" else "label_free_accuracy"
    seed = int(run["seed"].iloc[0])
    b = float(run["b"].iloc[0])
    end = float(run["budget"].iloc[-1])  # the run's total label budget
    out = []
    for step in range(FIRST_FIT, len(run)):
        t0 = time.perf_counter()
        part = run.iloc[: step + 1]
        frame = pd.DataFrame({"strategy": "run", "budget": part["budget"].to_numpy(float),
                              "accuracy": part[column].to_numpy(float),
                              "n_test": int(run["n_test"].iloc[0])})  # fmt: skip
        curves = pb.load_curves(frame, labels_per_round=b)
        with warnings.catch_warnings():  # falling label-free curves of margin runs warn
            warnings.simplefilter("ignore", UserWarning)
            fit = pb.fit(curves, seed=seed * 10_007 + step, progress=False)
        rec, now, left = _verdicts(fit, b, seed, end)
        rec["step"] = step
        rec["now_q"] = np.quantile(now, np.linspace(0, 1, 101)).round(5).tolist()
        if curve == "test":
            rec["end"], rec["now"], rec["left"] = end, _pack(now), _pack(left)
        rec["seconds"] = time.perf_counter() - t0
        if curve == "test" and step == (FIRST_FIT + len(run)) // 2:
            rec["check"] = {}
            for setting, label_cost in LABEL_COSTS.items():
                v = fit.stop(cost_per_label=label_cost, value_per_point=VALUE_PER_POINT,
                             rounds_ahead=(1, 3), seed=seed).squeeze()  # fmt: skip
                stop = v["verdict"].item() == "stop"
                p = float(v["probability"])
                rec["check"][setting] = {"stop": stop, "p_stop": p if stop else 1.0 - p}
        if curve == "test" and step in ((FIRST_FIT + len(run)) // 2, len(run) - 2):
            # mid-run and the last round before the end (where target stops happen)
            rec["check_target"] = _check_target(fit, run[column].to_numpy(float)[: step + 1],
                                                now, end, seed)  # fmt: skip
        out.append(rec)
    return out


def _check_target(fit, observed: np.ndarray, now: np.ndarray, end: float, seed: int) -> list:
    """``fit.stop``'s target stop at two targets (P(now >= t) near 0.8 and 0.5, where that
    lies above the lowest observed accuracy, which ``fit.stop`` requires)."""
    out = []
    for q in (0.2, 0.5):
        t = float(np.quantile(now, q))
        if not (observed.min() <= t < 1):
            continue
        v = fit.stop(target=t, budget=end, threshold=TARGET_THRESHOLD, tolerance=TOLERANCE,
                     gain_risk=GAIN_RISK, rounds_ahead=(1, 3), seed=seed).squeeze()  # fmt: skip
        out.append(
            {
                "target": t,
                "tolerance": TOLERANCE,
                "gain_risk": GAIN_RISK,
                "stop": v["reason"].item() == "target reached",
                "p_now": float(v["p_target_now"]),
                "p_left": float(v["p_gain_to_budget"]),
            }
        )
    return out


def p_target(rec: dict, target: float) -> float:
    """P(accuracy now >= target): the share of the record's draws, as ``fit.stop`` counts it
    (from its percentiles where it holds no draws)."""
    if "now" in rec:
        return float((rec["now"] >= target).mean())
    q = np.asarray(rec["now_q"])
    levels = np.linspace(0, 1, 101)
    if target <= q[0]:
        return 1.0
    if target > q[-1]:
        return 0.0
    return float(1.0 - np.interp(target, q, levels))


def cached_palm(run: pd.DataFrame, curve: str, cache: Path) -> list[dict]:
    """:func:`palm_records` of one run, from the cache when there."""
    task, strategy, seed = run["task"].iloc[0], run["strategy"].iloc[0], int(run["seed"].iloc[0])
    path = cache / f"palm-r{len(run)}" / task / f"{strategy}-seed{seed}-{curve}.json.gz"
    recs = _read(path)
    if recs is None or (curve == "test" and "left" not in recs[0]):
        recs = palm_records(run, curve)
        _write(path, recs)
    for rec in recs:  # type: ignore[union-attr]
        for key in ("now", "left"):
            if key in rec:
                rec[key] = _unpack(rec[key])
    return recs  # type: ignore[return-value]


# ---------------------------------------------------------------------- replays of the rules
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
    return out


def palm_stop(recs: list[dict], setting: str, last: int, consecutive: int = 1,
              p_stop: float | None = None) -> int:  # fmt: skip
    """First step with ``consecutive`` stop verdicts in a row (or P(stop best) >= p_stop)."""
    run = 0
    for rec in recs:
        r = rec[setting]
        says = r["stop"] if p_stop is None else r["p_stop"] >= p_stop
        run = run + 1 if says else 0
        if run >= consecutive:
            return int(rec["step"])
    return last


def p_left(rec: dict, tolerance: float = TOLERANCE) -> float:
    """P(gain from now to the run's budget > tolerance): the share of the record's draws."""
    return float((rec["left"] > tolerance).mean())


def target_stop(
    recs: list[dict],
    target: float,
    last: int,
    tolerance: float | None = TOLERANCE,
    gain_risk: float = GAIN_RISK,
) -> tuple[int, bool]:
    """Step of the first target stop, and whether it stopped at all.

    The rule of ``fit.stop(target=target, budget=<the run's final budget>)``: P(accuracy now >=
    target) >= threshold and P(gain by the budget > tolerance) <= gain_risk
    (:func:`palm_bayes.decisions.stop.target_stop_says`); ``tolerance=None``: the rule before
    it weighed the gain left (P(target reached) >= threshold alone).
    """
    for rec in recs:
        left = 0.0 if tolerance is None else p_left(rec, tolerance)
        if target_stop_says(p_target(rec, target), left, TARGET_THRESHOLD, gain_risk):
            return int(rec["step"]), True
    return last, False


def cost(run: pd.DataFrame, step: int, label_cost: float) -> float:
    """Pullar-Strecker et al.'s cost of stopping at ``step``."""
    row = run.iloc[step]
    return row["budget"] * label_cost + (1 - row["accuracy"]) * LIFETIME * ERROR_COST


# ---------------------------------------------------------------------- analysis
def stops_of_run(run: pd.DataFrame, recs: dict[str, list[dict]], tuned: dict) -> dict:
    """Stop step per rule and cost setting of one run (``tuned``: dev-chosen settings)."""
    last = len(run) - 1
    base = baseline_stops(run)
    out: dict[str, dict[str, int]] = {n: dict.fromkeys(LABEL_COSTS, s) for n, s in base.items()}
    out["never stop"] = dict.fromkeys(LABEL_COSTS, last)
    out["PALM default"] = {s: palm_stop(recs["test"], s, last) for s in LABEL_COSTS}
    out["PALM label-free curve"] = {s: palm_stop(recs["label_free"], s, last) for s in LABEL_COSTS}
    if tuned:
        budgets = run["budget"].to_numpy()
        out["PALM consecutive (dev-tuned)"] = {
            s: palm_stop(recs["test"], s, last, consecutive=tuned["consecutive"][s])
            for s in LABEL_COSTS}  # fmt: skip
        out["PALM P(stop) >= q (dev-tuned)"] = {
            s: palm_stop(recs["test"], s, last, p_stop=tuned["p_stop"][s]) for s in LABEL_COSTS
        }
        out["PALM label-free, consecutive (dev-tuned)"] = {
            s: palm_stop(recs["label_free"], s, last, consecutive=tuned["consecutive_lf"][s])
            for s in LABEL_COSTS}  # fmt: skip
        fixed = tuned["fixed_budget"][run["task"].iloc[0]]
        out["fixed budget (dev-tuned per task)"] = {
            s: int(min(np.searchsorted(budgets, fixed[s]), last)) for s in LABEL_COSTS
        }
    return out


def rows_of_runs(runs: dict, recs: dict, tuned: dict) -> pd.DataFrame:
    """One row per run, rule and cost setting: stop, labels, cost / oracle, final gain."""
    rows = []
    for key, run in runs.items():
        task, strategy, seed = key
        stops = stops_of_run(run, recs[key], tuned)
        acc = run["accuracy"].to_numpy()
        for setting, label_cost in LABEL_COSTS.items():
            costs = [cost(run, k, label_cost) for k in range(len(run))]
            oracle = int(np.argmin(costs))
            for rule, per in stops.items():
                step = per[setting]
                rows.append(dict(task=task, strategy=strategy, seed=seed, setting=setting,
                                 rule=rule, stop_step=step, labels=int(run["budget"].iloc[step]),
                                 accuracy=float(acc[step]), relative_cost=costs[step]
                                 / costs[oracle], oracle_labels=int(run["budget"].iloc[oracle]),
                                 final_minus_stopped=float(acc[-1] - acc[step])))  # fmt: skip
    return pd.DataFrame(rows)


def _mean_rel(rel: dict, stops: dict) -> float:
    """Mean cost / oracle of the runs stopped at ``stops[run]``."""
    return float(np.mean([rel[k][stops[k]] for k in rel]))


def tune(runs: dict, recs: dict) -> dict:
    """The dev-tuned settings: consecutive count, P(stop) threshold, fixed budget per task."""
    tuned: dict = {"consecutive": {}, "p_stop": {}, "consecutive_lf": {}, "fixed_budget": {}}
    last = {k: len(r) - 1 for k, r in runs.items()}
    for setting, label_cost in LABEL_COSTS.items():
        rel = {}
        for key, run in runs.items():
            costs = np.array([cost(run, k, label_cost) for k in range(len(run))])
            rel[key] = costs / costs.min()
        for name, curve, grid, option in (("consecutive", "test", CONSECUTIVE, "consecutive"),
                                          ("consecutive_lf", "label_free", CONSECUTIVE,
                                           "consecutive"),
                                          ("p_stop", "test", P_STOP, "p_stop")):  # fmt: skip
            scores = {
                value: _mean_rel(rel, {k: palm_stop(recs[k][curve], setting, last[k],
                                                    **{option: value}) for k in runs})
                for value in grid
            }  # fmt: skip
            tuned[name][setting] = min(grid, key=scores.__getitem__)
    for task in sorted({k[0] for k in runs}):
        keys = [k for k in runs if k[0] == task]
        budgets = runs[keys[0]]["budget"].to_numpy()
        per = {}
        for setting, label_cost in LABEL_COSTS.items():
            scores = []
            for step in range(len(budgets)):
                scores.append(
                    np.mean(
                        [
                            cost(runs[k], min(step, len(runs[k]) - 1), label_cost)
                            / min(cost(runs[k], j, label_cost) for j in range(len(runs[k])))
                            for k in keys
                        ]
                    )
                )
            per[setting] = int(budgets[int(np.argmin(scores))])
        tuned["fixed_budget"][task] = per
    return tuned


def labels_saved(rows: pd.DataFrame, runs: dict, rule: str) -> list[dict]:
    """Per task and setting: the rule's mean labels and accuracy against the fixed budget.

    The fixed budget is the smallest budget whose mean held-out accuracy (same task and
    strategy) reaches the rule's mean accuracy at its stops; per task, the mean over strategies.
    """
    out = []
    for (task, setting), part in rows[rows["rule"] == rule].groupby(["task", "setting"]):
        saved, fixed_labels, rule_labels, acc = [], [], [], []
        for strategy, sub in part.groupby("strategy"):
            curves = pd.DataFrame(
                {
                    k[2]: r.set_index("budget")["accuracy"]
                    for k, r in runs.items()
                    if k[:2] == (task, strategy)
                }
            )
            mean = curves.mean(axis=1)
            target = sub["accuracy"].mean()
            reach = mean.index[mean.to_numpy() >= target - 1e-12]
            fixed = float(reach.min()) if reach.size else float("nan")
            fixed_labels.append(fixed)
            rule_labels.append(sub["labels"].mean())
            acc.append(target)
            saved.append(fixed - sub["labels"].mean())
        out.append(dict(task=task, setting=setting, rule=rule,
                        rule_labels=float(np.mean(rule_labels)),
                        rule_accuracy=float(np.mean(acc)),
                        fixed_budget_labels=float(np.mean(fixed_labels)),
                        labels_saved=float(np.mean(saved))))  # fmt: skip
    return out


def target_rates(
    runs: dict,
    recs: dict,
    targets: dict,
    offset: float,
    tolerance: float | None = TOLERANCE,
    gain_risk: float = GAIN_RISK,
) -> dict:
    """The target stop at one target offset: runs stopped before the end, premature ones."""
    stopped = premature = reached = 0
    left = []
    for key, run in runs.items():
        acc = run["accuracy"].to_numpy()
        t = targets[key[:2]][offset]
        step, did = target_stop(recs[key]["test"], t, len(run) - 1, tolerance, gain_risk)
        if did and step < len(run) - 1:
            stopped += 1
            premature += int(acc[-1] - acc[step] > 0.01)
            reached += int(acc[step] >= t)
            left.append(run["budget"].iloc[-1] - run["budget"].iloc[step])
    return dict(stopped=stopped, stopped_at_target=reached, premature=premature,
                rate=premature / stopped if stopped else float("nan"),
                share_of_budget_left=float(np.mean(left) / np.mean(
                    [r["budget"].iloc[-1] for r in runs.values()])) if left else 0.0)  # fmt: skip


def target_tuning(runs: dict, recs: dict, targets: dict) -> list[dict]:
    """The target stop per (tolerance, gain_risk) and target offset (dev seeds), and the rule
    without the gain left (P(reached) alone); ``pooled`` rows sum the three offsets."""
    out = []
    for tol, risk in ((None, 1.0), *TARGET_GRID):
        rows = [target_rates(runs, recs, targets, o, tol, risk) for o in TARGET_OFFSETS]
        name = "none (P(reached) alone)" if tol is None else f"{tol:g}"
        for offset, r in zip((*TARGET_OFFSETS, "pooled"), (*rows, None), strict=True):
            if r is None:
                stopped, premature = (sum(x[k] for x in rows) for k in ("stopped", "premature"))
                r = dict(stopped=stopped, premature=premature,
                         rate=premature / stopped if stopped else float("nan"))  # fmt: skip
            out.append(dict(tolerance=name, gain_risk=risk if tol is not None else None,
                            offset=offset, runs=len(runs), **r))  # fmt: skip
    return out


def reliability(runs: dict, recs: dict, targets: dict) -> tuple[list[dict], list[dict]]:
    """Reliability bins of P(target reached now) and the target-stop rate per target offset."""
    points, rates = [], []
    for offset in TARGET_OFFSETS:
        for key, run in runs.items():
            acc = run["accuracy"].to_numpy()
            t = targets[key[:2]][offset]
            for rec in recs[key]["test"]:
                points.append((p_target(rec, t), float(acc[rec["step"]] >= t)))
        new = target_rates(runs, recs, targets, offset)
        old = target_rates(runs, recs, targets, offset, tolerance=None)
        rates.append(dict(target=f"dev mean final accuracy - {offset:g}", offset=offset,
                          runs=len(runs), **new,
                          **{f"reached_only_{k}": v for k, v in old.items()
                             if k != "stopped_at_target"}))  # fmt: skip
    arr = np.array(points)
    bins = []
    edges = np.linspace(0, 1, 11)
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (arr[:, 0] >= lo) & ((arr[:, 0] < hi) | (hi == 1.0))
        if m.sum():
            bins.append(dict(bin=f"{lo:.1f}-{hi:.1f}", n=int(m.sum()),
                             mean_p=float(arr[m, 0].mean()), observed=float(arr[m, 1].mean()),
                             gap=float(arr[m, 1].mean() - arr[m, 0].mean())))  # fmt: skip
    return bins, rates


def decision_time(runs: dict, repeats: int = 5) -> dict:
    """Seconds of one verdict (fit + stop) of five strategies' curves, median of ``repeats``."""
    import palm_bayes as pb

    keys = sorted(k for k in runs if k[0] == "digits-linear")[:5]
    frames = []
    for i, k in enumerate(keys):
        run = runs[k]
        frames.append(
            pd.DataFrame(
                {
                    "strategy": f"s{i}",
                    "budget": run["budget"].astype(float),
                    "accuracy": run["accuracy"],
                    "n_test": run["n_test"],
                }
            )
        )
    curves = pb.load_curves(pd.concat(frames), labels_per_round=float(runs[keys[0]]["b"].iloc[0]))
    times, fits = [], []
    for r in range(repeats + 1):
        t0 = time.perf_counter()
        fit = pb.fit(curves, seed=r, progress=False)
        fits.append(time.perf_counter() - t0)
        fit.stop(cost_per_label=1.0, value_per_point=VALUE_PER_POINT, rounds_ahead=(1, 3))
        times.append(time.perf_counter() - t0)
    rest = times[1:]
    return {
        "strategies": len(keys),
        "rounds": int(len(runs[keys[0]])),
        "first_seconds": round(times[0], 3),
        "median_seconds": round(float(np.median(rest)), 3),
        "max_seconds": round(max(rest), 3),
        "median_fit_seconds": round(float(np.median(fits[1:])), 3),
    }


def replay_check(runs: dict, recs: dict, n: int = 4) -> dict:
    """Recompute the PALM records of ``n`` runs from scratch: same verdicts as the cached ones?"""
    same = total = draws = same_draws = 0
    max_dp = 0.0
    for key in sorted(runs)[:: max(1, len(runs) // n)][:n]:
        again = palm_records(runs[key], "test")
        for a, b in zip(again, recs[key]["test"], strict=True):
            for s in LABEL_COSTS:
                total += 1
                same += a[s]["stop"] == b[s]["stop"]
                max_dp = max(max_dp, abs(a[s]["p_stop"] - b[s]["p_stop"]))
            for k in ("now", "left"):  # the draws the target stop is replayed from
                draws += 1
                same_draws += bool(np.array_equal(_unpack(a[k]), b[k]))
    return {
        "runs": n,
        "verdicts": total,
        "identical": same,
        "max_abs_p_difference": max_dp,
        "target_draw_sets": draws,
        "target_draw_sets_identical": same_draws,
    }


def plot(summary: pd.DataFrame, path: Path) -> None:
    """Mean cost / oracle per rule and cost setting (held-out seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pivot = summary.pivot(index="rule", columns="setting", values="mean_relative_cost")
    pivot = pivot[list(LABEL_COSTS)].sort_values("moderate", ascending=False)
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(pivot) + 1.2))
    y = np.arange(len(pivot))
    for i, setting in enumerate(LABEL_COSTS):
        ax.barh(y + (i - 1) * 0.27, pivot[setting].clip(upper=3), height=0.27,
                label=f"{setting} ({LABEL_COSTS[setting]:g} per label)")  # fmt: skip
    ax.set_yticks(y, pivot.index)
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_xlim(0.95, min(3.0, float(pivot.to_numpy().max()) * 1.05))
    ax.set_xlabel("mean cost / oracle cost (held-out seeds; 1 = oracle; clipped at 3)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:  # noqa: PLR0915
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=25)
    parser.add_argument("--dev", type=int, default=5, help="seeds 0..dev-1 tune, the rest report")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--epochs", type=int, default=50, help="L-BFGS iterations of linear/rff")
    parser.add_argument("--tasks", default="", help="comma-separated subset of task names")
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "palm_stopping"))
    parser.add_argument("--stage", choices=("al", "records", "all"), default="all")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/stopping.json"))
    args = parser.parse_args()
    t0 = time.perf_counter()
    cache = Path(args.cache)
    todo = tasks(cache / "data")
    if args.tasks:
        todo = [t for t in todo if t["task"] in args.tasks.split(",")]
    seeds = list(range(args.seeds))
    runs: dict[tuple, pd.DataFrame] = {}
    recs: dict[tuple, dict] = {}
    for seed in seeds:  # seed-major: an interrupted run leaves whole seeds in the cache
        t = time.perf_counter()
        for task in todo:
            frame = al_run(task, seed, args.rounds, cache, args.epochs)
            for strategy, run in frame.groupby("strategy"):
                key = (task["task"], strategy, seed)
                runs[key] = run.sort_values("step").reset_index(drop=True)
                if args.stage != "al":
                    recs[key] = {
                        c: cached_palm(runs[key], c, cache) for c in ("test", "label_free")
                    }
        print(f"seed {seed}: ready ({time.perf_counter() - t:.0f} s, "
              f"{time.perf_counter() - t0:.0f} s in all)", flush=True)  # fmt: skip
    if args.stage != "all":
        return
    dev = {k: r for k, r in runs.items() if k[2] < args.dev}
    targets = {}
    for task, strategy in {k[:2] for k in runs}:
        final = np.mean(
            [r["accuracy"].iloc[-1] for k, r in dev.items() if k[:2] == (task, strategy)]
        )
        targets[(task, strategy)] = {o: float(final - o) for o in TARGET_OFFSETS}
    tuned = tune(dev, {k: recs[k] for k in dev})
    held = {k: r for k, r in runs.items() if k[2] >= args.dev}
    rows = rows_of_runs(held, recs, tuned)
    summary = (
        rows.groupby(["setting", "rule"])
        .agg(mean_relative_cost=("relative_cost", "mean"),
             median_relative_cost=("relative_cost", "median"), mean_labels=("labels", "mean"),
             share_final_gain_over_1pt=("final_minus_stopped", lambda x: float((x > 0.01).mean())))
        .reset_index()
    )  # fmt: skip
    wide = summary.pivot(index="rule", columns="setting", values="mean_relative_cost")
    labels = summary.pivot(index="rule", columns="setting", values="mean_labels")
    table = [dict(rule=r, **{s: float(wide.loc[r, s]) for s in LABEL_COSTS},
                  **{f"labels_{s}": float(labels.loc[r, s]) for s in LABEL_COSTS})
             for r in wide.sort_values("moderate").index]  # fmt: skip
    oracle_labels = rows.drop_duplicates(["task", "strategy", "seed", "setting"]).groupby(
        "setting")["oracle_labels"].mean()  # fmt: skip
    by_task = rows[
        rows["rule"].isin(
            [
                "PALM default",
                "fixed budget (dev-tuned per task)",
                "classification change",
                "never stop",
            ]
        )
    ]
    by_task = by_task.groupby(["task", "setting", "rule"])["relative_cost"].mean().unstack("rule")
    bins, rates = reliability(held, recs, targets)
    target_dev = target_tuning(dev, recs, targets)
    saved = labels_saved(rows, held, "PALM default")
    load = os.getloadavg()
    timing = decision_time(runs)
    replay = replay_check(held, recs)
    checks = [(r["check"][s], r[s]) for v in recs.values() for r in v["test"] if "check" in r
              for s in LABEL_COSTS]  # fmt: skip
    check = {
        "verdicts": len(checks),
        "same_verdict": sum(a["stop"] == b["stop"] for a, b in checks),
        "max_abs_p_difference": max(abs(a["p_stop"] - b["p_stop"]) for a, b in checks),
    }
    tchecks = [(c, r) for v in recs.values() for r in v["test"] for c in r.get("check_target", [])]
    replayed = [(c, p_target(r, c["target"]), p_left(r, c["tolerance"])) for c, r in tchecks]
    check["target_stops"] = len(replayed)
    check["same_target_stop"] = sum(
        c["stop"] == bool(target_stop_says(pn, pl, TARGET_THRESHOLD, c["gain_risk"]))
        for c, pn, pl in replayed
    )
    check["target_stops_that_stop"] = sum(c["stop"] for c, _, _ in replayed)
    check["max_abs_p_target_difference"] = max(
        [max(abs(c["p_now"] - pn), abs(c["p_left"] - pl)) for c, pn, pl in replayed], default=0.0
    )
    seconds = [r["seconds"] for v in recs.values() for r in v["test"] + v["label_free"]]
    gap = pd.concat(held.values()).assign(
        gap=lambda f: f["label_free_accuracy"] - f["accuracy"]).groupby(
        ["task", "strategy"])["gap"].mean().round(4).reset_index()  # fmt: skip
    payload = {
        "what": "stop rules vs the oracle stop, cost of Pullar-Strecker et al. (2022), "
        "held-out seeds",
        "command": f"python benchmarks/stopping.py --seeds {args.seeds} --dev {args.dev} "
        f"--rounds {args.rounds} --epochs {args.epochs}",
        "date": time.strftime("%Y-%m-%d"),
        "settings": {"lifetime": LIFETIME, "error_cost": ERROR_COST, "label_costs": LABEL_COSTS,
                     "value_per_point": VALUE_PER_POINT, "seeds": args.seeds,
                     "dev_seeds": list(range(args.dev)),
                     "held_out_seeds": [s for s in seeds if s >= args.dev],
                     "rounds": args.rounds, "linear_epochs": args.epochs,
                     "strategies": ["random", "margin"], "tasks": todo,
                     "baselines": list(BASELINES),
                     "known_rules": [r for r in STOP_RULES if r != RecordAll.name],
                     "target_offsets": TARGET_OFFSETS, "target_threshold": TARGET_THRESHOLD,
                     "target_tolerance": TOLERANCE, "target_gain_risk": GAIN_RISK,
                     "target_grid_dev": TARGET_GRID,
                     "first_fit_step": FIRST_FIT},
        "tuned_on_dev": tuned,
        "table": table,
        "oracle_mean_labels": oracle_labels.to_dict(),
        "summary": summary.to_dict(orient="records"),
        "by_task": by_task.reset_index().to_dict(orient="records"),
        "target_stop": rates,
        "target_stop_dev": target_dev,
        "reliability": bins,
        "labels_saved": saved,
        "decision_seconds_5_strategies": timing,
        "palm_fit_seconds_per_round": {"median": float(np.median(seconds)),
                                       "p90": float(np.quantile(seconds, 0.9))},
        "replay": replay,
        "fast_verdict_vs_fit_stop": check,
        "label_free_minus_test_accuracy": gap.to_dict(orient="records"),
        "n_held_out_runs": len(held),
        "decision_seconds_median": timing["median_seconds"],
        "decision_fit_seconds_median": timing["median_fit_seconds"],
        "load_average_at_timing": [round(x, 2) for x in load],
        "palm_fit_seconds_median": float(np.median(seconds)),
        "replay_identical": f"{replay['identical']} of {replay['verdicts']}",
        "fast_verdict_identical": f"{check['same_verdict']} of {check['verdicts']}",
        "seconds": {"al_runs": float(sum(r["al_seconds"].iloc[0] for k, r in runs.items()
                                         if k[1] == "random")),
                    "analysis_total": round(time.perf_counter() - t0, 1)},
    }  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(payload, indent=1,
                                                                  default=float)))  # fmt: skip
    plot(summary, out.with_name(f"{out.stem}_cost.png"))  # stopping.json: stopping_cost.png
    print(pd.DataFrame(table).set_index("rule")[list(LABEL_COSTS)].round(3).to_string())
    keys = (
        "target_stop",
        "target_stop_dev",
        "fast_verdict_vs_fit_stop",
        "decision_seconds_5_strategies",
        "replay",
        "tuned_on_dev",
    )
    print(json.dumps({k: payload[k] for k in keys}, indent=1, default=float))
    print(f"wrote {out} ({payload['seconds']['analysis_total']} s)")


if __name__ == "__main__":
    main()
