"""Classifiers trained from scratch in every AL round.

Every learner is a *trunk* (input -> embedding ``h``) and a *head* (``Dropout(p)`` + ``Linear``).
Strategies use the split: MC dropout computes the trunk once and samples only the head, BADGE
and Core-Set read the embedding, uncertainty strategies read the softmax.

==========  ==================================================================================
name        model and training
==========  ==================================================================================
linear      multinomial logistic regression on fixed features (standardised), full-batch
            L-BFGS with sklearn's L2 penalty (``C=1``); deterministic; input dropout only for
            MC sampling
mlp         one hidden layer (256, ReLU) + dropout 0.5 on fixed features, Adam
cnn         2 conv layers (32, 64) + fc 128 + dropout 0.5, Adam, for 28x28 / 8x8 images
resnet18    CIFAR-style ResNet-18 (3x3 stem, no max-pool); the TypiClust/PALM protocol: SGD
            Nesterov 0.9, weight decay 3e-4, cosine from lr 0.025, batch 512, random crop +
            horizontal flip, 100 epochs by default
resnet50    torchvision ResNet-50 for ImageNet subsets, same optimiser protocol
==========  ==================================================================================
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from al_runner import training
from al_runner.datasets import ALDataset, Split, dataset_features
from al_runner.errors import ALRunnerError
from al_runner.mc_dropout import head_proba as _head_proba
from al_runner.training import EpochFn, Trainer, channel_stats

__all__ = ["LEARNERS", "Learner", "get_learner", "register_learner", "resolve_device"]


def _torch():
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
    torch = _torch()
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
        torch = _torch()
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
        """Minibatch training by :class:`al_runner.training.Trainer` (linear: L-BFGS instead)."""
        lazy = self._splits["train"].lazy
        epoch, steps_per_epoch = (self._disk_epoch if lazy else self._memory_epoch)(idx, gen)
        total = max(self.epochs * steps_per_epoch, self.min_steps)
        Trainer(self.device).fit(self.model, epoch, total, self._optimiser)

    def _memory_epoch(self, idx: np.ndarray, gen: Any) -> tuple[EpochFn, int]:
        """Shuffled batches of in-memory data (augmented on the device), and their count."""
        torch = _torch()
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
        torch = _torch()
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
        torch = _torch()
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
        torch = _torch()
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
        torch = _torch()
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


# ---------------------------------------------------------------------- feature learners
def _standardiser(x: Any) -> Any:
    torch = _torch()

    class Standardise(torch.nn.Module):
        def __init__(self, mean: Any, scale: Any) -> None:
            super().__init__()
            self.register_buffer("mean", mean)
            self.register_buffer("scale", scale)

        def forward(self, z: Any) -> Any:
            return (z - self.mean) / self.scale

    mean = x.mean(dim=0)
    std = x.std(dim=0)
    scale = torch.where(std > 1e-3, std, torch.ones_like(std))
    return Standardise(mean, scale)


class _TrunkHead:
    @staticmethod
    def make(trunk: Any, dim: int, n_classes: int, dropout: float) -> Any:
        torch = _torch()

        class Net(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.trunk = trunk
                self.head = torch.nn.Sequential(
                    torch.nn.Dropout(dropout), torch.nn.Linear(dim, n_classes)
                )

            def forward(self, x: Any) -> Any:
                return self.head(self.trunk(x))

        return Net()


class LinearLearner(Learner):
    """Multinomial logistic regression on fixed features (full-batch L-BFGS, L2 as sklearn).

    The loss is ``mean CE + ||W||^2 / (2 C n)``, i.e. scikit-learn's ``LogisticRegression(C)``.
    Training is deterministic; MC-dropout strategies sample input dropout (rate 0.2).
    """

    name = "linear"
    uses_features = True
    default_epochs = 200  # L-BFGS iterations
    default_dropout = 0.0
    default_batch = 0
    C: float = 1.0

    def _build(self) -> Any:
        x = self._splits["train"].x
        return _TrunkHead.make(_standardiser(x), x.shape[1], self.n_classes, 0.0)

    def _train(self, idx: np.ndarray, gen: Any) -> None:
        torch = _torch()
        model = self.model
        x = self._splits["train"].x[torch.as_tensor(idx, device=self.device)]
        y = torch.as_tensor(self._splits["train"].y[idx], device=self.device)
        torch.nn.init.zeros_(model.head[-1].weight)
        torch.nn.init.zeros_(model.head[-1].bias)
        h = model.trunk(x)
        lam = 1.0 / (2.0 * self.C * idx.size)
        opt = torch.optim.LBFGS(
            model.head.parameters(),
            lr=1.0,
            max_iter=self.epochs,
            tolerance_grad=1e-6,
            tolerance_change=1e-9,
            history_size=20,
            line_search_fn="strong_wolfe",
        )
        weight = model.head[-1].weight

        def closure() -> Any:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model.head(h), y) + lam * weight.pow(2).sum()
            loss.backward()
            return loss

        opt.step(closure)


class MLPLearner(Learner):
    """One hidden layer (256, ReLU) + dropout 0.5 on fixed features; Adam lr 1e-3."""

    name = "mlp"
    uses_features = True
    default_epochs = 100
    default_dropout = 0.5
    default_batch = 256
    min_steps = 200
    hidden = 256

    def _build(self) -> Any:
        torch = _torch()
        x = self._splits["train"].x
        trunk = torch.nn.Sequential(
            _standardiser(x), torch.nn.Linear(x.shape[1], self.hidden), torch.nn.ReLU()
        )
        return _TrunkHead.make(trunk, self.hidden, self.n_classes, self.dropout)


# ---------------------------------------------------------------------- image learners
class _ImageLearner(Learner):
    uses_features = False
    augment: ClassVar[bool] = False

    def _prepare(self, xb: Any, train: bool) -> Any:
        torch = _torch()
        if xb.dtype == torch.uint8:
            xb = (xb.float() / 255.0 - self.mean) / self.std
        if train and self.augment:
            xb = _crop_flip(xb, pad=max(1, xb.shape[-1] // 8))
        if self.device.type == "cpu":
            xb = xb.contiguous(memory_format=torch.channels_last)
        return xb


def _crop_flip(xb: Any, pad: int) -> Any:
    """Random crop with zero padding and random horizontal flip of a batch (per sample)."""
    torch = _torch()
    n, _, h, w = xb.shape
    padded = torch.nn.functional.pad(xb, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), device=xb.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), device=xb.device)
    rows = (dy[:, None] + torch.arange(h, device=xb.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=xb.device))[:, None, None, :]
    batch = torch.arange(n, device=xb.device)[:, None, None, None]
    chan = torch.arange(xb.shape[1], device=xb.device)[None, :, None, None]
    out = padded[batch, chan, rows, cols]
    flip = torch.rand(n, device=xb.device) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(-1), out)


class CNNLearner(_ImageLearner):
    """Two 3x3 conv layers (32, 64; ReLU, 2x2 max-pool) + fc 128 + dropout 0.5; Adam."""

    name = "cnn"
    default_epochs = 30
    default_dropout = 0.5
    default_batch = 64
    min_steps = 100

    def _build(self) -> Any:
        torch = _torch()
        nn = torch.nn
        c, h, w = self.in_shape
        flat = 64 * (h // 4) * (w // 4)
        trunk = nn.Sequential(
            nn.Conv2d(c, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(flat, 128),
            nn.ReLU(),
        )
        return _TrunkHead.make(trunk, 128, self.n_classes, self.dropout)


class _SGDProtocol(_ImageLearner):
    """The deep-AL protocol: SGD Nesterov 0.9, wd 3e-4, cosine from 0.025, batch 512."""

    default_epochs = 100
    default_dropout = 0.0
    default_batch = 512
    augment = True
    lr = 0.025

    def _optimiser(self, model: Any, total_steps: int) -> tuple[Any, Any]:
        torch = _torch()
        opt = torch.optim.SGD(
            model.parameters(), lr=self.lr, momentum=0.9, nesterov=True, weight_decay=3e-4
        )
        return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total_steps))


class ResNet18Learner(_SGDProtocol):
    """CIFAR-style ResNet-18 (3x3 stem, no max-pool), trained with the deep-AL protocol."""

    name = "resnet18"

    def _build(self) -> Any:
        torch = _torch()
        from torchvision.models import resnet18

        net = resnet18(num_classes=self.n_classes)
        net.conv1 = torch.nn.Conv2d(self.in_shape[0], 64, 3, 1, 1, bias=False)
        net.maxpool = torch.nn.Identity()
        dim = net.fc.in_features
        net.fc = torch.nn.Identity()
        return _TrunkHead.make(net, dim, self.n_classes, self.dropout)


class ResNet50Learner(_SGDProtocol):
    """torchvision ResNet-50 (ImageNet stem) for ImageNet subsets, deep-AL protocol."""

    name = "resnet50"

    def _build(self) -> Any:
        torch = _torch()
        from torchvision.models import resnet50

        net = resnet50(num_classes=self.n_classes)
        if self.in_shape[0] != 3:
            net.conv1 = torch.nn.Conv2d(self.in_shape[0], 64, 7, 2, 3, bias=False)
        dim = net.fc.in_features
        net.fc = torch.nn.Identity()
        return _TrunkHead.make(net, dim, self.n_classes, self.dropout)


LEARNERS: dict[str, type[Learner]] = {
    cls.name: cls
    for cls in (LinearLearner, MLPLearner, CNNLearner, ResNet18Learner, ResNet50Learner)
}


def register_learner(name: str, cls: type[Learner], *, replace: bool = False) -> type[Learner]:
    """Add a user learner to the registry (``RunConfig(learner=name)`` then finds it).

    Parameters
    ----------
    name : str
        Registry name.
    cls : type
        A :class:`Learner` subclass: ``uses_features``, ``default_epochs``,
        ``default_dropout``, ``default_batch`` and ``_build()`` returning a module with
        ``trunk`` and ``head`` (``Dropout`` + ``Linear``); optionally ``_optimiser``.
        Its ``name`` is set to ``name`` (its own must be unset or equal).
    replace : bool
        Allow replacing a registered learner of the same name.

    Returns
    -------
    type
        ``cls``.
    """
    if not isinstance(cls, type) or not issubclass(cls, Learner):
        raise ALRunnerError(f"register_learner({name!r}): {cls!r} is not a Learner subclass")
    if not name:
        raise ALRunnerError("register_learner: the name is empty")
    if cls.__dict__.get("name", name) != name:  # its own name, not a base class's
        raise ALRunnerError(f"register_learner({name!r}): {cls.__name__}.name is {cls.name!r}")
    if name in LEARNERS and LEARNERS[name] is not cls and not replace:
        raise ALRunnerError(f"learner {name!r} is registered already (replace=True to replace)")
    cls.name = name
    LEARNERS[name] = cls
    return cls


def get_learner(name: str, **kwargs: Any) -> Learner:
    """Instantiate a learner by name.

    Parameters
    ----------
    name : str
        One of :data:`LEARNERS`.
    **kwargs
        ``epochs``, ``device``, ``dropout``, ``batch_size``.

    Returns
    -------
    Learner

    Examples
    --------
    >>> get_learner("linear").name
    'linear'
    """
    cls = LEARNERS.get(name)
    if cls is None:
        raise ALRunnerError(f"unknown learner {name!r}; known: {', '.join(LEARNERS)}")
    return cls(**kwargs)
