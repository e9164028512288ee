"""The PALM learning curve and its closed-form inverse, for numpy, xarray and PyTensor.

PALM (Machnio, Nielsen & Mehdipour Ghazi, ICCV 2025) models accuracy after ``B`` labels as::

    A(B) = A_max * (1 - (1 - delta) ** ((B / b + alpha) ** beta))

Writing ``lambda = -log(1 - delta)`` this is ``A_max * (1 - exp(-lambda * (B/b + alpha) ** beta))``,
which is evaluated here in log space (``log lambda + beta * log(B/b + alpha)``): near the
asymptote ``beta`` can be large while ``lambda`` underflows, and the direct form then gives
``0 * inf = NaN``. Before the onset (``B/b + alpha <= 0``) the curve is 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "palm_curve",
    "labels_for_accuracy",
    "labels_for_accuracy_log_lambda",
    "log_lambda",
    "palm_curve_log_lambda",
]


def backend(*values: Any):
    """Return ``pytensor.tensor`` when any value is a PyTensor variable, else numpy."""
    for value in values:
        if type(value).__module__.startswith("pytensor"):
            import pytensor.tensor as pt

            return pt
    return np


def _where(xp, condition, a, b):
    """``where`` that keeps xarray dims (numpy's drops them)."""
    if xp is np and any(type(v).__module__.startswith("xarray") for v in (condition, a, b)):
        import xarray as xr

        return xr.where(condition, a, b)
    return xp.where(condition, a, b)


def log_lambda(delta):
    """``log(-log(1 - delta))``, the log rate behind the coverage efficiency ``delta``."""
    xp = backend(delta)
    return xp.log(-xp.log1p(-delta))


def palm_curve_log_lambda(budget, A_max, log_lam, alpha, beta, b=1.0):  # noqa: N803
    """PALM accuracy with the rate given as ``log lambda`` (numerically safest form).

    Parameters
    ----------
    budget : array_like
        Cumulative number of labels ``B``.
    A_max, log_lam, alpha, beta : array_like
        Asymptote, log rate ``log(-log(1 - delta))``, early-stage offset and scalability.
    b : array_like, default 1.0
        Labels per AL round (normaliser of the budget).

    Returns
    -------
    array_like
        Accuracy, broadcast over the inputs (numpy, xarray or PyTensor, as given).
    """
    xp = backend(budget, A_max, log_lam, alpha, beta, b)
    shifted = budget / b + alpha
    # exp overflowing to inf is the right limit (coverage 1) for far-out draws
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        positive = xp.maximum(shifted, 0.0)
        log_z = log_lam + beta * xp.log(positive)
        coverage = -xp.expm1(-xp.exp(log_z))
    coverage = _where(xp, shifted > 0, coverage, 0.0)
    return A_max * coverage


def palm_curve(budget, A_max, delta, alpha, beta, b=1.0):  # noqa: N803
    """PALM accuracy ``A_max * (1 - (1 - delta) ** ((budget / b + alpha) ** beta))``.

    Works on numpy arrays, xarray objects (broadcast by dimension name) and PyTensor tensors.

    Examples
    --------
    >>> round(float(palm_curve(1000, A_max=0.9, delta=0.05, alpha=0.0, beta=1.0, b=100)), 4)
    0.3611
    """
    return palm_curve_log_lambda(budget, A_max, log_lambda(delta), alpha, beta, b)


def labels_for_accuracy(target, A_max, delta, alpha, beta, b=1.0):  # noqa: N803
    """Labels needed to reach ``target`` accuracy: the closed-form inverse of PALM.

    ``B(tau) = b * ((log(1 - tau / A_max) / log(1 - delta)) ** (1 / beta) - alpha)``.
    A target at or above ``A_max`` is unreachable and gives ``inf``; a target already met
    before the first label (possible when ``alpha > 0``) gives a negative number.

    Examples
    --------
    >>> B = labels_for_accuracy(0.5, A_max=0.9, delta=0.05, alpha=0.0, beta=1.0, b=100)
    >>> round(float(palm_curve(B, 0.9, 0.05, 0.0, 1.0, b=100)), 6)
    0.5
    """
    return labels_for_accuracy_log_lambda(target, A_max, log_lambda(delta), alpha, beta, b)


def labels_for_accuracy_log_lambda(target, A_max, log_lam, alpha, beta, b=1.0):  # noqa: N803
    """:func:`labels_for_accuracy` with the rate given as ``log lambda``."""
    xp = backend(target, A_max, log_lam, alpha, beta, b)
    ratio = target / A_max
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_needed = xp.log(-xp.log1p(-xp.minimum(ratio, 1.0)))
        shifted = xp.exp((log_needed - log_lam) / beta)
    labels = b * (shifted - alpha)
    return _where(xp, ratio >= 1, np.inf, labels)
