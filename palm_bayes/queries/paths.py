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
from dataclasses import dataclass, field
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
    "LabelsGrid",
    "PathBase",
    "SeedDraws",
    "crossing_budget",
    "expected_paths",
    "first_crossing",
    "labels_grid",
    "labels_needed_paths",
    "path_base",
]

#: Points of the log-budget grid that labels needed search beyond the last observed budget.
LABELS_GRID_POINTS = 257
#: Grid intervals of one block of the labels-needed search (the grid has 32 blocks).
_BLOCK_POINTS = 8
#: Rows (draw x curve pairs) searched at a time: bounds the memory of the search.
_CHUNK_ROWS = 262144
#: Rows whose block bounds are computed at a time.
_BOUND_ROWS = 16384
#: Largest number of block-end path values (samples x curves x block ends) a fit keeps.
_CACHE_VALUES = 32_000_000
#: Seeds whose shocks a :class:`PathBase` keeps.
_KEPT_SEEDS = 2


@dataclass(frozen=True)
class SeedDraws:
    """What the curve prior adds to the draws for one query seed, ``(sample, curve)`` arrays.

    ``slope`` is ``w_0 + w_slope z_slope + w_level z_level`` (the drift per e-fold of budget),
    ``w_gain`` and ``power`` per sample, ``scale`` is ``exp(a_0 + ...)``, ``e`` the shocks and
    ``shift`` the seed offsets (None when the prior adds none). ``powers`` are the distinct
    values of ``power`` (the prior's coefficient draws repeat), ``power[i] ==
    powers[power_index[i]]``.
    """

    slope: np.ndarray
    w_gain: np.ndarray
    scale: np.ndarray
    power: np.ndarray
    e: np.ndarray
    shift: np.ndarray | None
    powers: np.ndarray
    power_index: np.ndarray


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
        self._grids: dict[Any, LabelsGrid] = {}
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
        powers, power_index = np.unique(prior.scale[index, 1], return_inverse=True)
        drawn = SeedDraws(
            slope=slope,
            w_gain=prior.drift[index, 3],
            scale=np.exp(log_scale),
            power=prior.scale[index, 1],
            e=self._stacked(e),
            shift=None if shift is None else self._stacked(shift),
            powers=powers,
            power_index=power_index.reshape(-1),
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
    # d ** power per distinct power, then per draw: the same values, fewer slow powers
    widening = (d[None] ** s.powers.reshape(-1, *(1,) * d.ndim))[s.power_index]
    scale = np.where(ahead, s.scale[:, curves, None] * widening, 0.0)
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


@dataclass
class LabelsGrid:
    """The log-budget grid of the labels-needed search of a fit, and what it keeps about it.

    ``log_budgets``, ``budgets`` and ``d`` (``log(B / B_last)``) are ``(curve, point)``; the
    grid is cut into blocks between the ``ends`` points. ``gain`` is the median logit PALM
    minus its value at the last budget, ``(curve, point)``. ``end_logit`` is the logit PALM of
    every draw at the block ends (``(sample, curve, end)``; None for fits too large to keep
    it), ``monotone`` says per curve that all its draws rise with the budget (``beta > 0``,
    ``A_max >= 0``), which the block bounds need. ``upper`` holds, per query seed (the last
    few), the upper bound of every draw's path per block (``(sample, curve, block)``).
    """

    log_budgets: np.ndarray
    budgets: np.ndarray
    d: np.ndarray
    ends: np.ndarray
    gain: np.ndarray
    end_logit: np.ndarray | None
    monotone: np.ndarray
    upper: dict[int, np.ndarray] = field(default_factory=dict)


def labels_grid(base: PathBase, max_budget: float | None) -> LabelsGrid:
    """The :class:`LabelsGrid` of ``base`` up to ``max_budget`` (default 100x the last budget).

    Built once per ``max_budget`` and kept: none of it depends on the target or the seed.
    """
    key = None if max_budget is None else float(max_budget)
    if key in base._grids:
        return base._grids[key]
    last = base.last_budget
    horizon = 100.0 * last if max_budget is None else np.full_like(last, float(max_budget))
    grid = np.linspace(0.0, 1.0, LABELS_GRID_POINTS)
    log_last = base.log_last
    log_budgets = (
        log_last[:, None] + grid[None, :] * (np.log(np.maximum(horizon, last)) - log_last)[:, None]
    )
    ends = np.unique(np.r_[np.arange(0, LABELS_GRID_POINTS, _BLOCK_POINTS), LABELS_GRID_POINTS - 1])
    n_curves = base.n_curves
    with np.errstate(invalid="ignore"):
        rising = (base.beta > 0) & (base.A_max >= 0)
        params = (base.A_max, base.log_lambda, base.alpha, base.beta)
        finite = np.all([np.isfinite(x) for x in params], axis=0)
    monotone = np.all(rising | ~finite, axis=0)
    gain = np.full(log_budgets.shape, np.nan)
    keep = base.n_samples * n_curves * ends.size <= _CACHE_VALUES
    end_logit = np.empty((base.n_samples, n_curves, ends.size)) if keep else None
    for part in np.array_split(np.arange(n_curves), max(1, n_curves // 8)):
        values = logit(base.palm(np.exp(log_budgets[part][:, ends]), part), PATH_CLIP)
        gain[part[:, None], ends[None, :]] = _median0(values) - base.at_last[part, None]
        for block in range(ends.size - 1):
            points = np.arange(ends[block], ends[block + 1] + 1)
            median = _block_median(base, log_budgets, monotone, part, points, values, block)
            gain[part[:, None], points[None, :]] = median - base.at_last[part, None]
        if keep:
            end_logit[:, part] = values
    made = LabelsGrid(
        log_budgets=log_budgets,
        budgets=np.exp(log_budgets),
        d=np.clip(log_budgets - log_last[:, None], 0.0, None),
        ends=ends,
        gain=gain,
        end_logit=end_logit,
        monotone=monotone,
    )
    base._grids[key] = made
    return made


def _block_median(base, log_budgets, monotone, part, points, values, block) -> np.ndarray:
    """Median over the draws of logit PALM at ``points`` of curves ``part``: ``(curve, point)``.

    ``values`` is logit PALM at the block ends, ``(sample, curve, end)``. Where all draws of a
    curve rise with the budget, a draw whose value at the block's end is below the median at
    its start (or whose value at the start is above the median at its end) stays below
    (above) the median inside the block: only the draws in between are evaluated, and the
    median is their order statistic shifted by the count below (the same value).
    """
    n = base.n_samples
    middle = np.array([n // 2 - 1, n // 2] if n % 2 == 0 else [n // 2])
    lo, hi = values[:, :, block], values[:, :, block + 1]
    with np.errstate(invalid="ignore"):
        below = hi < np.partition(lo, middle[0], axis=0)[middle[0]]
        above = lo > np.partition(hi, middle[-1], axis=0)[middle[-1]]
    between = ~below & ~above
    rank = middle[:, None] - below.sum(axis=0)  # (middle, curve)
    count = between.sum(axis=0)
    fast = (
        monotone[part]
        & np.isfinite(lo).all(axis=0)
        & np.isfinite(hi).all(axis=0)
        & (rank.min(axis=0) >= 0)
        & (rank.max(axis=0) < count)
    )
    out = np.empty((part.size, points.size))
    if fast.any():
        cols = np.flatnonzero(fast)
        m = int(count[cols].max())
        # the samples in between first (in order), padded by others that are set to +inf
        order = np.argsort(~between[:, cols], axis=0, kind="stable")[:m]
        inside = _logit_palm_at(base, log_budgets, part[cols], points, order)
        inside[np.arange(m)[:, None] >= count[cols][None, :]] = np.inf
        inside.sort(axis=0)
        picked = np.take_along_axis(inside, rank[:, cols, None], axis=0)
        out[cols] = np.mean(picked, axis=0)
    slow = np.flatnonzero(~fast)
    if slow.size:
        every = np.broadcast_to(np.arange(n)[:, None], (n, slow.size))
        out[slow] = _median0(_logit_palm_at(base, log_budgets, part[slow], points, every))
    return out


def _logit_palm_at(base, log_budgets, curves, points, samples) -> np.ndarray:
    """Logit PALM of ``samples`` ``(m, curve)`` of ``curves`` at grid ``points``: ``(m, c, p)``."""
    budgets = np.exp(log_budgets[curves[:, None], points[None, :]])
    acc = palm_curve_log_lambda(
        budgets[None],
        base.A_max[samples, curves][..., None],
        base.log_lambda[samples, curves][..., None],
        base.alpha[samples, curves][..., None],
        base.beta[samples, curves][..., None],
        base.b[curves][None, :, None],
    )
    return logit(acc, PATH_CLIP)


def labels_needed_paths(
    base: PathBase, target: np.ndarray, max_budget: float | None, seed: int
) -> np.ndarray:
    """Labels needed for ``target`` ``(sample, curve)``: ``(sample, curve)`` draws.

    The closed-form PALM inverse up to the last observed budget (the target shifted against
    the seed offset); beyond it the first crossing (:func:`first_crossing`) of each draw's
    forecast path on the log-budget grid of :func:`labels_grid`, searched only for the draws
    that need it and only in the blocks of the grid where an upper bound of the path reaches
    the target. Rounded up to whole labels; NaN for curves not fitted.
    """
    shift = base.seed_draws(seed).shift
    inside = target if shift is None else expit(logit(target, PATH_CLIP) - shift)
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
        grid = labels_grid(base, max_budget)
        logit_target = logit(target, PATH_CLIP)
        for k in range(0, rows.size, _CHUNK_ROWS):
            r, c = rows[k : k + _CHUNK_ROWS], cols[k : k + _CHUNK_ROWS]
            beyond[r, c] = _search(base, grid, r, c, logit_target[r, c], seed)
    with np.errstate(invalid="ignore"):
        out = np.ceil(np.where(closed <= last, closed, beyond))
    return np.where(base.fitted, out, np.nan)


class _Rows:
    """The draw-by-curve pairs of one search: their parameters and prior terms, ``(row, 1)``."""

    def __init__(self, base: PathBase, rows: np.ndarray, cols: np.ndarray, seed: int):
        s = base.seed_draws(seed)
        self.cols = cols
        self.A_max, self.log_lambda, self.alpha, self.beta = (
            getattr(base, name)[rows, cols][:, None]
            for name in ("A_max", "log_lambda", "alpha", "beta")
        )
        self.slope, self.scale, self.e = (x[rows, cols][:, None] for x in (s.slope, s.scale, s.e))
        self.shift = None if s.shift is None else s.shift[rows, cols][:, None]
        self.w_gain, self.power = s.w_gain[rows][:, None], s.power[rows][:, None]
        self.b = base.b[cols][:, None]

    def path(self, grid: LabelsGrid, at: np.ndarray, points: np.ndarray, logit_palm=None):
        """Forecast paths (logit) of rows ``at`` at grid ``points``: the arithmetic of widen."""
        cols = self.cols[at]
        lb = grid.log_budgets[:, points][cols]
        if logit_palm is None:
            acc = palm_curve_log_lambda(
                grid.budgets[:, points][cols], self.A_max[at], self.log_lambda[at],
                self.alpha[at], self.beta[at], self.b[at],
            )  # fmt: skip
            logit_palm = logit(acc, PATH_CLIP)
        d = grid.d[:, points][cols]
        ahead = d > 0
        drift = d * self.slope[at] + self.w_gain[at] * grid.gain[:, points][cols]
        drift = np.where(ahead, drift, 0.0)
        widening = np.where(ahead, self.scale[at] * d ** self.power[at], 0.0)
        path = logit_palm + drift + widening * self.e[at]
        return (path if self.shift is None else path + self.shift[at]), lb


def _upper(base: PathBase, grid: LabelsGrid, rows: np.ndarray, r: _Rows) -> np.ndarray:
    """``(row, block)``: an upper bound of each row's path over each block (plus a slack).

    See :func:`_upper_bound`; valid only for rows whose PALM rises (see :func:`_bounds`).
    """
    ends, cols = grid.ends, r.cols
    if grid.end_logit is not None:
        at_end = grid.end_logit[rows, cols]
    else:
        at_end = logit(
            palm_curve_log_lambda(
                np.exp(grid.log_budgets[cols[:, None], ends]), r.A_max, r.log_lambda, r.alpha,
                r.beta, r.b,
            ),
            PATH_CLIP,
        )  # fmt: skip
    d = grid.d[cols[:, None], ends]
    g = grid.gain[cols[:, None], ends]
    terms = (r.slope, r.w_gain, r.scale, r.power, r.e, r.shift)
    return _upper_bound(at_end, d, g, *terms)


def _upper_bound(at_end, d, g, slope, w_gain, scale, power, e, shift) -> np.ndarray:
    """An upper bound of paths over the blocks between ends (last axis), plus a slack.

    PALM rises with the budget (its logit is at most its value at the block's end), the
    drift is linear in ``d`` and the median gain ``g`` rises too (their extremes are at the
    block's ends), and ``scale * d ** power * e`` is monotone in ``d``. All arguments
    broadcast against ``at_end`` (the logit PALM at the ends); ``shift`` may be None.
    """
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        line = np.multiply(d, slope)
        drift = np.maximum(line[..., :-1], line[..., 1:])
        np.multiply(w_gain, g, out=line)  # the gain term
        step = np.maximum(line[..., :-1], line[..., 1:])
        drift += step
        # a bound needs no exact power: exp(p log d) is many times faster than d ** p
        np.multiply(power, np.log(d), out=line)
        np.exp(line, out=line)
        line *= scale
        line *= e
        wide = np.maximum(line[..., :-1], line[..., 1:], out=step)
        starts_at_zero = np.broadcast_to(d[..., :-1] <= 0, drift.shape)  # no discrepancy at 0
        np.maximum(drift, 0.0, out=drift, where=starts_at_zero)
        np.maximum(wide, 0.0, out=wide, where=starts_at_zero)
        at = at_end[..., 1:]
        upper = at + drift
        upper += wide
        if shift is not None:
            upper += shift
        slack = np.abs(at)
        slack += 1.0
        slack += np.abs(drift)
        slack += np.abs(wide)
        slack *= 1e-9
        upper += slack
        return upper


def _seed_upper(base: PathBase, grid: LabelsGrid, seed: int) -> np.ndarray | None:
    """:func:`_upper_bound` of every draw and curve, ``(sample, curve, block)``, per seed.

    Kept for the last few seeds; None for fits too large to keep it (their searches bound
    their own rows).
    """
    if seed in grid.upper:
        return grid.upper[seed]
    n_blocks = grid.ends.size - 1
    if grid.end_logit is None or base.n_samples * base.n_curves * n_blocks > _CACHE_VALUES:
        return None
    s = base.seed_draws(seed)
    d, g = grid.d[None, :, grid.ends], grid.gain[None, :, grid.ends]
    out = np.empty((base.n_samples, base.n_curves, n_blocks))
    step = max(1, _BOUND_ROWS // base.n_curves)
    for k in range(0, base.n_samples, step):
        at = slice(k, k + step)
        out[at] = _upper_bound(
            grid.end_logit[at], d, g, s.slope[at, :, None], s.w_gain[at, None, None],
            s.scale[at, :, None], s.power[at, None, None], s.e[at, :, None],
            None if s.shift is None else s.shift[at, :, None],
        )  # fmt: skip
    if len(grid.upper) >= _KEPT_SEEDS:
        grid.upper.pop(next(iter(grid.upper)))
    grid.upper[seed] = out
    return out


def _bounds(base, grid, rows, r: _Rows, logit_target, seed: int) -> np.ndarray:
    """``(row, block)``: True where the path may reach the target inside the block.

    Where the upper bound of :func:`_upper` stays below the target it cannot; rows or
    curves where PALM need not rise are searched everywhere.
    """
    kept = _seed_upper(base, grid, seed)
    may = np.empty((rows.size, grid.ends.size - 1), dtype=bool)
    for k in range(0, rows.size, _BOUND_ROWS):
        part = slice(k, k + _BOUND_ROWS)
        if kept is None:
            some = _Rows(base, rows[part], r.cols[part], seed)
            upper = _upper(base, grid, rows[part], some)
        else:
            upper = kept[rows[part], r.cols[part]]
        may[part] = ~(upper < logit_target[part, None])  # NaN: may
    rising = (r.beta[:, 0] > 0) & (r.A_max[:, 0] >= 0) & grid.monotone[r.cols]
    return may | ~rising[:, None]


def _search(
    base: PathBase,
    grid: LabelsGrid,
    rows: np.ndarray,
    cols: np.ndarray,
    logit_target: np.ndarray,
    seed: int,
) -> np.ndarray:
    """First crossings (in budgets) of the paths of (sample ``rows``, curve ``cols``) pairs.

    Block by block: each row evaluates the first block its bound does not rule out, on all
    of the block's points (the block's first point, the last one of the previous block, is
    below the target: ruled out or searched); rows that cross there are done.
    """
    r = _Rows(base, rows, cols, seed)
    may = _bounds(base, grid, rows, r, logit_target, seed)
    n_blocks = may.shape[1]
    out = np.full(rows.size, np.inf)
    # upcoming[k]: per row, the first block from k on that the bound does not rule out
    upcoming = np.full((n_blocks + 1, rows.size), n_blocks, dtype=np.min_scalar_type(n_blocks))
    for k in range(n_blocks - 1, -1, -1):
        upcoming[k] = np.where(may[:, k], k, upcoming[k + 1])
    nxt = upcoming[0].copy()
    for block in range(n_blocks):  # a row's next block is always a later one
        at = np.flatnonzero(nxt == block)
        if not at.size:
            continue
        points = np.arange(grid.ends[block], grid.ends[block + 1] + 1)
        path, lb = r.path(grid, at, points)
        found = first_crossing(path, lb, logit_target[at])
        done = np.isfinite(found)
        out[at[done]] = np.exp(found[done])
        nxt[at] = np.where(done, n_blocks, upcoming[block + 1, at])
    return out
