"""DINOv2 Vision Transformers from a local state dict (no torch.hub, timm or download).

:func:`dinov2_from_state_dict` rebuilds the backbone of Oquab et al. (2023), "DINOv2: Learning
Robust Visual Features without Supervision", from the parameter names and shapes of a released
``dinov2_vit{s,b,l,g}14[_reg4]_pretrain.pth`` file (or a training checkpoint's ``teacher`` /
``backbone`` part): patch size, width, depth, heads (width / 64), MLP or SwiGLU feed-forward,
layer scale and register tokens are all read from the weights. The feature is the normalised
class token (``x_norm_clstoken``), as DINOv2's kNN and linear evaluations use.

Inputs are resized to 224 x 224 (bicubic, antialiased) before the patch embedding; the position
embedding is interpolated as the official code does (``offset 0.1`` without registers,
``antialias`` with them).
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from al_runner.embeddings.encoders import Encoder
from al_runner.errors import ALRunnerError

__all__ = ["DinoViT", "dinov2_from_state_dict", "is_vit_state_dict"]

reference = "Oquab et al. (2023), DINOv2: Learning Robust Visual Features without Supervision"
INPUT_SIZE = 224


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w12 = nn.Linear(dim, 2 * hidden)
        self.w3 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(x1) * x2)


class _LayerScale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int, swiglu: bool, scale: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, heads)
        self.ls1 = _LayerScale(dim) if scale else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _SwiGLU(dim, hidden) if swiglu else _Mlp(dim, hidden)
        self.ls2 = _LayerScale(dim) if scale else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DinoViT(nn.Module):
    """The DINOv2 backbone (parameter names as in ``facebookresearch/dinov2``).

    Parameters
    ----------
    patch : int
        Patch size (14 for the released models).
    dim, depth, heads, hidden : int
        Width, blocks, attention heads, feed-forward hidden size.
    grid : int
        Side of the position-embedding grid (37 for the 518-pixel released models).
    registers : int
        Register tokens (4 for the ``_reg`` models, else 0).
    swiglu, layer_scale : bool
        SwiGLU feed-forward (ViT-g) and layer scale (all released models).
    """

    def __init__(
        self,
        patch: int,
        dim: int,
        depth: int,
        heads: int,
        hidden: int,
        grid: int,
        registers: int = 0,
        swiglu: bool = False,
        layer_scale: bool = True,
    ) -> None:
        super().__init__()
        self.patch = patch
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))  # training only; kept for loading
        self.register_tokens = nn.Parameter(torch.zeros(1, registers, dim)) if registers else None
        self.blocks = nn.ModuleList(
            _Block(dim, heads, hidden, swiglu, layer_scale) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def _pos_embed(self, h: int, w: int) -> torch.Tensor:
        grid = int(math.sqrt(self.pos_embed.shape[1] - 1))
        h0, w0 = h // self.patch, w // self.patch
        if (h0, w0) == (grid, grid):
            return self.pos_embed
        pos = self.pos_embed.float()
        patches = pos[:, 1:].reshape(1, grid, grid, -1).permute(0, 3, 1, 2)
        if self.register_tokens is None:  # the official offset of 0.1, no antialiasing
            scale = ((h0 + 0.1) / grid, (w0 + 0.1) / grid)
            patches = F.interpolate(patches, scale_factor=scale, mode="bicubic")
        else:  # the _reg models: exact size, antialiased
            patches = F.interpolate(patches, size=(h0, w0), mode="bicubic", antialias=True)
        patches = patches.permute(0, 2, 3, 1).reshape(1, h0 * w0, -1)
        return torch.cat([pos[:, :1], patches], dim=1).to(self.pos_embed.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised class token ``(N, dim)`` of a batch ``(N, 3, H, W)``."""
        h, w = x.shape[-2:]
        tokens = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), tokens], dim=1)
        tokens = tokens + self._pos_embed(h, w)
        if self.register_tokens is not None:
            regs = self.register_tokens.expand(x.shape[0], -1, -1)
            tokens = torch.cat([tokens[:, :1], regs, tokens[:, 1:]], dim=1)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)[:, 0]


class _Resized(nn.Module):
    """Resize any input to ``size`` x ``size`` before the wrapped network."""

    def __init__(self, net: nn.Module, size: int) -> None:
        super().__init__()
        self.net = net
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bicubic", antialias=True)
        return self.net(x)


def is_vit_state_dict(state: dict[str, Any]) -> bool:
    """Whether a (possibly prefixed) state dict holds a DINOv2-style ViT."""
    return any(k.endswith("patch_embed.proj.weight") for k in state) and any(
        k.endswith("cls_token") for k in state
    )


def _unwrap(state: dict[str, Any]) -> dict[str, Any]:
    for key in ("teacher", "model", "state_dict"):
        if isinstance(state.get(key), dict):
            state = state[key]
    clean = {}
    for key, value in state.items():
        for prefix in ("module.", "backbone.", "teacher.", "encoder."):
            key = key.removeprefix(prefix)
        if key.startswith(("student.", "dino_head", "ibot_head", "head")):
            continue
        key = re.sub(r"^blocks\.\d+\.(\d+)\.", r"blocks.\1.", key)  # chunked (FSDP) blocks
        clean[key] = value
    return clean


def dinov2_from_state_dict(state: dict[str, Any], source: str = "") -> Encoder:
    """A DINOv2 ViT encoder loaded strictly from a local state dict.

    Parameters
    ----------
    state : dict
        What ``torch.load`` returned for a DINOv2 ``*_pretrain.pth`` (or a training checkpoint).
    source : str
        File name for error messages.

    Returns
    -------
    Encoder
        Maps images ``(N, C, H, W)`` (resized to 224) to class-token features ``(N, dim)``.
    """
    state = _unwrap(state)
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ALRunnerError(f"{source}: not a state dict of tensors (keys {list(state)[:5]})")
    try:
        proj = state["patch_embed.proj.weight"]
        dim, _, patch, _ = proj.shape
        depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
        swiglu = "blocks.0.mlp.w12.weight" in state
        hidden = (
            state["blocks.0.mlp.w3.weight"].shape[1]
            if swiglu
            else state["blocks.0.mlp.fc1.weight"].shape[0]
        )
        grid = int(round(math.sqrt(state["pos_embed"].shape[1] - 1)))
    except (KeyError, ValueError, IndexError) as exc:
        raise ALRunnerError(
            f"{source}: not a DINOv2 ViT state dict (no {exc} among keys {list(state)[:5]})"
        ) from exc
    registers = state["register_tokens"].shape[1] if "register_tokens" in state else 0
    net = DinoViT(
        patch, dim, depth, max(1, dim // 64), hidden, grid, registers, swiglu,
        layer_scale="blocks.0.ls1.gamma" in state,
    )  # fmt: skip
    expected = set(net.state_dict())
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        raise ALRunnerError(
            f"{source}: keys do not match a DINOv2 ViT (width {dim}, depth {depth}): "
            f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected "
            f"(e.g. {unexpected[:3]})"
        )
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ALRunnerError(f"{source}: tensor shapes do not match the DINOv2 ViT: {exc}") from exc
    return Encoder(_Resized(net, INPUT_SIZE), dim, 3)
