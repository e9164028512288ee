"""ProbCover: greedy max coverage of delta-balls (Yehuda et al., NeurIPS 2022)."""

from __future__ import annotations

import numpy as np

from al_runner.errors import ALRunnerError
from al_runner.knn import as_f32, kmeans_labels, nearest_sqdist, range_graph
from al_runner.strategies.base import PoolState, Strategy, check_number


def purity_delta(
    x: np.ndarray,
    n_classes: int,
    alpha: float = 0.95,
    max_queries: int = 5000,
    seed: int = 0,
) -> float:
    """The largest ball radius whose purity is at least ``alpha`` (ProbCover, Sec. 4).

    A ball ``B(x, delta)`` is pure when every point in it has the k-means pseudo-label of
    ``x`` (k = ``n_classes``). Purity is a decreasing function of delta: a ball is pure iff
    delta is below the distance from ``x`` to its nearest point of another cluster, so the
    answer is the ``1 - alpha`` quantile of that distance (estimated on ``max_queries`` points).

    Returns
    -------
    float
        delta (a plain L2 distance).
    """
    labels = kmeans_labels(x, n_classes, seed=seed)
    rng = np.random.default_rng(seed)
    queries = np.arange(x.shape[0])
    if queries.size > max_queries:
        queries = np.sort(rng.choice(queries, size=max_queries, replace=False))
    d_other = np.full(queries.size, np.inf)
    for c in np.unique(labels):
        others = np.flatnonzero(labels != c)
        mine = np.flatnonzero(labels[queries] == c)
        if others.size == 0 or mine.size == 0:
            continue
        d2, _ = nearest_sqdist(x[others], x[queries[mine]], 1)
        d_other[mine] = np.sqrt(np.maximum(d2[:, 0], 0.0))
    finite = d_other[np.isfinite(d_other)]
    if finite.size == 0:
        raise ALRunnerError("probcover: k-means found a single cluster; pass delta explicitly")
    return float(np.quantile(finite, 1.0 - alpha, method="lower")) * (1.0 - 1e-6)


def max_coverage(
    indptr: np.ndarray,
    indices: np.ndarray,
    labelled: np.ndarray,
    k: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Greedy max coverage on a symmetric ball graph given in CSR form.

    Points in a labelled ball are covered; each step takes the unlabelled point whose ball
    covers the most uncovered points (ties at random), or a random point once all are covered.
    """
    n = indptr.size - 1
    row = np.repeat(np.arange(n), np.diff(indptr))
    covered = np.zeros(n, dtype=bool)
    for i in labelled:
        covered[indices[indptr[i] : indptr[i + 1]]] = True
    degree = np.bincount(row[~covered[indices]], minlength=n).astype(np.int64)
    taken = np.zeros(n, dtype=bool)
    taken[labelled] = True
    picks: list[int] = []
    for _ in range(k):
        score = np.where(taken, -1, degree)
        best = score.max()
        if best <= 0:
            j = int(rng.choice(np.flatnonzero(~taken)))
        else:
            j = int(rng.choice(np.flatnonzero(score == best)))
        picks.append(j)
        taken[j] = True
        ball = indices[indptr[j] : indptr[j + 1]]
        new = ball[~covered[ball]]
        covered[new] = True
        if new.size:  # a newly covered point no longer counts for any ball containing it
            owners = np.concatenate([indices[indptr[u] : indptr[u + 1]] for u in new])
            degree -= np.bincount(owners, minlength=n)
    return np.asarray(picks)


class ProbCover(Strategy):
    """Label the points whose delta-balls cover the most not-yet-covered points.

    Parameters
    ----------
    delta : float, optional
        Ball radius on L2-normalised features; chosen by the purity criterion when None.
    alpha : float
        Purity threshold of the criterion (0.95 in the paper).
    max_edges : int
        Refuse graphs larger than this (a too-large delta makes the graph quadratic).
    """

    name = "probcover"
    needs_model = False
    uses_representation = True
    reference = "Yehuda et al., Active Learning Through a Covering Lens, NeurIPS 2022"

    def __init__(
        self, delta: float | None = None, alpha: float = 0.95, max_edges: int = 100_000_000
    ) -> None:
        if delta is not None:
            check_number("probcover", "delta", delta, low=0, high=2, open_low=True)
        check_number("probcover", "alpha", alpha, low=0, high=1, open_low=True)
        check_number("probcover", "max_edges", max_edges, low=1, integer=True)
        self.delta = delta
        self.alpha = alpha
        self.max_edges = max_edges
        self._cache: dict[int, tuple[np.ndarray, float, np.ndarray, np.ndarray]] = {}

    def graph(self, x: np.ndarray, n_classes: int) -> tuple[float, np.ndarray, np.ndarray]:
        """Return delta and the CSR ball graph of the normalised representation (cached)."""
        key = id(x)
        if key not in self._cache:
            z = as_f32(x)
            z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
            delta = self.delta if self.delta is not None else purity_delta(z, n_classes, self.alpha)
            indptr, indices = range_graph(z, delta)
            if indices.size > self.max_edges:
                raise ALRunnerError(
                    f"probcover: delta={delta:.3g} gives {indices.size} edges "
                    f"(> {self.max_edges}); pass a smaller delta"
                )
            self._cache = {key: (x, delta, indptr, indices)}
        _, delta, indptr, indices = self._cache[key]
        return delta, indptr, indices

    def _select(self, state: PoolState, k: int, rng: np.random.Generator) -> np.ndarray:
        _, indptr, indices = self.graph(state.features(), state.n_classes)
        return max_coverage(indptr, indices, state.labelled, k, rng)
