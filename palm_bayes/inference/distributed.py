"""Independent fits spread over Ray tasks: the sampling stage, chunk by chunk, the same draws.

:func:`palm_bayes.fit` prepares, calibrates and assembles in this process either way; with
``workers=K`` only the sampling stage runs elsewhere: the prepared curves are cut into ``K``
contiguous chunks and each chunk is sampled by :func:`~palm_bayes.inference.sampling.
sample_curves` in its own Ray task, curve ``k`` with seed ``seed + k`` as in one process. Every
curve's draws depend only on its own data and seed, so the fit is the same draw for draw.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from palm_bayes.data.prepare import CurveStats
from palm_bayes.errors import PalmInputError
from palm_bayes.inference.sampling import sample_curves

__all__ = ["sample_on_ray"]


def _ray() -> Any:
    """The Ray module, connected: the session of this process, else a new local instance."""
    try:
        import ray
    except ImportError as exc:
        raise PalmInputError(
            "fit(workers=...) spreads the fits over Ray, which is not installed: "
            "pip install 'palm-bayes[sweep]' (or fit without workers)"
        ) from exc
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    return ray


def _chunk(stats: CurveStats, lo: int, hi: int) -> CurveStats:
    """The prepared curves ``lo:hi`` (what :func:`sample_curves` reads of them)."""
    return dataclasses.replace(
        stats, datas=stats.datas[lo:hi], constants=stats.constants.isel(curve=slice(lo, hi))
    )


def _sample_chunk(stats: CurveStats, priors: dict, seed: int, options: dict) -> tuple:
    return sample_curves(stats, priors, seed=seed, **options)


def sample_on_ray(
    stats: CurveStats,
    priors: dict,
    *,
    workers: int,
    seed: int,
    progress: bool,
    **options: Any,
) -> tuple[xr.Dataset, xr.Dataset, xr.Dataset]:
    """:func:`~palm_bayes.inference.sampling.sample_curves` over ``workers`` Ray tasks.

    ``options`` are the other keywords of ``sample_curves`` (``chains``, ``draws``, ``tune``,
    ``target_accept``, ``cores``, ``method``). Returns what ``sample_curves`` returns for all
    curves, in their order.
    """
    if isinstance(workers, bool) or not isinstance(workers, int | np.integer) or workers < 1:
        raise PalmInputError(f"workers must be a positive number of Ray tasks, got {workers!r}")
    ray = _ray()
    n = len(stats.datas)
    bounds = np.unique(np.linspace(0, n, min(workers, n) + 1).astype(int))
    task = ray.remote(_sample_chunk)
    options = options | {"progress": False}
    refs = [
        task.remote(_chunk(stats, int(lo), int(hi)), priors, seed + int(lo), options)
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    order = {ref: k for k, ref in enumerate(refs)}
    results: list[Any] = [None] * len(refs)
    pending = list(refs)
    with tqdm(total=n, desc="PALM fits on Ray", unit="curve", disable=not progress) as bar:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            k = order[done[0]]
            results[k] = ray.get(done[0])
            bar.update(int(bounds[k + 1] - bounds[k]))
    return tuple(xr.concat([r[i] for r in results], "curve") for i in range(3))  # type: ignore[return-value]
