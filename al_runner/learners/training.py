"""Training pieces every model of al_runner shares: the minibatch loop, image statistics, workers.

:class:`Trainer` runs optimiser steps over the batches an *epoch function* yields until a step
count is reached (bfloat16 autocast on CUDA); the learners (:mod:`al_runner.learners.models`) only
say
what to build, how to batch and which optimiser to use. :func:`channel_stats` standardises
in-memory uint8 images for the learners and the self-supervised encoders alike.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["Trainer", "channel_stats", "loader_workers"]

#: ``epoch()`` -> the ``(inputs, labels)`` batches of one pass over the training set.
EpochFn = Callable[[], Iterable[tuple[Any, Any]]]
#: ``optimiser(model, total_steps)`` -> ``(optimiser, scheduler or None)``.
OptimiserFn = Callable[[Any, int], tuple[Any, Any]]


def loader_workers() -> int:
    """DataLoader worker processes for on-disk datasets (all cores but one, at most 8)."""
    return min(8, max(0, (os.cpu_count() or 1) - 1))


def channel_stats(x: Any, chunk: int = 8192) -> tuple[Any, Any]:
    """Per-channel mean and std of uint8 images scaled to [0, 1].

    Parameters
    ----------
    x : torch.Tensor
        ``(N, C, H, W)`` uint8 images (on any device); summed in float64 chunks, so the pool
        is never copied to float as a whole.
    chunk : int
        Images per chunk.

    Returns
    -------
    tuple of torch.Tensor
        ``(mean, std)``, float32 ``(1, C, 1, 1)``; std is at least ``1e-3``.
    """
    import torch

    s1 = torch.zeros(x.shape[1], dtype=torch.float64, device=x.device)
    s2 = torch.zeros_like(s1)
    for start in range(0, x.shape[0], chunk):
        part = x[start : start + chunk].double() / 255.0
        s1 += part.sum(dim=(0, 2, 3))
        s2 += part.pow(2).sum(dim=(0, 2, 3))
    count = x.shape[0] * x.shape[2] * x.shape[3]
    mean = s1 / count
    std = (s2 / count - mean**2).clamp_min(1e-6).sqrt()
    return mean.float().view(1, -1, 1, 1), std.float().view(1, -1, 1, 1)


class Trainer:
    """Minibatch training with cross-entropy: steps over epochs until ``total_steps``.

    Parameters
    ----------
    device : torch.device
        Where the model and the batches live; CUDA trains with bfloat16 autocast.
    """

    def __init__(self, device: Any) -> None:
        self.device = device
        self.amp = device.type == "cuda"

    def step(self, model: Any, loss_fn: Any, xb: Any, yb: Any, opt: Any, sched: Any) -> None:
        """One optimiser step (bfloat16 autocast on CUDA), then the scheduler's."""
        import torch

        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            loss = loss_fn(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()

    def fit(self, model: Any, epoch: EpochFn, total_steps: int, optimiser: OptimiserFn) -> None:
        """Train ``model`` for ``total_steps`` steps over repeated ``epoch()`` passes.

        Parameters
        ----------
        model : torch.nn.Module
        epoch : callable
            Returns the ``(inputs, labels)`` batches of one pass, on the device; it is called
            again for every new pass (reshuffling is its job).
        total_steps : int
            Optimiser steps in all (a pass may be cut short).
        optimiser : callable
            ``optimiser(model, total_steps) -> (optimiser, scheduler or None)``.
        """
        import torch

        opt, sched = optimiser(model, total_steps)
        loss_fn = torch.nn.CrossEntropyLoss()
        model.train()
        step = 0
        while step < total_steps:
            for xb, yb in epoch():
                self.step(model, loss_fn, xb, yb, opt, sched)
                step += 1
                if step >= total_steps:
                    break
