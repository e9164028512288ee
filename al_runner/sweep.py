"""Sweeps: a grid of datasets x strategies x embeddings x seeds, run as Ray tasks.

Each run (one dataset, strategy, embedding and seed) is one Ray task with declared resources,
so Ray packs the runs onto whatever the cluster has: a local instance bound to 127.0.0.1 by
default, or a cluster by address. A self-supervised embedding is trained once per (dataset,
embedding) by its own task, which the runs that need it wait for.

Every run writes its curve and resume state atomically after each round into a results folder
(:func:`al_runner.loop.run_experiment`), so a crashed worker, a killed driver or a lost node
costs at most the round in progress: Ray retries the task (it resumes from its state), and a
sweep started again skips finished runs and resumes the others. The sweep then merges the runs
into one curves netCDF that :func:`palm_bayes.load_curves` reads.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import sys
import time
import tomllib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from al_runner.config import SSL_EMBEDDINGS, RunConfig
from al_runner.errors import ALRunnerError

__all__ = [
    "RunSpec",
    "SweepGrid",
    "SweepResult",
    "execute_run",
    "merge_runs",
    "run_sweep",
    "start_ray",
]

_SSL = SSL_EMBEDDINGS
_GRID_EMBEDDINGS = ("raw", "pca", *_SSL)
_CURVE_DIMS = ("dataset", "strategy", "embedding", "seed", "step")
_LOCAL_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray's single-node, loopback-only mode


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: a cell of the grid."""

    dataset: str
    strategy: str
    embedding: str
    seed: int

    @property
    def name(self) -> str:
        """``dataset/embedding/strategy/seed`` (how progress and failures name the run)."""
        return f"{self.dataset}/{self.embedding}/{self.strategy}/seed{self.seed}"

    def path(self, results: str | os.PathLike) -> Path:
        """The run's curves file inside the results folder (its state file sits beside it)."""
        return Path(results) / self.dataset / self.embedding / self.strategy / f"seed{self.seed}.nc"


#: RunConfig fields a grid sets per run (its axes and per-dataset tables), not in the template
_PER_RUN = ("dataset", "strategies", "seeds", "embedding", "embedding_dir", "embedding_file",
            "encoder_checkpoint", "data_root", "class_list", "labels", "imbalance",
            "image_size", "split_file")  # fmt: skip
_DATASET_OPTIONS = ("imbalance", "image_size", "split_file")


def _template_keys() -> list[str]:
    """The TOML keys that go to the grid's :class:`RunConfig` template."""
    return [f.name for f in fields(RunConfig) if f.name not in _PER_RUN]


