"""The active-learning loop: select, label, retrain from scratch, evaluate, record, resume.

One *run* is one strategy and one seed: an initial labelled set (step 0), then ``rounds - 1``
acquisitions of ``budget`` labels, each followed by training a fresh learner and measuring test
accuracy. All runs of an experiment share the dataset, the learner and, per seed, the initial
set (so that strategies start from the same labels).

Everything random is derived from ``(seed, step, strategy)``: the strategy's generator and the
learner's torch seed. After every finished round the state (labelled indices, accuracies) and
the curves are written atomically, so a killed run resumes from its last finished round and
produces the same curve as an uninterrupted one (the model of the last finished round is
retrained deterministically before the next selection).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from al_runner.datasets import ALDataset, dataset_features, load_dataset
from al_runner.errors import ALRunnerError
from al_runner.learners import LEARNERS, get_learner, resolve_device
from al_runner.outlock import exclusive_output
from al_runner.proxies import PROXIES, cross_entropy, round_proxies
from al_runner.strategies import (
    STRATEGIES,
    PoolState,
    Schedule,
    check_strategy_names,
    get_strategy,
    strategy_kwargs,
)

__all__ = [
    "EMBEDDINGS",
    "RunConfig",
    "pca_basis",
    "representation",
    "run_experiment",
    "set_threads",
    "state_path",
    "write_curves",
]

EMBEDDINGS = ("raw", "pca", "simclr", "mocov2", "mocov3", "byol", "file", "checkpoint")
_SSL = ("simclr", "mocov2", "mocov3", "byol")
_REPR_DIM = 64
_STATE_VERSION = 1


@dataclass
class RunConfig:
    """Settings of one experiment (everything that determines its curves).

    Parameters
    ----------
    dataset : str
        Registry name (see :data:`al_runner.datasets.DATASETS`).
    strategies : list of str
        Strategy names, or ``["all"]``.
    learner : str
        Learner name (see :data:`al_runner.learners.LEARNERS`).
    rounds : int
        Points per curve: the initial set plus ``rounds - 1`` acquisitions.
    budget : int
        Labels acquired per round ``b``.
    initial_size : int, optional
        Size of the initial labelled set (default ``budget``).
    initial : {"random", "cold"}
        Initial set at random (shared by all strategies of a seed) or by each strategy's
        cold start (TypiClust/ProbCover select without a model; the others fall back to random).
    seeds : list of int
        Seeds of the repeated runs.
    epochs : int, optional
        Learner epochs (default per learner).
    embedding : {"raw", "pca", "simclr", "mocov2", "mocov3", "byol", "file", "checkpoint"}
        Fixed features of image datasets: flattened pixels, their 64-dim PCA, a cached
        self-supervised embedding (trained into ``embedding_dir`` when missing), a user's
        feature file, or features of a user's torchvision ResNet checkpoint.
    embedding_file : str, optional
        Bring-your-own features aligned to the dataset (sets ``embedding="file"``); see
        :func:`al_runner.embeddings.load_feature_file`.
    encoder_checkpoint : str, optional
        Bring-your-own torchvision ResNet or DINOv2 ViT state dict (sets
        ``embedding="checkpoint"``).
    embedding_dir : str
        Folder of SSL checkpoints and feature caches.
    embedding_epochs : int
        SSL training epochs when the embedding must be built.
    device : str
        ``auto``, ``cpu`` or ``cuda``.
    threads : int
        CPU threads of torch and faiss.
    data_root, class_list, labels : str, optional
        Local data locations (see :func:`al_runner.datasets.load_dataset`).
    imbalance, image_size, split_file : optional
        Dataset options of ``imbalanced-cifar*`` and ``imagefolder`` (see
        :func:`al_runner.datasets.load_dataset`).
    strategy_options : dict
        Per-strategy keyword arguments, e.g. ``{"probcover": {"delta": 0.5}}``.
    proxies : bool
        Record the operational proxies of every round (see :mod:`al_runner.proxies`).
    confidence_delta : float
        Failure probability of the proxies' confidence term.
    """

    dataset: str
    strategies: list[str]
    learner: str = "linear"
    rounds: int = 10
    budget: int = 20
    initial_size: int | None = None
    initial: str = "random"
    seeds: list[int] = field(default_factory=lambda: [0])
    epochs: int | None = None
    embedding: str = "raw"
    embedding_file: str | None = None
    encoder_checkpoint: str | None = None
    embedding_dir: str = "embeddings"
    embedding_epochs: int = 20
    device: str = "auto"
    threads: int = 1
    data_root: str | None = None
    class_list: str | None = None
    labels: str | None = None
    imbalance: float | None = None
    image_size: int | None = None
    split_file: str | None = None
    strategy_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    proxies: bool = True
    confidence_delta: float = 0.05

    def validate(self) -> RunConfig:
        """Check names and sizes; expand ``all``; return self."""
        if list(self.strategies) == ["all"]:
            self.strategies = list(STRATEGIES)
        if not self.strategies:
            raise ALRunnerError("no strategies given")
        check_strategy_names(list(self.strategies))
        if len(set(self.strategies)) != len(self.strategies):
            raise ALRunnerError(f"strategies repeat a name: {self.strategies}")
        if self.learner not in LEARNERS:
            raise ALRunnerError(f"unknown learner {self.learner!r}; known: {', '.join(LEARNERS)}")
        if self.embedding_file and self.encoder_checkpoint:
            raise ALRunnerError("give --embedding-file or --encoder-checkpoint, not both")
        for given, name in ((self.embedding_file, "file"), (self.encoder_checkpoint, "checkpoint")):
            if given:
                if self.embedding not in ("raw", name):
                    raise ALRunnerError(f"--embedding {self.embedding} conflicts with a {name}")
                self.embedding = name
        if self.embedding in ("file", "checkpoint") and not (
            self.embedding_file or self.encoder_checkpoint
        ):
            raise ALRunnerError(f"embedding {self.embedding!r} needs a file or checkpoint path")
        if self.embedding not in EMBEDDINGS:
            raise ALRunnerError(
                f"unknown embedding {self.embedding!r}; known: {', '.join(EMBEDDINGS)}"
            )
        if self.initial not in ("random", "cold"):
            raise ALRunnerError(f"initial must be 'random' or 'cold', got {self.initial!r}")
        for name, value, low in (
            ("rounds", self.rounds, 1),
            ("budget", self.budget, 1),
            ("threads", self.threads, 1),
        ):
            if int(value) < low:
                raise ALRunnerError(f"{name} must be >= {low}, got {value}")
        if self.initial_size is None:
            self.initial_size = self.budget
        if self.initial_size < 1:
            raise ALRunnerError(f"initial size must be >= 1, got {self.initial_size}")
        if not self.seeds:
            raise ALRunnerError("no seeds given")
        if len(set(self.seeds)) != len(self.seeds):
            raise ALRunnerError(f"seeds repeat a value: {self.seeds}")
        self.seeds = [int(s) for s in self.seeds]
        return self

    def dataset_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`al_runner.datasets.load_dataset` besides the root."""
        return {
            "class_list": self.class_list, "labels": self.labels, "imbalance": self.imbalance,
            "image_size": self.image_size, "split_file": self.split_file,
        }  # fmt: skip

    @property
    def final_budget(self) -> int:
        """Labels at the last step."""
        return int(self.initial_size) + (self.rounds - 1) * self.budget

    def budgets(self) -> np.ndarray:
        """Cumulative labels at every step."""
        return int(self.initial_size) + np.arange(self.rounds) * self.budget


