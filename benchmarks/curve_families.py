"""Parametric learning-curve families of the literature, fitted by least squares.

The baselines that learning-curve extrapolation studies compare against (Viering & Loog 2022,
"The shape of learning curves: a review", Table 1; Mohr, Viering, Loog & van Rijn 2022, LCDB):
the curve forms below, written for an accuracy that rises with the budget ``x`` (LCDB writes
them for the error rate; the free signs make the two equivalent), fitted to a pilot's
seed-mean curve by (bounded, multi-start) least squares as LCDB's extrapolation code does.

Each fit also gives a Gaussian predictive distribution, so that proper scores can be computed:
its mean is the fitted curve, its variance the residual variance of the fit plus the
parameter uncertainty carried to ``x`` by the delta method (covariance ``s^2 (J'J)^-1`` of the
least-squares estimate). That is all a pilot-only least-squares fit knows about its own error;
it knows nothing about the form being wrong far out, which is what these baselines measure.

    fit = fit_family("pow4", budgets, accuracy)
    mean, sd = fit.predict(2000)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

__all__ = ["FAMILIES", "Family", "FamilyFit", "fit_family"]

#: Function evaluations per start (a bound on the cost of a fit that will not converge).
MAX_NFEV = 200


def _pow3(x, a, b, c):
    return a - b * x ** (-c)


def _pow4(x, a, b, c, d):
    return a - b * (x + d) ** (-c)


def _mmf4(x, a, b, c, d):
    xd = x**d
    return (a * b + c * xd) / (b + xd)


def _wbl4(x, a, b, c, d):
    return c - b * np.exp(-a * x**d)


def _exp3(x, a, b, c):
    return c - a * np.exp(-b * x)


def _logpower3(x, a, b, c):
    return a / (1.0 + (x / np.exp(b)) ** c)


def _palm4(x, a_max, delta, alpha, beta):
    return a_max * (1.0 - (1.0 - delta) ** ((x + alpha) ** beta))


@dataclass(frozen=True)
class Family:
    """A curve form ``y = f(x, *params)``, its bounds and its starting points.

    ``starts(x, y)`` returns candidate starting vectors derived from the data's scale; the fit
    keeps the one with the smallest squared error.
    """

    name: str
    formula: str
    func: Callable[..., np.ndarray]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    starts: Callable[[np.ndarray, np.ndarray], list[tuple[float, ...]]]


def _rise(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    top = float(np.max(y))
    spread = max(float(np.ptp(y)), 1e-3)
    return top, spread, float(np.median(x))


def _pow_starts(x, y):
    top, spread, _ = _rise(x, y)
    x0 = float(np.min(x))
    return [(top + s * spread, (s + 1) * spread * x0**c, c) for s in (0.5, 2.0) for c in (0.5, 1.0)]


def _pow4_starts(x, y):
    return [(a, b, c, 0.0) for a, b, c in _pow_starts(x, y)]


def _mmf4_starts(x, y):
    top, spread, med = _rise(x, y)
    low = float(np.min(y))
    return [(low - spread, med**d, top + s * spread, d) for s in (0.5, 2.0) for d in (1.0, 2.0)]


def _wbl4_starts(x, y):
    top, spread, med = _rise(x, y)
    return [(1.0 / med**d, 2 * spread, top + s * spread, d) for s in (0.5, 2.0) for d in (0.5, 1.0)]


def _exp3_starts(x, y):
    top, spread, med = _rise(x, y)
    x0 = float(np.min(x))
    return [
        (2 * spread * np.exp(x0 / (k * med)), 1.0 / (k * med), top + s * spread)
        for s in (0.2, 1.0)
        for k in (0.5, 2.0)
    ]


def _logpower3_starts(x, y):
    top, spread, med = _rise(x, y)
    return [
        (top + s * spread, np.log(med / k), -c)
        for s in (0.5, 2.0)
        for k in (2.0, 8.0)
        for c in (0.5, 1.0)
    ]


def _palm4_starts(x, y):
    top = float(np.max(y))
    return [
        (min(top, 1.0), d, 0.0, c) for d, c in ((0.1, 1.0), (0.01, 0.5), (0.3, 0.3), (0.05, 0.8))
    ]


#: The families, by name. Bounds keep each form rising and defined for x > 0.
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("pow3", "a - b x^-c", _pow3, (-1, 0, 0), (2, np.inf, 5), _pow_starts),
        Family(
            "pow4",
            "a - b (x + d)^-c",
            _pow4,
            (-1, 0, 0, -0.99),
            (2, np.inf, 5, np.inf),
            _pow4_starts,
        ),
        Family(
            "mmf4",
            "(a b + c x^d) / (b + x^d)",
            _mmf4,
            (-1, 1e-12, -1, 0),
            (2, np.inf, 2, 5),
            _mmf4_starts,
        ),
        Family(
            "wbl4",
            "c - b exp(-a x^d)",
            _wbl4,
            (0, 0, -1, 0),
            (np.inf, np.inf, 2, 5),
            _wbl4_starts,
        ),
        Family("exp3", "c - a exp(-b x)", _exp3, (0, 0, -1), (np.inf, np.inf, 2), _exp3_starts),
        Family(
            "logpower3",
            "a / (1 + (x / e^b)^c)",
            _logpower3,
            (-1, -50, -5),
            (2, 50, 0),
            _logpower3_starts,
        ),
        Family(
            "palm4",
            "A (1 - (1 - delta)^((x + alpha)^beta))  (PALM, b = 1)",
            _palm4,
            (0, 0, -1000, 0),
            (1, 1, 1000, 100),
            _palm4_starts,
        ),
    )  # fmt: skip
}


@dataclass(frozen=True)
class FamilyFit:
    """A least-squares fit of one family: parameters, residual scale and their covariance."""

    family: Family
    params: np.ndarray
    sigma: float
    cov: np.ndarray
    n: int

    def mean(self, x) -> np.ndarray:
        """The fitted curve at ``x``."""
        return np.asarray(self.family.func(np.asarray(x, float), *self.params), float)

    def predict(self, x) -> tuple[np.ndarray, np.ndarray]:
        """Gaussian predictive mean and sd of the (seed-mean) accuracy at ``x``.

        sd^2 = residual variance + g' cov g, with g the gradient of the curve in the
        parameters at ``x`` (central differences).
        """
        x = np.atleast_1d(np.asarray(x, float))
        mean = self.mean(x)
        grads = []
        for k, value in enumerate(self.params):
            h = 1e-6 * max(abs(value), 1e-3)
            up, down = self.params.copy(), self.params.copy()
            up[k] += h
            down[k] -= h
            grads.append((self.family.func(x, *up) - self.family.func(x, *down)) / (2 * h))
        g = np.stack(grads, axis=-1)
        var = self.sigma**2 + np.einsum("...i,ij,...j->...", g, self.cov, g)
        sd = np.sqrt(np.where(np.isfinite(var) & (var > 0), var, self.sigma**2))
        return mean, np.maximum(sd, 1e-4)


def fit_family(
    name: str, x, y, *, max_nfev: int = MAX_NFEV, starts: int | None = None
) -> FamilyFit:
    """Fit family ``name`` to points ``(x, y)`` by bounded multi-start least squares.

    Parameters
    ----------
    name : str
        A key of :data:`FAMILIES`.
    x, y : array-like
        Budgets (> 0) and accuracies of one curve (e.g. its seed means), at least as many points
        as the family has parameters.
    max_nfev : int
        Function evaluations per start.
    starts : int, optional
        Use only the first ``starts`` starting points (all by default).

    Returns
    -------
    FamilyFit
        The fit with the smallest squared error over the starting points.
    """
    if name not in FAMILIES:
        raise ValueError(f"unknown curve family {name!r}; known: {sorted(FAMILIES)}")
    family = FAMILIES[name]
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    p = len(family.lower)
    if len(x) < p or np.any(x <= 0):
        raise ValueError(f"{name} needs at least {p} points with budgets > 0, got {len(x)}")
    lower, upper = np.array(family.lower, float), np.array(family.upper, float)
    if name == "pow4":  # x + d must stay positive
        lower[3] = -0.99 * float(np.min(x))
    if name == "palm4":  # x + alpha must stay positive
        lower[2] = -0.99 * float(np.min(x))
    best = None
    for start in family.starts(x, y)[:starts]:
        s = np.clip(np.array(start, float), lower + 1e-9, np.minimum(upper - 1e-9, 1e12))
        with np.errstate(all="ignore"):
            try:
                res = least_squares(
                    lambda q: family.func(x, *q) - y, s, bounds=(lower, upper),
                    x_scale="jac", max_nfev=max_nfev,
                )  # fmt: skip
            except ValueError:
                continue
        if np.all(np.isfinite(res.fun)) and (best is None or res.cost < best.cost):
            best = res
    if best is None:
        raise RuntimeError(f"{name}: no starting point gave a finite fit")
    sse = float(2 * best.cost)
    sigma = float(np.sqrt(sse / max(len(x) - p, 1)))
    jac = best.jac
    cov = sigma**2 * np.linalg.pinv(jac.T @ jac)
    return FamilyFit(family, best.x, sigma, cov, len(x))
