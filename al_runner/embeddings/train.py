"""Training loop (resumable, atomic checkpoints), feature extraction and the feature cache."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from al_runner.datasets import (
    IMAGENET_MEAN,
    IMAGENET_SIZE,
    IMAGENET_STD,
    ALDataset,
    imagenet_resize_crop,
)
from al_runner.embeddings.augment import Augment
from al_runner.embeddings.encoders import Encoder, build_encoder
from al_runner.embeddings.methods import METHODS, SSLMethod, build_method
from al_runner.errors import ALRunnerError
from al_runner.learners import training
from al_runner.learners.training import channel_stats

_channel_stats = channel_stats  # the old name (benchmarks/embeddings.py imports it)

__all__ = [
    "EmbedConfig",
    "checkpoint_path",
    "encoder_features",
    "extract_features",
    "file_hash",
    "load_checkpoint",
    "ssl_features",
    "train_encoder",
]

_NO_FLIP = ("digits", "mnist", "svhn")  # digits read differently mirrored


@dataclass
class EmbedConfig:
    """Settings of one self-supervised training run.

    Parameters
    ----------
    dataset : str
        Dataset name (the pool is its train split; labels are never read).
    method : {"simclr", "mocov2", "mocov3", "byol"}
    epochs : int
    arch : {"auto", "small", "resnet18", "resnet50"}
    batch_size : int
    lr : float
        AdamW learning rate (weight decay 1e-6 ... 1e-4 by ``weight_decay``).
    weight_decay : float
    seed : int
    max_steps_per_epoch : int, optional
        Cap on optimiser steps per epoch (tests and time-budgeted benchmarks).
    method_options : dict
        Keyword arguments of the method (``temperature``, ``momentum``, ``queue_size``, ...).
    """

    dataset: str
    method: str
    epochs: int = 20
    arch: str = "auto"
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-6
    seed: int = 0
    max_steps_per_epoch: int | None = None
    method_options: dict[str, float] = field(default_factory=dict)

    def validate(self) -> EmbedConfig:
        """Check the method and sizes; return self."""
        if self.method not in METHODS:
            raise ALRunnerError(f"unknown SSL method {self.method!r}; known: {', '.join(METHODS)}")
        if self.epochs < 1 or self.batch_size < 2:
            raise ALRunnerError("epochs must be >= 1 and batch size >= 2")
        return self


def checkpoint_path(out_dir: str | os.PathLike, dataset: str, method: str) -> Path:
    """Checkpoint file of ``method`` on ``dataset`` inside ``out_dir``."""
    return Path(out_dir) / f"{dataset}-{method}.pt"


def file_hash(path: str | os.PathLike, n: int = 12) -> str:
    """First ``n`` hex digits of the SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:n]


class _MemoryPool:
    """The pool of an in-memory image dataset: uint8 ``(N, C, H, W)`` batches by index."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = torch.as_tensor(x)
        self.shape = tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return self.x.shape[0]

    def stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        return channel_stats(self.x)

    def batches(self, order: torch.Tensor, bs: int) -> Any:
        for start in range(0, len(order) - bs + 1, bs):
            yield self.x[order[start : start + bs]]


class _DiskPool:
    """The pool of an on-disk ImageFolder (ImageNet subsets), decoded in DataLoader workers.

    Images are resized and centre-cropped to the evaluation size of the dataset (so training
    and feature extraction see the same resolution) and kept as uint8; the random views are
    made on the device like for in-memory data. Normalisation: the ImageNet channel statistics
    the dataset's evaluation transform uses.
    """

    def __init__(self, dataset: Any, workers: int) -> None:
        import copy

        from torchvision import transforms as T

        self.dataset = copy.copy(dataset)
        self.dataset.transform = T.Compose([*imagenet_resize_crop(), T.PILToTensor()])
        self.shape = (3, IMAGENET_SIZE, IMAGENET_SIZE)
        self.workers = workers

    def __len__(self) -> int:
        return len(self.dataset)

    def stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        return mean, torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    def batches(self, order: torch.Tensor, bs: int) -> Any:
        subset = torch.utils.data.Subset(self.dataset, order.tolist())
        loader = torch.utils.data.DataLoader(
            subset, batch_size=bs, drop_last=True, num_workers=self.workers,
            pin_memory=torch.cuda.is_available(),
        )  # fmt: skip
        for xb, _ in loader:
            yield xb


def _pool(data: ALDataset) -> _MemoryPool | _DiskPool:
    if data.kind != "image":
        raise ALRunnerError(f"{data.name} holds features, not images: nothing to embed")
    if data.train.in_memory:
        return _MemoryPool(data.train.x)
    return _DiskPool(data.train.x, training.loader_workers())


def _read_checkpoint(path: Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint with PyTorch's safe unpickler (tensors and plain containers only).

    A file that needs arbitrary Python objects (a planted pickle, a checkpoint from another
    tool) is refused before any of its code can run.
    """
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # the safe unpickler's refusal or a corrupt file
        raise ALRunnerError(
            f"{path} is not a safe al-runner checkpoint (it holds objects other than tensors "
            f"and plain values, or is corrupt); refusing to load it: {str(err).splitlines()[0]}"
        ) from None
    if not isinstance(ckpt, dict):
        raise ALRunnerError(f"{path} is not an al-runner embed checkpoint")
    return ckpt


