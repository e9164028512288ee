"""Shared test helpers."""

from pathlib import Path

import numpy as np


def make_imagenet50(root: Path, height: int = 8, width: int = 8) -> list[str]:
    """A fake ImageNet-50 ImageFolder under ``root``: 2 train and 1 val random JPEG per class.

    Writes ``root/{train,val}/<wnid>/<k>.JPEG`` and ``root/imagenet50_classes.txt``; returns
    the class ids.
    """
    from PIL import Image

    rng = np.random.default_rng(0)
    names = [f"n{i:08d}" for i in range(50)]
    for split, n in (("train", 2), ("val", 1)):
        for name in names:
            (root / split / name).mkdir(parents=True)
            for j in range(n):
                pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{j}.JPEG")
    (root / "imagenet50_classes.txt").write_text("\n".join(names))
    return names
