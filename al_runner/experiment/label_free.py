"""Accuracy without a test set: k-fold cross-validation on the labelled set of a round.

Many teams have no labelled test set while they label. The estimate here uses only the labels
bought so far: the labelled set is split into ``folds`` stratified folds, a fresh copy of the
round's learner is trained on all folds but one and scored on the held-out one, and the
accuracies are pooled over all held-out examples.

It is **biased**, and no correction is applied: active learning picks the labelled set, so it
is not a sample of the pool. For uncertainty-type strategies it over-represents hard examples
near the decision boundary and the estimate runs *below* the test accuracy; for
representative strategies (TypiClust, ProbCover) it is closer to a random sample. An
importance-weighted correction needs each example's selection probability, which the
deterministic top-k strategies do not have (it is 0 or 1), so none is claimed. Each estimate
is also made with ``(folds - 1) / folds`` of the labels, a small pessimistic bias at small
budgets. The curves file records it as ``label_free_accuracy`` next to the test ``accuracy``;
a stopping rule that reads a curve says which one it uses.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

__all__ = ["LABEL_FREE", "cross_validated_accuracy", "stratified_folds"]

#: The name of the recorded series in the state and the curves file.
LABEL_FREE = "label_free_accuracy"


def stratified_folds(y: np.ndarray, folds: int, rng: np.random.Generator) -> np.ndarray:
    """A fold number per example, each class dealt round-robin over the folds in random order."""
    y = np.asarray(y)
    fold = np.empty(y.size, dtype=np.int64)
    offset = 0
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        fold[idx] = (offset + np.arange(idx.size)) % folds
        offset += idx.size
    return fold


def cross_validated_accuracy(
    learner: Any, labelled: np.ndarray, y: np.ndarray, *, folds: int = 5, seed: int = 0
) -> float:
    """k-fold cross-validated accuracy of ``learner`` on the labelled pool examples.

    Parameters
    ----------
    learner : Learner
        A set-up learner (its ``fit(idx, seed)`` / ``predict_proba(idx, "train")``); copies
        are trained, the learner's own model is left as it is.
    labelled : numpy.ndarray
        Labelled pool indices.
    y : numpy.ndarray
        Their labels (same order).
    folds : int
        Number of folds (fewer when there are fewer labelled examples than folds).
    seed : int
        Seed of the fold split and of the fold models.

    Returns
    -------
    float
        Pooled held-out accuracy; NaN with fewer than 2 labelled examples.
    """
    labelled, y = np.asarray(labelled, np.int64), np.asarray(y)
    k = int(min(folds, labelled.size))
    if k < 2:
        return float("nan")
    import torch

    fold = stratified_folds(y, k, np.random.default_rng([seed, 4099]))
    correct = 0
    rng_state = torch.random.get_rng_state()  # the fold models must not move the run's draws
    try:
        for f in range(k):
            held = fold == f
            if held.all() or not held.any():
                continue
            member = copy.copy(learner)  # shares the bound data; fit() sets its own model
            member.fit(labelled[~held], seed=int(seed) * 17 + f)
            pred = member.predict_proba(labelled[held], "train").argmax(1)
            correct += int((pred == y[held]).sum())
    finally:
        torch.random.set_rng_state(rng_state)
    return correct / labelled.size
