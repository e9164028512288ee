"""The curves contract: the one data structure ``al_runner`` writes and ``palm_bayes`` reads.

A curves Dataset has the id dims :data:`ID_DIMS` (a *curve* is one combination of
:data:`CURVE_DIMS`; its seeds are replicate runs) plus :data:`STEP_DIM` (the AL round, 0-based),
the data variables :data:`BUDGET` (cumulative labels) and :data:`ACCURACY` (a fraction in
[0, 1]), NaN where a curve is shorter, optionally :data:`N_TEST` over the id dims and the
per-round :data:`PROXIES`, and provenance ``attrs``. This module holds the names, the atomic
netCDF write and the guarded read, the structural check and the pilot-prefix cut; it imports
nothing of ``palm_bayes`` but its errors and version, and no sampler, so ``al_runner`` can use
it alone.

Examples
--------
>>> import numpy as np
>>> import xarray as xr
>>> shape = (1, 1, 1, 1, 4)
>>> curves = xr.Dataset(
...     {BUDGET: (ID_DIMS + (STEP_DIM,), np.arange(1.0, 5.0).reshape(shape) * 10),
...      ACCURACY: (ID_DIMS + (STEP_DIM,), np.linspace(0.5, 0.8, 4).reshape(shape))})
>>> truncate(curves, 0.5)[BUDGET].count().item()
2
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import xarray as xr

from palm_bayes import __version__
from palm_bayes.errors import PalmInputError

__all__ = [
    "ACCURACY",
    "BUDGET",
    "CURVE_DIMS",
    "ID_DIMS",
    "MAX_NETCDF_BYTES",
    "N_TEST",
    "PROXIES",
    "STEP_DIM",
    "VERSION",
    "__version__",
    "atomic_write",
    "check_structure",
    "provenance",
    "read_netcdf",
    "save_curves",
    "truncate",
]

#: The version of palm_bayes, for the provenance of files (``palm_bayes.__version__``).
VERSION = __version__
#: The dims that identify one run: a curve (``dataset, strategy, embedding``) and its seed.
ID_DIMS = ("dataset", "strategy", "embedding", "seed")
#: The dims that identify a curve (seeds are its replicate runs).
CURVE_DIMS = ("dataset", "strategy", "embedding")
#: The AL round index, 0-based.
STEP_DIM = "step"
#: Cumulative labelled samples at a step.
BUDGET = "budget"
#: Test accuracy as a fraction in [0, 1].
ACCURACY = "accuracy"
#: Test-set size over the id dims (optional; a binomial noise floor).
N_TEST = "n_test"
#: The reference's proxy names, in its order (``PAPER_PROXY_COLUMNS``), recorded every round.
PROXIES = (
    "empirical_risk_reduction",
    "label_discrepancy",
    "feature_discrepancy",
    "geometric_coverage",
    "model_complexity",
    "confidence_term",
)
#: Largest netCDF content (declared bytes of all variables) read into memory.
MAX_NETCDF_BYTES = 2**30
_NETCDF_ENGINES = {b"CDF\x01": "scipy", b"CDF\x02": "scipy", b"\x89HDF": "h5netcdf"}


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def provenance(**extra: Any) -> dict[str, Any]:
    """Provenance attrs for a curves file: the package version plus ``extra``."""
    return {"palm_bayes_version": VERSION, **extra}


def check_structure(curves: xr.Dataset) -> xr.Dataset:
    """Check that ``curves`` has the contract's variables and no dims outside it.

    Values (finite, increasing budgets, fractions) are checked by
    :func:`palm_bayes.data.load.load_curves`; this is the part a writer must get right.

    Raises
    ------
    PalmInputError
        Naming the missing variables or the foreign dims.
    """
    missing = [v for v in (BUDGET, ACCURACY) if v not in curves]
    if missing:
        raise PalmInputError(f"curves Dataset lacks the variable(s) {missing}")
    extra = [d for d in curves[ACCURACY].dims if d not in ID_DIMS + (STEP_DIM,)]
    if extra:
        raise PalmInputError(
            f"curves Dataset has dims {extra} outside the contract {list(ID_DIMS) + [STEP_DIM]}"
        )
    return curves


def save_curves(
    curves: xr.Dataset,
    path: str | os.PathLike,
    encoding: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """Write curves to netCDF atomically (a temporary file renamed over ``path``).

    ``encoding`` defaults to gzip for every data variable.
    """
    if encoding is None:
        encoding = {name: {"compression": "gzip"} for name in curves.data_vars}
    encoding = {k: dict(v) for k, v in encoding.items()}
    return atomic_write(
        path, lambda tmp: curves.to_netcdf(tmp, engine="h5netcdf", encoding=encoding)
    )


def read_netcdf(path: str | os.PathLike, max_bytes: int = MAX_NETCDF_BYTES) -> xr.Dataset:
    """Load a netCDF-4 (HDF5) or netCDF-3 file whose declared size is sane.

    The declared sizes of its variables are checked before anything is read, so a small
    file that claims gigabytes is refused instead of exhausting memory; a corrupt file is a
    one-line :class:`PalmInputError` without the HDF5 library's tracebacks.
    """
    path = Path(path)
    with path.open("rb") as handle:
        magic = handle.read(4)
    engine = _NETCDF_ENGINES.get(magic)
    if engine is None:
        raise PalmInputError(f"{path} is not a netCDF file (neither netCDF-4/HDF5 nor netCDF-3)")
    options = {"phony_dims": "sort"} if engine == "h5netcdf" else {}
    hook = sys.unraisablehook
    sys.unraisablehook = lambda _: None  # h5py reports failed clean-ups of a corrupt file
    # the objects alive now are not the reader's: frozen, the collection below visits only
    # those made while reading (not the caller's whole heap: fast in a big process)
    freeze = gc.get_freeze_count() == 0  # never thaw what the caller froze
    if freeze:
        gc.freeze()
    failure = None
    try:
        with xr.open_dataset(path, engine=engine, **options) as lazy:
            declared = sum(v.size * v.dtype.itemsize for v in lazy.variables.values())
            if declared > max_bytes:
                failure = (
                    f"{path} declares {declared / 2**30:.1f} GiB of data, more than the "
                    f"{max_bytes / 2**30:.1f} GiB a curves file may hold; refusing to load it"
                )
            else:
                return lazy.load()
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file to the user
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        failure = f"{path} is not a readable netCDF curves file: {message}"
    finally:
        gc.collect()  # the reader's half-open objects go now, while their noise is muted
        if freeze:
            gc.unfreeze()
        sys.unraisablehook = hook
    raise PalmInputError(failure)


def truncate(
    curves: xr.Dataset,
    fraction: float | None = None,
    *,
    seeds: int | None = None,
    steps: int | None = None,
) -> xr.Dataset:
    """The pilot prefix of every curve: what was seen by a fraction of its final budget.

    Parameters
    ----------
    curves : xarray.Dataset
        Curves contract.
    fraction : float, optional
        Keep the points whose budget is at most ``fraction`` times the curve's final budget
        (its largest observed budget over all seeds); None keeps every budget.
    seeds : int, optional
        Keep only the first ``seeds`` seeds with data of each curve (in seed order).
    steps : int, optional
        Keep only the first ``steps`` AL rounds (``step < steps``) of every run.

    Returns
    -------
    xarray.Dataset
        The same shape as ``curves``, with the cut points NaN in every variable over
        ``step`` (variables without ``step``, such as ``n_test``, are kept).
    """
    seen = curves[ACCURACY].notnull() & curves[BUDGET].notnull()
    keep = seen
    if fraction is not None:
        final = curves[BUDGET].where(seen).max(("seed", STEP_DIM))
        keep = keep & (curves[BUDGET] <= fraction * final)
    if steps is not None:
        keep = keep & (curves[STEP_DIM] < steps)
    if seeds is not None:
        has = seen.any(STEP_DIM)
        keep = keep & has & (has.cumsum("seed") <= seeds)
    out = curves.copy()
    for name, var in curves.data_vars.items():
        if STEP_DIM in var.dims:
            out[name] = var.where(keep)
    return out
