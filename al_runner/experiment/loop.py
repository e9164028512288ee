"""The active-learning loop: select, label, retrain from scratch, evaluate, record, resume.

One *run* is one strategy and one seed: an initial labelled set (step 0), then ``rounds - 1``
acquisitions of ``labels_per_round`` labels, each followed by training a fresh learner and
measuring test accuracy. All runs of an experiment share the dataset, the learner and, per
seed, the initial set (so that strategies start from the same labels).

Everything random is derived from ``(seed, step, strategy)``: the strategy's generator and the
learner's torch seed. After every finished round the state
(:class:`al_runner.experiment.state.RunState`)
and the curves (:mod:`al_runner.experiment.curves`) are written atomically, so a killed run resumes
from its last finished round and produces the same curve as an uninterrupted one (the model of
the last finished round is retrained deterministically before the next selection).
"""

from __future__ import annotations

import os
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from al_runner.datasets import ALDataset, load_dataset
from al_runner.errors import ALRunnerError
from al_runner.experiment.config import EMBEDDINGS, RunConfig, strategies_arg
from al_runner.experiment.curves import assemble_curves, run_metadata, write_curves
from al_runner.experiment.features import experiment_features, pca_basis, representation
from al_runner.experiment.label_free import LABEL_FREE, cross_validated_accuracy
from al_runner.experiment.lock import exclusive_output
from al_runner.experiment.proxies import cross_entropy, round_proxies
from al_runner.experiment.state import RunRecord, RunState, load_state_labelled, state_path
from al_runner.experiment.stop_rules import get_stop_rule
from al_runner.experiment.stopping import StopMonitor, stopped
from al_runner.learners.models import LEARNERS, get_learner, resolve_device
from al_runner.strategies import PoolState, Schedule, get_strategy, strategy_kwargs

__all__ = [
    "EMBEDDINGS",
    "RunConfig",
    "RunState",
    "load_state_labelled",
    "pca_basis",
    "representation",
    "run_experiment",
    "set_threads",
    "state_path",
    "strategies_arg",
    "write_curves",
]

Callback = Callable[[dict[str, Any]], None]


def set_threads(n: int) -> None:
    """Use ``n`` CPU threads in torch and faiss."""
    import torch

    torch.set_num_threads(n)
    try:
        import faiss

        faiss.omp_set_num_threads(n)
    except ImportError:
        pass


def _rng(seed: int, step: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, step, zlib.crc32(name.encode())])


def _torch_seed(seed: int, step: int) -> int:
    return seed * 100_003 + step


class _Experiment:
    """What the runs of an experiment share: data, fixed features, the learner, strategies."""

    def __init__(self, config: RunConfig, data: ALDataset) -> None:
        self.config = config
        self.data = data
        need = config.final_budget
        if need > data.n_pool:
            raise ALRunnerError(
                f"{config.rounds} rounds need {need} labels but the {data.name} pool has only "
                f"{data.n_pool}"
            )
        self.features, self.repr = experiment_features(config, data)
        self.learner = get_learner(
            config.learner, epochs=config.epochs, device=config.device
        ).setup(data, self.features if LEARNERS[config.learner].uses_features else None)
        self.strategies = {
            name: get_strategy(name, **strategy_kwargs(name, config.strategy_options))
            for name in config.strategies
        }

    def initial_set(self, seed: int, strategy: str) -> np.ndarray:
        cfg = self.config
        k = int(cfg.initial_size)
        if cfg.initial == "cold":
            state = PoolState(
                np.zeros(0, dtype=np.int64),
                self.data.n_pool,
                self.data.n_classes,
                representation=self.repr,
                seed=seed,
            )
            return self.strategies[strategy].select(state, k, self._rng(strategy, 0, seed, 0))
        return _rng(seed, 0, "initial").choice(self.data.n_pool, size=k, replace=False)

    def _rng(self, strategy: str, n_labelled: int, seed: int, step: int) -> np.random.Generator:
        """The round's generator, named after the strategy that selects.

        A schedule's round draws as its active stage alone would: before its first switch a
        schedule repeats that strategy's run exactly (common random numbers, so the two
        curves differ only after the switch).
        """
        selector = self.strategies[strategy]
        if isinstance(selector, Schedule):
            strategy = selector.active(n_labelled).name
        return _rng(seed, step, strategy)

    def train(self, labelled: np.ndarray, seed: int, step: int) -> float:
        self.learner.fit(labelled, seed=_torch_seed(seed, step))
        return self.learner.accuracy("test")

    def batch_loss(self, idx: np.ndarray) -> np.ndarray:
        """Cross-entropy of the current model on pool samples ``idx``."""
        return cross_entropy(self.learner.predict_proba(idx, "train"), self.data.train.y[idx])

    def proxies(
        self, labelled: np.ndarray, before: np.ndarray | None, after: np.ndarray | None
    ) -> dict[str, float]:
        """The round's operational proxies (after training on ``labelled``)."""
        return round_proxies(
            labelled=labelled,
            pool_y=self.data.train.y,
            n_classes=self.data.n_classes,
            features=self.repr,
            model=self.learner.model,
            batch_loss_before=before,
            batch_loss_after=after,
            delta=self.config.confidence_delta,
        )

    def select(self, strategy: str, labelled: np.ndarray, seed: int, step: int) -> np.ndarray:
        state = PoolState(
            labelled,
            self.data.n_pool,
            self.data.n_classes,
            learner=self.learner,
            representation=self.repr,
            labelled_y=self.data.train.y[labelled],
            seed=_torch_seed(seed, step),
        )
        picks = self.strategies[strategy].select(
            state, self.config.labels_per_round, self._rng(strategy, len(labelled), seed, step)
        )
        if np.intersect1d(picks, labelled).size or np.unique(picks).size != picks.size:
            raise RuntimeError(f"{strategy} returned labelled or repeated indices")  # a bug
        return picks


