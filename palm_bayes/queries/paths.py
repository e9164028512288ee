"""Forecast paths as numpy arrays of draws: the arithmetic core of every forecast query.

A :class:`PathBase` holds, once per fit, what every forecast draw reads, on a stacked
``(sample, curve)`` grid (samples: chain x draw in order; curves: the curve dims stacked in
order): the PALM draws, the per-curve constants, the curve prior's features and, per query
seed, its shocks and seed offsets (:class:`SeedDraws`, kept for the last few seeds). A fit is
immutable, so nothing here is rebuilt per query; :func:`path_base` finds it (or builds it) for a
fit. :func:`expected_paths` is the forecast draw at budgets, :func:`labels_needed_paths` the
labels needed, :func:`first_crossing` the one search for the first budget where a path reaches
a target (labels needed, schedules and advice use it). The xarray functions of
:mod:`palm_bayes.queries.forecast` and :mod:`palm_bayes.queries.labels_needed` wrap these.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr
from scipy.special import expit

from palm_bayes.model.curve import labels_for_accuracy_log_lambda, palm_curve_log_lambda
from palm_bayes.priors.curve_prior import PATH_CLIP, CurvePrior, logit

if TYPE_CHECKING:
    from palm_bayes.inference.posterior import PalmPosterior

__all__ = [
    "LABELS_GRID_POINTS",
    "PathBase",
    "SeedDraws",
    "crossing_budget",
    "expected_paths",
    "first_crossing",
    "labels_needed_paths",
    "path_base",
]

#: Points of the log-budget grid that labels needed search beyond the last observed budget.
LABELS_GRID_POINTS = 257
#: Rows (draw x curve pairs) of one labels-needed block: bounds the memory of the search.
_BLOCK_ROWS = 8192
#: Grid points evaluated at a time in the labels-needed search (most draws cross early).
_BLOCK_POINTS = 32
#: Seeds whose shocks a :class:`PathBase` keeps.
_KEPT_SEEDS = 4


@dataclass(frozen=True)
class SeedDraws:
    """What the curve prior adds to the draws for one query seed, ``(sample, curve)`` arrays.

    ``slope`` is ``w_0 + w_slope z_slope + w_level z_level`` (the drift per e-fold of budget),
    ``w_gain`` and ``power`` per sample, ``scale`` is ``exp(a_0 + ...)``, ``e`` the shocks and
    ``shift`` the seed offsets (None when the prior adds none).
    """

    slope: np.ndarray
    w_gain: np.ndarray
    scale: np.ndarray
    power: np.ndarray
    e: np.ndarray
    shift: np.ndarray | None


class PathBase:
    """Per-fit arrays of the forecast queries (see the module docstring).

    Parameters
    ----------
    fit : PalmPosterior
        The fit; only read here (nothing of it is kept but arrays and its curve prior).
    """

    def __init__(self, fit: PalmPosterior):
        from palm_bayes.queries.forecast import curve_features, group_dim

        post, const = fit.idata.posterior, fit.idata.constant_data
        self.curve_dims: tuple[str, ...] = tuple(fit.curve_dims)
        template = post["A_max"].transpose("chain", "draw", *self.curve_dims)
        self.template = template  # dims and coords of the draws (not the values' owner)
        self.chains, self.draws = template.sizes["chain"], template.sizes["draw"]
        self.curve_shape = tuple(template.sizes[d] for d in self.curve_dims)
        self.n_samples = self.chains * self.draws
        self.n_curves = int(np.prod(self.curve_shape, dtype=int))
        curve = template.isel(chain=0, draw=0, drop=True)
        self.prior: CurvePrior = fit.curve_prior
        self.group_dim = group_dim(fit)

        def draws(name: str) -> np.ndarray:
            value = post[name].broadcast_like(template).transpose(*template.dims)
            return np.ascontiguousarray(value.to_numpy()).reshape(self.n_samples, self.n_curves)

        def per_curve(value: xr.DataArray) -> np.ndarray:
            value = value.broadcast_like(curve).transpose(*self.curve_dims)
            return np.ascontiguousarray(value.to_numpy()).reshape(self.n_curves)

        self.A_max, self.log_lambda = draws("A_max"), draws("log_lambda")
        self.alpha, self.beta = draws("alpha"), draws("beta")
        self.b = per_curve(const["b"])
        self.last_budget = per_curve(const["last_budget"])
        self.log_last = np.log(self.last_budget)
        self.fitted = per_curve(const["fitted"]).astype(bool)
        self.seed_offsets = bool(self.prior.seed_offsets)
        self._seeds: dict[int, SeedDraws] = {}
        self._gains: dict[Any, tuple[np.ndarray, np.ndarray]] = {}
        self._fit = weakref.ref(fit)  # for the shocks and seed offsets of later seeds
        at_last = palm_curve_log_lambda(
            self.last_budget, self.A_max, self.log_lambda, self.alpha, self.beta, self.b
        )
        self.at_last = _median0(logit(at_last, PATH_CLIP))
        self.z_slope = self.z_level = np.zeros(self.n_curves)
        self.seed_ratio = None
        if self.prior.is_zero:  # no discrepancy: only a seed offset may be added
            return
        features = curve_features(fit)
        zs, zl = self.prior.standardise(features)
        self.z_slope, self.z_level = per_curve(zs), per_curve(zl)
        if self.prior.seed_scale is not None and "n_seeds" in features:
            ratio = np.log(features["n_seeds"].fillna(self.prior.seed_ref) / self.prior.seed_ref)
            self.seed_ratio = per_curve(ratio)

    # ------------------------------------------------------------------ per seed
    def seed_draws(self, seed: int) -> SeedDraws:
        """The prior's shocks and seed offsets for ``seed`` (kept for the last few seeds)."""
        if seed in self._seeds:
            return self._seeds[seed]
        from palm_bayes.queries.forecast import seed_shift

        fit = self._fit()
        if fit is None:  # pragma: no cover - the fit owns its base
            raise RuntimeError("the fit of these forecast paths is gone")
        prior = self.prior
        e, index = prior.shocks(fit.idata.posterior["A_max"], self.group_dim, seed)
        index = index.to_numpy().reshape(self.n_samples)
        w = prior.drift[index].T[:, :, None]  # (term, sample, 1)
        a = prior.scale[index].T[:, :, None]
        zs, zl = self.z_slope[None, :], self.z_level[None, :]
        slope = w[0] + w[1] * zs + w[2] * zl
        log_scale = a[0] + a[2] * zl + a[3] * zs
        if self.seed_ratio is not None:
            log_scale = log_scale + prior.seed_scale[index][:, None] * self.seed_ratio[None, :]
        shift = seed_shift(fit, seed)
        drawn = SeedDraws(
            slope=slope,
            w_gain=prior.drift[index, 3],
            scale=np.exp(log_scale),
            power=prior.scale[index, 1],
            e=self._stacked(e),
            shift=None if shift is None else self._stacked(shift),
        )
        if len(self._seeds) >= _KEPT_SEEDS:
            self._seeds.pop(next(iter(self._seeds)))
        self._seeds[seed] = drawn
        return drawn

    def _stacked(self, value: xr.DataArray) -> np.ndarray:
        value = value.transpose("chain", "draw", *self.curve_dims).to_numpy()
        return np.ascontiguousarray(value).reshape(self.n_samples, self.n_curves)

    # ------------------------------------------------------------------ curves
    def positions(self, selection: dict[str, np.ndarray] | None) -> np.ndarray:
        """Flat curve positions of a box of curves (``{dim: positions}``; missing dims: all)."""
        if not selection:
            return np.arange(self.n_curves)
        axes = [
            np.asarray(selection.get(d, np.arange(n)), dtype=int)
            for d, n in zip(self.curve_dims, self.curve_shape, strict=True)
        ]
        grids = np.meshgrid(*axes, indexing="ij")
        return np.ravel_multi_index(tuple(g.ravel() for g in grids), self.curve_shape)

    def palm(self, budgets: np.ndarray, curves: np.ndarray) -> np.ndarray:
        """PALM draws at ``budgets`` (``(K,)`` or ``(curve, K)``): ``(sample, curve, K)``."""
        b = self.b[curves][:, None]
        return palm_curve_log_lambda(
            budgets,
            self.A_max[:, curves, None],
            self.log_lambda[:, curves, None],
            self.alpha[:, curves, None],
            self.beta[:, curves, None],
            b,
        )


