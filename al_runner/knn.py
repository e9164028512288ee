"""faiss helpers: exact nearest neighbours, k-means and range search on float32 arrays.

faiss returns *squared* L2 distances; the helpers say which they return.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from al_runner.errors import ALRunnerError


def faiss() -> Any:
    """Import faiss with a clear error when the runner extra is missing."""
    try:
        import faiss as _faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is in the runner extra
        raise ALRunnerError("this strategy needs faiss: pip install 'palm-bayes[runner]'") from exc
    return _faiss


def as_f32(x: np.ndarray) -> np.ndarray:
    """C-contiguous float32 copy/view, as faiss requires."""
    return np.ascontiguousarray(x, dtype=np.float32)


def nearest_sqdist(
    base: np.ndarray, queries: np.ndarray, k: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k-NN: squared distances and indices ``(n_queries, k)`` of ``queries`` in ``base``."""
    f = faiss()
    base, queries = as_f32(base), as_f32(queries)
    index = f.IndexFlatL2(base.shape[1])
    index.add(base)
    return index.search(queries, k)


def kmeans_labels(x: np.ndarray, n_clusters: int, seed: int, niter: int = 20) -> np.ndarray:
    """K-means with faiss; the cluster id of every row of ``x``."""
    f = faiss()
    x = as_f32(x)
    km = f.Kmeans(
        x.shape[1],
        int(n_clusters),
        niter=niter,
        seed=int(seed),
        verbose=False,
        min_points_per_centroid=1,
        max_points_per_centroid=1_000_000,
    )
    km.train(x)
    _, labels = km.index.search(x, 1)
    return labels[:, 0].astype(np.int64)


def kmeans_pp(
    x: np.ndarray,
    n_clusters: int,
    seed: int,
    niter: int = 50,
    seeding_sample: int = 20_000,
) -> tuple[np.ndarray, float]:
    """K-means with k-means++ seeding (scikit-learn) and Lloyd iterations (faiss).

    The seeds are drawn by :func:`sklearn.cluster.kmeans_plusplus` (greedy k-means++, as
    scikit-learn's ``KMeans``) on at most ``seeding_sample`` random rows; faiss then runs
    ``niter`` Lloyd iterations on all rows.

    Parameters
    ----------
    x : numpy.ndarray
        ``(n, d)`` points.
    n_clusters : int
    seed : int
        Seed of the seeding sample and of k-means++.
    niter : int
        Lloyd iterations.
    seeding_sample : int
        Rows used for the seeding (all when fewer).

    Returns
    -------
    labels : numpy.ndarray
        Cluster id of every row (int64).
    inertia : float
        Sum of squared distances of the rows to their centroids.
    """
    from sklearn.cluster import kmeans_plusplus

    f = faiss()
    x = as_f32(x)
    n_clusters = int(n_clusters)
    if not 1 <= n_clusters <= x.shape[0]:
        raise ALRunnerError(f"k-means: need 1 <= n_clusters <= {x.shape[0]}, got {n_clusters}")
    rng = np.random.default_rng(seed)
    rows = x
    if x.shape[0] > max(seeding_sample, n_clusters):
        rows = x[np.sort(rng.choice(x.shape[0], size=seeding_sample, replace=False))]
    init, _ = kmeans_plusplus(rows, n_clusters, random_state=int(rng.integers(2**31)))
    km = f.Kmeans(
        x.shape[1],
        n_clusters,
        niter=int(niter),
        seed=int(seed),
        verbose=False,
        min_points_per_centroid=1,
        max_points_per_centroid=1_000_000_000,
    )
    km.train(x, init_centroids=as_f32(init))
    d2, labels = km.index.search(x, 1)
    return labels[:, 0].astype(np.int64), float(np.maximum(d2[:, 0], 0.0).sum(dtype=np.float64))


def range_graph(x: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Ball graph: CSR ``(indptr, indices)`` of all pairs with ``||x_i - x_j|| < radius``.

    Every point is its own neighbour. The radius is a plain (not squared) distance.
    """
    f = faiss()
    x = as_f32(x)
    index = f.IndexFlatL2(x.shape[1])
    index.add(x)
    lims, _, ids = index.range_search(x, float(radius) ** 2)
    return lims.astype(np.int64), ids.astype(np.int64)