def run_experiment(
    config: RunConfig,
    out: str | os.PathLike | None = None,
    *,
    data: ALDataset | None = None,
    resume: bool = True,
    progress: bool = True,
    callback: Callback | None = None,
) -> xr.Dataset:
    """Run (or resume) an AL experiment and return its curves.

    Parameters
    ----------
    config : RunConfig
    out : path, optional
        netCDF file for the curves; a resume state ``<out>.state.json`` sits beside it. Both
        are rewritten atomically after every round. Without ``out`` nothing is written.
    data : ALDataset, optional
        Preloaded dataset (default: ``load_dataset(config.dataset, ...)``).
    resume : bool
        Continue from ``<out>.state.json`` when it exists (its settings must match).
    progress : bool
        Show a tqdm bar with round, strategy, seed and accuracy.
    callback : callable, optional
        Called with a dict (strategy, seed, step, budget, accuracy) after each saved round.

    Returns
    -------
    xarray.Dataset
        The curves contract: dims ``(dataset, strategy, embedding, seed, step)``, variables
        ``budget``, ``accuracy``, ``n_test``, per-round ``select_seconds``/``train_seconds``.

    Examples
    --------
    >>> cfg = RunConfig("digits", ["random", "margin"], rounds=3, labels_per_round=20)
    >>> curves = run_experiment(cfg, progress=False)  # doctest: +SKIP
    """
    config.validate()
    try:
        import torch  # noqa: F401 - availability check
    except ImportError as exc:
        raise ALRunnerError("al_runner needs torch: pip install 'palm-bayes[runner]'") from exc
    set_threads(config.threads)
    if out is None:
        return _Loop(config, None, data, resume).run(progress, callback)
    with exclusive_output(Path(out)):
        return _Loop(config, Path(out), data, resume).run(progress, callback)