def _median0(x: np.ndarray) -> np.ndarray:
    """Median over the first axis, skipping NaN like xarray (fast where there is none)."""
    with np.errstate(invalid="ignore"):
        out = np.median(x, axis=0)
    bad = np.isnan(out)
    if bad.any():
        columns = np.flatnonzero(bad.ravel())
        flat = x.reshape(x.shape[0], -1)[:, columns]
        some = ~np.all(np.isnan(flat), axis=0)
        if some.any():
            out.ravel()[columns[some]] = np.nanmedian(flat[:, some], axis=0)
    return out


_BASES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def path_base(fit: PalmPosterior) -> PathBase:
    """The :class:`PathBase` of ``fit``, built on first use and kept while the fit lives.

    Rebuilt when the fit's posterior or curve prior was replaced (a fit is meant to be
    immutable; :meth:`PalmPosterior.with_prior` makes a new one).
    """
    post = fit.idata.posterior
    key = (id(post), id(post["A_max"].variable._data), post.attrs.get("curve_prior"))
    held = _BASES.get(fit)
    if held is not None and held[0] == key:
        return held[1]
    base = PathBase(fit)
    _BASES[fit] = (key, base)
    return base


# ------------------------------------------------------------------ forecasts
def widen(
    base: PathBase,
    logit_palm: np.ndarray,
    log_budget: np.ndarray,
    gain: np.ndarray,
    curves: np.ndarray,
    seed: int,
) -> np.ndarray:
    """Logit PALM draws ``(sample, curve, K)`` plus the curve prior's discrepancy and offset.

    ``log_budget`` is ``(K,)`` or ``(curve, K)``, ``gain`` ``(curve, K)`` (median logit PALM
    minus its value at the last budget). The arithmetic of
    :meth:`palm_bayes.priors.curve_prior.CurvePrior.widen`, in the same order.
    """
    if base.prior.is_zero:
        return logit_palm
    s = base.seed_draws(seed)
    d = np.clip(log_budget - base.log_last[curves, None], 0.0, None)
    ahead = d > 0
    drift = d * s.slope[:, curves, None] + s.w_gain[:, None, None] * gain
    drift = np.where(ahead, drift, 0.0)
    scale = np.where(ahead, s.scale[:, curves, None] * d ** s.power[:, None, None], 0.0)
    out = logit_palm + drift + scale * s.e[:, curves, None]
    return out if s.shift is None else out + s.shift[:, curves, None]


