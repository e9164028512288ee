"""DCoM: dynamic coverage and margin mix (Mishal & Weinshall, 2024)."""

from __future__ import annotations

import numpy as np

from al_runner.errors import ALRunnerError
from al_runner.knn import as_f32, range_graph
from al_runner.strategies.base import PoolState, Strategy, check_number
from al_runner.strategies.probcover import purity_delta


def competence(coverage: float, k: float = 50.0, a: float = 0.8) -> float:
    """DCoM's logistic weight of the margin: ``p / (1 + exp(-k (coverage - a)))``.

    ``p = 1 + exp(-k (1 - a))`` makes the weight 1 at full coverage; it is about 0 at low
    coverage and ``p / 2`` at ``coverage = a``.
    """
    p = 1.0 + np.exp(-k * (1.0 - a))
    return float(p / (1.0 + np.exp(-k * (coverage - a))))


def _unit(x: np.ndarray) -> np.ndarray:
    z = as_f32(x)
    return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)


def _distance_chunks(z: np.ndarray, rows: np.ndarray, chunk: int = 256):
    """Yield ``(slice, distances (b, n))`` from ``z[rows]`` to all of ``z`` (unit vectors)."""
    for start in range(0, rows.size, chunk):
        q = z[rows[start : start + chunk]]
        d2 = np.maximum(2.0 - 2.0 * (q @ z.T), 0.0)
        yield slice(start, start + q.shape[0]), np.sqrt(d2)


