"""Embedding quality checks: kNN (k = 20, cosine, faiss) and linear probes at label fractions."""

from __future__ import annotations

import numpy as np

from al_runner.datasets import ALDataset

__all__ = ["evaluate_embedding", "knn_accuracy", "linear_probe"]


def knn_accuracy(
    train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray, k: int = 20
) -> float:
    """Test accuracy of a cosine kNN vote (similarity-weighted, faiss inner product).

    Parameters
    ----------
    train, test : numpy.ndarray
        Features ``(N, D)``, ``(M, D)``; L2-normalised here.
    y_train, y_test : numpy.ndarray
        Integer labels.
    k : int
        Neighbours.

    Returns
    -------
    float
    """
    import faiss

    def unit(x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    index = faiss.IndexFlatIP(train.shape[1])
    index.add(unit(train))
    sim, nn = index.search(unit(test), k)
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    votes = np.zeros((test.shape[0], n_classes))
    np.add.at(votes, (np.arange(test.shape[0])[:, None], y_train[nn]), np.exp(sim / 0.07))
    return float((votes.argmax(1) == y_test).mean())


def _stratified(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` indices with every class represented (at least one each)."""
    if n >= y.size:
        return np.arange(y.size)
    classes = np.unique(y)
    first = np.array([rng.choice(np.flatnonzero(y == c)) for c in classes])
    rest = rng.choice(np.setdiff1d(np.arange(y.size), first), n - first.size, replace=False)
    return np.concatenate([first, rest])


def linear_probe(
    data: ALDataset, features: dict[str, np.ndarray], n_labels: int, seed: int = 0
) -> float:
    """Test accuracy of al_runner's linear learner trained on ``n_labels`` random pool labels."""
    from al_runner.learners.models import get_learner

    rng = np.random.default_rng(seed)
    idx = _stratified(data.train.y, n_labels, rng)
    learner = get_learner("linear", device="cpu").setup(data, features)
    learner.fit(idx, seed=seed)
    return float(learner.accuracy("test"))


def evaluate_embedding(
    data: ALDataset,
    features: dict[str, np.ndarray],
    fractions: tuple[float, ...] = (0.01, 0.1, 1.0),
    labels: tuple[int, ...] = (),
    k: int = 20,
    seed: int = 0,
) -> dict[str, float]:
    """Accuracy of kNN (all pool labels) and of linear probes on an embedding.

    Parameters
    ----------
    data : ALDataset
    features : dict
        ``{"train": (N, D), "test": (M, D)}``.
    fractions : tuple of float
        Label fractions of the pool for linear probes.
    labels : tuple of int
        Absolute label counts for further linear probes (e.g. 1000).
    k : int
    seed : int

    Returns
    -------
    dict
        ``{"knn": .., "linear@1%": .., ..., "linear@1000": ..}``.
    """
    out = {
        f"knn{k}": knn_accuracy(features["train"], data.train.y, features["test"], data.test.y, k)
    }
    for f in fractions:
        n = max(data.n_classes, int(round(f * data.n_pool)))
        out[f"linear@{f:.0%}"] = linear_probe(data, features, n, seed)
    for n in labels:
        out[f"linear@{n}"] = linear_probe(data, features, n, seed)
    return out
