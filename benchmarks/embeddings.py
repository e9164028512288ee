"""SSL embeddings on Fashion-MNIST: CPU training throughput, kNN and 1,000-label linear probe.

For each method: train the small encoder for ``--budget`` seconds (batch 256, AdamW 1e-3),
report images/s (pool images per second; each gives two views), then extract standardised
penultimate features and measure kNN (k=20, cosine, all 60,000 labels) and the linear probe
with 1,000 labels, against raw pixels and the untrained encoder.

Usage: python benchmarks/embeddings.py --budget 120 --threads 2 --out /tmp/emb_bench
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from al_runner.datasets import dataset_features, load_dataset
from al_runner.embeddings import METHODS, EmbedConfig, evaluate_embedding, train_encoder
from al_runner.embeddings.encoders import build_encoder
from al_runner.embeddings.train import (
    _channel_stats,
    encoder_features,
    extract_features,
    standardise,
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=float, default=120.0, help="training seconds per method")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--out", default="/tmp/emb_bench")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset("fashion-mnist")
    rows = {}

    def evaluate(name: str, feats: dict[str, np.ndarray], extra: dict | None = None) -> None:
        t = time.perf_counter()
        res = evaluate_embedding(data, feats, fractions=(), labels=(1000,))
        rows[name] = {**(extra or {}), **res, "eval_s": round(time.perf_counter() - t, 1)}
        print(name, rows[name], flush=True)

    raw = {s: dataset_features(data, s) for s in ("train", "test")}
    evaluate("raw pixels", raw)
    torch.manual_seed(0)
    enc = build_encoder("small", data.image_shape)
    mean, std = _channel_stats(torch.as_tensor(data.train.x))
    f = {s: encoder_features(enc, getattr(data, s).x, mean, std) for s in ("train", "test")}
    evaluate("untrained small encoder", standardise(f["train"], f["test"]))
    for method in args.methods.split(","):
        cfg = EmbedConfig("fashion-mnist", method, epochs=1000, arch="small", batch_size=256)
        t = time.perf_counter()
        ckpt, losses = train_encoder(
            data, cfg, Path(args.out) / method, device=args.device, resume=False,
            progress=False, time_budget=args.budget,
        )  # fmt: skip
        secs = time.perf_counter() - t
        extra = {
            "steps": len(losses),
            "train_s": round(secs, 1),
            "images_per_s": round(len(losses) * cfg.batch_size / secs, 1),
            "loss_first10": round(float(np.mean(losses[:10])), 3),
            "loss_last10": round(float(np.mean(losses[-10:])), 3),
        }
        evaluate(method, extract_features(data, ckpt, args.device), extra)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "results.json").write_text(json.dumps(rows, indent=1))
    print("| embedding | train s | images/s | kNN k=20 (all labels) | linear probe 1,000 labels |")
    print("|---|---|---|---|---|")
    for name, r in rows.items():
        print(
            f"| {name} | {r.get('train_s', '-')} | {r.get('images_per_s', '-')} | "
            f"{r['knn20']:.3f} | {r['linear@1000']:.3f} |"
        )


if __name__ == "__main__":
    main()