def expected_paths(
    base: PathBase, budgets: np.ndarray, seed: int, curves: np.ndarray | None = None
) -> np.ndarray:
    """Expected-accuracy draws at ``budgets`` for the flat ``curves``: ``(sample, curve, K)``.

    PALM up to each curve's last observed budget, widened by the curve prior beyond it (and
    shifted by the seed offset everywhere when the prior adds it).
    """
    curves = np.arange(base.n_curves) if curves is None else curves
    budgets = np.asarray(budgets, dtype=float)
    acc = base.palm(budgets, curves)
    logit_palm = logit(acc, PATH_CLIP)
    gain = None
    if not base.prior.is_zero:
        gain = _median0(logit_palm) - base.at_last[curves, None]
    widened = expit(widen(base, logit_palm, np.log(budgets), gain, curves, seed))
    beyond = (budgets > base.last_budget[curves, None]) | base.seed_offsets
    return np.where((acc > 0) & beyond, widened, acc)


# ------------------------------------------------------------------ labels needed
def first_crossing(path: np.ndarray, position: np.ndarray, level: Any) -> np.ndarray:
    """Where each path first reaches ``level`` along its last axis (``inf``: never).

    Linear interpolation of ``position`` between the last grid point below the level and
    the first at or above it; ``position[..., 0]`` when the path starts at or above it.
    Labels needed, schedules and advice all search with this function, on logit accuracy
    against log budget (:func:`crossing_budget`). ``position`` broadcasts against ``path``;
    ``level`` against ``path[..., 0]``.
    """
    path = np.asarray(path, dtype=float)
    position = np.broadcast_to(np.asarray(position, dtype=float), path.shape)
    level = np.asarray(level, dtype=float)
    reached = path >= level[..., None]
    i1 = np.argmax(reached, axis=-1)[..., None]
    i0 = np.maximum(i1 - 1, 0)
    l0, l1 = (np.take_along_axis(path, i, -1)[..., 0] for i in (i0, i1))
    b0, b1 = (np.take_along_axis(position, i, -1)[..., 0] for i in (i0, i1))
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.clip((level - l0) / (l1 - l0), 0.0, 1.0)
    w = np.where(np.isnan(w) | (i1[..., 0] == 0), np.where(i1[..., 0] == 0, 0.0, 1.0), w)
    found = b0 + w * (b1 - b0)
    return np.where(reached.any(axis=-1), found, np.inf)