def _save(path: Path, payload: dict[str, Any]) -> None:
    from palm_bayes.data.contract import atomic_write

    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def train_encoder(
    data: ALDataset,
    config: EmbedConfig,
    out_dir: str | os.PathLike,
    *,
    device: str = "auto",
    resume: bool = True,
    progress: bool = True,
    time_budget: float | None = None,
) -> tuple[Path, list[float]]:
    """Train (or resume) a self-supervised encoder on the pool of ``data``.

    A checkpoint (method weights, optimiser, RNG states, epoch, normalisation, config) is
    written atomically after every epoch; rerunning with the same settings resumes from it and
    a finished run returns at once.

    Parameters
    ----------
    data : ALDataset
        Image dataset, in memory or an on-disk ImageFolder (ImageNet subsets); only the train
        split (the unlabelled pool) is used.
    config : EmbedConfig
    out_dir : path
        Folder of the checkpoint ``<dataset>-<method>.pt``.
    device : str
        ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    resume : bool
        Continue from an existing checkpoint (settings other than ``epochs`` must match).
    progress : bool
        tqdm bar per epoch with the running loss.
    time_budget : float, optional
        Stop after this many seconds of training (checkpoint written; resumable).

    Returns
    -------
    tuple
        ``(checkpoint path, per-step losses of this call)``.
    """
    from al_runner.learners.models import resolve_device

    config.validate()
    dev = torch.device(resolve_device(device))
    pool = _pool(data)
    mean, std = pool.stats()
    shape = pool.shape
    torch.manual_seed(config.seed)
    method = build_method(
        config.method, build_encoder(config.arch, shape), **config.method_options
    ).to(dev)
    opt = torch.optim.AdamW(
        [p for p in method.parameters() if p.requires_grad],
        lr=config.lr,
        weight_decay=config.weight_decay,
    )
    gen = torch.Generator().manual_seed(config.seed)
    path = checkpoint_path(out_dir, config.dataset, config.method)
    key = {k: v for k, v in asdict(config).items() if k != "epochs"}
    start_epoch = _resume(path, dev, key, method, opt, gen) if resume and path.exists() else 0
    aug = Augment(flip=not any(config.dataset.startswith(p) for p in _NO_FLIP))
    n = len(pool)
    bs = min(config.batch_size, n)
    steps = n // bs
    if config.max_steps_per_epoch:
        steps = min(steps, config.max_steps_per_epoch)
    mean_d, std_d = mean.to(dev), std.to(dev)
    losses: list[float] = []
    t0 = time.perf_counter()
    stopped = False
    for epoch in range(start_epoch, config.epochs):
        deadline = None if time_budget is None else t0 + time_budget
        stopped = _train_epoch(method, opt, pool, aug, gen, (mean_d, std_d), epoch, steps, bs,
                               config, losses, progress, deadline)  # fmt: skip
        if stopped:  # partial epoch: not counted as finished, so a resume redoes it
            break
        _save(path, _payload(method, opt, gen, epoch + 1, key, config, mean, std, shape))
    if stopped or not path.exists():
        done = start_epoch if not path.exists() else int(_read_checkpoint(path)["epoch"])
        _save(path, _payload(method, opt, gen, done, key, config, mean, std, shape))
    return path, losses


