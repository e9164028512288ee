"""Schedules as the reference's ``mechanistic-hard-switch-v1`` JSON files.

The reference PALM code's mechanistic tools (``deep-al/tools/mechanistic/export_schedule.py``
and ``phases.hard_switch_schedule``) write a hard-switch schedule as::

    {"schema": "mechanistic-hard-switch-v1", "source": "...", "thresholds": [t1, t2],
     "stages": ["typiclust", "coreset", "uncertainty"], ...}

and its ``hard_switch`` strategy runs ``stages[0]`` while fewer than ``t1`` samples are
labelled, ``stages[1]`` while fewer than ``t2``, then ``stages[2]``: the semantics of
al_runner's ``a>b@t1>c@t2``. :func:`write_schedule_json` writes a :class:`SchedulePlan` (or
stages) in that form; ``al-runner run --strategies @FILE`` runs it; :func:`read_schedule_json`
reads one back (a file of the reference's or ours) as ``[(start, name), ...]``.

The reference's loader accepts only ``source`` ``"proxy_phase_analysis"`` or
``"mechanistic_global_regression"``; the second is what ``export_schedule.py`` writes for
budgets chosen outside its phase analysis (``"selection": "predefined_thresholds"``), so that is
the ``source`` written here, with ``selection`` naming how palm_bayes chose them and a
``palm_bayes`` block holding the plan's posterior summary. That loader also ignores ``stages``
(it always runs TypiClust, CoreSet, uncertainty) and needs exactly two thresholds:
:func:`reference_compatible` says whether a schedule means the same thing there.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from palm_bayes.data.contract import atomic_write
from palm_bayes.errors import PalmInputError

__all__ = [
    "SCHEDULE_SCHEMA",
    "REFERENCE_STAGES",
    "read_schedule_json",
    "reference_compatible",
    "schedule_payload",
    "write_schedule_json",
]

SCHEDULE_SCHEMA = "mechanistic-hard-switch-v1"
#: What the reference's hard switch runs, whatever a file's ``stages`` say.
REFERENCE_STAGES = ("typiclust", "coreset", "uncertainty")
#: The ``source`` values the reference's ``hard_switch`` loader accepts.
REFERENCE_SOURCES = ("proxy_phase_analysis", "mechanistic_global_regression")


def _stages_of(plan: Any) -> list[tuple[float, str]]:
    stages = plan.stages if hasattr(plan, "stages") else plan
    return [(float(start), str(name)) for start, name in stages]


def reference_compatible(stages: Sequence[tuple[float, str]]) -> bool:
    """Whether the reference's ``hard_switch`` runs these stages as written (TCU, 2 switches)."""
    return tuple(name for _, name in stages) == REFERENCE_STAGES


def schedule_payload(plan: Any, *, selection: str | None = None) -> dict[str, Any]:
    """The ``mechanistic-hard-switch-v1`` dict of a plan or of ``[(start, name), ...]``.

    Parameters
    ----------
    plan : SchedulePlan or sequence of (start budget, strategy)
        A plan from :func:`palm_bayes.decisions.schedule.schedule`, or stages whose first
        start is 0.
    selection : str, optional
        How the thresholds were chosen (default: ``"palm_bayes_posterior_<objective>"`` for a
        plan, ``"predefined_thresholds"`` for bare stages).

    Returns
    -------
    dict
        ``schema, source, selection, thresholds, stages`` (and ``palm_bayes``: the plan's
        spec, objective and posterior gain).

    Examples
    --------
    >>> schedule_payload([(0, "typiclust"), (100, "coreset"), (300, "uncertainty")])["thresholds"]
    [100.0, 300.0]
    """
    stages = _stages_of(plan)
    if len(stages) < 2:
        only = stages[0][1] if stages else "nothing"
        raise PalmInputError(
            f"the schedule has one stage ({only}): no switch to write; run {only} alone"
        )
    if stages[0][0] != 0 or any(b <= a for (a, _), (b, _) in itertools.pairwise(stages)):
        raise PalmInputError(f"schedule starts must be 0 then increasing, got {stages}")
    is_plan = hasattr(plan, "objective")
    payload: dict[str, Any] = {
        "schema": SCHEDULE_SCHEMA,
        "source": "mechanistic_global_regression",
        "selection": selection
        or (f"palm_bayes_posterior_{plan.objective}" if is_plan else "predefined_thresholds"),
        "thresholds": [start for start, _ in stages[1:]],
        "stages": [name for _, name in stages],
    }
    if is_plan:
        payload["palm_bayes"] = {
            "spec": plan.spec,
            "objective": plan.objective,
            "target": plan.target,
            "budget_range": [float(v) for v in plan.budget_range],
            "best_single": plan.best_single,
            "gain": {k: float(v) for k, v in plan.gain.items()},
            "p_beats_best_single": float(plan.p_beats_best_single),
        }
    return payload


def write_schedule_json(
    plan: Any, path: str | os.PathLike, *, selection: str | None = None
) -> Path:
    """Write :func:`schedule_payload` to ``path`` atomically; return the path."""
    payload = schedule_payload(plan, selection=selection)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(payload, indent=2, allow_nan=False) + "\n"
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def read_schedule_json(path: str | os.PathLike) -> list[tuple[float, str]]:
    """Read a ``mechanistic-hard-switch-v1`` file: ``[(0, stage0), (t1, stage1), ...]``.

    ``stages`` default to the reference's TypiClust, CoreSet, uncertainty; other keys are
    provenance and ignored. Anything malformed is a one-line :class:`PalmInputError`.
    """
    path = Path(path)
    try:
        payload = json.loads(path.read_text())
    except FileNotFoundError:
        raise PalmInputError(f"schedule file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PalmInputError(f"schedule file {path} is not readable JSON: {first}") from None
    where = f"schedule file {path}"
    if not isinstance(payload, dict) or payload.get("schema") != SCHEDULE_SCHEMA:
        got = payload.get("schema") if isinstance(payload, dict) else type(payload).__name__
        raise PalmInputError(f"{where}: schema {got!r:.60} is not {SCHEDULE_SCHEMA!r}")
    thresholds = payload.get("thresholds")
    ok = isinstance(thresholds, list) and thresholds and all(
        isinstance(t, int | float) and not isinstance(t, bool) and math.isfinite(t) and t > 0
        for t in thresholds
    )  # fmt: skip
    if not ok or any(b <= a for a, b in itertools.pairwise(thresholds)):
        raise PalmInputError(f"{where}: 'thresholds' must be increasing positive label budgets")
    stages = payload.get("stages", list(REFERENCE_STAGES))
    if not isinstance(stages, list) or not all(isinstance(n, str) and n for n in stages):
        raise PalmInputError(f"{where}: 'stages' must be a list of strategy names")
    if len(stages) != len(thresholds) + 1:
        raise PalmInputError(
            f"{where}: {len(stages)} stages need {len(stages) - 1} thresholds, got "
            f"{len(thresholds)}"
        )
    return [(0.0, stages[0])] + [(float(t), n) for t, n in zip(thresholds, stages[1:], strict=True)]
