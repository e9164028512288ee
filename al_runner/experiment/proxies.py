"""Operational proxies of an AL round (the mechanism-driven theory of AL phases).

Recorded after every round, on the run's fixed representation, with the names of the PALM
authors' reference code (``deep-al/tools/mechanistic/proxies.py``) so that
``palm phases`` reads them from the curves file:

- ``empirical_risk_reduction``: mean cross-entropy on the batch acquired this round under the
  previous round's model minus under this round's model (NaN at step 0);
- ``label_discrepancy``: total variation between the labelled set's and the pool's labels;
- ``feature_discrepancy``: mean cosine distance from every pool point to its nearest labelled
  point;
- ``geometric_coverage``: mean cosine distance from each labelled point to its nearest other
  labelled point;
- ``model_complexity``: sum of the L2 norms of the model's parameter tensors;
- ``confidence_term``: ``sqrt(2 log(4 / delta) / labels)`` (``delta`` = 0.05 by default).

Nearest neighbours are exact inner-product searches in faiss on L2-normalised features.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from al_runner.knn import as_f32, faiss
from palm_bayes.data.contract import PROXIES  # the names palm phases reads (the reference's)

__all__ = [
    "PROXIES",
    "confidence_term",
    "cross_entropy",
    "geometric_coverage",
    "feature_discrepancy",
    "label_discrepancy",
    "model_complexity",
    "round_proxies",
]


def cross_entropy(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-sample cross-entropy ``-log p(y)`` of predicted probabilities ``(n, C)``."""
    p = np.asarray(proba, dtype=np.float64)[np.arange(len(y)), np.asarray(y, dtype=np.int64)]
    return -np.log(np.clip(p, 1e-12, 1.0))


def label_discrepancy(labelled_y: np.ndarray, pool_y: np.ndarray, n_classes: int) -> float:
    """Total variation distance between the label frequencies of the labelled set and pool."""
    a = np.bincount(labelled_y, minlength=n_classes) / max(len(labelled_y), 1)
    b = np.bincount(pool_y, minlength=n_classes) / max(len(pool_y), 1)
    return float(0.5 * np.abs(a - b).sum())


def _unit(x: np.ndarray) -> np.ndarray:
    x = as_f32(x)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, 1e-12), dtype=np.float32)


def _nearest_similarity(query: np.ndarray, support: np.ndarray, k: int) -> np.ndarray:
    index = faiss().IndexFlatIP(support.shape[1])
    index.add(support)
    sims, _ = index.search(query, k)
    return sims


def feature_discrepancy(features: np.ndarray, labelled: np.ndarray) -> float:
    """Mean cosine distance from every pool point to its nearest labelled point."""
    unit = _unit(features)
    sims = _nearest_similarity(unit, unit[labelled], 1)[:, 0]
    return float(np.mean(1.0 - np.clip(sims, -1.0, 1.0)))


def geometric_coverage(features: np.ndarray, labelled: np.ndarray) -> float:
    """Mean cosine distance from each labelled point to its nearest *other* labelled point."""
    if len(labelled) < 2:
        return float("nan")
    unit = _unit(features)[labelled]
    sims = _nearest_similarity(unit, unit, 2)
    # column 0 is the point itself unless a duplicate ties with it: both are distance 0
    return float(np.mean(1.0 - np.clip(sims[:, 1], -1.0, 1.0)))


def model_complexity(model: Any) -> float:
    """Sum of the L2 norms of a torch module's parameter tensors (the reference's proxy)."""
    import torch

    with torch.no_grad():
        return float(sum(torch.linalg.vector_norm(p.float()).item() for p in model.parameters()))


def confidence_term(labels: int, delta: float = 0.05) -> float:
    """The closed-form confidence term ``sqrt(2 log(4 / delta) / labels)``."""
    if not 0 < delta < 1:
        raise ValueError(f"delta must lie in (0, 1), got {delta}")
    return float(np.sqrt(2.0 * np.log(4.0 / delta) / labels))


def round_proxies(
    *,
    labelled: np.ndarray,
    pool_y: np.ndarray,
    n_classes: int,
    features: np.ndarray | None,
    model: Any,
    batch_loss_before: np.ndarray | None,
    batch_loss_after: np.ndarray | None,
    delta: float = 0.05,
) -> dict[str, float]:
    """All six proxies of one round (NaN where undefined: no previous model, no features)."""
    risk = float("nan")
    if batch_loss_before is not None and batch_loss_after is not None:
        risk = float(np.mean(batch_loss_before) - np.mean(batch_loss_after))
    nan = float("nan")
    return {
        "empirical_risk_reduction": risk,
        "label_discrepancy": label_discrepancy(pool_y[labelled], pool_y, n_classes),
        "feature_discrepancy": nan if features is None else feature_discrepancy(features, labelled),
        "geometric_coverage": nan if features is None else geometric_coverage(features, labelled),
        "model_complexity": model_complexity(model),
        "confidence_term": confidence_term(len(labelled), delta),
    }
