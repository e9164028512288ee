"""Strategy schedules: switch the acquisition function at given cumulative budgets.

A schedule is written as one strategy name, ``first>second@B1>third@B2``: ``first`` selects
while fewer than ``B1`` samples are labelled, ``second`` from ``B1`` labels on, ``third`` from
``B2`` on (the hard-switch schedules of the mechanism-driven theory of AL phases, Machnio et
al. 2026, e.g. ``typiclust>coreset@5000>margin@8300``). The name holds no comma, so it sits in
the comma-separated ``--strategies`` list and in sweep grids like any strategy, and the curves
file keeps it as the strategy label.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from al_runner.errors import ALRunnerError
from al_runner.strategies.base import PoolState, Strategy

__all__ = ["Schedule", "is_schedule", "parse_schedule", "format_schedule"]


def is_schedule(name: str) -> bool:
    """Whether a strategy name is a schedule spec."""
    return ">" in name


def parse_schedule(spec: str, known: Any) -> list[tuple[int, str]]:
    """``"a>b@100>c@300"`` -> ``[(0, "a"), (100, "b"), (300, "c")]``, checked.

    Raises
    ------
    ALRunnerError
        On unknown strategy names, missing or non-increasing budgets, or nested schedules.
    """
    stages: list[tuple[int, str]] = []
    for i, part in enumerate(spec.split(">")):
        name, _, at = part.strip().partition("@")
        if i == 0 and at:
            raise ALRunnerError(f"schedule {spec!r}: the first stage starts at 0; drop '@{at}'")
        if i > 0:
            try:
                start = int(at)
            except ValueError:
                raise ALRunnerError(
                    f"schedule {spec!r}: stage {name!r} needs a start budget, e.g. {name}@500"
                ) from None
        else:
            start = 0
        if name not in known:
            raise ALRunnerError(
                f"schedule {spec!r}: unknown strategy {name!r}; known: {', '.join(known)}"
            )
        if stages and start <= stages[-1][0]:
            raise ALRunnerError(f"schedule {spec!r}: switch budgets must increase")
        stages.append((start, name))
    if len(stages) < 2:
        raise ALRunnerError(f"schedule {spec!r} has one stage; use the strategy's own name")
    return stages


def format_schedule(stages: list[tuple[int, str]]) -> str:
    """The spec of ``[(0, "a"), (100, "b")]``: ``"a>b@100"``."""
    return ">".join(name if start == 0 else f"{name}@{int(start)}" for start, name in stages)


class Schedule(Strategy):
    """Delegates each round to the stage whose start budget the labelled set has reached.

    Parameters
    ----------
    stages : list of (int, Strategy)
        Start budgets (the first 0) and strategy objects.
    """

    name = "schedule"
    needs_model = False
    reference = (
        "Machnio, Nielsen & Mehdipour Ghazi, A Mechanism-Driven Theory of Phase Transitions "
        "in Active Learning, 2026 (hard-switch schedules)"
    )

    def __init__(self, stages: list[tuple[int, Strategy]]) -> None:
        self.stages = stages
        self.name = format_schedule([(start, s.name) for start, s in stages])

    def active(self, n_labelled: int) -> Strategy:
        """The stage's strategy for a labelled set of this size."""
        current = self.stages[0][1]
        for start, strategy in self.stages:
            if n_labelled >= start:
                current = strategy
        return current

    def select(self, state: PoolState, k: int, rng: np.random.Generator) -> np.ndarray:
        """Pick with the active stage (its own cold-start rule applies)."""
        return self.active(int(state.labelled.size)).select(state, k, rng)

    def __repr__(self) -> str:
        return f"Schedule({self.name!r})"
