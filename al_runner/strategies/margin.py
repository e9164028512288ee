"""Margin sampling (Scheffer et al., IDA 2001)."""

from __future__ import annotations

import numpy as np

from al_runner.strategies.base import PoolState, Strategy, top_k


def top2_margin(proba: np.ndarray) -> np.ndarray:
    """Gap between the two largest class probabilities per row of ``proba`` ``(n, C)``."""
    top2 = np.partition(proba, -2, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


class Margin(Strategy):
    """Pick the samples with the smallest gap between the top-2 class probabilities."""

    name = "margin"
    reference = "Scheffer, Decomain & Wrobel, Active hidden Markov models, IDA 2001"

    def _select(self, state: PoolState, k: int, rng: np.random.Generator) -> np.ndarray:
        return state.unlabelled[top_k(-top2_margin(state.proba()), k, rng)]
