"""Strategy schedules: switch the acquisition function at given cumulative budgets.

A schedule is written as one strategy name, ``first>second@B1>third@B2``: ``first`` selects
while fewer than ``B1`` samples are labelled, ``second`` from ``B1`` labels on, ``third`` from
``B2`` on (the hard-switch schedules of the mechanism-driven theory of AL phases, Machnio et
al. 2026, e.g. ``typiclust>coreset@5000>margin@8300``). The name holds no comma, so it sits in
the comma-separated ``--strategies`` list and in sweep grids like any strategy, and the curves
file keeps it as the strategy label.

The reference PALM code's mechanistic tools write a schedule as JSON (``schema:
"mechanistic-hard-switch-v1"``, ``thresholds: [t1, t2]`` and ``stages: ["typiclust",
"coreset", "uncertainty"]``); :func:`read_schedule_json` turns such a file into the spec above,
and ``--strategies @schedule.json`` (or ``"@schedule.json"`` in a grid's strategies) runs it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from al_runner.errors import ALRunnerError
from al_runner.strategies.base import PoolState, Strategy

__all__ = [
    "SCHEDULE_SCHEMA",
    "REFERENCE_STAGES",
    "Schedule",
    "expand_schedule_files",
    "format_schedule",
    "is_schedule",
    "parse_schedule",
    "read_schedule_json",
    "schedule_from_json",
]

#: The ``schema`` of the reference's hard-switch schedule files (``export_schedule.py``).
SCHEDULE_SCHEMA = "mechanistic-hard-switch-v1"
#: The stages of the reference's hard switch, used when a file gives thresholds only.
REFERENCE_STAGES = ("typiclust", "coreset", "uncertainty")


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


def schedule_from_json(payload: Any, known: Any, source: str = "schedule") -> str:
    """The spec ``a>b@B1>c@B2`` of a ``mechanistic-hard-switch-v1`` schedule (a parsed JSON).

    ``thresholds`` are the labelled-set sizes at which the next stage starts (the reference's
    ``stage = stages[0] if n < t1 else stages[1] if n < t2 else ...``); a fractional threshold
    ``t`` starts its stage at ``ceil(t)`` labels, the first whole number ``n >= t``, so the
    switch happens exactly where the reference's would. ``stages`` default to the reference's
    fixed ``typiclust, coreset, uncertainty``. Other keys (``source``, ``selection``,
    ``proxy_columns``, ...) are provenance and are ignored.

    Raises
    ------
    ALRunnerError
        One line, on anything else: another schema, missing or non-increasing thresholds,
        a stage count that does not match, unknown strategy names.
    """
    if not isinstance(payload, dict):
        raise ALRunnerError(f"{source}: a schedule file holds a JSON object, got {payload!r:.60}")
    schema = payload.get("schema")
    if schema != SCHEDULE_SCHEMA:
        raise ALRunnerError(f"{source}: schema {schema!r:.60} is not {SCHEDULE_SCHEMA!r}")
    thresholds = payload.get("thresholds")
    if not isinstance(thresholds, list) or not thresholds:
        raise ALRunnerError(f"{source}: 'thresholds' must be a non-empty list of label budgets")
    for t in thresholds:
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or t <= 0:
            raise ALRunnerError(f"{source}: thresholds must be positive numbers, got {t!r:.60}")
    if any(b <= a for a, b in zip(thresholds, thresholds[1:], strict=False)):
        raise ALRunnerError(f"{source}: thresholds must increase, got {thresholds}")
    stages = payload.get("stages", list(REFERENCE_STAGES))
    if not isinstance(stages, list) or not all(isinstance(n, str) and n for n in stages):
        raise ALRunnerError(f"{source}: 'stages' must be a list of strategy names")
    if len(stages) != len(thresholds) + 1:
        raise ALRunnerError(
            f"{source}: {len(stages)} stages need {len(stages) - 1} thresholds, got "
            f"{len(thresholds)}"
        )
    for name in stages:
        if name not in known or is_schedule(name):
            raise ALRunnerError(
                f"{source}: unknown strategy {name!r:.60}; known: {', '.join(known)}"
            )
    spec = format_schedule(
        [(0, stages[0])] + [(math.ceil(t), n) for t, n in zip(thresholds, stages[1:], strict=True)]
    )
    try:
        parse_schedule(spec, known)
    except ALRunnerError as err:
        raise ALRunnerError(f"{source}: {err}") from None
    return spec


def read_schedule_json(path: str | os.PathLike, known: Any) -> str:
    """Read a ``mechanistic-hard-switch-v1`` file: its spec (see :func:`schedule_from_json`)."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text())
    except FileNotFoundError:
        raise ALRunnerError(f"schedule file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ALRunnerError(f"schedule file {path} is not readable JSON: {first}") from None
    return schedule_from_json(payload, known, source=f"schedule file {path}")


def expand_schedule_files(names: Sequence[str], known: Any) -> list[str]:
    """Replace every ``@file.json`` in a strategy list by the spec of that schedule file."""
    return [read_schedule_json(n[1:], known) if n.startswith("@") else n for n in names]


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
