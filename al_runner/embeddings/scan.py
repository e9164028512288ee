"""SCAN clustering of fixed features (Van Gansbeke et al., ECCV 2020).

SCAN mines the ``k`` nearest neighbours of every point in a (self-supervised) feature space
and trains a clustering head so that a point and a random one of its neighbours get the same
confident assignment (consistency ``-log <p_i, p_j>``), while an entropy term over the mean
assignment keeps all clusters in use: ``loss = consistency - entropy_weight * H(mean p)``.
Several heads are trained at once and the one with the lowest loss is kept, as in SCAN. Here
the backbone is frozen: the head is trained on the given features (standardised), neighbours
come from faiss. SCAN's optional self-labelling fine-tuning step is not done.

Examples
--------
>>> labels = scan_clusters(features, 10, neighbours=20, epochs=30)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np

from al_runner.errors import ALRunnerError
from al_runner.knn import nearest_sqdist

__all__ = ["scan_clusters", "scan_neighbours"]


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is in the runner extra
        raise ALRunnerError("SCAN needs torch: pip install 'palm-bayes[runner]'") from exc
    return torch


def scan_neighbours(features: np.ndarray, neighbours: int) -> np.ndarray:
    """The ``neighbours`` nearest other points of every row (exact L2, faiss).

    Parameters
    ----------
    features : numpy.ndarray
        ``(n, d)`` features.
    neighbours : int
        Neighbours per point (at most ``n - 1``).

    Returns
    -------
    numpy.ndarray
        ``(n, neighbours)`` int64 row indices, nearest first, the point itself excluded.
    """
    n = features.shape[0]
    k = int(min(neighbours, n - 1))
    if k < 1:
        raise ALRunnerError(f"SCAN needs at least 2 points and 1 neighbour, got n={n}")
    _, idx = nearest_sqdist(features, features, k + 1)
    out = np.empty((n, k), dtype=np.int64)
    for i, row in enumerate(idx):  # drop the point itself (usually column 0, not with ties)
        row = row[row != i]
        out[i] = row[:k]
    return out


def scan_clusters(
    features: np.ndarray,
    n_clusters: int,
    *,
    neighbours: int = 20,
    epochs: int = 5,
    min_steps: int = 300,
    heads: int = 5,
    entropy_weight: float = 5.0,
    batch_size: int = 512,
    lr: float = 1e-2,
    seed: int = 0,
    device: str = "cpu",
    knn: np.ndarray | None = None,
) -> np.ndarray:
    """Cluster ``features`` with a SCAN head trained on their nearest neighbours.

    Parameters
    ----------
    features : numpy.ndarray
        ``(n, d)`` fixed features (e.g. a self-supervised embedding).
    n_clusters : int
        Number of clusters (outputs of the head).
    neighbours : int
        Nearest neighbours mined per point (20 in SCAN).
    epochs : int
        Passes over the points.
    min_steps : int
        At least this many steps (more passes on small pools).
    heads : int
        Heads trained together; the lowest-loss one labels the points.
    entropy_weight : float
        Weight of the entropy of the mean assignment (5 in SCAN).
    batch_size : int
        Anchors per step.
    lr : float
        Adam learning rate.
    seed : int
        Seed of the head's weights and of the batches.
    device : str
        torch device.
    knn : numpy.ndarray, optional
        Precomputed :func:`scan_neighbours` (reused across calls on the same features).

    Returns
    -------
    numpy.ndarray
        ``(n,)`` int64 cluster ids in ``[0, n_clusters)``.
    """
    torch = _torch()
    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ALRunnerError(f"SCAN needs (n >= 2, d) features, got shape {x.shape}")
    n_clusters = int(n_clusters)
    if not 1 <= n_clusters <= x.shape[0]:
        raise ALRunnerError(f"SCAN: n_clusters must be in [1, {x.shape[0]}], got {n_clusters}")
    if n_clusters == 1:
        return np.zeros(x.shape[0], dtype=np.int64)
    if knn is None:
        knn = scan_neighbours(x, neighbours)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    dev = torch.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = torch.nn.Linear(x.shape[1], heads * n_clusters)
    head = head.to(dev)
    gen = torch.Generator(device=dev).manual_seed(seed)
    xt = torch.as_tensor(x, device=dev)
    nn_t = torch.as_tensor(knn, device=dev)
    opt = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=1e-4)
    n, k = nn_t.shape
    steps = max(1, -(-n // batch_size))
    head_loss = torch.zeros(heads, device=dev)
    for _ in range(max(int(epochs), -(-int(min_steps) // steps))):
        perm = torch.randperm(n, generator=gen, device=dev)
        head_loss.zero_()
        for s in range(steps):
            anchors = perm[s * batch_size : (s + 1) * batch_size]
            pick = torch.randint(k, (anchors.numel(),), generator=gen, device=dev)
            nbrs = nn_t[anchors, pick]
            pa = torch.softmax(head(xt[anchors]).view(-1, heads, n_clusters), dim=-1)
            pn = torch.softmax(head(xt[nbrs]).view(-1, heads, n_clusters), dim=-1)
            consistency = -torch.log((pa * pn).sum(-1).clamp_min(1e-8)).mean(0)
            mean_p = pa.mean(0).clamp_min(1e-8)
            entropy = -(mean_p * mean_p.log()).sum(-1)
            loss = consistency - entropy_weight * entropy  # (heads,)
            opt.zero_grad()
            loss.sum().backward()
            opt.step()
            head_loss += loss.detach()
    best = int(torch.argmin(head_loss))
    with torch.no_grad():
        logits = head(xt).view(n, heads, n_clusters)[:, best]
        return logits.argmax(-1).cpu().numpy().astype(np.int64)
