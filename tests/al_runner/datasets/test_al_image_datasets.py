"""MNIST, SVHN, long-tailed CIFAR, TinyImageNet and user image folders from tiny generated files."""

import gzip
import pickle

import numpy as np
import pytest

from al_runner.datasets import load_dataset, long_tail_counts, long_tail_indices
from al_runner.errors import ALRunnerError

pytest.importorskip("torchvision")
Image = pytest.importorskip("PIL.Image")


def _write_idx(path, array, compress):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(s).to_bytes(4, "big") for s in array.shape
    )
    with (gzip.open if compress else open)(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def test_mnist_reads_torchvision_raw_folder(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (7, 28, 28))
    for prefix, n in (("train", 7), ("t10k", 3)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images[:n], compress=False)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10, compress=False)
    ds = load_dataset("mnist", tmp_path)
    assert ds.n_pool == 7 and len(ds.test) == 3 and ds.image_shape == (1, 28, 28)
    np.testing.assert_array_equal(ds.train.x[:, 0], images)
    (raw / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(ALRunnerError, match=r"MNIST file .*t10k-images-idx3-ubyte.gz is missing"):
        load_dataset("mnist", tmp_path)


def test_svhn_mat_files_and_label_10_is_digit_0(tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (32, 32, 3, 4)).astype(np.uint8)
    savemat(tmp_path / "train_32x32.mat", {"X": x, "y": np.array([[10], [1], [9], [10]])})
    savemat(tmp_path / "test_32x32.mat", {"X": x[..., :2], "y": np.array([[3], [10]])})
    ds = load_dataset("svhn", tmp_path)
    assert ds.image_shape == (3, 32, 32) and ds.n_pool == 4 and len(ds.test) == 2
    assert ds.train.y.tolist() == [0, 1, 9, 0] and ds.test.y.tolist() == [3, 0]
    assert ds.train.x[2, 1, 5, 7] == x[5, 7, 1, 2]  # (H, W, C, N) -> (N, C, H, W)
    savemat(tmp_path / "test_32x32.mat", {"X": x[:16], "y": np.array([[3]] * 4)})
    with pytest.raises(ALRunnerError, match=r"expected X \(32, 32, 3, N\)"):
        load_dataset("svhn", tmp_path)
    (tmp_path / "test_32x32.mat").unlink()
    with pytest.raises(ALRunnerError, match="test_32x32.mat is missing"):
        load_dataset("svhn", tmp_path)


def test_long_tail_profile_matches_the_published_cifar_lt_sizes():
    counts = long_tail_counts(5000, 10, 100)
    assert counts[0] == 5000 and counts[-1] == 50 and sum(counts) == 12406  # CIFAR-10-LT
    assert sum(long_tail_counts(500, 100, 100)) == 10847  # CIFAR-100-LT (Cao et al., 2019)
    assert long_tail_counts(100, 5, 1) == [100] * 5
    y = np.repeat(np.arange(4), 30)
    keep = long_tail_indices(y, 10)
    assert np.bincount(y[keep]).tolist() == long_tail_counts(30, 4, 10)
    assert np.unique(keep).size == keep.size
    np.testing.assert_array_equal(keep, long_tail_indices(y, 10))  # fixed seed


def _tiny_cifar(root, per_class):
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    y = np.tile(np.arange(10), per_class)
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        labels = y if name == "test_batch" or i == 0 else y[:0]
        data = rng.integers(0, 255, (labels.size, 3072)).astype(np.uint8)
        with open(folder / name, "wb") as fh:
            pickle.dump({"data": data, "labels": labels.tolist()}, fh)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, fh)


