"""Sweeps: a grid of datasets x strategies x embeddings x seeds, run as Ray tasks.

Each run (one dataset, strategy, embedding and seed) is one Ray task with declared resources,
so Ray packs the runs onto whatever the cluster has: a local instance bound to 127.0.0.1 by
default, or a cluster by address. A self-supervised embedding is trained once per (dataset,
embedding) by its own task, which the runs that need it wait for.

Every run writes its curve and resume state atomically after each round into a results folder
(:func:`al_runner.experiment.loop.run_experiment`), so a crashed worker, a killed driver or a lost
node
costs at most the round in progress: Ray retries the task (it resumes from its state), and a
sweep started again skips finished runs and resumes the others. The sweep then merges the runs
into one curves netCDF that :func:`palm_bayes.load_curves` reads.

The grid itself is :mod:`al_runner.sweep.grid`; starting Ray and reading its failures is
:mod:`al_runner.sweep.ray_session` (both re-exported here).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from al_runner.errors import ALRunnerError
from al_runner.experiment.config import SSL_EMBEDDINGS as _SSL
from al_runner.experiment.curves import CURVE_DIMS
from al_runner.sweep.grid import RunSpec, SweepGrid
from al_runner.sweep.ray_session import SYSTEM_FAILURE, error_text, start_ray, system_errors

__all__ = [
    "SYSTEM_FAILURE",
    "RunSpec",
    "SweepGrid",
    "SweepResult",
    "execute_run",
    "merge_runs",
    "run_sweep",
    "start_ray",
]


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
    from al_runner.experiment.loop import run_experiment

    curves = run_experiment(config, out, progress=False)
    return {"accuracy": curves["accuracy"].to_numpy().ravel().tolist()}


def build_embedding(config: Any, options: dict[str, Any] | None = None) -> str:
    """Train (or find) the SSL encoder and feature cache of ``config``'s dataset and method.

    ``options`` are further :class:`al_runner.embeddings.EmbedConfig` fields.
    """
    from al_runner.datasets import load_dataset
    from al_runner.embeddings import checkpoint_path, ssl_features
    from al_runner.experiment.loop import set_threads

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


def _finished_rounds(spec: RunSpec, config: Any, results: Path) -> int:
    """Rounds a run has finished, from its state file; a state of other settings is an error."""
    from al_runner.experiment.state import RunState, state_path

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
    from al_runner.experiment.state import RunState, state_path

    try:
        run = RunState.read(state_path(spec.path(results))).run(spec.strategy, spec.seed)
    except ALRunnerError:
        return []
    return list(run.accuracy) if run else []


def _resources(grid: SweepGrid, cluster: dict[str, float]) -> tuple[dict, dict]:
    """Ray options of a run and of an embedding task."""
    from al_runner.learners.models import LEARNERS

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
    from al_runner.experiment.curves import write_curves

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
                        system = isinstance(exc, system_errors(ray))
                        failed[spec.name] = (SYSTEM_FAILURE if system else "") + error_text(exc)
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
        {name: (CURVE_DIMS if a.ndim == 5 else CURVE_DIMS[:-1], a) for name, a in arrays.items()},
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
