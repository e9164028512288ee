"""The predictor of a learner's head: softmax, or consistent MC-dropout samples of it."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["head_proba"]


def head_proba(
    head: Any, h: np.ndarray, *, p: float, samples: int = 0, seed: int = 0, device: Any = "cpu"
) -> np.ndarray:
    """Softmax of a ``Dropout + Linear`` head on embeddings; with ``samples=T``, T dropout masks.

    MC dropout is *consistent* (Kirsch et al., BatchBALD, 2019): each draw samples one dropout
    mask over the embedding units and applies it to every sample, so a draw is one sampled
    model. The trunk is not re-run: ``h`` is its output, computed once.

    Parameters
    ----------
    head : torch.nn.Sequential
        Ends in a ``Linear`` layer.
    h : numpy.ndarray
        Embeddings ``(n, d)``.
    p : float
        Dropout rate of the sampled masks.
    samples : int
        0: deterministic probabilities ``(n, C)``; T > 0: MC-dropout ``(T, n, C)``.
    seed : int
        Seed of the dropout masks.
    device : torch.device or str
        Device of ``head``.

    Returns
    -------
    numpy.ndarray
    """
    import torch

    ht = torch.as_tensor(np.asarray(h, dtype=np.float32), device=device)
    with torch.inference_mode():
        if samples <= 0:
            return torch.softmax(head(ht).float(), dim=1).cpu().numpy()
        gen = torch.Generator(device=device).manual_seed(seed)
        linear = head[-1]
        draws = []
        for _ in range(samples):
            # consistent MC dropout: one mask per sample, shared by the whole pool, i.e.
            # one sampled model (dropped input units of the last layer) per draw
            keep = torch.rand(ht.shape[1], generator=gen, device=device) >= p
            weight = linear.weight * (keep / (1.0 - p))
            logits = torch.nn.functional.linear(ht, weight, linear.bias)
            draws.append(torch.softmax(logits.float(), dim=1).cpu())
        return torch.stack(draws).numpy()
