"""Self-supervised embeddings: losses learn, features are cached, bring-your-own works."""

import math

import numpy as np
import pytest
import torch

pytest.importorskip("torch")
pytest.importorskip("torchvision")
pytest.importorskip("faiss")

from conftest import make_imagenet50

from al_runner import embeddings as emb
from al_runner.cli import main
from al_runner.datasets import load_dataset
from al_runner.embeddings.encoders import build_encoder
from al_runner.embeddings.methods import build_method, nt_xent
from al_runner.embeddings.train import file_hash, load_checkpoint
from al_runner.errors import ALRunnerError
from al_runner.experiment.loop import RunConfig, run_experiment


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.mark.parametrize("method", ["simclr", "mocov2", "mocov3", "byol"])
def test_each_method_loss_decreases_on_digits(digits, method, tmp_path):
    # 3 epochs x 10 steps of 64; MoCo v2's queue (128 keys) is full after 2 steps: the first
    # steps contrast against random initial keys and are skipped for every method
    opts = (
        {"queue_size": 128} if method == "mocov2" else {"hidden": 256} if method == "mocov3" else {}
    )
    cfg = emb.EmbedConfig(
        "digits", method, epochs=3, batch_size=64, max_steps_per_epoch=10, method_options=opts
    )
    _, losses = emb.train_encoder(digits, cfg, tmp_path, device="cpu", progress=False)
    assert len(losses) == 30 and np.all(np.isfinite(losses))
    first, last = np.mean(losses[3:9]), np.mean(losses[-6:])
    assert last < 0.97 * first, (method, first, last)


def test_nt_xent_matches_a_direct_computation():
    gen = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(4, 3, generator=gen), torch.randn(4, 3, generator=gen)
    t = 0.5
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1).numpy()
    total = 0.0
    for i in range(8):
        j = (i + 4) % 8
        sims = np.array([z[i] @ z[m] / t for m in range(8) if m != i])
        total += -(z[i] @ z[j] / t) + math.log(np.exp(sims).sum())
    assert float(nt_xent(z1, z2, t)) == pytest.approx(total / 8, rel=1e-5)
    # identical views that are mutually orthogonal: the loss is far below chance (log 7)
    eye = torch.eye(4, 8) * 10
    assert float(nt_xent(eye, eye, 0.1)) < 0.01


def test_momentum_update_is_an_ema():
    torch.manual_seed(0)
    method = build_method("byol", build_encoder("small", (1, 8, 8)), momentum=0.9)
    with torch.no_grad():
        for p in method.encoder.parameters():
            p.add_(1.0)
    online = next(method.encoder.parameters()).clone()
    target = next(method.target_encoder.parameters()).clone()
    method.momentum_update(0.0)  # cosine schedule starts at the base momentum
    new = next(method.target_encoder.parameters())
    torch.testing.assert_close(new, 0.9 * target + 0.1 * online)
    assert method.current_momentum(1.0) == pytest.approx(1.0)
    assert not any(p.requires_grad for p in method.target_encoder.parameters())


def test_features_have_the_right_shape_are_cached_and_reused(digits, tmp_path, monkeypatch):
    feats = emb.ssl_features(
        digits, "byol", tmp_path, epochs=1, device="cpu", progress=False,
        max_steps_per_epoch=2, batch_size=64,
    )  # fmt: skip
    assert feats["train"].shape == (digits.n_pool, 128)
    assert feats["test"].shape == (len(digits.test), 128)
    np.testing.assert_allclose(feats["train"].mean(0), 0, atol=1e-4)
    ckpt = emb.checkpoint_path(tmp_path, "digits", "byol")
    cache = tmp_path / f"features-digits-byol-{file_hash(ckpt)}.npz"
    assert cache.exists()

    def no_training(*a, **k):
        raise AssertionError("retrained although the cache exists")

    monkeypatch.setattr(emb.train, "train_encoder", no_training)
    monkeypatch.setattr(emb.train, "extract_features", no_training)
    again = emb.ssl_features(digits, "byol", tmp_path, epochs=1, device="cpu")
    np.testing.assert_array_equal(again["train"], feats["train"])


