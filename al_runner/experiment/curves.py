"""The curves contract an experiment writes: assemble the Dataset from a state, write netCDF."""

from __future__ import annotations

import datetime as _dt
import os
from typing import Any

import numpy as np
import xarray as xr

from al_runner.experiment.config import RunConfig
from al_runner.experiment.proxies import PROXIES
from al_runner.experiment.state import RunState

__all__ = ["CURVE_DIMS", "assemble_curves", "run_metadata", "versions", "write_curves"]

CURVE_DIMS = ("dataset", "strategy", "embedding", "seed", "step")


def versions() -> str:
    """Versions of al_runner and the libraries that shape its curves, for the attrs."""
    from palm_bayes.data.contract import VERSION

    parts = [f"al_runner/palm_bayes {VERSION}"]
    for mod in ("torch", "torchvision", "faiss", "numpy"):
        try:
            parts.append(f"{mod} {__import__(mod).__version__}")
        except (ImportError, AttributeError):
            pass
    return ", ".join(parts)


def run_metadata(
    config: RunConfig, *, epochs: int, n_test: int, device: str, source: str
) -> dict[str, Any]:
    """The provenance attributes of an experiment's curves."""
    return {
        "dataset": config.dataset,
        "learner": config.learner,
        "epochs": int(epochs),
        "labels_per_round": float(config.labels_per_round),  # a float: palm_bayes keeps float attrs
        "initial_size": int(config.initial_size),
        "initial": config.initial,
        "rounds": int(config.rounds),
        "n_test": int(n_test),
        "embedding": config.embedding,
        "device": device,
        "versions": versions(),
        "source": source,
    }


def assemble_curves(state: RunState, config: RunConfig, meta: dict[str, Any]) -> xr.Dataset:
    """The curves Dataset of ``state`` (NaN for rounds not run yet).

    Parameters
    ----------
    state : RunState
    config : RunConfig
        Validated settings (strategies, seeds and rounds give the shape).
    meta : dict
        Attributes from :func:`run_metadata`.

    Returns
    -------
    xarray.Dataset
        Dims ``(dataset, strategy, embedding, seed, step)``; ``budget``, ``accuracy``,
        ``n_test``, per-round seconds and (with ``config.proxies``) the proxies.
    """
    shape = (1, len(config.strategies), 1, len(config.seeds), config.rounds)
    names = ["budget", "accuracy", "select_seconds", "train_seconds"]
    if config.proxies:
        names += [*PROXIES, "proxy_seconds"]
    # label-free accuracy and stop-rule numbers, when a run recorded them
    names += sorted({k for r in state.runs.values() for k in r.proxies} - set(names))
    arrays = {v: np.full(shape, np.nan) for v in names}
    complete = True
    for i, name in enumerate(config.strategies):
        for j, seed in enumerate(config.seeds):
            run = state.run(name, seed)
            complete &= (run.rounds if run else 0) == config.rounds
            if run is None:
                continue
            for var, arr in arrays.items():
                values = run.series(var)
                if len(values):
                    arr[0, i, 0, j, : len(values)] = values
    ds = xr.Dataset(
        {v: (CURVE_DIMS, a) for v, a in arrays.items()},
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
    from palm_bayes.data.contract import atomic_write

    encoding = {
        "budget": {"dtype": "int32", "_FillValue": -1},
        "accuracy": {"compression": "gzip"},
    }
    atomic_write(path, lambda tmp: curves.to_netcdf(tmp, engine="h5netcdf", encoding=encoding))