class _Loop:
    """One experiment's loop over seeds, strategies and rounds, saving after every round."""

    def __init__(
        self, config: RunConfig, out: Path | None, data: ALDataset | None, resume: bool
    ) -> None:
        device = resolve_device(config.device)
        self.config, self.out = config, out
        self.state_file = state_path(out) if out is not None else None
        if self.state_file is not None and resume and self.state_file.exists():
            self.state = RunState.load(self.state_file, config)
        else:
            self.state = RunState.new(config)
        if data is None:
            data = load_dataset(config.dataset, config.data_root, **config.dataset_options())
        self.exp = _Experiment(config, data)
        self.meta = run_metadata(
            config, epochs=self.exp.learner.epochs, n_test=len(data.test), device=device,
            source=data.source,
        )  # fmt: skip
        self.stop_rule = get_stop_rule(config.stop_when) if config.stop_when else None
        if self.stop_rule is not None:
            self.meta["stop_when"] = str(config.stop_when)
            if getattr(self.stop_rule, "curve", "test") == "label_free" and not config.label_free:
                raise ALRunnerError(
                    f"stop rule {config.stop_when!r} reads the label-free curve: add --label-free"
                )
        self.stop_text = ""

    def run(self, progress: bool, callback: Callback | None) -> xr.Dataset:
        cfg = self.config
        bar = None
        if progress:
            from tqdm.auto import tqdm

            total = len(cfg.strategies) * len(cfg.seeds) * cfg.rounds
            bar = tqdm(total=total, initial=self.state.rounds_done, desc="al-runner",
                       unit="round", dynamic_ncols=True)  # fmt: skip
        try:
            for seed in cfg.seeds:
                for name in cfg.strategies:
                    for step, acc in self.run_one(name, seed, callback):
                        if bar is not None:
                            bar.update(1)
                            shown = {"stop": self.stop_text} if self.stop_text else {}
                            bar.set_postfix(strategy=name, seed=seed, round=step + 1,
                                            acc=f"{acc:.3f}", **shown)  # fmt: skip
        finally:
            if bar is not None:
                bar.close()
        curves = assemble_curves(self.state, cfg, self.meta)
        if self.out is not None:
            write_curves(curves, self.out)
        return curves

    def run_one(
        self, name: str, seed: int, callback: Callback | None
    ) -> Iterator[tuple[int, float]]:
        """Run the missing rounds of one strategy and seed; yield each ``(step, accuracy)``."""
        exp, rounds = self.exp, self.config.rounds
        run = self.state.run(name, seed, create=True)
        done = run.rounds
        labelled = np.asarray(run.labelled, dtype=np.int64)
        monitor = self.monitor(name, seed)
        if monitor is not None and stopped(run.proxies):
            return  # the rule stopped this run (run without --stop-when to continue it)
        if 0 < done < rounds:  # resume: rebuild the model of the last finished round
            exp.train(labelled, seed, done - 1)
            if monitor is not None:
                monitor.resume(exp.learner)
        for step in range(done, rounds):
            labelled = self.round(run, name, seed, step, labelled, monitor)
            self.save()
            acc = run.accuracy[-1]
            if callback is not None:
                callback({"strategy": name, "seed": seed, "step": step,
                          "budget": int(labelled.size), "accuracy": acc})  # fmt: skip
            yield step, acc
            if monitor is not None and stopped(run.proxies):
                return

    def monitor(self, name: str, seed: int) -> StopMonitor | None:
        """The stop rule's monitor of one run (None without a rule)."""
        if self.stop_rule is None:
            return None
        context = {"strategy": name, "seed": seed, "dataset": self.config.dataset,
                   "labels_per_round": self.config.labels_per_round,
                   "final_budget": self.config.final_budget,
                   "n_test": len(self.exp.data.test)}  # fmt: skip
        return StopMonitor(self.stop_rule, self.exp.data.n_pool, seed, context)

    def round(
        self,
        run: RunRecord,
        name: str,
        seed: int,
        step: int,
        labelled: np.ndarray,
        monitor: StopMonitor | None = None,
    ) -> np.ndarray:
        """Select (or draw the initial set), train, measure; record it in ``run``."""
        exp, with_proxies = self.exp, self.config.proxies
        t0 = time.perf_counter()
        if step == 0:
            picks, labelled = None, np.asarray(exp.initial_set(seed, name), dtype=np.int64)
        else:
            picks = exp.select(name, labelled, seed, step)
            labelled = np.concatenate([labelled, picks])
        t1 = time.perf_counter()
        # the previous round's model on the new batch
        before = exp.batch_loss(picks) if with_proxies and picks is not None else None
        t_before = time.perf_counter() - t1
        t1 = time.perf_counter()
        acc = exp.train(labelled, seed, step)
        t2 = time.perf_counter()
        proxies = None
        if with_proxies:
            after = exp.batch_loss(picks) if picks is not None else None
            proxies = exp.proxies(labelled, before, after)
            proxies["proxy_seconds"] = t_before + time.perf_counter() - t2
        extra = self.stopping(run, seed, step, labelled, acc, monitor)
        if extra:
            proxies = (proxies or {}) | extra
        run.add_round(labelled, acc, t1 - t0, t2 - t1, proxies)
        return labelled

    def stopping(
        self,
        run: RunRecord,
        seed: int,
        step: int,
        labelled: np.ndarray,
        acc: float,
        monitor: StopMonitor | None,
    ) -> dict[str, float]:
        """The round's label-free accuracy and stop-rule numbers (empty when neither is on)."""
        if not self.config.label_free and monitor is None:
            return {}
        t0 = time.perf_counter()
        exp, extra = self.exp, {}
        estimate = float("nan")
        if self.config.label_free:
            estimate = cross_validated_accuracy(
                exp.learner, labelled, exp.data.train.y[labelled], seed=_torch_seed(seed, step)
            )
            extra[LABEL_FREE] = estimate
        if monitor is not None:
            history = {"accuracy": run.accuracy, "budget": run.budget, **run.proxies}
            extra |= monitor.after_round(exp.learner, history, step, labelled, acc, estimate)
            self.stop_text = monitor.text
        extra["stop_seconds"] = time.perf_counter() - t0
        return extra

    def save(self) -> None:
        """Write the state and the curves so far (atomically), when there is an output."""
        if self.state_file is not None:
            self.state.save(self.state_file)
            write_curves(assemble_curves(self.state, self.config, self.meta), self.out)