def crossing_budget(accuracy: np.ndarray, budgets: np.ndarray, target: Any) -> np.ndarray:
    """First budget where accuracy paths ``(..., budget)`` reach ``target`` (``inf``: never).

    :func:`first_crossing` on logit accuracy against log budget: the search
    :func:`palm_bayes.queries.labels_needed.labels_needed_draws` makes beyond the data.
    """
    found = first_crossing(
        logit(accuracy, PATH_CLIP), np.log(budgets), logit(np.asarray(target, float), PATH_CLIP)
    )
    return np.exp(found)


def labels_grid(base: PathBase, max_budget: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Log-budget search grid ``(curve, point)`` and the gain of the median path on it.

    From each curve's last observed budget to ``max_budget`` (default 100x it); kept per
    ``max_budget``. The gain (median logit PALM minus its value at the last budget) does not
    depend on the target or the seed.
    """
    key = None if max_budget is None else float(max_budget)
    if key in base._gains:
        return base._gains[key]
    last = base.last_budget
    horizon = 100.0 * last if max_budget is None else np.full_like(last, float(max_budget))
    grid = np.linspace(0.0, 1.0, LABELS_GRID_POINTS)
    log_last = base.log_last
    log_budgets = (
        log_last[:, None] + grid[None, :] * (np.log(np.maximum(horizon, last)) - log_last)[:, None]
    )
    gain = np.full(log_budgets.shape, np.nan)
    if not base.prior.is_zero:
        for part in np.array_split(np.arange(base.n_curves), max(1, base.n_curves // 4)):
            logit_palm = logit(base.palm(np.exp(log_budgets[part]), part), PATH_CLIP)
            gain[part] = _median0(logit_palm) - base.at_last[part, None]
    base._gains[key] = (log_budgets, gain)
    return log_budgets, gain


def labels_needed_paths(
    base: PathBase, target: np.ndarray, max_budget: float | None, seed: int
) -> np.ndarray:
    """Labels needed for a per-curve ``target`` ``(curve,)``: ``(sample, curve)`` draws.

    The closed-form PALM inverse up to the last observed budget (the target shifted against
    the seed offset); beyond it the first crossing of each draw's forecast path on the
    log-budget grid of :func:`labels_grid`, searched a block of grid points at a time and only
    for the draws that need it. Rounded up to whole labels; NaN for curves not fitted.
    """
    shift = base.seed_draws(seed).shift
    inside = target[None, :] if shift is None else expit(logit(target, PATH_CLIP) - shift)
    closed = labels_for_accuracy_log_lambda(
        inside, base.A_max, base.log_lambda, base.alpha, base.beta, base.b
    ).clip(min=0.0)
    last = base.last_budget
    horizon = 100.0 * last if max_budget is None else np.full_like(last, float(max_budget))
    if base.prior.is_zero:
        out = np.ceil(np.where(closed <= horizon, closed, np.inf))
        return np.where(base.fitted, out, np.nan)
    with np.errstate(invalid="ignore"):
        search = ~(closed <= last) & base.fitted
    rows, cols = np.nonzero(search)
    beyond = np.full(closed.shape, np.inf)
    if rows.size:
        log_budgets, gain = labels_grid(base, max_budget)
        logit_target = logit(target, PATH_CLIP)
        for k in range(0, rows.size, _BLOCK_ROWS):
            r, c = rows[k : k + _BLOCK_ROWS], cols[k : k + _BLOCK_ROWS]
            beyond[r, c] = _search_rows(base, r, c, log_budgets, gain, logit_target[c], seed)
    with np.errstate(invalid="ignore"):
        out = np.ceil(np.where(closed <= last, closed, beyond))
    return np.where(base.fitted, out, np.nan)


def _search_rows(
    base: PathBase,
    rows: np.ndarray,
    cols: np.ndarray,
    log_budgets: np.ndarray,
    gain: np.ndarray,
    logit_target: np.ndarray,
    seed: int,
) -> np.ndarray:
    """First crossings of the paths of (sample ``rows``, curve ``cols``) pairs, in budgets."""
    s = base.seed_draws(seed)
    p = {
        name: getattr(base, name)[rows, cols][:, None]
        for name in ("A_max", "log_lambda", "alpha", "beta")
    }
    slope, scale, e = (x[rows, cols][:, None] for x in (s.slope, s.scale, s.e))
    shift = None if s.shift is None else s.shift[rows, cols][:, None]
    w_gain, power = s.w_gain[rows][:, None], s.power[rows][:, None]
    b, log_last = base.b[cols][:, None], base.log_last[cols][:, None]
    out = np.full(rows.size, np.inf)
    pending = np.arange(rows.size)
    previous = None  # each pending row's path and position at the last point searched
    n = log_budgets.shape[1]
    for start in range(0, n, _BLOCK_POINTS):
        take = slice(start, min(start + _BLOCK_POINTS, n))
        at = cols[pending]
        lb = log_budgets[at, take]
        logit_palm = logit(
            palm_curve_log_lambda(
                np.exp(lb),
                p["A_max"][pending],
                p["log_lambda"][pending],
                p["alpha"][pending],
                p["beta"][pending],
                b[pending],
            ),
            PATH_CLIP,
        )
        d = np.clip(lb - log_last[pending], 0.0, None)
        ahead = d > 0
        drift = d * slope[pending] + w_gain[pending] * gain[at, take]
        drift = np.where(ahead, drift, 0.0)
        widening = np.where(ahead, scale[pending] * d ** power[pending], 0.0)
        path = logit_palm + drift + widening * e[pending]
        if shift is not None:
            path = path + shift[pending]
        if previous is not None:
            path = np.concatenate([previous[0][:, None], path], axis=1)
            lb = np.concatenate([previous[1][:, None], lb], axis=1)
        level = logit_target[pending]
        found = first_crossing(path, lb, level)
        done = np.isfinite(found)
        out[pending[done]] = np.exp(found[done])
        previous = (path[~done, -1], lb[~done, -1])
        pending = pending[~done]
        if not pending.size:
            break
    return out
