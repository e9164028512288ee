"""DBAL: max-entropy of the MC-dropout predictive (Gal, Islam & Ghahramani, ICML 2017)."""

from __future__ import annotations

import numpy as np

from al_runner.strategies.base import PoolState, Strategy, check_number, top_k
from al_runner.strategies.entropy import entropy


class DBAL(Strategy):
    """Pick the samples with the highest entropy of the mean of ``T`` dropout predictions.

    Parameters
    ----------
    samples : int
        Number of dropout masks ``T`` (the trunk is computed once, only the head is sampled).
    """

    name = "dbal"
    reference = "Gal, Islam & Ghahramani, Deep Bayesian Active Learning with Image Data, ICML 2017"

    def __init__(self, samples: int = 10) -> None:
        check_number("dbal", "samples", samples, low=2, integer=True)
        self.samples = int(samples)

    def _select(self, state: PoolState, k: int, rng: np.random.Generator) -> np.ndarray:
        mc = state.mc_proba(self.samples)
        return state.unlabelled[top_k(entropy(mc.mean(axis=0)), k, rng)]
