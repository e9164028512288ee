"""The independent PALM model of many curves at once: one PyMC model with a ``curve`` dim.

Each curve keeps its own parameters and its own data; nothing is pooled. The model is built
from the same pieces as :func:`palm_bayes.model.single.create_palm_model` (the same priors,
:func:`~palm_bayes.model.single.palm_from_identified`, :func:`~palm_bayes.model.single.palm_mean`
and the likelihood of :mod:`palm_bayes.model.likelihood`), so its log density of curve ``k`` is
the single-curve model's log density of curve ``k``. Curves have different numbers of budgets:
their per-budget statistics are padded to a common width and the padding is masked out of
the likelihood (padded slots hold harmless finite values, so gradients stay finite).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from palm_bayes.model.likelihood import masked_log_likelihood
from palm_bayes.model.single import (
    SAMPLED_PRIORS,
    merge_priors,
    palm_from_identified,
    palm_mean,
    sampled_variable,
)

__all__ = ["BATCH_DATA", "stack_model_data", "create_batched_palm_model"]

#: The per-curve arrays of a batch (``(curve, budget)`` matrices, then ``(curve,)`` vectors).
BATCH_DATA = (
    "x",
    "mean_accuracy",
    "n_seeds",
    "inv_n_test",
    "sq_dev",
    "budget_mask",
    "rep_mask",
    "x_first",
    "x_mid",
)


def stack_model_data(datas: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Pad the :func:`~palm_bayes.data.prepare.model_data` of many curves into matrices.

    Every curve gets at least one padded slot (``x`` = its last budget, two seeds, seed
    mean 0.5, a small sum of squares, masked out), so padded terms are finite.
    """
    width = max(len(d["x"]) for d in datas) + 1
    n = len(datas)
    out = {
        "x": np.ones((n, width)),
        "mean_accuracy": np.full((n, width), 0.5),
        "n_seeds": np.full((n, width), 2.0),
        "inv_n_test": np.zeros((n, width)),
        "sq_dev": np.full((n, width), 1e-4),
        "budget_mask": np.zeros((n, width)),
        "rep_mask": np.zeros((n, width)),
        "x_first": np.array([float(d["x_first"]) for d in datas]),
        "x_mid": np.array([float(d["x_mid"]) for d in datas]),
    }
    for k, d in enumerate(datas):
        m = len(d["x"])
        out["x"][k] = d["x"][-1]
        out["x"][k, :m] = d["x"]
        out["mean_accuracy"][k, :m] = d["mean_accuracy"]
        out["n_seeds"][k, :m] = d["n_seeds"]
        out["inv_n_test"][k, :m] = d["inv_n_test"]
        out["budget_mask"][k, :m] = 1.0
        rep = np.asarray(d["rep_index"], dtype=int)
        out["rep_mask"][k, rep] = 1.0
        out["sq_dev"][k, rep] = d["rep_sq_dev"]
    return out


def create_batched_palm_model(batch: Mapping[str, np.ndarray], priors: Mapping | None = None):
    """Build the PyMC model of independent PALM curves over a ``curve`` dim.

    Parameters
    ----------
    batch : mapping
        Output of :func:`stack_model_data`; the arrays become ``pm.Data``.
    priors : mapping, optional
        Overrides of :data:`~palm_bayes.model.single.DEFAULT_PRIORS` (as for one curve).

    Returns
    -------
    pymc.Model
        Free variables of :data:`~palm_bayes.model.single.SAMPLED_PRIORS` over ``curve`` and a
        per-curve potential ``likelihood`` (the masked likelihood of each curve's budgets).
    """
    p = merge_priors(priors)
    n = len(batch["x_first"])
    # no parameter checks: a proposal far out gives a log density of -inf or NaN (weight 0),
    # not an exception
    with pm.Model(coords={"curve": np.arange(n)}, check_bounds=False) as model:
        data = {name: pm.Data(name, batch[name]) for name in BATCH_DATA}
        z_mid, z_head, log_slope, eta, noise = (
            sampled_variable(name, p[name], dims="curve") for name in SAMPLED_PRIORS
        )
        palm = palm_from_identified(z_mid, z_head, log_slope, eta, data["x_first"], data["x_mid"])
        col = (slice(None), None)
        mu = palm_mean(
            data["x"], palm["A_max"][col], palm["log_lambda"][col], palm["beta"][col],
            palm["alpha"][col],
        )  # fmt: skip
        ll = masked_log_likelihood(
            mu,
            noise[col],
            data["mean_accuracy"],
            data["n_seeds"],
            data["inv_n_test"],
            data["sq_dev"],
            data["budget_mask"],
            data["rep_mask"],
            p["noise"]["floor"],
        )
        pm.Potential("likelihood", pt.as_tensor_variable(ll), dims="curve")
    return model
