"""BALD: mutual information between predictions and weights (Houlsby et al., 2011)."""

from __future__ import annotations

import numpy as np

from al_runner.strategies.base import PoolState, Strategy, check_number, top_k
from al_runner.strategies.entropy import entropy


def mutual_information(mc_proba: np.ndarray) -> np.ndarray:
    """BALD score ``H[mean_t p_t] - mean_t H[p_t]`` from samples ``(T, n, C)``."""
    return entropy(mc_proba.mean(axis=0)) - entropy(mc_proba).mean(axis=0)


class BALD(Strategy):
    """Pick the samples on which MC-dropout models disagree most (epistemic uncertainty).

    Parameters
    ----------
    samples : int
        Number of dropout masks ``T`` (trunk computed once).
    """

    name = "bald"
    reference = (
        "Houlsby et al., Bayesian Active Learning for Classification and Preference Learning, "
        "2011; Gal et al., ICML 2017"
    )

    def __init__(self, samples: int = 10) -> None:
        check_number("bald", "samples", samples, low=2, integer=True)
        self.samples = int(samples)

    def _select(self, state: PoolState, k: int, rng: np.random.Generator) -> np.ndarray:
        return state.unlabelled[top_k(mutual_information(state.mc_proba(self.samples)), k, rng)]
