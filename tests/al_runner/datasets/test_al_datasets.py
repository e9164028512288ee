"""Datasets: the embedded ones, the IDX reader, and clear errors for bad local data."""

import gzip

import numpy as np
import pytest

from al_runner.datasets import (
    DATASETS,
    FASHION_MNIST_DIR,
    dataset_features,
    load_dataset,
    read_idx,
)
from al_runner.errors import ALRunnerError


def test_digits_fixed_stratified_split():
    pytest.importorskip("sklearn")
    a, b = load_dataset("digits"), load_dataset("digits")
    assert a.n_pool == 1258 and len(a.test) == 539 and a.image_shape == (1, 8, 8)
    np.testing.assert_array_equal(a.train.y, b.train.y)
    np.testing.assert_array_equal(a.test.x, b.test.x)
    share_train = np.bincount(a.train.y) / a.n_pool
    share_test = np.bincount(a.test.y) / len(a.test)
    np.testing.assert_allclose(share_train, share_test, atol=0.01)
    feats = dataset_features(a)
    assert feats.shape == (1258, 64) and feats.dtype == np.float32 and feats.max() <= 1.0
    assert a.train.x.max() == 255  # 16 in the original scale maps to 255


def _write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(s).to_bytes(4, "big") for s in array.shape
    )
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def test_read_idx_round_trip_and_bad_files(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "x.gz", arr)
    np.testing.assert_array_equal(read_idx(tmp_path / "x.gz"), arr)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ALRunnerError, match="bad magic"):
        read_idx(tmp_path / "bad")
    with gzip.open(tmp_path / "short.gz", "wb") as fh:
        fh.write(bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + b"\x00" * 3)
    with pytest.raises(ALRunnerError, match="promises 10"):
        read_idx(tmp_path / "short.gz")


def test_fashion_mnist_from_a_folder_of_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 12), ("t10k", 5)):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 28, 28)))
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    ds = load_dataset("fashion-mnist", tmp_path)
    assert ds.n_pool == 12 and len(ds.test) == 5 and ds.image_shape == (1, 28, 28)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(ALRunnerError, match="t10k-labels-idx1-ubyte.gz is missing"):
        load_dataset("fashion-mnist", tmp_path)


def test_fashion_mnist_missing_names_the_debian_package(monkeypatch, tmp_path):
    import al_runner.datasets as mod

    monkeypatch.setattr(mod, "FASHION_MNIST_DIR", tmp_path / "nowhere")
    with pytest.raises(ALRunnerError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist")


@pytest.mark.skipif(
    not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists(),
    reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)",
)
def test_fashion_mnist_debian_files():
    ds = load_dataset("fashion-mnist")
    assert ds.n_pool == 60000 and len(ds.test) == 10000 and ds.image_shape == (1, 28, 28)
    assert np.bincount(ds.train.y).tolist() == [6000] * 10
    assert ds.train.x.dtype == np.uint8


def test_unknown_dataset_lists_known():
    with pytest.raises(ALRunnerError, match="known: digits, fashion-mnist, mnist, svhn"):
        load_dataset("stl10")


@pytest.mark.parametrize(
    "name",
    ["cifar10", "cifar100", "imagenet50", "features", "mnist", "svhn", "imbalanced-cifar10",
     "tinyimagenet", "imagefolder"],
)  # fmt: skip
def test_missing_root_and_path(name, tmp_path):
    with pytest.raises(ALRunnerError, match="needs --data-root"):
        load_dataset(name)
    with pytest.raises(ALRunnerError, match="no such path"):
        load_dataset(name, tmp_path / "absent")


def test_cifar_wrong_layout(tmp_path):
    pytest.importorskip("torchvision")
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(ALRunnerError, match="cifar-10-batches-py/ as extracted"):
        load_dataset("cifar10", tmp_path)


def test_imagenet_class_list_and_layout_errors(tmp_path):
    pytest.importorskip("torchvision")
    with pytest.raises(ALRunnerError, match="needs --class-list"):
        load_dataset("imagenet50", tmp_path)
    classes = tmp_path / "classes.txt"
    classes.write_text("\n".join(f"n{i:08d}" for i in range(49)))
    with pytest.raises(ALRunnerError, match="names 49 classes, expected 50"):
        load_dataset("imagenet50", tmp_path, class_list=classes)
    classes.write_text("\n".join(f"n{i:08d}" for i in range(50)))
    with pytest.raises(ALRunnerError, match=r"ImageFolder layout .*50 class folder\(s\) missing"):
        load_dataset("imagenet50", tmp_path, class_list=classes)


def test_imagenet_subset_reads_only_listed_classes(tmp_path):
    pytest.importorskip("torchvision")
    from PIL import Image

    names = [f"n{i:08d}" for i in range(51)]
    for split in ("train", "val"):
        for name in names:
            folder = tmp_path / split / name
            folder.mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(folder / "a.JPEG")
    (tmp_path / "imagenet50_classes.txt").write_text("\n".join(names[1:]))
    ds = load_dataset("imagenet50", tmp_path)
    assert ds.n_classes == 50 and ds.n_pool == 50 and len(ds.test) == 50
    assert ds.classes[0] == names[1] and not ds.train.in_memory
    x, y = ds.train_augmented.x[0]
    assert tuple(x.shape) == (3, 224, 224) and y == 0


def test_features_npz_and_label_errors(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(100, 5)), np.repeat(["cat", "dog"], 50)
    np.savez(tmp_path / "f.npz", X=x, y=y)
    ds = load_dataset("features", tmp_path / "f.npz")
    assert ds.kind == "features" and ds.n_classes == 2 and ds.classes == ["cat", "dog"]
    assert ds.n_pool == 80 and len(ds.test) == 20
    np.savez(tmp_path / "mismatch.npz", X=x, y=y[:-1])
    with pytest.raises(ALRunnerError, match="labels do not match: 100 rows of X but 99"):
        load_dataset("features", tmp_path / "mismatch.npz")
    np.savez(tmp_path / "keys.npz", features=x, labels=y)
    with pytest.raises(ALRunnerError, match="must hold arrays 'X' and 'y'"):
        load_dataset("features", tmp_path / "keys.npz")
    np.savez(tmp_path / "test.npz", X=x, y=y, X_test=x[:3], y_test=np.array(["cat", "cow", "dog"]))
    with pytest.raises(ALRunnerError, match=r"test labels \['cow'\] never occur"):
        load_dataset("features", tmp_path / "test.npz")
    bad = x.copy()
    bad[3, 2] = np.nan
    np.savez(tmp_path / "nan.npz", X=bad, y=y)
    with pytest.raises(ALRunnerError, match="finite"):
        load_dataset("features", tmp_path / "nan.npz")
    np.save(tmp_path / "X.npy", x)
    with pytest.raises(ALRunnerError, match="pass --labels"):
        load_dataset("features", tmp_path / "X.npy")
    np.save(tmp_path / "y.npy", (y == "dog").astype(int))
    ds = load_dataset("features", tmp_path / "X.npy", labels=tmp_path / "y.npy")
    assert ds.n_classes == 2
    (tmp_path / "f.csv").write_text("1,2")
    with pytest.raises(ALRunnerError, match="must be a .npz"):
        load_dataset("features", tmp_path / "f.csv")


def test_registry_descriptions():
    assert set(DATASETS) >= {"digits", "fashion-mnist", "cifar10", "cifar100", "features"}
    assert {"imagenet50", "imagenet100", "imagenet200"} <= set(DATASETS)
