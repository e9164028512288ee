"""Encoders (backbones) for self-supervised training; each returns penultimate-layer features.

==========  =================================================================  ==========
arch        network                                                            dim
==========  =================================================================  ==========
small       3 conv blocks (32-64-128, BN, ReLU, 2 max-pools) + global avg-pool  128
resnet18    CIFAR-style ResNet-18 (3x3 stem, no max-pool), fc removed          512
resnet50    torchvision ResNet-50 (ImageNet stem), fc removed                  2048
==========  =================================================================  ==========

``auto`` picks ``small`` for images up to 28x28, ``resnet18`` up to 64x64, else ``resnet50``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from al_runner.errors import ALRunnerError

__all__ = ["ARCHS", "Encoder", "auto_arch", "build_encoder"]

ARCHS = ("small", "resnet18", "resnet50")


class Encoder(nn.Module):
    """A backbone with its output dimension ``dim`` (the penultimate layer of a classifier).

    Parameters
    ----------
    net : torch.nn.Module
        Maps ``(N, C, H, W)`` to ``(N, dim)``.
    dim : int
        Feature dimension.
    in_channels : int
        Channels the network expects; 1-channel input is repeated to 3 when it expects 3.
    """

    def __init__(self, net: nn.Module, dim: int, in_channels: int) -> None:
        super().__init__()
        self.net = net
        self.dim = int(dim)
        self.in_channels = int(in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(N, dim)`` of a batch ``(N, C, H, W)``."""
        if x.shape[1] == 1 and self.in_channels == 3:
            x = x.expand(-1, 3, -1, -1)
        return self.net(x)


def _small(in_channels: int) -> Encoder:
    def block(cin: int, cout: int, pool: bool) -> list[nn.Module]:
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        ]
        return [*layers, nn.MaxPool2d(2)] if pool else layers

    net = nn.Sequential(
        *block(in_channels, 32, True),
        *block(32, 64, True),
        *block(64, 128, False),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )
    return Encoder(net, 128, in_channels)


def _resnet(arch: str, in_channels: int, cifar: bool) -> Encoder:
    from torchvision.models import resnet18, resnet50

    net = resnet18() if arch == "resnet18" else resnet50()
    if cifar:
        net.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
    dim = net.fc.in_features
    net.fc = nn.Identity()
    return Encoder(net, dim, in_channels if cifar else 3)


def auto_arch(image_shape: tuple[int, ...]) -> str:
    """Encoder for images of shape ``(C, H, W)``: small, resnet18 or resnet50 by size."""
    side = max(image_shape[1:])
    return "small" if side <= 28 else "resnet18" if side <= 64 else "resnet50"


def build_encoder(arch: str, image_shape: tuple[int, ...]) -> Encoder:
    """Build an encoder.

    Parameters
    ----------
    arch : {"auto", "small", "resnet18", "resnet50"}
    image_shape : tuple
        ``(C, H, W)`` of the input images.

    Returns
    -------
    Encoder
    """
    if arch == "auto":
        arch = auto_arch(image_shape)
    if arch == "small":
        return _small(image_shape[0])
    if arch == "resnet18":
        return _resnet(arch, image_shape[0], cifar=True)
    if arch == "resnet50":
        return _resnet(arch, image_shape[0], cifar=False)
    raise ALRunnerError(f"unknown encoder {arch!r}; known: auto, {', '.join(ARCHS)}")


_PREFIXES = ("module.", "encoder_q.", "encoder.", "backbone.", "base_encoder.", "online_net.")


def torchvision_resnet_from_state_dict(state: dict[str, Any], source: str = "") -> Encoder:
    """A torchvision ResNet-18/50 encoder loaded from a (possibly wrapped) state dict.

    Common wrappers (``state_dict``/``model`` entries, ``module.``, ``encoder_q.``,
    ``backbone.`` prefixes of MoCo/BYOL/SimCLR releases) are unwrapped; ``fc.*`` is dropped.

    Parameters
    ----------
    state : dict
        What ``torch.load`` returned.
    source : str
        Name of the file (for error messages).

    Returns
    -------
    Encoder
        An ImageNet-stem ResNet with ``fc`` removed, weights loaded strictly.
    """
    from torchvision.models import resnet18, resnet50

    for key in ("state_dict", "model", "online_backbone"):
        if isinstance(state.get(key), dict):
            state = state[key]
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ALRunnerError(f"{source}: not a state dict of tensors (keys {list(state)[:5]})")
    clean: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for prefix in _PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix) :], True
        if not key.startswith("fc.") and not key.startswith("head"):
            clean[key] = value
    arch = "resnet50" if any(k.startswith("layer1.0.conv3") for k in clean) else "resnet18"
    net = resnet18() if arch == "resnet18" else resnet50()
    net.fc = nn.Identity()
    expected = set(net.state_dict())
    missing = sorted(expected - set(clean))
    unexpected = sorted(set(clean) - expected)
    if missing or unexpected:
        raise ALRunnerError(
            f"{source}: keys do not match a torchvision {arch} state dict: "
            f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected "
            f"(e.g. {unexpected[:3]})"
        )
    try:
        net.load_state_dict(clean, strict=True)
    except RuntimeError as exc:  # shape mismatch
        raise ALRunnerError(f"{source}: tensor shapes do not match {arch}: {exc}") from exc
    return Encoder(net, 2048 if arch == "resnet50" else 512, 3)
