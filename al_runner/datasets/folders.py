"""On-disk image datasets: a user's class folders (``imagefolder``) and TinyImageNet.

Images stay on disk and are decoded per batch (torchvision's loader: PIL, converted to RGB),
like the ImageNet subsets; the pool comes with a training-time augmented view.

``imagefolder`` reads either layout below; label ids follow the sorted class-folder names and
the classes found in ``train`` and ``test`` must be the same (else a one-line error):

1. ``ROOT/train/<class>/*.png|jpg|...`` and ``ROOT/test/<class>/...`` (``ROOT/val/`` is used
   when there is no ``test/``);
2. class folders ``ROOT/<class>/...`` plus ``--split-file SPLITS.csv``, a CSV with a header
   that has (at least) the columns ``path`` and ``split``::

       path,split
       benign/img_001.png,train
       malignant/img_107.png,test

   ``path`` is relative to ``ROOT`` and its first folder is the class; ``split`` is ``train``
   or ``test``; images not listed are left out.

Images are resized to ``image_size`` x ``image_size`` (default 224; aspect ratio not kept,
nothing is cropped away) and normalised with ImageNet statistics; the augmented pool view uses
``RandomResizedCrop(scale=(0.5, 1))`` and a horizontal flip, as the reference code.

``tinyimagenet`` reads the official ``tiny-imagenet-200/`` tree (at ``--data-root`` or as
``--data-root`` itself): ``train/<wnid>/images/*.JPEG``, ``val/images/*.JPEG`` labelled by
``val/val_annotations.txt`` (``file<TAB>wnid<TAB>bbox...``) and, when present, ``wnids.txt``.
The official val split (50 per class) is the test set, as in the reference code.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np

from al_runner.datasets.base import IMAGENET_MEAN, IMAGENET_STD, ALDataset, Split, require_root
from al_runner.errors import ALRunnerError

__all__ = ["DEFAULT_IMAGE_SIZE", "ImageList", "load_imagefolder", "load_tinyimagenet"]

DEFAULT_IMAGE_SIZE = 224
_TINY_SIZE = 64


def _torchvision() -> tuple[Any, Any]:
    try:
        from torchvision import datasets, transforms
    except ImportError as exc:  # pragma: no cover - torchvision is in the runner extra
        raise ALRunnerError(
            "image folders need torchvision: pip install 'palm-bayes[runner]'"
        ) from exc
    return datasets, transforms


class ImageList:
    """A torch-style dataset of ``(path, label)`` pairs decoded on access.

    Parameters
    ----------
    samples : list of (str, int)
        Image files and their label ids.
    transform : callable
        Applied to the RGB PIL image.
    """

    def __init__(self, samples: list[tuple[str, int]], transform: Any) -> None:
        self.samples = samples
        self.targets = [y for _, y in samples]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        from torchvision.datasets.folder import default_loader

        path, label = self.samples[index]
        return self.transform(default_loader(path)), label


def _views(
    name: str,
    samples: dict[str, list[tuple[str, int]]],
    classes: list[str],
    size: int,
    source: str,
) -> ALDataset:
    _, T = _torchvision()
    norm = T.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    eval_tf = T.Compose([T.Resize((size, size)), T.ToTensor(), norm])
    train_tf = T.Compose(
        [T.RandomResizedCrop(size, scale=(0.5, 1.0)), T.RandomHorizontalFlip(), T.ToTensor(), norm]
    )
    y = {s: np.asarray([t for _, t in samples[s]], dtype=np.int64) for s in ("train", "test")}
    return ALDataset(
        name=name,
        kind="image",
        train=Split(ImageList(samples["train"], eval_tf), y["train"]),
        test=Split(ImageList(samples["test"], eval_tf), y["test"]),
        n_classes=len(classes),
        classes=classes,
        train_augmented=Split(ImageList(samples["train"], train_tf), y["train"]),
        source=source,
    )


def _is_image(path: str) -> bool:
    from torchvision.datasets.folder import IMG_EXTENSIONS

    return path.lower().endswith(IMG_EXTENSIONS)


def _scan_split(folder: Path) -> dict[str, list[str]]:
    """Image files per (non-hidden) class folder of ``folder``; empty folders are dropped."""
    found = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(
            os.path.join(dirpath, f)
            for dirpath, _, names in os.walk(sub, followlinks=True)
            for f in names
            if _is_image(f)
        )
        if files:
            found[sub.name] = files
    return found


def _from_split_file(root: Path, split_file: Path) -> dict[str, dict[str, list[str]]]:
    if not split_file.exists():
        raise ALRunnerError(f"imagefolder: split file {split_file} does not exist")
    with open(split_file, newline="") as fh:
        reader = csv.DictReader(fh)
        if not {"path", "split"} <= set(reader.fieldnames or []):
            raise ALRunnerError(
                f"imagefolder: {split_file} must be a CSV with header columns 'path' and "
                f"'split'; its header is {reader.fieldnames}"
            )
        rows = list(reader)
    found: dict[str, dict[str, list[str]]] = {"train": {}, "test": {}}
    seen: set[str] = set()
    missing = []
    for line, row in enumerate(rows, start=2):
        rel, split = (row["path"] or "").strip(), (row["split"] or "").strip().lower()
        if split not in found:
            raise ALRunnerError(
                f"imagefolder: {split_file} line {line}: split must be 'train' or 'test', "
                f"got {split!r}"
            )
        parts = Path(rel).parts
        if len(parts) < 2 or Path(rel).is_absolute() or ".." in parts:
            raise ALRunnerError(
                f"imagefolder: {split_file} line {line}: path {rel!r} must be <class>/<file> "
                f"relative to {root}"
            )
        if rel in seen:
            raise ALRunnerError(f"imagefolder: {split_file} line {line}: {rel} is listed twice")
        seen.add(rel)
        if not (root / rel).is_file():
            missing.append(rel)
        found[split].setdefault(parts[0], []).append(str(root / rel))
    if missing:
        raise ALRunnerError(
            f"imagefolder: {len(missing)} file(s) of {split_file} not found under {root}, "
            f"e.g. {missing[:3]}"
        )
    return found


def load_imagefolder(
    root: str | os.PathLike | None = None,
    image_size: int | None = None,
    split_file: str | os.PathLike | None = None,
    **_: Any,
) -> ALDataset:
    """A user's image classification folders as an on-disk AL dataset.

    Parameters
    ----------
    root : path
        ``ROOT`` with ``train/`` and ``test/`` class folders, or class folders + ``split_file``.
    image_size : int, optional
        Side of the square model input (default 224).
    split_file : path, optional
        CSV ``path,split`` (layout 2 of the module docstring).

    Returns
    -------
    ALDataset
        Named ``imagefolder-<root folder name>`` (keys embedding caches apart).
    """
    path = require_root("imagefolder", root)
    size = DEFAULT_IMAGE_SIZE if image_size is None else int(image_size)
    if size < 8:
        raise ALRunnerError(f"imagefolder: --image-size must be >= 8, got {size}")
    if split_file is not None:
        found = _from_split_file(path, Path(split_file))
        where = {"train": f"{split_file} (train rows)", "test": f"{split_file} (test rows)"}
    else:
        test_dir = path / "test" if (path / "test").is_dir() else path / "val"
        if not (path / "train").is_dir() or not test_dir.is_dir():
            raise ALRunnerError(
                f"imagefolder: expected {path}/train/<class>/ and {path}/test/<class>/ image "
                f"folders, or class folders {path}/<class>/ with --split-file (CSV path,split)"
            )
        found = {"train": _scan_split(path / "train"), "test": _scan_split(test_dir)}
        where = {"train": str(path / "train"), "test": str(test_dir)}
    for split in ("train", "test"):
        if not found[split]:
            raise ALRunnerError(
                f"imagefolder: no images in {where[split]} (expected <class>/<image> files "
                "such as .png or .jpg)"
            )
    only_train = sorted(set(found["train"]) - set(found["test"]))
    only_test = sorted(set(found["test"]) - set(found["train"]))
    if only_train or only_test:
        raise ALRunnerError(
            f"imagefolder: class lists of train and test differ: only in train {only_train[:5]}, "
            f"only in test {only_test[:5]} ({where['train']} vs {where['test']})"
        )
    classes = sorted(found["train"])
    if len(classes) < 2:
        raise ALRunnerError(f"imagefolder: need at least 2 classes, found {classes} in {path}")
    samples = {
        s: [(f, i) for i, c in enumerate(classes) for f in found[s][c]] for s in ("train", "test")
    }
    return _views(f"imagefolder-{path.resolve().name}", samples, classes, size, str(path))


def load_tinyimagenet(root: str | os.PathLike | None = None, **_: Any) -> ALDataset:
    """TinyImageNet-200 from its official on-disk tree (train pool, official val as test).

    Parameters
    ----------
    root : path
        The folder holding ``tiny-imagenet-200/``, or that folder itself.

    Returns
    -------
    ALDataset
    """
    path = require_root("tinyimagenet", root)
    base = path / "tiny-imagenet-200" if (path / "tiny-imagenet-200").is_dir() else path
    annotations = base / "val" / "val_annotations.txt"
    if not (base / "train").is_dir() or not annotations.exists():
        raise ALRunnerError(
            f"tinyimagenet: expected {base}/train/<wnid>/images/*.JPEG and "
            f"{base}/val/val_annotations.txt (the extracted tiny-imagenet-200.zip)"
        )
    wnids_file = base / "wnids.txt"
    if wnids_file.exists():
        classes = sorted({w.strip() for w in wnids_file.read_text().split() if w.strip()})
    else:
        classes = sorted(p.name for p in (base / "train").iterdir() if p.is_dir())
    missing = [c for c in classes if not (base / "train" / c / "images").is_dir()]
    if missing or not classes:
        raise ALRunnerError(
            f"tinyimagenet: expected {base}/train/<wnid>/images/ for every class; "
            f"{len(missing)} missing, e.g. {missing[:3]}"
        )
    index = {c: i for i, c in enumerate(classes)}
    train = [
        (str(f), index[c])
        for c in classes
        for f in sorted((base / "train" / c / "images").iterdir())
        if _is_image(f.name)
    ]
    test = []
    for line_no, line in enumerate(annotations.read_text().splitlines(), start=1):
        fields = line.split("\t")
        if not line.strip():
            continue
        if len(fields) < 2 or fields[1] not in index:
            raise ALRunnerError(
                f"tinyimagenet: {annotations} line {line_no} must read <file>\\t<wnid>... with "
                f"a known wnid, got {line[:60]!r}"
            )
        file = base / "val" / "images" / fields[0]
        if not file.is_file():
            raise ALRunnerError(f"tinyimagenet: {file} (line {line_no} of {annotations}) missing")
        test.append((str(file), index[fields[1]]))
    if not train or not test:
        raise ALRunnerError(f"tinyimagenet: no images found under {base}")
    return _views("tinyimagenet", {"train": train, "test": test}, classes, _TINY_SIZE, str(base))