def set_threads(n: int) -> None:
    """Use ``n`` CPU threads in torch and faiss."""
    import torch

    torch.set_num_threads(n)
    try:
        import faiss

        faiss.omp_set_num_threads(n)
    except ImportError:
        pass


def state_path(out: str | os.PathLike) -> Path:
    """The resume-state file kept beside the curves file ``out``."""
    out = Path(out)
    return out.with_name(out.name + ".state.json")


def pca_basis(features: np.ndarray, dim: int = _REPR_DIM) -> tuple[np.ndarray, np.ndarray]:
    """Mean and the top-``dim`` principal axes ``(d, dim)`` of ``features`` (signs fixed).

    Parameters
    ----------
    features : numpy.ndarray
        ``(n, d)`` data.
    dim : int
        Number of components.

    Returns
    -------
    tuple of numpy.ndarray
        ``(mean (d,), components (d, dim))``; components by decreasing variance.
    """
    x = np.asarray(features, dtype=np.float64)
    mean = x.mean(axis=0)
    centred = x - mean
    cov = centred.T @ centred / max(1, x.shape[0] - 1)
    _, vecs = np.linalg.eigh(cov)
    comps = vecs[:, ::-1][:, :dim]
    signs = np.sign(comps[np.abs(comps).argmax(axis=0), np.arange(comps.shape[1])])
    return mean, comps * signs


