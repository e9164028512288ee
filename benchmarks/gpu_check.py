"""GPU smoke benchmark of al_runner: one markdown table in a few minutes on one CUDA device.

Measures, each in its own try/except (a failure becomes an ``error`` row, never a crash):

* the CNN learner's AL round on Fashion-MNIST: train on 1,000 labels + score the rest of the
  60k pool (target < 10 s);
* one ResNet-18 epoch (the ``resnet18`` learner: CIFAR stem, bf16 autocast, crop/flip, SGD) on
  50,000 random 3x32x32 images, batch 256;
* self-supervised training throughput (images/s) of every SSL method on the same random images
  (ResNet-18 encoder, batch 256, ``--ssl-steps`` steps through :func:`train_encoder`);
* faiss exact kNN (50k x 512, k = 20) on the GPU, or the note "faiss CPU only".

On a machine without CUDA it prints ``no GPU`` and exits 0.

    python benchmarks/gpu_check.py
    python benchmarks/gpu_check.py --ssl-steps 100
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np

Row = tuple[str, str, str]


def measure(name: str, fn: Callable[[], tuple[str, str]]) -> Row:
    """Run one measurement; an exception becomes an ``error`` row with its message."""
    try:
        value, note = fn()
    except Exception as exc:  # noqa: BLE001 - every failure is reported, none is fatal
        text = " ".join(str(exc).split())[:160]
        return name, "error", f"{type(exc).__name__}: {text}".replace("|", "/")
    return name, value, note


def table(rows: list[Row]) -> str:
    """A markdown table of ``(measurement, value, note)`` rows."""
    lines = ["| measurement | value | note |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def _random_cifar(n: int, seed: int = 0):
    from al_runner.datasets import ALDataset, Split

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    y = rng.integers(0, 10, n)
    return ALDataset("random-cifar", "image", Split(x, y), Split(x[:1000], y[:1000]), 10)


def _sync() -> None:
    import torch

    torch.cuda.synchronize()


def cnn_round() -> tuple[str, str]:
    """Train the CNN learner on 1,000 Fashion-MNIST labels and score the remaining pool."""
    from al_runner.datasets import load_dataset
    from al_runner.learners.models import get_learner

    data = load_dataset("fashion-mnist")
    learner = get_learner("cnn", device="cuda").setup(data)
    labelled = np.random.default_rng(0).choice(data.n_pool, 1000, replace=False)
    rest = np.setdiff1d(np.arange(data.n_pool), labelled)
    learner.fit(labelled[:64], seed=1)  # warm-up: CUDA context, cuDNN autotuning
    _sync()
    t0 = time.perf_counter()
    learner.fit(labelled, seed=0)
    proba = learner.predict_proba(rest)
    _sync()
    seconds = time.perf_counter() - t0
    verdict = "meets" if seconds < 10 else "misses"
    return f"{seconds:.2f} s", (
        f"{learner.epochs} epochs on 1000 labels + scoring {proba.shape[0]} (target < 10 s: "
        f"{verdict}); test acc {learner.accuracy():.3f}"
    )


def resnet18_epoch() -> tuple[str, str]:
    """One epoch of the resnet18 learner over 50,000 random CIFAR-shaped images."""
    from al_runner.learners.models import get_learner

    data = _random_cifar(50_000)
    learner = get_learner("resnet18", device="cuda", epochs=1, batch_size=256).setup(data)
    learner.fit(np.arange(2048), seed=1)  # warm-up
    _sync()
    t0 = time.perf_counter()
    learner.fit(np.arange(data.n_pool), seed=0)
    _sync()
    seconds = time.perf_counter() - t0
    return f"{seconds:.2f} s", f"{data.n_pool / seconds:,.0f} img/s, batch 256, bf16 autocast"


def ssl_throughput(method: str, steps: int) -> Callable[[], tuple[str, str]]:
    """Images per second of ``train_encoder`` for ``method`` (ResNet-18, batch 256)."""

    def run() -> tuple[str, str]:
        from al_runner.embeddings import EmbedConfig, train_encoder

        data = _random_cifar(256 * (steps + 10))
        with tempfile.TemporaryDirectory() as out:
            warm = EmbedConfig("warm", method, epochs=1, arch="resnet18", max_steps_per_epoch=10)
            train_encoder(data, warm, out, device="cuda", progress=False)
            cfg = EmbedConfig(
                "gpu-check", method, epochs=1, arch="resnet18", max_steps_per_epoch=steps
            )
            _sync()
            t0 = time.perf_counter()
            _, losses = train_encoder(data, cfg, out, device="cuda", progress=False)
            _sync()
            seconds = time.perf_counter() - t0
        images = 256 * len(losses)
        return f"{images / seconds:,.0f} img/s", (
            f"{len(losses)} steps in {seconds:.1f} s (incl. model build and one checkpoint)"
        )

    return run


def faiss_knn() -> tuple[str, str]:
    """Exact 20-NN of 50k x 512 float32 on the GPU, if faiss has GPU support."""
    import faiss

    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if gpus < 1 or not hasattr(faiss, "StandardGpuResources"):
        return "n/a", "faiss CPU only"
    x = np.random.default_rng(0).standard_normal((50_000, 512)).astype(np.float32)
    res = faiss.StandardGpuResources()
    index = faiss.GpuIndexFlatL2(res, x.shape[1])
    index.add(x)
    index.search(x[:100], 20)  # warm-up
    t0 = time.perf_counter()
    index.search(x, 20)
    seconds = time.perf_counter() - t0
    return f"{seconds:.2f} s", f"GpuIndexFlatL2, {gpus} GPU(s), 50k queries, k = 20"


def main(argv: list[str] | None = None) -> int:
    """Print the table (or ``no GPU``); returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ssl-steps", type=int, default=200, help="SSL steps per method")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("no GPU")
        return 0
    from al_runner.embeddings import METHODS

    torch.backends.cudnn.benchmark = True
    print(f"# {torch.cuda.get_device_name(0)}, torch {torch.__version__}", flush=True)
    t0 = time.perf_counter()
    rows = [
        measure("CNN round, Fashion-MNIST (fit + score pool)", cnn_round),
        measure("ResNet-18 epoch, 50k random 3x32x32", resnet18_epoch),
        *(measure(f"SSL {m} throughput", ssl_throughput(m, args.ssl_steps)) for m in METHODS),
        measure("faiss kNN on GPU", faiss_knn),
    ]
    print(table(rows))
    print(f"\n(total {time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
