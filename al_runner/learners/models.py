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

from typing import Any, ClassVar

import numpy as np

from al_runner.errors import ALRunnerError
from al_runner.learners.base import Learner, require_torch, resolve_device

__all__ = ["LEARNERS", "Learner", "get_learner", "register_learner", "resolve_device"]


# ---------------------------------------------------------------------- feature learners
def _standardiser(x: Any) -> Any:
    torch = require_torch()

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
        torch = require_torch()

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
        torch = require_torch()
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
        torch = require_torch()
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
        torch = require_torch()
        if xb.dtype == torch.uint8:
            xb = (xb.float() / 255.0 - self.mean) / self.std
        if train and self.augment:
            xb = _crop_flip(xb, pad=max(1, xb.shape[-1] // 8))
        if self.device.type == "cpu":
            xb = xb.contiguous(memory_format=torch.channels_last)
        return xb


def _crop_flip(xb: Any, pad: int) -> Any:
    """Random crop with zero padding and random horizontal flip of a batch (per sample)."""
    torch = require_torch()
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
        torch = require_torch()
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
        torch = require_torch()
        opt = torch.optim.SGD(
            model.parameters(), lr=self.lr, momentum=0.9, nesterov=True, weight_decay=3e-4
        )
        return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total_steps))


class ResNet18Learner(_SGDProtocol):
    """CIFAR-style ResNet-18 (3x3 stem, no max-pool), trained with the deep-AL protocol."""

    name = "resnet18"

    def _build(self) -> Any:
        torch = require_torch()
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
        torch = require_torch()
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