def representation(features: np.ndarray, dim: int = _REPR_DIM) -> np.ndarray:
    """Fixed representation for TypiClust/ProbCover: features, PCA-reduced to ``dim`` if larger.

    Parameters
    ----------
    features : numpy.ndarray
        ``(n, d)`` pool features.
    dim : int
        Maximum dimension.

    Returns
    -------
    numpy.ndarray
        ``float32`` ``(n, min(d, dim))``.
    """
    if features.shape[1] <= dim:
        return np.ascontiguousarray(features, dtype=np.float32)
    mean, comps = pca_basis(features, dim)
    return np.ascontiguousarray((features - mean) @ comps, dtype=np.float32)


def _rng(seed: int, step: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, step, zlib.crc32(name.encode())])


def _torch_seed(seed: int, step: int) -> int:
    return seed * 100_003 + step


def _versions() -> str:
    from palm_bayes.contract import VERSION

    parts = [f"al_runner/palm_bayes {VERSION}"]
    for mod in ("torch", "torchvision", "faiss", "numpy"):
        try:
            parts.append(f"{mod} {__import__(mod).__version__}")
        except (ImportError, AttributeError):
            pass
    return ", ".join(parts)


class _Experiment:
    def __init__(self, config: RunConfig, data: ALDataset) -> None:
        self.config = config
        self.data = data
        need = config.final_budget
        if need > data.n_pool:
            raise ALRunnerError(
                f"{config.rounds} rounds need {need} labels but the {data.name} pool has only "
                f"{data.n_pool}"
            )
        self.features: dict[str, np.ndarray] | None = None
        self.repr: np.ndarray | None = None
        if config.embedding in (*_SSL, "file", "checkpoint"):
            feats = _embedding_features(config, data)
            self.features = feats
            self.repr = representation(feats["train"])
        elif data.train.in_memory:
            feats = {s: dataset_features(data, s) for s in ("train", "test")}
            if config.embedding == "pca":  # fitted on the pool, applied to both splits
                mean, comps = pca_basis(feats["train"])
                feats = {
                    s: np.ascontiguousarray((f - mean) @ comps, dtype=np.float32)
                    for s, f in feats.items()
                }
            self.features = feats
            self.repr = representation(feats["train"])
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
        return self.strategies[strategy].select(
            state, self.config.budget, self._rng(strategy, len(labelled), seed, step)
        )


def _embedding_features(config: RunConfig, data: ALDataset) -> dict[str, np.ndarray]:
    """Fixed features from an SSL cache, a user's feature file or a user's checkpoint."""
    from al_runner import embeddings as emb

    if config.embedding == "file":
        return emb.load_feature_file(data, str(config.embedding_file))
    if config.embedding == "checkpoint":
        return emb.checkpoint_features(
            data, str(config.encoder_checkpoint), config.embedding_dir, device=config.device,
            tag="torchvision", torchvision=True,
        )  # fmt: skip
    return emb.ssl_features(
        data, config.embedding, config.embedding_dir, epochs=config.embedding_epochs,
        device=config.device,
    )  # fmt: skip


def _config_key(config: RunConfig) -> dict[str, Any]:
    key = asdict(config)
    for volatile in (
        "device", "threads", "data_root", "class_list", "labels", "split_file", "embedding_dir",
        "proxies", "confidence_delta",  # recorded beside the curves, they do not change them
    ):  # fmt: skip
        key.pop(volatile)
    for unset in ("embedding_file", "encoder_checkpoint", "imbalance", "image_size"):
        # popped when unset: keeps older state files valid
        if key[unset] is None:
            key.pop(unset)
    if config.embedding not in _SSL:
        key.pop("embedding_epochs")
    return key


