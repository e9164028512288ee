"""Batched tensor augmentations for self-supervised views (CPU- and GPU-friendly).

One random affine warp per image implements random-resized crop, horizontal flip and a small
rotation in a single ``grid_sample``; then brightness/contrast jitter, (for RGB) random
grayscale, and Gaussian noise. Inputs are floats in [0, 1], ``(N, C, H, W)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["Augment"]


@dataclass
class Augment:
    """Random view generator.

    Parameters
    ----------
    scale : tuple of float
        Area range of the random-resized crop (fraction of the image).
    flip : bool
        Random horizontal flip (off for digits: a flipped digit is another symbol).
    rotate : float
        Maximum rotation in degrees.
    jitter : float
        Brightness/contrast jitter strength (applied with probability 0.8).
    noise : float
        Standard deviation of additive Gaussian noise (applied with probability 0.5).
    """

    scale: tuple[float, float] = (0.3, 1.0)
    flip: bool = True
    rotate: float = 10.0
    jitter: float = 0.4
    noise: float = 0.05

    def __call__(self, x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """One random view of every image of ``x``."""
        n, c = x.shape[:2]
        dev, dt = x.device, x.dtype

        def u(*shape: int) -> torch.Tensor:
            return torch.rand(*shape, generator=gen, device="cpu").to(dev, dt)

        area = self.scale[0] + (self.scale[1] - self.scale[0]) * u(n)
        log_r = (u(n) * 2 - 1) * math.log(4 / 3)
        w = torch.sqrt(area * torch.exp(log_r)).clamp(max=1.0)
        h = torch.sqrt(area / torch.exp(log_r)).clamp(max=1.0)
        cx = (u(n) * 2 - 1) * (1 - w)
        cy = (u(n) * 2 - 1) * (1 - h)
        angle = (u(n) * 2 - 1) * math.radians(self.rotate)
        sign = torch.where(u(n) < 0.5, -1.0, 1.0).to(dt) if self.flip else torch.ones_like(w)
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.stack(
            [
                torch.stack([w * sign * cos, -h * sin, cx], 1),
                torch.stack([w * sign * sin, h * cos, cy], 1),
            ],
            1,
        )
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if self.jitter > 0:
            on = (u(n) < 0.8).view(n, 1, 1, 1).to(dt)
            contrast = 1 + (u(n, 1, 1, 1) * 2 - 1) * self.jitter
            bright = (u(n, 1, 1, 1) * 2 - 1) * self.jitter / 2
            mean = out.mean(dim=(1, 2, 3), keepdim=True)
            out = on * ((out - mean) * contrast + mean + bright) + (1 - on) * out
        if c == 3:
            gray = (u(n) < 0.2).view(n, 1, 1, 1).to(dt)
            out = gray * out.mean(dim=1, keepdim=True).expand_as(out) + (1 - gray) * out
        if self.noise > 0:
            on = (u(n) < 0.5).view(n, 1, 1, 1).to(dt)
            eps = torch.randn(out.shape, generator=gen, device="cpu").to(dev, dt)
            out = out + on * self.noise * eps
        return out.clamp(0.0, 1.0)
