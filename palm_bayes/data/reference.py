"""Files of the reference PALM code: ``PALM.py`` output folders and ALDA's CSVs.

``PALM.py --out_dir DIR`` writes ``palm_params.json`` (dataset, method, ``budget_size``, the
least-squares ``A_max, delta, alpha, beta``), optionally ``palm_params.csv``, and ``y_avg.npy`` /
``y_fit.npy`` (the seed-averaged curve and its fit, one value per episode). ALDA
(``deep-al/tools/alda/advisor.py``) writes ``alda_fits.csv`` and ``alda_advice.csv``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from palm_bayes.data.contract import atomic_write
from palm_bayes.errors import PalmInputError

__all__ = [
    "is_palm_output",
    "read_palm_outputs",
    "read_reference_fits",
    "write_alda_csv",
    "ALDA_FIT_COLUMNS",
    "ALDA_ADVICE_COLUMNS",
]

#: Columns of ALDA's ``alda_fits.csv``, then ours.
ALDA_FIT_COLUMNS = [
    "dataset", "method", "points_used", "budget_size", "observed_final_score", "fit_status",
    "a_max", "delta", "alpha", "beta", "rmse", "feasible", "b_abs", "deployment_window",
    "window_over_b_abs", "cost_competitive", "risky",
]  # fmt: skip
#: Columns of ALDA's ``alda_advice.csv``, then ours.
ALDA_ADVICE_COLUMNS = [
    "dataset", "score_scale", "target", "delta_target", "eta", "selected_method",
    "selected_b_abs", "selected_deployment_window", "b_min", "decision_reason",
]  # fmt: skip


def _output_folders(path: Path) -> list[Path]:
    if (path / "palm_params.json").is_file():
        return [path]
    return sorted(p.parent for p in path.glob("*/palm_params.json"))


def is_palm_output(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a ``PALM.py`` output folder or a folder of them."""
    path = Path(path)
    return path.is_dir() and bool(_output_folders(path))


def _meta(folder: Path) -> dict[str, Any]:
    try:
        meta = json.loads((folder / "palm_params.json").read_text())
    except (OSError, ValueError) as exc:
        raise PalmInputError(f"{folder / 'palm_params.json'} is not readable JSON: {exc}") from exc
    missing = [k for k in ("dataset", "method") if k not in meta]
    if missing:
        raise PalmInputError(f"{folder / 'palm_params.json'} lacks {missing}")
    return meta


def _budget_size(folder: Path, meta: dict, labels_per_round: float | None) -> float:
    size = meta.get("budget_size") or labels_per_round
    if size is None or not float(size) > 0:
        raise PalmInputError(
            f"{folder} was fitted in episode mode (palm_params.json has no budget_size): pass "
            "labels_per_round= (--labels-per-round) to place episode e at e * labels_per_round"
        )
    return float(size)


def read_palm_outputs(
    path: str | os.PathLike, labels_per_round: float | None = None
) -> pd.DataFrame:
    """The seed-averaged curves (``y_avg.npy``) of ``PALM.py`` output folders, long format.

    Episode ``e = 1..N`` sits at ``e * budget_size`` labels, as the reference places it. Each
    folder is one curve with a single "seed" (the reference keeps only the average).
    """
    rows = []
    for folder in _output_folders(Path(path)):
        meta = _meta(folder)
        curve = folder / "y_avg.npy"
        if not curve.is_file():
            raise PalmInputError(f"{folder} has palm_params.json but no y_avg.npy")
        try:
            accuracy = np.asarray(np.load(curve, allow_pickle=False), dtype=float).ravel()
        except (OSError, ValueError) as exc:
            raise PalmInputError(f"{curve} is not a numeric .npy array: {exc}") from exc
        size = _budget_size(folder, meta, labels_per_round)
        rows.append(
            pd.DataFrame(
                {
                    "dataset": str(meta["dataset"]),
                    "strategy": str(meta["method"]),
                    "seed": 0,
                    "budget": np.arange(1, accuracy.size + 1) * size,
                    "accuracy": accuracy,
                }
            )
        )
    if not rows:
        raise PalmInputError(f"{path} holds no PALM.py output (palm_params.json + y_avg.npy)")
    frame = pd.concat(rows, ignore_index=True)
    if frame.duplicated(["dataset", "strategy", "budget"]).any():
        raise PalmInputError(f"{path}: two PALM.py outputs share a dataset and method")
    return frame


def read_reference_fits(
    path: str | os.PathLike, labels_per_round: float | None = None
) -> xr.Dataset:
    """The reference's least-squares fits, laid out like :func:`palm_bayes.fit_least_squares`.

    ``path``: a ``PALM.py`` output folder, a folder of them, or ALDA's ``alda_fits.csv``.

    ``A_max`` is converted to a fraction when the curve is in percent (its ``y_avg`` above 1.5),
    so the parameters describe the same curve ``palm_bayes`` reads.
    """
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".csv":
        return _read_alda_fits(path)
    records = []
    for folder in _output_folders(path):
        meta = _meta(folder)
        y = (
            np.load(folder / "y_avg.npy", allow_pickle=False)
            if (folder / "y_avg.npy").is_file()
            else None
        )
        scale = 100.0 if y is not None and np.nanmax(y) > 1.5 else 1.0
        records.append(
            {
                "dataset": str(meta["dataset"]),
                "strategy": str(meta["method"]),
                "embedding": "none",
                "A_max": float(meta["A_max"]) / scale,
                "delta": float(meta["delta"]),
                "alpha": float(meta["alpha"]),
                "beta": float(meta["beta"]),
                "b": _budget_size(folder, meta, labels_per_round),
                "success": True,
                "at_bound": False,
            }
        )
    if not records:
        raise PalmInputError(f"{path} holds no PALM.py output (palm_params.json)")
    return pd.DataFrame(records).set_index(["dataset", "strategy", "embedding"]).to_xarray()


