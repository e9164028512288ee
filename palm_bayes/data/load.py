"""One entry point for learning curves: every input becomes the canonical curves Dataset.

The canonical Dataset (the contract shared with ``al_runner``) has dims
``(dataset, strategy, embedding, seed, step)``, data variables ``budget`` (cumulative labels,
float, NaN where a curve is shorter) and ``accuracy`` (a fraction in [0, 1], NaN likewise), and
optionally ``n_test`` (test-set size) over the id dims. A *curve* is one combination of
``dataset, strategy, embedding``; its seeds are replicate runs.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from palm_bayes.data.contract import (
    CURVE_DIMS,
    ID_DIMS,
    check_structure,
    read_netcdf,
)
from palm_bayes.errors import PalmInputError

__all__ = [
    "load_curves",
    "curves_to_frame",
]

_DEFAULTS = {"dataset": "default", "strategy": "default", "embedding": "default", "seed": 0}
_REFERENCE_CSV = {"method": "strategy", "cumulative_budget": "budget", "score": "accuracy"}
MIN_BUDGETS = 4


def load_curves(
    source: Any,
    *,
    percent: bool | None = None,
    labels_per_round: float | None = None,
    n_test: int | None = None,
    min_budgets: int = MIN_BUDGETS,
) -> xr.Dataset:
    """Read learning curves from any supported source into the canonical Dataset.

    Parameters
    ----------
    source : xarray.Dataset, pandas.DataFrame, or path
        A long table (``.csv`` or DataFrame) with columns ``budget, accuracy`` and any of
        ``dataset, strategy, embedding, seed, n_test``; the reference PALM advisor's CSV
        (``dataset, method, cumulative_budget, score``); a netCDF file (``.nc``) or Dataset in
        the curves contract; or a reference PALM run folder of ``<method>_<seed>/``
        sub-folders holding ``plot_episode_yvalues.npy`` (accuracy per round, percent).
    percent : bool, optional
        Whether accuracies are percentages. By default a curve whose values all exceed 1.5 is
        read as percent and one whose values all lie in [0, 1] as fractions (float noise above
        1 is clipped with a warning); a curve with values on both sides, and an input mixing
        percent and fraction curves, are rejected.
    labels_per_round : float, optional
        Labels per AL round ``b``, stored in ``attrs``; required for run folders without
        budgets (``budget = (round + 1) * labels_per_round``).
    n_test : int, optional
        Test-set size of every accuracy (overrides an ``n_test`` column).
    min_budgets : int
        Fewest distinct budgets a curve may have (4 for an independent fit of four
        parameters; a hierarchical fit borrows strength and accepts 2).

    Returns
    -------
    xarray.Dataset
        Canonical curves (see the module docstring).

    Raises
    ------
    PalmInputError
        With a one-line message naming the curve and the problem.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"strategy": ["random"] * 4, "budget": [10, 20, 30, 40],
    ...                       "accuracy": [0.5, 0.6, 0.65, 0.7]})
    >>> load_curves(frame).accuracy.dims
    ('dataset', 'strategy', 'embedding', 'seed', 'step')
    """
    attrs: dict[str, Any] = {}
    if isinstance(source, xr.Dataset):
        frame, attrs = _frame_from_dataset(source)
    elif isinstance(source, pd.DataFrame):
        frame = source.copy()
    elif isinstance(source, str | os.PathLike):
        frame, attrs = _read_path(Path(source), labels_per_round)
    else:
        raise PalmInputError(
            f"cannot read curves from a {type(source).__name__}; give a path, DataFrame or Dataset"
        )
    if n_test is not None:
        if not n_test > 0:
            raise PalmInputError(f"n_test must be a positive number, got {n_test!r}")
        frame["n_test"] = n_test
    if labels_per_round is not None:
        if not (np.isfinite(labels_per_round) and labels_per_round > 0):
            raise PalmInputError(f"labels_per_round must be positive, got {labels_per_round!r}")
        attrs["labels_per_round"] = float(labels_per_round)
    both = [(ref, canon) for ref, canon in _REFERENCE_CSV.items() if {ref, canon} <= set(frame)]
    if both:
        ref, canon = both[0]
        raise PalmInputError(
            f"the curves table has both {canon!r} and the reference name {ref!r} for the same "
            "column; keep one of them"
        )
    frame = _validate_frame(frame.rename(columns=_REFERENCE_CSV), percent, min_budgets)
    # the unit of the first reading survives later loads of the (fraction) curves
    attrs.setdefault("accuracy_unit", "percent" if frame.attrs.get("percent") else "fraction")
    return _frame_to_dataset(frame, attrs)


def curves_to_frame(curves: xr.Dataset) -> pd.DataFrame:
    """The curves as a long table, one row per observed point."""
    names = ["budget", "accuracy"] + (["n_test"] if "n_test" in curves else [])
    frame = curves[names].to_dataframe().reset_index()
    frame = frame.dropna(subset=["budget", "accuracy"], how="all")
    return frame.drop(columns=[c for c in ("step",) if c in frame])


# --------------------------------------------------------------------------- readers
def _read_path(path: Path, labels_per_round: float | None) -> tuple[pd.DataFrame, dict]:
    if not path.exists():
        raise PalmInputError(f"no such file or folder: {path}")
    if path.is_dir():
        from palm_bayes.data.reference import is_palm_output, read_palm_outputs

        if is_palm_output(path):
            frame = read_palm_outputs(path, labels_per_round)
            return frame, {"source": str(path)} | frame.attrs.get("palm_model", {})
        return _read_run_folder(path, labels_per_round), {"source": str(path)}
    suffix = path.suffix.lower()
    if suffix == ".csv":
        try:
            frame = pd.read_csv(path)
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise PalmInputError(f"{path} is not a readable CSV: {exc}") from exc
        return frame, {"source": str(path)}
    if suffix in (".nc", ".nc4", ".netcdf"):
        return _frame_from_dataset(read_netcdf(path))
    raise PalmInputError(f"unknown curves format {suffix!r} for {path}; use .csv, .nc or a folder")


def _read_run_folder(folder: Path, labels_per_round: float | None) -> pd.DataFrame:
    """Read ``<method>_<seed>/plot_episode_yvalues.npy`` runs of the reference PALM code."""
    runs = sorted(folder.glob("*/plot_episode_yvalues.npy"))
    if not runs:
        raise PalmInputError(
            f"{folder} holds no <method>_<seed>/plot_episode_yvalues.npy run folders"
        )
    rows = []
    for file in runs:
        method, _, seed = file.parent.name.rpartition("_")
        if not method:
            method, seed = file.parent.name, "0"
        accuracy = _read_npy(file)
        xfile = file.with_name("plot_episode_xvalues.npy")
        episodes = np.arange(accuracy.size, dtype=float)
        if xfile.exists():
            x = _read_npy(xfile)
            # the reference AL runner stores episode indices 0, 1, 2, ... there, not budgets
            if x.size and np.array_equal(x, np.arange(x.size)):
                if labels_per_round is None:
                    raise PalmInputError(
                        f"{xfile} holds episode indices 0..{x.size - 1}, not label budgets; "
                        "pass labels_per_round= (--labels-per-round) to place episode e at "
                        "(e + 1) * labels_per_round labels"
                    )
                episodes, x = x, None
            budget = x
        elif labels_per_round is None:
            raise PalmInputError(
                f"{file.parent} has accuracies but no budgets (plot_episode_xvalues.npy); "
                "pass labels_per_round= to place round r at (r + 1) * labels_per_round labels"
            )
        else:
            budget = None
        if budget is None:
            budget = (episodes + 1) * float(labels_per_round)
        if budget.size != accuracy.size:
            raise PalmInputError(
                f"{file.parent}: {budget.size} budgets but {accuracy.size} accuracies"
            )
        seed_value: Any = int(seed) if seed.isdigit() else seed
        rows.append(
            pd.DataFrame(
                {"strategy": method, "seed": seed_value, "budget": budget, "accuracy": accuracy}
            )
        )
    return pd.concat(rows, ignore_index=True)


def _read_npy(path: Path) -> np.ndarray:
    """A numeric ``.npy`` array, flattened; anything else is a clear input error."""
    try:
        values = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise PalmInputError(f"{path} is not a numeric .npy array ({exc})") from None
    if not isinstance(values, np.ndarray) or values.dtype.kind not in "biuf":
        raise PalmInputError(f"{path} is not a numeric .npy array")
    return values.astype(float).ravel()


def _frame_from_dataset(ds: xr.Dataset) -> tuple[pd.DataFrame, dict]:
    check_structure(ds)
    names = ["budget", "accuracy"] + (["n_test"] if "n_test" in ds else [])
    frame = ds[names].to_dataframe().reset_index()
    frame = frame[~(frame["budget"].isna() & frame["accuracy"].isna())]
    return frame.drop(columns=[c for c in ("step",) if c in frame]), dict(ds.attrs)


# --------------------------------------------------------------------------- validation
def _label(key: tuple) -> str:
    return " ".join(f"{d}={v}" for d, v in zip(CURVE_DIMS, key, strict=True))


def _validate_frame(
    frame: pd.DataFrame, percent: bool | None, min_budgets: int = MIN_BUDGETS
) -> pd.DataFrame:
    missing = [c for c in ("budget", "accuracy") if c not in frame]
    if missing:
        raise PalmInputError(
            f"curves table lacks column(s) {missing}; it has {list(frame.columns)}"
        )
    for dim, default in _DEFAULTS.items():
        if dim not in frame:
            frame[dim] = default
    if frame.empty:
        raise PalmInputError("the curves table is empty")
    for dim in ID_DIMS:
        empty = frame[dim].isna().to_numpy() | (
            frame[dim].astype(object).map(str).str.strip() == ""
        )
        if empty.any():
            raise PalmInputError(
                f"column {dim!r} is empty in {int(empty.sum())} row(s) (first: row "
                f"{int(np.flatnonzero(empty)[0])}); every row needs a {dim} label"
            )
    for dim in CURVE_DIMS:
        frame[dim] = frame[dim].astype(object).map(str)
    for column in ("budget", "accuracy"):
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = ~np.isfinite(values.to_numpy(dtype=float))
        if bad.any():
            row = frame[bad].iloc[0]
            key = tuple(row[d] for d in CURVE_DIMS)
            raise PalmInputError(
                f"{_label(key)} seed={row['seed']}: {column} is {row[column]} "
                f"(NaN, inf or not a number) in {int(bad.sum())} row(s)"
            )
        frame[column] = values.astype(float)
    if (frame["budget"] <= 0).any():
        row = frame[frame["budget"] <= 0].iloc[0]
        key = tuple(row[d] for d in CURVE_DIMS)
        what = "negative budget" if row["budget"] < 0 else "budget 0 (no labels)"
        raise PalmInputError(
            f"{_label(key)}: {what} {row['budget']:g}; PALM's budgets are labels acquired so "
            "far and must be positive (drop the zero-label point)"
        )
    if "n_test" in frame:
        n = pd.to_numeric(frame["n_test"], errors="coerce")
        if (~(n > 0)).any():
            raise PalmInputError(f"n_test must be positive, found {n[~(n > 0)].iloc[0]!r}")

    duplicated = frame.duplicated(list(ID_DIMS) + ["budget"], keep=False)
    if duplicated.any():
        row = frame[duplicated].iloc[0]
        key = tuple(row[d] for d in CURVE_DIMS)
        raise PalmInputError(
            f"{_label(key)} seed={row['seed']}: {int(duplicated.sum())} duplicate rows "
            f"(budget {row['budget']:g} appears more than once)"
        )
    steps = frame.groupby(list(ID_DIMS), sort=False)["budget"].diff()
    if (steps <= 0).any():
        row = frame[steps <= 0].iloc[0]
        key = tuple(row[d] for d in CURVE_DIMS)
        raise PalmInputError(
            f"{_label(key)} seed={row['seed']}: budgets must increase within a seed, "
            f"but {row['budget']:g} follows a larger one"
        )

    frame["accuracy"] = _to_fraction(frame, percent)
    distinct = frame.groupby(list(CURVE_DIMS))["budget"].nunique()
    if (distinct < min_budgets).any():
        key = distinct[distinct < min_budgets].index[0]
        raise PalmInputError(
            f"{_label(key)}: only {distinct[key]} distinct budget(s); PALM needs at least "
            f"{min_budgets} to fit four parameters (a hierarchical fit, which borrows strength "
            "from other curves, accepts 2)"
        )
    return frame


#: Values this little above 1 (or 100 for percent) are float noise: clipped with a warning.
FLOAT_EXCESS = 1e-6
#: A curve is read as percent when every one of its values exceeds this.
PERCENT_FLOOR = 1.5


def _to_fraction(frame: pd.DataFrame, percent: bool | None) -> pd.Series:
    """Accuracies as fractions, by a rule that never guesses on a mixed curve.

    Without ``percent``, a curve whose values all lie in [0, 1] (up to float noise) is a
    fraction, one whose values all exceed 1.5 is percent; a curve with values on both sides
    (``67`` typed among fractions) is rejected, naming it and the values, and so is an input
    that mixes percent and fraction curves.
    """
    acc = frame["accuracy"]
    groups = [frame[d] for d in CURVE_DIMS]
    if percent is None:
        curve_max = acc.groupby(groups).max()
        curve_min = acc.groupby(groups).min()
        fraction = curve_max <= 1 + FLOAT_EXCESS
        is_percent = curve_min > PERCENT_FLOOR
        unclear = ~(fraction | is_percent)
        if unclear.any():
            key = unclear[unclear].index[0]
            values = acc[(frame[list(CURVE_DIMS)] == pd.Series(key, index=CURVE_DIMS)).all(axis=1)]
            high = values[values > 1 + FLOAT_EXCESS].unique()[:3].tolist()
            low = values[values <= PERCENT_FLOOR].unique()[:3].tolist()
            raise PalmInputError(
                f"{_label(key)}: accuracies are neither all fractions nor all percent (values "
                f"above 1: {high}; values at or below {PERCENT_FLOOR}: {low}); fix the typo or "
                "pass percent=True / percent=False (--percent / --fraction)"
            )
        if is_percent.any() and not is_percent.all():
            pct = [_label(k) for k in is_percent[is_percent].index[:3]]
            frac = [_label(k) for k in is_percent[~is_percent].index[:3]]
            raise PalmInputError(
                f"mixed percent and fraction accuracies: {pct} look like percent, {frac} like "
                "fractions; pass percent=True or percent=False"
            )
        percent = bool(is_percent.all())
    frame.attrs["percent"] = bool(percent)
    scaled = acc / 100.0 if percent else acc
    noise = (scaled > 1) & (scaled <= 1 + FLOAT_EXCESS)
    if noise.any():
        warnings.warn(
            f"{int(noise.sum())} accuracy value(s) exceed {'100' if percent else '1'} by float "
            f"noise (at most {float(scaled[noise].max()) - 1:.1e}); clipped to "
            f"{'100%' if percent else '1'}",
            stacklevel=4,
        )
        scaled = scaled.clip(upper=1.0)
    bad = (scaled < 0) | (scaled > 1)
    if bad.any():
        row = frame[bad].iloc[0]
        key = tuple(row[d] for d in CURVE_DIMS)
        unit = "percent" if percent else "a fraction"
        raise PalmInputError(
            f"{_label(key)}: accuracy {row['accuracy']:g} is outside the range of {unit}"
        )
    return scaled


def _frame_to_dataset(frame: pd.DataFrame, attrs: dict) -> xr.Dataset:
    frame = frame.sort_values(list(ID_DIMS) + ["budget"], kind="stable")
    frame["step"] = frame.groupby(list(ID_DIMS), sort=False).cumcount()
    indexed = frame.set_index(list(ID_DIMS) + ["step"])
    ds = indexed[["budget", "accuracy"]].to_xarray()
    if "n_test" in frame:
        n_test = frame.groupby(list(ID_DIMS))["n_test"].median().to_xarray()
        ds["n_test"] = n_test
    ds = ds.transpose(*ID_DIMS, "step")
    ds = ds.assign_coords({d: ds[d].to_numpy().astype(str) for d in CURVE_DIMS})
    # provenance attrs survive as plain str/int/float (netCDF readers give numpy scalars)
    ds.attrs = {
        k: v.item() if isinstance(v, np.generic) else v
        for k, v in attrs.items()
        if isinstance(v, str | int | float | np.integer | np.floating)
    }
    return ds
