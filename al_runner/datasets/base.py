"""The two objects every dataset loader returns: a :class:`Split` and an :class:`ALDataset`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from al_runner.errors import ALRunnerError

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # channel statistics that normalise ImageNet subsets
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Split:
    """One split: inputs ``x`` and integer labels ``y`` (``0 .. n_classes-1``).

    ``x`` is a ``uint8`` image array ``(N, C, H, W)``, a ``float32`` feature matrix ``(N, D)``,
    or a torch ``Dataset`` yielding ``(tensor, label)`` (images on disk).
    """

    x: Any
    y: np.ndarray

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def in_memory(self) -> bool:
        """Whether ``x`` is an array (as opposed to a lazy on-disk dataset)."""
        return isinstance(self.x, np.ndarray)


@dataclass
class ALDataset:
    """A pool (``train``) and a held-out ``test`` split with provenance.

    Attributes
    ----------
    name : str
        Registry name.
    kind : {"image", "features"}
        Images (CNN/ResNet learners; flattened pixels for fixed-feature learners) or features.
    train_augmented : Split, optional
        For on-disk image datasets: the pool with training-time transforms.
    """

    name: str
    kind: str
    train: Split
    test: Split
    n_classes: int
    classes: list[str] = field(default_factory=list)
    train_augmented: Split | None = None
    source: str = ""

    @property
    def n_pool(self) -> int:
        """Number of pool (train) samples."""
        return len(self.train)

    @property
    def image_shape(self) -> tuple[int, ...] | None:
        """``(C, H, W)`` of in-memory images, else None."""
        if self.kind == "image" and self.train.in_memory:
            return tuple(self.train.x.shape[1:])
        return None


def require_root(name: str, root: str | os.PathLike | None) -> Path:
    """The local path of dataset ``name`` (nothing is downloaded): checked to exist."""
    if root is None:
        raise ALRunnerError(
            f"dataset {name!r} needs --data-root (a local path; nothing is downloaded)"
        )
    path = Path(root)
    if not path.exists():
        raise ALRunnerError(f"dataset {name!r}: no such path {path}")
    return path
