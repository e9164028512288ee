"""Query strategies, one module each, looked up by name in one registry.

Every strategy has ``select(state, k, rng) -> numpy.ndarray`` of pool indices; see
:class:`al_runner.strategies.base.PoolState` for what a strategy may read. Model-based
strategies fall back to random sampling when there is no model yet (the cold start);
TypiClust (k-means or SCAN clusters), ProbCover and VAAL select from the fixed representation
without a model.
"""

from __future__ import annotations

from typing import Any

from al_runner.errors import ALRunnerError
from al_runner.strategies.badge import BADGE
from al_runner.strategies.bald import BALD
from al_runner.strategies.base import PoolState, Strategy, top_k
from al_runner.strategies.coreset import CoreSet
from al_runner.strategies.dbal import DBAL
from al_runner.strategies.entropy import Entropy
from al_runner.strategies.margin import Margin
from al_runner.strategies.probcover import ProbCover
from al_runner.strategies.random import RandomSampling
from al_runner.strategies.typiclust import TypiClust
from al_runner.strategies.typiclust_scan import TypiClustSCAN
from al_runner.strategies.uncertainty import Uncertainty
from al_runner.strategies.vaal import VAAL

__all__ = ["STRATEGIES", "PoolState", "Strategy", "get_strategy", "top_k"]

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (
        RandomSampling,
        Uncertainty,
        Entropy,
        Margin,
        DBAL,
        BALD,
        CoreSet,
        TypiClust,
        ProbCover,
        BADGE,
        VAAL,
        TypiClustSCAN,
    )
}


def get_strategy(name: str, **kwargs: Any) -> Strategy:
    """Instantiate a strategy by registry name.

    Parameters
    ----------
    name : str
        One of :data:`STRATEGIES`.
    **kwargs
        The strategy's own parameters (e.g. ``samples`` for dbal/bald, ``delta`` for probcover).

    Returns
    -------
    Strategy

    Examples
    --------
    >>> get_strategy("margin").name
    'margin'
    """
    cls = STRATEGIES.get(name)
    if cls is None:
        raise ALRunnerError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ALRunnerError(f"strategy {name!r}: {exc}") from exc
