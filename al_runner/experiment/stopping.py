"""The loop's side of stopping: a rule's measurements and verdict after every round of a run.

:class:`StopMonitor` holds one run's stop set and the previous round's pool probabilities,
builds the :class:`al_runner.experiment.stop_rules.RoundView` of a round, and returns the
numbers the loop records with the round (``stop_<key>`` and ``stop_verdict``: 1 stop, 0
continue). Verdicts are functions of the recorded numbers, so a resumed run (whose previous
model the loop retrains deterministically) reaches the verdicts an uninterrupted one does.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from al_runner.errors import ALRunnerError
from al_runner.experiment.label_free import LABEL_FREE
from al_runner.experiment.stop_rules import STOP_SET_SIZE, RoundView, StopRule, apply_rule

__all__ = ["VERDICT", "StopMonitor", "stopped"]

#: The recorded verdict of every round: 1.0 stop, 0.0 continue.
VERDICT = "stop_verdict"


def stopped(proxies: dict[str, list[float]]) -> bool:
    """Whether a run's last recorded verdict was ``stop``."""
    verdicts = proxies.get(VERDICT, [])
    return bool(verdicts) and verdicts[-1] == 1.0


class StopMonitor:
    """One run's stopping rule, applied after each round.

    Parameters
    ----------
    rule : StopRule
        The rule (see :func:`al_runner.experiment.stop_rules.get_stop_rule`).
    n_pool : int
        Pool size.
    seed : int
        The run's seed (draws its stop set).
    context : dict
        Strategy, seed, dataset and labels per round, handed to the rule.
    """

    def __init__(self, rule: StopRule, n_pool: int, seed: int, context: dict[str, Any]) -> None:
        self.rule = rule
        rng = np.random.default_rng([seed, zlib.crc32(b"stop_set")])
        self.stop_set = np.sort(rng.choice(n_pool, size=min(STOP_SET_SIZE, n_pool), replace=False))
        self.n_pool = n_pool
        self.context = context
        self.previous: np.ndarray | None = None
        self.text = ""

    def pool_proba(self, learner: Any) -> np.ndarray | None:
        """The learner's softmax on the whole pool, when the rule reads it."""
        if not self.rule.needs_proba:
            return None
        return learner.predict_proba(np.arange(self.n_pool), "train")

    def resume(self, learner: Any) -> None:
        """Remember the rebuilt model of the last finished round (before the next round)."""
        self.previous = self.pool_proba(learner)

    def after_round(
        self,
        learner: Any,
        history: dict[str, list[float]],
        step: int,
        labelled: np.ndarray,
        accuracy: float,
        estimate: float,
    ) -> dict[str, float]:
        """The numbers to record for this round, the verdict among them (``stop_verdict``).

        ``history`` is the run's record before this round (``accuracy``, ``budget``, proxies);
        it is not changed.
        """
        proba = self.pool_proba(learner)
        mask = np.ones(self.n_pool, dtype=bool)
        mask[labelled] = False
        now = {k: list(v)[:step] for k, v in history.items()}
        now.setdefault("accuracy", []).append(float(accuracy))
        now.setdefault("budget", []).append(int(labelled.size))
        if np.isfinite(estimate):
            series = now.setdefault(LABEL_FREE, [])
            series.extend([float("nan")] * (step - len(series)))
            series.append(float(estimate))
        view = RoundView(
            step=step, budget=int(labelled.size), accuracy=float(accuracy),
            estimate=float(estimate), proba=proba, previous=self.previous,
            unlabelled=np.flatnonzero(mask), stop_set=self.stop_set, history=now,
            context=self.context,
        )  # fmt: skip
        try:
            measured, verdict = apply_rule(self.rule, view)
        except ALRunnerError:
            raise
        except (ValueError, TypeError) as exc:
            raise ALRunnerError(f"stop rule {self.rule.name}: {exc}") from exc
        self.previous = proba
        self.text = ("stop" if verdict else "continue") + (
            f" ({d})" if (d := self.rule.describe(view)) else ""
        )
        return measured | {VERDICT: 1.0 if verdict else 0.0}