@dataclass
class SweepGrid:
    """A sweep: the grid's axes, the settings every run shares and how Ray runs them.

    The settings of the runs are one :class:`al_runner.config.RunConfig`, the ``template``;
    each cell of the grid is the template with its dataset, strategy, embedding and seed
    (and the dataset's data root and options) put in by :func:`dataclasses.replace`. In the
    TOML file the template's fields are top-level keys beside the grid's own.

    Parameters
    ----------
    datasets, strategies : list of str
        Registry names (``al-runner list``); ``strategies = ["all"]`` takes every strategy.
    embeddings : list of str
        ``raw``, ``pca`` or an SSL method (``simclr``, ``mocov2``, ``mocov3``, ``byol``).
    seeds : list of int
        Seeds of the repeated runs (a TOML integer ``n`` means ``0 .. n-1``).
    template : RunConfig
        Settings every run shares (``learner``, ``rounds``, ``labels_per_round``,
        ``initial_size``, ``initial``, ``epochs``, ``embedding_epochs``, ``threads`` = the CPUs
        each Ray task asks for, ``device``, ``strategy_options``, ...); its dataset,
        strategies, seeds and embedding are replaced per run.
    embedding_options : dict
        Further SSL training settings (:class:`al_runner.embeddings.EmbedConfig` fields such as
        ``batch_size``, ``arch``, ``lr``, ``max_steps_per_epoch``).
    embedding_dir : str, optional
        Folder of SSL checkpoints and feature caches (default: ``embeddings/`` inside the
        results folder).
    gpus_per_run : float
        GPUs each run of an image learner (cnn, resnet*) asks for when the cluster has GPUs;
        a fraction packs several runs onto one GPU.
    retries : int
        Ray retries of a failed or lost run before it is reported as failed.
    data_roots, class_lists : dict
        Per dataset: the local data path and ImageNet class-list file.
    dataset_options : dict
        Per dataset: ``imbalance`` (imbalanced CIFAR), ``image_size`` and ``split_file``
        (image folders), e.g. ``{"imbalanced-cifar10": {"imbalance": 50}}``.

    Examples
    --------
    >>> grid = SweepGrid.from_dict({"datasets": ["digits"], "strategies": ["random", "margin"],
    ...                             "seeds": 2, "rounds": 4, "labels_per_round": 20})
    >>> [spec.name for spec in grid.runs()][:2]
    ['digits/raw/random/seed0', 'digits/raw/margin/seed0']
    >>> grid.run_config(grid.runs()[1], "emb").labels_per_round
    20
    """

    datasets: list[str]
    strategies: list[str]
    embeddings: list[str] = field(default_factory=lambda: ["raw"])
    seeds: list[int] = field(default_factory=lambda: [0])
    template: RunConfig = field(default_factory=lambda: RunConfig("", []))
    embedding_options: dict[str, Any] = field(default_factory=dict)
    embedding_dir: str | None = None
    gpus_per_run: float = 1.0
    retries: int = 2
    data_roots: dict[str, str] = field(default_factory=dict)
    class_lists: dict[str, str] = field(default_factory=dict)
    dataset_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_toml(cls, path: str | os.PathLike) -> SweepGrid:
        """Read a grid file; unknown keys and wrong types are errors that name the key."""
        path = Path(path)
        try:
            table = tomllib.loads(path.read_text())
        except FileNotFoundError as exc:
            raise ALRunnerError(f"grid file {path} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ALRunnerError(f"grid file {path} is not valid TOML: {exc}") from exc
        return cls.from_dict(table, source=str(path))

    @classmethod
    def from_dict(cls, table: dict[str, Any], source: str = "grid") -> SweepGrid:
        """Build a grid from a dict with the TOML file's keys (the template's at top level)."""
        own = {f.name for f in fields(cls)} - {"template"}
        shared = set(_template_keys())
        known = own | shared
        unknown = sorted(set(table) - known - {"budget"})
        if unknown:
            raise ALRunnerError(f"{source}: unknown key(s) {unknown}; known: {sorted(known)}")
        for key in ("datasets", "strategies"):
            if key not in table:
                raise ALRunnerError(f"{source}: missing key {key!r}")
        table = dict(table)
        if "budget" in table:  # the old name of labels_per_round
            warnings.warn(
                f"{source}: the key `budget` is now `labels_per_round` (labels acquired per "
                "round); the old name will be removed",
                DeprecationWarning,
                stacklevel=2,
            )
            if table.setdefault("labels_per_round", table["budget"]) != table.pop("budget"):
                raise ALRunnerError(f"{source}: give labels_per_round or budget, not both")
        if isinstance(table.get("seeds"), int):
            table["seeds"] = list(range(table["seeds"]))
        for key in ("datasets", "strategies", "embeddings", "seeds"):
            value = table.get(key)
            if isinstance(value, str):
                table[key] = [value]
            elif value is not None and not isinstance(value, list):
                raise ALRunnerError(f"{source}: {key} must be a list, got {value!r}")
        template = RunConfig("", [], **{k: v for k, v in table.items() if k in shared})
        grid = cls(**{k: v for k, v in table.items() if k in own}, template=template)
        return grid.validate()

    def to_dict(self) -> dict[str, Any]:
        """The grid as the TOML file's keys (what :meth:`from_dict` reads)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "template"}
        out.update({k: getattr(self.template, k) for k in _template_keys()})
        return out

    def validate(self) -> SweepGrid:
        """Check every name and size up front, before any run starts; return self.

        The grid checks its axes and tables; the settings of the runs are checked by
        :meth:`al_runner.config.RunConfig.validate` on each (dataset, embedding).
        """
        from al_runner.datasets import DATASETS
        from al_runner.strategies import get_strategy, stage_names

        for key in ("datasets", "strategies", "embeddings", "seeds"):
            values = getattr(self, key)
            if not values:
                raise ALRunnerError(f"the grid has no {key}")
        unknown = [d for d in self.datasets if d not in DATASETS]
        if unknown:
            raise ALRunnerError(f"unknown dataset {unknown[0]!r}; known: {', '.join(DATASETS)}")
        unknown = [e for e in self.embeddings if e not in _GRID_EMBEDDINGS]
        if unknown:
            raise ALRunnerError(
                f"unknown embedding {unknown[0]!r}; a sweep takes {', '.join(_GRID_EMBEDDINGS)} "
                "(your own features: al-runner run --embedding-file)"
            )
        for key in ("datasets", "embeddings"):
            values = getattr(self, key)
            if len(set(values)) != len(values):
                raise ALRunnerError(f"{key} repeat a value: {values}")
        # strategy names, seeds, learner, rounds, labels per round, ... as al-runner run checks
        whole = replace(self.template, dataset=self.datasets[0], strategies=list(self.strategies),
                        seeds=list(self.seeds)).validate()  # fmt: skip
        self.strategies, self.seeds = whole.strategies, whole.seeds
        for key, table in (
            ("data_roots", self.data_roots),
            ("class_lists", self.class_lists),
            ("dataset_options", self.dataset_options),
        ):
            extra = sorted(set(table) - set(self.datasets))
            if extra:
                raise ALRunnerError(f"{key} names datasets not in the grid: {extra}")
        for name, options in self.dataset_options.items():
            unknown = sorted(set(options) - set(_DATASET_OPTIONS))
            if unknown:
                raise ALRunnerError(
                    f"dataset_options.{name}: unknown {unknown}; known: "
                    f"{', '.join(_DATASET_OPTIONS)}"
                )
            wrong = sorted(set(options) - set(DATASETS[name].options))
            if wrong:
                users = [n for n, e in DATASETS.items() if wrong[0] in e.options]
                raise ALRunnerError(
                    f"dataset_options.{name}: --{wrong[0].replace('_', '-')} does not apply to "
                    f"{name!r}, only to {', '.join(users)}"
                )
        running = set().union(*(stage_names(n) for n in self.strategies))
        extra = sorted(set(self.template.strategy_options) - running)
        if extra:
            raise ALRunnerError(f"strategy_options names strategies not in the grid: {extra}")
        g = float(self.gpus_per_run)
        if not (0 < g <= 1 or (g > 1 and g.is_integer())):
            raise ALRunnerError(
                f"gpus_per_run must be a fraction of one GPU or a whole number, got {g}"
            )
        if self.retries < 0:
            raise ALRunnerError(f"retries must be >= 0, got {self.retries}")
        for d in self.datasets:
            for e in self.embeddings:  # the cells' own settings (embedding, dataset options)
                self.run_config(RunSpec(d, self.strategies[0], e, self.seeds[0]), ".").validate()
        known = {f.name for f in fields(_embed_config())} - {"dataset", "method", "epochs"}
        extra = sorted(set(self.embedding_options) - known)
        if extra:
            raise ALRunnerError(f"unknown embedding_options {extra}; known: {sorted(known)}")
        for name, options in self.template.strategy_options.items():
            get_strategy(name, **options)  # an unknown parameter errors here, not in a worker
        return self

    def runs(self) -> list[RunSpec]:
        """Every cell of the grid, dataset-major."""
        return [
            RunSpec(d, s, e, seed)
            for d in self.datasets
            for e in self.embeddings
            for seed in self.seeds
            for s in self.strategies
        ]

    def run_config(self, spec: RunSpec, embedding_dir: str | os.PathLike) -> RunConfig:
        """The :class:`al_runner.config.RunConfig` of one run: the template with the cell."""
        from al_runner.strategies import stage_names

        stages = stage_names(spec.strategy)
        return replace(
            self.template,
            dataset=spec.dataset,
            strategies=[spec.strategy],
            seeds=[spec.seed],
            embedding=spec.embedding,
            embedding_dir=str(embedding_dir),
            data_root=self.data_roots.get(spec.dataset),
            class_list=self.class_lists.get(spec.dataset),
            **self.dataset_options.get(spec.dataset, {}),
            strategy_options={
                k: v for k, v in self.template.strategy_options.items() if k in stages
            },
        )


@dataclass
class SweepResult:
    """What a sweep produced."""

    curves: xr.Dataset
    """The merged curves (NaN where a run failed before finishing)."""
    failed: dict[str, str]
    """Run name -> its last error, for runs that failed after every retry."""
    skipped: int
    """Runs already finished before this sweep started."""
    seconds: float


def execute_run(config: Any, out: str) -> dict[str, Any]:
    """Run (or resume) one grid cell into ``out``; the function each Ray task calls."""
    from al_runner.loop import run_experiment

    curves = run_experiment(config, out, progress=False)
    return {"accuracy": curves["accuracy"].to_numpy().ravel().tolist()}


def _embed_config() -> type:
    from al_runner.embeddings import EmbedConfig

    return EmbedConfig


def build_embedding(config: Any, options: dict[str, Any] | None = None) -> str:
    """Train (or find) the SSL encoder and feature cache of ``config``'s dataset and method.

    ``options`` are further :class:`al_runner.embeddings.EmbedConfig` fields.
    """
    from al_runner.datasets import load_dataset
    from al_runner.embeddings import checkpoint_path, ssl_features
    from al_runner.loop import set_threads

    set_threads(config.threads)
    data = load_dataset(config.dataset, config.data_root, **config.dataset_options())
    ssl_features(
        data, config.embedding, config.embedding_dir, epochs=config.embedding_epochs,
        device=config.device, progress=False, **(options or {}),
    )  # fmt: skip
    return str(checkpoint_path(config.embedding_dir, data.name, config.embedding))


def _run_task(runner: Callable[[Any, str], Any], config: Any, out: str, *ready: Any) -> Any:
    """Ray task body of a run; ``ready`` are the embeddings it waited for (unused)."""
    return runner(config, out)


def start_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Connect to Ray: a new local instance on 127.0.0.1 (``address=None``) or a cluster.

    Returns whether this call started Ray (and should shut it down). An already initialised
    Ray session is reused as it is.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
        from ray._private import ray_constants
    except ImportError as exc:
        raise ALRunnerError("sweeps need Ray: pip install 'palm-bayes[sweep]'") from exc
    if address is not None:
        _check_reachable(address)
    if ray.is_initialized():
        return False
    common = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address is None:
        # Ray enables token authentication on a new local instance and says so on every start;
        # the instance stays authenticated, the notice is dropped (a sweep shows its own bar)
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
            logging.ERROR
        )
        # Ray's single-node mode: every Ray server binds to 127.0.0.1 only. The processes Ray
        # starts read the variable; this process read it when ray was imported.
        env_before = os.environ.get(_LOCAL_ONLY)
        flag_before = ray_constants.ENABLE_RAY_CLUSTER
        os.environ[_LOCAL_ONLY], ray_constants.ENABLE_RAY_CLUSTER = "0", False
        try:
            for attempt in (1, 2):  # Ray gives its raylet 30 s to start: a busy machine may not
                try:
                    ray.init(
                        address="local", num_cpus=num_cpus or os.cpu_count(),
                        object_store_memory=512 * 1024**2, _node_ip_address="127.0.0.1",
                        **common,
                    )  # fmt: skip
                    break
                except Exception as exc:  # Ray raises a bare Exception on a startup timeout
                    ray.shutdown()
                    if attempt == 2:
                        raise ALRunnerError(
                            f"could not start a local Ray instance ({exc}); is the machine "
                            "overloaded? rerun the command (finished runs are kept)"
                        ) from exc
        finally:
            ray_constants.ENABLE_RAY_CLUSTER = flag_before
            if env_before is None:
                os.environ.pop(_LOCAL_ONLY, None)
            else:
                os.environ[_LOCAL_ONLY] = env_before
    else:
        try:
            ray.init(address=address, **common)
        except (ConnectionError, RuntimeError) as exc:
            raise ALRunnerError(f"cannot connect to the Ray cluster at {address}: {exc}") from exc
    return True


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast when nothing listens at ``HOST:PORT`` (Ray itself retries for minutes)."""
    import socket

    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto" and the like: Ray resolves them (and fails fast when there is none)
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ALRunnerError(
            f"no Ray cluster answers at {address} ({exc}); start one with `ray start --head` "
            "or leave out --address for a local instance"
        ) from exc


def _finished_rounds(spec: RunSpec, config: Any, results: Path) -> int:
    """Rounds a run has finished, from its state file; a state of other settings is an error."""
    from al_runner.state import RunState, state_path

    path = state_path(spec.path(results))
    if not path.exists():
        return 0
    try:
        state = RunState.load(path, config)
    except ALRunnerError as exc:
        raise ALRunnerError(
            f"{spec.name}: {exc} (the results folder {results} holds runs of another grid)"
        ) from exc
    run = state.run(spec.strategy, spec.seed)
    return run.rounds if run else 0


def _rounds_now(spec: RunSpec, results: Path) -> list[float]:
    """Accuracies a (possibly running) run has saved so far; [] when unreadable."""
    from al_runner.state import RunState, state_path

    try:
        run = RunState.read(state_path(spec.path(results))).run(spec.strategy, spec.seed)
    except ALRunnerError:
        return []
    return list(run.accuracy) if run else []


def _resources(grid: SweepGrid, cluster: dict[str, float]) -> tuple[dict, dict]:
    """Ray options of a run and of an embedding task."""
    from al_runner.learners import LEARNERS

    shared = grid.template
    has_gpu = cluster.get("GPU", 0) > 0
    if shared.device == "cuda" and not has_gpu:
        raise ALRunnerError("device = 'cuda' but the Ray cluster has no GPU")
    use_gpu = has_gpu and shared.device != "cpu"
    image_learner = not LEARNERS[shared.learner].uses_features
    run = {"num_cpus": shared.threads, "num_gpus": grid.gpus_per_run if use_gpu and image_learner
           else 0}  # fmt: skip
    embed = {"num_cpus": shared.threads, "num_gpus": 1 if use_gpu else 0}
    if cluster.get("CPU", 0) < shared.threads:
        raise ALRunnerError(
            f"each run asks for {shared.threads} CPU(s) but the cluster has {cluster.get('CPU', 0)}"
        )
    return run, embed


#: Prefix of the error of a run that Ray's own machinery lost (not the run's code).
SYSTEM_FAILURE = "Ray system failure: "


def _system_errors(ray: Any) -> tuple[type, ...]:
    """Ray's exceptions for a lost raylet, node, worker process or object (not a task's bug)."""
    names = ("LocalRayletDiedError", "NodeDiedError", "WorkerCrashedError", "RaySystemError",
             "ObjectLostError", "OwnerDiedError")  # fmt: skip
    return tuple(getattr(ray.exceptions, n) for n in names if hasattr(ray.exceptions, n))


def _error_text(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)
    if cause is not None and not isinstance(cause, type(exc)):
        return f"{type(cause).__name__}: {cause}"
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def run_sweep(
    grid: SweepGrid,
    out: str | os.PathLike,
    *,
    results: str | os.PathLike | None = None,
    address: str | None = None,
    max_concurrent: int | None = None,
    progress: bool = True,
    runner: Callable[[Any, str], Any] = execute_run,
) -> SweepResult:
    """Run every cell of ``grid`` on Ray, then merge the runs into the curves file ``out``.

    Parameters
    ----------
    grid : SweepGrid
    out : path
        Merged curves netCDF (the curves contract), written atomically at the end.
    results : path, optional
        Folder of the per-run curves and resume states (default ``<out stem>-runs`` beside
        ``out``). On a cluster it must be a path every node sees (a shared filesystem).
    address : str, optional
        Ray address (``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``); default a local instance.
    max_concurrent : int, optional
        Most runs in flight at once (default: as many as the cluster's resources allow).
    progress : bool
        Show a progress bar of rounds, with runs done / running / failed and the best curve.
    runner : callable
        ``runner(config, out)`` executed by each task (default :func:`execute_run`).

    Returns
    -------
    SweepResult
    """
    t0 = time.perf_counter()
    grid.validate()
    out = Path(out).resolve()
    if out.suffix.lower() not in (".nc", ".nc4"):
        raise ALRunnerError(f"--out must be a netCDF file ending in .nc, got {out}")
    results = Path(results).resolve() if results else out.with_name(out.stem + "-runs")
    embed_dir = Path(grid.embedding_dir).resolve() if grid.embedding_dir else results / "embeddings"
    specs = grid.runs()
    configs = {spec: grid.run_config(spec, embed_dir).validate() for spec in specs}
    done_before = {spec for spec in specs if _finished_rounds(spec, configs[spec], results)
                   == grid.template.rounds and spec.path(results).exists()}  # fmt: skip
    todo = [spec for spec in specs if spec not in done_before]
    if max_concurrent is not None and max_concurrent < 1:
        raise ALRunnerError(f"--max-concurrent must be >= 1, got {max_concurrent}")
    failed: dict[str, str] = {}
    if todo:
        failed = _dispatch(grid, todo, configs, results, address, max_concurrent, progress,
                           runner, n_done=len(done_before))  # fmt: skip
        lost = [spec for spec in todo if failed.get(spec.name, "").startswith(SYSTEM_FAILURE)]
        if lost and address is None:
            # a Ray system process of the local instance died (a raylet, a dashboard agent):
            # every run it took down kept its saved rounds, so restart Ray once and resume them
            print(
                f"al-runner: the local Ray instance lost a system process; {len(lost)} run(s) "
                "stopped with it. Restarting Ray once and resuming them from their saved rounds.",
                file=sys.stderr,
            )
            again = _dispatch(grid, lost, configs, results, address, max_concurrent, progress,
                              runner, n_done=len(done_before))  # fmt: skip
            for spec in lost:
                failed.pop(spec.name)
            failed.update(again)
        for name, error in failed.items():
            if error.startswith(SYSTEM_FAILURE):
                failed[name] = error + "; re-running the same command resumes from saved rounds"
    curves = merge_runs(grid, results, failed=failed)
    from al_runner.curves_out import write_curves

    write_curves(curves, out)
    return SweepResult(curves, failed, len(done_before), time.perf_counter() - t0)


def _dispatch(
    grid: SweepGrid,
    todo: list[RunSpec],
    configs: dict[RunSpec, Any],
    results: Path,
    address: str | None,
    max_concurrent: int | None,
    progress: bool,
    runner: Callable[[Any, str], Any],
    n_done: int,
) -> dict[str, str]:
    """Submit the runs (and the embeddings they need) to Ray and wait for all of them."""
    started = start_ray(address)
    import ray

    try:
        run_opts, embed_opts = _resources(grid, ray.cluster_resources())
        retry = {"max_retries": grid.retries, "retry_exceptions": True}
        task, embed_task = ray.remote(_run_task), ray.remote(build_embedding)
        embeds: dict[tuple[str, str], Any] = {}
        for spec in todo:
            key = (spec.dataset, spec.embedding)
            if spec.embedding in _SSL and key not in embeds:
                embeds[key] = embed_task.options(
                    name=f"embed:{spec.dataset}/{spec.embedding}", **embed_opts, **retry
                ).remote(configs[spec], grid.embedding_options)
        pending = list(todo)
        inflight: dict[Any, RunSpec] = {}
        failed: dict[str, str] = {}
        finished: dict[RunSpec, list[float]] = {}
        bar = _Progress(grid, todo, n_done, results, enabled=progress)
        try:
            while pending or inflight:
                while pending and (max_concurrent is None or len(inflight) < max_concurrent):
                    spec = pending.pop(0)
                    key = (spec.dataset, spec.embedding)
                    deps = [embeds[key]] if key in embeds else []
                    ref = task.options(name=spec.name, **run_opts, **retry).remote(
                        runner, configs[spec], str(spec.path(results)), *deps
                    )
                    inflight[ref] = spec
                ready, _ = ray.wait(list(inflight), num_returns=1, timeout=1.0)
                for ref in ready:
                    spec = inflight.pop(ref)
                    try:
                        ray.get(ref)
                        finished[spec] = _rounds_now(spec, results)
                    except ray.exceptions.RayError as exc:
                        system = isinstance(exc, _system_errors(ray))
                        failed[spec.name] = (SYSTEM_FAILURE if system else "") + _error_text(exc)
                bar.update(inflight.values(), finished, failed)
        finally:
            bar.close()
    finally:
        if started:
            ray.shutdown()
    return failed


class _Progress:
    """A tqdm bar of saved rounds with runs done / active / failed and the best finished curve.

    Only the state files of runs in flight are read at each update; a run's count is frozen
    once it leaves the flight.
    """

    def __init__(
        self, grid: SweepGrid, todo: list[RunSpec], n_done: int, results: Path, enabled: bool
    ) -> None:
        self.grid, self.n_done, self.results = grid, n_done, results
        self.bar = None
        self.rounds = {s: len(_rounds_now(s, results)) for s in todo} if enabled else {}
        if enabled:
            from tqdm.auto import tqdm

            total = (len(todo) + n_done) * grid.template.rounds
            self.bar = tqdm(total=total, initial=self.saved(), desc="sweep", unit="round",
                            dynamic_ncols=True)  # fmt: skip

    def saved(self) -> int:
        return self.n_done * self.grid.template.rounds + sum(self.rounds.values())

    def update(
        self, running: Any, finished: dict[RunSpec, list[float]], failed: dict[str, str]
    ) -> None:
        if self.bar is None:
            return
        running = list(running)
        for spec in running:
            self.rounds[spec] = len(_rounds_now(spec, self.results))
        for spec, accuracy in finished.items():
            self.rounds[spec] = len(accuracy)
        self.bar.update(self.saved() - self.bar.n)
        best = max(finished.items(), key=lambda kv: kv[1][-1] if kv[1] else -1, default=None)
        post = {"done": self.n_done + len(finished), "active": len(running),
                "failed": len(failed)}  # fmt: skip
        if best is not None and best[1]:
            spec = best[0]
            post["best"] = f"{spec.dataset}/{spec.embedding}/{spec.strategy} {best[1][-1]:.3f}"
        self.bar.set_postfix(post, refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def merge_runs(
    grid: SweepGrid, results: str | os.PathLike, failed: dict[str, str] | None = None
) -> xr.Dataset:
    """Merge the per-run curves files of ``grid`` in ``results`` into one curves Dataset.

    Cells of runs that never finished a round are NaN; ``attrs["complete"]`` says whether every
    run finished, and ``attrs["failed_runs"]`` names the failures.
    """
    results = Path(results)
    runs = grid.runs()
    coords = {
        "dataset": list(grid.datasets), "strategy": list(grid.strategies),
        "embedding": list(grid.embeddings), "seed": np.asarray(grid.seeds, dtype=np.int64),
        "step": np.arange(grid.template.rounds),
    }  # fmt: skip
    shape = tuple(len(v) for v in coords.values())
    arrays: dict[str, np.ndarray] = {}
    last_attrs: dict[str, Any] = {}
    complete = True
    for spec in runs:
        path = spec.path(results)
        if not path.exists():
            complete = False
            continue
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            part = ds.load()
        complete &= bool(part.attrs.get("complete", 0))
        last_attrs = dict(part.attrs)
        cell = (
            grid.datasets.index(spec.dataset), grid.strategies.index(spec.strategy),
            grid.embeddings.index(spec.embedding), grid.seeds.index(spec.seed),
        )  # fmt: skip
        for name, var in part.data_vars.items():
            values = var.to_numpy().reshape(-1)
            full = arrays.setdefault(name, np.full(shape if "step" in var.dims else shape[:-1],
                                                   np.nan))  # fmt: skip
            if "step" in var.dims:
                full[(*cell, slice(0, values.size))] = values
            else:
                full[cell] = values[0]
    if not arrays:
        raise ALRunnerError(f"no run of the grid has finished a round in {results}")
    merged = xr.Dataset(
        {name: (_CURVE_DIMS if a.ndim == 5 else _CURVE_DIMS[:-1], a) for name, a in arrays.items()},
        coords=coords,
    )
    if merged["n_test"].notnull().all():
        merged["n_test"] = merged["n_test"].astype(np.int64)
    keep = ("learner", "epochs", "labels_per_round", "initial_size", "initial", "rounds",
            "device", "versions")  # fmt: skip
    merged.attrs = {k: last_attrs[k] for k in keep if k in last_attrs}
    merged.attrs.update(
        created_by="al_runner sweep",
        date=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        complete=int(complete and not failed),
        failed_runs="; ".join(sorted(failed or {})),
        grid=json.dumps(grid.to_dict()),
    )
    return merged
