"""Core-Set: k-center greedy on the model's embeddings (Sener & Savarese, ICLR 2018)."""

from __future__ import annotations

import numpy as np

from al_runner.knn import as_f32, nearest_sqdist
from al_runner.strategies.base import PoolState, Strategy


def k_center_greedy(
    x: np.ndarray, centers: np.ndarray, candidates: np.ndarray, k: int, rng: np.random.Generator
) -> np.ndarray:
    """Greedily pick ``k`` candidates, each the farthest from all centers chosen so far.

    Parameters
    ----------
    x : numpy.ndarray
        Points ``(n, d)``.
    centers : numpy.ndarray
        Indices of the initial centers (the labelled set; may be empty).
    candidates : numpy.ndarray
        Indices that may be picked.
    k : int
    rng : numpy.random.Generator
        Picks the first point when there are no centers.

    Returns
    -------
    numpy.ndarray
        ``k`` indices into ``x``, in pick order.
    """
    xc = as_f32(x[candidates])
    if centers.size:
        min_d, _ = nearest_sqdist(x[centers], xc, 1)
        min_d = min_d[:, 0].astype(np.float64)
    else:
        min_d = np.full(candidates.size, np.inf)
    sq = np.einsum("ij,ij->i", xc, xc, dtype=np.float64)
    picks = []
    for _ in range(k):
        j = int(rng.integers(candidates.size)) if np.isinf(min_d).all() else int(np.argmax(min_d))
        picks.append(j)
        d = sq + sq[j] - 2.0 * (xc @ xc[j]).astype(np.float64)
        min_d = np.minimum(min_d, np.maximum(d, 0.0))
        min_d[picks] = -1.0
    return candidates[np.asarray(picks)]


class CoreSet(Strategy):
    """Pick points that minimise the largest distance of the pool to the labelled set."""

    name = "coreset"
    reference = "Sener & Savarese, Active Learning for CNNs: A Core-Set Approach, ICLR 2018"

    def _select(self, state: PoolState, k: int, rng: np.random.Generator) -> np.ndarray:
        return k_center_greedy(state.embeddings(), state.labelled, state.unlabelled, k, rng)