def _resume(path: Path, dev: Any, key: dict, method: SSLMethod, opt: Any, gen: Any) -> int:
    """Load the checkpoint at ``path`` into the training state; the epoch it had finished."""
    ckpt = _read_checkpoint(path, dev)
    if ckpt.get("key") != key:
        raise ALRunnerError(
            f"{path} was trained with other settings ({ckpt.get('key')}); use another "
            "--out or --overwrite"
        )
    method.load_state_dict(ckpt["method"])
    opt.load_state_dict(ckpt["optimizer"])
    gen.set_state(ckpt["generator"])
    torch.set_rng_state(ckpt["torch_rng"])
    return int(ckpt["epoch"])


def _train_epoch(
    method: SSLMethod,
    opt: Any,
    pool: Any,
    aug: Augment,
    gen: Any,
    norm: tuple[Any, Any],
    epoch: int,
    steps: int,
    bs: int,
    config: EmbedConfig,
    losses: list[float],
    progress: bool,
    deadline: float | None,
) -> bool:
    """One epoch of ``steps`` minibatches (losses appended); True when stopped by ``deadline``."""
    mean_d, std_d = norm
    total = config.epochs * steps
    dev = mean_d.device
    method.train()
    perm = torch.randperm(len(pool), generator=gen)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc=f"{config.method} {epoch + 1}/{config.epochs}",
                   unit="step", dynamic_ncols=True, leave=False)  # fmt: skip
    stopped = False
    for step, batch in enumerate(pool.batches(perm[: steps * bs], bs)):
        xb = batch.to(dev, non_blocking=True).float() / 255.0
        v1 = (aug(xb, gen) - mean_d) / std_d
        v2 = (aug(xb, gen) - mean_d) / std_d
        loss = method.loss(v1, v2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        method.momentum_update((epoch * steps + step + 1) / total)
        losses.append(float(loss.detach()))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if deadline is not None and time.perf_counter() > deadline:
            stopped = True
            break
    if bar is not None:
        bar.close()
    return stopped


def _payload(
    method: SSLMethod,
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
    epoch: int,
    key: dict[str, Any],
    config: EmbedConfig,
    mean: torch.Tensor,
    std: torch.Tensor,
    shape: tuple[int, ...],
) -> dict[str, Any]:
    return {
        "method": method.state_dict(),
        "optimizer": opt.state_dict(),
        "generator": gen.get_state(),
        "torch_rng": torch.get_rng_state(),
        "epoch": epoch,
        "key": key,
        "config": asdict(config),
        "mean": mean,
        "std": std,
        "image_shape": shape,
    }


def load_checkpoint(path: str | os.PathLike) -> tuple[Encoder, dict[str, Any]]:
    """The trained encoder of an ``al-runner embed`` checkpoint and its metadata."""
    path = Path(path)
    if not path.exists():
        raise ALRunnerError(f"checkpoint {path} does not exist")
    ckpt = _read_checkpoint(path)
    if "method" not in ckpt or "config" not in ckpt:
        raise ALRunnerError(f"{path} is not an al-runner embed checkpoint")
    cfg = ckpt["config"]
    encoder = build_encoder(cfg["arch"], tuple(ckpt["image_shape"]))
    method = build_method(cfg["method"], encoder, **cfg.get("method_options", {}))
    method.load_state_dict(ckpt["method"])
    return method.encoder, ckpt


@torch.no_grad()
def encoder_features(
    encoder: Encoder,
    images: Any,
    mean: torch.Tensor,
    std: torch.Tensor,
    device: str = "cpu",
    batch_size: int = 512,
) -> np.ndarray:
    """Penultimate-layer features ``(N, dim)`` of uint8 images ``(N, C, H, W)`` or a Dataset.

    In-memory images are scaled to [0, 1] and standardised with ``mean``/``std``; a torch
    Dataset yields already-transformed tensors.
    """
    encoder = encoder.to(device).eval()
    out = []
    if isinstance(images, np.ndarray):
        x = torch.as_tensor(images)
        for s in range(0, x.shape[0], batch_size):
            xb = x[s : s + batch_size].to(device).float() / 255.0
            out.append(encoder((xb - mean.to(device)) / std.to(device)).float().cpu())
    else:
        loader = torch.utils.data.DataLoader(images, batch_size=batch_size, shuffle=False)
        for xb, _ in loader:
            out.append(encoder(xb.to(device)).float().cpu())
    return torch.cat(out).numpy()


def standardise(train: np.ndarray, test: np.ndarray) -> dict[str, np.ndarray]:
    """Standardise both splits with the pool's per-dimension mean and std (as the paper)."""
    mu = train.mean(0, keepdims=True)
    sd = train.std(0, keepdims=True)
    sd = np.where(sd < 1e-8, 1.0, sd)
    return {
        "train": ((train - mu) / sd).astype(np.float32),
        "test": ((test - mu) / sd).astype(np.float32),
    }


def extract_features(
    data: ALDataset, checkpoint: str | os.PathLike, device: str = "auto"
) -> dict[str, np.ndarray]:
    """Standardised penultimate-layer features of both splits from an embed checkpoint."""
    from al_runner.learners.models import resolve_device

    encoder, ckpt = load_checkpoint(checkpoint)
    shape = tuple(data.train.x.shape[1:]) if data.train.in_memory else None
    if shape is not None and shape != tuple(ckpt["image_shape"]):
        raise ALRunnerError(
            f"{checkpoint} was trained on images {tuple(ckpt['image_shape'])}, "
            f"{data.name} has {shape}"
        )
    dev = resolve_device(device)
    feats = {
        s: encoder_features(encoder, getattr(data, s).x, ckpt["mean"], ckpt["std"], dev)
        for s in ("train", "test")
    }
    return standardise(feats["train"], feats["test"])


def _cached(path: Path, build: Any) -> dict[str, np.ndarray]:
    from palm_bayes.data.contract import atomic_write

    if path.exists():
        with np.load(path, allow_pickle=False) as npz:
            return {"train": npz["train"], "test": npz["test"]}
    feats = build()

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, train=feats["train"], test=feats["test"])

    atomic_write(path, write)
    return feats