def test_training_resumes_from_its_checkpoint(digits, tmp_path):
    cfg = emb.EmbedConfig("digits", "simclr", epochs=1, batch_size=256, max_steps_per_epoch=2)
    path, first = emb.train_encoder(digits, cfg, tmp_path, device="cpu", progress=False)
    cfg.epochs = 2
    _, second = emb.train_encoder(digits, cfg, tmp_path, device="cpu", progress=False)
    assert len(first) == len(second) == 2  # only the missing epoch ran
    assert torch.load(path, weights_only=False)["epoch"] == 2
    _, third = emb.train_encoder(digits, cfg, tmp_path, device="cpu", progress=False)
    assert third == []  # finished: nothing to do
    cfg.lr = 0.1
    with pytest.raises(ALRunnerError, match="other settings"):
        emb.train_encoder(digits, cfg, tmp_path, device="cpu", progress=False)


def test_bring_your_own_feature_file_runs_al_end_to_end(digits, tmp_path):
    # label-revealing features aligned to dataset indices: only a run that really uses the
    # file reaches near-perfect accuracy with 40 labels (raw pixels stay far below)
    y = np.concatenate([digits.train.y, digits.test.y])
    x = np.eye(10)[y] * 3 + np.random.default_rng(0).normal(0, 0.3, (y.size, 10))
    path = tmp_path / "features.npy"
    np.save(path, x.astype(np.float32))
    cfg = RunConfig(
        "digits", ["random", "typiclust", "coreset"], rounds=2, labels_per_round=20,
        embedding_file=str(path),
    )  # fmt: skip
    curves = run_experiment(cfg, tmp_path / "c.nc", data=digits, progress=False)
    assert list(curves.embedding.values) == ["file"]
    assert np.isfinite(curves.accuracy).all()
    assert float(curves.accuracy.isel(step=-1).mean()) > 0.9


def test_feature_file_mismatches_error_clearly(digits, tmp_path):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((digits.n_pool, 4), np.float32))  # test rows missing
    with pytest.raises(ALRunnerError, match=r"does not match digits.*1258 \+ 539"):
        emb.load_feature_file(digits, bad)
    npz = tmp_path / "bad.npz"
    np.savez(npz, train=np.zeros((digits.n_pool, 4)), test=np.zeros((3, 4)))
    with pytest.raises(ALRunnerError, match=r"test features have shape \(3, 4\)"):
        emb.load_feature_file(digits, npz)
    with pytest.raises(ALRunnerError, match="not both"):
        RunConfig(
            "digits", ["random"], embedding_file="a.npy", encoder_checkpoint="b.pt"
        ).validate()


def test_torchvision_checkpoint_loads_and_key_mismatch_errors(digits, tmp_path):
    from torchvision.models import resnet18

    state = {f"module.encoder_q.{k}": v for k, v in resnet18().state_dict().items()}
    good = tmp_path / "moco_r18.pth"
    torch.save({"state_dict": state}, good)
    feats = emb.checkpoint_features(digits, good, tmp_path, device="cpu", torchvision=True)
    assert feats["train"].shape == (digits.n_pool, 512)
    assert feats["test"].shape == (len(digits.test), 512)
    del state["module.encoder_q.layer2.0.conv1.weight"]
    state["module.encoder_q.extra.weight"] = torch.zeros(1)
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(ALRunnerError, match=r"1 missing \(e.g. \['layer2.0.conv1.weight'\]\)"):
        emb.checkpoint_features(digits, bad, tmp_path, device="cpu", torchvision=True)


def test_knn_accuracy_on_separable_and_shuffled_labels():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 40)
    x = np.eye(3)[y] * 5 + rng.normal(0, 0.1, (120, 3))
    assert emb.knn_accuracy(x, y, x, y) == 1.0
    assert emb.knn_accuracy(x, rng.permutation(y), x, y) < 0.7


