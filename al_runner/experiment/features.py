"""Fixed features of an experiment: raw, PCA or an embedding; the strategies' representation."""

from __future__ import annotations

import numpy as np

from al_runner.datasets import ALDataset, dataset_features
from al_runner.experiment.config import SSL_EMBEDDINGS, RunConfig

__all__ = ["REPR_DIM", "experiment_features", "pca_basis", "representation"]

REPR_DIM = 64


def pca_basis(features: np.ndarray, dim: int = REPR_DIM) -> tuple[np.ndarray, np.ndarray]:
    """Mean and the top-``dim`` principal axes ``(d, dim)`` of ``features`` (signs fixed).

    Parameters
    ----------
    features : numpy.ndarray
        ``(n, d)`` data.
    dim : int
        Number of components.

    Returns
    -------
    tuple of numpy.ndarray
        ``(mean (d,), components (d, dim))``; components by decreasing variance.
    """
    x = np.asarray(features, dtype=np.float64)
    mean = x.mean(axis=0)
    centred = x - mean
    cov = centred.T @ centred / max(1, x.shape[0] - 1)
    _, vecs = np.linalg.eigh(cov)
    comps = vecs[:, ::-1][:, :dim]
    signs = np.sign(comps[np.abs(comps).argmax(axis=0), np.arange(comps.shape[1])])
    return mean, comps * signs


def representation(features: np.ndarray, dim: int = REPR_DIM) -> np.ndarray:
    """Fixed representation for TypiClust/ProbCover: features, PCA-reduced to ``dim`` if larger.

    Parameters
    ----------
    features : numpy.ndarray
        ``(n, d)`` pool features.
    dim : int
        Maximum dimension.

    Returns
    -------
    numpy.ndarray
        ``float32`` ``(n, min(d, dim))``.
    """
    if features.shape[1] <= dim:
        return np.ascontiguousarray(features, dtype=np.float32)
    mean, comps = pca_basis(features, dim)
    return np.ascontiguousarray((features - mean) @ comps, dtype=np.float32)


def experiment_features(
    config: RunConfig, data: ALDataset
) -> tuple[dict[str, np.ndarray] | None, np.ndarray | None]:
    """The fixed features of both splits and the pool's representation for ``config``.

    Returns
    -------
    tuple
        ``({"train": (N, D), "test": (M, D)}, (N, d) representation)``, or ``(None, None)``
        for an on-disk dataset without an embedding (learners and strategies use the model).
    """
    if config.embedding in (*SSL_EMBEDDINGS, "file", "checkpoint"):
        feats = _embedding_features(config, data)
    elif data.train.in_memory:
        feats = {s: dataset_features(data, s) for s in ("train", "test")}
        if config.embedding == "pca":  # fitted on the pool, applied to both splits
            mean, comps = pca_basis(feats["train"])
            feats = {
                s: np.ascontiguousarray((f - mean) @ comps, dtype=np.float32)
                for s, f in feats.items()
            }
    else:
        return None, None
    return feats, representation(feats["train"])


def _embedding_features(config: RunConfig, data: ALDataset) -> dict[str, np.ndarray]:
    """Fixed features from an SSL cache, a user's feature file or a user's checkpoint."""
    from al_runner import embeddings as emb

    if config.embedding == "file":
        return emb.load_feature_file(data, str(config.embedding_file))
    if config.embedding == "checkpoint":
        return emb.checkpoint_features(
            data, str(config.encoder_checkpoint), config.embedding_dir, device=config.device,
            tag="torchvision", torchvision=True,
        )  # fmt: skip
    return emb.ssl_features(
        data, config.embedding, config.embedding_dir, epochs=config.embedding_epochs,
        device=config.device,
    )  # fmt: skip