def test_imbalanced_cifar_subsamples_both_splits(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    # torchvision checks the official md5 sums; the generated files are tiny stand-ins
    monkeypatch.setattr(tv_cifar.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    _tiny_cifar(tmp_path, per_class=20)
    ds = load_dataset("imbalanced-cifar10", tmp_path, imbalance=10)
    expected = long_tail_counts(20, 10, 10)
    assert np.bincount(ds.train.y, minlength=10).tolist() == expected
    assert np.bincount(ds.test.y, minlength=10).tolist() == expected
    assert ds.name == "imbalanced-cifar10-if10" and ds.image_shape == (3, 32, 32)
    assert load_dataset("imbalanced-cifar10", tmp_path).n_pool == sum(long_tail_counts(20, 10, 100))
    with pytest.raises(ALRunnerError, match="must be >= 1"):
        load_dataset("imbalanced-cifar10", tmp_path, imbalance=0.5)
    with pytest.raises(ALRunnerError, match="--imbalance does not apply to 'cifar10'"):
        load_dataset("cifar10", tmp_path, imbalance=10)


def _png(path, value, size=(10, 6)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, value, value)).save(path)


def test_tinyimagenet_layout_and_errors(tmp_path):
    base = tmp_path / "tiny-imagenet-200"
    wnids = ["n02", "n01"]
    for i, w in enumerate(wnids):
        for k in range(2):
            _png(base / "train" / w / "images" / f"{w}_{k}.JPEG", 40 * i, (64, 64))
    (base / "wnids.txt").write_text("\n".join(wnids))
    _png(base / "val" / "images" / "val_0.JPEG", 0, (64, 64))
    _png(base / "val" / "images" / "val_1.JPEG", 0, (64, 64))
    annotations = base / "val" / "val_annotations.txt"
    annotations.write_text("val_0.JPEG\tn02\t0\t0\t10\t10\nval_1.JPEG\tn01\t1\t2\t3\t4\n")
    ds = load_dataset("tinyimagenet", tmp_path)
    assert ds.classes == ["n01", "n02"] and ds.n_pool == 4 and ds.test.y.tolist() == [1, 0]
    assert not ds.train.in_memory and tuple(ds.train_augmented.x[0][0].shape) == (3, 64, 64)
    annotations.write_text("val_0.JPEG\tn99\n")
    with pytest.raises(ALRunnerError, match="line 1 must read <file>.*known wnid"):
        load_dataset("tinyimagenet", base)
    annotations.unlink()
    with pytest.raises(ALRunnerError, match=r"expected .*/train/<wnid>/images/\*.JPEG and"):
        load_dataset("tinyimagenet", tmp_path)


def test_imagefolder_train_test_layout(tmp_path):
    for split, n in (("train", 3), ("test", 1)):
        for c, v in (("benign", 0), ("malignant", 200)):
            for k in range(n):
                _png(tmp_path / split / c / f"{k}.png", v)
    (tmp_path / "train" / "benign" / "notes.txt").write_text("not an image")
    ds = load_dataset("imagefolder", tmp_path, image_size=16)
    assert ds.classes == ["benign", "malignant"] and ds.n_pool == 6 and len(ds.test) == 2
    x, y = ds.test.x[1]
    assert tuple(x.shape) == (3, 16, 16) and y == 1 and float(x.mean()) > 0  # white-ish image
    assert tuple(ds.train_augmented.x[0][0].shape) == (3, 16, 16)
    assert ds.name == f"imagefolder-{tmp_path.name}"
    _png(tmp_path / "test" / "normal" / "0.png", 90)
    with pytest.raises(ALRunnerError, match=r"lists of train and test differ: .*\['normal'\]"):
        load_dataset("imagefolder", tmp_path)
    with pytest.raises(ALRunnerError, match="expected .*/train/<class>/ and .*--split-file"):
        load_dataset("imagefolder", tmp_path / "train")


def test_imagefolder_split_file(tmp_path):
    for c in ("a", "b"):
        for k in range(3):
            _png(tmp_path / "img" / c / f"{k}.jpg", 10)
    csv = tmp_path / "splits.csv"
    rows = [f"{c}/{k}.jpg,{'test' if k == 0 else 'train'}" for c in "ab" for k in range(3)]
    csv.write_text("path,split\n" + "\n".join(rows[:-1]) + "\n")  # b/2.jpg left out
    ds = load_dataset("imagefolder", tmp_path / "img", split_file=csv)
    assert ds.n_pool == 3 and ds.test.y.tolist() == [0, 1] and ds.train.y.tolist() == [0, 0, 1]
    csv.write_text("path,split\na/0.jpg,valid\n")
    with pytest.raises(ALRunnerError, match="line 2: split must be 'train' or 'test'"):
        load_dataset("imagefolder", tmp_path / "img", split_file=csv)
    csv.write_text("path,split\na/9.jpg,train\nb/0.jpg,test\n")
    with pytest.raises(ALRunnerError, match=r"1 file\(s\) of .* not found .*a/9.jpg"):
        load_dataset("imagefolder", tmp_path / "img", split_file=csv)
    csv.write_text("file,fold\na/0.jpg,train\n")
    with pytest.raises(ALRunnerError, match="header columns 'path' and 'split'"):
        load_dataset("imagefolder", tmp_path / "img", split_file=csv)
    with pytest.raises(ALRunnerError, match="--split-file does not apply to 'digits'"):
        load_dataset("digits", split_file=csv)


def test_cli_runs_an_image_folder_with_a_cnn(tmp_path, capsys):
    from al_runner.cli import main

    for split, n in (("train", 6), ("test", 2)):
        for c, v in (("x", 0), ("y", 255)):
            for k in range(n):
                _png(tmp_path / "data" / split / c / f"{k}.png", v)
    out = tmp_path / "c.nc"
    argv = [
        "run", "--dataset", "imagefolder", "--data-root", str(tmp_path / "data"),
        "--image-size", "8", "--learner", "cnn", "--epochs", "1", "--strategies", "random",
        "--rounds", "2", "--budget", "2", "--out", str(out), "--no-progress", "--device", "cpu",
    ]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    assert out.exists() and "wrote" in capsys.readouterr().out
    assert main([*argv[:-1], "cpu", "--imbalance", "3", "--overwrite"]) == 2
    assert "--imbalance does not apply to 'imagefolder'" in capsys.readouterr().err
