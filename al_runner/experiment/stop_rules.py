"""Stopping rules for an AL run: when to stop buying labels, one interface, looked up by name.

A rule is a small object with a ``name``, :meth:`StopRule.measure` (the per-round numbers it
needs, recorded in the run's state and the curves file as ``stop_<key>``) and
:meth:`StopRule.update` (the verdict of the round, a pure function of the recorded numbers, so
a run that is killed and resumed reaches the same verdicts). The loop hands both a
:class:`RoundView` of the round.

The baselines (see Pullar-Strecker, Dost, Frank & Wicker, "Hitting the target: stopping active
learning at the cost-based optimum", Machine Learning 2022, for a comparison):

* ``stabilizing_predictions`` (Bloodgood & Vijay-Shanker, CoNLL 2009): Cohen's kappa between
  the predictions of consecutive models on a fixed *stop set* of pool examples; stop when the
  mean of the last ``window`` kappas reaches ``threshold`` (their defaults: 3 and 0.99).
* ``classification_change`` (Zhu, Wang & Hovy 2008): stop when no prediction on the unlabelled
  pool changes between two consecutive rounds.
* ``max_confidence`` (Zhu, Wang & Hovy 2008): stop when even the most uncertain unlabelled
  example (the one uncertainty sampling would pick) has entropy below ``threshold`` (nats).
* ``overall_uncertainty`` (Zhu, Wang & Hovy 2008): stop when the mean entropy of the unlabelled
  pool falls below ``threshold`` (nats).
* ``fixed_budget``: stop once ``budget`` labels are spent.

Rules from other packages (a rule that fits a learning curve, e.g. ``palm_bayes``'s) are named
``module:attribute`` and imported when the run starts (see :func:`get_stop_rule`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from al_runner.errors import ALRunnerError

__all__ = [
    "PLUGINS",
    "STOP_RULES",
    "RoundView",
    "StopRule",
    "apply_rule",
    "cohen_kappa",
    "entropy",
    "get_stop_rule",
    "parse_stop_rule",
]

#: Pool examples of the stop set (Bloodgood & Vijay-Shanker used 2,000 unlabelled examples).
STOP_SET_SIZE = 2000


@dataclass
class RoundView:
    """What a stopping rule may read about one finished round of one run.

    Parameters
    ----------
    step : int
        Round index (0: the initial set).
    budget : int
        Labels spent so far.
    accuracy : float
        Test-set accuracy of this round's model.
    estimate : float
        The label-free accuracy estimate of the round (NaN when not recorded).
    proba : numpy.ndarray, optional
        This round's model's softmax on the whole pool ``(n_pool, C)``.
    previous : numpy.ndarray, optional
        The previous round's model's softmax on the whole pool (None at step 0).
    unlabelled : numpy.ndarray
        Pool indices still unlabelled after this round.
    stop_set : numpy.ndarray
        Fixed pool indices of the stop set.
    history : dict
        The run's recorded per-round series up to and including this round (``accuracy``,
        ``budget``, ``label_free_accuracy``, and every ``stop_<key>`` a rule measured).
    context : dict
        What the run is (strategy, seed, dataset, labels per round, its final budget: the
        labels of the last round), for rules that say so.
    """

    step: int
    budget: int
    accuracy: float = float("nan")
    estimate: float = float("nan")
    proba: np.ndarray | None = None
    previous: np.ndarray | None = None
    unlabelled: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    stop_set: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    history: dict[str, list[float]] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)

    def series(self, key: str) -> np.ndarray:
        """A recorded series as floats (empty when not recorded)."""
        return np.asarray(self.history.get(key, []), dtype=float)


class StopRule:
    """A stopping rule: per-round measurements and a verdict from them.

    Subclasses set ``name`` and implement :meth:`update`; those that read the model set
    ``needs_proba`` and implement :meth:`measure`.
    """

    name: ClassVar[str] = ""
    #: Whether :meth:`measure` needs the round's pool probabilities (a forward pass).
    needs_proba: ClassVar[bool] = False
    #: The keyword a bare value in ``NAME:VALUE`` sets.
    primary: ClassVar[str | None] = None

    def measure(self, view: RoundView) -> dict[str, float]:
        """Numbers of the round to record as ``stop_<key>`` (default none)."""
        return {}

    def update(self, view: RoundView) -> bool:
        """Whether to stop after this round (reads ``view.history``)."""
        raise NotImplementedError

    def describe(self, view: RoundView) -> str:
        """A short text of the rule's state for the progress bar."""
        return ""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