def _read_alda_fits(path: Path) -> xr.Dataset:
    """ALDA's ``alda_fits.csv`` (percent ``a_max``) as least-squares fits."""
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise PalmInputError(f"{path} is not a readable CSV: {exc}") from exc
    need = {"dataset", "method", "a_max", "delta", "alpha", "beta", "budget_size"}
    if missing := sorted(need - set(frame.columns)):
        raise PalmInputError(f"{path} is not ALDA's alda_fits.csv: it lacks {missing}")
    frame = frame.dropna(subset=["a_max", "delta", "alpha", "beta"])
    a_max = frame["a_max"].astype(float)
    return (
        pd.DataFrame(
            {
                "dataset": frame["dataset"].astype(str),
                "strategy": frame["method"].astype(str),
                "embedding": "none",
                "A_max": np.where(a_max > 1.5, a_max / 100, a_max),
                "delta": frame["delta"].astype(float),
                "alpha": frame["alpha"].astype(float),
                "beta": frame["beta"].astype(float),
                "b": frame["budget_size"].astype(float),
                "success": True,
                "at_bound": False,
            }
        )
        .set_index(["dataset", "strategy", "embedding"])
        .to_xarray()
    )


def write_alda_csv(
    folder: str | os.PathLike,
    reference: pd.DataFrame,
    lsq: xr.Dataset,
    advice: Any,
    dim: str = "strategy",
) -> tuple[Path, Path]:
    """Write ``alda_fits.csv`` and ``alda_advice.csv`` with ALDA's columns, then the posterior's.

    ``reference`` is :func:`palm_bayes.decisions.advise.alda_least_squares` output (the reference's
    answer, on the least-squares fits ``lsq``); ``advice`` the
    :class:`~palm_bayes.decisions.advise.Advice`
    of ``rule="alda"``, whose ``p_pick``, ``p_risky``, ... (per method) and verdict (per
    dataset) are added as extra columns.
    """
    folder = Path(folder)
    keys = [c for c in reference.columns if c in lsq.dims]
    others = [k for k in keys if k != dim]
    params = lsq[["A_max", "delta", "alpha", "beta", "rmse", "b"]].to_dataframe().reset_index()
    posterior = advice.table.to_dataframe().reset_index()
    fits = reference.merge(params, on=keys, how="left").merge(posterior, on=keys, how="left")
    fits = fits.rename(columns={dim: "method", "A_max": "a_max", "b": "budget_size"})
    fits["fit_status"] = "ok"
    ours = [c for c in ("selected", "p_feasible", "p_competitive", "p_pick", "p_fallback_pick",
                        "p_risky", "labels_median", "window_median") if c in fits]  # fmt: skip
    extra_ids = [k for k in others if k != "dataset"]
    fit_cols = [c for c in ALDA_FIT_COLUMNS if c in fits] + extra_ids + ours
    picks = reference[reference["selected"]].rename(
        columns={dim: "selected_method", "b_abs": "selected_b_abs",
                 "deployment_window": "selected_deployment_window"}
    )  # fmt: skip
    attrs = advice.table.attrs
    picks = picks.assign(
        score_scale="fraction",
        target=attrs["target"],
        delta_target=attrs["target_tolerance"],
        eta=attrs["eta"],
        b_min=[
            reference.loc[
                (reference[others] == row[others]).all(axis=1) if others else slice(None), "b_abs"
            ].min()
            for _, row in picks.iterrows()
        ],
        decision_reason=np.where(
            picks["fallback"], "infeasible_fallback_highest_estimated_ceiling",
            "risk_aware_minimum_window_within_cost_competitive_set",
        ),
    )  # fmt: skip
    bayes = advice.recommendation.rename(
        columns={
            dim: "bayes_method",
            "probability": "bayes_probability",
            "verdict": "bayes_verdict",
        }
    )
    bayes_cols = ["bayes_method", "bayes_probability", "bayes_verdict"]
    picks = picks.merge(bayes[[*others, *bayes_cols]], on=others, how="left") if others else (
        picks.assign(**bayes.iloc[0][bayes_cols].to_dict())
    )  # fmt: skip
    advice_cols = [c for c in ALDA_ADVICE_COLUMNS if c in picks] + extra_ids + bayes_cols
    folder.mkdir(parents=True, exist_ok=True)
    return (
        atomic_write(folder / "alda_fits.csv", lambda t: fits[fit_cols].to_csv(t, index=False)),
        atomic_write(
            folder / "alda_advice.csv", lambda t: picks[advice_cols].to_csv(t, index=False)
        ),
    )
