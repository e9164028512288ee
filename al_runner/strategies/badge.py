"""BADGE: k-means++ seeding on last-layer gradient embeddings (Ash et al., ICLR 2020)."""

from __future__ import annotations

import numpy as np

from al_runner.strategies.base import PoolState, Strategy


def gradient_factors(proba: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Factors of the gradient embedding ``g = a (x) h`` with ``a = p - onehot(argmax p)``.

    The gradient of the cross-entropy (with the predicted label) w.r.t. the last layer's
    weights is the outer product ``a h^T``; it is never materialised:
    ``<g_i, g_j> = <a_i, a_j> <h_i, h_j>``.
    """
    a = proba.astype(np.float32)
    a[np.arange(a.shape[0]), a.argmax(axis=1)] -= 1.0
    return a, np.ascontiguousarray(h, dtype=np.float32)


def kmeans_pp_gradients(
    a: np.ndarray, h: np.ndarray, k: int, rng: np.random.Generator
) -> np.ndarray:
    """k-means++ seeding on gradient embeddings ``a_i (x) h_i``; first pick has the largest norm.

    Returns
    -------
    numpy.ndarray
        ``k`` row positions, in pick order.
    """
    sq = (a * a).sum(1, dtype=np.float64) * (h * h).sum(1, dtype=np.float64)  # ||g_i||^2
    first = int(np.argmax(sq))
    picks = [first]
    chosen = np.zeros(a.shape[0], dtype=bool)
    chosen[first] = True

    def sqdist_to(j: int) -> np.ndarray:
        return np.maximum(sq + sq[j] - 2.0 * (a @ a[j]).astype(np.float64) * (h @ h[j]), 0.0)

    min_d = sqdist_to(first)
    for _ in range(k - 1):
        weights = np.where(chosen, 0.0, min_d)
        total = weights.sum()
        if total <= 0:  # every remaining point coincides with a center: pick at random
            j = int(rng.choice(np.flatnonzero(~chosen)))
        else:
            j = int(rng.choice(weights.size, p=weights / total))
        picks.append(j)
        chosen[j] = True
        min_d = np.minimum(min_d, sqdist_to(j))
    return np.asarray(picks)


class BADGE(Strategy):
    """Pick diverse, high-magnitude gradient embeddings of the unlabelled pool."""

    name = "badge"
    reference = (
        "Ash et al., Deep Batch Active Learning by Diverse, Uncertain Gradient Lower Bounds, "
        "ICLR 2020"
    )

    def _select(self, state: PoolState, k: int, rng: np.random.Generator) -> np.ndarray:
        h = state.embeddings()[state.unlabelled]
        a, h = gradient_factors(state.proba(), h)
        return state.unlabelled[kmeans_pp_gradients(a, h, k, rng)]
