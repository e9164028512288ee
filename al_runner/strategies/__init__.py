"""Query strategies, one module each, looked up by name in one registry.

Every strategy has ``select(state, k, rng) -> numpy.ndarray`` of pool indices; see
:class:`al_runner.strategies.base.PoolState` for what a strategy may read. Model-based
strategies fall back to random sampling when there is no model yet (the cold start);
TypiClust (k-means or SCAN clusters), ProbCover, DCoM and VAAL select from the fixed
representation without a model (DCoM mixes in the model's margin once there is one);
ensemble_var trains extra ensemble members. A schedule ``a>b@B1>c@B2`` switches strategies
at cumulative budgets.
"""

from __future__ import annotations

from typing import Any

from al_runner.errors import ALRunnerError
from al_runner.strategies.badge import BADGE
from al_runner.strategies.bald import BALD
from al_runner.strategies.base import PoolState, Strategy, top_k
from al_runner.strategies.coreset import CoreSet
from al_runner.strategies.dbal import DBAL
from al_runner.strategies.dcom import DCoM
from al_runner.strategies.ensemble_var import EnsembleVariationRatio
from al_runner.strategies.entropy import Entropy
from al_runner.strategies.margin import Margin
from al_runner.strategies.probcover import ProbCover
from al_runner.strategies.random import RandomSampling
from al_runner.strategies.schedule import Schedule, is_schedule, parse_schedule
from al_runner.strategies.typiclust import TypiClust
from al_runner.strategies.typiclust_scan import TypiClustSCAN
from al_runner.strategies.uncertainty import Uncertainty
from al_runner.strategies.vaal import VAAL

__all__ = [
    "STRATEGIES",
    "PoolState",
    "Schedule",
    "Strategy",
    "check_strategy_names",
    "get_strategy",
    "register_strategy",
    "stage_names",
    "strategy_kwargs",
    "top_k",
]

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
        DCoM,
        EnsembleVariationRatio,
        VAAL,
        TypiClustSCAN,
    )
}


_RESERVED = ",>@ "  # list and schedule syntax: a strategy name must not contain these


def register_strategy(
    name: str, cls: type[Strategy] | None = None, *, replace: bool = False
) -> Any:
    """Add a user strategy to the registry, so that every name lookup finds it.

    Parameters
    ----------
    name : str
        Registry name (no comma, ``>``, ``@`` or space: those write lists and schedules).
    cls : type
        A :class:`Strategy` subclass implementing ``_select(state, k, rng)``; its ``name``
        is set to ``name`` (it must be unset or equal). Without ``cls``, a class decorator.
    replace : bool
        Allow replacing a registered strategy of the same name.

    Returns
    -------
    type
        ``cls`` (or the decorator).

    Examples
    --------
    >>> import numpy as np
    >>> class LowestIndex(Strategy):
    ...     # the unlabelled samples of lowest index (a toy)
    ...     needs_model = False
    ...     def _select(self, state, k, rng):
    ...         return state.unlabelled[:k]
    >>> _ = register_strategy("lowest_index", LowestIndex)
    >>> state = PoolState([0, 2], n_pool=6, n_classes=2)
    >>> get_strategy("lowest_index").select(state, 2, np.random.default_rng(0))
    array([1, 3])
    >>> del STRATEGIES["lowest_index"]
    """
    if cls is None:
        return lambda c: register_strategy(name, c, replace=replace)
    if not isinstance(cls, type) or not issubclass(cls, Strategy):
        raise ALRunnerError(f"register_strategy({name!r}): {cls!r} is not a Strategy subclass")
    if not name or any(c in name for c in _RESERVED) or name == "all":
        raise ALRunnerError(
            f"register_strategy: {name!r} is not a usable name (no comma, '>', '@', space or 'all')"
        )
    if cls.__dict__.get("name", "") not in ("", name):  # its own name, not a base class's
        raise ALRunnerError(f"register_strategy({name!r}): {cls.__name__}.name is {cls.name!r}")
    if name in STRATEGIES and STRATEGIES[name] is not cls and not replace:
        raise ALRunnerError(f"strategy {name!r} is registered already (replace=True to replace)")
    cls.name = name
    STRATEGIES[name] = cls
    return cls


def get_strategy(name: str, **kwargs: Any) -> Strategy:
    """Instantiate a strategy by registry name.

    Parameters
    ----------
    name : str
        One of :data:`STRATEGIES`.
    **kwargs
        The strategy's own parameters (e.g. ``samples`` for dbal/bald, ``delta`` for
        probcover/dcom, ``members`` for ensemble_var).

    Returns
    -------
    Strategy

    Examples
    --------
    >>> get_strategy("margin").name
    'margin'
    >>> get_strategy("typiclust>margin@200").name
    'typiclust>margin@200'

    A schedule ``a>b@B1>c@B2`` (see :mod:`al_runner.strategies.schedule`) passes ``kwargs``
    of the form ``{stage name: {...}}`` on to its stages.
    """
    if is_schedule(name):
        stages = parse_schedule(name, STRATEGIES)
        unknown = sorted(set(kwargs) - {s for _, s in stages})
        if unknown:
            raise ALRunnerError(f"schedule {name!r}: options for strategies it lacks: {unknown}")
        return Schedule([(start, get_strategy(s, **kwargs.get(s, {}))) for start, s in stages])
    cls = STRATEGIES.get(name)
    if cls is None:
        raise ALRunnerError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ALRunnerError(f"strategy {name!r}: {exc}") from exc


def check_strategy_names(names: list[str]) -> None:
    """Raise a one-line error for the first unknown strategy or malformed schedule."""
    for name in names:
        if is_schedule(name):
            parse_schedule(name, STRATEGIES)
        elif name not in STRATEGIES:
            raise ALRunnerError(
                f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)} (or 'all', or a "
                "schedule like typiclust>margin@500)"
            )


def stage_names(name: str) -> set[str]:
    """The registry names a strategy name runs: itself, or a schedule's stages."""
    return {s for _, s in parse_schedule(name, STRATEGIES)} if is_schedule(name) else {name}


def strategy_kwargs(name: str, options: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The keyword arguments of ``get_strategy(name, ...)`` from per-strategy ``options``."""
    if is_schedule(name):
        return {s: options[s] for s in stage_names(name) if s in options}
    return dict(options.get(name, {}))