def ssl_features(
    data: ALDataset,
    method: str,
    cache_dir: str | os.PathLike,
    *,
    epochs: int = 20,
    device: str = "auto",
    progress: bool = True,
    **options: Any,
) -> dict[str, np.ndarray]:
    """Cached SSL features of ``data``: trains the encoder when its checkpoint is missing.

    The cache ``features-<dataset>-<method>-<checkpoint sha256[:12]>.npz`` in ``cache_dir`` is
    reused when present (a retrained checkpoint has another hash, hence another cache).

    Parameters
    ----------
    data : ALDataset
    method : str
        One of :data:`al_runner.embeddings.METHODS`.
    cache_dir : path
        Folder of checkpoints and feature caches.
    epochs : int
        Training epochs when the checkpoint is missing (an existing checkpoint is used as it
        is; extend it with ``al-runner embed --epochs``, which resumes).
    device : str
    progress : bool
    **options
        Further :class:`EmbedConfig` fields (``batch_size``, ``max_steps_per_epoch``, ...).

    Returns
    -------
    dict
        ``{"train": (N, D), "test": (M, D)}`` float32, standardised with pool statistics.
    """
    ckpt = checkpoint_path(cache_dir, data.name, method)
    if not ckpt.exists():
        cfg = EmbedConfig(data.name, method, epochs=epochs, **options)
        train_encoder(data, cfg, cache_dir, device=device, progress=progress)
    return checkpoint_features(data, ckpt, cache_dir, device=device, tag=method)


