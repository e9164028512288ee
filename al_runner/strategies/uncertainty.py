"""Least-confidence sampling (Lewis & Gale, SIGIR 1994)."""

from __future__ import annotations

import numpy as np

from al_runner.strategies.base import PoolState, Strategy, top_k


def least_confidence(proba: np.ndarray) -> np.ndarray:
    """Uncertainty ``1 - max_c p(c | x)`` per row of ``proba`` ``(n, C)``."""
    return 1.0 - proba.max(axis=1)


class Uncertainty(Strategy):
    """Pick the samples whose most likely class has the lowest probability."""

    name = "uncertainty"
    reference = "Lewis & Gale, A sequential algorithm for training text classifiers, SIGIR 1994"

    def _select(self, state: PoolState, k: int, rng: np.random.Generator) -> np.ndarray:
        return state.unlabelled[top_k(least_confidence(state.proba()), k, rng)]
