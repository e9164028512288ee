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
