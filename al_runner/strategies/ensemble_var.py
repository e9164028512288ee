"""Ensemble variation ratio (Beluch et al., CVPR 2018)."""

from __future__ import annotations

import numpy as np

from al_runner.errors import ALRunnerError
from al_runner.strategies.base import PoolState, Strategy, top_k


def variation_ratio(member_proba: np.ndarray) -> np.ndarray:
    """``1 - (votes of the modal class) / M`` of the members' predicted classes.

    Parameters
    ----------
    member_proba : numpy.ndarray
        ``(M, n, C)`` class probabilities of ``M`` ensemble members.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` in ``[0, 1 - 1/M]``; 0 when all members predict the same class.
    """
    m, n, c = member_proba.shape
    votes = np.zeros((n, c), dtype=np.int64)
    np.add.at(votes, (np.arange(n)[None, :].repeat(m, 0), member_proba.argmax(axis=2)), 1)
    return 1.0 - votes.max(axis=1) / m


class EnsembleVariationRatio(Strategy):
    """Label the samples whose ensemble members disagree most (highest variation ratio).

    The ensemble is this round's model plus ``members - 1`` copies of the learner trained from
    scratch on the labelled set with other seeds (bootstrap resamples for the deterministic
    linear learner). Ties (the ratio takes ``M`` values) are broken at random.

    Parameters
    ----------
    members : int
        Ensemble size (3 in the PALM/TypiClust code base's default).
    bootstrap : bool, optional
        Train members on bootstrap resamples (default: only for the ``linear`` learner).
    """

    name = "ensemble_var"
    reference = (
        "Beluch et al., The Power of Ensembles for Active Learning in Image Classification, "
        "CVPR 2018"
    )

    def __init__(self, members: int = 3, bootstrap: bool | None = None) -> None:
        if int(members) < 2:
            raise ALRunnerError(f"ensemble_var: members must be >= 2, got {members}")
        self.members = int(members)
        self.bootstrap = bootstrap

    def _select(self, state: PoolState, k: int, rng: np.random.Generator) -> np.ndarray:
        scores = variation_ratio(state.ensemble_proba(self.members, self.bootstrap))
        return state.unlabelled[top_k(scores, k, rng)]
