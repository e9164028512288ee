"""The learner interface: bind a dataset, train from scratch, embed, predict (MC dropout).

A :class:`Learner` subclass only builds its architecture (``_build``: a module with ``trunk``
and ``head``) and may choose its optimiser and input preparation; training runs in
:class:`al_runner.learners.training.Trainer`, head sampling in
:mod:`al_runner.learners.mc_dropout`. The
learners themselves and their registry are in :mod:`al_runner.learners.models`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from al_runner.datasets import ALDataset, Split, dataset_features
from al_runner.errors import ALRunnerError
from al_runner.learners import training
from al_runner.learners.mc_dropout import head_proba as _head_proba
from al_runner.learners.training import EpochFn, Trainer, channel_stats

__all__ = ["Learner", "require_torch", "resolve_device"]


def require_torch() -> Any:
    """The torch module, or a one-line error naming the extra that installs it."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is in the runner extra
        raise ALRunnerError("learners need torch: pip install 'palm-bayes[runner]'") from exc
    return torch


def resolve_device(device: str = "auto") -> str:
    """Map ``auto`` to ``cuda`` when a GPU is visible, else ``cpu``; check explicit choices.

    Parameters
    ----------
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    Returns
    -------
    str
    """
    torch = require_torch()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ALRunnerError(f"--device {device}: CUDA is not available on this machine")
    if device != "cpu" and not device.startswith("cuda"):
        raise ALRunnerError(f"--device must be auto, cpu or cuda[:N], got {device!r}")
    return device


@dataclass
class _Data:
    """Tensors of one split on the device (in-memory data) or the lazy split itself."""

    x: Any
    y: np.ndarray
    lazy: bool