def cohen_kappa(a: np.ndarray, b: np.ndarray, n_classes: int | None = None) -> float:
    """Cohen's kappa of two label vectors (1 when they agree and neither varies)."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    if a.shape != b.shape or a.size == 0:
        raise ALRunnerError(f"kappa needs two label vectors of one shape, got {a.shape}, {b.shape}")
    c = int(max(a.max(), b.max()) + 1 if n_classes is None else n_classes)
    observed = float(np.mean(a == b))
    chance = float(np.dot(np.bincount(a, minlength=c), np.bincount(b, minlength=c))) / a.size**2
    if chance >= 1.0:
        return 1.0 if observed == 1.0 else 0.0
    return (observed - chance) / (1.0 - chance)


def entropy(proba: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of each row of ``(n, C)`` probabilities."""
    p = np.clip(np.asarray(proba, float), 1e-12, 1.0)
    return -(p * np.log(p)).sum(-1)


class StabilizingPredictions(StopRule):
    """Bloodgood & Vijay-Shanker (2009): agreement of consecutive models on a stop set.

    Parameters
    ----------
    threshold : float
        Mean kappa over the window that stops the run (0.99).
    window : int
        Consecutive kappas averaged (3).
    """

    name = "stabilizing_predictions"
    needs_proba = True
    primary = "threshold"

    def __init__(self, threshold: float = 0.99, window: int = 3) -> None:
        self.threshold, self.window = threshold, window

    def measure(self, view: RoundView) -> dict[str, float]:
        """Kappa between this and the previous model's predictions on the stop set."""
        if view.previous is None or view.proba is None:
            return {"kappa": float("nan")}
        idx = view.stop_set
        c = view.proba.shape[1]
        now, before = view.proba[idx].argmax(1), view.previous[idx].argmax(1)
        return {"kappa": cohen_kappa(before, now, c)}

    def update(self, view: RoundView) -> bool:
        """Stop when the last ``window`` kappas exist and their mean reaches the threshold."""
        kappa = view.series("stop_kappa")[-int(self.window) :]
        return bool(
            kappa.size == int(self.window)
            and np.all(np.isfinite(kappa))
            and kappa.mean() >= self.threshold
        )

    def describe(self, view: RoundView) -> str:
        """The window's mean kappa."""
        kappa = view.series("stop_kappa")[-int(self.window) :]
        return f"kappa {np.nanmean(kappa):.3f}" if np.isfinite(kappa).any() else ""


class ClassificationChange(StopRule):
    """Zhu, Wang & Hovy (2008): stop when no unlabelled prediction changes between rounds.

    Parameters
    ----------
    max_changes : int
        Changed predictions still counted as "no change" (0, the rule as published).
    """

    name = "classification_change"
    needs_proba = True
    primary = "max_changes"

    def __init__(self, max_changes: int = 0) -> None:
        self.max_changes = max_changes

    def measure(self, view: RoundView) -> dict[str, float]:
        """Predictions on the still unlabelled pool that differ from the previous model's."""
        if view.previous is None or view.proba is None:
            return {"changed": float("nan")}
        idx = view.unlabelled
        changed = view.proba[idx].argmax(1) != view.previous[idx].argmax(1)
        return {"changed": float(changed.sum())}

    def update(self, view: RoundView) -> bool:
        """Stop when this round changed at most ``max_changes`` predictions."""
        changed = view.series("stop_changed")
        return bool(changed.size and np.isfinite(changed[-1]) and changed[-1] <= self.max_changes)

    def describe(self, view: RoundView) -> str:
        """The changed predictions."""
        changed = view.series("stop_changed")
        return f"changed {changed[-1]:.0f}" if changed.size and np.isfinite(changed[-1]) else ""


class MaxConfidence(StopRule):
    """Zhu, Wang & Hovy (2008): stop when the most uncertain unlabelled example is confident.

    Parameters
    ----------
    threshold : float
        Entropy (nats) below which the largest entropy on the unlabelled pool stops the run.
    """

    name = "max_confidence"
    needs_proba = True
    primary = "threshold"

    def __init__(self, threshold: float = 0.001) -> None:
        self.threshold = threshold

    def measure(self, view: RoundView) -> dict[str, float]:
        """The largest entropy on the unlabelled pool."""
        if view.proba is None or view.unlabelled.size == 0:
            return {"max_entropy": float("nan")}
        return {"max_entropy": float(entropy(view.proba[view.unlabelled]).max())}

    def update(self, view: RoundView) -> bool:
        """Stop when the largest entropy is below the threshold."""
        value = view.series("stop_max_entropy")
        return bool(value.size and value[-1] < self.threshold)

    def describe(self, view: RoundView) -> str:
        """The largest entropy."""
        value = view.series("stop_max_entropy")
        return f"max H {value[-1]:.3g}" if value.size else ""


