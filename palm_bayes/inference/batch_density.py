"""Per-curve log density and gradient of the batched model, compiled once.

:func:`batch_density` turns the PyMC model of
:func:`palm_bayes.model.batched.create_batched_palm_model` into one PyTensor function of an
unconstrained parameter matrix ``theta`` (rows: curves or draws, columns: the value variables)
and the padded data rows, returning each row's log density (priors, Jacobians and
likelihood) and its gradient. Rows are independent, so one call evaluates a whole batch of
curves, or many draws of many curves (rows of the data repeated). The function is compiled
once per prior configuration and process (numba, like nutpie's sampler), and its Hessian is
taken by central differences of the gradient (a symbolic one compiles for minutes).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from palm_bayes.data.prepare import model_data
from palm_bayes.model.batched import BATCH_DATA, create_batched_palm_model, stack_model_data
from palm_bayes.model.single import FORECAST_ONLY_PRIORS, priors_to_json

__all__ = ["BatchDensity", "batch_density"]

_CACHE: dict[str, BatchDensity] = {}

#: Step of the central differences of the gradient (unconstrained scale).
HESSIAN_STEP = 1e-4


@dataclass(frozen=True)
class BatchDensity:
    """Compiled functions of the batched model (rows independent).

    Attributes
    ----------
    value_names : tuple of str
        The unconstrained value variables, in the column order of ``theta``.
    free_names : tuple of str
        The model's free variables (constrained), in the same order.
    """

    value_names: tuple[str, ...]
    free_names: tuple[str, ...]
    _logp_grad: Any
    _constrained: Any

    def logp_grad(self, theta: np.ndarray, data: Mapping[str, np.ndarray]):
        """Log density ``(rows,)`` and gradient ``(rows, p)`` of each row."""
        lp, grad = self._logp_grad(
            np.ascontiguousarray(theta, dtype=float), *(data[n] for n in BATCH_DATA)
        )
        return np.asarray(lp), np.asarray(grad)

    def logp(self, theta: np.ndarray, data: Mapping[str, np.ndarray]) -> np.ndarray:
        """Log density of each row, shape ``(rows,)``."""
        return self.logp_grad(theta, data)[0]

    def hessian(self, theta: np.ndarray, data: Mapping[str, np.ndarray]) -> np.ndarray:
        """Hessian ``(rows, p, p)`` by central differences of the gradient (symmetrised)."""
        rows, p = theta.shape
        eye = np.eye(p) * HESSIAN_STEP
        shifted = np.concatenate([theta[:, None, :] + eye, theta[:, None, :] - eye], axis=1)
        repeated = {k: np.repeat(v, 2 * p, axis=0) for k, v in data.items()}
        _, grad = self.logp_grad(shifted.reshape(rows * 2 * p, p), repeated)
        grad = grad.reshape(rows, 2, p, p)
        hess = (grad[:, 0] - grad[:, 1]) / (2 * HESSIAN_STEP)
        return 0.5 * (hess + np.swapaxes(hess, 1, 2))

    def constrained(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """The free variables on their own scale (e.g. ``noise`` from ``noise_log__``)."""
        values = self._constrained(np.ascontiguousarray(theta, dtype=float))
        return dict(zip(self.free_names, (np.asarray(v) for v in values), strict=True))


def batch_density(priors: Mapping[str, Any]) -> BatchDensity:
    """The compiled :class:`BatchDensity` for these priors (compiled on first use)."""
    model_priors = {k: v for k, v in priors.items() if k not in FORECAST_ONLY_PRIORS}
    key = priors_to_json(model_priors)
    if key not in _CACHE:
        _CACHE[key] = _compile(model_priors)
    return _CACHE[key]


def _template_batch() -> dict[str, np.ndarray]:
    budget = np.array([1.0, 2.0, 3.0, 4.0])
    data = model_data(np.tile(budget, 2), np.array([0.5, 0.6, 0.65, 0.7] * 2), 1.0, 1000.0)
    return stack_model_data([data, data])


def _compile(priors: Mapping[str, Any]) -> BatchDensity:
    import pytensor
    import pytensor.tensor as pt
    from pymc.pytensorf import compile as compile_pymc
    from pytensor.graph.replace import graph_replace

    model = create_batched_palm_model(_template_batch(), priors)
    values = list(model.value_vars)
    theta = pt.matrix("theta")
    data_inputs = [
        pt.matrix(name) if np.ndim(model[name].get_value()) == 2 else pt.vector(name)
        for name in BATCH_DATA
    ]
    replace = {v: theta[:, i] for i, v in enumerate(values)}
    replace |= {model[name]: var for name, var in zip(BATCH_DATA, data_inputs, strict=True)}
    terms = model.logp(sum=False, jacobian=True)
    lp = pt.add(*[t if t.ndim == 1 else t.sum(axis=tuple(range(1, t.ndim))) for t in terms])
    lp = graph_replace(lp, replace, strict=False)
    grad = pt.grad(lp.sum(), theta)
    free = list(model.free_RVs)
    constrained = []
    for i, rv in enumerate(free):
        transform = model.rvs_to_transforms.get(rv)
        col = theta[:, i]
        constrained.append(col if transform is None else transform.backward(col, *rv.owner.inputs))
    # exact IEEE arithmetic, as for nutpie: the same numbers whether compiled or cached
    flags = {"on_unused_input": "ignore", "numba__fastmath": False}
    with warnings.catch_warnings(), pytensor.config.change_flags(**flags), model:
        warnings.simplefilter("ignore")
        # PyMC's compile inside the model (check_bounds=False): no parameter assertions
        f_all = compile_pymc([theta, *data_inputs], [lp, grad], mode="NUMBA")
        f_con = compile_pymc([theta], constrained, mode="NUMBA")
    return BatchDensity(
        value_names=tuple(v.name for v in values),
        free_names=tuple(rv.name for rv in free),
        _logp_grad=f_all,
        _constrained=f_con,
    )
