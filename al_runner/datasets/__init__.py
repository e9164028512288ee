"""Datasets for the AL loop, read from local files only (nothing is downloaded at run time).

Every loader returns an :class:`ALDataset`: a train split (the unlabelled pool) and a test split.
Small image datasets are held in memory as ``uint8`` arrays of shape ``(N, C, H, W)``; ImageNet
subsets stay on disk as torchvision ``ImageFolder`` datasets; ``features`` holds a user's
precomputed feature matrix (any domain).

==================  ==============================================================
name                source
==================  ==============================================================
digits              scikit-learn's bundled 8x8 digits, fixed stratified 70/30 split
fashion-mnist       Debian package ``dataset-fashion-mnist`` (IDX ``.gz`` files)
mnist               IDX files (``.gz`` or not) in ``--data-root`` or its ``MNIST/raw/``
svhn                ``train_32x32.mat`` and ``test_32x32.mat`` in ``--data-root``
cifar10/100         torchvision's on-disk format under ``--data-root`` (no download)
imbalanced-cifar*   CIFAR with an exponential long-tail profile (``--imbalance``)
tinyimagenet        the ``tiny-imagenet-200/`` tree (on disk, see image_folders)
imagenet50/..       ImageFolder trees ``root/{train,val}/<wnid>/`` + a class-list file
imagefolder         any ``root/{train,test}/<class>/`` tree or class folders + split CSV
features            ``.npz`` with ``X, y`` (optionally ``X_test, y_test``), or ``.npy``
==================  ==============================================================
"""

from __future__ import annotations

import functools
import gzip
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from al_runner.datasets.base import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ALDataset,
    Split,
    require_root,
)
from al_runner.errors import ALRunnerError

__all__ = [
    "ALDataset",
    "Split",
    "DATASETS",
    "FASHION_MNIST_DIR",
    "load_dataset",
    "dataset_features",
]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
_FMNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_SPLIT_SEED = 0  # fixed: the test set must not move between runs or seeds
IMAGENET_SIZE = 224  # crop size of ImageNet subsets (resized to 256/224 of it first)