class OverallUncertainty(StopRule):
    """Zhu, Wang & Hovy (2008): stop when the mean entropy of the unlabelled pool is small.

    Parameters
    ----------
    threshold : float
        Mean entropy (nats) below which the run stops.
    """

    name = "overall_uncertainty"
    needs_proba = True
    primary = "threshold"

    def __init__(self, threshold: float = 0.01) -> None:
        self.threshold = threshold

    def measure(self, view: RoundView) -> dict[str, float]:
        """The mean entropy on the unlabelled pool."""
        if view.proba is None or view.unlabelled.size == 0:
            return {"mean_entropy": float("nan")}
        return {"mean_entropy": float(entropy(view.proba[view.unlabelled]).mean())}

    def update(self, view: RoundView) -> bool:
        """Stop when the mean entropy is below the threshold."""
        value = view.series("stop_mean_entropy")
        return bool(value.size and value[-1] < self.threshold)

    def describe(self, view: RoundView) -> str:
        """The mean entropy."""
        value = view.series("stop_mean_entropy")
        return f"mean H {value[-1]:.3g}" if value.size else ""


class FixedBudget(StopRule):
    """Stop once ``budget`` labels are spent (the rule most teams use).

    Parameters
    ----------
    budget : int
        Labels after which the run stops.
    """

    name = "fixed_budget"
    primary = "budget"

    def __init__(self, budget: int) -> None:
        self.budget = budget

    def update(self, view: RoundView) -> bool:
        """Stop when the labels spent reach the budget."""
        if not self.budget > 0:
            raise ALRunnerError(f"fixed_budget needs a positive budget, got {self.budget!r}")
        return bool(view.budget >= self.budget)


STOP_RULES: dict[str, type[StopRule]] = {
    cls.name: cls
    for cls in (
        StabilizingPredictions,
        ClassificationChange,
        MaxConfidence,
        OverallUncertainty,
        FixedBudget,
    )
}

#: Rules of other packages, by short name: imported only when a run asks for them.
PLUGINS: dict[str, str] = {"palm": "palm_bayes.stopping.live_rule:PalmStopRule"}


def apply_rule(rule: StopRule, view: RoundView) -> tuple[dict[str, float], bool]:
    """Measure the round, add the measurements to ``view.history``, and decide.

    Returns the measurements (keys ``stop_<key>``, as the loop records them) and the verdict.
    """
    measured = {f"stop_{k}": float(v) for k, v in rule.measure(view).items()}
    for key, value in measured.items():
        series = view.history.setdefault(key, [])
        series.extend([float("nan")] * (view.step - len(series)))
        series[view.step : view.step + 1] = [value]
    return measured, rule.update(view)


def _number(text: str) -> Any:
    try:
        value = float(text)
    except ValueError:
        return text.strip()
    return int(value) if value.is_integer() and "." not in text and "e" not in text else value


def parse_stop_rule(spec: str) -> tuple[str, dict[str, Any]]:
    """``"NAME[:VALUE][,KEY=VALUE...]"`` -> ``(NAME, kwargs)``.

    A bare value sets the rule's primary parameter: ``fixed_budget:400``,
    ``stabilizing_predictions:0.98,window=2``, ``palm:target=0.85,cost_per_label=1``.
    A name ``module:attribute`` (a rule class of another package) takes keywords after ``;``.
    """
    text = spec.strip()
    if not text:
        raise ALRunnerError("--stop-when needs a rule name, e.g. stabilizing_predictions")
    name, sep, rest = text.partition(":")
    if sep and "." in name:  # module.path:Attribute[;k=v,...]
        attr, _, rest = rest.partition(";")
        name = f"{name}:{attr}"
    kwargs: dict[str, Any] = {}
    for k, part in enumerate(p for p in rest.split(",") if p.strip()):
        key, eq, value = part.partition("=")
        if not eq:
            if k:
                raise ALRunnerError(f"--stop-when {spec!r}: {part!r} must look like KEY=VALUE")
            kwargs[""] = _number(key)
        else:
            kwargs[key.strip()] = _number(value)
    return name, kwargs


def get_stop_rule(spec: str | StopRule) -> StopRule:
    """The stop rule named by ``spec`` (see :func:`parse_stop_rule`); an object passes through.

    Examples
    --------
    >>> get_stop_rule("fixed_budget:400").budget
    400
    """
    if not isinstance(spec, str):
        return spec
    name, kwargs = parse_stop_rule(spec)
    target = PLUGINS.get(name, name if ":" in name else None)
    if target is not None:
        module, _, attr = target.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ALRunnerError(f"stop rule {name!r}: cannot import {target} ({exc})") from exc
    elif name in STOP_RULES:
        cls = STOP_RULES[name]
    else:
        known = ", ".join([*STOP_RULES, *PLUGINS])
        raise ALRunnerError(f"unknown stop rule {name!r}; known: {known} (or module:Class)")
    if "" in kwargs:
        primary = getattr(cls, "primary", None)
        if primary is None:
            raise ALRunnerError(f"stop rule {name!r} takes KEY=VALUE arguments only")
        kwargs[primary] = kwargs.pop("")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ALRunnerError(f"stop rule {name!r}: {exc}") from exc
