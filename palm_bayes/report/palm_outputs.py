"""Write the reference's ``PALM.py`` output folders from palm_bayes fits.

``PALM.py --out_dir DIR --save_csv`` writes, per method, ``palm_params.json`` (keys
``dataset, model, method, episodes, mode, budget_size, A_max, delta, alpha, beta, run_files``),
``palm_params.csv`` (columns ``dataset, model, method, episodes, mode, budget_size, A_max,
delta, alpha, beta``), ``y_avg.npy`` (the seed-averaged accuracy per episode) and ``y_fit.npy``
(its least-squares PALM fit at episodes ``1..N``). :func:`write_palm_outputs` writes the same
files, one folder per curve, from the least-squares fits
(:func:`palm_bayes.fit_least_squares`), and adds the posterior medians and 90% intervals of a
Bayesian fit as extra keys and columns (``A_max_median``, ``A_max_lower``, ``A_max_upper``,
...) that the reference's tools ignore. :func:`palm_bayes.data.reference.read_reference_fits`
and :func:`palm_bayes.load_curves` read the folders back.

The reference fits on the episode index ``x = 1..N``; palm_bayes on ``x = B / b``. They are the
same curve when episode ``e`` is at ``e * b`` labels (how the reference, and the reader, place
them). When the first budget ``B_1`` is not ``b`` but the budgets still step by ``b``, the
written ``alpha`` is shifted by ``B_1 / b - 1`` so that the reference's formula on ``x = e``
gives the same curve; the reader then places episode ``e`` at ``e * b``, as the reference
does. The budgets themselves are kept in an extra key ``budgets``.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from palm_bayes.data.contract import atomic_write
from palm_bayes.data.prepare import curve_dims, iter_curves
from palm_bayes.errors import PalmInputError
from palm_bayes.model.curve import palm_curve

__all__ = ["PALM_JSON_KEYS", "PALM_CSV_COLUMNS", "posterior_medians", "write_palm_outputs"]

#: Keys of ``PALM.py``'s ``palm_params.json``, in its order.
PALM_JSON_KEYS = ("dataset", "model", "method", "episodes", "mode", "budget_size",
                  "A_max", "delta", "alpha", "beta", "run_files")  # fmt: skip
#: Columns of ``PALM.py``'s ``palm_params.csv``, in its order.
PALM_CSV_COLUMNS = ("dataset", "model", "method", "episodes", "mode", "budget_size",
                    "A_max", "delta", "alpha", "beta")  # fmt: skip
PARAMS = ("A_max", "delta", "alpha", "beta")
#: The reference's ``mode`` string: it fits on the episode index.
MODE = "PALM (episodes)"


def posterior_medians(idata: Any, hdi_prob: float = 0.9) -> xr.Dataset:
    """Posterior median and equal-tailed interval of the four PALM parameters, per curve.

    Returns
    -------
    xarray.Dataset
        ``A_max_median, A_max_lower, A_max_upper, delta_median, ...`` over the curve dims.
    """
    post = idata.posterior
    q = (1 - hdi_prob) / 2
    out = {}
    for name in PARAMS:
        draws = post[name]
        out[f"{name}_median"] = draws.median(("chain", "draw"))
        out[f"{name}_lower"] = draws.quantile(q, ("chain", "draw")).drop_vars("quantile")
        out[f"{name}_upper"] = draws.quantile(1 - q, ("chain", "draw")).drop_vars("quantile")
    return xr.Dataset(out)


def _folder_name(labels: dict[str, Any], varying: list[str]) -> str:
    text = "_".join(str(labels[d]) for d in varying) or "curve"
    return re.sub(r"[^A-Za-z0-9._=+-]", "-", text)


def _seed_mean(sub: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Budgets and the seed-mean accuracy at each (the reference's ``y_avg``)."""
    frame = pd.DataFrame(
        {
            "budget": sub["budget"].to_numpy().ravel(),
            "accuracy": sub["accuracy"].to_numpy().ravel(),
        }
    ).dropna()
    mean = frame.groupby("budget")["accuracy"].mean().sort_index()
    return mean.index.to_numpy(dtype=float), mean.to_numpy(dtype=float)