# --------------------------------------------------------------------------- loaders
def _stratified_split(
    n: int, y: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = int(round(test_fraction * idx.size))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _load_digits(**_: Any) -> ALDataset:
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - sklearn is in the runner extra
        raise ALRunnerError(
            "the digits dataset needs scikit-learn: pip install 'palm-bayes[runner]'"
        ) from exc
    bunch = load_digits()
    images = np.clip(np.rint(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)[:, None]
    y = bunch.target.astype(np.int64)
    tr, te = _stratified_split(len(y), y, 0.3, _SPLIT_SEED)
    return ALDataset(
        name="digits",
        kind="image",
        train=Split(images[tr], y[tr]),
        test=Split(images[te], y[te]),
        n_classes=10,
        classes=[str(i) for i in range(10)],
        source="sklearn.datasets.load_digits (70/30 stratified split, seed 0)",
    )


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a numpy array.

    Parameters
    ----------
    path : path
        An ``*-idx?-ubyte`` file or its ``.gz``.

    Returns
    -------
    numpy.ndarray
        ``uint8`` array with the file's shape.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ALRunnerError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    count = int(np.prod(shape))
    if len(data) - offset != count:
        raise ALRunnerError(
            f"{path}: header promises {count} values of shape {shape}, file holds "
            f"{len(data) - offset}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape).copy()


def _load_fashion_mnist(root: str | os.PathLike | None = None, **_: Any) -> ALDataset:
    folder = Path(root) if root else FASHION_MNIST_DIR
    splits = _read_idx_splits("Fashion-MNIST", folder, root is None)
    classes = [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ]  # fmt: skip
    return ALDataset(
        name="fashion-mnist",
        kind="image",
        train=splits["train"],
        test=splits["test"],
        n_classes=10,
        classes=classes,
        source=str(folder),
    )


def _load_mnist(root: str | os.PathLike | None = None, **_: Any) -> ALDataset:
    path = require_root("mnist", root)
    raw = path / "MNIST" / "raw"  # torchvision's layout
    folder = raw if raw.is_dir() else path
    splits = _read_idx_splits("MNIST", folder, False)
    return ALDataset(
        name="mnist",
        kind="image",
        train=splits["train"],
        test=splits["test"],
        n_classes=10,
        classes=[str(i) for i in range(10)],
        source=str(folder),
    )


def _read_idx_splits(name: str, folder: Path, debian: bool) -> dict[str, Split]:
    """Train and test splits from the four MNIST-style IDX files in ``folder``."""
    splits = {}
    for split, (images_name, labels_name) in _FMNIST_FILES.items():
        files = []
        for fname in (images_name, labels_name):
            candidates = [folder / fname, folder / fname.removesuffix(".gz")]
            found = next((p for p in candidates if p.exists()), None)
            if found is None:
                hint = (
                    "install it with: apt-get install dataset-fashion-mnist"
                    if debian
                    else "expected the four IDX files (train/t10k images/labels) there"
                )
                raise ALRunnerError(f"{name} file {folder / fname} is missing; {hint}")
            files.append(found)
        images, labels = read_idx(files[0]), read_idx(files[1]).astype(np.int64)
        if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise ALRunnerError(
                f"{name} {split}: {images.shape[0]} images of shape {images.shape[1:]} "
                f"but {labels.shape[0]} labels"
            )
        splits[split] = Split(np.ascontiguousarray(images[:, None]), labels)
    return splits


def _load_cifar(name: str, root: str | os.PathLike | None = None, **_: Any) -> ALDataset:
    path = require_root(name, root)
    try:
        from torchvision import datasets as tvd
    except ImportError as exc:
        raise ALRunnerError(f"{name} needs torchvision: pip install 'palm-bayes[runner]'") from exc
    cls, folder = (
        (tvd.CIFAR10, "cifar-10-batches-py")
        if name == "cifar10"
        else (tvd.CIFAR100, "cifar-100-python")
    )
    splits = {}
    for split, train in (("train", True), ("test", False)):
        try:
            ds = cls(str(path), train=train, download=False)
        except RuntimeError as exc:
            raise ALRunnerError(
                f"{name}: no readable torchvision-format data under {path} (expected "
                f"{path / folder}/ as extracted from the official python tarball; "
                "nothing is downloaded)"
            ) from exc
        x = np.ascontiguousarray(np.asarray(ds.data, dtype=np.uint8).transpose(0, 3, 1, 2))
        splits[split] = Split(x, np.asarray(ds.targets, dtype=np.int64))
        classes = list(ds.classes)
    return ALDataset(
        name=name,
        kind="image",
        train=splits["train"],
        test=splits["test"],
        n_classes=len(classes),
        classes=classes,
        source=str(path),
    )


def long_tail_counts(n_per_class: int, n_classes: int, imbalance: float) -> list[int]:
    """Samples kept per class under the exponential long-tail profile (Cui et al., 2019).

    Class ``c`` keeps ``int(n_per_class * imbalance ** (-c / (n_classes - 1)))`` samples, so
    class 0 keeps all and the last class ``1 / imbalance`` of them (the ``IMBALANCECIFAR``
    profile of the LDAM-DRW / TypiClust / PALM reference code with ``imb_type="exp"``).

    Parameters
    ----------
    n_per_class : int
        Samples per class of the balanced set.
    n_classes : int
    imbalance : float
        Ratio of the largest to the smallest class (``>= 1``; 1 keeps the set balanced).

    Returns
    -------
    list of int
    """
    factor = 1.0 / float(imbalance)
    return [int(n_per_class * factor ** (c / (n_classes - 1.0))) for c in range(n_classes)]


def long_tail_indices(y: np.ndarray, imbalance: float, seed: int = 0) -> np.ndarray:
    """Indices of a long-tailed subset of a balanced label vector, as the reference code.

    Per class in label order the indices are shuffled by a ``RandomState(seed)`` stream shared
    across classes and the first :func:`long_tail_counts` are kept (class-grouped order).

    Parameters
    ----------
    y : numpy.ndarray
        Integer labels ``0 .. C-1``.
    imbalance : float
        Largest-to-smallest class ratio.
    seed : int
        The reference uses 0.

    Returns
    -------
    numpy.ndarray
        ``int64`` indices into ``y``.
    """
    classes = np.unique(y)
    counts = long_tail_counts(len(y) // classes.size, classes.size, imbalance)
    rng = np.random.RandomState(seed)  # the legacy stream of np.random.seed(0) + shuffle
    keep = []
    for c, n in zip(classes, counts, strict=True):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        keep.append(idx[:n])
    return np.concatenate(keep).astype(np.int64)


def _load_imbalanced_cifar(
    name: str, root: str | os.PathLike | None = None, imbalance: float | None = None, **_: Any
) -> ALDataset:
    factor = 100.0 if imbalance is None else float(imbalance)
    if not factor >= 1.0:
        raise ALRunnerError(
            f"{name}: --imbalance (largest/smallest class) must be >= 1, not {factor}"
        )
    base = _load_cifar(name.removeprefix("imbalanced-"), root)
    splits = {}
    for split in ("train", "test"):  # the reference subsamples both splits with one profile
        part: Split = getattr(base, split)
        keep = long_tail_indices(part.y, factor)
        splits[split] = Split(np.ascontiguousarray(part.x[keep]), part.y[keep])
    return ALDataset(
        name=name if factor == 100.0 else f"{name}-if{factor:g}",
        kind="image",
        train=splits["train"],
        test=splits["test"],
        n_classes=base.n_classes,
        classes=base.classes,
        source=f"{base.source} (long-tailed, imbalance factor {factor:g})",
    )


def _load_svhn(root: str | os.PathLike | None = None, **_: Any) -> ALDataset:
    path = require_root("svhn", root)
    try:
        from scipy.io import loadmat
    except ImportError as exc:  # pragma: no cover - scipy comes with scikit-learn
        raise ALRunnerError("svhn needs scipy to read .mat files: pip install scipy") from exc
    splits = {}
    for split in ("train", "test"):
        file = path / f"{split}_32x32.mat"
        if not file.exists():
            raise ALRunnerError(
                f"svhn: {file} is missing; expected train_32x32.mat and test_32x32.mat (the "
                "cropped-digits format) in --data-root"
            )
        try:
            mat = loadmat(file)
            x, y = mat["X"], mat["y"]
        except (ValueError, KeyError, OSError) as exc:
            raise ALRunnerError(
                f"svhn: {file} is not a cropped-digits .mat file with 'X' (32, 32, 3, N) and "
                f"'y' (N, 1) ({exc})"
            ) from exc
        if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or y.size != x.shape[3]:
            raise ALRunnerError(
                f"svhn: {file} holds X {x.shape} and y {y.shape}; expected X (32, 32, 3, N) "
                "and y (N, 1)"
            )
        labels = y.reshape(-1).astype(np.int64)
        labels[labels == 10] = 0  # the digit 0 is stored as 10
        if labels.min() < 0 or labels.max() > 9:
            raise ALRunnerError(f"svhn: {file} has labels outside 1..10")
        images = np.ascontiguousarray(x.transpose(3, 2, 0, 1).astype(np.uint8))
        splits[split] = Split(images, labels)
    return ALDataset(
        name="svhn",
        kind="image",
        train=splits["train"],
        test=splits["test"],
        n_classes=10,
        classes=[str(i) for i in range(10)],
        source=str(path),
    )


def _read_class_list(path: Path, expected: int, name: str) -> list[str]:
    if not path.exists():
        raise ALRunnerError(f"{name}: class-list file {path} does not exist")
    classes = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    if len(classes) != expected:
        raise ALRunnerError(
            f"{name}: class list {path} names {len(classes)} classes, expected {expected}"
        )
    if len(set(classes)) != len(classes):
        raise ALRunnerError(f"{name}: class list {path} repeats a class")
    return classes


def imagenet_resize_crop() -> list[Any]:
    """The evaluation geometry of ImageNet subsets: resize to 256/224 of the crop, centre crop."""
    from torchvision import transforms as T

    return [T.Resize(round(IMAGENET_SIZE * 256 / 224)), T.CenterCrop(IMAGENET_SIZE)]


def _load_imagenet(
    name: str,
    root: str | os.PathLike | None = None,
    class_list: str | os.PathLike | None = None,
    **_: Any,
) -> ALDataset:
    path = require_root(name, root)
    expected = int(name.removeprefix("imagenet"))
    if class_list is None:
        default = path / f"{name}_classes.txt"
        if not default.exists():
            raise ALRunnerError(f"{name} needs --class-list (one WordNet id per line) or {default}")
        class_list = default
    classes = _read_class_list(Path(class_list), expected, name)
    for split in ("train", "val"):
        missing = [c for c in classes if not (path / split / c).is_dir()]
        if missing:
            raise ALRunnerError(
                f"{name}: expected ImageFolder layout {path}/{split}/<class>/*.JPEG; "
                f"{len(missing)} class folder(s) missing, e.g. {missing[:3]}"
            )
    try:
        from torchvision import datasets as tvd
        from torchvision import transforms as T
    except ImportError as exc:
        raise ALRunnerError(f"{name} needs torchvision: pip install 'palm-bayes[runner]'") from exc

    class _Subset(tvd.ImageFolder):
        def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
            return classes, {c: i for i, c in enumerate(classes)}

    norm = T.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    size = IMAGENET_SIZE
    train_tf = T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), T.ToTensor(), norm])
    eval_tf = T.Compose([*imagenet_resize_crop(), T.ToTensor(), norm])
    train = _Subset(str(path / "train"), transform=eval_tf)
    train_aug = _Subset(str(path / "train"), transform=train_tf)
    test = _Subset(str(path / "val"), transform=eval_tf)
    y_train = np.asarray(train.targets, dtype=np.int64)
    y_test = np.asarray(test.targets, dtype=np.int64)
    return ALDataset(
        name=name,
        kind="image",
        train=Split(train, y_train),
        test=Split(test, y_test),
        n_classes=expected,
        classes=classes,
        train_augmented=Split(train_aug, y_train),
        source=str(path),
    )


def _check_features(x: Any, y: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim != 2:
        raise ALRunnerError(f"features {what}: X must be 2-D (samples x features), got {x.shape}")
    if y.ndim != 1:
        raise ALRunnerError(f"features {what}: y must be 1-D, got shape {y.shape}")
    if x.shape[0] != y.shape[0]:
        raise ALRunnerError(
            f"features {what}: labels do not match: {x.shape[0]} rows of X but {y.shape[0]} labels"
        )
    if not np.issubdtype(x.dtype, np.number) or not np.all(np.isfinite(x)):
        raise ALRunnerError(
            f"features {what}: X must be finite numbers (found NaN/inf/non-numeric)"
        )
    return x.astype(np.float32), y


def _load_features(
    name: str = "features",
    root: str | os.PathLike | None = None,
    labels: str | os.PathLike | None = None,
    **_: Any,
) -> ALDataset:
    path = require_root(name, root)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as npz:
            keys = set(npz.files)
            if not {"X", "y"} <= keys:
                raise ALRunnerError(
                    f"{path} must hold arrays 'X' and 'y' (and optionally 'X_test', 'y_test'); "
                    f"it holds {sorted(keys)}"
                )
            x, y = npz["X"], npz["y"]
            x_test = npz["X_test"] if "X_test" in keys else None
            y_test = npz["y_test"] if "y_test" in keys else None
        if (x_test is None) != (y_test is None):
            raise ALRunnerError(f"{path}: give both 'X_test' and 'y_test' or neither")
    elif path.suffix == ".npy":
        if labels is None:
            raise ALRunnerError(f"{path} is a bare feature matrix; pass --labels LABELS.npy")
        labels = Path(labels)
        if not labels.exists():
            raise ALRunnerError(f"labels file {labels} does not exist")
        x, y = np.load(path, allow_pickle=False), np.load(labels, allow_pickle=False)
        x_test = y_test = None
    else:
        raise ALRunnerError(f"features must be a .npz (X, y) or a .npy with --labels, got {path}")
    x, y_raw = _check_features(x, y, "train")
    classes, y = np.unique(y_raw, return_inverse=True)
    if classes.size < 2:
        raise ALRunnerError(f"features: need at least 2 classes, found {classes.size}")
    if x_test is None:
        tr, te = _stratified_split(len(y), y, 0.2, _SPLIT_SEED)
        train, test = Split(x[tr], y[tr]), Split(x[te], y[te])
    else:
        x_test, y_test_raw = _check_features(x_test, y_test, "test")
        if x_test.shape[1] != x.shape[1]:
            raise ALRunnerError(
                f"features: X has {x.shape[1]} columns but X_test has {x_test.shape[1]}"
            )
        unknown = np.setdiff1d(np.unique(y_test_raw), classes)
        if unknown.size:
            raise ALRunnerError(
                f"features: labels do not match: test labels {unknown[:5].tolist()} never occur "
                "in the training labels"
            )
        train = Split(x, y)
        test = Split(x_test, np.searchsorted(classes, y_test_raw).astype(np.int64))
    return ALDataset(
        name="features",
        kind="features",
        train=Split(train.x, train.y.astype(np.int64)),
        test=test,
        n_classes=int(classes.size),
        classes=[str(c) for c in classes],
        source=str(path),
    )


@dataclass(frozen=True)
class _Entry:
    loader: Callable[..., ALDataset]
    description: str
    options: tuple[str, ...] = ()  # load_dataset options besides root/class_list/labels


def _deferred(func: str, **kwargs: Any) -> ALDataset:
    """Call a loader of :mod:`al_runner.datasets.folders` (imported on first use)."""
    from al_runner.datasets import folders as image_folders

    return getattr(image_folders, func)(**kwargs)


DATASETS: dict[str, _Entry] = {
    "digits": _Entry(_load_digits, "scikit-learn 8x8 digits (bundled), 1258 pool / 539 test"),
    "fashion-mnist": _Entry(
        _load_fashion_mnist, "Fashion-MNIST 28x28 (apt-get install dataset-fashion-mnist)"
    ),
    "mnist": _Entry(_load_mnist, "MNIST 28x28: IDX files in --data-root (or its MNIST/raw/)"),
    "svhn": _Entry(_load_svhn, "SVHN 32x32: train_32x32.mat, test_32x32.mat in --data-root"),
    "cifar10": _Entry(functools.partial(_load_cifar, "cifar10"), "CIFAR-10 from --data-root"),
    "cifar100": _Entry(functools.partial(_load_cifar, "cifar100"), "CIFAR-100 from --data-root"),
    **{
        f"imbalanced-{c}": _Entry(
            functools.partial(_load_imbalanced_cifar, f"imbalanced-{c}"),
            f"long-tailed {c.upper()} from --data-root, --imbalance (default 100)",
            ("imbalance",),
        )
        for c in ("cifar10", "cifar100")
    },
    "tinyimagenet": _Entry(
        functools.partial(_deferred, "load_tinyimagenet"),
        "TinyImageNet 64x64 (200 classes): tiny-imagenet-200/ at --data-root, on disk",
    ),
    **{
        f"imagenet{n}": _Entry(
            functools.partial(_load_imagenet, f"imagenet{n}"),
            f"ImageNet-{n} subset: ImageFolder at --data-root + --class-list",
        )
        for n in (50, 100, 200)
    },
    "imagefolder": _Entry(
        functools.partial(_deferred, "load_imagefolder"),
        "your images: --data-root with train/<class>/, test/<class>/ (or --split-file)",
        ("image_size", "split_file"),
    ),
    "features": _Entry(
        _load_features, "precomputed features: --data-root X.npz (X, y[, X_test, y_test])"
    ),
}


def load_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    class_list: str | os.PathLike | None = None,
    labels: str | os.PathLike | None = None,
    imbalance: float | None = None,
    image_size: int | None = None,
    split_file: str | os.PathLike | None = None,
) -> ALDataset:
    """Load a dataset by registry name.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`.
    root : path, optional
        Local data location (required for cifar*, imagenet*, features; optional override of
        the Fashion-MNIST folder).
    class_list : path, optional
        ImageNet subsets: file with one class id per line.
    labels : path, optional
        ``features`` given as a ``.npy`` matrix: its labels ``.npy``.
    imbalance : float, optional
        ``imbalanced-cifar*``: largest-to-smallest class ratio (default 100).
    image_size : int, optional
        ``imagefolder``: side the images are resized to (default 224).
    split_file : path, optional
        ``imagefolder``: CSV ``path,split`` assigning images under ``root/<class>/`` to
        ``train`` or ``test`` (see :mod:`al_runner.datasets.folders`).

    Returns
    -------
    ALDataset

    Examples
    --------
    >>> ds = load_dataset("digits")
    >>> ds.n_pool, len(ds.test), ds.image_shape
    (1258, 539, (1, 8, 8))
    """
    entry = DATASETS.get(name)
    if entry is None:
        raise ALRunnerError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    options = {"imbalance": imbalance, "image_size": image_size, "split_file": split_file}
    given = {k: v for k, v in options.items() if v is not None}
    wrong = sorted(set(given) - set(entry.options))
    if wrong:
        flag = "--" + wrong[0].replace("_", "-")
        users = [n for n, e in DATASETS.items() if wrong[0] in e.options]
        raise ALRunnerError(f"{flag} does not apply to {name!r}, only to {', '.join(users)}")
    return entry.loader(root=root, class_list=class_list, labels=labels, **given)


def dataset_features(data: ALDataset, split: str = "train") -> np.ndarray:
    """Fixed features of a split: the feature matrix, or flattened pixels scaled to [0, 1].

    Parameters
    ----------
    data : ALDataset
    split : {"train", "test"}

    Returns
    -------
    numpy.ndarray
        ``float32`` array ``(N, D)``.
    """
    part: Split = getattr(data, split)
    if not part.in_memory:
        raise ALRunnerError(
            f"{data.name} lives on disk as images; fixed-feature learners and representation "
            "strategies need precomputed embeddings: run them with --dataset features"
        )
    x = part.x
    if data.kind == "image":
        return x.reshape(x.shape[0], -1).astype(np.float32) / 255.0
    return np.asarray(x, dtype=np.float32)
