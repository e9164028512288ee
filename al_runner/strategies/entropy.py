"""Maximum-entropy sampling (Shannon entropy of the softmax)."""

from __future__ import annotations

import numpy as np

from al_runner.strategies.base import PoolState, Strategy, top_k


def entropy(proba: np.ndarray, axis: int = -1) -> np.ndarray:
    """Shannon entropy (nats) of probability vectors along ``axis``."""
    p = np.clip(proba, 1e-12, 1.0)
    return -(proba * np.log(p)).sum(axis=axis)


class Entropy(Strategy):
    """Pick the samples with the highest predictive entropy (Shannon, 1948; Settles, 2009)."""

    name = "entropy"
    reference = "Settles, Active Learning Literature Survey, 2009"

    def _select(self, state: PoolState, k: int, rng: np.random.Generator) -> np.ndarray:
        return state.unlabelled[top_k(entropy(state.proba()), k, rng)]