def checkpoint_features(
    data: ALDataset,
    checkpoint: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    *,
    device: str = "auto",
    tag: str = "ckpt",
    torchvision: bool = False,
) -> dict[str, np.ndarray]:
    """Cached standardised features from an embed checkpoint or a torchvision ResNet one.

    Parameters
    ----------
    data : ALDataset
    checkpoint : path
    cache_dir : path, optional
        Cache folder (default: beside the checkpoint).
    device : str
    tag : str
        Method name in the cache file name.
    torchvision : bool
        ``checkpoint`` is a bring-your-own state dict: a torchvision ResNet-18/50 or a DINOv2
        ViT (told apart by its keys; see :mod:`al_runner.embeddings.vit`).
    """
    checkpoint = Path(checkpoint)
    if not checkpoint.exists():
        raise ALRunnerError(f"encoder checkpoint {checkpoint} does not exist")
    folder = Path(cache_dir) if cache_dir is not None else checkpoint.parent
    cache = folder / f"features-{data.name}-{tag}-{file_hash(checkpoint)}.npz"
    if torchvision:
        return _cached(cache, lambda: _torchvision_features(data, checkpoint, device))
    return _cached(cache, lambda: extract_features(data, checkpoint, device))


def _torchvision_features(data: ALDataset, checkpoint: Path, device: str) -> dict[str, np.ndarray]:
    from al_runner.embeddings.encoders import torchvision_resnet_from_state_dict
    from al_runner.embeddings.vit import dinov2_from_state_dict, is_vit_state_dict
    from al_runner.learners.models import resolve_device

    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file
        raise ALRunnerError(f"{checkpoint}: not a readable torch state dict ({exc})") from exc
    if not isinstance(state, dict):
        raise ALRunnerError(f"{checkpoint}: expected a state dict, got {type(state).__name__}")
    if is_vit_state_dict(state):
        encoder = dinov2_from_state_dict(state, str(checkpoint))
    else:
        encoder = torchvision_resnet_from_state_dict(state, str(checkpoint))
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    if data.train.in_memory and data.train.x.shape[1] == 1:
        mean, std = mean.mean().view(1, 1, 1, 1), std.mean().view(1, 1, 1, 1)
    dev = resolve_device(device)
    feats = {
        s: encoder_features(encoder, getattr(data, s).x, mean, std, dev) for s in ("train", "test")
    }
    return standardise(feats["train"], feats["test"])


def load_feature_file(data: ALDataset, path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A user's feature file aligned to the dataset's indices.

    ``.npz`` with arrays ``train`` ``(n_pool, D)`` and ``test`` ``(n_test, D)``, or a ``.npy``
    of ``n_pool + n_test`` rows (pool rows first, in dataset order, then test rows). Features
    are used as given (standardise them yourself, or they are standardised by the linear
    learner).
    """
    path = Path(path)
    if not path.exists():
        raise ALRunnerError(f"embedding file {path} does not exist")
    n_pool, n_test = data.n_pool, len(data.test)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as npz:
            if not {"train", "test"} <= set(npz.files):
                raise ALRunnerError(
                    f"{path} must hold arrays 'train' and 'test'; it holds {sorted(npz.files)}"
                )
            train, test = npz["train"], npz["test"]
    elif path.suffix == ".npy":
        x = np.load(path, allow_pickle=False)
        if x.ndim != 2 or x.shape[0] != n_pool + n_test:
            raise ALRunnerError(
                f"{path}: shape {x.shape} does not match {data.name}: expected "
                f"({n_pool} + {n_test} = {n_pool + n_test}, D) rows (pool then test, in "
                "dataset order)"
            )
        train, test = x[:n_pool], x[n_pool:]
    else:
        raise ALRunnerError(f"embedding file must be .npy or .npz, got {path}")
    for name, arr, n in (("train", train, n_pool), ("test", test, n_test)):
        if arr.ndim != 2 or arr.shape[0] != n:
            raise ALRunnerError(
                f"{path}: {name} features have shape {arr.shape}, expected ({n}, D) for {data.name}"
            )
        if not np.all(np.isfinite(arr)):
            raise ALRunnerError(f"{path}: {name} features hold NaN or inf")
    if train.shape[1] != test.shape[1]:
        raise ALRunnerError(f"{path}: train has {train.shape[1]} columns, test {test.shape[1]}")
    return {"train": train.astype(np.float32), "test": test.astype(np.float32)}