def write_palm_outputs(
    folder: str | os.PathLike,
    curves: xr.Dataset,
    lsq: xr.Dataset,
    posterior: xr.Dataset | None = None,
    *,
    percent: bool | None = None,
    model: str | None = None,
) -> list[Path]:
    """Write one ``PALM.py`` output folder per curve into ``folder``.

    Parameters
    ----------
    folder : path
        Parent folder; each curve goes to ``folder/<strategy>`` (with the dataset, embedding,
        ... labels that vary prefixed, e.g. ``cifar10_raw_margin``).
    curves : xarray.Dataset
        The canonical curves that were fitted (``y_avg`` is their seed mean per budget).
    lsq : xarray.Dataset
        :func:`palm_bayes.fit_least_squares` of ``curves`` (``A_max, delta, alpha, beta, b``).
    posterior : xarray.Dataset, optional
        :func:`posterior_medians` of a Bayesian fit: written as extra keys and columns.
    percent : bool, optional
        Write accuracies and ``A_max`` in percent, as the reference's runs record them.
        Default: the unit the curves were first read in (their ``accuracy_unit`` attr).
    model : str, optional
        The reference's ``model`` field (default: the ``model`` of the PALM.py outputs the
        curves were read from, else their ``learner`` attr, else ``"palm_bayes"``).

    Returns
    -------
    list of Path
        The folders written.
    """
    if percent is None:
        percent = curves.attrs.get("accuracy_unit") == "percent"
    scale = 100.0 if percent else 1.0
    model = model or str(curves.attrs.get("model", curves.attrs.get("learner", "palm_bayes")))
    dims = curve_dims(curves)
    varying = [d for d in dims if d != "strategy" and curves.sizes[d] > 1] + ["strategy"]
    folder = Path(folder)
    written = []
    for labels, sub in iter_curves(curves):
        fit = lsq.sel(labels)
        if not bool(fit["success"]):
            warnings.warn(f"{labels}: the least-squares fit failed; not written", stacklevel=2)
            continue
        budgets, y_avg = _seed_mean(sub)
        b = float(fit["b"])
        steps = np.diff(budgets)
        regular = steps.size > 0 and np.allclose(steps, b, rtol=1e-9, atol=1e-9 * b)
        shift = budgets[0] / b - 1.0 if regular else 0.0
        if not regular:
            warnings.warn(
                f"{labels}: budgets do not step by b = {b:g} labels, so the reference's episode "
                "index cannot place them; alpha is written on x = B / b and the budgets are "
                "in the extra key 'budgets'",
                stacklevel=2,
            )
        params = {name: float(fit[name]) for name in PARAMS}
        y_fit = palm_curve(budgets, **params, b=b) * scale
        dataset = str(labels.get("dataset", "dataset"))
        method = "_".join(str(labels[d]) for d in varying if d != "dataset") or "curve"
        meta: dict[str, Any] = {
            "dataset": dataset,
            "model": model,
            "method": method,
            "episodes": int(y_avg.size),
            "mode": MODE,
            "budget_size": b,
            "A_max": params["A_max"] * scale,
            "delta": params["delta"],
            "alpha": params["alpha"] + shift,
            "beta": params["beta"],
            "run_files": [],
            "budgets": budgets.tolist(),
            "source": "palm_bayes",
        }
        if posterior is not None:
            post = posterior.sel(labels)
            for key in posterior.data_vars:
                value = float(post[key])
                if key.startswith("A_max"):
                    value *= scale
                elif key.startswith("alpha"):
                    value += shift
                meta[key] = value
        out = folder / _folder_name(labels, varying)
        _write_folder(out, y_avg * scale, y_fit, meta)
        written.append(out)
    if not written:
        raise PalmInputError("no curve has a successful least-squares fit: nothing to write")
    return written


def _write_folder(out: Path, y_avg: np.ndarray, y_fit: np.ndarray, meta: dict[str, Any]) -> None:
    """One curve's folder: the two arrays, then the CSV and last the JSON (atomically each)."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "y_avg.npy", lambda t: _save_npy(t, y_avg))
    atomic_write(out / "y_fit.npy", lambda t: _save_npy(t, y_fit))
    row = {k: meta[k] for k in PALM_CSV_COLUMNS} | {
        k: v for k, v in meta.items() if k not in PALM_JSON_KEYS and k not in ("budgets",)
    }
    atomic_write(out / "palm_params.csv", lambda t: pd.DataFrame([row]).to_csv(t, index=False))
    text = json.dumps(meta, indent=2, allow_nan=True)
    atomic_write(out / "palm_params.json", lambda t: Path(t).write_text(text))


def _save_npy(path: str, values: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.save(handle, np.asarray(values, dtype=float))