def _load_state(path: Path, config: RunConfig) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ALRunnerError(
            f"resume state {path} is unreadable ({exc}); delete it to start over"
        ) from exc
    if state.get("version") != _STATE_VERSION or state.get("config") != _config_key(config):
        raise ALRunnerError(
            f"{path} belongs to a run with other settings; use another --out, or --overwrite "
            "to start over"
        )
    return state


def run_experiment(
    config: RunConfig,
    out: str | os.PathLike | None = None,
    *,
    data: ALDataset | None = None,
    resume: bool = True,
    progress: bool = True,
    callback: Callable[[dict[str, Any]], None] | None = None,
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
    >>> cfg = RunConfig("digits", ["random", "margin"], rounds=3, budget=20)
    >>> curves = run_experiment(cfg, progress=False)  # doctest: +SKIP
    """
    config.validate()
    try:
        import torch  # noqa: F401 - availability check
    except ImportError as exc:
        raise ALRunnerError("al_runner needs torch: pip install 'palm-bayes[runner]'") from exc
    set_threads(config.threads)
    out_path = Path(out) if out is not None else None
    if out_path is None:
        return _run_experiment(config, None, data, resume, progress, callback)
    with exclusive_output(out_path):
        return _run_experiment(config, out_path, data, resume, progress, callback)


def _run_experiment(
    config: RunConfig,
    out_path: Path | None,
    data: ALDataset | None,
    resume: bool,
    progress: bool,
    callback: Callable[[dict[str, Any]], None] | None,
) -> xr.Dataset:
    device = resolve_device(config.device)
    spath = state_path(out_path) if out_path is not None else None
    if spath is not None and resume and spath.exists():
        state = _load_state(spath, config)
    else:
        state = {"version": _STATE_VERSION, "config": _config_key(config), "runs": {}}
    if data is None:
        data = load_dataset(config.dataset, config.data_root, **config.dataset_options())
    exp = _Experiment(config, data)
    meta = {
        "dataset": config.dataset,
        "learner": config.learner,
        "epochs": int(exp.learner.epochs),
        "labels_per_round": float(config.budget),  # a float: palm_bayes keeps float attrs
        "initial_size": int(config.initial_size),
        "initial": config.initial,
        "rounds": int(config.rounds),
        "n_test": int(len(data.test)),
        "embedding": config.embedding,
        "device": device,
        "versions": _versions(),
        "source": data.source,
    }
    total = len(config.strategies) * len(config.seeds) * config.rounds
    done = sum(len(r["accuracy"]) for r in state["runs"].values())
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=done, desc="al-runner", unit="round", dynamic_ncols=True)
    try:
        for seed in config.seeds:
            for name in config.strategies:
                _run_one(exp, state, name, seed, spath, out_path, meta, bar, callback)
    finally:
        if bar is not None:
            bar.close()
    curves = _curves(state, config, meta)
    if out_path is not None:
        write_curves(curves, out_path)
    return curves


def _run_one(
    exp: _Experiment,
    state: dict[str, Any],
    name: str,
    seed: int,
    spath: Path | None,
    out_path: Path | None,
    meta: dict[str, Any],
    bar: Any,
    callback: Callable[[dict[str, Any]], None] | None,
) -> None:
    cfg = exp.config
    run = state["runs"].setdefault(
        f"{name}/{seed}",
        {"labelled": [], "accuracy": [], "budget": [], "select_seconds": [], "train_seconds": []},
    )
    proxies = run.setdefault("proxies", {})
    step = len(run["accuracy"])
    if step >= cfg.rounds:
        return
    labelled = np.asarray(run["labelled"], dtype=np.int64)
    if step > 0:  # resume: rebuild the model of the last finished round (deterministic)
        exp.train(labelled, seed, step - 1)
    while step < cfg.rounds:
        t0 = time.perf_counter()
        before = picks = None
        if step == 0:
            labelled = np.asarray(exp.initial_set(seed, name), dtype=np.int64)
        else:
            picks = exp.select(name, labelled, seed, step)
            if np.intersect1d(picks, labelled).size or np.unique(picks).size != picks.size:
                raise RuntimeError(f"{name} returned labelled or repeated indices")  # a bug
            labelled = np.concatenate([labelled, picks])
        t1 = time.perf_counter()
        if cfg.proxies and picks is not None:  # the previous round's model on the new batch
            before = exp.batch_loss(picks)
        t_before = time.perf_counter() - t1
        t1 = time.perf_counter()
        acc = exp.train(labelled, seed, step)
        t2 = time.perf_counter()
        if cfg.proxies:
            after = exp.batch_loss(picks) if picks is not None else None
            for key, value in exp.proxies(labelled, before, after).items():
                proxies.setdefault(key, [float("nan")] * step).append(value)
            proxies.setdefault("proxy_seconds", [float("nan")] * step).append(
                t_before + time.perf_counter() - t2
            )
        run["labelled"] = labelled.tolist()
        run["accuracy"].append(acc)
        run["budget"].append(int(labelled.size))
        run["select_seconds"].append(t1 - t0)
        run["train_seconds"].append(t2 - t1)
        step += 1
        if spath is not None:
            _save_state(spath, state)
            write_curves(_curves(state, cfg, meta), out_path)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(strategy=name, seed=seed, round=step, acc=f"{acc:.3f}")
        if callback is not None:
            callback(
                {"strategy": name, "seed": seed, "step": step - 1, "budget": int(labelled.size),
                 "accuracy": acc}
            )  # fmt: skip


def _save_state(path: Path, state: dict[str, Any]) -> None:
    from palm_bayes.contract import atomic_write

    text = json.dumps(state)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _curves(state: dict[str, Any], config: RunConfig, meta: dict[str, Any]) -> xr.Dataset:
    shape = (1, len(config.strategies), 1, len(config.seeds), config.rounds)
    names = ["budget", "accuracy", "select_seconds", "train_seconds"]
    if config.proxies:
        names += [*PROXIES, "proxy_seconds"]
    arrays = {v: np.full(shape, np.nan) for v in names}
    complete = True
    for i, name in enumerate(config.strategies):
        for j, seed in enumerate(config.seeds):
            run = state["runs"].get(f"{name}/{seed}")
            n = len(run["accuracy"]) if run else 0
            complete &= n == config.rounds
            for var, arr in arrays.items():
                values = run.get(var, run.get("proxies", {}).get(var, [])) if run else []
                if len(values):
                    arr[0, i, 0, j, : len(values)] = values
    dims = ("dataset", "strategy", "embedding", "seed", "step")
    ds = xr.Dataset(
        {v: (dims, a) for v, a in arrays.items()},
        coords={
            "dataset": [config.dataset],
            "strategy": list(config.strategies),
            "embedding": [config.embedding],
            "seed": np.asarray(config.seeds, dtype=np.int64),
            "step": np.arange(config.rounds),
        },
    )
    ds["n_test"] = xr.full_like(ds["accuracy"].isel(step=0, drop=True), meta["n_test"])
    ds["n_test"] = ds["n_test"].astype(np.int64)
    ds["budget"].attrs["long_name"] = "cumulative labelled samples"
    ds["accuracy"].attrs["long_name"] = "test accuracy (fraction)"
    ds.attrs = {
        **meta,
        "complete": int(complete),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "strategies": ",".join(config.strategies),
        "created_by": "al_runner",
    }
    return ds


def write_curves(curves: xr.Dataset, path: str | os.PathLike) -> None:
    """Write a curves Dataset to netCDF atomically (integer budgets, gzip accuracies)."""
    from palm_bayes.contract import atomic_write

    encoding = {
        "budget": {"dtype": "int32", "_FillValue": -1},
        "accuracy": {"compression": "gzip"},
    }
    atomic_write(path, lambda tmp: curves.to_netcdf(tmp, engine="h5netcdf", encoding=encoding))


def load_state_labelled(out: str | os.PathLike, strategy: str, seed: int) -> np.ndarray:
    """Labelled pool indices (acquisition order) of one run, read from its resume state."""
    state = json.loads(state_path(out).read_text())
    run = state["runs"].get(f"{strategy}/{seed}")
    if run is None:
        raise ALRunnerError(f"no run {strategy}/{seed} in {state_path(out)}")
    return np.asarray(run["labelled"], dtype=np.int64)


def strategies_arg(text: str | Sequence[str]) -> list[str]:
    """Split a comma-separated strategy list (``all`` expands to every strategy)."""
    names = text.split(",") if isinstance(text, str) else list(text)
    names = [n.strip() for n in names if n.strip()]
    return list(STRATEGIES) if names == ["all"] else names
