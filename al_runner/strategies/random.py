"""Random sampling: the baseline every AL strategy must beat."""

from __future__ import annotations

import numpy as np

from al_runner.strategies.base import PoolState, Strategy


class RandomSampling(Strategy):
    """Uniform sampling without replacement from the unlabelled pool."""

    name = "random"
    needs_model = False

    def _select(self, state: PoolState, k: int, rng: np.random.Generator) -> np.ndarray:
        return rng.choice(state.unlabelled, size=k, replace=False)
