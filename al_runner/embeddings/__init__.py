"""Self-supervised embeddings for al_runner: SimCLR, MoCo v2, MoCo v3 and BYOL.

Train an encoder on the unlabelled pool (:func:`train_encoder`), extract standardised
penultimate-layer features (cached per dataset + method + checkpoint hash,
:func:`ssl_features`), bring your own features or torchvision ResNet checkpoint
(:func:`load_feature_file`, :func:`checkpoint_features`) and check an embedding with kNN and
linear probes (:func:`evaluate_embedding`), and cluster features with SCAN
(:func:`scan_clusters`).

Examples
--------
>>> from al_runner.datasets import load_dataset
>>> from al_runner.embeddings import ssl_features
>>> feats = ssl_features(load_dataset("digits"), "simclr", "emb", epochs=5)  # doctest: +SKIP
"""

from al_runner.embeddings.encoders import ARCHS, build_encoder
from al_runner.embeddings.evaluate import evaluate_embedding, knn_accuracy, linear_probe
from al_runner.embeddings.methods import METHODS, build_method
from al_runner.embeddings.scan import scan_clusters, scan_neighbours
from al_runner.embeddings.train import (
    EmbedConfig,
    checkpoint_features,
    checkpoint_path,
    extract_features,
    load_feature_file,
    ssl_features,
    train_encoder,
)

__all__ = [
    "ARCHS",
    "METHODS",
    "EmbedConfig",
    "build_encoder",
    "build_method",
    "checkpoint_features",
    "checkpoint_path",
    "evaluate_embedding",
    "extract_features",
    "knn_accuracy",
    "linear_probe",
    "load_feature_file",
    "scan_clusters",
    "scan_neighbours",
    "ssl_features",
    "train_encoder",
]