def coverage_mask(z: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Points of the pool within ``radii[i]`` of ``z[centres[i]]`` for some ``i``."""
    covered = np.zeros(z.shape[0], dtype=bool)
    for part, d in _distance_chunks(z, centres):
        covered |= (d < radii[part, None]).any(axis=0)
    return covered


def purity_radii(
    z: np.ndarray,
    centres: np.ndarray,
    centre_labels: np.ndarray,
    pseudo_labels: np.ndarray,
    threshold: float,
    max_delta: float,
    resolution: float,
) -> np.ndarray:
    """DCoM's per-sample radii: binary search for a ball purity of at least ``threshold``.

    The purity of ``B(z_i, delta)`` is the fraction of pool points in it whose pseudo-label
    (the model's prediction) equals the label of ``z_i``. As in the reference code, the search
    halves ``[0, max_delta]`` until it is ``resolution`` wide: the upper end moves down when
    the purity at the midpoint is below ``threshold``, the lower end up otherwise.
    """
    radii = np.empty(centres.size)
    for part, d in _distance_chunks(z, centres):
        agree = pseudo_labels[None, :] == centre_labels[part, None]
        lo = np.zeros(d.shape[0])
        hi = np.full(d.shape[0], float(max_delta))
        mid = (lo + hi) / 2
        while hi[0] - lo[0] > resolution:  # every row halves in step
            inside = d < mid[:, None]
            count = inside.sum(axis=1)
            purity = np.where(count > 0, (inside & agree).sum(axis=1) / np.maximum(count, 1), 0.0)
            low = purity < threshold
            hi = np.where(low, mid, hi)
            lo = np.where(low, lo, mid)
            mid = (lo + hi) / 2
        radii[part] = mid
    return radii


def edge_capped_radius(z: np.ndarray, max_edges: int, sample: int = 2000) -> float:
    """Largest radius whose ball graph on ``z`` has about ``max_edges`` edges (estimated).

    The fraction of pairs closer than ``r`` is estimated on ``sample`` random rows against
    ``sample`` random columns (seeded: the same ``z`` always gives the same radius).
    """
    n = z.shape[0]
    if n * n <= max_edges:
        return float("inf")
    rng = np.random.default_rng(0)
    rows = rng.choice(n, size=min(n, sample), replace=False)
    cols = rng.choice(n, size=min(n, sample), replace=False)
    d = np.sqrt(np.maximum(2.0 - 2.0 * (z[rows] @ z[cols].T), 0.0)).ravel()
    return float(np.quantile(d, max_edges / (n * n)))


class DCoM(Strategy):
    """Mix greedy ball coverage and margin by how much of the pool the labels already cover.

    Every labelled point has its own radius: the largest (by binary search) whose ball is
    ``0.2 * coverage + 0.4`` pure under the model's pseudo-labels. The coverage ``c`` of the
    labelled balls sets the weight ``w = competence(c)`` (logistic, about 0 below ``a`` and
    1 at full coverage); each of the ``k`` picks maximises ``w * margin + (1 - w) * density``,
    both min-max normalised, where density is the number of not-yet-covered points in a
    candidate's ball of the mean radius (ProbCover's greedy gain) and margin is
    ``1 - (p_1 - p_2)`` of the model.

    On dense representations the ball graph's radius is capped where the graph would exceed
    ``max_edges`` edges (``last_graph_radius`` records the radius used); the covered set and
    the coverage always use the per-sample radii.

    The radii are recomputed each round from the current model for all labelled points
    (the reference keeps older radii fixed and re-estimates only the last round's), so they are
    a function of the round's state and a resumed run reproduces exactly. The threshold's
    coverage is found by two fixed-point passes starting from ``delta``.

    Parameters
    ----------
    delta : float, optional
        Initial radius on L2-normalised features (ProbCover's purity criterion when None).
    max_delta : float
        Upper end of the radius search (1.1 in the reference).
    resolution : float
        Width at which the binary search stops (0.05).
    k_logistic, a_logistic : float
        Steepness and centre of the competence function (50 and 0.8).
    max_edges : int
        Edge budget of the ball graph (its radius is capped to fit, see above).
    """

    name = "dcom"
    needs_model = False
    uses_representation = True
    reference = "Mishal & Weinshall, DCoM: Active Learning for All Learners, 2024"

    def __init__(
        self,
        delta: float | None = None,
        max_delta: float = 1.1,
        resolution: float = 0.05,
        k_logistic: float = 50.0,
        a_logistic: float = 0.8,
        max_edges: int = 20_000_000,
    ) -> None:
        if delta is not None:
            check_number("dcom", "delta", delta, low=0, high=2, open_low=True)
        check_number("dcom", "max_delta", max_delta, low=0, open_low=True)
        check_number("dcom", "resolution", resolution, low=0, open_low=True)
        check_number("dcom", "k_logistic", k_logistic, low=0, open_low=True)
        check_number("dcom", "a_logistic", a_logistic, low=0, high=1)
        check_number("dcom", "max_edges", max_edges, low=1, integer=True)
        if not resolution < max_delta:
            raise ALRunnerError(f"dcom: need 0 < resolution < max_delta, got {resolution}")
        self.delta = delta
        self.max_delta = max_delta
        self.resolution = resolution
        self.k_logistic = k_logistic
        self.a_logistic = a_logistic
        self.max_edges = max_edges
        self._cache: dict[int, tuple[np.ndarray, np.ndarray, float, float]] = {}
        self.last_radii: np.ndarray | None = None
        self.last_competence: float | None = None
        self.last_graph_radius: float | None = None

    def _prepared(self, x: np.ndarray, n_classes: int) -> tuple[np.ndarray, float]:
        """Unit-normalised features and the initial radius (cached per representation)."""
        key = id(x)
        if key not in self._cache:
            z = _unit(x)
            delta = self.delta if self.delta is not None else purity_delta(z, n_classes)
            cap = edge_capped_radius(z, self.max_edges)
            self._cache = {key: (x, z, float(delta), cap)}
        _, z, delta, self._radius_cap = self._cache[key]
        return z, delta

    def radii(self, state: PoolState, z: np.ndarray, delta: float) -> np.ndarray:
        """Radii of the labelled points (``delta`` each when there is no model)."""
        radii = np.full(state.labelled.size, delta)
        if state.labelled.size == 0 or not state.has_model:
            return radii
        pseudo = state.pool_proba().argmax(axis=1)
        own = state.labelled_y if state.labelled_y is not None else pseudo[state.labelled]
        for _ in range(2):
            coverage = coverage_mask(z, state.labelled, radii).mean()
            threshold = 0.2 * coverage + 0.4
            radii = purity_radii(
                z, state.labelled, own, pseudo, threshold, self.max_delta, self.resolution
            )
        return radii

    def _select(self, state: PoolState, k: int, rng: np.random.Generator) -> np.ndarray:
        z, delta = self._prepared(state.features(), state.n_classes)
        n = z.shape[0]
        radii = self.radii(state, z, delta)
        covered = coverage_mask(z, state.labelled, radii)
        weight = competence(covered.mean(), self.k_logistic, self.a_logistic)
        self.last_radii, self.last_competence = radii, weight
        margin = np.zeros(n)
        if state.has_model:
            top2 = -np.partition(-state.proba(), 1, axis=1)[:, :2]
            m = 1.0 - (top2[:, 0] - top2[:, 1])
            span = m.max() - m.min()
            margin[state.unlabelled] = (m - m.min()) / span if span > 0 else 0.0
        radius = min(float(radii.mean()) if radii.size else delta, self._radius_cap)
        self.last_graph_radius = radius
        indptr, indices = range_graph(z, radius)
        row = np.repeat(np.arange(n), np.diff(indptr))
        degree = np.bincount(row[~covered[indices]], minlength=n).astype(np.float64)
        taken = np.zeros(n, dtype=bool)
        taken[state.labelled] = True
        picks: list[int] = []
        for _ in range(k):
            cand = np.flatnonzero(~taken)
            dens = degree[cand]
            span = dens.max() - dens.min()
            dens = (dens - dens.min()) / span if span > 0 else np.zeros(cand.size)
            score = weight * margin[cand] + (1.0 - weight) * dens
            best = np.flatnonzero(score == score.max())
            j = int(cand[best[rng.integers(best.size)]] if best.size > 1 else cand[best[0]])
            picks.append(j)
            taken[j] = True
            ball = indices[indptr[j] : indptr[j + 1]]
            new = ball[~covered[ball]]
            covered[new] = True
            if new.size:  # newly covered points no longer count for any ball containing them
                owners = np.concatenate([indices[indptr[u] : indptr[u + 1]] for u in new])
                degree -= np.bincount(owners, minlength=n)
        return np.asarray(picks)
