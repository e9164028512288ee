"""SimCLR, MoCo v2, MoCo v3 and BYOL as modules with ``loss(v1, v2)`` and ``momentum_update``.

==========  ==========================================================================
method      ingredients
==========  ==========================================================================
simclr      two views, shared encoder + 2-layer projection head, NT-Xent (T = 0.5)
mocov2      query encoder + MLP head; momentum key encoder; queue of negatives; InfoNCE
            (T = 0.2), symmetrised over the two views
mocov3      encoder + 3-layer BN projector + 2-layer predictor; momentum encoder/projector;
            symmetric contrastive loss with in-batch negatives (T = 0.2), no queue
byol        online encoder + projector + predictor; EMA target encoder + projector;
            symmetric ``2 - 2 cos`` regression loss, no negatives
==========  ==========================================================================

Momentum coefficients follow a cosine schedule from ``momentum`` to 1 (BYOL, MoCo v3);
MoCo v2 keeps it constant. Shuffle-BN of MoCo v2 (multi-GPU) is not reproduced.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from al_runner.embeddings.encoders import Encoder

__all__ = ["METHODS", "SSLMethod", "build_method", "nt_xent"]

METHODS = ("simclr", "mocov2", "mocov3", "byol")


def _mlp(dims: list[int], bn_last: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        last = i == len(dims) - 2
        layers.append(nn.Linear(dims[i], dims[i + 1], bias=last and not bn_last))
        if not last:
            layers += [nn.BatchNorm1d(dims[i + 1]), nn.ReLU(inplace=True)]
        elif bn_last:
            layers.append(nn.BatchNorm1d(dims[i + 1], affine=False))
    return nn.Sequential(*layers)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """NT-Xent (SimCLR): each of the ``2N`` views must pick its partner among ``2N - 1``.

    Parameters
    ----------
    z1, z2 : torch.Tensor
        Projections ``(N, d)`` of the two views (normalised here).
    temperature : float

    Returns
    -------
    torch.Tensor
        Scalar mean loss.
    """
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = z1.shape[0]
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


def _info_nce(q: torch.Tensor, k: torch.Tensor, temperature: float) -> torch.Tensor:
    """In-batch contrastive loss of MoCo v3 (scaled by ``2 T`` as in the paper's code)."""
    q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    logits = q @ k.T / temperature
    target = torch.arange(q.shape[0], device=q.device)
    return F.cross_entropy(logits, target) * 2 * temperature


class SSLMethod(nn.Module):
    """Base class: an ``encoder`` plus method-specific heads.

    Attributes
    ----------
    encoder : Encoder
        The backbone whose output is the embedding.
    momentum : float
        Base momentum of the target/key network (methods that have one).
    """

    name: str = ""
    momentum: float = 0.0

    def __init__(self, encoder: Encoder) -> None:
        super().__init__()
        self.encoder = encoder

    def loss(self, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        """Loss of a batch given two augmented views ``(N, C, H, W)``."""
        raise NotImplementedError

    def _targets(self) -> list[tuple[nn.Module, nn.Module]]:
        return []

    @torch.no_grad()
    def momentum_update(self, progress: float) -> None:
        """EMA of online into target weights; ``progress`` in [0, 1] of training."""
        pairs = self._targets()
        if not pairs:
            return
        m = self.current_momentum(progress)
        for online, target in pairs:
            for po, pt in zip(online.parameters(), target.parameters(), strict=True):
                pt.mul_(m).add_(po.detach(), alpha=1 - m)
            for bo, bt in zip(online.buffers(), target.buffers(), strict=True):
                bt.copy_(bo)

    def current_momentum(self, progress: float) -> float:
        """Cosine schedule from ``momentum`` to 1."""
        return 1 - (1 - self.momentum) * (math.cos(math.pi * min(1.0, progress)) + 1) / 2

    @staticmethod
    def _frozen_copy(module: nn.Module) -> nn.Module:
        target = copy.deepcopy(module)
        for p in target.parameters():
            p.requires_grad_(False)
        return target


class SimCLR(SSLMethod):
    """SimCLR: shared encoder, projection head (dim -> dim -> 128), NT-Xent."""

    name = "simclr"

    def __init__(self, encoder: Encoder, proj_dim: int = 128, temperature: float = 0.5) -> None:
        super().__init__(encoder)
        self.projector = _mlp([encoder.dim, encoder.dim, proj_dim])
        self.temperature = temperature

    def loss(self, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        """NT-Xent of the two views' projections."""
        z = self.projector(self.encoder(torch.cat([v1, v2])))
        z1, z2 = z.chunk(2)
        return nt_xent(z1, z2, self.temperature)


class MoCoV2(SSLMethod):
    """MoCo v2: momentum key encoder, queue of ``queue_size`` negative keys, InfoNCE."""

    name = "mocov2"

    def __init__(
        self,
        encoder: Encoder,
        proj_dim: int = 128,
        queue_size: int = 4096,
        temperature: float = 0.2,
        momentum: float = 0.99,
    ) -> None:
        super().__init__(encoder)
        self.projector = _mlp([encoder.dim, encoder.dim, proj_dim])
        self.key_encoder = self._frozen_copy(encoder)
        self.key_projector = self._frozen_copy(self.projector)
        self.temperature = temperature
        self.momentum = momentum
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, proj_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    def current_momentum(self, progress: float) -> float:
        """Constant momentum (as MoCo v2)."""
        return self.momentum

    def _targets(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.encoder, self.key_encoder), (self.projector, self.key_projector)]

    def _contrast(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        q = F.normalize(q, dim=1)
        pos = (q * k).sum(1, keepdim=True)
        neg = q @ self.queue.clone().detach().T
        logits = torch.cat([pos, neg], 1) / self.temperature
        return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))

    @torch.no_grad()
    def _enqueue(self, k: torch.Tensor) -> None:
        size = self.queue.shape[0]
        k = k[:size]
        ptr = int(self.queue_ptr)
        idx = (torch.arange(k.shape[0], device=k.device) + ptr) % size
        self.queue[idx] = k
        self.queue_ptr.fill_((ptr + k.shape[0]) % size)

    def loss(self, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        """Symmetrised InfoNCE of queries against momentum keys and the queue."""
        q1, q2 = self.projector(self.encoder(torch.cat([v1, v2]))).chunk(2)
        with torch.no_grad():
            k1, k2 = F.normalize(
                self.key_projector(self.key_encoder(torch.cat([v1, v2]))), dim=1
            ).chunk(2)
        loss = (self._contrast(q1, k2) + self._contrast(q2, k1)) / 2
        if self.training:
            self._enqueue(k2)
        return loss


class MoCoV3(SSLMethod):
    """MoCo v3: projector + predictor, momentum encoder + projector, symmetric InfoNCE."""

    name = "mocov3"

    def __init__(
        self,
        encoder: Encoder,
        proj_dim: int = 256,
        hidden: int = 1024,
        temperature: float = 0.2,
        momentum: float = 0.99,
    ) -> None:
        super().__init__(encoder)
        self.projector = _mlp([encoder.dim, hidden, hidden, proj_dim], bn_last=True)
        self.predictor = _mlp([proj_dim, hidden, proj_dim], bn_last=True)
        self.momentum_encoder = self._frozen_copy(encoder)
        self.momentum_projector = self._frozen_copy(self.projector)
        self.temperature = temperature
        self.momentum = momentum

    def _targets(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.encoder, self.momentum_encoder), (self.projector, self.momentum_projector)]

    def loss(self, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        """``ctr(q1, k2) + ctr(q2, k1)`` with in-batch negatives."""
        q1, q2 = self.predictor(self.projector(self.encoder(torch.cat([v1, v2])))).chunk(2)
        with torch.no_grad():
            k1, k2 = self.momentum_projector(self.momentum_encoder(torch.cat([v1, v2]))).chunk(2)
        return _info_nce(q1, k2, self.temperature) + _info_nce(q2, k1, self.temperature)


class BYOL(SSLMethod):
    """BYOL: online projector + predictor regress the EMA target's projection (no negatives)."""

    name = "byol"

    def __init__(
        self, encoder: Encoder, proj_dim: int = 128, hidden: int = 512, momentum: float = 0.99
    ) -> None:
        super().__init__(encoder)
        self.projector = _mlp([encoder.dim, hidden, proj_dim])
        self.predictor = _mlp([proj_dim, hidden, proj_dim])
        self.target_encoder = self._frozen_copy(encoder)
        self.target_projector = self._frozen_copy(self.projector)
        self.momentum = momentum

    def _targets(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.encoder, self.target_encoder), (self.projector, self.target_projector)]

    def loss(self, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        """Symmetric ``2 - 2 cos(p_online, z_target)`` averaged over the batch."""
        p1, p2 = self.predictor(self.projector(self.encoder(torch.cat([v1, v2])))).chunk(2)
        with torch.no_grad():
            z1, z2 = self.target_projector(self.target_encoder(torch.cat([v1, v2]))).chunk(2)

        def reg(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
            return (2 - 2 * F.cosine_similarity(p, z.detach(), dim=1)).mean()

        return reg(p1, z2) + reg(p2, z1)


def build_method(name: str, encoder: Encoder, **options: float) -> SSLMethod:
    """Wrap ``encoder`` in the SSL method ``name`` (one of :data:`METHODS`)."""
    from al_runner.errors import ALRunnerError

    classes = {"simclr": SimCLR, "mocov2": MoCoV2, "mocov3": MoCoV3, "byol": BYOL}
    if name not in classes:
        raise ALRunnerError(f"unknown SSL method {name!r}; known: {', '.join(METHODS)}")
    return classes[name](encoder, **options)