def test_cli_embed_then_eval_then_run_uses_the_cache(tmp_path, capsys):
    out = tmp_path / "emb"
    args = ["embed", "--dataset", "digits", "--method", "mocov3", "--epochs", "1"]
    assert main([*args, "--batch-size", "512", "--out", str(out), "--no-progress"]) == 0
    assert "wrote" in capsys.readouterr().out
    caches = list(out.glob("features-digits-mocov3-*.npz"))
    assert len(caches) == 1
    ev = ["embed-eval", "--dataset", "digits", "--method", "mocov3", "--dir", str(out)]
    assert main([*ev, "--fractions", "0.1"]) == 0
    text = capsys.readouterr().out
    assert "knn20" in text and "linear@10%" in text and "raw pixels" in text
    mtime = caches[0].stat().st_mtime_ns
    run = ["run", "--dataset", "digits", "--strategies", "random,probcover", "--rounds", "2"]
    rc = main([*run, "--embedding", "mocov3", "--embedding-dir", str(out),
               "--out", str(tmp_path / "c.nc"), "--no-progress"])  # fmt: skip
    assert rc == 0
    assert caches[0].stat().st_mtime_ns == mtime  # reused, not rebuilt
    assert main([*ev[:3], "--embedding-file", str(tmp_path / "none.npy")]) == 2


def test_imagenet_subset_on_disk_trains_and_extracts(tmp_path, monkeypatch, capsys):
    """ImageFolder pools (ImageNet subsets) train from disk at the eval crop size."""
    import al_runner.learners.training as training
    from al_runner.datasets import IMAGENET_MEAN, IMAGENET_SIZE
    from al_runner.embeddings.encoders import auto_arch

    # one train image per class (50): each image is trained and encoded at 224 x 224
    make_imagenet50(tmp_path, height=20, width=24, train_per_class=1)
    monkeypatch.setattr(training, "loader_workers", lambda: 0)
    out = tmp_path / "emb"
    main(["embed", "--dataset", "imagenet50", "--data-root", str(tmp_path), "--method", "byol",
          "--epochs", "1", "--batch-size", "25", "--arch", "small", "--out", str(out),
          "--no-progress"])  # fmt: skip
    assert "(2 steps)" in capsys.readouterr().out  # 50 images in batches of 25
    ckpt = torch.load(out / "imagenet50-byol.pt", weights_only=False)
    assert tuple(ckpt["image_shape"]) == (3, IMAGENET_SIZE, IMAGENET_SIZE)
    assert np.allclose(ckpt["mean"].flatten().numpy(), IMAGENET_MEAN)
    data = load_dataset("imagenet50", tmp_path)
    feats = emb.checkpoint_features(data, out / "imagenet50-byol.pt", out, device="cpu")
    assert feats["train"].shape == (50, 128) and feats["test"].shape == (50, 128)
    assert np.isfinite(feats["train"]).all()
    # without --arch the ImageNet crop size gets the ResNet-50 encoder
    assert auto_arch((3, IMAGENET_SIZE, IMAGENET_SIZE)) == "resnet50"


@pytest.mark.parametrize(("arch", "dim"), [("resnet18", 512), ("resnet50", 2048)])
def test_paper_scale_encoders_train_and_extract(arch, dim, tmp_path):
    """The GPU-sized encoders run the CPU path: weights are trained, features have their dim."""
    from al_runner.datasets import ALDataset, Split

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (40, 3, 32, 32), dtype=np.uint8)
    labels = np.arange(40) % 4
    data = ALDataset("cifar10", "image", Split(images[:32], labels[:32]),
                     Split(images[32:], labels[32:]), n_classes=4)  # fmt: skip
    cfg = emb.EmbedConfig("cifar10", "mocov3", epochs=1, batch_size=8, arch=arch,
                          max_steps_per_epoch=2)  # fmt: skip
    torch.manual_seed(cfg.seed)  # train_encoder seeds the same way: same initial weights
    initial = build_method("mocov3", build_encoder(arch, (3, 32, 32))).encoder
    before = {k: v.detach().clone() for k, v in initial.named_parameters()}
    ckpt, losses = emb.train_encoder(data, cfg, tmp_path, device="cpu", progress=False)
    assert len(losses) == 2 and np.all(np.isfinite(losses))
    encoder, _ = load_checkpoint(ckpt)
    after = dict(encoder.named_parameters())
    assert before.keys() == after.keys()
    moved = [k for k, v in before.items() if not torch.equal(v, after[k])]
    assert moved, "no encoder weight changed"
    feats = emb.checkpoint_features(data, ckpt, tmp_path, device="cpu")
    assert feats["train"].shape == (32, dim) and feats["test"].shape == (8, dim)