class Learner(ABC):
    """A classifier retrained from scratch each round.

    Parameters
    ----------
    epochs : int, optional
        Training epochs (default per learner).
    device : str
        ``auto``, ``cpu`` or ``cuda``; CUDA trains with bfloat16 autocast.
    dropout : float, optional
        Head dropout rate (training and MC sampling).
    batch_size : int, optional
        Training batch size.
    """

    name: ClassVar[str]
    uses_features: ClassVar[bool]
    default_epochs: ClassVar[int]
    default_dropout: ClassVar[float]
    default_batch: ClassVar[int]

    def __init__(
        self,
        *,
        epochs: int | None = None,
        device: str = "auto",
        dropout: float | None = None,
        batch_size: int | None = None,
    ) -> None:
        self.epochs = self.default_epochs if epochs is None else int(epochs)
        self.device_name = device
        self.dropout = self.default_dropout if dropout is None else float(dropout)
        self.batch_size = self.default_batch if batch_size is None else int(batch_size)
        self._splits: dict[str, _Data] = {}
        self.model = None

    # ------------------------------------------------------------------ setup
    def setup(self, data: ALDataset, features: dict[str, np.ndarray] | None = None) -> Learner:
        """Bind the learner to a dataset (moves in-memory data to the device once).

        Parameters
        ----------
        data : ALDataset
        features : dict, optional
            ``{"train": (N, D), "test": (M, D)}`` fixed features for feature learners;
            default :func:`al_runner.datasets.dataset_features`.
        """
        if self.epochs < 1:
            raise ALRunnerError(f"epochs must be >= 1, got {self.epochs}")
        if not 0.0 <= self.dropout < 1.0:
            raise ALRunnerError(f"dropout must be in [0, 1), got {self.dropout}")
        torch = require_torch()
        self.device = torch.device(resolve_device(self.device_name))
        self.amp = self.device.type == "cuda"
        self.data = data
        self.n_classes = data.n_classes
        if self.uses_features:
            if features is None:
                features = {s: dataset_features(data, s) for s in ("train", "test")}
            for split in ("train", "test"):
                x = torch.as_tensor(np.ascontiguousarray(features[split]), dtype=torch.float32)
                self._splits[split] = _Data(x.to(self.device), getattr(data, split).y, False)
            self.in_shape: tuple[int, ...] = (features["train"].shape[1],)
        else:
            if data.kind != "image":
                raise ALRunnerError(
                    f"learner {self.name!r} needs images; {data.name} holds features: use "
                    "--learner linear or mlp"
                )
            for split in ("train", "test"):
                part: Split = getattr(data, split)
                if part.in_memory:
                    x = torch.as_tensor(part.x).to(self.device)
                    self._splits[split] = _Data(x, part.y, False)
                else:
                    self._splits[split] = _Data(part.x, part.y, True)
            if data.train.in_memory:
                x = self._splits["train"].x
                self.mean, self.std = channel_stats(x)  # chunked: no float copy of the pool
                self.in_shape = tuple(x.shape[1:])
            else:
                self.mean = self.std = None
                self.in_shape = tuple(data.train.x[0][0].shape)
        return self

    # ------------------------------------------------------------------ model parts
    @abstractmethod
    def _build(self) -> Any:
        """Return a torch module with ``trunk`` and ``head`` submodules."""

    def _prepare(self, xb: Any, train: bool) -> Any:
        """Turn a raw batch (uint8 images or features) into the model's input."""
        return xb

    def _train(self, idx: np.ndarray, gen: Any) -> None:
        """Minibatch training by the shared ``Trainer`` (linear learners: L-BFGS instead)."""
        lazy = self._splits["train"].lazy
        epoch, steps_per_epoch = (self._disk_epoch if lazy else self._memory_epoch)(idx, gen)
        total = max(self.epochs * steps_per_epoch, self.min_steps)
        Trainer(self.device).fit(self.model, epoch, total, self._optimiser)

    def _memory_epoch(self, idx: np.ndarray, gen: Any) -> tuple[EpochFn, int]:
        """Shuffled batches of in-memory data (augmented on the device), and their count."""
        torch = require_torch()
        n = idx.size
        batch = min(self.batch_size, n)
        x = self._splits["train"].x
        labels = torch.as_tensor(self._splits["train"].y[idx], device=self.device)
        idx_t = torch.as_tensor(idx, device=self.device)

        def epoch() -> Iterator[tuple[Any, Any]]:
            perm = torch.randperm(n, generator=gen).to(self.device)
            for start in range(0, n, batch):
                sel = perm[start : start + batch]
                yield self._prepare(x[idx_t[sel]], train=True), labels[sel]

        return epoch, math.ceil(n / batch)

    def _disk_epoch(self, idx: np.ndarray, gen: Any) -> tuple[EpochFn, int]:
        """Shuffled batches of an on-disk dataset with its own training transforms."""
        from torch.utils.data import DataLoader, Subset

        workers = training.loader_workers()
        part = self.data.train_augmented or self.data.train
        loader = DataLoader(
            Subset(part.x, idx.tolist()),
            batch_size=min(self.batch_size, idx.size),
            shuffle=True,
            generator=gen,
            num_workers=workers,
            persistent_workers=workers > 0,  # no worker restart per epoch
            pin_memory=self.device.type == "cuda",
            drop_last=False,
        )

        def epoch() -> Iterator[tuple[Any, Any]]:
            for xb, yb in loader:
                yield xb.to(self.device, non_blocking=True), yb.to(self.device)

        return epoch, len(loader)

    min_steps: ClassVar[int] = 0

    def _optimiser(self, model: Any, total_steps: int) -> tuple[Any, Any]:
        torch = require_torch()
        return torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4), None

    # ------------------------------------------------------------------ public API
    def fit(self, idx: np.ndarray, seed: int) -> Learner:
        """Train from scratch on the pool samples ``idx``.

        Parameters
        ----------
        idx : numpy.ndarray
            Labelled pool indices.
        seed : int
            Seeds initialisation, shuffling and augmentation.
        """
        torch = require_torch()
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size == 0:
            raise ALRunnerError("cannot train on an empty labelled set")
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        self.model = self._build().to(self.device)
        if self.device.type == "cpu" and not self.uses_features:
            self.model = self.model.to(memory_format=torch.channels_last)
        self._train(idx, gen)
        self.model.eval()
        return self

    def _batches(self, split: str, idx: np.ndarray):
        torch = require_torch()
        part = self._splits[split]
        # small batches are fastest for convolutions on the CPU (cache-resident activations)
        bs = 8192 if self.uses_features else 1024 if self.device.type == "cuda" else 128
        if part.lazy:
            from torch.utils.data import DataLoader, Subset

            loader = DataLoader(
                Subset(part.x, np.asarray(idx).tolist()),
                batch_size=bs,
                num_workers=training.loader_workers(),
            )
            for xb, _ in loader:
                yield xb.to(self.device, non_blocking=True)
            return
        idx_t = torch.as_tensor(np.asarray(idx, dtype=np.int64), device=self.device)
        for start in range(0, idx_t.numel(), bs):
            yield self._prepare(part.x[idx_t[start : start + bs]], train=False)

    def _check_fitted(self) -> None:
        if self.model is None:
            raise ALRunnerError(f"learner {self.name!r} is not trained yet: call fit() first")

    def embed(self, idx: np.ndarray | None = None, split: str = "train") -> np.ndarray:
        """Trunk output (the embedding ``h`` before the head) for samples of a split.

        Parameters
        ----------
        idx : numpy.ndarray, optional
            Sample indices (default: all).
        split : {"train", "test"}

        Returns
        -------
        numpy.ndarray
            ``float32`` ``(len(idx), d)``.
        """
        torch = require_torch()
        self._check_fitted()
        if idx is None:
            idx = np.arange(len(self._splits[split].y))
        out = []
        with (
            torch.inference_mode(),
            torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp),
        ):
            for xb in self._batches(split, idx):
                out.append(self.model.trunk(xb).float().cpu())
        if not out:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        return torch.cat(out).numpy()

    @property
    def embed_dim(self) -> int:
        """Size of the embedding ``h``."""
        self._check_fitted()
        return int(self.model.head[-1].in_features)

    def head_proba(self, h: np.ndarray, *, samples: int = 0, seed: int = 0) -> np.ndarray:
        """Softmax of the head on embeddings; with ``samples=T`` draw T dropout masks.

        MC dropout is *consistent* (Kirsch et al., BatchBALD, 2019): each draw samples one
        dropout mask over the embedding units and applies it to every pool sample, so a draw is
        one sampled model. The trunk is not re-run: ``h`` is computed once by :meth:`embed`.

        Parameters
        ----------
        h : numpy.ndarray
            Embeddings ``(n, d)`` from :meth:`embed`.
        samples : int
            0: deterministic probabilities ``(n, C)``; T > 0: MC-dropout ``(T, n, C)``.
        seed : int
            Seed of the dropout masks.

        Returns
        -------
        numpy.ndarray
        """
        self._check_fitted()
        p = self.dropout if self.dropout > 0 else self.mc_dropout
        return _head_proba(self.model.head, h, p=p, samples=samples, seed=seed, device=self.device)

    mc_dropout: ClassVar[float] = 0.2

    def predict_proba(self, idx: np.ndarray | None = None, split: str = "train") -> np.ndarray:
        """Class probabilities ``(n, C)`` for samples of a split."""
        return self.head_proba(self.embed(idx, split))

    def accuracy(self, split: str = "test") -> float:
        """Accuracy on a whole split (the test set by default)."""
        proba = self.predict_proba(None, split)
        return float(np.mean(proba.argmax(axis=1) == self._splits[split].y))
